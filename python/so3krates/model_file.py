"""The model file: one TorchScript `.pt` holding an SO3kratesPotential and its metadata.

The metadata (JSON, stored as an extra file inside the TorchScript archive) says what the model is:
package and format version, hyperparameters, elements, cutoff, units, per-element energies,
training data description and a digest of the weights, so that a file that is not ours, is
corrupted, or was written by an incompatible version is refused with a clear message.
"""
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

from .atomic_file import atomic_path
from .model import SO3krates, SO3kratesConfig, SO3kratesPotential
from .so3lr import resolve_model_path

FORMAT_NAME = "openmm-so3krates-model"
# 2: forward(atomic_numbers, positions, cell, total_charge) and the compiled neighbour-list op
# 3: the compiled pair-attention ops (older installations lack them); format 2 files still run
# 4: forward(..., total_charge, num_unpaired_electrons), set_lr_cutoff, SO3LR's options; files of
#    formats 2 and 3 run through LegacyCall
FORMAT_VERSION = 4
OLDEST_READABLE_FORMAT = 2
METADATA_FILE = "so3krates.json"
UNITS = {"length": "angstrom", "energy": "eV", "forces": "eV/angstrom"}
PRECISIONS = {"single": torch.float32, "double": torch.float64}


class ModelFileError(RuntimeError):
    """A model file that cannot be used: missing, not ours, corrupted or from an incompatible version."""


@dataclass
class ModelInfo:
    """Metadata of a model file."""

    config: SO3kratesConfig
    package_version: str
    format_version: int
    dtype: str
    atomic_energies_eV: Dict[int, float]
    training_data: Optional[Dict[str, Any]]
    created: str
    weights_sha256: str
    default_charge: Optional[float] = None
    default_precision: Optional[str] = None

    @property
    def elements(self):
        return self.config.elements

    @property
    def cutoff_angstrom(self) -> float:
        return self.config.cutoff

    def torch_dtype(self, precision: Optional[str]) -> torch.dtype:
        """The dtype to run the model in: "single", "double", or None for the file's default (the
        precision it was stored in, unless it names another: SO3LR is stored exactly in float64 and
        runs in single precision by default, as the reference)."""
        if precision is None:
            return PRECISIONS[self.default_precision] if self.default_precision else getattr(torch, self.dtype)
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} is not one of {sorted(PRECISIONS)} (or None for the "
                             f"model file's {self.dtype})")
        return PRECISIONS[precision]

    def to_dict(self) -> Dict[str, Any]:
        return {"format": FORMAT_NAME, "format_version": self.format_version,
                "package_version": self.package_version, "created": self.created, "dtype": self.dtype,
                "units": UNITS, "elements": self.config.elements, "cutoff_angstrom": self.config.cutoff,
                "hyperparameters": self.config.to_dict(),
                "atomic_energies_eV": {str(z): e for z, e in self.atomic_energies_eV.items()},
                "training_data": self.training_data, "weights_sha256": self.weights_sha256,
                "default_charge": self.default_charge, "default_precision": self.default_precision}


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer (name, dtype, shape, bytes) in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_model(potential: SO3kratesPotential, path: Union[str, Path],
               training_data: Optional[Dict[str, Any]] = None, default_charge: Optional[float] = None,
               default_precision: Optional[str] = None) -> ModelInfo:
    """Script `potential` and write it with its metadata to `path` atomically (temp file + rename).
    `default_charge`: the total charge (e) assumed when a user gives none (None: the user must give
    one if the model takes charges). `default_precision`: "single" or "double" to run in when the
    user names none (None: the stored precision)."""
    if default_precision is not None and default_precision not in PRECISIONS:
        raise ValueError(f"default_precision={default_precision!r} is not one of {sorted(PRECISIONS)}")
    from . import __version__

    path = Path(path)
    potential = potential.eval()
    scripted = torch.jit.script(potential)
    dtype = next(potential.parameters()).dtype
    info = ModelInfo(config=potential.model.config, package_version=__version__, format_version=FORMAT_VERSION,
                     dtype=str(dtype).replace("torch.", ""),
                     atomic_energies_eV=potential.model.atomic_energies_eV(), training_data=training_data,
                     created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     weights_sha256=weights_digest(scripted), default_charge=default_charge,
                     default_precision=default_precision)
    with atomic_path(path) as tmp:
        torch.jit.save(scripted, tmp, _extra_files={METADATA_FILE: json.dumps(info.to_dict(), indent=1)})
    return info


def _parse_metadata(path: Path, text: str) -> ModelInfo:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: the model metadata is not valid JSON ({err}); the file is corrupted") from None
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not an openmm-so3krates model file (metadata format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by openmm-so3krates {meta.get('package_version')} in model format "
            f"{version}; this installation reads formats up to {FORMAT_VERSION}: upgrade openmm-so3krates")
    if version < OLDEST_READABLE_FORMAT:
        raise ModelFileError(
            f"{path} is in model format {version} (openmm-so3krates {meta.get('package_version')}), which this "
            f"installation no longer runs: write it again with `so3krates export CHECKPOINT` from its training run")
    try:
        return ModelInfo(config=SO3kratesConfig.from_stored(meta["hyperparameters"]),
                         package_version=meta["package_version"], format_version=version, dtype=meta["dtype"],
                         atomic_energies_eV={int(z): float(e) for z, e in meta["atomic_energies_eV"].items()},
                         training_data=meta.get("training_data"), created=meta["created"],
                         weights_sha256=meta["weights_sha256"], default_charge=meta.get("default_charge"),
                         default_precision=meta.get("default_precision"))
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: model metadata is incomplete or invalid ({err})") from None


def load_model(path: Union[str, Path], device: Union[str, torch.device] = "cpu",
               verify_weights: bool = True) -> Tuple[torch.jit.ScriptModule, ModelInfo]:
    """Load a model file for inference -> (TorchScript SO3kratesPotential, metadata). Its parameters
    are frozen (no gradients wanted; keeping them would hold more of the forward pass in memory).
    Raises ModelFileError with the reason when the file is missing, not a model of ours, corrupted
    or too new. `path` may also be the name "so3lr": the SO3LR model shipped with this package."""
    path = resolve_model_path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as err:  # torch raises RuntimeError or ValueError, with long C++ traces
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"{path} is not a readable TorchScript model file (corrupted or another "
                             f"format): {reason}") from None
    if not extra[METADATA_FILE]:
        raise ModelFileError(f"{path} is a TorchScript file but not an openmm-so3krates model "
                             f"(it has no {METADATA_FILE} metadata)")
    info = _parse_metadata(path, extra[METADATA_FILE])
    if verify_weights and weights_digest(module) != info.weights_sha256:
        raise ModelFileError(f"{path}: the weights do not match the digest recorded when the file was "
                             f"written; the file is corrupted")
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    if info.format_version < 4:
        module = torch.jit.script(LegacyCall(module))
    return module, info


class LegacyCall(torch.nn.Module):
    """A model file of format 2 or 3 behind the format-4 call (its models have no spin input)."""

    def __init__(self, potential: torch.jit.ScriptModule):
        super().__init__()
        self.potential = potential

    def forward(self, atomic_numbers: torch.Tensor, positions: torch.Tensor, cell: Optional[torch.Tensor] = None,
                total_charge: float = 0.0, num_unpaired_electrons: float = 0.0) -> torch.Tensor:
        return self.potential(atomic_numbers, positions, cell, total_charge)


def create_potential(config: SO3kratesConfig, dtype: torch.dtype = torch.float32, seed: Optional[int] = None,
                     energy_scale_eV: Optional[float] = None) -> SO3kratesPotential:
    """A fresh (untrained) potential; `seed` makes the random weights reproducible. `energy_scale_eV`
    scales the energy readout of every element: an untrained model has no bonds, so a small scale
    keeps short MD runs of it finite (speed does not depend on it)."""
    if seed is not None:
        torch.manual_seed(seed)
    potential = SO3kratesPotential(SO3krates(config, dtype))
    if energy_scale_eV is not None:
        with torch.no_grad():
            potential.model.energy_scale.fill_(energy_scale_eV)
    return potential
