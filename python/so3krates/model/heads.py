"""Per-atom heads on the final invariant features x (N, F) that feed SO3LR's physical terms:
partial charges (electrostatics, dipoles) and Hirshfeld volume ratios (dispersion)."""
import torch
from torch import nn

from .layers import mlp


class PartialCharges(nn.Module):
    """q_i = MLP(x_i) + bias[species_i], then shifted so that every molecule carries its total
    charge: q_i += (Q - Σ_mol q) / N_mol (the correction depends on positions, inside autograd)."""

    def __init__(self, num_species: int, num_features: int, act: str):
        super().__init__()
        self.regression = mlp(num_features, num_features, 1, act)
        self.bias = nn.Embedding(num_species, 1)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, species: torch.Tensor, total_charge: torch.Tensor,
                batch: torch.Tensor) -> torch.Tensor:
        """x (N, F), species (N,), total_charge (G,) e, batch (N,) molecule of each atom -> charges (N,) e"""
        raw = self.regression(x).squeeze(-1) + self.bias(species).squeeze(-1)
        raw_sum = torch.zeros_like(total_charge).index_add(0, batch, raw)
        atoms = torch.zeros_like(total_charge).index_add(0, batch, torch.ones_like(raw))
        return raw + ((total_charge - raw_sum) / atoms)[batch]


class HirshfeldRatios(nn.Module):
    """h_i = |shift[species_i] + query[species_i] · MLP(x_i) / sqrt(D)|: the ratio of an atom's
    effective to its free volume, which scales its polarisability and C6."""

    def __init__(self, num_species: int, num_features: int, dim: int, act: str):
        super().__init__()
        self.regression = mlp(num_features, dim, dim, act)
        self.shift = nn.Embedding(num_species, 1)
        self.query = nn.Embedding(num_species, dim)
        nn.init.ones_(self.shift.weight)
        self.inv_sqrt_dim = dim ** -0.5

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """x (N, F), species (N,) -> (N,)"""
        key = self.regression(x)
        return torch.abs(self.shift(species).squeeze(-1) + (self.query(species) * key).sum(-1) * self.inv_sqrt_dim)
