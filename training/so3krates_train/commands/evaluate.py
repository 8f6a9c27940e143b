"""`so3krates eval MODEL DATA`."""


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="error metrics of a model on a data file",
                       description="Energy MAE/RMSE per molecule and per atom, force-component MAE/RMSE, "
                                   "per-element force MAE and per-subset errors (meV and kcal/mol).")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--format", default=None, help="data format (default: detect)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, e.g. energy_unit=kcal/mol (repeatable)")
    p.add_argument("--frames", default=None, help="JSON split file and part, e.g. runs/x/split.json:test")
    p.add_argument("--json", default=None, help="write the metrics to this JSON file")
    p.add_argument("--plots", default=None, help="directory for parity plots and error histograms")


def run(args) -> int:
    import json
    from pathlib import Path

    from so3krates.model_file import load_model

    from ..config import parse_yaml
    from ..data import read_frames
    from ..evaluate import evaluate_model

    options = dict(item.split("=", 1) for item in args.option)
    frames = read_frames(args.data, args.format, **{k: parse_yaml(v) for k, v in options.items()})
    if args.frames:
        split_file, part = args.frames.rsplit(":", 1)
        frames = frames.select(json.loads(Path(split_file).read_text())[part])
    potential, info = load_model(args.model)
    metrics = evaluate_model(potential, info.elements, frames, Path(args.json) if args.json else None,
                             Path(args.plots) if args.plots else None)
    e, ea, f = metrics["energy_per_molecule"], metrics["energy_per_atom"], metrics["forces"]
    print(f"{metrics['frames']} frames")
    print(f"energy  MAE {e['mae_meV']:.2f} meV ({e['mae_kcal_mol']:.3f} kcal/mol), RMSE {e['rmse_meV']:.2f} meV; "
          f"per atom MAE {ea['mae_meV']:.3f} meV")
    print(f"forces  MAE {f['mae_meV']:.2f} meV/Å ({f['mae_kcal_mol']:.3f} kcal/mol/Å), RMSE {f['rmse_meV']:.2f} meV/Å")
    print("force MAE by element: " + ", ".join(f"{k} {v:.1f}" for k, v in metrics["force_mae_meV_A_by_element"].items())
          + " meV/Å")
    for name, label, unit in (("dipole_e_angstrom", "dipole ", "e·Å (components)"), ("partial_charges_e", "charges", "e")):
        if name in metrics:
            m = metrics[name]
            print(f"{label} MAE {m['mae']:.4f} {unit}, RMSE {m['rmse']:.4f} ({m['labels']} labels)")
    for subset, values in metrics.get("by_subset", {}).items():
        print(f"  {subset}: {values}")
    return 0
