"""Hyperparameters of an SO3krates model (defaults: mlff v1.0 config.yaml, the paper's code)."""
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

from .layers import ACTIVATIONS, MESSAGE_NORMALIZATIONS
from .physics import FREE_ATOM_POLARIZABILITY
from .radial import CUTOFF_FUNCTIONS, RADIAL_BASES

EV_INITS = ("zero", "neighbour_mean")
MAX_ATOMIC_NUMBER = 118
# fields added after configurations were first stored, with the value that reproduces those
# stored before them (model files, checkpoints); fresh configurations get the dataclass default
STORED_BEFORE = {"exchange_ev_update": False}


@dataclass
class SO3kratesConfig:
    """All architecture choices of SO3krates.

    ev_init: "zero" (mlff v1.0) or "neighbour_mean" (NeurIPS 2022: cutoff-weighted sum of neighbour
    spherical harmonics, divided by the fixed `avg_num_neighbors` rather than the per-atom count
    so that the energy stays smooth when a neighbour crosses the cutoff).
    message_normalization: "sqrt_num_features" (v1.0), "avg_num_neighbors" (SO3LR) or "identity".
    use_charge_embed: add features from the molecule's total charge (charged SPICE molecules); such a
    model must be given the charge at run time. use_spin_embed: the same for the number of unpaired
    electrons (multiplicity - 1), as SO3LR. average_embeddings: divide the sum of the element, charge
    and spin embeddings by the square root of their number (mlff, SO3LR).
    exchange_ev_update: the exchange block also rescales each degree of the Euclidean variables (mlff,
    SO3LR); models stored before this option existed lacked it (False).

    SO3LR's physical terms: zbl_repulsion (nuclear repulsion below 1.5 Å), electrostatic_energy
    (partial-charge head; erf-damped Coulomb of width electrostatic_damping Å), dispersion_energy
    (Hirshfeld-ratio head; vdW-QDO with damping scale dispersion_damping_scale). The last two run on
    a second, long-range neighbour list with cutoff lr_cutoff Å (None: all pairs, vacuum only);
    dispersion is switched off over the last dispersion_switch_width Å before it.
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
    use_spin_embed: bool = False
    average_embeddings: bool = False
    layer_norm_eps: float = 1e-5
    exchange_ev_update: bool = True
    zbl_repulsion: bool = False
    electrostatic_energy: bool = False
    dispersion_energy: bool = False
    electrostatic_damping: float = 4.0  # Å
    dispersion_damping_scale: float = 1.2
    lr_cutoff: Optional[float] = 12.0  # Å
    dispersion_switch_width: float = 2.0  # Å
    hirshfeld_dim: int = 64

    @property
    def takes_charge(self) -> bool:
        """Whether the model's energy depends on the total charge (embedding or charge conservation)."""
        return self.use_charge_embed or self.electrostatic_energy

    @property
    def long_range(self) -> bool:
        """Whether the model has terms on the long-range neighbour list."""
        return self.electrostatic_energy or self.dispersion_energy

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
        if self.lr_cutoff is not None and self.lr_cutoff <= self.dispersion_switch_width:
            problems.append(f"lr_cutoff={self.lr_cutoff} Å must exceed dispersion_switch_width="
                            f"{self.dispersion_switch_width} Å (or be None)")
        if self.dispersion_energy:
            lacking = [z for z in self.elements if z not in FREE_ATOM_POLARIZABILITY]
            if lacking:
                problems.append(f"dispersion_energy needs free-atom data, which exist for {sorted(FREE_ATOM_POLARIZABILITY)} "
                                f"but not for elements {lacking}")
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

    @classmethod
    def from_stored(cls, values: Dict[str, Any]) -> "SO3kratesConfig":
        """Build from hyperparameters stored in a model file or checkpoint: options added since take
        the value that reproduces what was stored (STORED_BEFORE)."""
        return cls.from_dict({**STORED_BEFORE, **values})
