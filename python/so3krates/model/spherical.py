"""Per-degree operations on SO3krates' Euclidean variables.

Euclidean variables hold one real spherical-harmonic coordinate per degree l in `degrees`,
concatenated: shape (..., m_tot) with m_tot = Σ_l (2l+1). The only operations the model needs
are the l⊗l→0 contraction (an invariant per degree) and broadcasting a per-degree scalar to the
2l+1 components of that degree. Both are written as products with constant matrices, which
export cleanly and run as one GEMM.
"""
from typing import List, Sequence

import torch
from e3nn import o3
from torch import nn


def degree_repeat_matrix(degrees: Sequence[int]) -> torch.Tensor:
    """(D, m_tot) 0/1 matrix R such that (a @ R)[..., m] = a[..., degree of component m]."""
    m_tot = sum(2 * l + 1 for l in degrees)
    matrix = torch.zeros(len(degrees), m_tot)
    start = 0
    for d, l in enumerate(degrees):
        matrix[d, start:start + 2 * l + 1] = 1.0
        start += 2 * l + 1
    return matrix


class DegreeOps(nn.Module):
    """Contraction to invariants and per-degree broadcast for a fixed list of degrees."""

    def __init__(self, degrees: Sequence[int]):
        super().__init__()
        repeat = degree_repeat_matrix(degrees)
        norm = torch.tensor([(2 * l + 1) ** -0.5 for l in degrees])
        self.register_buffer("repeat", repeat)  # (D, m_tot)
        self.register_buffer("contract", (repeat * norm[:, None]).T.contiguous())  # (m_tot, D)

    def invariants(self, ev: torch.Tensor) -> torch.Tensor:
        """(..., m_tot) -> (..., D): Σ_m ev_lm² / √(2l+1), the l⊗l→0 Clebsch-Gordan contraction."""
        return (ev * ev) @ self.contract

    def broadcast(self, per_degree: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., m_tot): each degree's scalar copied to its 2l+1 components."""
        return per_degree @ self.repeat


class SphericalHarmonics(nn.Module):
    """Orthonormal real spherical harmonics of unit vectors for the given degrees (e3nn ordering).

    vectors (P, 3) -> (P, m_tot); "integral" normalisation as in the reference implementation.
    """

    def __init__(self, degrees: List[int]):
        super().__init__()
        self.sh = o3.SphericalHarmonics(list(degrees), normalize=True, normalization="integral")

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.sh(vectors)
