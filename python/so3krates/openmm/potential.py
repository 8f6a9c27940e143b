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

from ..electrons import WHERE_CHARGE, resolve_charge_and_spin
from ..elements import check_elements
from ..model.embedding import ElectrostaticEmbedding
from ..model.neighbors import check_box_width
from ..model_file import load_model
from ..so3lr import PACKAGED_MODEL
from . import MODEL_DEFAULT
from .embedding import EmbeddingError, check_whole_molecules, take_over_ml_coulomb

# all-pairs lists grow as N²: beyond this many ML atoms CUDA graphs would cost more than they save
STATIC_PAIRS_MAX_ATOMS = 512
# lengths (lrCutoff, embeddingDamping) are in nm (OpenMM's unit) unless given as a Quantity; anything
# longer than this is a unit mistake
MAX_LENGTH_NM = 5.0
OPTIONS = ("precision", "returnForces", "cudaGraphs", "charge", "multiplicity", "lrCutoff", "embedding",
           "embeddingDamping")
# options of openmm-ml 1.8's embedding methods, which it passes on to every potential's addForces
OPENMM_ML_OPTIONS = ("mlLongRange", "linkAtomDistances")
EMBEDDINGS = ("mechanical", "electrostatic")


def refuse_unknown(name: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """An option this potential does not know is an error (a misspelt option must not be ignored)."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise TypeError(f"MLPotential('{name}') got unknown keyword argument(s) {', '.join(unknown)}; it accepts "
                        f"{', '.join(accepted)}")


class SO3kratesPotentialImplFactory(MLPotentialImplFactory):
    """Creates SO3kratesPotentialImpl objects for a model file."""

    def createImpl(self, name: str, modelPath: str = None, **args) -> MLPotentialImpl:
        refuse_unknown(name, args, ["modelPath"])
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
        refuse_unknown(name, args, [])
        return SO3kratesPotentialImpl(name, str(PACKAGED_MODEL))


def length_angstrom(name: str, value) -> Optional[float]:
    """A length option as given (Quantity, number in nm, or None) -> Å or None."""
    if value is None:
        return None
    if unit.is_quantity(value):
        value = value.value_in_unit(unit.nanometer)
    if not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive length (nm, or an openmm.unit Quantity), or None")
    if value > MAX_LENGTH_NM:
        raise ValueError(f"{name}={value} is in nm (OpenMM's length unit): that is {value * 10:g} Å; for "
                         f"{value} Å pass {value / 10:g} or {value}*unit.angstrom")
    return float(value) * 10.0


_NO_INTERPOLATION = ("createMixedSystem(interpolate=True) is not supported with embedding='electrostatic' (the "
                     "ML-MM Coulomb would have to be interpolated between MM and model charges); use "
                     "embedding='mechanical' to interpolate")


def mm_charge_of(system: openmm.System, atoms: List[int]) -> Optional[float]:
    """Sum of the NonbondedForce charges (e) of `atoms` in an MM system, or None if it has none."""
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce) and force.getNumParticles() == system.getNumParticles() > 0:
            return float(sum(force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in atoms))
    return None


class SO3kratesPotentialImpl(MLPotentialImpl):
    """An SO3krates model file added to a System as an openmm-torch TorchForce.

    Keyword arguments of createSystem / createMixedSystem (any other is an error):
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
        STATIC_PAIRS_MAX_ATOMS of them), as a graph replays fixed shapes;
      embedding (createMixedSystem): "mechanical" (default: the MM force field's fixed charges on the ML
        atoms act between ML and MM atoms) or "electrostatic" (the model's predicted charges do, through
        the model's own Coulomb kernel and lrCutoff, inside the TorchForce; the ML atoms' MM charges are
        zeroed; see openmm/embedding.py and model/embedding.py). With openmm-ml 1.7 the keyword reaches
        addForces; openmm-ml 1.8 asks getSupportedEmbeddings() and calls createMixedSystem();
      embeddingDamping (electrostatic embedding): None (default: point charges, 1/r, shifted-force to
        zero at lrCutoff) or a length σ (nm or Quantity): erf(r/σ)/r, the kernel of SO3LR's own
        electrostatics with σ = 0.4 nm. Point charges are the default because the damped kernel halves
        the water's pull on charged groups at hydrogen-bond distances (README, *Molecules in water*).

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

    def getSupportedEmbeddings(self) -> List[str]:
        """openmm-ml 1.8: embeddings this potential implements itself (mechanical is openmm-ml's)."""
        return ["electrostatic"]

    def createMixedSystem(self, topology: openmm.app.Topology, system: openmm.System, atoms: List[int],
                          forceGroup: int, interpolate: bool, embedding: str, returnInfo: bool = False, **args):
        """openmm-ml 1.8's entry for embedding="electrostatic": openmm-ml's mechanical embedding prepares the
        System (ML–ML terms removed), then addForces hands the ML–MM Coulomb to the model, as with 1.7."""
        from openmmml import MLPotential

        if interpolate:
            raise EmbeddingError(_NO_INTERPOLATION)
        mechanical = MLPotential._embeddingFactories["mechanical"].createEmbedding("mechanical")
        return mechanical.createMixedSystem(self, topology, system, atoms, forceGroup, False, returnInfo=returnInfo,
                                            embedding=embedding, **args)

    def addForces(self, topology: openmm.app.Topology, system: openmm.System, atoms: Optional[Iterable[int]],
                  forceGroup: int, precision: Optional[str] = None, returnForces: bool = True,
                  cudaGraphs: bool = False, charge: Optional[float] = None, multiplicity: Optional[int] = None,
                  lrCutoff=MODEL_DEFAULT, embedding: str = "mechanical", embeddingDamping=None, **args) -> None:
        from ..torchscript import configure_torchscript
        from .plugins import ensure_torch_plugins
        from .torchforce import EmbeddedMLEnergy, MLEnergy, make_torch_force

        refuse_unknown(self.name, args, OPTIONS + OPENMM_ML_OPTIONS)
        if args.get("mlLongRange") is not None:
            raise ValueError("mlLongRange: this model's interactions end at a finite cutoff (getMLLongRange() is False)")
        if cudaGraphs and embedding == "electrostatic":
            raise ValueError("cudaGraphs=True is not supported with embedding='electrostatic' yet (the ML-MM pair list "
                             "has a size that depends on the positions): use cudaGraphs=False")
        potential = load_model(self.modelPath)[0]
        electrostatic = self._check_embedding(embedding, topology, atoms, system, potential)
        damping = length_angstrom("embeddingDamping", embeddingDamping)
        if damping is not None and not electrostatic:
            raise ValueError("embeddingDamping is an option of embedding='electrostatic'")
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
        if atoms is not None and system.getNumParticles() == 0 and charge is None and self.info.config.takes_charge:
            raise ValueError(f"createMixedSystem(interpolate=True) does not show this potential the MM charges: give "
                             f"the ML atoms' total charge ({WHERE_CHARGE})")
        total_charge, unpaired = resolve_charge_and_spin(self.info, numbers, charge, multiplicity, mm_charge)

        dtype = self.info.torch_dtype(precision)
        potential = potential.to(dtype)
        periodic = topology.getPeriodicBoxVectors() is not None
        lr_cutoff = self._set_lr_cutoff(potential, lrCutoff, periodic)
        if cudaGraphs:
            self._use_static_pairs(potential, len(indices), topology, lr_cutoff)
        selected = None if atoms is None else indices
        if electrostatic:
            mm_indices, mm_charges = take_over_ml_coulomb(system, indices)
            coulomb = ElectrostaticEmbedding(damping or 0.0, lr_cutoff)
            energy = EmbeddedMLEnergy(potential, numbers, indices, periodic, dtype, total_charge, unpaired, mm_indices,
                                      mm_charges, coulomb)
        else:
            energy = MLEnergy(potential, numbers, selected, periodic, dtype, total_charge, unpaired)
        force = make_torch_force(energy, periodic, returnForces, cudaGraphs)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def _check_embedding(self, embedding: str, topology: openmm.app.Topology, atoms: Optional[Iterable[int]],
                         system: openmm.System, potential: torch.jit.ScriptModule) -> bool:
        """True for electrostatic embedding, after the checks that need no work."""
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding={embedding!r} is not one of {', '.join(EMBEDDINGS)}")
        if embedding == "mechanical":
            return False
        if atoms is None:
            raise ValueError("embedding='electrostatic' is an option of createMixedSystem (an ML region in an MM "
                             "system), not of createSystem")
        if system.getNumParticles() == 0:  # openmm-ml's interpolate=True hands addForces an empty System
            raise EmbeddingError(_NO_INTERPOLATION)
        if not self.info.config.electrostatic_energy:
            raise EmbeddingError(f"embedding='electrostatic' needs a model that predicts partial charges (SO3LR, a "
                                 f"fine-tuned SO3LR, or a model trained with long_range: true); {self.modelPath} has "
                                 f"no charge head: use embedding='mechanical'")
        if not hasattr(potential, "energy_and_charges"):
            raise EmbeddingError(f"{self.modelPath} was written before electrostatic embedding existed: write it again "
                                 f"from its checkpoint (`so3krates export`), or convert SO3LR again "
                                 f"(`so3krates import-so3lr`)")
        check_whole_molecules(topology, list(atoms))
        return True

    def _set_lr_cutoff(self, potential, value, periodic: bool) -> Optional[float]:
        """Apply lrCutoff to the loaded model; returns the long-range cutoff in Å (None: none)."""
        if not self.info.config.long_range:
            if value is not MODEL_DEFAULT:
                raise ValueError(f"lrCutoff: {self.modelPath} has no long-range terms (its only cutoff is "
                                 f"{self.info.config.cutoff} Å)")
            return None
        cutoff = self.info.config.lr_cutoff if value is MODEL_DEFAULT else length_angstrom("lrCutoff", value)
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
