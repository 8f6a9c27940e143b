"""Hyperparameters of an SO3krates model (defaults: mlff v1.0 config.yaml, the paper's code)."""
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List

from .layers import ACTIVATIONS, MESSAGE_NORMALIZATIONS
from .radial import CUTOFF_FUNCTIONS, RADIAL_BASES

EV_INITS = ("zero", "neighbour_mean")
MAX_ATOMIC_NUMBER = 118


@dataclass
class SO3kratesConfig:
    """All architecture choices of SO3krates.

    ev_init: "zero" (mlff v1.0) or "neighbour_mean" (NeurIPS 2022: cutoff-weighted sum of neighbour
    spherical harmonics, divided by the fixed `avg_num_neighbors` rather than the per-atom count
    so that the energy stays smooth when a neighbour crosses the cutoff).
    message_normalization: "sqrt_num_features" (v1.0), "avg_num_neighbors" (SO3LR) or "identity".
    use_charge_embed: add features from the molecule's total charge (charged SPICE molecules); such a
    model must be given the charge at run time.
    """

    elements: List[int]
    num_features: int = 128
    num_heads: int = 4
    num_layers: int = 2
    degrees: List[int] = field(default_factory=lambda: [1, 2, 3, 4])
    cutoff: float = 5.0  # Å
    num_radial: int = 32
    radial_basis: str = "physnet"
    cutoff_function: str = "cosine"
    activation: str = "silu"
    qk_activation: str = "identity"
    use_spherical_filter: bool = True
    message_normalization: str = "sqrt_num_features"
    avg_num_neighbors: float = 1.0
    layer_norm_1: bool = False
    layer_norm_2: bool = False
    residual_mlp_1: bool = False
    residual_mlp_2: bool = False
    identity_at_init: bool = False
    ev_init: str = "zero"
    energy_regression_dim: int = 128
    zero_readout: bool = True
    learn_atomic_type_scales: bool = False
    learn_atomic_type_shifts: bool = False
    use_charge_embed: bool = False

    def __post_init__(self) -> None:
        self.elements = sorted(int(z) for z in self.elements)
        self.degrees = [int(l) for l in self.degrees]
        problems = []
        if not self.elements:
            problems.append("elements is empty")
        bad = [z for z in self.elements if not 1 <= z <= MAX_ATOMIC_NUMBER]
        if bad:
            problems.append(f"elements {bad} are not atomic numbers 1..{MAX_ATOMIC_NUMBER}")
        if len(set(self.elements)) != len(self.elements):
            problems.append(f"elements {self.elements} has repeats")
        if not self.degrees or min(self.degrees) < 1 or len(set(self.degrees)) != len(self.degrees):
            problems.append(f"degrees {self.degrees} must be distinct integers >= 1")
        if self.num_features % self.num_heads or self.num_features % max(len(self.degrees), 1):
            problems.append(f"num_features={self.num_features} must be divisible by num_heads={self.num_heads} "
                            f"and by the number of degrees ({len(self.degrees)})")
        if self.cutoff <= 0:
            problems.append(f"cutoff={self.cutoff} Å must be positive")
        if self.avg_num_neighbors <= 0:
            problems.append(f"avg_num_neighbors={self.avg_num_neighbors} must be positive")
        for name, value, allowed in (("radial_basis", self.radial_basis, RADIAL_BASES),
                                     ("cutoff_function", self.cutoff_function, CUTOFF_FUNCTIONS),
                                     ("activation", self.activation, ACTIVATIONS),
                                     ("qk_activation", self.qk_activation, ACTIVATIONS),
                                     ("message_normalization", self.message_normalization, MESSAGE_NORMALIZATIONS),
                                     ("ev_init", self.ev_init, EV_INITS)):
            if value not in allowed:
                problems.append(f"{name}={value!r} is not one of {allowed}")
        if problems:
            raise ValueError("invalid SO3krates configuration: " + "; ".join(problems))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "SO3kratesConfig":
        """Build from a dict, rejecting unknown keys by name (a typo must not be ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SO3krates hyperparameters {unknown}; known: {sorted(known)}")
        return cls(**values)
