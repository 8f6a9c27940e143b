"""The compiled attention pair ops (plugin/extensions/attention_cpu.cpp) against their PyTorch
versions in so3krates.model.layers: values, first derivatives, and a clear refusal of second ones."""
import pytest
import torch

import so3krates  # noqa: F401  (registers torch.ops.so3krates)
from so3krates.model.layers import pair_aggregate, pair_attention_weights
from so3krates.model_file import create_potential

from conftest import small_config

fused_aggregate = torch.ops.so3krates.pair_aggregate


def fused_weights(q, k, w, idx_i, idx_j, heads):
    """The op with w in uneven chunks, as the model passes it."""
    first = w.shape[0] // 3
    return torch.ops.so3krates.pair_attention_weights(q, k, [w[:first], w[first:]], idx_i, idx_j, heads)


def random_graph(n_atoms: int, n_pairs: int, channels: int, dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(rows, channels, dtype=dtype, generator=g, requires_grad=True)
               for rows in (n_atoms, n_atoms, n_pairs, n_atoms)]
    idx_i = torch.randint(0, n_atoms, (n_pairs,), generator=g)
    idx_j = torch.randint(0, n_atoms, (n_pairs,), generator=g)
    return tensors, idx_i, idx_j


def attention(weights, aggregate, q, k, w, v, idx_i, idx_j, heads):
    alpha = weights(q, k, w, idx_i, idx_j, heads)
    return alpha, aggregate(alpha, v, idx_i, idx_j, q.shape[0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_atoms,n_pairs", [(37, 900), (5, 0)], ids=["pairs", "no-pairs"])
def test_fused_ops_equal_pytorch_values_and_gradients(dtype, n_atoms, n_pairs):
    (q, k, w, v), idx_i, idx_j = random_graph(n_atoms, n_pairs, 24, dtype)
    tolerance = 1e-12 if dtype == torch.float64 else 2e-5
    heads = 4
    results = []
    for ops in ((pair_attention_weights, pair_aggregate), (fused_weights, fused_aggregate)):
        alpha, out = attention(*ops, q, k, w, v, idx_i, idx_j, heads)
        # a scalar that depends on both outputs, with weights so no gradient is trivially uniform
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).reshape(out.shape)).sum() + (alpha ** 2).sum()
        results.append((alpha, out, torch.autograd.grad(loss, [q, k, w, v], allow_unused=True)))
    (alpha_ref, out_ref, grads_ref), (alpha, out, grads) = results
    assert alpha.shape == (n_pairs, heads) and out.shape == (n_atoms, 24)
    torch.testing.assert_close(alpha, alpha_ref, atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(out, out_ref, atol=tolerance, rtol=tolerance)
    for name, grad, grad_ref in zip("qkwv", grads, grads_ref):
        grad = torch.zeros_like(grad_ref) if grad is None else grad
        torch.testing.assert_close(grad, grad_ref, atol=tolerance, rtol=tolerance, msg=f"d/d{name}")


def test_fused_ops_pass_gradcheck():
    (q, k, w, v), idx_i, idx_j = random_graph(9, 60, 8, torch.float64, seed=1)
    assert torch.autograd.gradcheck(
        lambda q, k, w, v: attention(fused_weights, fused_aggregate, q, k, w, v, idx_i, idx_j, 2), (q, k, w, v))


def test_second_derivative_is_refused_with_a_reason():
    (q, k, w, v), idx_i, idx_j = random_graph(6, 20, 8, torch.float64)
    _, out = attention(fused_weights, fused_aggregate, q, k, w, v, idx_i, idx_j, 2)
    with pytest.raises(RuntimeError, match="differentiable once.*compiled=False"):
        torch.autograd.grad(out.sum(), q, create_graph=True)


def test_bad_shapes_are_named():
    (q, k, w, v), idx_i, idx_j = random_graph(6, 20, 8, torch.float64)
    with pytest.raises(ValueError, match="not divisible into 3 heads"):
        fused_weights(q, k, w, idx_i, idx_j, 3)
    with pytest.raises(ValueError, match="one entry per pair"):
        fused_weights(q, k, w, idx_i[:-1], idx_j, 2)
    with pytest.raises(IndexError, match=r"idx_j outside \[0, 6\)"):
        fused_weights(q, k, w, idx_i, idx_j + 6, 2)
    with pytest.raises(IndexError, match=r"idx_i outside \[0, 3\)"):
        fused_aggregate(torch.ones(20, 2, dtype=torch.float64), v, idx_i, idx_j, 3)


@pytest.mark.parametrize("pair_chunk", [16384, 97], ids=["one-chunk", "many-chunks"])
@pytest.mark.parametrize("periodic", [False, True], ids=["molecule", "water-box"])
def test_model_with_fused_ops_matches_pytorch_model(periodic, pair_chunk):
    """The model file's potential (compiled ops on the CPU, pairs in chunks) against compiled=False,
    energies and forces."""
    torch.manual_seed(0)
    if periodic:
        n_side, spacing = 5, 2.2
        grid = torch.stack(torch.meshgrid(*[torch.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
        pos = (grid * spacing + 0.3 * torch.randn(grid.shape)).to(torch.float64)
        cell = torch.eye(3, dtype=torch.float64) * n_side * spacing
    else:
        pos, cell = torch.randn(30, 3, dtype=torch.float64) * 3.0, None
    z = torch.tensor([8, 1, 1] * (pos.shape[0] // 3) + [6] * (pos.shape[0] % 3))
    fused = create_potential(small_config(), torch.float64, seed=2, energy_scale_eV=1.0)
    plain = create_potential(small_config(), torch.float64, seed=2, energy_scale_eV=1.0)
    plain.compiled = False
    for block in fused.model.blocks:
        block.attention.pair_chunk = pair_chunk
    results = []
    for potential in (torch.jit.script(fused), plain):
        p = pos.clone().requires_grad_(True)
        energy = potential(z, p, cell)
        results.append((energy.detach(), torch.autograd.grad(energy, p)[0]))
    assert results[0][1].abs().max() > 1e-3
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-10, rtol=0)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-10, rtol=0)


def test_merged_products_equal_the_per_module_definitions():
    """The attention block's merged products (one projection for q/k/v of both kinds, one first layer for
    all four filter MLPs) equal the per-head maps and the MLPs they are built from."""
    from so3krates.model import SO3krates

    block = SO3krates(small_config(), torch.float64).blocks[0].attention
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 32, dtype=torch.float64, generator=g)
    merged = (x @ block.projection_matrix()).split(32, dim=1)
    for part, head_map in zip(merged, (block.query_1, block.key_1, block.value_1, block.query_2, block.key_2)):
        torch.testing.assert_close(part, head_map(x).reshape(7, 32), rtol=1e-12, atol=1e-12)
    rbf = torch.rand(20, 16, dtype=torch.float64, generator=g)
    ev = torch.randn(7, 24, dtype=torch.float64, generator=g)
    idx_i, idx_j = torch.randint(0, 7, (20,), generator=g), torch.randint(0, 7, (20,), generator=g)
    w1, w2 = block.filters(rbf, ev, idx_i, idx_j, block.filter_first_layer())
    invariants = block.degree_ops.invariants(ev[idx_j] - ev[idx_i])
    torch.testing.assert_close(w1, block.radial_filter_1(rbf) + block.spherical_filter_1(invariants), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w2, block.radial_filter_2(rbf) + block.spherical_filter_2(invariants), rtol=1e-12, atol=1e-12)
