"""Fine-tuning SO3LR against training from scratch, for one CPU budget, on shipped data:

  (a) SO3LR as it is, its per-element energies fitted to the training frames (no training);
  (b) SO3LR fine-tuned (`init_from: so3lr`, the fine-tuning defaults);
  (c) SO3krates from scratch (package defaults);

each scored on the same held-out frames by the same code. Data: 3BPA (300 K MD, ωB97X/6-31G(d): another
level of theory than SO3LR's PBE0+MBD) or QM7-X (PBE0+MBD, SO3LR's own level of theory; split by
molecule as in train_accuracy.py, so the test molecules are unseen by (b) and (c)).

    python benchmarks/finetune_accuracy.py [--data 3bpa|qm7x] [--minutes 10] [--train 400]
        [--output runs/finetune]
"""
import argparse
import json
from pathlib import Path

from train_accuracy import DATASETS, prepare, train_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["3bpa", "qm7x"], default="3bpa")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each training run")
    parser.add_argument("--train", help="training frames (QM7-X: molecules), a count or a fraction; "
                                        "default: train_accuracy.py's split")
    parser.add_argument("--output", default="runs/finetune")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="change the fine-tuning run")
    args = parser.parse_args()
    out = Path(args.output)
    train = [f"data.train={args.train}"] if args.train else []
    runs = {
        "SO3LR as is (energies fitted)": prepare(args.data, args.minutes, out / "so3lr",
                                                 train + ["init_from=so3lr", "optim.epochs=0"]),
        "SO3LR fine-tuned": prepare(args.data, args.minutes, out / "finetuned", train + ["init_from=so3lr", *args.set]),
        "SO3krates from scratch": prepare(args.data, args.minutes, out / "scratch", train),
    }
    results = {name: train_ours(trainer) for name, trainer in runs.items()}
    for run in results.values():
        run.pop("curve")
    (out / "results.json").write_text(json.dumps({"data": args.data, "minutes": args.minutes, "set": args.set,
                                                  "results": results}, indent=1))
    trainer = runs["SO3krates from scratch"]
    print(f"\n{DATASETS[args.data]['label']}, {len(trainer.split.train)} training frames, {args.minutes:g} min of "
          f"training each; {results['SO3LR fine-tuned']['metrics']['frames']} test frames")
    print(f"{'model':32s} {'epochs':>7s} {'E MAE (meV)':>12s} {'E MAE (meV/atom)':>17s} {'F MAE (meV/Å)':>14s}")
    for name, run in results.items():
        metrics = run["metrics"]
        print(f"{name:32s} {run['epochs']:7d} {metrics['energy_per_molecule']['mae_meV']:12.1f} "
              f"{metrics['energy_per_atom']['mae_meV']:17.2f} {metrics['forces']['mae_meV']:14.1f}")


if __name__ == "__main__":
    main()
