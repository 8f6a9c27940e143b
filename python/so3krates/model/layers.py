"""The Euclidean transformer block of SO3krates (attention + exchange), after mlff v1.0.

Shapes: N atoms, P directed pairs (i, j), F invariant features, H heads, D degrees,
m_tot = Σ_l (2l+1) Euclidean components, K radial basis functions.
"""
import math
from typing import List, Sequence, Tuple

import torch
from torch import nn

from .spherical import DegreeOps

ACTIVATIONS = ("silu", "identity")
MESSAGE_NORMALIZATIONS = ("sqrt_num_features", "avg_num_neighbors", "identity")


def activation(name: str) -> nn.Module:
    """The activation named `name` (one of ACTIVATIONS) as a module."""
    if name == "silu":
        return nn.SiLU()
    if name == "identity":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def lecun_normal_(weight: torch.Tensor, fan_in: int) -> torch.Tensor:
    """Truncated-normal init with variance 1/fan_in, as flax's lecun_normal (the reference's default)."""
    std = 1.0 / math.sqrt(fan_in) / 0.87962566103423978
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def dense(n_in: int, n_out: int, zero: bool = False) -> nn.Linear:
    """Linear layer initialised like flax Dense (lecun-normal kernel, zero bias); `zero` zeroes the kernel."""
    layer = nn.Linear(n_in, n_out)
    if zero:
        nn.init.zeros_(layer.weight)
    else:
        lecun_normal_(layer.weight, n_in)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(n_in: int, n_hidden: int, n_out: int, act: str, zero_last: bool = False) -> nn.Sequential:
    """Dense -> activation -> Dense."""
    return nn.Sequential(dense(n_in, n_hidden), activation(act), dense(n_hidden, n_out, zero_last))


class HeadLinear(nn.Module):
    """Independent F/H x F/H linear maps per head (no bias): (N, F) -> (N, H, F/H)."""

    def __init__(self, num_features: int, num_heads: int, zero: bool = False):
        super().__init__()
        f = num_features // num_heads
        self.num_heads = num_heads
        self.head_features = f
        self.weight = nn.Parameter(torch.empty(num_heads, f, f))
        if zero:
            nn.init.zeros_(self.weight)
        else:
            lecun_normal_(self.weight, f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xh = x.reshape(x.shape[0], self.num_heads, self.head_features)
        return torch.einsum("hij,nhj->nhi", self.weight, xh)

    def matrix(self) -> torch.Tensor:
        """The same map as one (F, F) matrix acting on rows: x @ matrix() == forward(x).reshape(N, F)."""
        heads, f = self.num_heads, self.head_features
        eye = torch.eye(heads, dtype=self.weight.dtype, device=self.weight.device)
        # [h, a, g, b] = δ_hg W[h, b, a]
        return (eye[:, None, :, None] * self.weight.transpose(1, 2)[:, :, None, :]).reshape(heads * f, heads * f)


class AttentionBlock(nn.Module):
    """Filter-weighted attention without softmax; invariants attend over heads, Euclidean
    variables over degrees. The cutoff multiplies every attention weight, which makes the
    block smooth at the cutoff."""

    def __init__(self, num_features: int, num_heads: int, degrees: Sequence[int], num_radial: int,
                 act: str, qk_act: str, use_spherical_filter: bool, message_normalization: str,
                 avg_num_neighbors: float, zero_values: bool):
        super().__init__()
        num_degrees = len(degrees)
        if num_features % num_heads or num_features % num_degrees:
            raise ValueError(f"num_features={num_features} must be divisible by num_heads={num_heads} "
                             f"and by the number of degrees ({num_degrees})")
        if message_normalization not in MESSAGE_NORMALIZATIONS:
            raise ValueError(f"unknown message_normalization {message_normalization!r}; "
                             f"choose one of {MESSAGE_NORMALIZATIONS}")
        self.degree_ops = DegreeOps(degrees)
        self.num_features = num_features
        self.num_heads = num_heads
        self.num_degrees = num_degrees
        self.radial_filter_1 = mlp(num_radial, num_features, num_features, act)
        self.radial_filter_2 = mlp(num_radial, num_features, num_features, act)
        self.use_spherical_filter = use_spherical_filter
        self.spherical_filter_1 = mlp(num_degrees, num_features // 4, num_features, act)
        self.spherical_filter_2 = mlp(num_degrees, num_features // 4, num_features, act)
        self.query_1 = HeadLinear(num_features, num_heads)
        self.key_1 = HeadLinear(num_features, num_heads)
        self.value_1 = HeadLinear(num_features, num_heads, zero=zero_values)
        self.query_2 = HeadLinear(num_features, num_degrees)
        self.key_2 = HeadLinear(num_features, num_degrees)
        self.qk_act = activation(qk_act)
        self.filter_act = activation(act)
        # fused path: pairs per chunk. Chunk tensors (16384 x 128 floats, 8 MB) are reused from the
        # heap; whole-system tensors of larger systems are fresh mmap'ed pages every step, whose page
        # faults made 2,700-10,000-atom steps 2x slower (README, performance)
        self.pair_chunk = 16384
        if message_normalization == "sqrt_num_features":
            self.inv_norm_1 = (num_features / num_heads) ** -0.5
            self.inv_norm_2 = (num_features / num_degrees) ** -0.5
        elif message_normalization == "avg_num_neighbors":
            self.inv_norm_1 = self.inv_norm_2 = 1.0 / avg_num_neighbors
        else:
            self.inv_norm_1 = self.inv_norm_2 = 1.0

    def projection_matrix(self) -> torch.Tensor:
        """(F, 5F): x @ it gives q1, k1, v1, q2, k2 side by side, one product instead of five."""
        return torch.cat([self.query_1.matrix(), self.key_1.matrix(), self.value_1.matrix(), self.query_2.matrix(),
                          self.key_2.matrix()], dim=1)

    def filter_first_layer(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The first layers of the four filter MLPs (radial 1 and 2 of rbf, spherical 1 and 2 of the degree
        invariants) as one (K + D, H) matrix and bias, hidden units ordered [radial 1, radial 2, spherical 1,
        spherical 2]. Built with pad and add only (no list-taking ops such as cat), so that freezing
        (openmm-torch freezes models) folds it into a constant."""
        pad = nn.functional.pad
        r1_w, r1_b = self.radial_filter_1[0].weight.t(), self.radial_filter_1[0].bias
        r2_w, r2_b = self.radial_filter_2[0].weight.t(), self.radial_filter_2[0].bias
        k, hr = r1_w.shape[0], r1_w.shape[1]
        if not self.use_spherical_filter:
            return pad(r1_w, [0, hr]) + pad(r2_w, [hr, 0]), pad(r1_b, [0, hr]) + pad(r2_b, [hr, 0])
        s1_w, s1_b = self.spherical_filter_1[0].weight.t(), self.spherical_filter_1[0].bias
        s2_w, s2_b = self.spherical_filter_2[0].weight.t(), self.spherical_filter_2[0].bias
        d, hs = s1_w.shape[0], s1_w.shape[1]
        # pad(matrix, [left, right, top, bottom]) places each block in the (K + D, 2 hr + 2 hs) matrix
        first = (pad(r1_w, [0, hr + 2 * hs, 0, d]) + pad(r2_w, [hr, 2 * hs, 0, d])
                 + pad(s1_w, [2 * hr, hs, k, 0]) + pad(s2_w, [2 * hr + hs, 0, k, 0]))
        bias = pad(r1_b, [0, hr + 2 * hs]) + pad(r2_b, [hr, 2 * hs]) + pad(s1_b, [2 * hr, hs]) + pad(s2_b, [2 * hr + hs, 0])
        return first, bias

    def filters(self, rbf: torch.Tensor, ev: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                first: Tuple[torch.Tensor, torch.Tensor]):
        """Radial (+ spherical) filters of pairs: rbf (P, K), ev (N, m_tot) -> w1, w2 (P, F), both
        symmetric in i and j; `first` from filter_first_layer()."""
        inputs = rbf
        if self.use_spherical_filter:
            ev_inv = self.degree_ops.invariants(ev.index_select(0, idx_j) - ev.index_select(0, idx_i))  # (P, D)
            inputs = torch.cat([rbf, ev_inv], dim=1)
        hidden = self.filter_act(torch.addmm(first[1], inputs, first[0]))
        r1, r2 = self.radial_filter_1[2], self.radial_filter_2[2]
        hr = r1.weight.shape[1]
        # split, not slices: one concatenation backward instead of a zero-filled gradient per slice
        if self.use_spherical_filter:
            s1, s2 = self.spherical_filter_1[2], self.spherical_filter_2[2]
            hs = s1.weight.shape[1]
            h_r1, h_r2, h_s1, h_s2 = hidden.split([hr, hr, hs, hs], dim=1)
            w1 = torch.addmm(torch.addmm(r1.bias + s1.bias, h_r1, r1.weight.t()), h_s1, s1.weight.t())
            w2 = torch.addmm(torch.addmm(r2.bias + s2.bias, h_r2, r2.weight.t()), h_s2, s2.weight.t())
            return w1, w2
        h_r1, h_r2 = hidden.split([hr, hr], dim=1)
        return torch.addmm(r1.bias, h_r1, r1.weight.t()), torch.addmm(r2.bias, h_r2, r2.weight.t())

    def forward(self, x: torch.Tensor, ev: torch.Tensor, rbf: torch.Tensor, ylm: torch.Tensor,
                cut: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor, fused: bool = False,
                mirrored: bool = False):
        """x (N, F), ev (N, m_tot), rbf (P_f, K), ylm (P, m_tot), cut (P,), idx_i/idx_j (P,)
        -> x update (N, F), ev update (N, m_tot). `mirrored`: the pairs are a half list followed by the
        same pairs reversed (P = 2 P_f) and rbf belongs to the first half: the filters, symmetric in
        i and j, are computed once per pair. `fused`: use the compiled CPU pair ops
        (plugin/extensions/attention_cpu.cpp), differentiable once: for energies and forces, not
        training; filters and attention weights are then computed `pair_chunk` pairs at a time.
        Small products are merged into larger ones (projection_matrix, filter_first_layer): a small
        molecule's step is mostly per-operation overhead."""
        q1, k1, values, q2, k2 = (x @ self.projection_matrix()).split(self.num_features, dim=1)
        q1, k1, q2, k2 = self.qk_act(q1), self.qk_act(k1), self.qk_act(q2), self.qk_act(k2)
        first = self.filter_first_layer()
        n_atoms = x.shape[0]
        n_filtered = rbf.shape[0]
        filter_i, filter_j = idx_i[:n_filtered], idx_j[:n_filtered]
        if fused:
            # split, not slices: the backward of one split is one concatenation, while every slice's
            # backward would write a zero-filled gradient of all pairs; the op takes all chunks at once
            rbf_chunks = rbf.split(self.pair_chunk)
            i_chunks, j_chunks = filter_i.split(self.pair_chunk), filter_j.split(self.pair_chunk)
            w1_chunks: List[torch.Tensor] = []
            w2_chunks: List[torch.Tensor] = []
            for c in range(len(rbf_chunks)):
                w1, w2 = self.filters(rbf_chunks[c], ev, i_chunks[c], j_chunks[c], first)
                w1_chunks.append(w1)
                w2_chunks.append(w2)
            if mirrored:  # the reversed pairs reuse the same filter chunks
                w1_chunks = w1_chunks + w1_chunks
                w2_chunks = w2_chunks + w2_chunks
            alpha_1 = torch.ops.so3krates.pair_attention_weights(q1, k1, w1_chunks, idx_i, idx_j, self.num_heads)
            alpha_2 = torch.ops.so3krates.pair_attention_weights(q2, k2, w2_chunks, idx_i, idx_j, self.num_degrees)
        else:
            w1, w2 = self.filters(rbf, ev, filter_i, filter_j, first)
            if mirrored:
                w1, w2 = torch.cat([w1, w1]), torch.cat([w2, w2])
            alpha_1 = pair_attention_weights(q1, k1, w1, idx_i, idx_j, self.num_heads)
            alpha_2 = pair_attention_weights(q2, k2, w2, idx_i, idx_j, self.num_degrees)
        alpha_1 = alpha_1 * (self.inv_norm_1 * cut[:, None])  # (P, H)
        alpha_2 = alpha_2 * (self.inv_norm_2 * cut[:, None])  # (P, D)
        if fused:
            x_att = torch.ops.so3krates.pair_aggregate(alpha_1, values, idx_i, idx_j, n_atoms)
        else:
            x_att = pair_aggregate(alpha_1, values, idx_i, idx_j, n_atoms)
        # under bf16 autocast (training) the product is bf16 while ev accumulates in full precision
        ev_att = torch.zeros_like(ev).index_add_(0, idx_i, (self.degree_ops.broadcast(alpha_2) * ylm).to(ev.dtype))
        return x_att, ev_att


def pair_attention_weights(q: torch.Tensor, k: torch.Tensor, w: torch.Tensor, idx_i: torch.Tensor,
                           idx_j: torch.Tensor, heads: int) -> torch.Tensor:
    """q, k (N, C), w (P, C) -> (P, heads): per head, sum over its channels of q_i * w_ij * k_j.
    Gathers use index_select, whose backward (index_add) is much cheaper on the CPU than that of
    advanced indexing (index_put with accumulate)."""
    n_pairs = w.shape[0]
    product = q.index_select(0, idx_i) * w * k.index_select(0, idx_j)
    return product.reshape(n_pairs, heads, w.shape[1] // heads).sum(-1)


def pair_aggregate(alpha: torch.Tensor, values: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                   num_atoms: int) -> torch.Tensor:
    """alpha (P, heads), values (N, C) -> (num_atoms, C): sum over pairs (i, j) of alpha_ij * values_j,
    each head's weight applied to its channels."""
    n_pairs, heads = alpha.shape
    channels = values.shape[1]
    messages = alpha[:, :, None] * values.index_select(0, idx_j).reshape(n_pairs, heads, channels // heads)
    out = torch.zeros(num_atoms, channels, dtype=messages.dtype, device=messages.device)
    return out.index_add_(0, idx_i, messages.reshape(n_pairs, channels))


class ExchangeBlock(nn.Module):
    """Per-atom coupling of invariants and Euclidean variables: one dense layer on [x, c(ev)]
    whose first F outputs update x and last D outputs rescale each degree of ev."""

    def __init__(self, num_features: int, degrees: Sequence[int], zero: bool):
        super().__init__()
        self.degree_ops = DegreeOps(degrees)
        self.num_features = num_features
        self.linear = dense(num_features + len(degrees), num_features + len(degrees), zero)

    def forward(self, x: torch.Tensor, ev: torch.Tensor):
        """x (N, F), ev (N, m_tot) -> x update (N, F), ev update (N, m_tot)"""
        y = self.linear(torch.cat([x, self.degree_ops.invariants(ev)], dim=-1))
        x_update, ev_scale = y.split([self.num_features, y.shape[1] - self.num_features], dim=1)
        return x_update, self.degree_ops.broadcast(ev_scale) * ev


class ResidualMLP(nn.Module):
    """x + Dense(act(Dense(act(x)))), the optional residual MLPs of the reference layer."""

    def __init__(self, num_features: int, act: str, zero_last: bool):
        super().__init__()
        self.act = activation(act)
        self.mlp = mlp(num_features, num_features, num_features, act, zero_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.act(x))


class EuclideanTransformerBlock(nn.Module):
    """Attention, then exchange, with residual connections and optional layer norms / residual MLPs."""

    def __init__(self, num_features: int, num_heads: int, degrees: Sequence[int], num_radial: int,
                 act: str = "silu", qk_act: str = "identity", use_spherical_filter: bool = True,
                 message_normalization: str = "sqrt_num_features", avg_num_neighbors: float = 1.0,
                 layer_norm_1: bool = False, layer_norm_2: bool = False,
                 residual_mlp_1: bool = False, residual_mlp_2: bool = False,
                 identity_at_init: bool = False, layer_norm_eps: float = 1e-5, exchange_ev_update: bool = True):
        super().__init__()
        self.attention = AttentionBlock(num_features, num_heads, degrees, num_radial, act, qk_act,
                                        use_spherical_filter, message_normalization, avg_num_neighbors,
                                        identity_at_init)
        self.exchange = ExchangeBlock(num_features, degrees, identity_at_init)
        self.exchange_ev_update = exchange_ev_update
        self.norm_1 = nn.LayerNorm(num_features, eps=layer_norm_eps) if layer_norm_1 else nn.Identity()
        self.norm_2 = nn.LayerNorm(num_features, eps=layer_norm_eps) if layer_norm_2 else nn.Identity()
        self.residual_1 = ResidualMLP(num_features, act, identity_at_init) if residual_mlp_1 else nn.Identity()
        self.residual_2 = ResidualMLP(num_features, act, identity_at_init) if residual_mlp_2 else nn.Identity()

    def forward(self, x: torch.Tensor, ev: torch.Tensor, rbf: torch.Tensor, ylm: torch.Tensor,
                cut: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor, fused: bool = False,
                mirrored: bool = False):
        x_att, ev_att = self.attention(x, ev, rbf, ylm, cut, idx_i, idx_j, fused, mirrored)
        x = self.residual_1(self.norm_1(x + x_att))
        ev = ev + ev_att
        x_ex, ev_ex = self.exchange(x, ev)
        x = self.norm_2(self.residual_2(x + x_ex))
        if self.exchange_ev_update:
            ev = ev + ev_ex
        return x, ev


class ChargeEmbedding(nn.Module):
    """Per-atom features from a per-molecule number, the total charge or the number of unpaired
    electrons (SpookyNet's scheme, as in mlff's ChargeSpinEmbedSparse): the number is spread over
    atoms by softplus attention weights between an element query and a sign key, then mapped by a
    residual MLP."""

    def __init__(self, num_species: int, num_features: int, act: str):
        super().__init__()
        self.query = nn.Embedding(num_species, num_features)
        self.key = nn.Embedding(2, num_features)
        self.value = nn.Embedding(2, num_features)
        self.residual = ResidualMLP(num_features, act, zero_last=False)
        self.inv_sqrt_features = num_features ** -0.5

    def forward(self, species: torch.Tensor, total_charge: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """species (N,), total_charge (G,) (e, or unpaired electrons), batch (N,) molecule of each atom -> (N, F)"""
        sign = (total_charge < 0).to(torch.long)[batch]
        weight = nn.functional.softplus((self.query(species) * self.key(sign)).sum(-1) * self.inv_sqrt_features)
        norm = torch.zeros_like(total_charge).index_add(0, batch, weight)
        share = total_charge[batch] * weight / norm[batch]
        return self.residual(share[:, None] * self.value(sign))
