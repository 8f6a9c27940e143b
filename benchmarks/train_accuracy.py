"""Accuracy per unit of compute: SO3krates (package defaults) and MACE (its own CLI, with its authors'
settings) trained one after the other on the same split for the same wall-clock budget, both scored
on the same held-out frames by the same code.

    python benchmarks/train_accuracy.py [--data ethanol 3bpa qm7x] [--minutes 10]
        [--peer-python .venv-peers/bin/python] [--mace-dtypes float64 float32] [--output runs/accuracy]
        [--set optim.lr=2e-3 ...]

Data (shipped in examples/data/): rMD17 ethanol (PBE/def2-SVP, 9 atoms; 800 train / 100 validation /
100 test frames), 3BPA at 300 K (ωB97X/6-31G(d), 27 atoms; 400 / 50 / 50) and QM7-X (PBE0+MBD, 250
drug-like molecules of 4-23 atoms, H C N O S Cl, 10 structures each; split by molecule, 80 / 10 / 10 %
of the molecules, so the test molecules are unseen; the held-out molecules are printed and stored in
results.json). Prints a table (epochs, energy MAE per molecule and per atom, force MAE on the test
frames) and writes results.json and learning_curves.png (validation force MAE against wall time) to
--output. Without --peer-python only SO3krates runs. `--set` changes our configuration (for finding
better defaults; the table's rows should use none). results.json is written after every run, and runs
already in --output's results.json (same --minutes and --set) are kept, not repeated: a benchmark longer
than one sitting is run in parts (`--models mace --mace-dtypes float32`, then `--models so3krates`, ...).
runs/ is not committed and does not outlive a checkout: the result files behind the tables of README.md
and benchmarks/ACCURACY.md are kept in benchmarks/results/; copy one to --output's results.json to add
runs beside it.
`--compare DIR ... --output FIGURE.png` tabulates our runs of several such folders (one `--set` each:
test errors, and the last epoch's training force MAE, for under- or overfitting) and draws their
validation curves into one figure, with those of the MACE runs kept in the same folders (dashed).

MACE (mace-torch 0.3.16 from benchmarks/setup_peers.sh) runs once per --mace-dtypes (float32 trains
about twice as fast per epoch on a CPU, float64 is MACE's default); the better of the two by test
force MAE is marked as the baseline. Single molecules (ethanol, 3BPA): 64x0e+64x1o (num_channels 64,
max_L 1), correlation 3, r_max 5 Å, batch 5, lr 0.01 with AMSGrad and its plateau scheduler, EMA
0.99, energy:force weights 1:100 — the MACE authors' small-molecule settings. QM7-X: the MACE-OFF23
training script (ACEsuit/mace-off, mace_off23/*/train.sh: energy:force 40:1000, weight decay 5e-10,
clip_grad 1, scheduler patience 20, EMA) with the MACE-OFF23 small architecture of `so3krates bench`
(96x0e, max_L 0, correlation 3, r_max 5 Å; the paper's small model may use 4.5 Å, not verified here),
batch 32 instead of 128 (that is for ~1M structures; 32 gives 63 steps per epoch here), no SWA (it
starts at epoch 115 of 190), E0s "average" (the script's isolated-atom energies are ωB97M-D3(BJ)
values; QM7-X's PBE0+MBD has none). MACE has no time limit: it is stopped at the budget (timed from
its "Started training" line, as ours from its first step) and its last checkpoint, the one with the
best validation loss, is made into a model by MACE's own `--restart_latest`.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import ase
import ase.io
import numpy as np

from so3krates.model_file import load_model
from so3krates_train.config import load_config
from so3krates_train.data import Frames
from so3krates_train.evaluate import error_metrics, predict_frames
from so3krates_train.trainer import Trainer

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples" / "data"
MACE_COMMON = ["--model=MACE", "--correlation=3", "--r_max=5.0", "--lr=0.01", "--amsgrad", "--ema",
               "--ema_decay=0.99", "--loss=weighted", "--E0s=average", "--error_table=PerAtomMAE", "--eval_interval=1",
               "--device=cpu", "--seed=0", "--energy_key=REF_energy", "--forces_key=REF_forces", "--num_workers=0"]
MACE_SMALL_MOLECULE = ["--num_channels=64", "--max_L=1", "--batch_size=5", "--valid_batch_size=10",
                       "--energy_weight=1", "--forces_weight=100"]
MACE_OFF23_SMALL = ["--num_channels=96", "--max_L=0", "--batch_size=32", "--valid_batch_size=32", "--energy_weight=40",
                    "--forces_weight=1000", "--weight_decay=5e-10", "--clip_grad=1.0", "--scheduler_patience=20"]
DATASETS = {
    "ethanol": {"label": "rMD17 ethanol", "path": EXAMPLES / "rmd17_ethanol_1000.npz", "options": {},
                "split": (800, 100, 100), "by": "frame", "mace": MACE_SMALL_MOLECULE},
    "3bpa": {"label": "3BPA 300 K", "path": EXAMPLES / "3bpa_train_300K.npz", "options": {"energy_unit": "eV"},
             "split": (400, 50, 50), "by": "frame", "mace": MACE_SMALL_MOLECULE},
    "qm7x": {"label": "QM7-X", "path": EXAMPLES / "qm7x_250_small_mlff.npz", "options": {"energy_unit": "eV"},
             "split": (0.8, 0.1, 0.1), "by": "molecule", "mace": MACE_OFF23_SMALL},
}
MACE_EPOCH = re.compile(r"^(\S+ \S+) INFO: Epoch (\d+):.*MAE_F=\s*([0-9.eE+-]+) meV")
MACE_START = re.compile(r"^(\S+ \S+) INFO: Started training")


def write_extxyz(frames: Frames, path: Path) -> None:
    """Frames as extended XYZ with REF_energy / REF_forces (eV, eV/Å), the keys MACE is told to read."""
    images = []
    for k in range(len(frames)):
        atoms = frames.atoms(k)
        image = ase.Atoms(numbers=frames.atomic_numbers[atoms], positions=frames.positions[atoms])
        image.info["REF_energy"] = float(frames.energy[k])
        image.arrays["REF_forces"] = frames.forces[atoms]
        images.append(image)
    ase.io.write(path, images, format="extxyz")


def prepare(name: str, minutes: float, out: Path, settings: List[str]) -> Trainer:
    """Our trainer for data set `name`: it reads the frames and draws the split that both models use."""
    spec = DATASETS[name]
    n_train, n_valid, n_test = spec["split"]
    options = [f"data.options.{key}={value}" for key, value in spec["options"].items()]
    config = load_config(None, [f"data.path={spec['path']}", f"data.train={n_train}", f"data.valid={n_valid}",
                                f"data.test={n_test}", f"data.split_by={spec['by']}", "optim.epochs=100000",
                                f"optim.time_limit_s={60 * minutes}", f"output={out / 'so3krates'}", *options,
                                *settings])
    return Trainer(config, show_progress=False)


def train_ours(trainer: Trainer) -> Dict:
    model_path = trainer.train()
    curve = {"minutes": [], "force_mae_meV_A": []}
    if trainer.epoch:  # a run of 0 epochs (a model scored as it starts) has no learning curve
        logged = np.genfromtxt(trainer.out / "metrics.csv", delimiter=",", names=True)
        curve = {"minutes": (np.atleast_1d(logged["time_s"]) / 60).tolist(),
                 "force_mae_meV_A": (1000 * np.atleast_1d(logged["valid_force_mae_eV_A"])).tolist(),
                 "train_force_mae_meV_A": (1000 * np.atleast_1d(logged["train_force_mae_eV_A"])).tolist()}
    test = trainer.frames.select(trainer.split.test)
    potential, _ = load_model(model_path)
    return {"epochs": trainer.epoch, "metrics": error_metrics(test, *predict_frames(potential, test)), "curve": curve}


def _log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def parse_mace_log(text: str) -> Tuple[int, Dict[str, List[float]]]:
    """(epochs finished, learning curve: minutes since "Started training" and validation force MAE
    meV/Å per evaluation) from MACE's log file."""
    start_stamp, curve, epochs = None, {"minutes": [], "force_mae_meV_A": []}, 0
    for line in text.splitlines():
        if start_stamp is None and (match := MACE_START.match(line)):
            start_stamp = _log_time(match.group(1))
        elif start_stamp is not None and (match := MACE_EPOCH.match(line)):
            epochs = int(match.group(2)) + 1  # MACE counts epochs from 0
            curve["minutes"].append((_log_time(match.group(1)) - start_stamp) / 60)
            curve["force_mae_meV_A"].append(float(match.group(3)))
    return epochs, curve


def train_mace(peer_python: str, frames: Frames, split, minutes: float, out: Path, settings: List[str],
               dtype: str) -> Dict:
    work = out / f"mace_{dtype}"
    for leftover in ("checkpoints", "logs", "results"):  # of a stopped run: MACE appends to its log and
        shutil.rmtree(work / leftover, ignore_errors=True)  # would restart from its checkpoints
    work.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        write_extxyz(frames.select(getattr(split, part)), work / f"{part}.xyz")
    command = [peer_python, "-m", "mace.cli.run_train", "--name=mace", "--train_file=train.xyz",
               "--valid_file=valid.xyz", *MACE_COMMON, *settings, f"--default_dtype={dtype}"]
    log = work / "logs" / "mace_run-0.log"
    with open(work / "stdout.txt", "w") as stdout:
        process = subprocess.Popen(command + ["--max_num_epochs=100000"], cwd=work, stdout=stdout,
                                   stderr=subprocess.STDOUT)
        started: Optional[float] = None
        while process.poll() is None:
            time.sleep(0.5)
            if started is None and log.exists() and "Started training" in log.read_text():
                started = time.monotonic()
            if started is not None and time.monotonic() - started >= 60 * minutes:
                process.terminate()
                process.wait()
        if started is None:
            raise RuntimeError(f"MACE stopped before training; see {work / 'stdout.txt'}")
    epochs, curve = parse_mace_log(log.read_text())
    saved = sorted(int(m.group(1)) for p in (work / "checkpoints").glob("*.pt")
                   if (m := re.search(r"epoch-(\d+)", p.name)))
    if not saved:
        raise RuntimeError(f"MACE finished no epoch within {minutes:g} min; give more --minutes")
    # MACE's own way to turn the last (best) checkpoint into a model: restart with no epochs left
    with open(work / "finalize.txt", "w") as stdout:
        subprocess.run(command + ["--restart_latest", f"--max_num_epochs={saved[-1]}"], cwd=work, stdout=stdout,
                       stderr=subprocess.STDOUT, check=True)
    subprocess.run([peer_python, str(HERE / "mace_predict.py"), "mace.model", "test.xyz", "test_predictions.npz"],
                   cwd=work, check=True)
    predictions = np.load(work / "test_predictions.npz")
    test = frames.select(split.test)
    return {"epochs": epochs, "checkpoint_epoch": saved[-1],
            "metrics": error_metrics(test, predictions["energy"], predictions["forces"]), "curve": curve}


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.8), squeeze=False)
    for ax, (name, runs) in zip(axes[0], results.items()):
        for model, run in runs.items():
            ax.plot(run["curve"]["minutes"], run["curve"]["force_mae_meV_A"], label=model)
        ax.set_yscale("log")
        ax.set_xlabel("wall time (min, 2 CPU cores)")
        ax.set_ylabel("validation force MAE (meV/Å)")
        ax.set_title(DATASETS[name]["label"])
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def load_results(path: Path, minutes: float, settings: List[str]) -> Dict[str, Dict]:
    """The runs already stored in `path` by an earlier invocation with the same budget and settings (a
    benchmark longer than one sitting is run in parts: `--models`, `--mace-dtypes`, `--data`)."""
    if not path.exists():
        return {}
    stored = json.loads(path.read_text())
    if stored["minutes"] != minutes or stored["set"] != settings:
        raise SystemExit(f"{path} holds runs of {stored['minutes']:g} min with --set {stored['set']}; "
                         f"give another --output for {minutes:g} min with --set {settings}")
    return stored["results"]


def mace_runs(runs: Dict[str, Dict]) -> List[str]:
    """The MACE runs among one data set's runs (one per dtype, named "MACE float32" etc.)."""
    return [model for model in runs if model.startswith("MACE")]


def mark_baseline(runs: Dict[str, Dict]) -> None:
    """The better MACE dtype by test force MAE is the baseline."""
    maces = mace_runs(runs)
    for m in maces:
        runs[m].pop("baseline", None)
    if maces:
        runs[min(maces, key=lambda m: runs[m]["metrics"]["forces"]["mae_meV"])]["baseline"] = True


def compare(folders: List[Path], figure: Path) -> List[str]:
    """Our runs stored in several --output folders (one --set each, same data and budget): a table of
    their test errors and last training-set force MAE, and their validation curves in one figure, with
    those of any MACE run stored beside them (dashed), for the gap to the baseline. Returns the curves'
    labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    stored_runs = [json.loads((folder / "results.json").read_text()) for folder in folders]
    width = max(len(" ".join(stored["set"]) or "defaults") for stored in stored_runs)
    labels: List[str] = []
    print(f"{'data':8s} {'--set':{width}s} {'min':>5s} {'epochs':>7s} {'E MAE (meV/atom)':>17s} {'F MAE (meV/Å)':>14s} "
          f"{'train F (meV/Å)':>16s}")
    for folder, stored in zip(folders, stored_runs):
        label = " ".join(stored["set"]) or "defaults"
        for name, runs in stored["results"].items():
            if "SO3krates" in runs:  # absent in a folder of MACE runs alone (--models mace)
                run = runs["SO3krates"]
                metrics, curve = run["metrics"], run["curve"]
                train = curve.get("train_force_mae_meV_A", [float("nan")])[-1]
                print(f"{name:8s} {label:{width}s} {stored['minutes']:5g} {run['epochs']:7d} "
                      f"{metrics['energy_per_atom']['mae_meV']:17.2f} {metrics['forces']['mae_meV']:14.1f} {train:16.1f}")
                labels.append(f"{name}: {label}")
                ax.plot(curve["minutes"], curve["force_mae_meV_A"], label=labels[-1])
            for model in mace_runs(runs):
                labels.append(f"{name}: {model} ({folder.name})")
                ax.plot(runs[model]["curve"]["minutes"], runs[model]["curve"]["force_mae_meV_A"], "--", label=labels[-1])
    ax.set_yscale("log")
    ax.set_xlabel("wall time (min, 2 CPU cores)")
    ax.set_ylabel("validation force MAE (meV/Å)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))  # below: --set labels are long
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    print(f"curves: {figure}")
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", choices=sorted(DATASETS), default=["ethanol", "3bpa"])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget of each training run")
    parser.add_argument("--peer-python", help="Python of the peers' environment (MACE); without it MACE is skipped")
    parser.add_argument("--models", nargs="+", choices=["so3krates", "mace"], default=["so3krates", "mace"])
    parser.add_argument("--mace-dtypes", nargs="+", choices=["float64", "float32"], default=["float64", "float32"])
    parser.add_argument("--output", default="runs/accuracy")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="change our configuration")
    parser.add_argument("--compare", nargs="+", type=Path, metavar="DIR",
                        help="only compare our runs stored in these --output folders; figure: --output")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, Path(args.output))
        return
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "results.json"
    results = load_results(stored, args.minutes, args.set)
    splits: Dict[str, Dict] = json.loads(stored.read_text())["splits"] if results else {}

    def save() -> None:  # after every run, so that a stopped benchmark keeps the runs it finished
        stored.write_text(json.dumps({"minutes": args.minutes, "set": args.set, "results": results,
                                      "splits": splits}, indent=1))

    for name in args.data:
        trainer = prepare(name, args.minutes, out / name, args.set)
        test_molecules = sorted({str(m) for m in trainer.frames.molecule[trainer.split.test]})
        split = {"by": DATASETS[name]["by"], "train": trainer.split.train, "valid": trainer.split.valid,
                 "test": trainer.split.test, "test_molecules": test_molecules}
        if splits.get(name, split) != split:
            raise SystemExit(f"{stored}: its {name} runs used another split; give another --output")
        splits[name] = split
        if DATASETS[name]["by"] == "molecule":
            print(f"{DATASETS[name]['label']}: {len(test_molecules)} test molecules, unseen in training: "
                  f"{', '.join(test_molecules)}")
        runs = results.setdefault(name, {})
        wanted = (["SO3krates"] if "so3krates" in args.models else []) + \
            ([f"MACE {dtype}" for dtype in args.mace_dtypes] if args.peer_python and "mace" in args.models else [])
        for model in wanted:
            if model in runs:
                print(f"{DATASETS[name]['label']}, {model}: kept from {stored}")
                continue
            if model == "SO3krates":
                runs[model] = train_ours(trainer)
            else:
                runs[model] = train_mace(os.path.abspath(args.peer_python), trainer.frames, trainer.split,
                                         args.minutes, out / name, DATASETS[name]["mace"], model.split()[1])
            mark_baseline(runs)
            save()
    plot(results, out / "learning_curves.png")
    print(f"\n{args.minutes:g} min of training each, one after the other; test frames scored by the same code; "
          f"* = MACE baseline (its better dtype)")
    print(f"{'data':14s} {'model':15s} {'epochs':>7s} {'E MAE (meV)':>12s} {'E MAE (meV/atom)':>17s} "
          f"{'F MAE (meV/Å)':>14s}")
    for name, runs in results.items():
        for model, run in runs.items():
            metrics = run["metrics"]
            label = model + (" *" if run.get("baseline") else "")
            print(f"{DATASETS[name]['label']:14s} {label:15s} {run['epochs']:7d} "
                  f"{metrics['energy_per_molecule']['mae_meV']:12.1f} {metrics['energy_per_atom']['mae_meV']:17.2f} "
                  f"{metrics['forces']['mae_meV']:14.1f}")
    print(f"learning curves: {out / 'learning_curves.png'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
