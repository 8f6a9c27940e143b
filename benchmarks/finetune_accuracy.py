"""Fine-tuning SO3LR against training from scratch, for one CPU budget, on the shipped 3BPA data
(300 K MD, ωB97X/6-31G(d): another level of theory than SO3LR's PBE0+MBD):

  (a) SO3LR as it is, its per-element energies fitted to the training frames (no training);
  (b) SO3LR fine-tuned (`init_from: so3lr`, the fine-tuning defaults);
  (c) SO3krates from scratch (package defaults);

each scored on the same held-out frames by the same code.

    python benchmarks/finetune_accuracy.py [--minutes 10] [--train 400] [--output runs/finetune]
"""
import argparse
import json
from pathlib import Path

from train_accuracy import DATASETS, prepare, train_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each training run")
    parser.add_argument("--train", type=int, default=DATASETS["3bpa"]["split"][0], help="training frames")
    parser.add_argument("--output", default="runs/finetune")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="change the fine-tuning run")
    args = parser.parse_args()
    out = Path(args.output)
    train = [f"data.train={args.train}"]
    runs = {
        "SO3LR as is (energies fitted)": prepare("3bpa", args.minutes, out / "so3lr", train + ["init_from=so3lr",
                                                                                             "optim.epochs=0"]),
        "SO3LR fine-tuned": prepare("3bpa", args.minutes, out / "finetuned", train + ["init_from=so3lr", *args.set]),
        "SO3krates from scratch": prepare("3bpa", args.minutes, out / "scratch", train),
    }
    results = {name: train_ours(trainer) for name, trainer in runs.items()}
    for run in results.values():
        run.pop("curve")
    (out / "results.json").write_text(json.dumps({"minutes": args.minutes, "set": args.set, "results": results},
                                                 indent=1))
    print(f"\n3BPA 300 K, {args.train} training frames, {args.minutes:g} min of training each; "
          f"{results['SO3LR fine-tuned']['metrics']['frames']} test frames")
    print(f"{'model':32s} {'epochs':>7s} {'E MAE (meV)':>12s} {'F MAE (meV/Å)':>14s}")
    for name, run in results.items():
        metrics = run["metrics"]
        print(f"{name:32s} {run['epochs']:7d} {metrics['energy_per_molecule']['mae_meV']:12.1f} "
              f"{metrics['forces']['mae_meV']:14.1f}")


if __name__ == "__main__":
    main()
