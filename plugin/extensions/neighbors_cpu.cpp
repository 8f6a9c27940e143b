// Neighbour pairs within a cutoff on the CPU, with a cell list (linear cost in atoms); vacuum, or
// periodic boxes in OpenMM's reduced triclinic form (rows a, b, c) of any size: when the cutoff
// exceeds half a box width, an atom meets several images of another atom (and images of itself),
// and every image within the cutoff is a pair of its own.
// Registered as the TorchScript op
//   so3krates::neighbor_pairs(positions, cell?, cutoff, half=False) -> (idx_i, idx_j, shifts)
// with r_ij = positions[j] - positions[i] + shifts (shifts are whole lattice vectors, 0 in vacuum).
// half=False: both (i, j) and (j, i) (the message-passing list); half=True: each pair once (the
// long-range list; pair energies are then counted once). The Python NeighborList calls it with
// detached positions; an infinite cutoff (vacuum only) gives all pairs.
#include <torch/library.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kAllPairsMaxAtoms = 64;
// cells are at least cutoff / kCellDivisions wide: smaller cells visit less volume around an atom
// ((2*2+1)^3 / 2^3 = 15.6 cutoff^3 instead of 27 with cutoff-wide cells), which matters for the
// 12 Angstrom long-range list
constexpr int64_t kCellDivisions = 2;

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
};

// The search space: atoms sorted into a grid of cells, and how many cells to look along each axis.
struct Grid {
  std::array<int64_t, 3> cells{1, 1, 1};
  std::array<int64_t, 3> reach{0, 0, 0};   // neighbour cells visited: offsets -reach..reach
  std::vector<std::array<int64_t, 3>> coord;  // cell of each atom
  std::vector<std::array<int64_t, 3>> image;  // periodic: lattice translation that wraps each atom into the box
};

// grid with cells at least `cutoff / kCellDivisions` wide along `extent` (box widths or the
// molecule's bounding box), at most a few cells per atom (a dilute gas must not allocate millions)
template <typename T>
void size_grid(Grid& grid, const std::array<T, 3>& extent, T cutoff, int64_t n_atoms) {
  T width = cutoff / kCellDivisions;
  for (;;) {
    int64_t total = 1;
    for (int k = 0; k < 3; ++k) {
      grid.cells[k] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(extent[k] / width)));
      total *= grid.cells[k];
    }
    if (total <= std::max<int64_t>(64, 4 * n_atoms)) break;
    width *= 1.5;
  }
  for (int k = 0; k < 3; ++k)
    grid.reach[k] = static_cast<int64_t>(std::ceil(cutoff * static_cast<T>(grid.cells[k]) / extent[k]));
}

template <typename T>
Grid periodic_grid(const T* pos, int64_t n, const T box[3][3], T cutoff) {
  Grid grid;
  size_grid<T>(grid, perpendicular_widths(box), cutoff, n);
  grid.coord.resize(n);
  grid.image.resize(n);
  for (int64_t a = 0; a < n; ++a) {
    // fractional coordinates of a lower-triangular box by forward substitution
    const T* r = pos + 3 * a;
    T f[3];
    f[2] = r[2] / box[2][2];
    f[1] = (r[1] - f[2] * box[2][1]) / box[1][1];
    f[0] = (r[0] - f[2] * box[2][0] - f[1] * box[1][0]) / box[0][0];
    for (int k = 0; k < 3; ++k) {
      const T whole = std::floor(f[k]);
      grid.image[a][k] = static_cast<int64_t>(whole);
      const int64_t c = static_cast<int64_t>((f[k] - whole) * static_cast<T>(grid.cells[k]));
      grid.coord[a][k] = std::min<int64_t>(grid.cells[k] - 1, std::max<int64_t>(0, c));
    }
  }
  return grid;
}

template <typename T>
Grid vacuum_grid(const T* pos, int64_t n, T cutoff) {
  Grid grid;
  std::array<T, 3> lo{pos[0], pos[1], pos[2]}, hi{pos[0], pos[1], pos[2]};
  for (int64_t a = 1; a < n; ++a)
    for (int k = 0; k < 3; ++k) {
      lo[k] = std::min(lo[k], pos[3 * a + k]);
      hi[k] = std::max(hi[k], pos[3 * a + k]);
    }
  std::array<T, 3> extent;
  for (int k = 0; k < 3; ++k) extent[k] = std::max(hi[k] - lo[k], cutoff) * (1 + 1e-6);
  size_grid<T>(grid, extent, cutoff, n);
  grid.coord.resize(n);
  for (int64_t a = 0; a < n; ++a)
    for (int k = 0; k < 3; ++k) {
      const int64_t c = static_cast<int64_t>((pos[3 * a + k] - lo[k]) / extent[k] * static_cast<T>(grid.cells[k]));
      grid.coord[a][k] = std::min<int64_t>(grid.cells[k] - 1, std::max<int64_t>(0, c));
    }
  return grid;
}

// the pair (a, b, lattice translation t) counted once in a half list
inline bool first_of_pair(int64_t a, int64_t b, const int64_t t[3]) {
  if (a != b) return a < b;
  for (int k = 0; k < 3; ++k)
    if (t[k] != 0) return t[k] > 0;
  return false;
}

template <typename T>
PairList<T> search(const T* pos, int64_t n, const T (*box)[3], T cutoff, bool half) {
  PairList<T> out;
  const T cutoff2 = cutoff * cutoff;
  // test r_b - r_a + t . box (t: integer lattice translation; zero in vacuum)
  auto test = [&](int64_t a, int64_t b, const int64_t t[3]) {
    T s[3] = {0, 0, 0};
    if (box != nullptr)
      for (int k = 0; k < 3; ++k)
        for (int c = 0; c < 3; ++c) s[c] += static_cast<T>(t[k]) * box[k][c];
    T d2 = 0;
    for (int c = 0; c < 3; ++c) {
      const T d = pos[3 * b + c] - pos[3 * a + c] + s[c];
      d2 += d * d;
    }
    if (d2 < cutoff2) {
      out.i.push_back(a);
      out.j.push_back(b);
      out.shift.insert(out.shift.end(), s, s + 3);
    }
  };
  const int64_t zero[3] = {0, 0, 0};
  if (box == nullptr && (n <= kAllPairsMaxAtoms || !std::isfinite(cutoff))) {
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = half ? a + 1 : 0; b < n; ++b)
        if (a != b) test(a, b, zero);
    return out;
  }
  const Grid grid = box != nullptr ? periodic_grid<T>(pos, n, box, cutoff) : vacuum_grid<T>(pos, n, cutoff);
  const auto& cells = grid.cells;
  // counting sort of atoms by cell
  const int64_t total = cells[0] * cells[1] * cells[2];
  auto cell_id = [&](const std::array<int64_t, 3>& c) { return (c[0] * cells[1] + c[1]) * cells[2] + c[2]; };
  std::vector<int64_t> start(total + 1, 0), order(n);
  for (int64_t a = 0; a < n; ++a) ++start[cell_id(grid.coord[a]) + 1];
  for (int64_t c = 0; c < total; ++c) start[c + 1] += start[c];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t a = 0; a < n; ++a) order[fill[cell_id(grid.coord[a])]++] = a;

  const auto& reach = grid.reach;
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t ox = -reach[0]; ox <= reach[0]; ++ox)
      for (int64_t oy = -reach[1]; oy <= reach[1]; ++oy)
        for (int64_t oz = -reach[2]; oz <= reach[2]; ++oz) {
          const int64_t offset[3] = {ox, oy, oz};
          std::array<int64_t, 3> c;
          int64_t wraps[3] = {0, 0, 0};  // periodic: how many boxes the visited cell lies away
          bool inside = true;
          for (int k = 0; k < 3; ++k) {
            const int64_t u = grid.coord[a][k] + offset[k];
            if (box != nullptr) {
              c[k] = ((u % cells[k]) + cells[k]) % cells[k];
              wraps[k] = (u - c[k]) / cells[k];
            } else {
              c[k] = u;
              inside = inside && u >= 0 && u < cells[k];
            }
          }
          if (!inside) continue;
          const int64_t id = cell_id(c);
          for (int64_t m = start[id]; m < start[id + 1]; ++m) {
            const int64_t b = order[m];
            if (box == nullptr) {
              if (a != b && (!half || a < b)) test(a, b, zero);
              continue;
            }
            // b's wrapped copy in the visited cell, seen from a's wrapped copy
            int64_t t[3];
            for (int k = 0; k < 3; ++k) t[k] = wraps[k] + grid.image[a][k] - grid.image[b][k];
            const int64_t image_of_wrapped[3] = {wraps[0], wraps[1], wraps[2]};
            if (a == b && wraps[0] == 0 && wraps[1] == 0 && wraps[2] == 0) continue;  // the atom itself
            if (half && !first_of_pair(a, b, image_of_wrapped)) continue;
            test(a, b, t);
          }
        }
  }
  return out;
}

template <typename T>
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> pairs_for(const torch::Tensor& positions,
                                                                  const c10::optional<torch::Tensor>& cell,
                                                                  double cutoff, bool half) {
  T box[3][3] = {};
  if (cell.has_value()) {
    TORCH_CHECK_VALUE(std::isfinite(cutoff), "a periodic neighbour list needs a finite cutoff");
    const auto b = cell->to(positions.dtype()).contiguous();
    const T* data = b.data_ptr<T>();
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) box[r][c] = data[3 * r + c];
    TORCH_CHECK_VALUE(box[0][0] > 0 && box[1][1] > 0 && box[2][2] > 0 && box[0][1] == 0 && box[0][2] == 0 &&
                          box[1][2] == 0,
                      "the periodic cell must be lower triangular with a positive diagonal (OpenMM's reduced form)");
  }
  const auto pos = positions.contiguous();
  PairList<T> pairs = search<T>(pos.data_ptr<T>(), pos.size(0), cell.has_value() ? box : nullptr,
                                static_cast<T>(cutoff), half);
  const int64_t p = static_cast<int64_t>(pairs.i.size());
  auto long_options = torch::TensorOptions().dtype(torch::kLong);
  auto idx_i = torch::from_blob(pairs.i.data(), {p}, long_options).clone();
  auto idx_j = torch::from_blob(pairs.j.data(), {p}, long_options).clone();
  auto shifts = torch::from_blob(pairs.shift.data(), {p, 3}, positions.options()).clone();
  return {idx_i, idx_j, shifts};
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> neighbor_pairs_cpu(const torch::Tensor& positions,
                                                                           const c10::optional<torch::Tensor>& cell,
                                                                           double cutoff, bool half) {
  TORCH_CHECK_VALUE(positions.dim() == 2 && positions.size(1) == 3, "positions must have shape (N, 3), got ",
                    positions.sizes());
  TORCH_CHECK_VALUE(!cell.has_value() || (cell->dim() == 2 && cell->size(0) == 3 && cell->size(1) == 3),
                    "the periodic cell must have shape (3, 3)");
  TORCH_CHECK_VALUE(cutoff > 0, "the cutoff must be positive, got ", cutoff);
  if (positions.scalar_type() == torch::kDouble) return pairs_for<double>(positions, cell, cutoff, half);
  TORCH_CHECK_VALUE(positions.scalar_type() == torch::kFloat, "positions must be float32 or float64");
  return pairs_for<float>(positions, cell, cutoff, half);
}

}  // namespace

TORCH_LIBRARY(so3krates, m) {
  // `half` has a default: model files of format 2 and 3 call the op with three arguments
  m.def("neighbor_pairs(Tensor positions, Tensor? cell, float cutoff, bool half=False) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(so3krates, CPU, m) { m.impl("neighbor_pairs", &neighbor_pairs_cpu); }

// pair indices and image shifts are constants: nothing to differentiate
TORCH_LIBRARY_IMPL(so3krates, Autograd, m) { m.impl("neighbor_pairs", torch::CppFunction::makeFallthrough()); }
