"""Every example runs (with tiny step counts) and writes its picture."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("example_model") / "model.pt"
    subprocess.run([str(Path(sys.executable).parent / "so3krates"), "init", str(path), "--elements", "H,C,N,O",
                    "--features", "16", "--radial", "8"], check=True, capture_output=True)
    return path


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_alanine_ramachandran(untrained_model, tmp_path):
    out = run("alanine_ramachandran.py", "--model", str(untrained_model), "--steps", "40",
              "--report-interval", "10", "--output", str(tmp_path))
    assert (tmp_path / "ramachandran.png").stat().st_size > 1000 and "4 frames" in out


def test_peptide_in_water(untrained_model, tmp_path):
    run("peptide_in_water.py", "--model", str(untrained_model), "--water", "mechanical", "--steps", "6",
        "--report-interval", "2", "--output", str(tmp_path))
    assert (tmp_path / "water.png").stat().st_size > 1000


def test_peptide_in_water_with_so3lr_and_its_own_charges(tmp_path):
    out = run("peptide_in_water.py", "--steps", "4", "--report-interval", "2", "--output", str(tmp_path))
    assert (tmp_path / "water.png").stat().st_size > 1000 and "(22 ML)" in out


def test_train_and_evaluate(tmp_path):
    out = run("train_and_evaluate.py", "--minutes", "0.001", "--output", str(tmp_path))
    assert "force MAE" in out
    for name in ("energy_parity.png", "force_parity.png", "error_histogram.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000


def test_chignolin(untrained_model, tmp_path):
    out = run("chignolin.py", "--model", str(untrained_model), "--charge", "0", "--steps", "20",
              "--report-interval", "5", "--output", str(tmp_path))
    assert (tmp_path / "chignolin.png").stat().st_size > 1000 and "4 frames" in out


def test_examples_run_so3lr_by_default(tmp_path):
    out = run("alanine_ramachandran.py", "--steps", "20", "--report-interval", "10", "--output", str(tmp_path / "a"))
    assert "2 frames" in out
    out = run("chignolin.py", "--steps", "10", "--report-interval", "5", "--output", str(tmp_path / "c"))
    assert "2 frames" in out



@pytest.mark.parametrize("config", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_configurations_are_valid(config):
    from so3krates_train.config import load_config

    assert load_config(str(EXAMPLES / config)).data.path


@pytest.mark.parametrize("config", ["rmd17_ethanol.yaml", "finetune_so3lr.yaml", "qm7x_multi_molecule.yaml",
                                    "3bpa_single_molecule.yaml"])
def test_example_configurations_with_shipped_data_build_their_trainer(config, tmp_path, monkeypatch):
    """The configurations whose data ship read them and build their model (no steps taken)."""
    from so3krates_train.config import load_config
    from so3krates_train.trainer import Trainer

    monkeypatch.chdir(EXAMPLES.parent)  # their data paths are relative to the repository
    trainer = Trainer(load_config(str(EXAMPLES / config), [f"output={tmp_path}", "optim.epochs=0"]),
                      show_progress=False)
    assert len(trainer.train_frames) > 0
