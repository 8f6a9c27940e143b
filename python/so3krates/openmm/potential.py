"""openmm-ml potential `so3krates`: MLPotential('so3krates', modelPath='model.pt').

Registered through the `openmmml.potentials` entry point; follows openmm-ml's Factory + Impl layout.
"""
from typing import Iterable, Optional

import openmm
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

from ..elements import check_elements
from ..model_file import load_model

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
      cudaGraphs: ask openmm-torch to capture the model in a CUDA graph on the CUDA platform;
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
        force = make_torch_force(potential, numbers, None if atoms is None else indices, periodic, dtype,
                                 total_charge, returnForces, cudaGraphs)
        force.setForceGroup(forceGroup)
        system.addForce(force)
