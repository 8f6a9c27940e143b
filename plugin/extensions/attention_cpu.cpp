// Fused pair operations of the SO3krates attention block on the CPU, for inference (energies and
// forces). Unfused, each layer gathers q_i, k_j, v_j into (pairs x features) tensors, multiplies
// them with the filter and keeps all of them for the backward pass: about ten pair-sized tensors
// per layer, which sets both the memory (MB per atom) and, being memory-bound, the time of large
// systems. These ops read the per-atom tensors in place and keep only their inputs.
//
//   pair_attention_weights(q (N, C), k (N, C), w [chunks (P_c, C), sum P_c = P], idx_i, idx_j, heads)
//       -> alpha (P, heads); alpha[p, h] = sum over c in head h of q[i_p, c] * w[p, c] * k[j_p, c]
//   pair_aggregate(alpha (P, heads), v (N, C), idx_i, idx_j, num_atoms) -> out (num_atoms, C)
//       out[i, c] = sum over pairs p with i_p = i of alpha[p, head(c)] * v[j_p, c]
//
// Both are differentiable once (what forces need). A second derivative (training on forces)
// raises an error: training runs the PyTorch version of the same computation.
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <vector>

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kPairGrain = 256;

// Shapes, dtypes and index ranges (the loops below read rows idx_i < rows_i, idx_j < rows_j unchecked).
void check_pair_inputs(const char* op, const Tensor& atoms, int64_t n_pairs, const Tensor& idx_i,
                       const Tensor& idx_j, int64_t heads, int64_t rows_i) {
  TORCH_CHECK_VALUE(atoms.dim() == 2, op, ": per-atom features must be (N, C)");
  TORCH_CHECK_VALUE(idx_i.dim() == 1 && idx_j.dim() == 1 && idx_i.size(0) == n_pairs && idx_j.size(0) == n_pairs,
                    op, ": idx_i and idx_j must have one entry per pair (", n_pairs, ")");
  TORCH_CHECK_VALUE(idx_i.scalar_type() == torch::kLong && idx_j.scalar_type() == torch::kLong, op,
                    ": pair indices must be int64");
  TORCH_CHECK_VALUE(heads > 0 && atoms.size(1) % heads == 0, op, ": ", atoms.size(1),
                    " features are not divisible into ", heads, " heads");
  if (n_pairs == 0) return;
  const auto [min_i, max_i] = torch::aminmax(idx_i);
  const auto [min_j, max_j] = torch::aminmax(idx_j);
  TORCH_CHECK_INDEX(min_i.item<int64_t>() >= 0 && max_i.item<int64_t>() < rows_i, op, ": idx_i outside [0, ",
                    rows_i, ")");
  TORCH_CHECK_INDEX(min_j.item<int64_t>() >= 0 && max_j.item<int64_t>() < atoms.size(0), op,
                    ": idx_j outside [0, ", atoms.size(0), ")");
}

// ---- kernels (plain loops; the compiler vectorises the inner loops over features) ----

template <typename T>
void attention_weights_kernel(const T* q, const T* k, const T* w, const int64_t* ii, const int64_t* jj,
                              int64_t n_pairs, int64_t channels, int64_t heads, T* alpha) {
  const int64_t per_head = channels / heads;
  at::parallel_for(0, n_pairs, kPairGrain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* qi = q + ii[p] * channels;
      const T* kj = k + jj[p] * channels;
      const T* wp = w + p * channels;
      for (int64_t h = 0; h < heads; ++h) {
        T sum = 0;
        const int64_t c0 = h * per_head;
#pragma omp simd reduction(+ : sum)
        for (int64_t c = c0; c < c0 + per_head; ++c) sum += qi[c] * wp[c] * kj[c];
        alpha[p * heads + h] = sum;
      }
    }
  });
}

// d alpha -> dq (N, C), dk (N, C), dw (P, C); scatters go to per-thread buffers (no races).
template <typename T>
void attention_weights_backward_kernel(const T* q, const T* k, const T* w, const int64_t* ii, const int64_t* jj,
                                       const T* grad, int64_t n_pairs, int64_t channels, int64_t heads,
                                       T* dq_partials, T* dk_partials, int64_t partial_stride, T* dw) {
  const int64_t per_head = channels / heads;
  at::parallel_for(0, n_pairs, kPairGrain, [&](int64_t begin, int64_t end) {
    const int64_t thread = at::get_thread_num();
    T* dq = dq_partials ? dq_partials + thread * partial_stride : nullptr;
    T* dk = dk_partials ? dk_partials + thread * partial_stride : nullptr;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t i = ii[p], j = jj[p];
      const T* qi = q + i * channels;
      const T* kj = k + j * channels;
      const T* wp = w + p * channels;
      for (int64_t h = 0; h < heads; ++h) {
        const T g = grad[p * heads + h];
        const int64_t c0 = h * per_head, c1 = c0 + per_head;
        if (dq) {
          T* dqi = dq + i * channels;
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) dqi[c] += g * wp[c] * kj[c];
        }
        if (dk) {
          T* dkj = dk + j * channels;
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) dkj[c] += g * wp[c] * qi[c];
        }
        if (dw) {
          T* dwp = dw + p * channels;
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) dwp[c] = g * qi[c] * kj[c];
        }
      }
    }
  });
}

// out (threads x N_out x C partials) += alpha[p, head(c)] * v[j_p, c] into row i_p
template <typename T>
void aggregate_kernel(const T* alpha, const T* v, const int64_t* ii, const int64_t* jj, int64_t n_pairs,
                      int64_t channels, int64_t heads, T* partials, int64_t partial_stride) {
  const int64_t per_head = channels / heads;
  at::parallel_for(0, n_pairs, kPairGrain, [&](int64_t begin, int64_t end) {
    T* out = partials + at::get_thread_num() * partial_stride;
    for (int64_t p = begin; p < end; ++p) {
      T* oi = out + ii[p] * channels;
      const T* vj = v + jj[p] * channels;
      for (int64_t h = 0; h < heads; ++h) {
        const T a = alpha[p * heads + h];
        const int64_t c0 = h * per_head;
#pragma omp simd
        for (int64_t c = c0; c < c0 + per_head; ++c) oi[c] += a * vj[c];
      }
    }
  });
}

// d out -> d alpha (P, heads) and dv (threads x N x C partials)
template <typename T>
void aggregate_backward_kernel(const T* alpha, const T* v, const int64_t* ii, const int64_t* jj, const T* grad,
                               int64_t n_pairs, int64_t channels, int64_t heads, T* dalpha, T* dv_partials,
                               int64_t partial_stride) {
  const int64_t per_head = channels / heads;
  at::parallel_for(0, n_pairs, kPairGrain, [&](int64_t begin, int64_t end) {
    T* dv = dv_partials ? dv_partials + at::get_thread_num() * partial_stride : nullptr;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t j = jj[p];
      const T* gi = grad + ii[p] * channels;
      const T* vj = v + j * channels;
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t c0 = h * per_head, c1 = c0 + per_head;
        if (dalpha) {
          T sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t c = c0; c < c1; ++c) sum += gi[c] * vj[c];
          dalpha[p * heads + h] = sum;
        }
        if (dv) {
          const T a = alpha[p * heads + h];
          T* dvj = dv + j * channels;
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) dvj[c] += a * gi[c];
        }
      }
    }
  });
}

// Per-thread (threads x rows x cols) accumulators for scatters; summed over threads afterwards.
Tensor partial_buffers(int64_t rows, int64_t cols, const Tensor& like) {
  return torch::zeros({at::get_num_threads(), rows, cols}, like.options());
}

template <typename T>
T* data_or_null(Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// ---- autograd functions ----

void refuse_double_backward(const char* op) {
  TORCH_CHECK(!torch::GradMode::is_enabled(), "so3krates::", op,
              " is differentiable once (energies and forces); a second derivative (create_graph=True, as in "
              "training on forces) needs the PyTorch version of the model: SO3kratesPotential(model, compiled=False), "
              "or SO3krates.forward with fused=False");
}

// w arrives in consecutive chunks of pairs (the model computes filters chunk by chunk, so that
// they stay small); one call covers all chunks, so the backward fills the per-atom gradients once.
class AttentionWeights : public torch::autograd::Function<AttentionWeights> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& q_in, const Tensor& k_in, at::TensorList w_chunks,
                        const Tensor& idx_i, const Tensor& idx_j, int64_t heads) {
    TORCH_CHECK_VALUE(!w_chunks.empty(), "pair_attention_weights: w needs at least one chunk");
    TORCH_CHECK_VALUE(q_in.dim() == 2 && q_in.sizes() == k_in.sizes(),
                      "pair_attention_weights: q and k must be (N, C) of the same shape");
    std::vector<Tensor> w;
    int64_t n_pairs = 0;
    for (const auto& chunk : w_chunks) {
      TORCH_CHECK_VALUE(chunk.dim() == 2 && chunk.size(1) == q_in.size(1) && chunk.scalar_type() == q_in.scalar_type(),
                        "pair_attention_weights: every w chunk must be (pairs, C) with the dtype of q");
      w.push_back(chunk.contiguous());
      n_pairs += chunk.size(0);
    }
    check_pair_inputs("pair_attention_weights", q_in, n_pairs, idx_i, idx_j, heads, q_in.size(0));
    const auto q = q_in.contiguous(), k = k_in.contiguous();
    const auto ii = idx_i.contiguous(), jj = idx_j.contiguous();
    std::vector<Tensor> to_save{q, k, ii, jj};
    to_save.insert(to_save.end(), w.begin(), w.end());
    ctx->save_for_backward(to_save);
    ctx->saved_data["heads"] = heads;
    auto alpha = torch::empty({n_pairs, heads}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "pair_attention_weights", [&] {
      int64_t offset = 0;
      for (const auto& chunk : w) {
        attention_weights_kernel<scalar_t>(q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), chunk.data_ptr<scalar_t>(),
                                           ii.data_ptr<int64_t>() + offset, jj.data_ptr<int64_t>() + offset,
                                           chunk.size(0), q.size(1), heads,
                                           alpha.data_ptr<scalar_t>() + offset * heads);
        offset += chunk.size(0);
      }
    });
    return alpha;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuse_double_backward("pair_attention_weights");
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &ii = saved[2], &jj = saved[3];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const auto grad = grads[0].contiguous();
    const int64_t n = q.size(0), channels = q.size(1);
    Tensor dq_partials = ctx->needs_input_grad(0) ? partial_buffers(n, channels, q) : Tensor();
    Tensor dk_partials = ctx->needs_input_grad(1) ? partial_buffers(n, channels, k) : Tensor();
    // gradients: q, k, each w chunk, then none for idx_i, idx_j, heads
    variable_list result(2);
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "pair_attention_weights_backward", [&] {
      int64_t offset = 0;
      for (size_t c = 4; c < saved.size(); ++c) {
        const auto& chunk = saved[c];
        Tensor dw = ctx->needs_input_grad(c - 2) ? torch::empty_like(chunk) : Tensor();
        attention_weights_backward_kernel<scalar_t>(
            q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), chunk.data_ptr<scalar_t>(), ii.data_ptr<int64_t>() + offset,
            jj.data_ptr<int64_t>() + offset, grad.data_ptr<scalar_t>() + offset * heads, chunk.size(0), channels, heads,
            data_or_null<scalar_t>(dq_partials), data_or_null<scalar_t>(dk_partials), n * channels,
            data_or_null<scalar_t>(dw));
        result.push_back(dw);
        offset += chunk.size(0);
      }
    });
    result[0] = dq_partials.defined() ? dq_partials.sum(0) : Tensor();
    result[1] = dk_partials.defined() ? dk_partials.sum(0) : Tensor();
    result.insert(result.end(), {Tensor(), Tensor(), Tensor()});
    return result;
  }
};

class Aggregate : public torch::autograd::Function<Aggregate> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& alpha_in, const Tensor& v_in, const Tensor& idx_i,
                        const Tensor& idx_j, int64_t num_atoms) {
    TORCH_CHECK_VALUE(alpha_in.dim() == 2 && alpha_in.scalar_type() == v_in.scalar_type(),
                      "pair_aggregate: alpha must be (P, heads) with the dtype of v");
    TORCH_CHECK_VALUE(num_atoms >= 0, "pair_aggregate: num_atoms must not be negative");
    check_pair_inputs("pair_aggregate", v_in, alpha_in.size(0), idx_i, idx_j, alpha_in.size(1), num_atoms);
    const auto alpha = alpha_in.contiguous(), v = v_in.contiguous();
    const auto ii = idx_i.contiguous(), jj = idx_j.contiguous();
    ctx->save_for_backward({alpha, v, ii, jj});
    const int64_t channels = v.size(1), heads = alpha.size(1);
    auto partials = partial_buffers(num_atoms, channels, v);
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "pair_aggregate", [&] {
      aggregate_kernel<scalar_t>(alpha.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), ii.data_ptr<int64_t>(),
                                 jj.data_ptr<int64_t>(), alpha.size(0), channels, heads,
                                 partials.data_ptr<scalar_t>(), num_atoms * channels);
    });
    return partials.sum(0);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuse_double_backward("pair_aggregate");
    const auto saved = ctx->get_saved_variables();
    const auto &alpha = saved[0], &v = saved[1], &ii = saved[2], &jj = saved[3];
    const auto grad = grads[0].contiguous();
    const int64_t channels = v.size(1), heads = alpha.size(1);
    Tensor dalpha = ctx->needs_input_grad(0) ? torch::empty_like(alpha) : Tensor();
    Tensor dv_partials = ctx->needs_input_grad(1) ? partial_buffers(v.size(0), channels, v) : Tensor();
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "pair_aggregate_backward", [&] {
      aggregate_backward_kernel<scalar_t>(alpha.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
                                          ii.data_ptr<int64_t>(), jj.data_ptr<int64_t>(), grad.data_ptr<scalar_t>(),
                                          alpha.size(0), channels, heads, data_or_null<scalar_t>(dalpha),
                                          data_or_null<scalar_t>(dv_partials), v.size(0) * channels);
    });
    return {dalpha, dv_partials.defined() ? dv_partials.sum(0) : Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor pair_attention_weights(const Tensor& q, const Tensor& k, at::TensorList w, const Tensor& idx_i,
                              const Tensor& idx_j, int64_t heads) {
  return AttentionWeights::apply(q, k, w, idx_i, idx_j, heads);
}

Tensor pair_aggregate(const Tensor& alpha, const Tensor& v, const Tensor& idx_i, const Tensor& idx_j,
                      int64_t num_atoms) {
  return Aggregate::apply(alpha, v, idx_i, idx_j, num_atoms);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(so3krates, m) {
  m.def("pair_attention_weights(Tensor q, Tensor k, Tensor[] w, Tensor idx_i, Tensor idx_j, int heads) -> Tensor");
  m.def("pair_aggregate(Tensor alpha, Tensor v, Tensor idx_i, Tensor idx_j, int num_atoms) -> Tensor");
}

// CPU only: the autograd functions call the loops above directly (other devices run the PyTorch path).
// The CPU entries serve calls below autograd (inference mode), where no graph is recorded.
TORCH_LIBRARY_IMPL(so3krates, AutogradCPU, m) {
  m.impl("pair_attention_weights", &pair_attention_weights);
  m.impl("pair_aggregate", &pair_aggregate);
}

TORCH_LIBRARY_IMPL(so3krates, CPU, m) {
  m.impl("pair_attention_weights", &pair_attention_weights);
  m.impl("pair_aggregate", &pair_aggregate);
}
