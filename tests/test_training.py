"""Training: it learns, resumes exactly after a kill, DDP matches one process, eval matches numpy."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch
from ase import Atoms

from so3krates.ase import SO3kratesCalculator
from so3krates_train.batching import collate, predict
from so3krates_train.checkpoint import load_checkpoint
from so3krates_train.config import load_config
from so3krates_train.data import read_frames
from so3krates_train.evaluate import error_metrics, predict_frames
from so3krates_train.trainer import Trainer

from conftest import EXAMPLE_DATA, TEST_DATA

DATA = EXAMPLE_DATA / "rmd17_ethanol_1000.npz"
SMALL = ["model.num_features=16", "model.num_radial=8", "model.num_layers=1", "optim.batch_size=5",
         "optim.lr=5e-3", "optim.warmup_steps=10", "optim.ema_decay=0.8", "data.train=100", "data.valid=50",
         "data.test=50", f"data.path={DATA}"]


def test_training_lowers_validation_force_error(tmp_path):
    config = load_config(None, SMALL + ["optim.epochs=8", "model.num_features=32", "model.num_layers=2",
                                        "data.train=200", f"output={tmp_path}"])
    trainer = Trainer(config, show_progress=False)
    before = trainer.validate(trainer.ema)["valid_force_mae_eV_A"]
    model_path = trainer.train()
    after = trainer.validate(trainer.ema)["valid_force_mae_eV_A"]
    print(f"\nvalidation force MAE {1000 * before:.0f} -> {1000 * after:.0f} meV/Å")
    assert after < before / 3
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "split.json").is_file()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert len(rows) == 8
    # the training error logged beside the validation error (epoch means of the batches) falls too
    train_force = [float(row["train_force_mae_eV_A"]) for row in rows]
    assert train_force[-1] < train_force[0] / 2 and float(rows[-1]["train_energy_mae_eV_per_atom"]) > 0
    # one TensorBoard event file for the run, holding every evaluation
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logged = EventAccumulator(str(events[0])).Reload().Scalars("valid_force_mae_eV_A")
    assert [point.step for point in logged] == [int(row["step"]) for row in rows]
    np.testing.assert_allclose([point.value for point in logged], [float(row["valid_force_mae_eV_A"]) for row in rows],
                               rtol=1e-6)
    # the exported model reproduces the trained EMA network
    frames = trainer.valid_frames.select(range(5))
    from so3krates.model_file import load_model
    potential, info = load_model(model_path)
    assert info.training_data["frames"] == 1000
    energy_file, forces_file = predict_frames(potential, frames, dtype=torch.float32)
    energy, forces, _ = predict(trainer.ema, collate(frames, range(5), 5.0, torch.float32, torch.device("cpu")),
                             create_graph=False)
    np.testing.assert_allclose(energy_file, energy.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(forces_file, forces.numpy(), rtol=1e-4, atol=1e-5)
    # `so3krates export` of the last checkpoint gives the same model as the end of training
    from so3krates.cli import main
    assert main(["export", str(tmp_path / "latest.pt"), "-o", str(tmp_path / "exported.pt")]) == 0
    exported, _ = load_model(tmp_path / "exported.pt")
    np.testing.assert_array_equal(predict_frames(exported, frames, dtype=torch.float32)[0], energy_file)


def test_kill_and_resume_reaches_the_same_weights(tmp_path):
    """float64, because even two uninterrupted CPU runs differ in the last bits (BLAS and reduction
    order depend on memory alignment); in float64 that noise stays far below the tolerance."""
    args = SMALL + ["optim.epochs=6", "dtype=float64"]
    command = [str(Path(sys.executable).parent / "so3krates"), "train", "--no-progress"]
    subprocess.run(command + args + [f"output={tmp_path / 'straight'}"], check=True, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(command + args + [f"output={killed}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (killed / "latest.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    interrupted_at = load_checkpoint(killed / "latest.pt")["epoch"]
    assert interrupted_at < 6, "the run finished before it could be killed"
    subprocess.run(command + ["--resume"] + args + [f"output={killed}"], check=True, capture_output=True)

    a, b = load_checkpoint(tmp_path / "straight" / "latest.pt"), load_checkpoint(killed / "latest.pt")
    assert a["epoch"] == b["epoch"] == 6
    for key in ("model", "ema"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=1e-9, atol=1e-12, equal_nan=True,
                                       msg=f"{key}.{name} differs after resume")


DDP_WORKER = """
import os, sys, torch, torch.distributed as dist
sys.path.insert(0, {tests!r})
from so3krates_train.batching import EnergiesAndProperties, collate, predict
from so3krates_train.data import read_frames
from so3krates.model import SO3krates, SO3kratesConfig
rank, world = int(sys.argv[1]), 2
dist.init_process_group("gloo", init_method="file://" + {store!r}, rank=rank, world_size=world)
torch.manual_seed(0)
model = SO3krates(SO3kratesConfig(elements=[1, 6, 8], num_features=16, num_radial=8, num_layers=1, zero_readout=False))
ddp = torch.nn.parallel.DistributedDataParallel(EnergiesAndProperties(model))
frames = read_frames({data!r})
batch = collate(frames, list(range(rank * 4, rank * 4 + 4)), 5.0, torch.float32, torch.device("cpu"))
energy, forces, _ = predict(ddp, batch, create_graph=True)
loss = 0.01 * ((energy - batch["energy"]) / batch["n_atoms"]).pow(2).mean() + (forces - batch["forces"]).pow(2).mean()
loss.backward()
if rank == 0:
    torch.save({{n: p.grad for n, p in model.named_parameters()}}, {out!r})
dist.destroy_process_group()
"""


def test_two_process_ddp_gradients_equal_single_process(tmp_path):
    script = tmp_path / "worker.py"
    out = tmp_path / "grads.pt"
    script.write_text(DDP_WORKER.format(tests=str(Path(__file__).parent), store=str(tmp_path / "store"),
                                        data=str(DATA), out=str(out)))
    workers = [subprocess.Popen([sys.executable, str(script), str(rank)], stderr=subprocess.PIPE, text=True)
               for rank in range(2)]
    for w in workers:
        assert w.wait(timeout=300) == 0, w.stderr.read()[-2000:]
    from so3krates.model import SO3krates, SO3kratesConfig
    torch.manual_seed(0)
    model = SO3krates(SO3kratesConfig(elements=[1, 6, 8], num_features=16, num_radial=8, num_layers=1,
                                      zero_readout=False))
    frames = read_frames(DATA)
    batch = collate(frames, list(range(8)), 5.0, torch.float32, torch.device("cpu"))
    energy, forces, _ = predict(model, batch, create_graph=True)
    loss = 0.01 * ((energy - batch["energy"]) / batch["n_atoms"]).pow(2).mean() + \
        (forces - batch["forces"]).pow(2).mean()
    loss.backward()
    ddp_grads = torch.load(out)
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-4, atol=1e-6)


def test_eval_metrics_equal_independent_numpy(model_file64, tmp_path):
    frames = read_frames(DATA).select(range(10))
    z = frames.atomic_numbers[frames.atoms(0)]
    calc = SO3kratesCalculator(str(model_file64))
    energies, forces = [], []
    for k in range(len(frames)):
        atoms = Atoms(numbers=z, positions=frames.positions[frames.atoms(k)], calculator=calc)
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    energies, forces = np.array(energies), np.concatenate(forces)
    from so3krates.model_file import load_model
    potential, _ = load_model(model_file64)
    metrics = error_metrics(frames, *predict_frames(potential, frames))
    assert metrics["energy_per_molecule"]["mae_meV"] == pytest.approx(1000 * np.mean(np.abs(energies - frames.energy)))
    assert metrics["energy_per_atom"]["rmse_meV"] == pytest.approx(
        1000 * np.sqrt(np.mean(((energies - frames.energy) / 9) ** 2)))
    assert metrics["forces"]["mae_meV"] == pytest.approx(1000 * np.mean(np.abs(forces - frames.forces)))
    assert metrics["forces"]["mae_kcal_mol"] == pytest.approx(np.mean(np.abs(forces - frames.forces)) / 0.0433641,
                                                              rel=1e-5)
    h = frames.atomic_numbers == 1
    assert metrics["force_mae_meV_A_by_element"]["H"] == pytest.approx(
        1000 * np.mean(np.abs(forces[h] - frames.forces[h])))


def test_bf16_autocast_trains(tmp_path):
    """The bfloat16 option (meant for A100s) runs end to end; on the CPU it uses CPU autocast."""
    trainer = Trainer(load_config(None, SMALL + ["optim.epochs=2", "bf16=true", f"output={tmp_path}"]),
                      show_progress=False)
    before = trainer.validate(trainer.ema)["valid_force_mae_eV_A"]
    trainer.train()
    after = trainer.validate(trainer.ema)["valid_force_mae_eV_A"]
    assert np.isfinite(after) and after < before


def test_eval_names_the_frame_and_atom_of_an_unsupported_element(model_file64):
    from so3krates import UnsupportedElementError
    from so3krates.model_file import load_model
    from so3krates_train.evaluate import evaluate_model

    frames = read_frames(DATA).select(range(3))
    frames.atomic_numbers[frames.atoms(2).start + 4] = 17
    potential, info = load_model(model_file64)
    with pytest.raises(UnsupportedElementError, match=r"frame 2 atom 4 is Cl.*supported elements: H, C, N, O"):
        evaluate_model(potential, info.elements, frames)


def test_config_values_are_checked_by_name_and_type():
    """`optim: {lr: fast}` is an error naming the key, the value and the type, not a traceback later."""
    with pytest.raises(ValueError, match=r"config.optim.lr: 'fast' is not a valid value; expected float"):
        load_config(None, ["optim.lr=fast"])
    with pytest.raises(ValueError, match=r"config.optim.epochs: 2.5 is not a valid value; expected int"):
        load_config(None, ["optim.epochs=2.5"])
    with pytest.raises(ValueError, match=r"config.bf16: 'yes please' is not a valid value; expected bool"):
        load_config(None, ["bf16=yes please"])
    with pytest.raises(ValueError, match=r"config.optim: expected a mapping"):
        load_config(None, ["optim=3"])
    with pytest.raises(ValueError, match=r"config.threads: 'two' is not a valid value; expected int or null"):
        load_config(None, ["threads=two"])
    config = load_config(None, ["optim.lr=1", "data.train=0.5", "optim.time_limit_s=null", "atomic_energies={1: -13.6}"])
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float) and config.data.train == 0.5
    assert config.atomic_energies == {1: -13.6}


def test_checkpoint_of_the_previous_version_exports_and_resumes(tmp_path):
    """A checkpoint written by openmm-so3krates 0.1.0 (Bernstein basis; before the exchange block's ev
    update, the half pair lists and the constants now derived from the configuration) exports to a model
    that reproduces 0.1.0's own model file of that run, and resumes."""
    import shutil

    from so3krates.cli import main
    from so3krates.model_file import load_model

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(TEST_DATA / "checkpoint_0.1.0.pt", run / "latest.pt")
    assert main(["export", str(run / "latest.pt"), "-o", str(tmp_path / "model.pt")]) == 0
    data = np.load(DATA)
    z = torch.tensor(data["nuclear_charges"].astype(np.int64))
    energies = []
    for path in (tmp_path / "model.pt", TEST_DATA / "checkpoint_0.1.0_model.pt"):
        model = load_model(path)[0].to(torch.float64)
        pos = torch.tensor(data["coords"][3], dtype=torch.float64, requires_grad=True)
        energy = model(z, pos, None, 0.0, 0.0)
        energies.append((energy.item(), torch.autograd.grad(energy, pos)[0]))
    assert energies[0][0] == pytest.approx(energies[1][0], rel=1e-7)
    torch.testing.assert_close(energies[0][1], energies[1][1], rtol=1e-5, atol=1e-6)
    trainer = Trainer(load_config(None, [f"data.path={DATA}", f"output={run}", "optim.epochs=2"]), resume=True,
                      show_progress=False)
    assert trainer.epoch == 1 and not trainer.model.config.exchange_ev_update
    trainer.train()
    assert trainer.epoch == 2


def test_a_new_run_in_an_old_output_folder_starts_a_new_log(tmp_path):
    """Without resume the run starts over: its metrics.csv holds its own epochs only, not the old run's."""
    for _ in range(2):
        Trainer(load_config(None, SMALL + ["optim.epochs=1", "data.train=20", f"output={tmp_path}"]),
                show_progress=False).train()
    assert len(list(csv.DictReader((tmp_path / "metrics.csv").open()))) == 1


def _poison_some_steps(trainer: Trainer, poisoned) -> None:
    """Make the loss NaN on the training steps (counted from 0) for which poisoned(call) is true."""
    loss_of, calls = trainer._loss, [0]

    def loss(batch):
        value, energy_mae, force_mae = loss_of(batch)
        calls[0] += 1
        return (value * float("nan") if poisoned(calls[0] - 1) else value), energy_mae, force_mae
    trainer._loss = loss


def test_a_non_finite_step_is_skipped_not_applied(tmp_path, capsys):
    """One NaN batch used to turn every weight into NaN; the run went on and exported a NaN model."""
    trainer = Trainer(load_config(None, SMALL + ["optim.epochs=2", f"output={tmp_path}"]), show_progress=False)
    _poison_some_steps(trainer, lambda call: call % 7 == 3)
    model_path = trainer.train()
    skipped = [line for line in capsys.readouterr().err.splitlines() if "step skipped" in line]
    assert len(skipped) == 6
    assert "non-finite loss on frames " in skipped[0] and "rmd17_ethanol_1000.npz:frame " in skipped[0]
    assert trainer.step == 2 * 20 - 6
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert all(np.isfinite(float(row[key])) for row in rows for key in ("train_loss", "train_force_mae_eV_A"))
    assert model_path.is_file()


def _skipped_after_changing_the_fifth_gradient(tmp_path, capsys, change) -> Tuple[str, List[str]]:
    """Train one epoch with change(gradient) applied to the first weight tensor's gradient on the fifth
    step: (that tensor's name, the lines of the skipped steps)."""
    trainer = Trainer(load_config(None, SMALL + ["optim.epochs=1", f"output={tmp_path}"]), show_progress=False)
    name, weight = next(iter(trainer.model.named_parameters()))
    calls = [0]

    def change_fifth_step(grad: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return change(grad) if calls[0] == 5 else grad
    weight.register_hook(change_fifth_step)
    trainer.train()
    return name, [line for line in capsys.readouterr().err.splitlines() if "step skipped" in line]


def test_a_step_whose_gradient_alone_is_not_finite_names_the_weights(tmp_path, capsys):
    """A finite loss with a non-finite gradient (e.g. the derivative of a square root at zero) is told
    apart from a non-finite loss, with the weights whose gradient it reached."""
    name, skipped = _skipped_after_changing_the_fifth_gradient(tmp_path, capsys, lambda grad: grad * float("nan"))
    assert len(skipped) == 1
    assert "finite loss, non-finite gradient in 1 of " in skipped[0] and f"weight tensors ({name}) on frames" in skipped[0]


def test_a_gradient_too_large_for_its_norm_is_told_apart(tmp_path, capsys):
    """Every gradient entry finite, but their squares sum past float32's range (a batch on which the
    weights blow up): the line says so and names the largest entry's weights, not "0 of N tensors"."""
    name, skipped = _skipped_after_changing_the_fifth_gradient(tmp_path, capsys, lambda grad: grad.sign() * 1e30)
    assert len(skipped) == 1
    assert (f"finite loss and gradient, but the gradient's norm overflows torch.float32 (largest entry 1e+30, "
            f"in {name}) on frames") in skipped[0]


def test_a_diverged_run_stops_with_a_clear_error(tmp_path):
    trainer = Trainer(load_config(None, SMALL + ["optim.epochs=3", f"output={tmp_path}"]), show_progress=False)
    _poison_some_steps(trainer, lambda call: call >= 20)  # the first epoch trains, the second diverges
    with pytest.raises(ValueError, match=r"training diverged at epoch 2, step 20: 20 steps in a row .* frames "
                                         r".*rmd17_ethanol_1000.npz:frame .*smaller optim.lr"):
        trainer.train()
    assert not (tmp_path / "model.pt").exists()
    assert load_checkpoint(tmp_path / "latest.pt")["epoch"] == 1


def test_a_model_that_gives_nan_on_validation_is_not_exported(tmp_path):
    trainer = Trainer(load_config(None, SMALL + ["optim.epochs=2", "data.train=20", f"output={tmp_path}"]),
                      show_progress=False)
    with torch.no_grad():
        next(trainer.ema.parameters()).fill_(float("nan"))  # the EMA keeps a NaN (lerp towards finite stays NaN)
    with pytest.raises(ValueError, match="training diverged in epoch 1: the averaged .EMA. model gives non-finite"):
        trainer.train()
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "latest.pt").exists()
