"""openmm-ml potential `so3krates`: MLPotential('so3krates', modelPath='model.pt').

Registered through the `openmmml.potentials` entry point; follows openmm-ml's Factory + Impl layout.
"""
from typing import Iterable, Optional

import numpy as np
import openmm
import torch
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

from ..elements import check_elements
from ..model.neighbors import check_box_width
from ..model_file import load_model

# all-pairs lists grow as N²: beyond this many ML atoms CUDA graphs would cost more than they save
STATIC_PAIRS_MAX_ATOMS = 512


class SO3kratesPotentialImplFactory(MLPotentialImplFactory):
    """Creates SO3kratesPotentialImpl objects."""

    def createImpl(self, name: str, modelPath: str = None, **args) -> MLPotentialImpl:
        if modelPath is None:
            raise ValueError("MLPotential('so3krates') needs modelPath='model.pt' (write one with "
                             "`so3krates init` or `so3krates train`)")
        return SO3kratesPotentialImpl(name, modelPath)


class SO3kratesPotentialImpl(MLPotentialImpl):
    """An SO3krates model file added to a System as an openmm-torch TorchForce.

    Keyword arguments of createSystem / createMixedSystem:
      precision: "single" or "double" (default: the model file's precision);
      returnForces: the TorchForce returns forces computed inside the model (default True;
        see the README's performance section) instead of letting openmm-torch differentiate;
      cudaGraphs: ask openmm-torch to capture the model in a CUDA graph on the CUDA platform; the
        model then uses a pair list of fixed size (all N(N-1) pairs of the ML atoms, at most
        STATIC_PAIRS_MAX_ATOMS of them), as a graph replays fixed shapes;
      charge: total charge (e) of the ML atoms, required by models trained with charges.
    The model is short-ranged (cutoff in the model file), so getMLLongRange() is False.
    """

    def __init__(self, name: str, modelPath: str):
        self.name = name
        self.modelPath = modelPath
        self.info = load_model(modelPath)[1]

    def getMLLongRange(self) -> bool:
        return False

    def addForces(self, topology: openmm.app.Topology, system: openmm.System, atoms: Optional[Iterable[int]],
                  forceGroup: int, precision: Optional[str] = None, returnForces: bool = True,
                  cudaGraphs: bool = False, charge: Optional[float] = None, **args) -> None:
        from ..torchscript import configure_torchscript
        from .plugins import ensure_torch_plugins
        from .torchforce import make_torch_force

        ensure_torch_plugins()
        configure_torchscript()
        total_charge = self.info.total_charge(charge)
        all_atoms = list(topology.atoms())
        indices = list(range(len(all_atoms))) if atoms is None else list(atoms)
        labels, numbers = [], []
        for i in indices:
            atom = all_atoms[i]
            labels.append(f"atom {i} ({atom.name} of {atom.residue.name}{atom.residue.id})")
            numbers.append(0 if atom.element is None else atom.element.atomic_number)
        check_elements(numbers, self.info.elements, labels)

        dtype = self.info.torch_dtype(precision)
        potential = load_model(self.modelPath)[0].to(dtype)
        periodic = topology.getPeriodicBoxVectors() is not None
        if cudaGraphs:
            self._use_static_pairs(potential, len(indices), topology)
        force = make_torch_force(potential, numbers, None if atoms is None else indices, periodic, dtype,
                                 total_charge, returnForces, cudaGraphs)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def _use_static_pairs(self, potential, n_atoms: int, topology: openmm.app.Topology) -> None:
        """Switch the model to its fixed-size pair list, after the checks it cannot make inside a graph."""
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
            vectors_angstrom = np.array([[v.value_in_unit(openmm.unit.angstrom) for v in row] for row in box])
            check_box_width(torch.tensor(vectors_angstrom), self.info.config.cutoff)
        potential.neighbor_list.static_pairs = True
