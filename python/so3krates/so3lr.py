"""SO3LR, the pretrained SO3krates force field for (bio)molecules (Kabylda, Frank et al., JACS 2025,
doi:10.1021/jacs.5c09558; MIT licence, © 2024 Thorben Frank): its architecture as an
SO3kratesConfig, the conversion of its reference parameters (`params.pkl` of
github.com/general-molecular-simulations/so3lr, a pickle of numpy arrays: no JAX needed) into our
model, and the converted model file shipped with this package.

SO3LR was trained on forces, dipoles and Hirshfeld ratios, not on energies: its energies are
relative (differences between structures of the same molecule), not total energies.
"""
import json
import pickle
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
import torch

from .model import SO3krates, SO3kratesConfig, SO3kratesPotential

NAME = "so3lr"
PACKAGED_MODEL = Path(__file__).parent / "data" / "so3lr.pt"
ELEMENTS = [1, 6, 7, 8, 9, 15, 16, 17]
SOURCE = {
    "name": "SO3LR",
    "source": "github.com/general-molecular-simulations/so3lr @ 5ec39b9 (so3lr/params/params.pkl)",
    "licence": "MIT, (c) 2024 Thorben Frank",
    "citation": "A. Kabylda, J. T. Frank et al., J. Am. Chem. Soc. 2025, doi:10.1021/jacs.5c09558",
    "energies": "relative only: trained on forces, dipoles and Hirshfeld ratios, without an energy reference",
}

# so3lr/params/hyperparameters.yaml, with the long-range settings every so3lr entry point uses
# (lr_cutoff 12 Å, dispersion switched off over its last 2 Å)
CONFIG = dict(
    elements=ELEMENTS, num_features=128, num_heads=4, num_layers=3, degrees=[1, 2, 3, 4], cutoff=4.5,
    num_radial=32, radial_basis="bernstein", cutoff_function="physnet", activation="silu",
    qk_activation="identity", use_spherical_filter=True, message_normalization="avg_num_neighbors",
    avg_num_neighbors=13.168995780096482, layer_norm_1=True, layer_norm_2=True, residual_mlp_1=True,
    residual_mlp_2=False, ev_init="zero", energy_regression_dim=128, zero_readout=False,
    learn_atomic_type_scales=True, learn_atomic_type_shifts=True, use_charge_embed=True, use_spin_embed=True,
    average_embeddings=True, layer_norm_eps=1e-6, exchange_ev_update=True, zbl_repulsion=True,
    electrostatic_energy=True, dispersion_energy=True, electrostatic_damping=4.0, dispersion_damping_scale=1.2,
    lr_cutoff=12.0, dispersion_switch_width=2.0, hirshfeld_dim=64)
# hyperparameters.json entries that must agree with CONFIG for the conversion to be right
CHECKED_HYPERPARAMETERS = {"num_layers": "num_layers", "num_features": "num_features", "num_heads": "num_heads",
                           "degrees": "degrees", "cutoff": "cutoff", "num_radial_basis_fn": "num_radial",
                           "radial_basis_fn": "radial_basis"}
ZBL_KEYS = ["a1", "a2", "a3", "a4", "c1", "c2", "c3", "c4", "p", "d"]


class SO3LRImportError(ValueError):
    """The parameter file is not SO3LR's (missing or misshapen arrays, other hyperparameters)."""


def resolve_model_path(model: Union[str, Path]) -> Path:
    """A model file path, or the name "so3lr" for the model shipped with this package."""
    if str(model).lower() == NAME and not Path(model).exists():
        return PACKAGED_MODEL
    return Path(model)


class _Params:
    """Reads arrays from the nested parameter dict by '/'-joined path, remembering which were used."""

    def __init__(self, tree: Dict[str, Any], path: Path):
        self.flat: Dict[str, np.ndarray] = {}
        self.path = path
        self._flatten(tree, "")
        self.used = set()

    def _flatten(self, tree: Dict[str, Any], prefix: str) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                self._flatten(value, f"{prefix}{key}/")
            else:
                self.flat[prefix + key] = np.asarray(value)

    def get(self, key: str, shape) -> torch.Tensor:
        if key not in self.flat:
            raise SO3LRImportError(f"{self.path}: no array {key!r}; this is not an SO3LR parameter file")
        array = self.flat[key]
        if tuple(array.shape) != tuple(shape):
            raise SO3LRImportError(f"{self.path}: {key} has shape {tuple(array.shape)}, SO3LR's is {tuple(shape)}")
        self.used.add(key)
        return torch.from_numpy(np.array(array, dtype=np.float64))


def _check_hyperparameters(params_path: Path) -> None:
    """Compare hyperparameters.json beside the parameters (if present) with the architecture we build."""
    path = params_path.with_name("hyperparameters.json")
    if not path.is_file():
        return
    model = json.loads(path.read_text()).get("model", {})
    for theirs, ours in CHECKED_HYPERPARAMETERS.items():
        if theirs in model and model[theirs] != CONFIG[ours]:
            raise SO3LRImportError(f"{path}: {theirs}={model[theirs]!r}, but SO3LR's architecture has "
                                   f"{CONFIG[ours]!r}; this converter handles the published SO3LR only")


def import_so3lr(params_path: Union[str, Path]) -> SO3kratesPotential:
    """SO3LR's reference parameters as our model (float64 parameters holding the float32 values)."""
    params_path = Path(params_path)
    if not params_path.is_file():
        raise FileNotFoundError(f"SO3LR parameter file {params_path} does not exist")
    try:
        with open(params_path, "rb") as handle:
            tree = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise SO3LRImportError(f"{params_path} is not a readable pickle ({err})") from None
    if not isinstance(tree, dict) or not isinstance(tree.get("params"), dict):
        raise SO3LRImportError(f"{params_path}: expected a pickle of {{'params': {{...}}}} as so3lr ships")
    _check_hyperparameters(params_path)
    params = _Params(tree["params"], params_path)
    config = SO3kratesConfig(**CONFIG)
    model = SO3krates(config, torch.float64)
    state = {name: None for name in model.state_dict()}
    F, rows = config.num_features, torch.tensor(ELEMENTS)

    def by_element(table: torch.Tensor) -> torch.Tensor:
        """(Z rows, ...) table -> our species rows: model elements, then the (unused) invalid species."""
        picked = table[rows]
        return torch.cat([picked, torch.zeros_like(picked[:1])])

    def dense(ours: str, theirs: str, n_in: int, n_out: int, bias: bool = True) -> None:
        state[f"{ours}.weight"] = params.get(f"{theirs}/kernel", (n_in, n_out)).T
        state[f"{ours}.bias"] = params.get(f"{theirs}/bias", (n_out,)) if bias else torch.zeros(n_out)

    state["embedding.weight"] = by_element(params.get("feature_embeddings_0/Embed_0/embedding", (119, F)))
    for ours, theirs in (("charge_embedding.0", "feature_embeddings_1"), ("spin_embedding.0", "feature_embeddings_2")):
        block = f"{theirs}/ChargeSpinEmbedSparse_0"
        state[f"{ours}.query.weight"] = by_element(params.get(f"{block}/Embed_0/embedding", (119, F)))
        state[f"{ours}.key.weight"] = params.get(f"{block}/Embed_1/embedding", (2, F))
        state[f"{ours}.value.weight"] = params.get(f"{block}/Embed_2/embedding", (2, F))
        dense(f"{ours}.residual.mlp.0", f"{block}/Residual_0/layers_0", F, F, bias=False)
        dense(f"{ours}.residual.mlp.2", f"{block}/Residual_0/layers_1", F, F, bias=False)
    head = F // config.num_heads
    for n in range(config.num_layers):
        ours, theirs = f"blocks.{n}", f"layers_{n}"
        attention = f"{theirs}/attention_block"
        for k in (1, 2):
            dense(f"{ours}.attention.radial_filter_{k}.0", f"{attention}/radial_filter{k}_layer_1", config.num_radial, F)
            dense(f"{ours}.attention.radial_filter_{k}.2", f"{attention}/radial_filter{k}_layer_2", F, F)
            dense(f"{ours}.attention.spherical_filter_{k}.0", f"{attention}/spherical_filter{k}_layer_1", 4, F // 4)
            dense(f"{ours}.attention.spherical_filter_{k}.2", f"{attention}/spherical_filter{k}_layer_2", F // 4, F)
        # per-head matrices are (out, in) in the reference, as in our HeadLinear
        for name, key in (("query_1", "Wq1"), ("key_1", "Wk1"), ("value_1", "Wv1"), ("query_2", "Wq2"),
                          ("key_2", "Wk2")):
            state[f"{ours}.attention.{name}.weight"] = params.get(f"{attention}/{key}", (4, head, head))
        dense(f"{ours}.exchange.linear", f"{theirs}/exchange_block/mlp_layer_2", F + 4, F + 4)
        for k in (1, 2):
            state[f"{ours}.norm_{k}.weight"] = params.get(f"{theirs}/layer_normalization_{k}/scale", (F,))
            state[f"{ours}.norm_{k}.bias"] = params.get(f"{theirs}/layer_normalization_{k}/bias", (F,))
        dense(f"{ours}.residual_1.mlp.0", f"{theirs}/res_mlp_1_layer_1", F, F)
        dense(f"{ours}.residual_1.mlp.2", f"{theirs}/res_mlp_1_layer_2", F, F)
    energy = "observables_0"
    dense("readout.0", f"{energy}/energy_dense_regression", F, F)
    dense("readout.2", f"{energy}/energy_dense_final", F, 1)
    state["energy_scale"] = by_element(params.get(f"{energy}/atomic_scales", (119,)))
    state["energy_shift"] = by_element(params.get(f"{energy}/energy_offset", (119,)))
    state["zbl.0.raw"] = torch.cat([params.get(f"{energy}/zbl_repulsion/{key}", (1,)) for key in ZBL_KEYS])
    charges = f"{energy}/electrostatic_energy/partial_charges"
    dense("partial_charges.0.regression.0", f"{charges}/charge_dense_regression_vec", F, F)
    dense("partial_charges.0.regression.2", f"{charges}/charge_dense_final_vec", F, 1)
    state["partial_charges.0.bias.weight"] = by_element(params.get(f"{charges}/Embed_0/embedding", (100, 1)))
    hirshfeld, dim = "observables_2", config.hirshfeld_dim
    dense("hirshfeld_ratios.0.regression.0", f"{hirshfeld}/hirshfeld_ratios_dense_regression", F, dim)
    dense("hirshfeld_ratios.0.regression.2", f"{hirshfeld}/hirshfeld_ratios_dense_final", dim, dim)
    state["hirshfeld_ratios.0.shift.weight"] = by_element(params.get(f"{hirshfeld}/Embed_0/embedding", (100, 1)))
    state["hirshfeld_ratios.0.query.weight"] = by_element(params.get(f"{hirshfeld}/Embed_1/embedding", (100, dim)))

    # buffers keep their constructed values; every parameter and every array must be used
    buffers = dict(model.named_buffers())
    for name in state:
        if name in buffers:
            state[name] = buffers[name]
    unset = sorted(name for name, value in state.items() if value is None)
    unused = sorted(set(params.flat) - params.used)
    if unset or unused:
        raise SO3LRImportError(f"{params_path}: conversion incomplete (our parameters without a value: {unset}; "
                               f"arrays not converted: {unused})")
    model.load_state_dict(state)
    return SO3kratesPotential(model)
