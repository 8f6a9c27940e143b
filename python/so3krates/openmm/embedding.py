"""The MM side of electrostatic embedding: hand the ML–MM Coulomb from the MM force field to the model.

openmm-ml's createMixedSystem has already removed the ML–ML interactions of the MM force field. For
electrostatic embedding the ML atoms' MM charges are then zeroed in the NonbondedForce (sigma and
epsilon kept), so that nothing of the MM force field's Coulomb touches an ML atom, in direct or
reciprocal space; the TorchForce computes the ML–MM Coulomb instead, from the model's charges and
the MM charges read here. Whatever would make that bookkeeping wrong is refused with the reason.
"""
from typing import List, Sequence, Tuple

import openmm
import openmm.app as app
import openmm.unit as unit

# forces whose per-particle charges the embedding cannot take over (implicit solvent, polarisable
# force fields): their electrostatics would see the ML atoms' fixed MM charges
CHARGED_FORCES = ("GBSAOBCForce", "CustomGBForce", "AmoebaMultipoleForce", "HippoNonbondedForce", "DrudeForce",
                  "AmoebaGeneralizedKirkwoodForce")
SHOWN = 5  # how many offending bonds or pairs an error lists


class EmbeddingError(ValueError):
    """A mixed system that electrostatic embedding cannot describe correctly."""


def check_whole_molecules(topology: app.Topology, ml_atoms: Sequence[int]) -> None:
    """Refuse an ML region that cuts covalent bonds: the model would see a broken molecule, and the
    ML charges would meet the MM charges of the atom bonded to them at a bond's length."""
    ml = set(ml_atoms)
    cut = [(a, b) for a, b in topology.bonds() if (a.index in ml) != (b.index in ml)]
    if cut:
        shown = "; ".join(f"{a.name} of {a.residue.name}{a.residue.id} (atom {a.index}) - {b.name} of "
                          f"{b.residue.name}{b.residue.id} (atom {b.index})" for a, b in cut[:SHOWN])
        raise EmbeddingError(f"the ML region cuts {len(cut)} covalent bond(s) ({shown}); electrostatic embedding "
                             f"needs whole molecules as the ML region (link atoms are not supported)")


def _charge(value) -> float:
    return value.value_in_unit(unit.elementary_charge) if unit.is_quantity(value) else float(value)


def _check_forces(system: openmm.System) -> openmm.NonbondedForce:
    """The one NonbondedForce whose ML charges can be handed over; refuse forces that also carry charges."""
    nonbonded = []
    for index, force in enumerate(system.getForces()):
        name = type(force).__name__
        if name in CHARGED_FORCES:
            raise EmbeddingError(f"the MM system's force {index} ({name}) has charges on the ML atoms that electrostatic "
                                 f"embedding cannot take over (implicit solvent and polarisable force fields are not "
                                 f"supported); use embedding='mechanical'")
        if isinstance(force, openmm.CustomNonbondedForce):
            names = [force.getPerParticleParameterName(k) for k in range(force.getNumPerParticleParameters())]
            charged = [n for n in names if n.lower() in ("q", "charge") or "charge" in n.lower()]
            if charged:
                raise EmbeddingError(f"the MM system's force {index} (CustomNonbondedForce, per-particle parameters "
                                     f"{names}) looks like electrostatics ({charged}), which electrostatic embedding "
                                     f"cannot take over; use embedding='mechanical'")
        if isinstance(force, openmm.NonbondedForce):
            nonbonded.append(force)
    if len(nonbonded) != 1:
        raise EmbeddingError(f"electrostatic embedding needs an MM system with exactly one NonbondedForce, this one has "
                             f"{len(nonbonded)}")
    force = nonbonded[0]
    if force.getNumParticleParameterOffsets() or force.getNumExceptionParameterOffsets():
        raise EmbeddingError("the MM NonbondedForce has parameter offsets (charges that change with global parameters); "
                             "electrostatic embedding reads the MM charges once, when the System is created")
    return force


def take_over_ml_coulomb(system: openmm.System, ml_atoms: Sequence[int]) -> Tuple[List[int], List[float]]:
    """Zero the ML atoms' charges in `system`'s NonbondedForce (keeping their Lennard-Jones) and return
    the MM point charges for the embedding: (particle indices, charges in e) of every non-ML particle
    with a non-zero charge (virtual sites included: OpenMM passes their positions and distributes
    their forces)."""
    ml = set(ml_atoms)
    force = _check_forces(system)
    across = []
    for k in range(force.getNumExceptions()):
        p1, p2, charge_product, sigma, epsilon = force.getExceptionParameters(k)
        if (p1 in ml) != (p2 in ml):
            across.append((p1, p2))
    if across:
        raise EmbeddingError(f"the MM NonbondedForce has {len(across)} exception(s) between an ML and an MM atom "
                             f"(first: {across[:SHOWN]}); electrostatic embedding would count their Coulomb in full")
    mm_indices, mm_charges = [], []
    for i in range(force.getNumParticles()):
        charge, sigma, epsilon = force.getParticleParameters(i)
        if i in ml:
            force.setParticleParameters(i, 0.0, sigma, epsilon)
        elif _charge(charge) != 0.0:
            mm_indices.append(i)
            mm_charges.append(_charge(charge))
    return mm_indices, mm_charges
