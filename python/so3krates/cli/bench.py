"""`so3krates bench`: speed of SO3krates and its peers in OpenMM, side by side in one run."""
import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="ms/step and ns/day of SO3krates and SO3LR (and MACE-OFF23, TensorNet, "
                                     "so3krates-torch) in OpenMM",
                       description="Times SO3krates at the paper's default and a small size and the pretrained SO3LR, "
                                   "and, given a Python environment with mace-torch, torchmd-net and so3krates-torch "
                                   "(--peer-python), MACE with the MACE-OFF23 small and medium architectures and "
                                   "TensorNet (128 channels, 2 layers) through openmm-ml, and so3krates-torch's SO3LR "
                                   "through its ASE calculator (energy and forces per step), on alanine dipeptide in vacuum, "
                                   "the same peptide as the ML region in TIP3P water, and an all-ML water box. "
                                   "Every case runs in its own process; rounds alternate the cases. Weights are "
                                   "random, except SO3LR's: speed does not depend on their values.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--peer-python", default=None,
                   help="python of a virtual environment with mace-torch, torchmd-net, so3krates-torch, openmm, "
                        "openmm-torch, openmm-ml (see benchmarks/setup_peers.sh)")
    p.add_argument("--systems", default="alanine,alanine-water,water")
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds; the fastest counts")
    p.add_argument("--steps", type=int, default=20, help="timed steps for the small systems")
    p.add_argument("--water-steps", type=int, default=3, help="timed steps for the water box")
    p.add_argument("--water-nm", type=float, default=2.2, help="edge of the all-ML water box (2.2 nm: ~1,000 atoms)")
    p.add_argument("--platform", default="CPU",
                   help="OpenMM platform; with CUDA our model runs in CUDA graphs up to 512 ML atoms")
    p.add_argument("--cases", default="so3krates,so3lr,peers",
                   help="which cases: so3krates (our two sizes), so3lr (ours, and so3krates-torch's with "
                        "--peer-python), peers (MACE-OFF23, TensorNet; need --peer-python)")
    p.add_argument("--json", default=None, help="write all results to this file")
    p.add_argument("--scaling", default=None, metavar="PNG",
                   help="also time water boxes from ~100 atoms up and plot ms/step against atoms")
    p.add_argument("--scaling-max-nm", type=float, default=4.65,
                   help="largest water box edge for --scaling (4.65 nm: ~10,000 atoms, ~6 GB and 3-4 s "
                        "per step on 2 CPU cores)")


def run(args) -> int:
    import json

    from ..bench.driver import benchmark, scaling, scaling_plot, table

    systems = args.systems.split(",")
    steps = {s: (args.water_steps if s == "water" else args.steps) for s in systems}
    from ..bench.driver import CASE_GROUPS

    groups = args.cases.split(",")
    unknown = sorted(set(groups) - set(CASE_GROUPS))
    if unknown:
        raise ValueError(f"--cases: unknown {unknown}; choose from {list(CASE_GROUPS)}")
    best = benchmark(args.peer_python, systems, args.repeats, steps, args.platform, args.water_nm, groups=groups)
    print(table(best, systems))
    if args.scaling:
        edges = [e for e in (1.0, 1.45, 2.15, 3.1, 4.65) if e <= args.scaling_max_nm]
        curves = scaling(edges, 2, args.platform)
        exponents = scaling_plot(curves, args.scaling, args.platform)
        for label, results in curves.items():
            print(f"\nscaling ({label}, water): " + ", ".join(
                f"{r['atoms']} atoms {r['ms_per_step']:.0f} ms ({r['peak_memory_MB']:.0f} MB)" for r in results)
                + f"; fitted exponent {exponents[label]:.2f}")
        best["scaling"] = curves
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(best, handle, indent=1)
    return 0
