"""`so3krates md`: OpenMM molecular dynamics of a PDB with a model file."""
import argparse
from pathlib import Path

from ..md import ALANINE_DIPEPTIDE_PDB, build_simulation, run_md


def add_parser(sub) -> None:
    p = sub.add_parser("md", help="run OpenMM MD of a molecule with a model",
                       description="Langevin MD of the molecule in a PDB file with an SO3krates model, in "
                                   "vacuum or (--water) in a periodic box of water: TIP3P (Amber14) around the "
                                   "molecule as the ML region of openmm-ml's createMixedSystem (--embedding), or "
                                   "water described by the model too (--all-ml). Writes trajectory.dcd and "
                                   "energies.csv and prints the speed in ns/day.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="model file (.pt), or so3lr for the pretrained SO3LR")
    p.add_argument("--pdb", default=str(ALANINE_DIPEPTIDE_PDB), help="PDB file (default: alanine dipeptide)")
    p.add_argument("--water", type=float, default=0.0, metavar="PADDING_NM",
                   help="solvate with this much water padding (nm); 0 = vacuum")
    p.add_argument("--embedding", choices=["mechanical", "electrostatic"], default="mechanical",
                   help="with --water: ML/MM embedding; electrostatic uses the model's predicted charges between the "
                        "molecule and the water (models with a partial-charge head, e.g. so3lr)")
    p.add_argument("--all-ml", action="store_true",
                   help="with --water: the water is described by the model too (no MM; no counter-ions)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--friction", type=float, default=1.0, help="1/ps")
    p.add_argument("--platform", default="CPU", help="OpenMM platform (Reference, CPU, CUDA)")
    p.add_argument("--precision", choices=["single", "double"], default=None,
                   help="model precision (default: as stored in the model file)")
    p.add_argument("--charge", type=float, default=None,
                   help="total charge (e) of the ML molecule (default: from the MM force field with --water, else "
                        "the model's default, 0 for SO3LR; required by models trained with charges)")
    p.add_argument("--multiplicity", type=int, default=None, help="spin multiplicity (models with a spin input)")
    p.add_argument("--lr-cutoff", type=float, default=None, metavar="ANGSTROM",
                   help="cutoff of the long-range terms in Å (default: the model's, 12 Å for SO3LR)")
    p.add_argument("--no-lr-cutoff", action="store_true",
                   help="long-range terms over all pairs (plain Coulomb; vacuum only)")
    p.add_argument("--minimize", action="store_true", help="minimise the energy before MD")
    p.add_argument("--output", default="md_output", help="directory for trajectory.dcd and energies.csv")
    p.add_argument("--report-interval", type=int, default=100, help="steps between trajectory frames / log lines")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the model and OpenMM's CPU platform (default: OMP_NUM_THREADS, else the "
                        "cores this process may use); on a node shared with other jobs, give your share")


def run(args) -> int:
    import openmm.unit as unit

    from ..openmm import MODEL_DEFAULT
    from ..threads import use_threads

    if args.no_lr_cutoff and args.lr_cutoff is not None:
        raise ValueError("--lr-cutoff and --no-lr-cutoff exclude each other")
    if args.water <= 0 and (args.all_ml or args.embedding != "mechanical"):
        raise ValueError("--all-ml and --embedding describe the water: give --water PADDING_NM")
    if args.all_ml and args.embedding != "mechanical":
        raise ValueError("--all-ml has no ML/MM embedding: give either --all-ml or --embedding")
    lr_cutoff = None if args.no_lr_cutoff else (
        MODEL_DEFAULT if args.lr_cutoff is None else args.lr_cutoff * unit.angstrom)
    threads = use_threads(args.threads)
    simulation, ml_atoms = build_simulation(args.model, args.pdb, args.water, args.temperature, args.timestep,
                                            args.friction, args.platform, args.precision, args.seed, args.charge,
                                            args.multiplicity, lr_cutoff, threads,
                                            "all-ml" if args.all_ml else args.embedding)
    result = run_md(simulation, args.steps, args.timestep, len(ml_atoms), Path(args.output),
                    args.report_interval, args.minimize)
    print(f"{result.steps} steps of {args.timestep} fs, {result.num_atoms} atoms ({result.num_ml_atoms} ML) "
          f"on {args.platform}: {result.seconds:.1f} s, {result.ns_per_day:.3f} ns/day")
    print(f"final potential energy {result.final_potential_kJ_mol:.2f} kJ/mol; "
          f"trajectory {result.trajectory}, log {result.log}")
    return 0
