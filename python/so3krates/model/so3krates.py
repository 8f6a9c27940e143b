"""The SO3krates energy model: atomic numbers and pair vectors -> per-atom energies (eV).

Works on one flat graph (one molecule, a periodic box, or a batch of molecules concatenated),
so the same code serves training, OpenMM and ASE.
"""
from typing import Optional, Tuple

import torch
from torch import nn

from .config import MAX_ATOMIC_NUMBER, SO3kratesConfig
from .layers import ChargeEmbedding, EuclideanTransformerBlock, mlp
from .neighbors import NeighborList
from .radial import CutoffFunction, make_radial_basis
from .spherical import SphericalHarmonics


class SO3krates(nn.Module):
    """Embedding -> `num_layers` Euclidean transformer blocks -> per-atom energy.

    E_i = scale[Z_i] * MLP(x_i) + shift[Z_i]; shift holds the per-element reference energies (eV)
    fitted before training, so that outputs are total energies in the data's reference.
    An element outside `config.elements` maps to a species whose features are NaN: such input
    can never produce plausible-looking numbers (callers check elements first and raise a clear error).
    """

    def __init__(self, config: SO3kratesConfig):
        super().__init__()
        self.config = config
        n_elements = len(config.elements)
        species_of_z = torch.full((MAX_ATOMIC_NUMBER + 1,), n_elements, dtype=torch.long)
        species_of_z[torch.tensor(config.elements)] = torch.arange(n_elements)
        self.register_buffer("species_of_z", species_of_z)
        valid = torch.ones(n_elements + 1)
        valid[n_elements] = float("nan")
        self.register_buffer("species_valid", valid)

        self.embedding = nn.Embedding(n_elements + 1, config.num_features)
        self.charge_embedding = nn.ModuleList(
            [ChargeEmbedding(n_elements + 1, config.num_features, config.activation)] if config.use_charge_embed else [])
        self.radial_basis = make_radial_basis(config.radial_basis, config.num_radial, config.cutoff)
        self.cutoff_function = CutoffFunction(config.cutoff_function, config.cutoff)
        self.spherical_harmonics = SphericalHarmonics(config.degrees)
        self.m_tot = sum(2 * l + 1 for l in config.degrees)
        self.ev_from_neighbours = config.ev_init == "neighbour_mean"
        self.inv_avg_num_neighbors = 1.0 / config.avg_num_neighbors
        self.blocks = nn.ModuleList([
            EuclideanTransformerBlock(
                config.num_features, config.num_heads, config.degrees, config.num_radial,
                act=config.activation, qk_act=config.qk_activation,
                use_spherical_filter=config.use_spherical_filter,
                message_normalization=config.message_normalization,
                avg_num_neighbors=config.avg_num_neighbors,
                layer_norm_1=config.layer_norm_1, layer_norm_2=config.layer_norm_2,
                residual_mlp_1=config.residual_mlp_1, residual_mlp_2=config.residual_mlp_2,
                identity_at_init=config.identity_at_init)
            for _ in range(config.num_layers)])
        self.readout = mlp(config.num_features, config.energy_regression_dim, 1, config.activation,
                           zero_last=config.zero_readout)
        scale = torch.ones(n_elements + 1)
        shift = torch.zeros(n_elements + 1)
        if config.learn_atomic_type_scales:
            self.energy_scale = nn.Parameter(scale)
        else:
            self.register_buffer("energy_scale", scale)
        if config.learn_atomic_type_shifts:
            self.energy_shift = nn.Parameter(shift)
        else:
            self.register_buffer("energy_shift", shift)

    @torch.jit.unused
    def set_atomic_energies(self, energies_eV: dict) -> None:
        """Set the per-element reference energies {Z: eV}; unknown elements are an error."""
        unknown = sorted(set(int(z) for z in energies_eV) - set(self.config.elements))
        if unknown:
            raise ValueError(f"atomic energies given for elements {unknown} the model does not have "
                             f"(model elements: {self.config.elements})")
        with torch.no_grad():
            for z, value in energies_eV.items():
                self.energy_shift[self.species_of_z[int(z)]] = float(value)

    @torch.jit.unused
    def atomic_energies_eV(self) -> dict:
        """{Z: reference energy in eV} as stored in the model."""
        return {z: float(self.energy_shift[self.species_of_z[z]]) for z in self.config.elements}

    def forward(self, atomic_numbers: torch.Tensor, vectors: torch.Tensor, idx_i: torch.Tensor,
                idx_j: torch.Tensor, batch: Optional[torch.Tensor] = None,
                total_charge: Optional[torch.Tensor] = None, fused: bool = False) -> torch.Tensor:
        """atomic_numbers (N,) int, vectors r_j - r_i (P, 3) Å, idx_i/idx_j (P,), batch (N,) molecule of
        each atom (None: one molecule), total_charge (G,) e (None: neutral) -> atomic energies (N,) eV.
        `fused` runs the attention's pair operations as compiled CPU ops (less memory, faster), which
        are differentiable once: energies and forces, but not a loss on forces."""
        species = self.species_of_z[atomic_numbers]
        x = self.embedding(species) * self.species_valid[species][:, None]
        for charge_embedding in self.charge_embedding:
            if batch is None:
                batch = torch.zeros_like(atomic_numbers)
            if total_charge is None:
                total_charge = torch.zeros(1, dtype=x.dtype, device=x.device)
            x = x + charge_embedding(species, total_charge.to(x.dtype), batch)
        distance = torch.linalg.norm(vectors, dim=1)
        rbf = self.radial_basis(distance)
        cut = self.cutoff_function(distance)
        ylm = self.spherical_harmonics(vectors)
        ev = torch.zeros(x.shape[0], self.m_tot, dtype=x.dtype, device=x.device)
        if self.ev_from_neighbours:
            ev = ev.index_add(0, idx_i, cut[:, None] * ylm) * self.inv_avg_num_neighbors
        for block in self.blocks:
            x, ev = block(x, ev, rbf, ylm, cut, idx_i, idx_j, fused)
        return self.readout(x).squeeze(-1) * self.energy_scale[species] + self.energy_shift[species]


class SO3kratesPotential(nn.Module):
    """What a model file holds: atomic numbers, positions (Å) and an optional periodic cell (Å,
    rows are box vectors) -> total energy (eV), with the neighbour list inside.

    For inference: on the CPU the attention runs the compiled pair ops (`compiled=False`: the
    PyTorch version everywhere, e.g. to take second derivatives)."""

    def __init__(self, model: SO3krates, compiled: bool = True):
        super().__init__()
        self.model = model
        self.neighbor_list = NeighborList(model.config.cutoff, compiled=compiled)
        self.compiled = compiled

    def pair_vectors(self, positions: torch.Tensor, cell: Optional[torch.Tensor]
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 3) Å -> idx_i (P,), idx_j (P,), r_j - r_i (P, 3) Å (minimum image if periodic)."""
        idx_i, idx_j, shifts = self.neighbor_list(positions, cell)
        return idx_i, idx_j, positions.index_select(0, idx_j) - positions.index_select(0, idx_i) + shifts

    def forward(self, atomic_numbers: torch.Tensor, positions: torch.Tensor,
                cell: Optional[torch.Tensor] = None, total_charge: float = 0.0) -> torch.Tensor:
        """atomic_numbers (N,), positions (N, 3) Å, cell (3, 3) Å or None, total charge (e) -> energy () eV"""
        idx_i, idx_j, vectors = self.pair_vectors(positions, cell)
        charge = torch.full((1,), total_charge, dtype=positions.dtype, device=positions.device)
        fused = self.compiled and positions.device.type == "cpu"
        return self.model(atomic_numbers, vectors, idx_i, idx_j, None, charge, fused).sum()
