"""Running OpenMM molecular dynamics with a model file: vacuum, or the molecule in water (ML/MM or all-ML)."""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import openmm
import openmm.app as app
import openmm.unit as unit
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from .openmm import MODEL_DEFAULT
from .so3lr import NAME as SO3LR_NAME
from .so3lr import PACKAGED_MODEL, resolve_model_path

ALANINE_DIPEPTIDE_PDB = Path(__file__).parent / "data" / "alanine-dipeptide.pdb"
MM_CUTOFF_NM = 0.9
MIN_WATER_PADDING_NM = 1.0
# how the water around a molecule is described
WATER_MODELS = {"mechanical": "TIP3P (Amber14); ML/MM with the MM charges on the ML atoms (mechanical embedding)",
                "electrostatic": "TIP3P (Amber14); ML/MM with the model's charges on the ML atoms (electrostatic "
                                 "embedding)",
                "all-ml": "molecule and water both with the ML model, periodic"}


@dataclass
class MDResult:
    """What an MD run produced and how fast it ran."""

    steps: int
    num_atoms: int
    num_ml_atoms: int
    seconds: float
    ns_per_day: float
    final_potential_kJ_mol: float
    trajectory: Optional[Path]
    log: Optional[Path]


@dataclass
class MolecularSystem:
    """An OpenMM System of a PDB's molecule with an ML model, and where its ML atoms are."""

    topology: app.Topology
    positions: unit.Quantity
    system: openmm.System
    ml_atoms: List[int]


def make_system(model_path: str, pdb_path: str, water_padding_nm: float = 0.0, water: str = "mechanical",
                **options) -> MolecularSystem:
    """The PDB's molecule with the ML model (a file, or "so3lr"): in vacuum (water_padding_nm = 0), or in a
    box of TIP3P water with that padding, described as `water` says (WATER_MODELS; counter-ions for
    ML/MM, none for all-ML: ML models rarely have their elements). `options`: createSystem's keyword
    arguments (charge, multiplicity, precision, lrCutoff); in water the molecule's charge defaults to
    the sum of its Amber14 charges."""
    if water not in WATER_MODELS:
        raise ValueError(f"water={water!r} is not one of {', '.join(WATER_MODELS)}")
    pdb = app.PDBFile(str(pdb_path))
    solute = list(range(pdb.topology.getNumAtoms()))
    if water_padding_nm <= 0:
        system = ml_potential(model_path).createSystem(pdb.topology, **options)
        return MolecularSystem(pdb.topology, pdb.positions, system, solute)
    if water != "all-ml" and water_padding_nm < MIN_WATER_PADDING_NM:
        raise ValueError(f"water padding {water_padding_nm} nm is too small for ML/MM: use at least "
                         f"{MIN_WATER_PADDING_NM} nm so that the box is wider than twice the {MM_CUTOFF_NM} nm MM cutoff")
    modeller, mm_system = solvate(pdb, water_padding_nm, neutralize=water != "all-ml")
    return in_water(model_path, modeller.topology, modeller.positions, solute, mm_system, water, **options)


def ml_potential(model_path: str):
    """openmm-ml's MLPotential for a model file, or for "so3lr"."""
    from openmmml import MLPotential

    path = resolve_model_path(model_path)
    return MLPotential(SO3LR_NAME) if path == PACKAGED_MODEL else MLPotential("so3krates", modelPath=str(path))


def solvate(pdb: app.PDBFile, padding_nm: float, neutralize: bool = True) -> Tuple[app.Modeller, openmm.System]:
    """The PDB's molecule in a box of TIP3P water (`padding_nm` on every side; Na+/Cl- to neutralise
    if asked) and its Amber14/TIP3P System (PME, hydrogen bonds constrained)."""
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(forcefield, padding=padding_nm * unit.nanometer, model="tip3p", neutralize=neutralize)
    mm_system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                        nonbondedCutoff=MM_CUTOFF_NM * unit.nanometer, constraints=app.HBonds)
    return modeller, mm_system


def in_water(model_path: str, topology: app.Topology, positions, solute: List[int], mm_system: openmm.System,
             water: str, **options) -> MolecularSystem:
    """A solvated molecule (`solute`: its atoms) with the ML model: as the ML region of createMixedSystem
    in the MM system (water "mechanical" or "electrostatic": the embedding), or with the water too
    ("all-ml"; the MM system then only gives the molecule's charge)."""
    potential = ml_potential(model_path)
    if water == "all-ml":
        charge = solute_charge(model_path, topology, solute, mm_system, options.get("charge"),
                               options.get("multiplicity"))
        system = potential.createSystem(topology, **{**options, "charge": charge})
        return MolecularSystem(topology, positions, system, list(range(topology.getNumAtoms())))
    system = potential.createMixedSystem(topology, mm_system, solute, embedding=water, **options)
    return MolecularSystem(topology, positions, system, solute)


def solute_charge(model_path: str, topology: app.Topology, solute: List[int], mm_system: openmm.System,
                  charge: Optional[float], multiplicity: Optional[int]) -> float:
    """The solute's total charge for an all-ML box: as given, checked against (or else taken from) the
    solute's MM charges, as createMixedSystem does for an ML region."""
    from .electrons import resolve_charge_and_spin
    from .model_file import load_model
    from .openmm.potential import mm_charge_of

    atoms = list(topology.atoms())
    numbers = [atoms[i].element.atomic_number for i in solute]
    return resolve_charge_and_spin(load_model(model_path)[1], numbers, charge, multiplicity,
                                   mm_charge_of(mm_system, solute))[0]


def build_simulation(model_path: str, pdb_path: str, water_padding_nm: float = 0.0, temperature_K: float = 300.0,
                     timestep_fs: float = 1.0, friction_per_ps: float = 1.0, platform: str = "CPU",
                     precision: Optional[str] = None, seed: int = 0, charge: Optional[float] = None,
                     multiplicity: Optional[int] = None, lr_cutoff=MODEL_DEFAULT, threads: Optional[int] = None,
                     water: str = "mechanical"):
    """Langevin Simulation of make_system's System (`water`: how the water is described, see
    WATER_MODELS). charge, multiplicity and lr_cutoff (nm, Quantity or None) as in createSystem;
    `threads`: CPU threads for torch and OpenMM's CPU platform (None: OMP_NUM_THREADS or the affinity
    mask). Returns (simulation, ML atom indices)."""
    made = make_system(model_path, pdb_path, water_padding_nm, water, precision=precision, charge=charge,
                       multiplicity=multiplicity, lrCutoff=lr_cutoff)
    integrator = openmm.LangevinMiddleIntegrator(temperature_K * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    properties = {"Threads": str(threads)} if threads is not None and platform == "CPU" else {}
    simulation = app.Simulation(made.topology, made.system, integrator, openmm.Platform.getPlatformByName(platform),
                                properties)
    simulation.context.setPositions(made.positions)
    simulation.context.setVelocitiesToTemperature(temperature_K * unit.kelvin, seed)
    return simulation, made.ml_atoms


def run_md(simulation: app.Simulation, steps: int, timestep_fs: float, num_ml_atoms: int,
           output_dir: Optional[Path] = None, report_interval: int = 100, minimize: bool = False,
           show_progress: bool = True) -> MDResult:
    """Run `steps` steps with a progress bar; write a DCD trajectory and a CSV energy log into
    `output_dir` (if given); time only the dynamics for ns/day."""
    trajectory = log = None
    if minimize:
        simulation.minimizeEnergy(maxIterations=200)
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        trajectory, log = output_dir / "trajectory.dcd", output_dir / "energies.csv"
        simulation.reporters.append(app.DCDReporter(str(trajectory), report_interval))
        simulation.reporters.append(app.StateDataReporter(
            str(log), report_interval, step=True, time=True, potentialEnergy=True, kineticEnergy=True,
            totalEnergy=True, temperature=True, speed=True))
    chunk = max(1, min(report_interval, steps))
    done = 0
    start = time.perf_counter()
    with Progress(TextColumn("[bold]MD"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TimeRemainingColumn(), disable=not show_progress) as progress:
        task = progress.add_task("md", total=steps)
        while done < steps:
            n = min(chunk, steps - done)
            simulation.step(n)
            done += n
            progress.update(task, completed=done)
    seconds = time.perf_counter() - start
    energy = simulation.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    ns_per_day = steps * timestep_fs * 1e-6 / seconds * 86400.0 if seconds > 0 else float("inf")
    return MDResult(steps=steps, num_atoms=simulation.topology.getNumAtoms(), num_ml_atoms=num_ml_atoms,
                    seconds=seconds, ns_per_day=ns_per_day, final_potential_kJ_mol=energy,
                    trajectory=trajectory, log=log)
