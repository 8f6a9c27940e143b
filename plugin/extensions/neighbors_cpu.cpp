// Neighbour pairs within a cutoff on the CPU: all pairs for small systems, a cell list (linear
// cost) otherwise; vacuum, or periodic boxes in OpenMM's reduced triclinic form (rows a, b, c).
// Registered as the TorchScript op so3krates::neighbor_pairs(positions, cell?, cutoff)
// -> (idx_i, idx_j, shifts); the Python NeighborList calls it with detached positions.
#include <torch/library.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <sstream>
#include <vector>

namespace {

constexpr int64_t kAllPairsMaxAtoms = 64;

template <typename T>
struct Cell {
  bool periodic = false;
  T box[3][3] = {};
};

// Displacement r_j - r_i reduced to the minimum image (same sequential rounding as OpenMM).
template <typename T>
inline void minimum_image(const Cell<T>& cell, T d[3]) {
  if (!cell.periodic) return;
  for (int k = 2; k >= 0; --k) {
    const T n = std::nearbyint(d[k] / cell.box[k][k]);
    for (int c = 0; c < 3; ++c) d[c] -= n * cell.box[k][c];
  }
}

template <typename T>
std::array<T, 3> perpendicular_widths(const T b[3][3]) {
  auto cross = [](const T* u, const T* v, T* out) {
    out[0] = u[1] * v[2] - u[2] * v[1];
    out[1] = u[2] * v[0] - u[0] * v[2];
    out[2] = u[0] * v[1] - u[1] * v[0];
  };
  T bc[3], ca[3], ab[3];
  cross(b[1], b[2], bc);
  cross(b[2], b[0], ca);
  cross(b[0], b[1], ab);
  const T volume = std::abs(b[0][0] * bc[0] + b[0][1] * bc[1] + b[0][2] * bc[2]);
  auto norm = [](const T* v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); };
  return {volume / norm(bc), volume / norm(ca), volume / norm(ab)};
}

template <typename T>
struct PairList {
  std::vector<int64_t> i, j;
  std::vector<T> shift;
  void add(int64_t a, int64_t b, const T s[3]) {
    i.push_back(a);
    j.push_back(b);
    shift.insert(shift.end(), s, s + 3);
  }
};

template <typename T>
void test_pair(const T* pos, const Cell<T>& cell, T cutoff2, int64_t a, int64_t b, PairList<T>& out) {
  const T raw[3] = {pos[3 * b] - pos[3 * a], pos[3 * b + 1] - pos[3 * a + 1], pos[3 * b + 2] - pos[3 * a + 2]};
  T d[3] = {raw[0], raw[1], raw[2]};
  minimum_image(cell, d);
  if (d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < cutoff2) {
    const T s[3] = {d[0] - raw[0], d[1] - raw[1], d[2] - raw[2]};
    out.add(a, b, s);
  }
}

template <typename T>
PairList<T> cell_list_pairs(const T* pos, int64_t n, const Cell<T>& cell, T cutoff) {
  PairList<T> out;
  const T cutoff2 = cutoff * cutoff;
  if (n <= kAllPairsMaxAtoms) {
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = 0; b < n; ++b)
        if (a != b) test_pair(pos, cell, cutoff2, a, b, out);
    return out;
  }
  // cell coordinates of every atom
  std::array<int64_t, 3> ncell;
  std::vector<std::array<int64_t, 3>> coord(n);
  if (cell.periodic) {
    const auto w = perpendicular_widths(cell.box);
    for (int k = 0; k < 3; ++k) ncell[k] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(w[k] / cutoff)));
    // fractional coordinates of a lower-triangular box by forward substitution
    const auto& B = cell.box;
    for (int64_t a = 0; a < n; ++a) {
      const T* r = pos + 3 * a;
      T f[3];
      f[2] = r[2] / B[2][2];
      f[1] = (r[1] - f[2] * B[2][1]) / B[1][1];
      f[0] = (r[0] - f[2] * B[2][0] - f[1] * B[1][0]) / B[0][0];
      for (int k = 0; k < 3; ++k) {
        const T wrapped = f[k] - std::floor(f[k]);
        coord[a][k] = std::min<int64_t>(ncell[k] - 1, static_cast<int64_t>(wrapped * ncell[k]));
      }
    }
  } else {
    T lo[3] = {pos[0], pos[1], pos[2]};
    for (int64_t a = 1; a < n; ++a)
      for (int k = 0; k < 3; ++k) lo[k] = std::min(lo[k], pos[3 * a + k]);
    ncell = {1, 1, 1};
    for (int64_t a = 0; a < n; ++a)
      for (int k = 0; k < 3; ++k) {
        coord[a][k] = static_cast<int64_t>((pos[3 * a + k] - lo[k]) / cutoff);
        ncell[k] = std::max(ncell[k], coord[a][k] + 1);
      }
  }
  // counting sort of atoms by cell
  const int64_t total = ncell[0] * ncell[1] * ncell[2];
  auto cell_id = [&](int64_t x, int64_t y, int64_t z) { return (x * ncell[1] + y) * ncell[2] + z; };
  std::vector<int64_t> start(total + 1, 0), order(n);
  for (int64_t a = 0; a < n; ++a) ++start[cell_id(coord[a][0], coord[a][1], coord[a][2]) + 1];
  for (int64_t c = 0; c < total; ++c) start[c + 1] += start[c];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t a = 0; a < n; ++a) order[fill[cell_id(coord[a][0], coord[a][1], coord[a][2])]++] = a;
  // neighbour cell offsets per axis: with wrapping, fewer than 3 cells must not be visited twice
  std::array<std::vector<int64_t>, 3> offsets;
  for (int k = 0; k < 3; ++k) {
    if (cell.periodic && ncell[k] < 3)
      for (int64_t o = 0; o < ncell[k]; ++o) offsets[k].push_back(o);
    else
      offsets[k] = {-1, 0, 1};
  }
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t ox : offsets[0])
      for (int64_t oy : offsets[1])
        for (int64_t oz : offsets[2]) {
          int64_t c[3] = {coord[a][0] + ox, coord[a][1] + oy, coord[a][2] + oz};
          bool inside = true;
          for (int k = 0; k < 3; ++k) {
            if (cell.periodic)
              c[k] = ((c[k] % ncell[k]) + ncell[k]) % ncell[k];
            else if (c[k] < 0 || c[k] >= ncell[k])
              inside = false;
          }
          if (!inside) continue;
          const int64_t id = cell_id(c[0], c[1], c[2]);
          for (int64_t m = start[id]; m < start[id + 1]; ++m)
            if (order[m] != a) test_pair(pos, cell, cutoff2, a, order[m], out);
        }
  }
  return out;
}

template <typename T>
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> pairs_for(const torch::Tensor& positions,
                                                                  const c10::optional<torch::Tensor>& box,
                                                                  double cutoff) {
  Cell<T> cell;
  if (box.has_value()) {
    const auto b = box->to(positions.dtype()).contiguous();
    const T* data = b.data_ptr<T>();
    cell.periodic = true;
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) cell.box[r][c] = data[3 * r + c];
    const auto w = perpendicular_widths(cell.box);
    if (w[0] < 2 * cutoff || w[1] < 2 * cutoff || w[2] < 2 * cutoff) {
      std::ostringstream message;
      message << "periodic box too small for the model: every box width must be at least twice the cutoff ("
              << 2 * cutoff << " Angstrom), but the widths are [" << w[0] << ", " << w[1] << ", " << w[2]
              << "] Angstrom; use a larger box";
      TORCH_CHECK_VALUE(false, message.str());
    }
  }
  const auto pos = positions.contiguous();
  PairList<T> pairs = cell_list_pairs<T>(pos.data_ptr<T>(), pos.size(0), cell, static_cast<T>(cutoff));
  const int64_t p = static_cast<int64_t>(pairs.i.size());
  auto long_options = torch::TensorOptions().dtype(torch::kLong);
  auto idx_i = torch::from_blob(pairs.i.data(), {p}, long_options).clone();
  auto idx_j = torch::from_blob(pairs.j.data(), {p}, long_options).clone();
  auto shifts = torch::from_blob(pairs.shift.data(), {p, 3}, positions.options()).clone();
  return {idx_i, idx_j, shifts};
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> neighbor_pairs_cpu(const torch::Tensor& positions,
                                                                           const c10::optional<torch::Tensor>& cell,
                                                                           double cutoff) {
  TORCH_CHECK_VALUE(positions.dim() == 2 && positions.size(1) == 3, "positions must have shape (N, 3), got ",
                    positions.sizes());
  TORCH_CHECK_VALUE(!cell.has_value() || (cell->dim() == 2 && cell->size(0) == 3 && cell->size(1) == 3),
                    "the periodic cell must have shape (3, 3)");
  if (positions.scalar_type() == torch::kDouble) return pairs_for<double>(positions, cell, cutoff);
  TORCH_CHECK_VALUE(positions.scalar_type() == torch::kFloat, "positions must be float32 or float64");
  return pairs_for<float>(positions, cell, cutoff);
}

}  // namespace

TORCH_LIBRARY(so3krates, m) {
  m.def("neighbor_pairs(Tensor positions, Tensor? cell, float cutoff) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(so3krates, CPU, m) { m.impl("neighbor_pairs", &neighbor_pairs_cpu); }

// pair indices and image shifts are constants: nothing to differentiate
TORCH_LIBRARY_IMPL(so3krates, Autograd, m) { m.impl("neighbor_pairs", torch::CppFunction::makeFallthrough()); }
