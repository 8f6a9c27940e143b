"""`so3krates bench`: ms/step of SO3krates and peer potentials through openmm-ml, one process per
case, alternating cases so that the comparison is one run on one (noisy) machine."""
