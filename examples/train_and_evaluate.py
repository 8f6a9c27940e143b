"""Train SO3krates on the shipped rMD17 ethanol frames, then evaluate on the held-out test frames
with parity plots and error histograms.

    python examples/train_and_evaluate.py [--minutes 3] [--output runs/ethanol_example]
"""
import argparse
from pathlib import Path

from so3krates.model_file import load_model
from so3krates_train.config import load_config
from so3krates_train.evaluate import evaluate_model
from so3krates_train.trainer import Trainer

CONFIG = Path(__file__).with_name("rmd17_ethanol.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    parser.add_argument("--output", default="runs/ethanol_example")
    args = parser.parse_args()
    data = Path(__file__).with_name("data") / "rmd17_ethanol_1000.npz"
    config = load_config(str(CONFIG), [f"data.path={data}", f"optim.time_limit_s={60 * args.minutes}",
                                       f"output={args.output}"])
    trainer = Trainer(config)
    potential, info = load_model(trainer.train())
    test = trainer.frames.select(trainer.split.test)
    plots = Path(args.output) / "plots"
    metrics = evaluate_model(potential, info.elements, test, Path(args.output) / "test_metrics.json", plots)
    print(f"test: energy MAE {metrics['energy_per_molecule']['mae_meV']:.1f} meV, force MAE "
          f"{metrics['forces']['mae_meV']:.1f} meV/Å; plots in {plots}")


if __name__ == "__main__":
    main()
