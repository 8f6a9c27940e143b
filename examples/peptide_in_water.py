"""Alanine dipeptide in water with the pretrained SO3LR (or another model file): Langevin MD, then
the potential energy over time and the radial distribution of water oxygens around the peptide's
heavy atoms. --water says how the water is described: TIP3P (Amber14) with the peptide as the ML
region of openmm-ml's createMixedSystem, with the model's own predicted charges acting on the water
(`electrostatic`, the default; needs a model with a partial-charge head such as SO3LR) or the MM
charges (`mechanical`), or the water described by the model too (`all-ml`, slow on a CPU).

    python examples/peptide_in_water.py [--model so3lr] [--water electrostatic] [--steps 5000] [--output runs/water]
"""
import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mdtraj  # noqa: E402
import openmm.app as app  # noqa: E402

from so3krates.md import ALANINE_DIPEPTIDE_PDB, WATER_MODELS, build_simulation, run_md  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="so3lr", help="model file, or so3lr (the pretrained SO3LR)")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--report-interval", type=int, default=50)
    parser.add_argument("--padding", type=float, default=1.0, help="water padding (nm)")
    parser.add_argument("--water", choices=sorted(WATER_MODELS), default="electrostatic",
                        help="how the water is described (so3krates.md.WATER_MODELS)")
    parser.add_argument("--minimize", action="store_true", help="minimise first (for trained models)")
    parser.add_argument("--output", default="runs/water")
    args = parser.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    simulation, ml_atoms = build_simulation(args.model, str(ALANINE_DIPEPTIDE_PDB), water_padding_nm=args.padding,
                                            water=args.water)
    topology_file = out / "solvated.pdb"
    state = simulation.context.getState(getPositions=True)
    with open(topology_file, "w") as handle:
        app.PDBFile.writeFile(simulation.topology, state.getPositions(), handle)
    result = run_md(simulation, args.steps, 1.0, len(ml_atoms), out, args.report_interval, minimize=args.minimize)

    with open(result.log) as handle:
        rows = list(csv.DictReader(handle))
    time_ps = [float(r["Time (ps)"]) for r in rows]
    energy = [float(r["Potential Energy (kJ/mole)"]) for r in rows]
    trajectory = mdtraj.load(str(result.trajectory), top=str(topology_file))
    peptide = trajectory.topology.select("not water and not element H")
    oxygens = trajectory.topology.select("water and element O")
    pairs = trajectory.topology.select_pairs(peptide, oxygens)
    r, g = mdtraj.compute_rdf(trajectory, pairs, r_range=(0.2, 0.9), n_bins=70)

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(time_ps, energy)
    left.set(xlabel="time (ps)", ylabel="potential energy (kJ/mol)", title=f"peptide in water ({args.water})")
    right.plot(10 * r, g)
    right.set(xlabel="distance (Å)", ylabel="g(r)", title="water O around peptide heavy atoms")
    fig.tight_layout()
    fig.savefig(out / "water.png", dpi=120)
    print(f"{result.num_atoms} atoms ({result.num_ml_atoms} ML), {result.ns_per_day:.3f} ns/day; "
          f"wrote {out / 'water.png'}")


if __name__ == "__main__":
    main()
