"""openmm-ml potentials `so3krates` (any model file: MLPotential('so3krates', modelPath='model.pt'))
and `so3lr` (the pretrained SO3LR shipped with this package: MLPotential('so3lr')).

Registered through the `openmmml.potentials` entry point; follows openmm-ml's Factory + Impl layout.
"""
from typing import Iterable, List, Optional

import numpy as np
import openmm
import openmm.unit as unit
import torch
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

from ..electrons import resolve_charge_and_spin
from ..elements import check_elements
from ..model.neighbors import check_box_width
from ..model_file import load_model
from ..so3lr import PACKAGED_MODEL
from . import MODEL_DEFAULT

# all-pairs lists grow as N²: beyond this many ML atoms CUDA graphs would cost more than they save
STATIC_PAIRS_MAX_ATOMS = 512
# lrCutoff is a length in nm (OpenMM's unit) unless given as a Quantity; anything longer is a unit mistake
MAX_LR_CUTOFF_NM = 5.0


class SO3kratesPotentialImplFactory(MLPotentialImplFactory):
    """Creates SO3kratesPotentialImpl objects for a model file."""

    def createImpl(self, name: str, modelPath: str = None, **args) -> MLPotentialImpl:
        if modelPath is None:
            raise ValueError("MLPotential('so3krates') needs modelPath='model.pt' (write one with `so3krates init` "
                             "or `so3krates train`, or use MLPotential('so3lr') for the pretrained SO3LR)")
        return SO3kratesPotentialImpl(name, modelPath)


class SO3LRPotentialImplFactory(MLPotentialImplFactory):
    """Creates the SO3LR potential from the model file shipped with this package (no download)."""

    def createImpl(self, name: str, **args) -> MLPotentialImpl:
        if "modelPath" in args:
            raise ValueError("MLPotential('so3lr') uses the SO3LR model shipped with openmm-so3krates; for another "
                             "file (e.g. a fine-tuned SO3LR) use MLPotential('so3krates', modelPath=...)")
        return SO3kratesPotentialImpl(name, str(PACKAGED_MODEL))


def lr_cutoff_angstrom(value) -> Optional[float]:
    """lrCutoff as given (Quantity, number in nm, or None for no cutoff) -> Å or None."""
    if value is None:
        return None
    if unit.is_quantity(value):
        return float(value.value_in_unit(unit.angstrom))
    if not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"lrCutoff={value!r} must be a positive length (nm, or an openmm.unit Quantity), or None")
    if value > MAX_LR_CUTOFF_NM:
        raise ValueError(f"lrCutoff={value} is in nm (OpenMM's length unit): that is {value * 10:g} Å; for "
                         f"{value} Å pass {value / 10:g} or {value}*unit.angstrom")
    return float(value) * 10.0


def mm_charge_of(system: openmm.System, atoms: List[int]) -> Optional[float]:
    """Sum of the NonbondedForce charges (e) of `atoms` in an MM system, or None if it has none."""
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce) and force.getNumParticles() == system.getNumParticles() > 0:
            return float(sum(force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in atoms))
    return None


class SO3kratesPotentialImpl(MLPotentialImpl):
    """An SO3krates model file added to a System as an openmm-torch TorchForce.

    Keyword arguments of createSystem / createMixedSystem:
      precision: "single" or "double" (default: the model file's precision);
      charge: total charge (e) of the ML atoms. Default: in createMixedSystem, the sum of the MM force
        field's charges of the ML atoms; otherwise the model's default (SO3LR: 0) — models trained with
        charges have none and need it. Checked: whole number, agrees with the MM charges, possible for
        the atoms' electrons (see so3krates.electrons);
      multiplicity: spin multiplicity (default 1) for models with a spin input (SO3LR);
      lrCutoff: cutoff of the long-range terms (electrostatics, dispersion) of models that have them,
        in nm or as a Quantity (default: the model's, 1.2 nm for SO3LR); None: no cutoff, vacuum only;
      returnForces: the TorchForce returns forces computed inside the model (default True; see the
        README's performance section) instead of letting openmm-torch differentiate;
      cudaGraphs: ask openmm-torch to capture the model in a CUDA graph on the CUDA platform; the
        model then uses pair lists of fixed size (all pairs of the ML atoms, minimum image, at most
        STATIC_PAIRS_MAX_ATOMS of them), as a graph replays fixed shapes.

    getMLLongRange() is False: the model's interactions end at a finite cutoff (its long-range terms
    are a truncated, shifted real-space sum, not Ewald), so with mechanical embedding in a periodic
    MM system the MM force field keeps the PME reciprocal-space interactions between ML atoms and the
    periodic images of ML atoms (openmm-ml 1.8's meaning of False).
    """

    def __init__(self, name: str, modelPath: str):
        self.name = name
        self.modelPath = modelPath
        self.info = load_model(modelPath)[1]

    def getMLLongRange(self) -> bool:
        return False

    def addForces(self, topology: openmm.app.Topology, system: openmm.System, atoms: Optional[Iterable[int]],
                  forceGroup: int, precision: Optional[str] = None, returnForces: bool = True,
                  cudaGraphs: bool = False, charge: Optional[float] = None, multiplicity: Optional[int] = None,
                  lrCutoff=MODEL_DEFAULT, **args) -> None:
        from ..torchscript import configure_torchscript
        from .plugins import ensure_torch_plugins
        from .torchforce import make_torch_force

        ensure_torch_plugins()
        configure_torchscript()
        all_atoms = list(topology.atoms())
        indices = list(range(len(all_atoms))) if atoms is None else list(atoms)
        labels, numbers = [], []
        for i in indices:
            atom = all_atoms[i]
            labels.append(f"atom {i} ({atom.name} of {atom.residue.name}{atom.residue.id})")
            numbers.append(0 if atom.element is None else atom.element.atomic_number)
        check_elements(numbers, self.info.elements, labels)
        mm_charge = None if atoms is None else mm_charge_of(system, indices)
        total_charge, unpaired = resolve_charge_and_spin(self.info, numbers, charge, multiplicity, mm_charge)

        dtype = self.info.torch_dtype(precision)
        potential = load_model(self.modelPath)[0].to(dtype)
        periodic = topology.getPeriodicBoxVectors() is not None
        lr_cutoff = self._set_lr_cutoff(potential, lrCutoff, periodic)
        if cudaGraphs:
            self._use_static_pairs(potential, len(indices), topology, lr_cutoff)
        force = make_torch_force(potential, numbers, None if atoms is None else indices, periodic, dtype,
                                 total_charge, unpaired, returnForces, cudaGraphs)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def _set_lr_cutoff(self, potential, value, periodic: bool) -> Optional[float]:
        """Apply lrCutoff to the loaded model; returns the long-range cutoff in Å (None: none)."""
        if not self.info.config.long_range:
            if value is not MODEL_DEFAULT:
                raise ValueError(f"lrCutoff: {self.modelPath} has no long-range terms (its only cutoff is "
                                 f"{self.info.config.cutoff} Å)")
            return None
        cutoff = self.info.config.lr_cutoff if value is MODEL_DEFAULT else lr_cutoff_angstrom(value)
        if cutoff is None and periodic:
            raise ValueError("lrCutoff=None (plain Coulomb over all pairs) is for vacuum only; a periodic system "
                             "needs a finite lrCutoff")
        if cutoff is not None and cutoff <= self.info.config.dispersion_switch_width:
            raise ValueError(f"lrCutoff={cutoff / 10:g} nm must exceed the {self.info.config.dispersion_switch_width / 10:g}"
                             f" nm over which dispersion is switched off")
        potential.set_lr_cutoff(cutoff)
        return cutoff

    def _use_static_pairs(self, potential, n_atoms: int, topology: openmm.app.Topology,
                          lr_cutoff: Optional[float]) -> None:
        """Switch the model to its fixed-size pair lists, after the checks it cannot make inside a graph."""
        if self.info.format_version < 3:
            raise ValueError(f"{self.modelPath} (model format {self.info.format_version}) predates CUDA-graph "
                             f"support: export it again from its checkpoint (`so3krates export`), "
                             f"or use cudaGraphs=False")
        if n_atoms > STATIC_PAIRS_MAX_ATOMS:
            raise ValueError(f"cudaGraphs=True needs a pair list of fixed size; SO3krates then uses all pairs, "
                             f"which pays up to {STATIC_PAIRS_MAX_ATOMS} ML atoms, but this system has {n_atoms}: "
                             f"use cudaGraphs=False")
        box = topology.getPeriodicBoxVectors()
        if box is not None:
            vectors_angstrom = torch.tensor(np.array([[v.value_in_unit(unit.angstrom) for v in row] for row in box]))
            check_box_width(vectors_angstrom, self.info.config.cutoff)
            if lr_cutoff is not None:
                check_box_width(vectors_angstrom, lr_cutoff, "the long-range cutoff")
        model = potential.potential if self.info.format_version < 4 else potential
        model.neighbor_list.static_pairs = True
        if self.info.config.long_range:
            model.lr_neighbor_list.static_pairs = True
