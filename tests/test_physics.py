"""Physics of the model: forces are minus the gradient; invariances and equivariance."""
import pytest
import torch

from so3krates.model_file import create_potential

from conftest import random_rotation, small_config


def energy_and_forces(potential, z, pos, cell=None):
    pos = pos.clone().requires_grad_(True)
    energy = potential(z, pos, cell)
    return energy.detach(), -torch.autograd.grad(energy, pos)[0]


@pytest.fixture
def molecule(alanine):
    z, pos, _ = alanine
    return torch.tensor(z), torch.tensor(pos, dtype=torch.float64)


VARIANTS = [
    {},
    {"radial_basis": "bernstein", "cutoff_function": "polynomial"},
    {"radial_basis": "gaussian", "cutoff_function": "exponential", "ev_init": "neighbour_mean",
     "avg_num_neighbors": 10.0},
    {"cutoff_function": "physnet", "layer_norm_1": True, "layer_norm_2": True, "residual_mlp_1": True,
     "residual_mlp_2": True, "qk_activation": "silu", "message_normalization": "avg_num_neighbors",
     "avg_num_neighbors": 12.0, "learn_atomic_type_scales": True, "learn_atomic_type_shifts": True},
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={v[k]}" for k in v) or "defaults")
def test_forces_are_minus_numerical_gradient(molecule, variant):
    z, pos = molecule
    potential = create_potential(small_config(**variant), torch.float64, seed=3)
    energy, forces = energy_and_forces(potential, z, pos)
    assert forces.abs().max() > 1e-3, "forces vanish: the test would be trivial"
    h = 1e-5
    for atom in (0, 4, 8, 21):
        for axis in range(3):
            plus, minus = pos.clone(), pos.clone()
            plus[atom, axis] += h
            minus[atom, axis] -= h
            numerical = -(potential(z, plus) - potential(z, minus)).item() / (2 * h)
            assert forces[atom, axis].item() == pytest.approx(numerical, rel=1e-6, abs=1e-8)


def test_energy_invariant_and_forces_equivariant_under_rotation(potential64, molecule):
    z, pos = molecule
    energy, forces = energy_and_forces(potential64, z, pos)
    for seed in range(3):
        rotation = random_rotation(seed)
        energy_r, forces_r = energy_and_forces(potential64, z, pos @ rotation.T)
        assert energy_r.item() == pytest.approx(energy.item(), rel=1e-12, abs=1e-10)
        torch.testing.assert_close(forces_r, forces @ rotation.T, rtol=1e-9, atol=1e-10)


def test_energy_invariant_under_reflection(potential64, molecule):
    """SO3krates uses only even contractions of the Euclidean variables, so it is O(3)-invariant."""
    z, pos = molecule
    mirrored = pos * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert potential64(z, mirrored).item() == pytest.approx(potential64(z, pos).item(), rel=1e-12)


def test_energy_invariant_under_translation(potential64, molecule):
    z, pos = molecule
    energy = potential64(z, pos).item()
    shifted = pos + torch.tensor([13.7, -4.2, 101.0], dtype=torch.float64)
    assert potential64(z, shifted).item() == pytest.approx(energy, rel=1e-10)


def test_energy_invariant_and_forces_follow_permutation(potential64, molecule):
    z, pos = molecule
    energy, forces = energy_and_forces(potential64, z, pos)
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(5))
    energy_p, forces_p = energy_and_forces(potential64, z[perm], pos[perm])
    assert energy_p.item() == pytest.approx(energy.item(), rel=1e-12)
    torch.testing.assert_close(forces_p, forces[perm], rtol=1e-9, atol=1e-10)


def test_energy_is_smooth_when_an_atom_crosses_the_cutoff(potential64):
    """Pull a water molecule's O away from a second molecule across the cutoff: no jump in energy."""
    z = torch.tensor([8, 1, 1, 8, 1, 1])
    base = torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], dtype=torch.float64)
    cutoff = potential64.model.config.cutoff
    energies = []
    for d in torch.linspace(cutoff - 1e-4, cutoff + 1e-4, 5, dtype=torch.float64):
        pos = torch.cat([base, base + torch.tensor([d + 0.96 + 1.0, 0, 0], dtype=torch.float64)])
        pos[3, 0] = pos[1, 0] + d  # O of the second molecule at distance d from H of the first
        energies.append(potential64(z, pos).item())
    assert max(energies) - min(energies) < 1e-6


def test_unknown_element_gives_nan_not_a_plausible_number(potential64, molecule):
    z, pos = molecule
    z = z.clone()
    z[3] = 17  # Cl is not in the small model
    assert torch.isnan(potential64(z, pos))


def test_isolated_atom_energy_is_its_reference_energy(potential64):
    """With no neighbours the learned part sees only the embedding; the per-element shift must be added."""
    config = potential64.model.config
    shifts = potential64.model.atomic_energies_eV()
    z = torch.tensor([8])
    pos = torch.zeros(1, 3, dtype=torch.float64)
    learned = potential64(z, pos).item() - shifts[8]
    # a far-away second O atom doubles the energy exactly: no interaction beyond the cutoff
    pair = torch.tensor([[0.0, 0, 0], [3 * config.cutoff, 0, 0]], dtype=torch.float64)
    assert potential64(torch.tensor([8, 8]), pair).item() == pytest.approx(2 * (learned + shifts[8]), rel=1e-12)
    assert shifts[8] != 0.0
