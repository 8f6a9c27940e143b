"""benchmarks/train_accuracy.py and finetune_accuracy.py: MACE's log read into a learning curve, the
frames MACE gets equal ours, and our side of the benchmark end to end (MACE needs the peers' environment)."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import ase.io
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from train_accuracy import (DATASETS, compare, load_results, mark_baseline, parse_mace_log, plot,  # noqa: E402
                            prepare, train_ours, write_extxyz)

from so3krates_train.config import load_config  # noqa: E402
from so3krates_train.trainer import Trainer  # noqa: E402

SINGLE_MOLECULE_RESULTS = "screening_muon_so3lr_blocks_3layers_clip1_ethanol_3bpa_15min.json"
# lines as mace-torch 0.3.16 writes them (error_table PerAtomMAE)
MACE_LOG = """\
2026-11-28 04:15:34.351 INFO: Started training, reporting errors on validation set
2026-11-28 04:15:34.351 INFO: Loss metrics on validation set
2026-11-28 04:15:37.120 INFO: Initial: head: Default, loss=15.43631756, MAE_E_per_atom=   39.49 meV, MAE_F=  897.79 meV / A
2026-11-28 04:16:39.000 INFO: Epoch 0: head: Default, loss=0.25272932, MAE_E_per_atom=  282.30 meV, MAE_F=  109.15 meV / A
2026-11-28 04:17:44.488 INFO: Epoch 2: head: Default, loss=0.05388284, MAE_E_per_atom=  123.56 meV, MAE_F=   49.75 meV / A
"""


def test_mace_log_becomes_a_learning_curve():
    epochs, curve = parse_mace_log(MACE_LOG)
    assert epochs == 3  # MACE numbers epochs from 0
    assert curve["force_mae_meV_A"] == [109.15, 49.75]
    np.testing.assert_allclose(curve["minutes"], [(64.649) / 60, (130.137) / 60], rtol=1e-6)


def test_mace_reads_the_same_frames_in_the_same_units(tmp_path):
    trainer = prepare("ethanol", 1.0, tmp_path, [])
    frames = trainer.frames.select(trainer.split.test[:5])
    write_extxyz(frames, tmp_path / "test.xyz")
    images = ase.io.read(tmp_path / "test.xyz", ":")
    assert len(images) == 5
    for k, image in enumerate(images):
        atoms = frames.atoms(k)
        assert image.info["REF_energy"] == pytest.approx(frames.energy[k], abs=1e-9)
        np.testing.assert_allclose(image.arrays["REF_forces"], frames.forces[atoms], atol=1e-7)  # 8 decimals
        np.testing.assert_allclose(image.positions, frames.positions[atoms], atol=1e-7)


def test_the_single_molecule_example_has_the_benchmark_s_3bpa_split(tmp_path, monkeypatch):
    """Its README line quotes this benchmark's 3BPA test errors; its settings are the ones measured there."""
    split = prepare("3bpa", 1.0, tmp_path, []).split
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    example = Trainer(load_config(str(root / "examples" / "3bpa_single_molecule.yaml"),
                                  [f"output={tmp_path / 'example'}", "optim.epochs=0"]), show_progress=False)
    assert example.split.test == split.test and example.split.train == split.train
    measured_settings = json.loads((root / "benchmarks" / "results" / SINGLE_MOLECULE_RESULTS).read_text())["set"]
    measured = load_config(None, measured_settings)
    assert measured.model == example.config.model
    budget = {"epochs": 0, "time_limit_s": None}  # the benchmark gives its own
    assert replace(measured.optim, **budget) == replace(example.config.optim, **budget)
    assert example.config.optim.optimizer == "muon" and example.config.optim.grad_clip == 1


def test_our_side_of_the_benchmark_runs_to_a_scored_model(tmp_path):
    trainer = prepare("3bpa", 0.05, tmp_path, ["model.num_features=16", "model.num_layers=1", "data.train=20",
                                               "data.valid=5", "data.test=5"])
    assert trainer.config.data.options == DATASETS["3bpa"]["options"]
    result = train_ours(trainer)
    assert result["metrics"]["frames"] == 5 and result["metrics"]["forces"]["mae_meV"] > 0
    assert len(result["curve"]["minutes"]) == result["epochs"] >= 1
    plot({"3bpa": {"SO3krates": result}}, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_qm7x_is_split_by_molecule_with_every_element_in_training(tmp_path, monkeypatch):
    """The multi-molecule case: test molecules are unseen in training, and chlorine (one molecule) is
    trained on; MACE gets the MACE-OFF23 training settings."""
    trainer = prepare("qm7x", 1.0, tmp_path, [])
    frames, split = trainer.frames, trainer.split
    molecules = [set(frames.molecule[part]) for part in (split.train, split.valid, split.test)]
    assert not molecules[0] & molecules[2] and not molecules[0] & molecules[1]
    assert [len(m) for m in molecules] == [round(f * len(set(frames.molecule))) for f in (0.8, 0.1, 0.1)]
    train_elements = set(np.concatenate([frames.atomic_numbers[frames.atoms(k)] for k in split.train]))
    assert train_elements == {1, 6, 7, 8, 16, 17}
    assert "--energy_weight=40" in DATASETS["qm7x"]["mace"] and "--forces_weight=1000" in DATASETS["qm7x"]["mace"]
    # the example configuration whose README line quotes this benchmark's accuracy has the same split
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    example = Trainer(load_config(str(root / "examples" / "qm7x_multi_molecule.yaml"),
                                  [f"output={tmp_path / 'example'}", "optim.epochs=0"]), show_progress=False)
    assert example.split.test == split.test and example.split.train == split.train


def test_a_benchmark_run_in_parts_keeps_its_finished_runs_and_one_baseline(tmp_path):
    def run(force_mae):
        return {"metrics": {"forces": {"mae_meV": force_mae}}}

    runs = {"SO3krates": run(30.0), "MACE float64": run(50.0)}
    mark_baseline(runs)
    assert [m for m in runs if runs[m].get("baseline")] == ["MACE float64"]
    runs["MACE float32"] = run(40.0)  # added by a later part
    mark_baseline(runs)
    assert [m for m in runs if runs[m].get("baseline")] == ["MACE float32"]

    stored = tmp_path / "results.json"
    assert load_results(stored, 60.0, []) == {}
    stored.write_text(json.dumps({"minutes": 60.0, "set": [], "results": {"qm7x": runs}, "splits": {}}))
    assert load_results(stored, 60.0, []) == {"qm7x": runs}
    for minutes, settings in ((15.0, []), (60.0, ["optim.lr=2e-3"])):  # another benchmark: refused, not mixed
        with pytest.raises(SystemExit, match="give another --output"):
            load_results(stored, minutes, settings)


def test_compare_tabulates_our_runs_and_draws_the_mace_runs_stored_beside_them(tmp_path, capsys):
    """--compare on two kept result files, one of our runs alone, one a pair with MACE float32, and on a
    folder of MACE runs alone (as `--models mace` stores them: no run of ours to tabulate)."""
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    folders = []
    for name in ("screening_fw0.96_qm7x_60min.json", "accuracy_qm7x_60min_paper_size_pair.json"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "results.json").write_text((results / name).read_text())
        folders.append(folder)
    mace_alone = json.loads((folders[1] / "results.json").read_text())
    del mace_alone["results"]["qm7x"]["SO3krates"]
    folders.append(tmp_path / "mace_alone")
    folders[-1].mkdir()
    (folders[-1] / "results.json").write_text(json.dumps(mace_alone))
    labels = compare(folders, tmp_path / "curves.png")
    assert labels == ["qm7x: optim.force_weight=0.96",
                      "qm7x: model.num_layers=3 model.degrees=[1,2,3] model.num_features=132 optim.force_weight=0.96",
                      "qm7x: MACE float32 (accuracy_qm7x_60min_paper_size_pair.json)",
                      "qm7x: MACE float32 (mace_alone)"]
    table = capsys.readouterr().out
    assert "128.4" in table and "129.1" in table  # their test force MAEs (meV/Å)
    assert (tmp_path / "curves.png").stat().st_size > 1000
