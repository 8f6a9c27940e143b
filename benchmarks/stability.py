"""Stability of a trained model in MD: NVT (Langevin) at 300 K and 500 K for as long as the budget
allows, reporting whether the molecule stays intact (every bond between heavy atoms of the starting
structure within 1.5x its starting length) and which hydrogens end on another heavy atom (proton
transfers), then NVE energy drift per atom per ns.

    python benchmarks/stability.py --model runs/ethanol/model.pt --pdb examples/data/ethanol.pdb [--minutes 2]
    python benchmarks/stability.py --model so3lr --pdb python/so3krates/data/alanine-dipeptide.pdb
    python benchmarks/stability.py --model so3lr --pdb examples/data/chignolin.pdb --charge -2 [--water 1.0]

With --water PADDING_NM the molecule is the ML region of createMixedSystem in TIP3P water (Amber14),
and only its bonds are checked.
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


def bonded_pairs(positions_nm: np.ndarray, atoms: np.ndarray, heavy: np.ndarray) -> np.ndarray:
    """Pairs of heavy `atoms` closer than BOND_CUTOFF_ANGSTROM in the starting structure (the covalent
    skeleton; hydrogens are followed apart, as they may change partner)."""
    atoms = atoms[heavy[atoms]]
    sub = positions_nm[atoms]
    d = np.linalg.norm(sub[:, None] - sub[None], axis=-1) * 10.0
    i, j = np.nonzero(np.triu(d < BOND_CUTOFF_ANGSTROM, 1))
    return np.stack([atoms[i], atoms[j]], axis=1)


def bond_lengths(positions_nm: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions_nm[pairs[:, 0]] - positions_nm[pairs[:, 1]], axis=1)


def hydrogen_partners(positions_nm: np.ndarray, atoms: np.ndarray, heavy: np.ndarray) -> dict:
    """{hydrogen: the heavy atom nearest to it} among `atoms`."""
    hydrogens, heavies = atoms[~heavy[atoms]], atoms[heavy[atoms]]
    d = np.linalg.norm(positions_nm[hydrogens][:, None] - positions_nm[heavies][None], axis=-1)
    return dict(zip(hydrogens.tolist(), heavies[np.argmin(d, axis=1)].tolist()))


def run_nvt(system, positions, atoms: np.ndarray, heavy: np.ndarray, temperature: float, seconds: float,
            chunk: int = 100):
    """Langevin at `temperature` until the budget ends or a heavy-atom bond stretches past BOND_FACTOR
    -> (ps, largest heavy-atom bond stretch, intact, hydrogens bound to another heavy atom at the end
    {h: (start partner, end partner)}, context)."""
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, 1 / unit.picosecond,
                                                 0.5 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(positions)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, 1)
    start_positions = np.array(positions.value_in_unit(unit.nanometer))
    pairs = bonded_pairs(start_positions, atoms, heavy)
    reference = bond_lengths(start_positions, pairs)
    partners = hydrogen_partners(start_positions, atoms, heavy)
    worst, steps, start = 0.0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        integrator.step(chunk)
        steps += chunk
        pos = np.asarray(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        worst = max(worst, float(np.max(bond_lengths(pos, pairs) / reference)))
        if worst > BOND_FACTOR:
            break
    now = hydrogen_partners(pos, atoms, heavy)
    moved = {h: (partners[h], now[h]) for h in partners if now[h] != partners[h]}
    return steps * 0.5e-3, worst, worst <= BOND_FACTOR, moved, context


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
    parser.add_argument("--model", required=True, help="model file, or so3lr (the pretrained SO3LR)")
    parser.add_argument("--pdb", required=True)
    parser.add_argument("--minutes", type=float, default=2.0, help="budget per temperature and for NVE")
    parser.add_argument("--charge", type=float, default=None, help="total charge (e) of the molecule")
    parser.add_argument("--water", type=float, default=0.0, metavar="PADDING_NM",
                        help="solvate in TIP3P water with this padding (nm), the molecule as the ML region")
    args = parser.parse_args()
    pdb = app.PDBFile(args.pdb)
    potential = MLPotential("so3krates", modelPath=args.model)
    if args.water > 0:
        forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
        modeller = app.Modeller(pdb.topology, pdb.positions)
        modeller.addSolvent(forcefield, padding=args.water * unit.nanometer, model="tip3p")
        ml_atoms = list(range(pdb.topology.getNumAtoms()))
        mm_system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                            nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds)
        system = potential.createMixedSystem(modeller.topology, mm_system, ml_atoms, charge=args.charge)
        positions, topology = modeller.getPositions(), modeller.topology
        print(f"{pdb.topology.getNumAtoms()} ML atoms in {modeller.topology.getNumAtoms() - len(ml_atoms)} atoms of water")
    else:
        system = potential.createSystem(pdb.topology, charge=args.charge)
        positions, topology, ml_atoms = pdb.getPositions(), pdb.topology, list(range(pdb.topology.getNumAtoms()))
    labels = [f"{a.name} {a.residue.name}{a.residue.index + 1}" for a in topology.atoms()]
    heavy = np.array([a.element is not None and a.element.symbol != "H" for a in topology.atoms()])
    for temperature in (300.0, 500.0):
        ps, worst, intact, moved, context = run_nvt(system, positions, np.array(ml_atoms), heavy, temperature,
                                                    60 * args.minutes)
        transfers = "; ".join(f"{labels[h]} moved from {labels[a]} to {labels[b]}" for h, (a, b) in moved.items())
        print(f"NVT {temperature:.0f} K: {ps:.1f} ps, largest heavy-atom bond stretch {worst:.2f}x -> "
              f"{'intact' if intact else 'BROKEN'}; hydrogens on another atom at the end: {transfers or 'none'}")
        if temperature == 300.0:
            drift, ps_nve = nve_drift(context, 60 * args.minutes, system.getNumParticles())
            print(f"NVE after 300 K: {ps_nve:.1f} ps, drift {drift:+.3f} kJ/mol per atom per ns")


if __name__ == "__main__":
    main()
