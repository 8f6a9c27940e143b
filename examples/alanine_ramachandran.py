"""Alanine dipeptide in vacuum with the pretrained SO3LR (or another model file): Langevin MD in
OpenMM, then a Ramachandran plot (φ, ψ) of the trajectory.

    python examples/alanine_ramachandran.py [--model so3lr] [--steps 20000] [--output runs/alanine]

Another model must know H, C, N, O (e.g. one trained on SPICE-style data; `so3krates init` writes an
untrained one whose dynamics are not physical but show the workflow).
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mdtraj  # noqa: E402
import numpy as np  # noqa: E402

from so3krates.md import ALANINE_DIPEPTIDE_PDB, build_simulation, run_md  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="so3lr", help="model file, or so3lr (the pretrained SO3LR)")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--report-interval", type=int, default=50)
    parser.add_argument("--minimize", action="store_true", help="minimise first (for trained models)")
    parser.add_argument("--output", default="runs/alanine")
    args = parser.parse_args()
    out = Path(args.output)
    simulation, ml_atoms = build_simulation(args.model, str(ALANINE_DIPEPTIDE_PDB))
    result = run_md(simulation, args.steps, 1.0, len(ml_atoms), out, args.report_interval, minimize=args.minimize)
    trajectory = mdtraj.load(str(result.trajectory), top=str(ALANINE_DIPEPTIDE_PDB))
    phi = np.degrees(mdtraj.compute_phi(trajectory)[1][:, 0])
    psi = np.degrees(mdtraj.compute_psi(trajectory)[1][:, 0])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(phi, psi, s=4, c=np.arange(len(phi)), cmap="viridis")
    ax.set(xlim=(-180, 180), ylim=(-180, 180), xlabel="φ (degrees)", ylabel="ψ (degrees)",
           title=f"alanine dipeptide, {args.steps} fs")
    fig.tight_layout()
    fig.savefig(out / "ramachandran.png", dpi=120)
    print(f"{len(phi)} frames, {result.ns_per_day:.2f} ns/day; wrote {out / 'ramachandran.png'}")


if __name__ == "__main__":
    main()
