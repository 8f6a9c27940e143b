"""Training loop: per-element energies first, then (1-β)·energy + β·force MSE with AdamW (or Muon), warm-up,
cosine (over the epochs or the time limit) or plateau decay, gradient clipping and an EMA of the
weights (used for validation and export).
Checkpoints (latest, best) after every evaluation; `resume` continues exactly where a run stopped.
Runs on CPU, one CUDA GPU, or several processes under torchrun (DDP)."""
import contextlib
import csv
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from so3krates.model import SO3krates, SO3kratesConfig, SO3kratesPotential
from so3krates.model_file import save_model
from so3krates.so3lr import CONFIG as SO3LR_CONFIG, NAME as SO3LR_NAME

from .batching import EnergiesAndProperties, collate, labelled_mse, molecular_dipoles, predict
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import DataError, Frames, read_frames
from .finetune import freeze, load_initial_model, refit_atomic_energies
from .fitting import fit_atomic_energies
from .optimizers import load_optimizer_state, make_optimizer
from .schedule import LearningRateSchedule
from .splits import Split, make_split


DEFAULT_LR = 1e-3
FINETUNE_LR = 1e-4  # a pretrained model's weights are already near a minimum: smaller steps keep what it knows
MAX_NONFINITE_STEPS_IN_A_ROW = 20  # skipped batches before a run counts as diverged


class TrainingDivergedError(ValueError):
    """The weights blew up under these optimisation settings: the message says where and what to change."""


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clone(model: SO3krates) -> SO3krates:
    """An independent copy (deepcopy fails on e3nn's scripted functions)."""
    copy = SO3krates(model.config, next(model.parameters()).dtype)
    copy.load_state_dict(model.state_dict())
    return copy.to(next(model.parameters()).device)


class Trainer:
    def __init__(self, config: TrainConfig, resume: bool = False, show_progress: bool = True):
        self.config = config
        self.out = Path(config.output)
        self.show_progress = show_progress
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = torch.device(config.device)
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if config.tf32 and self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[config.dtype]
        self.frames = self._read_data()
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.state = load_checkpoint(self.out / "latest.pt")
            self.split = Split(**self.state["split"])
        else:
            self.state = None
            self.split = make_split(self.frames, config.data.train, config.data.valid, config.data.test,
                                    seed=config.seed, by=config.data.split_by)
        self.train_frames = self.frames.select(self.split.train)
        self.valid_frames = self.frames.select(self.split.valid)
        self._build()

    def _read_data(self) -> Frames:
        data = self.config.data
        frames = read_frames(data.path, data.format, **data.options)
        if data.exclude:
            drop = set(np.loadtxt(data.exclude, dtype=np.int64, ndmin=1).tolist())
            frames = frames.select([k for k in range(len(frames)) if k not in drop])
        return frames

    def _model_config(self) -> SO3kratesConfig:
        """The architecture to train from scratch: cfg.model's settings (or the "so3lr" preset), with the
        data's elements and, for charged data, the charge embedding."""
        values = self.config.model
        if isinstance(values, str):
            if values.lower() != SO3LR_NAME:
                raise ValueError(f"model: {values!r} is not a preset; give settings, or 'so3lr' (SO3LR's architecture)")
            values = {**SO3LR_CONFIG, "elements": self.frames.elements}
        values = dict(values)
        if values.pop("long_range", False):  # SO3LR's physical terms on top of any architecture
            values.update(zbl_repulsion=True, electrostatic_energy=True, dispersion_energy=True)
        values.setdefault("elements", self.frames.elements)
        # charged molecules in the data: the model needs to know each molecule's total charge
        values.setdefault("use_charge_embed", bool(np.any(self.frames.charge != 0)))
        model_config = SO3kratesConfig.from_dict(values)
        missing = sorted(set(self.frames.elements) - set(model_config.elements))
        if missing:
            raise DataError(f"{self.config.data.path}: the data hold elements {missing} that model.elements "
                            f"{model_config.elements} lacks")
        return model_config

    def _build(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if cfg.init_from is not None and cfg.model:
            raise ValueError(f"model: the architecture comes from init_from={cfg.init_from}; remove the model settings")
        if self.state is not None:  # a resumed run continues the model it stored (later options keep their meaning)
            self.model = SO3krates(SO3kratesConfig.from_stored(self.state["model_config"]), self.dtype)
        elif cfg.init_from is not None:
            self.model = load_initial_model(cfg.init_from, self.frames.elements, self.dtype)
        else:
            self.model = SO3krates(self._model_config(), self.dtype)
        if self.state is None:
            self._initial_energies()
            self.split.save(self.out / "split.json")
            (self.out / "metrics.csv").unlink(missing_ok=True)  # a new run's log, not appended to an old one
        freeze(self.model, cfg.freeze_embeddings, cfg.freeze_layers)
        self.model.to(self.device)
        self.ema = clone(self.model)
        self.network = EnergiesAndProperties(self.model)
        if self.world > 1:
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.network, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        o = cfg.optim
        lr = o.lr if o.lr is not None else (FINETUNE_LR if cfg.init_from is not None else DEFAULT_LR)
        self.optimizer = make_optimizer(self.model, o.optimizer, lr, o.weight_decay, o.amsgrad, o.muon_ns_steps)
        self.steps_per_epoch = math.ceil(len(self.train_frames) / (o.batch_size * self.world))
        self.schedule = LearningRateSchedule(lr, o.min_lr, o.warmup_steps, o.schedule, o.epochs * self.steps_per_epoch,
                                             o.time_limit_s, o.plateau_patience)
        self.epoch, self.step, self.best = 0, 0, float("inf")
        self.nonfinite_in_a_row = 0  # batches skipped since the last step taken
        self._tensorboard = None  # SummaryWriter once opened, False where tensorboard is missing
        self.seconds_per_step = 0.0  # of the last epoch: the schedule's clock within an epoch
        self.train_seconds = 0.0  # wall time of the training loop, evaluations included (what time_limit_s bounds)
        if self.state is not None:
            self.model.load_stored_state(self.state["model"])
            self.ema.load_stored_state(self.state["ema"])
            load_optimizer_state(self.optimizer, self.state["optimizer"], str(self.out / "latest.pt"), o.optimizer)
            if "schedule" in self.state:  # checkpoints of 0.1.0 kept torch schedulers, whose plateau never acted
                self.schedule.load_state_dict(self.state["schedule"])
            self.epoch, self.step, self.best = self.state["epoch"], self.state["step"], self.state["best"]
            self.train_seconds = self.state["train_seconds"]

    def _initial_energies(self) -> None:
        """Per-element energies before the first step: fitted to the data (or given); a model from
        init_from keeps its network and gets them refitted to the residual of its own energies."""
        cfg = self.config
        if cfg.init_from is not None:
            if cfg.atomic_energies != "fit":
                raise ValueError("atomic_energies: with init_from they are fitted to the residual of the model's "
                                 "energies on the training data; leave atomic_energies at 'fit'")
            refit_atomic_energies(self.model, self.train_frames, cfg.fit_intercept)
            return
        if cfg.atomic_energies == "fit":
            energies = fit_atomic_energies(self.train_frames, self.model.config.elements, cfg.fit_intercept)
        else:
            energies = {int(z): float(e) for z, e in dict(cfg.atomic_energies).items()}
        self.model.set_atomic_energies(energies)
        # the network's output is scaled to the RMS force so it starts on the data's scale
        rms_force = float(np.sqrt(np.mean(self.train_frames.forces ** 2)))
        with torch.no_grad():
            self.model.energy_scale.fill_(rms_force)

    def _collate(self, frames: Frames, indices) -> Dict[str, torch.Tensor]:
        config = self.model.config
        return collate(frames, indices, config.cutoff, self.dtype, self.device, config.long_range, config.lr_cutoff)

    def _loss(self, batch: Dict[str, torch.Tensor]):
        o = self.config.optim
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            energy, forces, charges = predict(self.network, batch, True, self.model.config.lr_cutoff)
        energy, forces = energy.to(self.dtype), forces.to(self.dtype)
        energy_error = (energy - batch["energy"]) / batch["n_atoms"]
        loss = (1 - o.force_weight) * energy_error.pow(2).mean() + o.force_weight * (forces - batch["forces"]).pow(2).mean()
        if charges is not None:
            charges = charges.to(self.dtype)
            if o.dipole_weight:
                dipole = molecular_dipoles(charges, batch["positions"], batch["batch"], len(batch["n_atoms"]))
                loss = loss + o.dipole_weight * labelled_mse(dipole, batch["dipole"])
            if o.charges_weight:
                loss = loss + o.charges_weight * labelled_mse(charges, batch["partial_charges"])
        return loss, energy_error.abs().mean().item(), (forces - batch["forces"]).abs().mean().item()

    @torch.no_grad()
    def _update_ema(self) -> None:
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - self.config.optim.ema_decay)

    def validate(self, model: torch.nn.Module) -> Dict[str, float]:
        """Energy MAE per atom and force-component MAE (eV, eV/Å) on the validation split; for models
        with partial charges also the dipole-component (e·Å) and charge (e) MAE where the data have them."""
        frames = self.valid_frames if len(self.valid_frames) else self.train_frames
        e_err, f_err, n = 0.0, 0.0, 0
        dipole_errors, charge_errors = [], []
        for start in range(0, len(frames), 32):
            batch = self._collate(frames, range(start, min(start + 32, len(frames))))
            energy, forces, charges = predict(model, batch, False, model.config.lr_cutoff)
            e_err += ((energy.detach() - batch["energy"]) / batch["n_atoms"]).abs().sum().item()
            f_err += (forces - batch["forces"]).abs().sum().item()
            n += len(batch["n_atoms"])
            if charges is not None:
                dipole = molecular_dipoles(charges.detach(), batch["positions"], batch["batch"], len(batch["n_atoms"]))
                dipole_errors.append((dipole - batch["dipole"]).abs().flatten())
                charge_errors.append((charges.detach() - batch["partial_charges"]).abs())
        metrics = {"valid_energy_mae_eV_per_atom": e_err / n,
                   "valid_force_mae_eV_A": f_err / (3 * len(frames.atomic_numbers))}
        for name, errors in (("valid_dipole_mae_eA", dipole_errors), ("valid_charges_mae_e", charge_errors)):
            errors = torch.cat(errors) if errors else torch.zeros(0)
            if torch.isfinite(errors).any():
                metrics[name] = errors[torch.isfinite(errors)].mean().item()
        return metrics

    def _checkpoint(self, metrics: Dict[str, float]) -> None:
        state = {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                 "epoch": self.epoch, "step": self.step, "best": self.best, "train_seconds": self.train_seconds,
                 "split": self.split.__dict__, "config": self.config.to_dict(),
                 "model_config": self.model.config.to_dict(), "metrics": metrics}
        save_checkpoint(state, self.out / "latest.pt")
        if metrics["valid_force_mae_eV_A"] <= self.best:
            save_checkpoint(state, self.out / "best.pt")

    def _log(self, metrics: Dict[str, float]) -> None:
        path = self.out / "metrics.csv"
        new = not path.exists()
        columns = list(metrics)
        if not new:  # a run resumed from an older version keeps its file's columns
            with path.open(newline="") as existing:
                columns = next(csv.reader(existing))
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(metrics)
        tensorboard = self._tensorboard_writer()
        if tensorboard is not None:
            for key, value in metrics.items():
                if key not in ("epoch", "step"):
                    tensorboard.add_scalar(key, value, int(metrics["step"]))
            tensorboard.flush()

    def _tensorboard_writer(self):
        """One TensorBoard writer (one event file) for this process's run, opened at the first log; None
        without tensorboard, which is optional: the CSV log always exists. (A writer per evaluation cost
        0.1 s each, 3 % of a small molecule's epoch, and left a file per epoch.)"""
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tensorboard = False
            else:
                self._tensorboard = SummaryWriter(str(self.out / "tensorboard"))
        return self._tensorboard or None

    @contextlib.contextmanager
    def _closing_tensorboard(self):
        """Close the run's TensorBoard writer when training ends or is interrupted: its event file is complete."""
        try:
            yield
        finally:
            if self._tensorboard:
                self._tensorboard.close()
            self._tensorboard = None

    def train(self) -> Optional[Path]:
        """Train until `optim.epochs` or `optim.time_limit_s`; export the EMA model; return its path."""
        o = self.config.optim
        rng_seed = self.config.seed
        columns = [TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn()]
        progress_bars = Progress(*columns, disable=not self.show_progress or self.rank != 0)
        with progress_bars as progress, self._closing_tensorboard():
            task = progress.add_task("", total=self.steps_per_epoch, epoch=self.epoch)
            while self.epoch < o.epochs:
                if o.time_limit_s is not None and self.train_seconds >= o.time_limit_s:
                    break
                order = np.random.default_rng([rng_seed, self.epoch]).permutation(len(self.train_frames))
                progress.reset(task, total=self.steps_per_epoch, epoch=self.epoch + 1)
                start = time.perf_counter()
                self.model.train()
                train_mae = np.zeros(2)  # running sums of the batches' energy (eV/atom) and force (eV/Å) MAE
                steps_taken, last_loss = 0, math.nan
                for b in range(self.steps_per_epoch):
                    global_batch = order[b * o.batch_size * self.world:(b + 1) * o.batch_size * self.world]
                    mine = global_batch[self.rank::self.world]
                    batch = self._collate(self.train_frames, mine)
                    loss, e_mae, f_mae = self._loss(batch)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    # after DDP's all-reduce, so that every rank takes the same decision; the norm before
                    # clipping, which would turn every gradient into NaN and hide where it was not finite
                    weights = [p for p in self.model.parameters() if p.grad is not None]
                    grad_norm = torch.nn.utils.get_total_norm([p.grad for p in weights], foreach=True)
                    if not torch.isfinite(grad_norm):
                        self._skip_nonfinite_step(mine, bool(torch.isfinite(loss)))
                        progress.update(task, advance=1)
                        continue
                    torch.nn.utils.clip_grads_with_norm_(weights, o.grad_clip, grad_norm, foreach=True)
                    self.nonfinite_in_a_row = 0
                    # the time within an epoch is estimated from the steps taken, so that every DDP rank
                    # uses the same rate (the measured time is agreed between ranks once per epoch)
                    lr = self.schedule(self.step, self.train_seconds + b * self.seconds_per_step)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr * group.get("lr_scale", 1.0)
                    self.optimizer.step()
                    self._update_ema()
                    self.step += 1
                    steps_taken += 1
                    last_loss = loss.item()
                    train_mae += (e_mae, f_mae)
                    progress.update(task, advance=1, description=f"loss {last_loss:.3e}  E {1000 * e_mae:.1f} "
                                                                 f"meV/atom  F {1000 * f_mae:.1f} meV/Å")
                self.epoch += 1
                elapsed = self._elapsed(start)
                self.seconds_per_step = elapsed / self.steps_per_epoch
                last = self.epoch == o.epochs or (o.time_limit_s is not None and
                                                  self.train_seconds + elapsed >= o.time_limit_s)
                if self.epoch % self.config.eval_every == 0 or last:
                    self._evaluate_and_save(last_loss, train_mae / steps_taken if steps_taken else np.full(2, np.nan),
                                            start)
                else:
                    self.train_seconds += elapsed
        if self.rank == 0:
            return self.export(self.out / "model.pt")
        return None

    def _skip_nonfinite_step(self, rows: np.ndarray, loss_is_finite: bool) -> None:
        """Leave the weights alone after a batch whose loss or gradient is not finite: one such step
        would turn every weight into NaN, and the run would go on for its whole budget and export a
        NaN model. Say which frames, and whether the loss, only its gradient (then in which weights) or
        only the gradient's norm was not finite; stop once it keeps happening (the weights have diverged)."""
        self.nonfinite_in_a_row += 1
        where = f"epoch {self.epoch + 1}, step {self.step}" + (f", rank {self.rank}" if self.world > 1 else "")
        frames = ", ".join(self.train_frames.origin[rows])
        what = "non-finite loss"
        if loss_is_finite:
            named = [(name, p) for name, p in self.model.named_parameters() if p.grad is not None]
            bad = [name for name, p in named if not torch.isfinite(p.grad).all()]
            if bad:
                what = (f"finite loss, non-finite gradient in {len(bad)} of {len(named)} weight tensors "
                        f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
            else:  # every entry finite, but the sum of their squares overflowed the gradient's dtype
                largest, name = max((p.grad.abs().max().item(), name) for name, p in named)
                what = (f"finite loss and gradient, but the gradient's norm overflows {named[0][1].grad.dtype} "
                        f"(largest entry {largest:.3g}, in {name})")
        print(f"{where}: {what} on frames {frames}; step skipped", file=sys.stderr)
        if self.nonfinite_in_a_row >= MAX_NONFINITE_STEPS_IN_A_ROW:
            raise TrainingDivergedError(
                f"training diverged at {where}: {self.nonfinite_in_a_row} steps in a row gave a non-finite loss or "
                f"gradient (last batch: frames {frames}); {self.out / 'latest.pt'} holds the last evaluated epoch. "
                f"Train again with a smaller optim.lr (now {self.optimizer.param_groups[0]['lr']:.3g} at this step) "
                f"or optim.grad_clip (now {self.config.optim.grad_clip:g})")

    def _elapsed(self, start: float) -> float:
        """Seconds since `start`, the same on every DDP rank (the slowest rank's)."""
        seconds = time.perf_counter() - start
        if self.world > 1:
            agreed = torch.tensor([seconds], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
            seconds = float(agreed.item())
        return seconds

    def _evaluate_and_save(self, train_loss: float, train_mae: np.ndarray, epoch_start: float) -> None:
        """Validate the EMA model, step the plateau schedule, log and checkpoint; the evaluation counts
        towards the training time (learning curves and time_limit_s are in wall time). `train_mae`: the
        epoch's mean batch energy (eV/atom) and force (eV/Å) MAE of the weights being trained, against
        which the validation errors show under- or overfitting."""
        metrics = {"epoch": self.epoch, "step": self.step, "train_loss": train_loss,
                   "train_energy_mae_eV_per_atom": float(train_mae[0]), "train_force_mae_eV_A": float(train_mae[1]),
                   "lr": self.optimizer.param_groups[0]["lr"], **self.validate(self.ema)}
        if not (math.isfinite(metrics["valid_energy_mae_eV_per_atom"]) and math.isfinite(metrics["valid_force_mae_eV_A"])):
            raise TrainingDivergedError(
                f"training diverged in epoch {self.epoch}: the averaged (EMA) model gives non-finite energies or "
                f"forces on the validation frames; {self.out / 'latest.pt'} holds the last evaluated epoch. Train "
                f"again with a smaller optim.lr or optim.grad_clip")
        self.schedule.validated(metrics["valid_force_mae_eV_A"])
        self.train_seconds += self._elapsed(epoch_start)
        metrics["time_s"] = self.train_seconds
        if self.rank == 0:
            self.best = min(self.best, metrics["valid_force_mae_eV_A"])
            self._checkpoint(metrics)
            self._log(metrics)

    def export(self, path: Path) -> Path:
        """Write the EMA weights as a model file (the runtime's TorchScript format)."""
        data = self.config.data
        description = {"path": str(data.path), "sha256": file_sha256(data.path), "format": data.format,
                       "frames": len(self.frames), "train": len(self.split.train), "valid": len(self.split.valid),
                       "test": len(self.split.test), "split_by": data.split_by, "seed": self.config.seed,
                       "init_from": self.config.init_from}
        potential = SO3kratesPotential(clone(self.ema).cpu())
        save_model(potential, path, training_data=description)
        (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1, default=str))
        return path

