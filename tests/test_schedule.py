"""Learning-rate schedule: cosine completes its decay within a time limit, plateau halvings stick."""
import csv

import pytest

from so3krates_train.config import load_config
from so3krates_train.schedule import LearningRateSchedule
from so3krates_train.trainer import Trainer

from conftest import EXAMPLE_DATA

DATA = EXAMPLE_DATA / "rmd17_ethanol_1000.npz"


def schedule(kind="cosine", time_limit_s=None, patience=2):
    return LearningRateSchedule(lr=1e-2, min_lr=1e-5, warmup_steps=10, schedule=kind, total_steps=1000,
                                time_limit_s=time_limit_s, plateau_patience=patience)


def test_cosine_warms_up_then_decays_over_steps():
    lr = schedule()
    assert lr(0, 0.0) == pytest.approx(1e-3)  # 1/10 of the warm-up
    assert lr(9, 0.0) == pytest.approx(1e-2, rel=1e-3)
    assert lr(500, 0.0) == pytest.approx(1e-5 + (1e-2 - 1e-5) / 2)
    assert lr(1000, 0.0) == pytest.approx(1e-5)


def test_cosine_decays_over_the_time_limit_when_it_comes_first():
    lr = schedule(time_limit_s=60.0)
    assert lr(100, 30.0) == pytest.approx(1e-5 + (1e-2 - 1e-5) / 2)  # half the time, a tenth of the steps
    assert lr(100, 60.0) == pytest.approx(1e-5)
    assert lr(900, 1.0) < 1e-3  # steps still count when they run out first


def test_plateau_halves_after_patience_and_keeps_the_lower_rate():
    lr = schedule("plateau", patience=2)
    lr.validated(1.0)
    for _ in range(2):
        lr.validated(1.5)
    assert lr(500, 0.0) == pytest.approx(1e-2)
    lr.validated(1.5)  # third evaluation without a gain
    assert lr(500, 0.0) == pytest.approx(5e-3)
    assert lr(501, 0.0) == pytest.approx(5e-3)
    restored = schedule("plateau")
    restored.load_state_dict(lr.state_dict())
    assert restored(502, 0.0) == pytest.approx(5e-3)


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="optim.schedule='linear'"):
        schedule("linear")


def test_a_time_limited_run_ends_at_the_low_rate(tmp_path):
    """The reason for the time-based decay: a run stopped by time_limit_s must not stop at the peak."""
    config = load_config(None, ["model.num_features=16", "model.num_radial=8", "model.num_layers=1",
                                "optim.lr=5e-3", "optim.warmup_steps=5", "optim.epochs=100000",
                                "optim.time_limit_s=6", "data.train=40", "data.valid=10", "data.test=10",
                                f"data.path={DATA}", f"output={tmp_path}"])
    trainer = Trainer(config, show_progress=False)
    trainer.train()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert len(rows) >= 3 and float(rows[-1]["time_s"]) >= 6
    lrs = [float(row["lr"]) for row in rows]
    assert lrs[-1] < 0.1 * 5e-3 < max(lrs)
