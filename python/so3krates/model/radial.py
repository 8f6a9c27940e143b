"""Radial basis expansions and smooth cutoff functions of interatomic distances (Å).

The choices mirror the SO3krates reference code (mlff v1.0) and SO3LR so that published
hyperparameters can be reproduced. All modules map distances of shape (P,) to (P, K)
or (P,) and are TorchScript- and torch.export-friendly (no data-dependent branching).
"""
import math

import torch
from torch import nn

RADIAL_BASES = ("physnet", "bernstein", "gaussian")
CUTOFF_FUNCTIONS = ("cosine", "polynomial", "exponential", "physnet")


class PhysNetBasis(nn.Module):
    """PhysNet exponential-normal functions exp(-β (exp(-r) - μ_k)²), μ_k spaced in [exp(-rc), 1]."""

    def __init__(self, num_basis: int, cutoff: float):
        super().__init__()
        self.register_buffer("centers", torch.linspace(math.exp(-cutoff), 1.0, num_basis))
        self.beta = ((2.0 / num_basis) * (1.0 - math.exp(-cutoff))) ** -2

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        """distance (P,) Å -> (P, K)"""
        return torch.exp(-self.beta * (torch.exp(-distance)[:, None] - self.centers) ** 2)


class BernsteinBasis(nn.Module):
    """Bernstein polynomials of x = exp(-γ r), evaluated in log space (SO3LR, mlff).

    γ is the reference's float32 value (mlff stores jnp.float32(0.9448630629184640)), so float64 runs
    reproduce its float64 results. The log-space sum cancels terms of size ~100 (k γ r against the log
    binomial), which in float32 leaves 1e-5 relative errors in the basis and 1e-6 in energies: the basis
    is always computed in float64 (a small part of the model's work) and returned in the input's dtype."""

    def __init__(self, num_basis: int, cutoff: float, gamma: float = 0.9448630809783936):
        super().__init__()
        self.register_buffer("k", torch.arange(num_basis, dtype=torch.get_default_dtype()))  # exact integers
        self.degree = float(num_basis - 1)
        self.gamma = gamma

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        """distance (P,) Å, strictly positive -> (P, K)"""
        r = distance.to(torch.float64)[:, None]
        k = self.k.to(torch.float64)
        n = self.degree
        log_binomial = math.lgamma(n + 1.0) - torch.lgamma(k + 1.0) - torch.lgamma(n - k + 1.0)
        log_basis = log_binomial - self.gamma * r * k + (n - k) * torch.log1p(-torch.exp(-self.gamma * r))
        return torch.exp(log_basis).to(distance.dtype)


class GaussianBasis(nn.Module):
    """SchNet Gaussians with centres evenly spaced on [0, rc] and width equal to the spacing."""

    def __init__(self, num_basis: int, cutoff: float):
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, cutoff, num_basis))
        self.inv_width2 = (num_basis / cutoff) ** 2

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        """distance (P,) Å -> (P, K)"""
        return torch.exp(-0.5 * self.inv_width2 * (distance[:, None] - self.centers) ** 2)


class CutoffFunction(nn.Module):
    """Smooth switch from 1 at r = 0 to 0 at r = cutoff (and beyond); distance (P,) Å -> (P,).

    kinds: "cosine" (Behler), "polynomial" (p-th order, smooth to 2nd derivative, as in mlff),
    "exponential" (SpookyNet), "physnet" (1 - 6x⁵ + 15x⁴ - 10x³, SO3LR).
    """

    def __init__(self, kind: str, cutoff: float, polynomial_order: int = 6):
        super().__init__()
        if kind not in CUTOFF_FUNCTIONS:
            raise ValueError(f"unknown cutoff function {kind!r}; choose one of {CUTOFF_FUNCTIONS}")
        self.kind = kind
        self.cutoff = cutoff
        self.p = float(polynomial_order)

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        x = torch.clamp(distance / self.cutoff, max=1.0)
        inside = distance < self.cutoff
        if self.kind == "cosine":
            value = 0.5 * (torch.cos(math.pi * x) + 1.0)
        elif self.kind == "polynomial":
            p = self.p
            value = (1.0 - 0.5 * (p + 1.0) * (p + 2.0) * x ** p + p * (p + 2.0) * x ** (p + 1.0)
                     - 0.5 * p * (p + 1.0) * x ** (p + 2.0))
        elif self.kind == "exponential":
            # clamp keeps the masked branch finite so its gradient is exactly zero
            x_safe = torch.where(inside, x, torch.zeros_like(x))
            value = torch.exp(-(x_safe ** 2) / ((1.0 - x_safe) * (1.0 + x_safe)))
        else:
            value = 1.0 - 6.0 * x ** 5 + 15.0 * x ** 4 - 10.0 * x ** 3
        return torch.where(inside, value, torch.zeros_like(value))


def make_radial_basis(kind: str, num_basis: int, cutoff: float) -> nn.Module:
    """Build the radial basis named `kind` (one of RADIAL_BASES)."""
    if kind == "physnet":
        return PhysNetBasis(num_basis, cutoff)
    if kind == "bernstein":
        return BernsteinBasis(num_basis, cutoff)
    if kind == "gaussian":
        return GaussianBasis(num_basis, cutoff)
    raise ValueError(f"unknown radial basis {kind!r}; choose one of {RADIAL_BASES}")
