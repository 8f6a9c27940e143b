"""`so3krates import-so3lr PARAMS.pkl -o so3lr.pt`: convert SO3LR's reference parameters (no JAX needed)."""
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("import-so3lr", help="convert SO3LR's params.pkl into a model file",
                       description="Convert the parameters of the pretrained SO3LR force field (params.pkl of "
                                   "github.com/general-molecular-simulations/so3lr, MIT licence; a pickle of numpy "
                                   "arrays) into an openmm-so3krates model file. The converted SO3LR ships with this "
                                   "package (MLPotential('so3lr'), --model so3lr): this command is for checking "
                                   "that conversion or converting another copy of the same architecture.")
    p.add_argument("params", help="SO3LR params.pkl (hyperparameters.json beside it, if present, is checked)")
    p.add_argument("-o", "--output", default="so3lr.pt", help="model file to write")
    p.add_argument("--precision", choices=["single", "double"], default="single",
                   help="precision to run in by default (the file stores the float32 weights exactly, in float64, "
                        "so that double-precision runs are exact too)")


def run(args) -> int:
    import torch

    from ..model_file import save_model
    from ..so3lr import SOURCE, import_so3lr

    potential = import_so3lr(Path(args.params)).to(torch.float64)
    info = save_model(potential, args.output, training_data=SOURCE, default_charge=0.0,
                      default_precision=args.precision)
    print(f"wrote {args.output}: SO3LR (runs in {args.precision} precision by default; elements H C N O F P S Cl, "
          f"short-range cutoff {info.config.cutoff} Å, long-range cutoff {info.config.lr_cutoff} Å)")
    return 0
