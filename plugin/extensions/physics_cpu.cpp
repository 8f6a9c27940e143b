// SO3LR's physical pair energies on the CPU, for inference (energies and forces): ZBL repulsion on the
// short-range pairs, erf-damped shifted-force electrostatics and vdW-QDO dispersion on the long-range
// pairs. In PyTorch each term is some forty elementwise operations forward and more backward, each a
// pass over all pairs that autograd keeps; here one pass computes a pair's energy, and the backward
// pass recomputes its derivatives from the inputs, which are all it keeps.
//
//   pair_energy(term, atom_values (N, K), vectors (P, 3), pair_values (P,)?, idx_i, idx_j, constants)
//       -> per-atom energies (N,): each pair's energy goes to atom idx_i
//   term "coulomb":    K = 1 (partial charge); constants [damping width (0: none), cutoff (0: none),
//                      e²/4πε0]
//   term "dispersion": K = 2 (polarisability, C6); constants [damping scale, cutoff (0: none), switch
//                      width, bohr, hartree, R_vdW factor, b0, b1, b2, b3]
//   term "zbl":        K = 1 (atomic number); pair_values: the short-range cutoff function; constants
//                      [a1..a4, c1..c4 (normalised), p, 1/length, pair weight, e²/4πε0, switch end]
// The formulas are those of python/so3krates/model/physics.py (the reference the tests compare with).
// Differentiable once, with respect to atom_values, vectors and pair_values.
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kPairGrain = 1024;

// exp(-1/t) for t > 0, else 0, and its derivative
template <typename T>
inline void smooth_step(T t, T& value, T& slope) {
  if (t > 0) {
    value = std::exp(-1 / t);
    slope = value / (t * t);
  } else {
    value = slope = 0;
  }
}

// 1 below x_on, 0 above x_off, C-infinity in between (physics.switch_off), and d/dx
template <typename T>
inline void switch_off(T x, T on, T off, T& value, T& slope) {
  const T width = off - on, c = (x - on) / width;
  T a, da, b, db;
  smooth_step<T>(1 - c, a, da);
  smooth_step<T>(c, b, db);
  const T sum = a + b;
  value = a / sum;
  slope = (-da * b - a * db) / (sum * sum) / width;
}

// Each term: energy of one pair and its partial derivatives with respect to the distance d, the
// atom values of i and j, and the pair value x.
template <typename T>
struct Coulomb {
  static constexpr int K = 1;
  T sigma, cutoff, coulomb, value_rc = 0, slope_rc = 0;
  explicit Coulomb(const std::vector<double>& c) : sigma(c[0]), cutoff(c[1]), coulomb(c[2]) {
    if (cutoff > 0) potential(cutoff, value_rc, slope_rc);
  }
  // erf(r/sigma)/r, or 1/r for sigma = 0 (point charges), and d/dr
  void potential(T r, T& v, T& dv) const {
    if (sigma > 0) {
      v = std::erf(r / sigma) / r;
      dv = (T(2) / (std::sqrt(T(M_PI)) * sigma) * std::exp(-(r / sigma) * (r / sigma)) - v) / r;
    } else {
      v = 1 / r;
      dv = -v / r;
    }
  }
  void operator()(const T* ai, const T* aj, T d, T, T& e, T& de_dd, T* de_dai, T* de_daj, T& de_dx) const {
    T phi, dphi;
    de_dx = 0;
    if (cutoff > 0) {
      if (d >= cutoff) {
        e = de_dd = de_dai[0] = de_daj[0] = 0;
        return;
      }
      T v, dv, sw, dsw;
      potential(d, v, dv);
      switch_off<T>(d, T(0.45) * cutoff, cutoff, sw, dsw);
      const T blend = 1 - sw;
      phi = v - value_rc - blend * slope_rc * (d - cutoff);
      dphi = dv - (-dsw * (d - cutoff) + blend) * slope_rc;
    } else {
      potential(d, phi, dphi);
    }
    const T qq = coulomb * ai[0] * aj[0];
    e = qq * phi;
    de_dd = qq * dphi;
    de_dai[0] = coulomb * aj[0] * phi;
    de_daj[0] = coulomb * ai[0] * phi;
  }
};

template <typename T>
struct Dispersion {
  static constexpr int K = 2;
  T scale, cutoff, switch_width, bohr, hartree, radius_factor, b0, b1, b2, b3;
  explicit Dispersion(const std::vector<double>& c)
      : scale(c[0]), cutoff(c[1]), switch_width(c[2]), bohr(c[3]), hartree(c[4]), radius_factor(c[5]), b0(c[6]),
        b1(c[7]), b2(c[8]), b3(c[9]) {}
  void operator()(const T* ai, const T* aj, T d, T, T& e, T& de_dd, T* de_dai, T* de_daj, T& de_dx) const {
    de_dx = 0;
    T sw = 1, dsw = 0;
    if (cutoff > 0) {
      if (d >= cutoff) {
        e = de_dd = de_dai[0] = de_dai[1] = de_daj[0] = de_daj[1] = 0;
        return;
      }
      switch_off<T>(d, cutoff - switch_width, cutoff, sw, dsw);
    }
    const T alpha_i = ai[0], c6_i = ai[1], alpha_j = aj[0], c6_j = aj[1];
    const T alpha = (alpha_i + alpha_j) / 2;
    const T mix = alpha_i * alpha_i * c6_j + alpha_j * alpha_j * c6_i;
    const T c6 = 2 * c6_i * c6_j * alpha_i * alpha_j / mix;
    const T root = std::pow(alpha, T(1) / 7);
    const T radius = radius_factor * root;
    const T s = ((b3 * radius + b2) * radius + b1) * radius + b0;
    const T s2 = s * s;
    const T c8 = 10 * s2 * c6, c10 = T(122.5) * s2 * s2 * c6;  // 5/γ and 245/(8γ²) with γ = 1/(2s²)
    const T rho = scale * T(5.08) * root;
    const T r = d / bohr;
    const T r2 = r * r, r6 = r2 * r2 * r2, rho2 = rho * rho, rho6 = rho2 * rho2 * rho2;
    const T d6 = r6 + rho6, d8 = r6 * r2 + rho6 * rho2, d10 = r6 * r2 * r2 + rho6 * rho2 * rho2;
    const T f = c6 / d6 + c8 / d8 + c10 / d10;
    // d f / d r and d f / d rho (same form: n C_n x^(n-1) / D_n^2)
    const T df_dr = -(6 * c6 * r6 / r / (d6 * d6) + 8 * c8 * r6 * r / (d8 * d8) + 10 * c10 * r6 * r2 * r / (d10 * d10));
    const T df_drho =
        -(6 * c6 * rho6 / rho / (d6 * d6) + 8 * c8 * rho6 * rho / (d8 * d8) + 10 * c10 * rho6 * rho2 * rho / (d10 * d10));
    const T df_dc6 = 1 / d6 + 10 * s2 / d8 + T(122.5) * s2 * s2 / d10;  // C8 and C10 follow C6
    const T df_ds = c6 * (20 * s / d8 + 490 * s2 * s / d10);
    const T ds_droot = radius_factor * ((3 * b3 * radius + 2 * b2) * radius + b1);
    const T df_dalpha = (df_ds * ds_droot + df_drho * scale * T(5.08)) * root / (7 * alpha);
    const T mix2 = mix * mix;
    const T dc6_dalpha_i = 2 * c6_i * c6_j * alpha_j * (alpha_j * alpha_j * c6_i - alpha_i * alpha_i * c6_j) / mix2;
    const T dc6_dalpha_j = 2 * c6_i * c6_j * alpha_i * (alpha_i * alpha_i * c6_j - alpha_j * alpha_j * c6_i) / mix2;
    const T dc6_dc6_i = 2 * c6_j * c6_j * alpha_i * alpha_i * alpha_i * alpha_j / mix2;
    const T dc6_dc6_j = 2 * c6_i * c6_i * alpha_j * alpha_j * alpha_j * alpha_i / mix2;
    const T factor = -hartree * sw;
    e = -hartree * f * sw;
    de_dd = factor * df_dr / bohr - hartree * f * dsw;
    de_dai[0] = factor * (df_dalpha / 2 + df_dc6 * dc6_dalpha_i);
    de_dai[1] = factor * df_dc6 * dc6_dc6_i;
    de_daj[0] = factor * (df_dalpha / 2 + df_dc6 * dc6_dalpha_j);
    de_daj[1] = factor * df_dc6 * dc6_dc6_j;
  }
};

template <typename T>
struct Zbl {
  static constexpr int K = 1;
  T a[4], c[4], p, inverse_length, weight, coulomb, switch_end;
  explicit Zbl(const std::vector<double>& v)
      : p(v[8]), inverse_length(v[9]), weight(v[10]), coulomb(v[11]), switch_end(v[12]) {
    for (int k = 0; k < 4; ++k) {
      a[k] = v[k];
      c[k] = v[4 + k];
    }
  }
  void operator()(const T* ai, const T* aj, T d, T cut, T& e, T& de_dd, T* de_dai, T* de_daj, T& de_dx) const {
    de_dai[0] = de_daj[0] = 0;  // atomic numbers are constants
    if (d >= switch_end) {
      e = de_dd = de_dx = 0;
      return;
    }
    T sw, dsw;
    switch_off<T>(d, T(0), switch_end, sw, dsw);
    const T zi = ai[0], zj = aj[0];
    const T length = (std::pow(zi, p) + std::pow(zj, p)) * inverse_length;
    T screening = 0, dscreening = 0;
    for (int k = 0; k < 4; ++k) {
      const T term = c[k] * std::exp(-a[k] * d * length);
      screening += term;
      dscreening -= a[k] * length * term;
    }
    const T base = weight * coulomb * zi * zj / d;
    e = base * screening * cut * sw;
    de_dd = base * cut * (-screening * sw / d + dscreening * sw + screening * dsw);
    de_dx = base * screening * sw;
  }
};

struct Inputs {
  Tensor atoms, vectors, pairs, ii, jj;
};

template <typename T, typename Term>
void forward_kernel(const Term& term, const Inputs& in, Tensor& partials) {
  const T* atoms = in.atoms.data_ptr<T>();
  const T* vec = in.vectors.data_ptr<T>();
  const T* x = in.pairs.defined() ? in.pairs.data_ptr<T>() : nullptr;
  const int64_t *ii = in.ii.data_ptr<int64_t>(), *jj = in.jj.data_ptr<int64_t>();
  const int64_t n_atoms = in.atoms.size(0);
  T* out = partials.data_ptr<T>();
  at::parallel_for(0, in.vectors.size(0), kPairGrain, [&](int64_t begin, int64_t end) {
    T* mine = out + at::get_thread_num() * n_atoms;
    T e, de_dd, de_dx, de_dai[Term::K], de_daj[Term::K];
    for (int64_t p = begin; p < end; ++p) {
      const T* v = vec + 3 * p;
      const T d = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
      term(atoms + ii[p] * Term::K, atoms + jj[p] * Term::K, d, x ? x[p] : T(1), e, de_dd, de_dai, de_daj, de_dx);
      mine[ii[p]] += e;
    }
  });
}

template <typename T, typename Term>
void backward_kernel(const Term& term, const Inputs& in, const Tensor& grad, Tensor& datoms_partials, Tensor& dvectors,
                     Tensor& dpairs) {
  const T* atoms = in.atoms.data_ptr<T>();
  const T* vec = in.vectors.data_ptr<T>();
  const T* x = in.pairs.defined() ? in.pairs.data_ptr<T>() : nullptr;
  const int64_t *ii = in.ii.data_ptr<int64_t>(), *jj = in.jj.data_ptr<int64_t>();
  const T* g = grad.data_ptr<T>();
  const int64_t stride = in.atoms.numel();
  T* da_all = datoms_partials.defined() ? datoms_partials.data_ptr<T>() : nullptr;
  T* dv = dvectors.defined() ? dvectors.data_ptr<T>() : nullptr;
  T* dx = dpairs.defined() ? dpairs.data_ptr<T>() : nullptr;
  at::parallel_for(0, in.vectors.size(0), kPairGrain, [&](int64_t begin, int64_t end) {
    T* da = da_all ? da_all + at::get_thread_num() * stride : nullptr;
    T e, de_dd, de_dx, de_dai[Term::K], de_daj[Term::K];
    for (int64_t p = begin; p < end; ++p) {
      const int64_t i = ii[p], j = jj[p];
      const T* v = vec + 3 * p;
      const T d = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
      term(atoms + i * Term::K, atoms + j * Term::K, d, x ? x[p] : T(1), e, de_dd, de_dai, de_daj, de_dx);
      const T gi = g[i];
      if (da)
        for (int k = 0; k < Term::K; ++k) {
          da[i * Term::K + k] += gi * de_dai[k];
          da[j * Term::K + k] += gi * de_daj[k];
        }
      if (dv)
        for (int c = 0; c < 3; ++c) dv[3 * p + c] = gi * de_dd * v[c] / d;
      if (dx) dx[p] = gi * de_dx;
    }
  });
}

// runs `body` with the term named `name` for the dtype of `like`
template <typename Body>
void with_term(const std::string& name, const std::vector<double>& constants, const Tensor& like, Body body) {
  AT_DISPATCH_FLOATING_TYPES(like.scalar_type(), "pair_energy", [&] {
    if (name == "coulomb") {
      TORCH_CHECK_VALUE(constants.size() == 3, "pair_energy: coulomb takes 3 constants");
      body(Coulomb<scalar_t>(constants), scalar_t(0));
    } else if (name == "dispersion") {
      TORCH_CHECK_VALUE(constants.size() == 10, "pair_energy: dispersion takes 10 constants");
      body(Dispersion<scalar_t>(constants), scalar_t(0));
    } else if (name == "zbl") {
      TORCH_CHECK_VALUE(constants.size() == 13, "pair_energy: zbl takes 13 constants");
      body(Zbl<scalar_t>(constants), scalar_t(0));
    } else {
      TORCH_CHECK_VALUE(false, "pair_energy: unknown term '", name, "' (coulomb, dispersion, zbl)");
    }
  });
}

Inputs check_inputs(const Tensor& atoms, const Tensor& vectors, const c10::optional<Tensor>& pairs,
                    const Tensor& idx_i, const Tensor& idx_j, int64_t k) {
  TORCH_CHECK_VALUE(atoms.dim() == 2 && atoms.size(1) == k, "pair_energy: atom values must be (N, ", k, ")");
  TORCH_CHECK_VALUE(vectors.dim() == 2 && vectors.size(1) == 3 && vectors.scalar_type() == atoms.scalar_type(),
                    "pair_energy: vectors must be (P, 3) with the dtype of the atom values");
  const int64_t n_pairs = vectors.size(0);
  TORCH_CHECK_VALUE(idx_i.dim() == 1 && idx_j.dim() == 1 && idx_i.size(0) == n_pairs && idx_j.size(0) == n_pairs &&
                        idx_i.scalar_type() == torch::kLong && idx_j.scalar_type() == torch::kLong,
                    "pair_energy: idx_i and idx_j must be int64 with one entry per pair (", n_pairs, ")");
  TORCH_CHECK_VALUE(!pairs.has_value() || (pairs->dim() == 1 && pairs->size(0) == n_pairs &&
                                           pairs->scalar_type() == atoms.scalar_type()),
                    "pair_energy: pair values must be (P,) with the dtype of the atom values");
  if (n_pairs > 0) {
    const auto [lo_i, hi_i] = torch::aminmax(idx_i);
    const auto [lo_j, hi_j] = torch::aminmax(idx_j);
    TORCH_CHECK_INDEX(std::min(lo_i.item<int64_t>(), lo_j.item<int64_t>()) >= 0 &&
                          std::max(hi_i.item<int64_t>(), hi_j.item<int64_t>()) < atoms.size(0),
                      "pair_energy: pair indices outside [0, ", atoms.size(0), ")");
  }
  return {atoms.contiguous(), vectors.contiguous(), pairs.has_value() ? pairs->contiguous() : Tensor(),
          idx_i.contiguous(), idx_j.contiguous()};
}

int64_t values_per_atom(const std::string& term) { return term == "dispersion" ? 2 : 1; }

class PairEnergy : public torch::autograd::Function<PairEnergy> {
 public:
  static Tensor forward(AutogradContext* ctx, const std::string& term, const Tensor& atoms, const Tensor& vectors,
                        const c10::optional<Tensor>& pairs, const Tensor& idx_i, const Tensor& idx_j,
                        std::vector<double> constants) {
    const Inputs in = check_inputs(atoms, vectors, pairs, idx_i, idx_j, values_per_atom(term));
    ctx->save_for_backward({in.atoms, in.vectors, in.pairs, in.ii, in.jj});
    ctx->saved_data["term"] = term;
    ctx->saved_data["constants"] = constants;
    auto partials = torch::zeros({at::get_num_threads(), atoms.size(0)}, atoms.options());
    with_term(term, constants, atoms, [&](const auto& t, auto zero) {
      forward_kernel<decltype(zero)>(t, in, partials);
    });
    return partials.sum(0);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!torch::GradMode::is_enabled(), "so3krates::pair_energy is differentiable once (energies and forces); "
                "a second derivative (as in training on forces) needs the PyTorch version: fused=False");
    const auto saved = ctx->get_saved_variables();
    const Inputs in{saved[0], saved[1], saved[2], saved[3], saved[4]};
    const auto term = ctx->saved_data["term"].toStringRef();
    const auto constants = ctx->saved_data["constants"].toDoubleVector();
    const auto grad = grads[0].contiguous();
    // needs_input_grad counts tensor inputs only: atoms 0, vectors 1, pair values 2 (when given)
    Tensor datoms = ctx->needs_input_grad(0) ? torch::zeros({at::get_num_threads(), in.atoms.size(0), in.atoms.size(1)},
                                                            in.atoms.options())
                                             : Tensor();
    Tensor dvectors = ctx->needs_input_grad(1) ? torch::empty_like(in.vectors) : Tensor();
    Tensor dpairs = in.pairs.defined() && ctx->needs_input_grad(2) ? torch::empty_like(in.pairs) : Tensor();
    with_term(term, constants, in.atoms, [&](const auto& t, auto zero) {
      backward_kernel<decltype(zero)>(t, in, grad, datoms, dvectors, dpairs);
    });
    return {Tensor(), datoms.defined() ? datoms.sum(0) : Tensor(), dvectors, dpairs, Tensor(), Tensor(), Tensor()};
  }
};

Tensor pair_energy(c10::string_view term, const Tensor& atoms, const Tensor& vectors,
                   const c10::optional<Tensor>& pairs, const Tensor& idx_i, const Tensor& idx_j,
                   c10::ArrayRef<double> constants) {
  return PairEnergy::apply(std::string(term), atoms, vectors, pairs, idx_i, idx_j,
                           std::vector<double>(constants.begin(), constants.end()));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(so3krates, m) {
  m.def("pair_energy(str term, Tensor atom_values, Tensor vectors, Tensor? pair_values, Tensor idx_i, "
        "Tensor idx_j, float[] constants) -> Tensor");
}

TORCH_LIBRARY_IMPL(so3krates, AutogradCPU, m) { m.impl("pair_energy", &pair_energy); }
TORCH_LIBRARY_IMPL(so3krates, CPU, m) { m.impl("pair_energy", &pair_energy); }
