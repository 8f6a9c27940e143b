"""Accuracy within a fixed CPU budget: train SO3krates on the shipped rMD17 ethanol frames, evaluate
on held-out frames, and print the errors next to published numbers for the same molecule.

    python benchmarks/train_accuracy.py [--minutes 10] [--features 128] [--output runs/bench_ethanol]

Published reference (not rerun here): MACE, Batatia et al., NeurIPS 2022, Table 1, rMD17 ethanol
trained on 950 configurations: energy MAE 0.4 meV, force MAE 2.1 meV/Å. Our run trains on 800 of the
1000 shipped frames for a CPU budget of minutes, so it measures how far a short run gets, not the
architecture's limit.
"""
import argparse
import json
from pathlib import Path

from so3krates.model_file import load_model
from so3krates_train.config import load_config
from so3krates_train.evaluate import error_metrics, predict_frames
from so3krates_train.trainer import Trainer

DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "rmd17_ethanol_1000.npz"
PUBLISHED = [("MACE (NeurIPS 2022), 950 train frames", 0.4, 2.1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--output", default="runs/bench_ethanol")
    args = parser.parse_args()
    config = load_config(None, [f"data.path={DATA}", "data.train=800", "data.valid=100", "data.test=100",
                                f"model.num_features={args.features}", f"model.num_layers={args.layers}",
                                "optim.epochs=1000", f"optim.time_limit_s={60 * args.minutes}", "optim.lr=3e-3",
                                "optim.schedule=plateau", "optim.plateau_patience=5", f"output={args.output}"])
    trainer = Trainer(config)
    potential, _ = load_model(trainer.train())
    test = trainer.frames.select(trainer.split.test)
    metrics = error_metrics(test, *predict_frames(potential, test))
    (Path(args.output) / "test_metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"\nrMD17 ethanol, {len(test)} held-out frames, {args.minutes:g} min CPU training "
          f"({trainer.epoch} epochs, {args.features} features, {args.layers} layers)")
    print(f"{'model':48s} {'E MAE (meV)':>12s} {'F MAE (meV/Å)':>14s}")
    print(f"{'SO3krates (this run)':48s} {metrics['energy_per_molecule']['mae_meV']:12.2f} "
          f"{metrics['forces']['mae_meV']:14.2f}")
    for name, energy, forces in PUBLISHED:
        print(f"{name:48s} {energy:12.2f} {forces:14.2f}")


if __name__ == "__main__":
    main()
