"""Stability of a trained model in MD: NVT (Langevin) at 300 K and 500 K for as long as the budget
allows, reporting whether the molecule stays intact (every bond of the starting structure within
1.5x its starting length), then NVE energy drift per atom per ns.

    python benchmarks/stability.py --model runs/ethanol/model.pt --pdb examples/data/ethanol.pdb [--minutes 2]
"""
import argparse
import time

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
from openmmml import MLPotential

BOND_FACTOR = 1.5
BOND_CUTOFF_ANGSTROM = 1.7  # atoms closer than this in the starting structure count as bonded


def bonded_pairs(positions_nm: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(positions_nm[:, None] - positions_nm[None], axis=-1) * 10.0
    i, j = np.nonzero(np.triu(d < BOND_CUTOFF_ANGSTROM, 1))
    return np.stack([i, j], axis=1)


def bond_lengths(positions_nm: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions_nm[pairs[:, 0]] - positions_nm[pairs[:, 1]], axis=1)


def run_nvt(system, pdb, temperature: float, seconds: float, chunk: int = 100):
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, 1 / unit.picosecond,
                                                 0.5 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(pdb.positions)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, 1)
    start_positions = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    pairs = bonded_pairs(start_positions)
    reference = bond_lengths(start_positions, pairs)
    worst, steps, start = 0.0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        integrator.step(chunk)
        steps += chunk
        pos = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        worst = max(worst, float(np.max(bond_lengths(np.asarray(pos), pairs) / reference)))
        if worst > BOND_FACTOR:
            break
    return steps * 0.5e-3, worst, worst <= BOND_FACTOR, context


def nve_drift(context, seconds: float, n_atoms: int, chunk: int = 100):
    integrator = openmm.VerletIntegrator(0.5 * unit.femtosecond)
    state = context.getState(getPositions=True, getVelocities=True)
    nve = openmm.Context(context.getSystem(), integrator, openmm.Platform.getPlatformByName("CPU"))
    nve.setPositions(state.getPositions())
    nve.setVelocities(state.getVelocities())
    times, totals, start = [], [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        integrator.step(chunk)
        s = nve.getState(getEnergy=True)
        times.append(s.getTime().value_in_unit(unit.nanosecond))
        totals.append((s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
    return np.polyfit(times, totals, 1)[0] / n_atoms, times[-1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--pdb", required=True)
    parser.add_argument("--minutes", type=float, default=2.0, help="budget per temperature and for NVE")
    parser.add_argument("--charge", type=float, default=None)
    args = parser.parse_args()
    pdb = app.PDBFile(args.pdb)
    system = MLPotential("so3krates", modelPath=args.model).createSystem(pdb.topology, charge=args.charge)
    for temperature in (300.0, 500.0):
        ps, worst, intact, context = run_nvt(system, pdb, temperature, 60 * args.minutes)
        print(f"NVT {temperature:.0f} K: {ps:.1f} ps, largest bond stretch {worst:.2f}x -> "
              f"{'intact' if intact else 'BROKEN'}")
        if temperature == 300.0:
            drift, ps_nve = nve_drift(context, 60 * args.minutes, system.getNumParticles())
            print(f"NVE after 300 K: {ps_nve:.1f} ps, drift {drift:+.3f} kJ/mol per atom per ns")


if __name__ == "__main__":
    main()
