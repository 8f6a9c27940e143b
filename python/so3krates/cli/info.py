"""`so3krates info MODEL`: print a model file's metadata."""
import json

from ..elements import symbol
from ..model_file import load_model


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="print a model file's metadata",
                       description="Check a model file and print what it holds: elements, cutoff, "
                                   "hyperparameters, per-element energies, training data, versions.")
    p.add_argument("model", help="model file (.pt), or so3lr for the pretrained SO3LR shipped with the package")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")


def run(args) -> int:
    module, info = load_model(args.model)  # a path, or "so3lr"
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    n_weights = sum(p.numel() for p in module.parameters())
    print(f"model file      {args.model}")
    print(f"written by      openmm-so3krates {info.package_version} (format {info.format_version}) on {info.created}")
    runs_in = info.default_precision or {"float32": "single", "float64": "double"}.get(info.dtype, info.dtype)
    print(f"precision       stored in {info.dtype}, runs in {runs_in} by default; units Å, eV inside the model; "
          f"{n_weights} weights")
    print(f"elements        {' '.join(symbol(z) for z in info.elements)}")
    config = info.config
    long_range = (f"; long-range terms ({', '.join(n for n, on in (('electrostatics', config.electrostatic_energy), ('dispersion', config.dispersion_energy)) if on)}) "
                  f"to {config.lr_cutoff} Å" if config.long_range else "")
    print(f"cutoff          {info.cutoff_angstrom} Å{long_range}{'; ZBL repulsion' if config.zbl_repulsion else ''}")
    inputs = [name for name, on in (("total charge", config.takes_charge),
                                    ("spin multiplicity", config.use_spin_embed)) if on]
    if inputs:
        default = "required" if info.default_charge is None else f"default charge {info.default_charge:g} e"
        print(f"inputs          {' and '.join(inputs)} ({default})")
    print("hyperparameters " + ", ".join(f"{k}={v}" for k, v in info.config.to_dict().items() if k != "elements"))
    print("atomic energies " + ", ".join(f"{symbol(z)} {e:.6f} eV" for z, e in info.atomic_energies_eV.items()))
    print(f"training data   {json.dumps(info.training_data) if info.training_data else 'none (untrained model)'}")
    return 0
