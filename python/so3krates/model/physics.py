"""Physical energy terms of SO3LR (Kabylda, Frank et al., JACS 2025) on top of the network: ZBL
repulsion on the short-range pairs, and electrostatics and dispersion on the long-range pairs.

Formulas, constants and conventions follow the reference (mlff v1.0-lrs-gems, `observable_sparse.py`;
our notes: shared/design/so3lr.md §4). Every term maps pairs to per-atom energies (N,) in eV,
assigned to idx_i. Long-range pairs come once each (half list), so their energies count fully.
Constants are Python floats (exact in float64). `fused=True` runs the same formulas as one compiled
CPU op per term (plugin/extensions/physics_cpu.cpp; differentiable once, for energies and forces):
forty-odd elementwise operations over all pairs, forward and backward, become one pass each way.
"""
import math
from typing import List, Optional, Tuple

import torch
from torch import nn

# ase.units (CODATA 2014), as the reference
BOHR_ANGSTROM = 0.5291772105638411
HARTREE_EV = 27.211386024367243
COULOMB_EV_ANGSTROM = HARTREE_EV * BOHR_ANGSTROM  # e²/(4πε0) = 14.3996... eV·Å
FINE_STRUCTURE = 0.007297352566206496
ZBL_SWITCH_END_ANGSTROM = 1.5
# QDO vdW radius fit (Fedorov et al.), coefficients b0..b3 of s(R_vdW) as in the reference
QDO_FIT = (-0.00433008, 0.24428889, 0.04125273, -0.00078893)

# Free-atom polarisabilities (bohr³) and C6 coefficients (hartree·bohr⁶), Tkatchenko-Scheffler
# reference data as used by mlff/SO3LR, for the elements of SPICE.
FREE_ATOM_POLARIZABILITY = {1: 4.5, 6: 12.0, 7: 7.4, 8: 5.4, 9: 3.8, 15: 25.0, 16: 19.6, 17: 15.0,
                            35: 20.0, 53: 35.0}
FREE_ATOM_C6 = {1: 6.5, 6: 46.6, 7: 24.2, 8: 15.6, 9: 9.52, 15: 185.0, 16: 134.0, 17: 94.6,
                35: 162.0, 53: 385.0}

# universal ZBL screening function (Ziegler, Biersack, Littmark): a_k, c_k, exponent p and
# 1/(0.8854 a0) (Å⁻¹), the starting point of the learnable parameters
ZBL_UNIVERSAL = ([3.19980, 0.94229, 0.40290, 0.20162], [0.18175, 0.50986, 0.28022, 0.02817], 0.23,
                 1.0 / (0.8854 * BOHR_ANGSTROM))


def smooth_step(x: torch.Tensor) -> torch.Tensor:
    """exp(-1/x) for x > 0, else 0 (C∞), with a finite gradient everywhere."""
    positive = x > 0
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, torch.exp(-1.0 / safe), torch.zeros_like(x))


def switch_off(x: torch.Tensor, x_on: float, x_off: float) -> torch.Tensor:
    """1 for x <= x_on, 0 for x >= x_off, C∞ in between (the reference's switching_fn)."""
    c = (x - x_on) / (x_off - x_on)
    rise = smooth_step(1.0 - c)
    return rise / (rise + smooth_step(c))


def inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


def per_atom(pair_energy: torch.Tensor, idx_i: torch.Tensor, num_atoms: int) -> torch.Tensor:
    return torch.zeros(num_atoms, dtype=pair_energy.dtype, device=pair_energy.device).index_add(0, idx_i, pair_energy)


class ZBLRepulsion(nn.Module):
    """Screened nuclear repulsion with learnable ZBL parameters (softplus keeps them positive),
    switched on below 1.5 Å and multiplied by the short-range cutoff function."""

    def __init__(self):
        super().__init__()
        a, c, p, d = ZBL_UNIVERSAL
        # raw (pre-softplus) values in the reference's order a1..a4, c1..c4, p, d
        self.raw = nn.Parameter(torch.tensor([inverse_softplus(v) for v in a + c + [p, d]]))
        self.coulomb = COULOMB_EV_ANGSTROM
        self.switch_end = ZBL_SWITCH_END_ANGSTROM

    def forward(self, z: torch.Tensor, vectors: torch.Tensor, distance: torch.Tensor, cut: torch.Tensor,
                idx_i: torch.Tensor, idx_j: torch.Tensor, pair_weight: float, fused: bool = False) -> torch.Tensor:
        """z (N,) atomic numbers as floats, vectors (P, 3) Å, their lengths (P,) and the cutoff function
        (P,) of the short-range pairs -> (N,) eV. pair_weight: 1/2 if the pairs come in both orders,
        1 if once each."""
        values = nn.functional.softplus(self.raw)
        a, c, p, d = values[0:4], values[4:8], values[8], values[9]
        c = c / c.sum()
        if fused:
            constants: List[float] = torch.cat([a, c, values[8:10]]).tolist()
            constants += [pair_weight, self.coulomb, self.switch_end]
            return torch.ops.so3krates.pair_energy("zbl", z[:, None], vectors, cut, idx_i, idx_j, constants)
        zi, zj = z.index_select(0, idx_i), z.index_select(0, idx_j)
        screening_length = (torch.pow(zi, p) + torch.pow(zj, p)) * d  # 1/Å
        screening = (c * torch.exp(-a * (distance * screening_length)[:, None])).sum(-1)
        energy = (pair_weight * self.coulomb) * zi * zj / distance * screening * cut
        return per_atom(energy * switch_off(distance, 0.0, self.switch_end), idx_i, z.shape[0])


def coulomb_kernel_at(r: float, sigma: float) -> Tuple[float, float]:
    """(value, slope) of erf(r/σ)/r at a distance r (Å), or of 1/r for σ = 0."""
    if sigma == 0.0:
        return 1.0 / r, -1.0 / r ** 2
    value = math.erf(r / sigma) / r
    return value, (2.0 * math.exp(-(r / sigma) ** 2) / (math.sqrt(math.pi) * sigma) - value) / r


class Electrostatics(nn.Module):
    """Coulomb energy of the predicted partial charges, erf-damped at short range (width
    `damping_width` Å; 0: point charges, 1/r). With a cutoff r_c: shifted (and, from 0.45 r_c, smoothly
    shifted-force), exactly zero at r_c; without one (vacuum): plain erf(r/σ)/r over all pairs."""

    def __init__(self, damping_width: float):
        super().__init__()
        if damping_width < 0:
            raise ValueError(f"damping width {damping_width} Å must be >= 0 (0: point charges)")
        self.damping_width = damping_width
        self.coulomb = COULOMB_EV_ANGSTROM

    def _damped(self, r: torch.Tensor) -> torch.Tensor:
        if self.damping_width == 0.0:
            return 1.0 / r
        return torch.erf(r / self.damping_width) / r

    def forward(self, charges: torch.Tensor, vectors: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                lr_cutoff: Optional[float], fused: bool = False) -> torch.Tensor:
        """charges (N,) e, vectors (P, 3) Å of each pair once -> (N,) eV"""
        if fused:
            constants = [self.damping_width, 0.0 if lr_cutoff is None else lr_cutoff, self.coulomb]
            return torch.ops.so3krates.pair_energy("coulomb", charges[:, None], vectors, None, idx_i, idx_j, constants)
        distance = torch.linalg.norm(vectors, dim=1)
        coupling = self.coulomb * charges.index_select(0, idx_i) * charges.index_select(0, idx_j)
        if lr_cutoff is None:
            return per_atom(coupling * self._damped(distance), idx_i, charges.shape[0])
        rc = lr_cutoff
        value_rc, slope_rc = coulomb_kernel_at(rc, self.damping_width)
        blend = 1.0 - switch_off(distance, 0.45 * rc, rc)
        potential = self._damped(distance) - value_rc - blend * slope_rc * (distance - rc)
        inside = distance < rc
        return per_atom(torch.where(inside, coupling * potential, torch.zeros_like(distance)), idx_i, charges.shape[0])


class Dispersion(nn.Module):
    """vdW-QDO dispersion (C6, C8, C10 with QDO damping) from free-atom data scaled by predicted
    Hirshfeld ratios, switched off over the last `switch_width` Å before the long-range cutoff."""

    def __init__(self, elements: List[int], damping_scale: float, switch_width: float):
        super().__init__()
        missing = [z for z in elements if z not in FREE_ATOM_POLARIZABILITY]
        if missing:
            raise ValueError(f"no free-atom dispersion data for elements {missing}; "
                             f"known: {sorted(FREE_ATOM_POLARIZABILITY)}")
        # per species: the model's elements, then the invalid species
        self.register_buffer("polarizability",
                             torch.tensor([FREE_ATOM_POLARIZABILITY[z] for z in elements] + [float("nan")]))
        self.register_buffer("c6", torch.tensor([FREE_ATOM_C6[z] for z in elements] + [float("nan")]))
        self.damping_scale = damping_scale
        self.switch_width = switch_width
        self.bohr = BOHR_ANGSTROM
        self.hartree = HARTREE_EV
        self.radius_factor = FINE_STRUCTURE ** (-4.0 / 21.0)
        self.qdo_fit = QDO_FIT

    def forward(self, species: torch.Tensor, hirshfeld: torch.Tensor, vectors: torch.Tensor, idx_i: torch.Tensor,
                idx_j: torch.Tensor, lr_cutoff: Optional[float], fused: bool = False) -> torch.Tensor:
        """species (N,), Hirshfeld ratios (N,), vectors (P, 3) Å of each pair once -> (N,) eV"""
        alpha = self.polarizability[species] * hirshfeld  # bohr³
        c6 = self.c6[species] * hirshfeld * hirshfeld
        if fused:
            b0, b1, b2, b3 = self.qdo_fit
            constants = [self.damping_scale, 0.0 if lr_cutoff is None else lr_cutoff, self.switch_width, self.bohr,
                         self.hartree, self.radius_factor, b0, b1, b2, b3]
            return torch.ops.so3krates.pair_energy("dispersion", torch.stack([alpha, c6], dim=1), vectors, None,
                                                   idx_i, idx_j, constants)
        distance = torch.linalg.norm(vectors, dim=1)
        alpha_i, alpha_j = alpha.index_select(0, idx_i), alpha.index_select(0, idx_j)
        c6_i, c6_j = c6.index_select(0, idx_i), c6.index_select(0, idx_j)
        alpha_ij = 0.5 * (alpha_i + alpha_j)
        c6_ij = 2.0 * c6_i * c6_j * alpha_i * alpha_j / (alpha_i * alpha_i * c6_j + alpha_j * alpha_j * c6_i)
        alpha_root = torch.pow(alpha_ij, 1.0 / 7.0)
        radius = self.radius_factor * alpha_root  # R_vdW, bohr
        b0, b1, b2, b3 = self.qdo_fit
        s = ((b3 * radius + b2) * radius + b1) * radius + b0
        gamma = 0.5 / (s * s)
        c8 = 5.0 / gamma * c6_ij
        c10 = 245.0 / (8.0 * gamma * gamma) * c6_ij
        rho = self.damping_scale * 2.0 * 2.54 * alpha_root
        r = distance / self.bohr
        r2, rho2 = r * r, rho * rho
        r6, rho6 = r2 * r2 * r2, rho2 * rho2 * rho2
        energy = -self.hartree * (c6_ij / (r6 + rho6) + c8 / (r6 * r2 + rho6 * rho2)
                                + c10 / (r6 * r2 * r2 + rho6 * rho2 * rho2))
        if lr_cutoff is not None:
            energy = energy * switch_off(distance, lr_cutoff - self.switch_width, lr_cutoff)
            energy = torch.where(distance < lr_cutoff, energy, torch.zeros_like(energy))
        return per_atom(energy, idx_i, species.shape[0])
