"""SO3LR's physical terms (so3krates.model.physics): the compiled pair-energy op
(plugin/extensions/physics_cpu.cpp) against the PyTorch formulas, its derivatives by gradcheck, the
switching functions, and whole long-range models compiled against uncompiled."""
import numpy as np
import pytest
import torch

import so3krates  # noqa: F401  (registers torch.ops.so3krates)
from so3krates.model.physics import Dispersion, Electrostatics, ZBLRepulsion, switch_off
from so3krates.model_file import create_potential

from conftest import small_config

ELEMENTS = [1, 6, 7, 8]


def pairs(n_atoms: int, n_pairs: int, scale: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    idx_i = torch.randint(0, n_atoms, (n_pairs,), generator=g)
    idx_j = (idx_i + torch.randint(1, n_atoms, (n_pairs,), generator=g)) % n_atoms
    vectors = torch.randn(n_pairs, 3, dtype=torch.float64, generator=g) * scale
    return idx_i, idx_j, vectors


def test_switch_goes_smoothly_from_one_to_zero():
    x = torch.linspace(0.0, 3.0, 301, dtype=torch.float64, requires_grad=True)
    value = switch_off(x, 1.0, 2.0)
    slope = torch.autograd.grad(value.sum(), x)[0]
    assert torch.all(value[x <= 1.0] == 1.0) and torch.all(value[x >= 2.0] == 0.0)
    assert torch.all(torch.diff(value) <= 0) and torch.isfinite(slope).all()
    assert float(value[150].detach()) == pytest.approx(0.5)  # symmetric about the middle


@pytest.mark.parametrize("cutoff", [12.0, None], ids=["cutoff", "no-cutoff"])
def test_electrostatics_op_equals_pytorch(cutoff):
    idx_i, idx_j, vectors = pairs(30, 400, 6.0)
    charges = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    vectors.requires_grad_(True)
    term = Electrostatics(4.0)
    results = []
    for fused in (False, True):
        energy = term(charges, vectors, idx_i, idx_j, cutoff, fused)
        results.append((energy, *torch.autograd.grad(energy.sum(), (charges, vectors))))
    assert results[0][0].abs().sum() > 1.0
    if cutoff is not None:
        assert bool((torch.linalg.norm(vectors, dim=1) > cutoff).any())  # pairs beyond it give exactly zero
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cutoff", [12.0, None], ids=["cutoff", "no-cutoff"])
def test_dispersion_op_equals_pytorch(cutoff):
    idx_i, idx_j, vectors = pairs(30, 400, 6.0)
    g = torch.Generator().manual_seed(2)
    species = torch.randint(0, len(ELEMENTS), (30,), generator=g)
    ratios = (0.6 + 0.5 * torch.rand(30, dtype=torch.float64, generator=g)).requires_grad_(True)
    vectors.requires_grad_(True)
    term = Dispersion(ELEMENTS, 1.2, 2.0).to(torch.float64)
    results = []
    for fused in (False, True):
        energy = term(species, ratios, vectors, idx_i, idx_j, cutoff, fused)
        results.append((energy, *torch.autograd.grad(energy.sum(), (ratios, vectors))))
    assert results[0][0].abs().sum() > 1e-3
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-11, atol=1e-14)


def test_zbl_op_equals_pytorch():
    idx_i, idx_j, vectors = pairs(30, 400, 0.9)  # ZBL acts below 1.5 Å
    z = torch.tensor(np.random.default_rng(3).choice(ELEMENTS, 30), dtype=torch.float64)
    distance = torch.linalg.norm(vectors, dim=1)
    cut = (1 - distance / 4.5).clamp(min=0).detach().requires_grad_(True)
    vectors.requires_grad_(True)
    term = ZBLRepulsion().to(torch.float64)
    results = []
    for fused in (False, True):
        energy = term(z, vectors, torch.linalg.norm(vectors, dim=1), cut, idx_i, idx_j, 0.5, fused)
        results.append((energy, *torch.autograd.grad(energy.sum(), (vectors, cut))))
    assert results[0][0].sum() > 1.0
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("term,constants,k,with_pair_values", [
    ("coulomb", [4.0, 12.0, 14.4], 1, False),
    ("coulomb", [4.0, 0.0, 14.4], 1, False),
    ("dispersion", [1.2, 12.0, 2.0, 0.529, 27.2, 1.4, -0.004, 0.244, 0.041, -0.0008], 2, False),
    ("zbl", [3.2, 0.9, 0.4, 0.2, 0.18, 0.5, 0.28, 0.04, 0.23, 2.1, 0.5, 14.4, 1.5], 1, True)])
def test_op_derivatives_by_gradcheck(term, constants, k, with_pair_values):
    g = torch.Generator().manual_seed(4)
    idx_i, idx_j = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2]), torch.tensor([1, 2, 3, 4, 5, 0, 3, 5])
    scale = 0.6 if term == "zbl" else 5.0
    vectors = (torch.randn(8, 3, dtype=torch.float64, generator=g) * scale).requires_grad_(True)
    atoms = (1 + 5 * torch.rand(6, k, dtype=torch.float64, generator=g)).requires_grad_(term != "zbl")
    pair_values = torch.rand(8, dtype=torch.float64, generator=g, requires_grad=True) if with_pair_values else None

    def energy(a, v, p):
        return torch.ops.so3krates.pair_energy(term, a, v, p, idx_i, idx_j, constants)
    assert torch.autograd.gradcheck(energy, (atoms, vectors, pair_values))


def test_op_names_bad_input():
    idx = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="unknown term 'lj'"):
        torch.ops.so3krates.pair_energy("lj", torch.zeros(2, 1), torch.ones(2, 3), None, idx, idx, [1.0])
    with pytest.raises(ValueError, match=r"atom values must be \(N, 2\)"):
        torch.ops.so3krates.pair_energy("dispersion", torch.zeros(2, 1), torch.ones(2, 3), None, idx, idx, [1.0] * 10)
    with pytest.raises(IndexError, match=r"pair indices outside \[0, 2\)"):
        torch.ops.so3krates.pair_energy("coulomb", torch.zeros(2, 1), torch.ones(2, 3), None, idx, idx + 1,
                                        [4.0, 0.0, 14.4])
    with pytest.raises(RuntimeError, match="differentiable once"):
        charges = torch.ones(2, 1, dtype=torch.float64, requires_grad=True)
        energy = torch.ops.so3krates.pair_energy("coulomb", charges, torch.ones(2, 3, dtype=torch.float64), None,
                                                 idx, 1 - idx, [4.0, 0.0, 14.4])
        first = torch.autograd.grad(energy.sum(), charges, create_graph=True)[0]
        torch.autograd.grad(first.sum(), charges)


@pytest.mark.parametrize("periodic", [False, True])
def test_long_range_model_compiled_equals_pytorch(periodic):
    """A small model with every SO3LR option, its physical terms and attention compiled or not."""
    config = small_config(use_spin_embed=True, use_charge_embed=True, average_embeddings=True, zbl_repulsion=True,
                          electrostatic_energy=True, dispersion_energy=True, lr_cutoff=7.0, layer_norm_1=True,
                          residual_mlp_1=True, radial_basis="bernstein", cutoff_function="physnet")
    potential = create_potential(config, torch.float64, seed=3)
    rng = np.random.default_rng(5)
    n = 40
    positions = torch.tensor(rng.uniform(0, 10.0, size=(n, 3)))
    numbers = torch.tensor(rng.choice(ELEMENTS, n))
    cell = torch.eye(3, dtype=torch.float64) * 10.0 if periodic else None  # narrower than 2 x 7 Å
    results = []
    for compiled in (False, True):
        potential.compiled = compiled
        potential.neighbor_list.compiled = potential.lr_neighbor_list.compiled = compiled
        x = positions.clone().requires_grad_(True)
        energy = potential(numbers, x, cell, 1.0, 1.0)
        results.append((energy.detach(), torch.autograd.grad(energy, x)[0]))
    assert results[0][1].abs().max() > 1e-3
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-10, atol=1e-10)
