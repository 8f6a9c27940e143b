"""The network traces with torch.export (dynamic atom and pair counts), so an AOTInductor path
can follow TorchScript without rewriting the model."""
import torch

from so3krates.model import SO3krates
from so3krates.model_file import create_potential

from conftest import small_config


def test_network_exports_with_dynamic_shapes_and_matches_eager(alanine, potential64):
    model = SO3krates(small_config(use_charge_embed=True), torch.float64).eval()
    z, pos, _ = alanine
    z, pos = torch.tensor(z), torch.tensor(pos)
    idx_i, idx_j, vectors = potential64.pair_vectors(pos, None)
    atoms, pairs = torch.export.Dim("atoms"), torch.export.Dim("pairs")
    charge = torch.tensor([1.0], dtype=torch.float64)
    batch = torch.zeros_like(z)
    exported = torch.export.export(model, (z, vectors, idx_i, idx_j, batch, charge),
                                   dynamic_shapes=({0: atoms}, {0: pairs}, {0: pairs}, {0: pairs}, {0: atoms}, None))
    torch.testing.assert_close(exported.module()(z, vectors, idx_i, idx_j, batch, charge),
                               model(z, vectors, idx_i, idx_j, batch, charge))
    # a different molecule size through the same exported program
    keep = 12
    mask = (idx_i < keep) & (idx_j < keep)
    args = (z[:keep], vectors[mask], idx_i[mask], idx_j[mask], batch[:keep], charge)
    torch.testing.assert_close(exported.module()(*args), model(*args))


def test_potential_with_static_pairs_exports_whole(alanine):
    """With the fixed-size pair list (what CUDA graphs get), the whole potential, neighbour list
    included, has no data-dependent shapes or host round-trips: torch.export traces it."""
    z, pos, _ = alanine
    z, pos = torch.tensor(z), torch.tensor(pos)
    potential = create_potential(small_config(), torch.float64, seed=1, energy_scale_eV=1.0)
    potential.compiled = False  # the path other devices take: no CPU-only compiled ops
    potential.neighbor_list.static_pairs = True
    cell = torch.eye(3, dtype=torch.float64) * 12.0
    exported = torch.export.export(potential, (z, pos, cell), strict=False)
    moved = pos + 0.05 * torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(exported.module()(z, moved, cell), potential(z, moved, cell))


def test_long_range_potential_with_static_pairs_exports_whole(alanine):
    """SO3LR's options (charge and spin embeddings, ZBL, electrostatics, dispersion on the second pair
    list) keep the potential free of data-dependent shapes: it exports, charge and spin included."""
    z, pos, _ = alanine
    z, pos = torch.tensor(z), torch.tensor(pos)
    config = small_config(use_charge_embed=True, use_spin_embed=True, average_embeddings=True, zbl_repulsion=True,
                          electrostatic_energy=True, dispersion_energy=True, lr_cutoff=6.0,
                          radial_basis="bernstein", cutoff_function="physnet", layer_norm_1=True, residual_mlp_1=True)
    potential = create_potential(config, torch.float64, seed=2, energy_scale_eV=1.0)
    potential.compiled = False
    potential.neighbor_list.static_pairs = potential.lr_neighbor_list.static_pairs = True
    cell = torch.eye(3, dtype=torch.float64) * 12.5
    exported = torch.export.export(potential, (z, pos, cell, 2.0, 2.0), strict=False)
    moved = pos + 0.05 * torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(exported.module()(z, moved, cell, 2.0, 2.0), potential(z, moved, cell, 2.0, 2.0))
