"""`so3krates info MODEL`: print a model file's metadata."""
import json

from ..elements import symbol
from ..model_file import load_model


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="print a model file's metadata",
                       description="Check a model file and print what it holds: elements, cutoff, "
                                   "hyperparameters, per-element energies, training data, versions.")
    p.add_argument("model", help="model file (.pt)")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")


def run(args) -> int:
    module, info = load_model(args.model)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    n_weights = sum(p.numel() for p in module.parameters())
    print(f"model file      {args.model}")
    print(f"written by      openmm-so3krates {info.package_version} (format {info.format_version}) on {info.created}")
    print(f"precision       {info.dtype}; units Å, eV inside the model; {n_weights} weights")
    print(f"elements        {' '.join(symbol(z) for z in info.elements)}")
    print(f"cutoff          {info.cutoff_angstrom} Å")
    print("hyperparameters " + ", ".join(f"{k}={v}" for k, v in info.config.to_dict().items() if k != "elements"))
    print("atomic energies " + ", ".join(f"{symbol(z)} {e:.6f} eV" for z, e in info.atomic_energies_eV.items()))
    print(f"training data   {json.dumps(info.training_data) if info.training_data else 'none (untrained model)'}")
    return 0
