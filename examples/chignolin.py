"""Chignolin (GYDPETGTWG, 138 atoms) in vacuum with the pretrained SO3LR (or another model file):
Langevin MD, then the radius of gyration and the end-to-end (Cα 1 – Cα 10) distance over time.
Starts from an extended chain (data/chignolin.pdb; zwitterionic, total charge −2 at pH 7).

    python examples/chignolin.py [--model so3lr] [--charge -2] [--steps 20000] [--output runs/chignolin]
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mdtraj  # noqa: E402
import numpy as np  # noqa: E402

from so3krates.md import build_simulation, run_md  # noqa: E402

PDB = Path(__file__).with_name("data") / "chignolin.pdb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="so3lr", help="model file, or so3lr (the pretrained SO3LR)")
    parser.add_argument("--charge", type=float, default=-2.0,
                        help="total charge of this structure (0 for models without a charge input)")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--report-interval", type=int, default=100)
    parser.add_argument("--minimize", action="store_true", help="minimise first (for trained models)")
    parser.add_argument("--output", default="runs/chignolin")
    args = parser.parse_args()
    out = Path(args.output)
    simulation, ml_atoms = build_simulation(args.model, str(PDB), charge=args.charge)
    result = run_md(simulation, args.steps, 1.0, len(ml_atoms), out, args.report_interval, minimize=args.minimize)
    trajectory = mdtraj.load(str(result.trajectory), top=str(PDB))
    time_ps = np.arange(1, trajectory.n_frames + 1) * args.report_interval / 1000.0
    ca = trajectory.topology.select("name CA")
    end_to_end = 10 * np.linalg.norm(trajectory.xyz[:, ca[-1]] - trajectory.xyz[:, ca[0]], axis=1)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(time_ps, 10 * mdtraj.compute_rg(trajectory), label="radius of gyration")
    ax.plot(time_ps, end_to_end, label="Cα1–Cα10 distance")
    ax.set(xlabel="time (ps)", ylabel="Å", title="chignolin in vacuum")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "chignolin.png", dpi=120)
    print(f"{trajectory.n_frames} frames, {result.ns_per_day:.2f} ns/day; wrote {out / 'chignolin.png'}")


if __name__ == "__main__":
    main()
