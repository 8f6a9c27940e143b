"""Per-degree operations on SO3krates' Euclidean variables.

Euclidean variables hold one real spherical-harmonic coordinate per degree l in `degrees`,
concatenated: shape (..., m_tot) with m_tot = Σ_l (2l+1). The only operations the model needs
are the l⊗l→0 contraction (an invariant per degree, a product with a constant matrix) and
broadcasting a per-degree scalar to the 2l+1 components of that degree (a gather).
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
        self.register_buffer("contract", (repeat * norm[:, None]).T.contiguous())  # (m_tot, D)
        # derived from the degrees alone: not part of checkpoints
        self.register_buffer("degree_of_component", repeat.argmax(dim=0), persistent=False)  # (m_tot,)

    def invariants(self, ev: torch.Tensor) -> torch.Tensor:
        """(..., m_tot) -> (..., D): Σ_m ev_lm² / √(2l+1), the l⊗l→0 Clebsch-Gordan contraction."""
        return (ev * ev) @ self.contract

    def broadcast(self, per_degree: torch.Tensor) -> torch.Tensor:
        """(P, D) -> (P, m_tot): each degree's scalar copied to its 2l+1 components."""
        return per_degree.index_select(1, self.degree_of_component)


class SphericalHarmonics(nn.Module):
    """Orthonormal real spherical harmonics of vectors for the given degrees (e3nn's, "integral"
    normalisation as in the reference implementation): vectors (P, 3) -> (P, m_tot).

    Y_l of a unit vector u is a homogeneous polynomial of degree l, so all of them are one product of
    the monomials of u (all products of l components, l = 1..max) with a constant matrix, fitted here
    once (float64, exact to rounding) to e3nn's harmonics. One matrix product replaces e3nn's
    per-component arithmetic, dozens of small operations forward and backward."""

    def __init__(self, degrees: List[int]):
        super().__init__()
        self.max_degree = max(degrees)
        generator = torch.Generator().manual_seed(0)
        points = torch.randn(4096, 3, dtype=torch.float64, generator=generator)
        points = points / torch.linalg.norm(points, dim=1, keepdim=True)
        target = o3.SphericalHarmonics(list(degrees), normalize=True, normalization="integral")(points)
        # LAPACK's last bits depend on the thread count: fit on one thread, so that the same degrees give
        # the same constant to the bit on one machine (model files written in different processes there have
        # equal digests; other CPUs or LAPACK builds may differ in the last bits)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            solution = torch.linalg.lstsq(self.monomials(points), target, driver="gelsd").solution
        finally:
            torch.set_num_threads(threads)
        # derived from the degrees alone: not part of checkpoints
        self.register_buffer("coefficients", solution.to(torch.get_default_dtype()), persistent=False)  # (M, m_tot)
        self.register_buffer("parity", torch.tensor([float((-1) ** l) for l in degrees for _ in range(2 * l + 1)]),
                             persistent=False)

    def monomials(self, unit: torch.Tensor) -> torch.Tensor:
        """(P, 3) -> (P, 3 + 9 + ... + 3^max_degree): all ordered products of l components."""
        terms = [unit]
        power = unit
        for _ in range(self.max_degree - 1):
            power = (power[:, :, None] * unit[:, None, :]).reshape(unit.shape[0], power.shape[1] * 3)
            terms.append(power)
        return torch.cat(terms, dim=1)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        unit = vectors / torch.linalg.norm(vectors, dim=1, keepdim=True)
        return self.monomials(unit) @ self.coefficients
