"""The training configuration: one typed object, read from YAML, with `key.sub=value` overrides."""
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union, get_args, get_origin, get_type_hints

import re

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; accept exponent floats without a dot, as users write them."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$|^[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?$"
               r"|^[-+]?[0-9][0-9_]*\.[0-9_]*$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


@dataclass
class DataConfig:
    path: str = ""
    format: Optional[str] = None  # rmd17, sgdml, extxyz, spice, ani1x; None: detect
    options: Dict[str, Any] = field(default_factory=dict)  # passed to the reader (units, keys, filters)
    train: Union[int, float] = 0.8  # counts, or fractions of frames (molecules with split_by=molecule)
    valid: Union[int, float] = 0.1
    test: Union[int, float] = 0.1
    split_by: str = "frame"  # or "molecule"
    exclude: Optional[str] = None  # file of frame indices to drop (written by `so3krates check-data`)


@dataclass
class OptimConfig:
    epochs: int = 100
    time_limit_s: Optional[float] = None  # wall-clock budget (s) of the training loop: cosine decays over it, then stop and export
    batch_size: int = 5
    lr: Optional[float] = None  # None: DEFAULT_LR from scratch, FINETUNE_LR with init_from
    optimizer: str = "adamw"  # or "muon": Muon on the hidden weight matrices, AdamW on the rest
    muon_ns_steps: int = 5  # Newton-Schulz iterations that orthogonalise each Muon update (torch's default)
    weight_decay: float = 0.0
    amsgrad: bool = False
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine over the epochs or time_limit_s, or plateau (halve when validation stalls)
    min_lr: float = 1e-5
    plateau_patience: int = 10
    grad_clip: float = 10.0
    ema_decay: float = 0.99
    force_weight: float = 0.99  # β: loss = (1-β)·MSE(E/atom) + β·MSE(F) (+ the two below)
    dipole_weight: float = 0.1  # × MSE of the dipole vector (e·Å)², where models predict charges and data have dipoles
    charges_weight: float = 0.0  # × MSE of the partial charges (e²), where data have them (e.g. SPICE MBIS)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    # SO3kratesConfig fields (elements default to the data's; long_range: true adds SO3LR's ZBL, electrostatics
    # and dispersion), or "so3lr": SO3LR's architecture with random weights
    model: Union[str, Dict[str, Any]] = field(default_factory=dict)
    init_from: Optional[str] = None  # "so3lr" or a model file: architecture and weights from it (fine-tuning)
    freeze_embeddings: bool = False  # keep the element/charge/spin embeddings of init_from fixed
    freeze_layers: int = 0  # keep the first N transformer blocks of init_from fixed
    optim: OptimConfig = field(default_factory=OptimConfig)
    atomic_energies: Union[str, Dict[int, float]] = "fit"  # "fit", or {Z: isolated-atom energy in eV}
    fit_intercept: bool = False
    output: str = "runs/so3krates"
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    tf32: bool = False  # CUDA: TF32 matmuls (A100)
    bf16: bool = False  # autocast the network to bfloat16 (A100); forces, loss and optimizer stay in float32
    eval_every: int = 1  # epochs
    threads: Optional[int] = None  # CPU threads per process; None: OMP_NUM_THREADS, else the affinity mask

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _checked(value: Any, expected: Any, key: str) -> Any:
    """`value` if it fits the declared type `expected` (ints pass as floats), else a ValueError naming the
    key, the value and the type."""
    options = get_args(expected) if get_origin(expected) is Union else (expected,)
    for option in options:
        base = get_origin(option) or option
        if option is type(None) and value is None:
            return value
        if base is bool and isinstance(value, bool):
            return value
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base in (str, dict, list) and isinstance(value, base):
            return value
    names = " or ".join("null" if o is type(None) else getattr(get_origin(o) or o, "__name__", str(o)) for o in options)
    raise ValueError(f"{key}: {value!r} is not a valid value; expected {names}")


def _build(cls, values: Dict[str, Any], where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    types = get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else None
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{name}: expected a mapping of settings, got {value!r}")
            value = _build(type(default), value, f"{where}.{name}")
        else:
            value = _checked(value, types[name], f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def _set(tree: Dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def load_config(path: Optional[str], overrides: List[str] = ()) -> TrainConfig:
    """Read YAML (if given) and apply overrides like `optim.lr=3e-4` (values parsed as YAML)."""
    values: Dict[str, Any] = {}
    if path is not None:
        values = parse_yaml(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a training configuration must be a mapping")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        _set(values, key, parse_yaml(raw))
    return _build(TrainConfig, values, str(path or "config"))
