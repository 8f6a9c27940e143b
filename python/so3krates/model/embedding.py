"""Electrostatic embedding of an ML region in the point charges of an MM environment.

    E_embed = Σ_i∈ML Σ_J∈MM  k_e q_i(R_ML) Q_J φ(r_iJ)

q_i are the partial charges the model predicts for the ML atoms (they sum to the ML region's total
charge and move with its chemistry), Q_J the fixed MM charges. φ has the form of the model's own
electrostatics (physics.Electrostatics, the same code and compiled op): 1/r for point charges (the
default, as the MM force field's own Coulomb) or erf(r/σ)/r (SO3LR's kernel, σ = 4 Å), shifted and,
from 0.45 r_c, smoothly shifted-force, exactly zero with zero slope at the cutoff r_c, so that
nothing jumps when a water crosses r_c. Beyond r_c there is no ML–MM electrostatics. Forces on ML
and MM atoms come from autograd, including the term through dq_i/dR. The charges do not respond to
the MM field (no induction).
"""
import math
from typing import Optional

import torch
from torch import nn

from .neighbors import PairsBetween
from .physics import Electrostatics


class ElectrostaticEmbedding(nn.Module):
    """ML positions (N, 3) Å and charges (N,) e, MM positions (M, 3) Å and charges (M,) e, optional
    periodic cell (3, 3) Å -> embedding energy () eV. `damping_width` σ (Å; 0: point charges) and
    `cutoff` r_c (Å; None: the unshifted kernel over all pairs, vacuum only)."""

    def __init__(self, damping_width: float, cutoff: Optional[float], compiled: bool = True):
        super().__init__()
        self.coulomb = Electrostatics(damping_width)
        self.pairs = PairsBetween(math.inf if cutoff is None else cutoff, compiled)
        self.cutoff = cutoff
        self.compiled = compiled

    def forward(self, ml_positions: torch.Tensor, ml_charges: torch.Tensor, mm_positions: torch.Tensor,
                mm_charges: torch.Tensor, cell: Optional[torch.Tensor] = None) -> torch.Tensor:
        idx_ml, idx_mm, shifts = self.pairs(ml_positions, mm_positions, cell)
        vectors = mm_positions.index_select(0, idx_mm) - ml_positions.index_select(0, idx_ml) + shifts
        # one charge array, ML first: each pair's energy goes to its ML atom, counted once
        charges = torch.cat([ml_charges, mm_charges.to(ml_charges.dtype)])
        fused = self.compiled and ml_positions.device.type == "cpu"
        energies = self.coulomb(charges, vectors, idx_ml, idx_mm + ml_positions.shape[0], self.cutoff, fused)
        return energies.sum()
