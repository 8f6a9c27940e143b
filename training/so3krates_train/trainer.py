"""Training loop: per-element energies first, then (1-β)·energy + β·force MSE with AdamW, warm-up,
cosine or plateau decay, gradient clipping and an EMA of the weights (used for validation and export).
Checkpoints (latest, best) after every evaluation; `resume` continues exactly where a run stopped.
Runs on CPU, one CUDA GPU, or several processes under torchrun (DDP)."""
import csv
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from so3krates.model import SO3krates, SO3kratesConfig, SO3kratesPotential
from so3krates.model_file import save_model

from .batching import collate, predict
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import DataError, Frames, read_frames
from .fitting import fit_atomic_energies
from .splits import Split, make_split


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

    def _build(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        model_values = dict(cfg.model)
        model_values.setdefault("elements", self.frames.elements)
        # charged molecules in the data: the model needs to know each molecule's total charge
        model_values.setdefault("use_charge_embed", bool(np.any(self.frames.charge != 0)))
        # a resumed run continues the model it stored (options added since keep their stored meaning)
        model_config = (SO3kratesConfig.from_dict(model_values) if self.state is None
                        else SO3kratesConfig.from_stored(self.state["model_config"]))
        if model_config.long_range:
            raise ValueError("model: electrostatic_energy / dispersion_energy (SO3LR's long-range terms) cannot be "
                             "trained yet; train without them, or run the pretrained SO3LR (MLPotential('so3lr'))")
        missing = sorted(set(self.frames.elements) - set(model_config.elements))
        if missing:
            raise DataError(f"{cfg.data.path}: the data hold elements {missing} that model.elements "
                            f"{model_config.elements} lacks")
        self.model = SO3krates(model_config, self.dtype)
        if self.state is None:
            if cfg.atomic_energies == "fit":
                energies = fit_atomic_energies(self.train_frames, model_config.elements, cfg.fit_intercept)
            else:
                energies = {int(z): float(e) for z, e in dict(cfg.atomic_energies).items()}
            self.model.set_atomic_energies(energies)
            # the network's output is scaled to the RMS force so it starts on the data's scale
            rms_force = float(np.sqrt(np.mean(self.train_frames.forces ** 2)))
            with torch.no_grad():
                self.model.energy_scale.fill_(rms_force)
            self.split.save(self.out / "split.json")
        self.model.to(self.device)
        self.ema = clone(self.model)
        self.network = self.model
        if self.world > 1:
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_frames) / (o.batch_size * self.world))
        total = max(1, o.epochs * self.steps_per_epoch)

        def lr_factor(step: int) -> float:
            warm = min(1.0, (step + 1) / max(1, o.warmup_steps))
            if o.schedule != "cosine":
                return warm
            progress = min(1.0, step / total)
            floor = o.min_lr / o.lr
            return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

        if o.schedule not in ("cosine", "plateau"):
            raise ValueError(f"optim.schedule={o.schedule!r} must be 'cosine' or 'plateau'")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=0.5, patience=o.plateau_patience, min_lr=o.min_lr) if o.schedule == "plateau" else None
        self.epoch, self.step, self.best = 0, 0, float("inf")
        self.train_seconds = 0.0
        if self.state is not None:
            self.model.load_stored_state(self.state["model"])
            self.ema.load_stored_state(self.state["ema"])
            self.optimizer.load_state_dict(self.state["optimizer"])
            self.scheduler.load_state_dict(self.state["scheduler"])
            if self.plateau is not None:
                self.plateau.load_state_dict(self.state["plateau"])
            self.epoch, self.step, self.best = self.state["epoch"], self.state["step"], self.state["best"]
            self.train_seconds = self.state["train_seconds"]

    def _loss(self, batch: Dict[str, torch.Tensor]):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            energy, forces = predict(self.network, batch, create_graph=True)
        energy, forces = energy.to(self.dtype), forces.to(self.dtype)
        beta = self.config.optim.force_weight
        energy_error = (energy - batch["energy"]) / batch["n_atoms"]
        loss = (1 - beta) * energy_error.pow(2).mean() + beta * (forces - batch["forces"]).pow(2).mean()
        return loss, energy_error.abs().mean().item(), (forces - batch["forces"]).abs().mean().item()

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.optim.ema_decay
        for ema_p, p in zip(self.ema.parameters(), self.model.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)

    def validate(self, model: torch.nn.Module) -> Dict[str, float]:
        """Energy MAE per atom and force-component MAE (eV, eV/Å) on the validation split."""
        frames = self.valid_frames if len(self.valid_frames) else self.train_frames
        e_err, f_err, n = 0.0, 0.0, 0
        for start in range(0, len(frames), 32):
            batch = collate(frames, range(start, min(start + 32, len(frames))), model.config.cutoff,
                            self.dtype, self.device)
            energy, forces = predict(model, batch, create_graph=False)
            e_err += ((energy.detach() - batch["energy"]) / batch["n_atoms"]).abs().sum().item()
            f_err += (forces - batch["forces"]).abs().sum().item()
            n += len(batch["n_atoms"])
        return {"valid_energy_mae_eV_per_atom": e_err / n,
                "valid_force_mae_eV_A": f_err / (3 * len(frames.atomic_numbers))}

    def _checkpoint(self, metrics: Dict[str, float]) -> None:
        state = {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "plateau": self.plateau.state_dict() if self.plateau is not None else None,
                 "epoch": self.epoch, "step": self.step, "best": self.best, "train_seconds": self.train_seconds,
                 "split": self.split.__dict__, "config": self.config.to_dict(),
                 "model_config": self.model.config.to_dict(), "metrics": metrics}
        save_checkpoint(state, self.out / "latest.pt")
        if metrics["valid_force_mae_eV_A"] <= self.best:
            save_checkpoint(state, self.out / "best.pt")

    def _log(self, metrics: Dict[str, float]) -> None:
        path = self.out / "metrics.csv"
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(metrics))
            if new:
                writer.writeheader()
            writer.writerow(metrics)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional; the CSV log always exists
            return
        with SummaryWriter(str(self.out / "tensorboard")) as tb:
            for key, value in metrics.items():
                if key not in ("epoch", "step"):
                    tb.add_scalar(key, value, int(metrics["step"]))

    def train(self) -> Optional[Path]:
        """Train until `optim.epochs` or `optim.time_limit_s`; export the EMA model; return its path."""
        o = self.config.optim
        rng_seed = self.config.seed
        columns = [TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn()]
        with Progress(*columns, disable=not self.show_progress or self.rank != 0) as progress:
            task = progress.add_task("", total=self.steps_per_epoch, epoch=self.epoch)
            while self.epoch < o.epochs:
                if o.time_limit_s is not None and self.train_seconds >= o.time_limit_s:
                    break
                order = np.random.default_rng([rng_seed, self.epoch]).permutation(len(self.train_frames))
                progress.reset(task, total=self.steps_per_epoch, epoch=self.epoch + 1)
                start = time.perf_counter()
                self.model.train()
                for b in range(self.steps_per_epoch):
                    global_batch = order[b * o.batch_size * self.world:(b + 1) * o.batch_size * self.world]
                    mine = global_batch[self.rank::self.world]
                    batch = collate(self.train_frames, mine, self.model.config.cutoff, self.dtype, self.device)
                    loss, e_mae, f_mae = self._loss(batch)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self._update_ema()
                    self.step += 1
                    progress.update(task, advance=1, description=f"loss {loss.item():.3e}  E {1000 * e_mae:.1f} "
                                                                 f"meV/atom  F {1000 * f_mae:.1f} meV/Å")
                self.train_seconds += time.perf_counter() - start
                self.epoch += 1
                if self.epoch % self.config.eval_every == 0 or self.epoch == o.epochs:
                    self._evaluate_and_save(loss.item())
        if self.rank == 0:
            return self.export(self.out / "model.pt")
        return None

    def _evaluate_and_save(self, train_loss: float) -> None:
        metrics = {"epoch": self.epoch, "step": self.step, "train_loss": train_loss,
                   "lr": self.optimizer.param_groups[0]["lr"], **self.validate(self.ema)}
        if self.plateau is not None:
            self.plateau.step(metrics["valid_force_mae_eV_A"])
        if self.rank == 0:
            self.best = min(self.best, metrics["valid_force_mae_eV_A"])
            self._checkpoint(metrics)
            self._log(metrics)

    def export(self, path: Path) -> Path:
        """Write the EMA weights as a model file (the runtime's TorchScript format)."""
        data = self.config.data
        description = {"path": str(data.path), "sha256": file_sha256(data.path), "format": data.format,
                       "frames": len(self.frames), "train": len(self.split.train), "valid": len(self.split.valid),
                       "test": len(self.split.test), "split_by": data.split_by, "seed": self.config.seed}
        potential = SO3kratesPotential(clone(self.ema).cpu())
        save_model(potential, path, training_data=description)
        (self.out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1, default=str))
        return path

