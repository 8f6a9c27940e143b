"""OpenMM glue: the TorchForce wrapper and the openmm-ml potential `so3krates`."""
