"""The in-model neighbour list against brute force with explicit periodic images."""
import itertools

import numpy as np
import pytest
import torch

from so3krates.model import NeighborList
from so3krates.model.neighbors import PairsBetween

from conftest import small_config
from so3krates.model_file import create_potential


def reduced_box(rng: np.random.Generator, triclinic: bool, min_width: float) -> np.ndarray:
    """A random box in OpenMM's reduced form (rows a, b, c)."""
    a = rng.uniform(min_width, min_width + 6)
    b = rng.uniform(min_width, min_width + 6)
    c = rng.uniform(min_width, min_width + 6)
    box = np.diag([a, b, c])
    if triclinic:
        box[1, 0] = rng.uniform(-0.5, 0.5) * a
        box[2, 0] = rng.uniform(-0.5, 0.5) * a
        box[2, 1] = rng.uniform(-0.5, 0.5) * b
    return box


def brute_force_pairs(pos: np.ndarray, box, cutoff: float) -> set:
    """{(i, j, image)} from every image of the wrapped positions (periodic) that can lie within the
    cutoff, or none."""
    if box is not None:
        frac = pos @ np.linalg.inv(box)
        pos = (frac - np.floor(frac)) @ box
        widths = abs(np.linalg.det(box)) / np.linalg.norm(np.cross(box[[1, 2, 0]], box[[2, 0, 1]]), axis=1)
        reach = int(np.ceil(cutoff / widths.min())) + 1
    images = np.zeros((1, 3)) if box is None else np.array(
        list(itertools.product(range(-reach, reach + 1), repeat=3))) @ box
    # (i, j, image) displacement pos[j] + shift - pos[i], all at once
    delta = pos[None, :, None, :] + images[None, None, :, :] - pos[:, None, None, :]
    inside = np.linalg.norm(delta, axis=-1) < cutoff
    i_idx, j_idx, k_idx = np.nonzero(inside)
    return {(int(i), int(j), tuple(images[k].tolist())) for i, j, k in zip(i_idx, j_idx, k_idx)
            if i != j or images[k].any()}


def model_pairs(nl: NeighborList, pos: np.ndarray, box) -> set:
    cell = None if box is None else torch.tensor(box)
    idx_i, idx_j, shifts = nl(torch.tensor(pos), cell)
    result = [(int(i), int(j), tuple(s.tolist())) for i, j, s in zip(idx_i, idx_j, shifts)]
    assert len({(i, j, tuple(np.round(s, 6))) for i, j, s in result}) == len(result), "duplicate pairs"
    return result


IMPLEMENTATIONS = {"compiled": dict(compiled=True), "torch-cell-list": dict(compiled=False, brute_force_max_atoms=0),
                   "torch-all-pairs": dict(compiled=False, brute_force_max_atoms=10_000)}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("triclinic", [False, True])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("n", [40, 150])  # the compiled op tests all pairs up to 64 atoms, cells above
@pytest.mark.parametrize("width", [2.0, 0.7], ids=["box>2cutoff", "box<cutoff"])
@pytest.mark.parametrize("half", [False, True], ids=["full", "half"])
def test_periodic_neighbor_list_equals_brute_force(seed, triclinic, implementation, n, width, half):
    """Every image within the cutoff is a pair, also in boxes narrower than the cutoff (atoms then
    meet several images of each other and of themselves); a half list holds each pair once."""
    rng = np.random.default_rng(seed)
    cutoff = 3.0
    box = reduced_box(rng, triclinic, width * cutoff)
    frac = rng.uniform(-1.5, 2.5, size=(n, 3))  # unwrapped: up to two boxes outside
    pos = frac @ box
    nl = NeighborList(cutoff, half=half, **IMPLEMENTATIONS[implementation])
    expected = brute_force_pairs(pos, box, cutoff)
    got = model_pairs(nl, pos, box)
    if half:  # with each pair's reverse added, a half list is the full list
        got = got + [(j, i, tuple(-np.array(s))) for i, j, s in got]
    # shifts refer to wrapped (brute force) or unwrapped (model) positions: compare (i, j, distance)
    wrapped = (pos @ np.linalg.inv(box) % 1.0) @ box

    def distances(pairs, p):
        return sorted((i, j, float(np.linalg.norm(p[j] + np.array(s) - p[i]))) for i, j, s in pairs)
    got_d, expected_d = distances(got, pos), distances(expected, wrapped)
    assert [(i, j) for i, j, _ in got_d] == [(i, j) for i, j, _ in expected_d]
    np.testing.assert_allclose([d for *_, d in got_d], [d for *_, d in expected_d], rtol=1e-9)
    assert len(expected) > n  # the test exercises pairs


def brute_force_between(queries: np.ndarray, points: np.ndarray, box, cutoff: float) -> list:
    """sorted [(query, point, distance)] over every image within the cutoff (of the wrapped positions)"""
    images = [np.zeros(3)]
    if box is not None:
        queries, points = [(p @ np.linalg.inv(box) % 1.0) @ box for p in (queries, points)]
        widths = abs(np.linalg.det(box)) / np.linalg.norm(np.cross(box[[1, 2, 0]], box[[2, 0, 1]]), axis=1)
        reach = int(np.ceil(cutoff / widths.min())) + 1
        images = [np.array(n) @ box for n in itertools.product(range(-reach, reach + 1), repeat=3)]
    found = []
    for shift in images:
        d = np.linalg.norm(points[None, :, :] + shift - queries[:, None, :], axis=-1)
        found += [(int(a), int(b), round(float(d[a, b]), 9)) for a, b in zip(*np.nonzero(d < cutoff))]
    return sorted(found)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "torch"])
@pytest.mark.parametrize("width", [None, 2.0, 0.7], ids=["vacuum", "box>2cutoff", "box<cutoff"])
@pytest.mark.parametrize("counts", [(5, 300), (120, 80)], ids=["few-queries", "many-queries"])
def test_pairs_between_two_sets_equal_brute_force(compiled, width, counts):
    """The ML–MM list of electrostatic embedding: every image within the cutoff once, unwrapped
    positions, and (vacuum) queries outside the points' bounding box."""
    rng = np.random.default_rng(width is None)
    cutoff = 3.0
    box = None if width is None else reduced_box(rng, True, width * cutoff)
    n_queries, n_points = counts
    if box is None:
        queries, points = rng.uniform(-4, 12, size=(n_queries, 3)), rng.uniform(0, 8, size=(n_points, 3))
    else:
        queries, points = rng.uniform(-1.5, 2.5, size=(n_queries, 3)) @ box, rng.uniform(-1, 2, size=(n_points, 3)) @ box
    idx_q, idx_p, shifts = PairsBetween(cutoff, compiled=compiled)(
        torch.tensor(queries), torch.tensor(points), None if box is None else torch.tensor(box))
    distance = np.linalg.norm(points[idx_p.numpy()] + shifts.numpy() - queries[idx_q.numpy()], axis=1)
    got = sorted((int(a), int(b), round(float(d), 9)) for a, b, d in zip(idx_q, idx_p, distance))
    expected = brute_force_between(queries, points, box, cutoff)
    assert got == expected and len(expected) > n_queries
    empty = PairsBetween(cutoff, compiled=compiled)(torch.tensor(queries), torch.zeros(0, 3, dtype=torch.float64))
    assert all(t.shape[0] == 0 for t in empty)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("periodic", [False, True])
def test_static_pairs_are_all_pairs_with_minimum_image_shifts(seed, periodic):
    """The fixed-size list (for CUDA graphs): every ordered pair once; those within the cutoff are
    exactly the brute-force pairs, at the same distances."""
    rng = np.random.default_rng(seed)
    n, cutoff = 30, 3.0
    box = reduced_box(rng, True, 2 * cutoff) if periodic else None
    pos = rng.uniform(-1.0, 2.0, size=(n, 3)) @ box if periodic else rng.uniform(0.0, 7.0, size=(n, 3))
    idx_i, idx_j, shifts = NeighborList(cutoff, static_pairs=True)(torch.tensor(pos), None if box is None else
                                                                   torch.tensor(box))
    assert sorted(zip(idx_i.tolist(), idx_j.tolist())) == [(i, j) for i in range(n) for j in range(n) if i != j]
    distance = np.linalg.norm(pos[idx_j.numpy()] + shifts.numpy() - pos[idx_i.numpy()], axis=1)
    got = sorted((int(i), int(j), round(float(d), 9)) for i, j, d in zip(idx_i, idx_j, distance) if d < cutoff)
    wrapped = pos if box is None else (pos @ np.linalg.inv(box) % 1.0) @ box
    expected = sorted((i, j, round(float(np.linalg.norm(wrapped[j] + np.array(s) - wrapped[i])), 9))
                      for i, j, s in brute_force_pairs(pos, box, cutoff))
    assert got == expected and len(expected) > n


@pytest.mark.parametrize("periodic", [False, True])
def test_static_pairs_give_the_same_energy_and_forces(periodic):
    """Pairs beyond the cutoff get exactly zero weight from the cutoff function."""
    potential = create_potential(small_config(), torch.float64, seed=4, energy_scale_eV=1.0)
    rng = np.random.default_rng(2)
    pos = torch.tensor(rng.uniform(0.0, 9.0, size=(40, 3)))
    z = torch.tensor([8, 1, 1, 6] * 10)
    cell = torch.eye(3, dtype=torch.float64) * 9.0 if periodic else None
    results = []
    for static in (False, True):
        potential.neighbor_list.static_pairs = static
        p = pos.clone().requires_grad_(True)
        energy = potential(z, p, cell)
        results.append((energy.detach(), torch.autograd.grad(energy, p)[0]))
    assert results[0][1].abs().max() > 1e-3
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=1e-10)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_atoms", [50, 400])
def test_vacuum_cell_list_equals_brute_force(n_atoms):
    rng = np.random.default_rng(n_atoms)
    pos = rng.uniform(0, 4.0 * n_atoms ** (1 / 3), size=(n_atoms, 3))
    expected = brute_force_pairs(pos, None, 3.0)
    for options in IMPLEMENTATIONS.values():
        assert set(model_pairs(NeighborList(3.0, **options), pos, None)) == expected


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_no_cutoff_means_all_pairs_in_vacuum_and_is_refused_in_a_box(implementation):
    pos = torch.tensor(np.random.default_rng(0).uniform(0, 100.0, size=(120, 3)))
    nl = NeighborList(float("inf"), half=True, **IMPLEMENTATIONS[implementation])
    idx_i, idx_j, shifts = nl(pos)
    assert sorted(zip(idx_i.tolist(), idx_j.tolist())) == [(i, j) for i in range(120) for j in range(i + 1, 120)]
    assert not shifts.any()
    with pytest.raises(ValueError, match="periodic system needs a finite long-range cutoff"):
        nl(pos, torch.eye(3, dtype=torch.float64) * 50.0)


def test_compiled_op_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"positions must have shape \(N, 3\)"):
        torch.ops.so3krates.neighbor_pairs(torch.zeros(4, 2), None, 3.0)


def test_periodic_energy_equals_explicit_images():
    """Atomic energies in a periodic box equal those of the central copy in a 3x3x3 cluster of
    explicit images (the model's receptive field is num_layers x cutoff < one box width)."""
    cutoff = 3.0
    potential = create_potential(small_config(cutoff=cutoff, num_layers=2), torch.float64, seed=2)
    rng = np.random.default_rng(0)
    box = reduced_box(rng, True, 2 * cutoff + 0.5)
    n = 24
    pos = rng.uniform(0, 1, size=(n, 3)) @ box
    z = torch.tensor(rng.choice([1, 6, 7, 8], size=n))
    pos_t = torch.tensor(pos)
    idx_i, idx_j, vec = potential.pair_vectors(pos_t, torch.tensor(box))
    periodic = potential.model(z, vec, idx_i, idx_j, half_pairs=True)

    cells = list(itertools.product((-1, 0, 1), repeat=3))
    copies = [np.array(c) @ box for c in cells]
    cluster = torch.tensor(np.concatenate([pos + s for s in copies]))
    cluster_z = z.repeat(len(copies))
    ci, cj, cvec = potential.pair_vectors(cluster, None)
    cluster_energies = potential.model(cluster_z, cvec, ci, cj, half_pairs=True)
    centre = cells.index((0, 0, 0))
    torch.testing.assert_close(cluster_energies[centre * n:(centre + 1) * n], periodic, rtol=1e-10, atol=1e-10)
