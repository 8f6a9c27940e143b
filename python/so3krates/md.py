"""Running OpenMM molecular dynamics with a model file: vacuum, or the molecule in MM water."""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import openmm
import openmm.app as app
import openmm.unit as unit
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from .openmm import MODEL_DEFAULT
from .so3lr import NAME as SO3LR_NAME
from .so3lr import PACKAGED_MODEL, resolve_model_path

ALANINE_DIPEPTIDE_PDB = Path(__file__).parent / "data" / "alanine-dipeptide.pdb"
WATER_RESIDUES = {"HOH", "WAT", "TIP3"}
MM_CUTOFF_NM = 0.9
MIN_WATER_PADDING_NM = 1.0


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


def ml_atom_indices(topology: app.Topology) -> List[int]:
    """Indices of the atoms that are not water."""
    return [a.index for a in topology.atoms() if a.residue.name not in WATER_RESIDUES]


def build_simulation(model_path: str, pdb_path: str, water_padding_nm: float = 0.0, temperature_K: float = 300.0,
                     timestep_fs: float = 1.0, friction_per_ps: float = 1.0, platform: str = "CPU",
                     precision: Optional[str] = None, seed: int = 0, charge: Optional[float] = None,
                     multiplicity: Optional[int] = None, lr_cutoff=MODEL_DEFAULT, threads: Optional[int] = None):
    """Simulation of the PDB's molecule with the ML model (a file, or "so3lr"): in vacuum, or
    (water_padding_nm > 0) as the ML region of createMixedSystem inside a box of TIP3P water described
    by Amber14. charge, multiplicity and lr_cutoff (nm, Quantity or None) as in createSystem; `threads`:
    CPU threads for torch and OpenMM's CPU platform (None: OMP_NUM_THREADS or the affinity mask).
    Returns (simulation, ML atom indices)."""
    from openmmml import MLPotential

    if 0 < water_padding_nm < MIN_WATER_PADDING_NM:
        raise ValueError(f"water padding {water_padding_nm} nm is too small: use at least {MIN_WATER_PADDING_NM} nm "
                         f"so that the box is wider than twice the {MM_CUTOFF_NM} nm MM cutoff")
    pdb = app.PDBFile(str(pdb_path))
    if resolve_model_path(model_path) == PACKAGED_MODEL:
        potential = MLPotential(SO3LR_NAME)
    else:
        potential = MLPotential("so3krates", modelPath=str(model_path))
    options = dict(precision=precision, charge=charge, multiplicity=multiplicity, lrCutoff=lr_cutoff)
    if water_padding_nm > 0:
        forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
        modeller = app.Modeller(pdb.topology, pdb.positions)
        modeller.addSolvent(forcefield, padding=water_padding_nm * unit.nanometer, model="tip3p")
        topology, positions = modeller.topology, modeller.positions
        ml_atoms = ml_atom_indices(topology)
        mm_system = forcefield.createSystem(topology, nonbondedMethod=app.PME,
                                            nonbondedCutoff=MM_CUTOFF_NM * unit.nanometer, constraints=app.HBonds)
        system = potential.createMixedSystem(topology, mm_system, ml_atoms, **options)
    else:
        topology, positions = pdb.topology, pdb.positions
        ml_atoms = list(range(topology.getNumAtoms()))
        system = potential.createSystem(topology, **options)
    integrator = openmm.LangevinMiddleIntegrator(temperature_K * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    properties = {"Threads": str(threads)} if threads is not None and platform == "CPU" else {}
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    simulation.context.setPositions(positions)
    simulation.context.setVelocitiesToTemperature(temperature_K * unit.kelvin, seed)
    return simulation, ml_atoms


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
