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
//   so3krates::neighbor_pairs_between(queries, points, cell?, cutoff) -> (idx_query, idx_point, shifts)
// pairs two sets (the ML atoms and the MM charges of electrostatic embedding) with the same cell list
// over the points: cost linear in both counts, r = points[idx_point] - queries[idx_query] + shifts.
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

// The search space: points sorted into a grid of cells, and how many cells to look along each axis.
// Vacuum grids span the points' bounding box; a query outside it is placed in the nearest cell,
// which only brings it closer to every point, so no pair within the cutoff is missed.
template <typename T>
struct Grid {
  std::array<int64_t, 3> cells{1, 1, 1};
  std::array<int64_t, 3> reach{0, 0, 0};  // neighbour cells visited: offsets -reach..reach
  std::array<T, 3> low{0, 0, 0}, extent{1, 1, 1};  // vacuum: the bounding box
  const T (*box)[3] = nullptr;                      // periodic: the cell (rows a, b, c)

  // cells at least `cutoff / kCellDivisions` wide, at most a few per point (a dilute gas must not
  // allocate millions)
  void size(const std::array<T, 3>& widths, T cutoff, int64_t n_points) {
    T width = cutoff / kCellDivisions;
    for (;;) {
      int64_t total = 1;
      for (int k = 0; k < 3; ++k) {
        cells[k] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(widths[k] / width)));
        total *= cells[k];
      }
      if (total <= std::max<int64_t>(64, 4 * n_points)) break;
      width *= 1.5;
    }
    for (int k = 0; k < 3; ++k)
      reach[k] = static_cast<int64_t>(std::ceil(cutoff * static_cast<T>(cells[k]) / widths[k]));
  }

  // the cell of position r and (periodic) the lattice translation that wraps r into the box
  void locate(const T* r, std::array<int64_t, 3>& coord, std::array<int64_t, 3>& image) const {
    T f[3];
    if (box != nullptr) {  // fractional coordinates of a lower-triangular box by forward substitution
      f[2] = r[2] / box[2][2];
      f[1] = (r[1] - f[2] * box[2][1]) / box[1][1];
      f[0] = (r[0] - f[2] * box[2][0] - f[1] * box[1][0]) / box[0][0];
    } else {
      for (int k = 0; k < 3; ++k) f[k] = (r[k] - low[k]) / extent[k];
    }
    for (int k = 0; k < 3; ++k) {
      const T whole = box != nullptr ? std::floor(f[k]) : T(0);
      image[k] = static_cast<int64_t>(whole);
      const int64_t c = static_cast<int64_t>(std::floor((f[k] - whole) * static_cast<T>(cells[k])));
      coord[k] = std::min<int64_t>(cells[k] - 1, std::max<int64_t>(0, c));
    }
  }
};

template <typename T>
Grid<T> make_grid(const T* pos, int64_t n, const T (*box)[3], T cutoff) {
  Grid<T> grid;
  grid.box = box;
  if (box != nullptr) {
    grid.size(perpendicular_widths(box), cutoff, n);
    return grid;
  }
  std::array<T, 3> hi{pos[0], pos[1], pos[2]};
  grid.low = hi;
  for (int64_t a = 1; a < n; ++a)
    for (int k = 0; k < 3; ++k) {
      grid.low[k] = std::min(grid.low[k], pos[3 * a + k]);
      hi[k] = std::max(hi[k], pos[3 * a + k]);
    }
  for (int k = 0; k < 3; ++k) grid.extent[k] = std::max(hi[k] - grid.low[k], cutoff) * (1 + 1e-6);
  grid.size(grid.extent, cutoff, n);
  return grid;
}

// the pair (a, b, lattice translation t) counted once in a half list
inline bool first_of_pair(int64_t a, int64_t b, const int64_t t[3]) {
  if (a != b) return a < b;
  for (int k = 0; k < 3; ++k)
    if (t[k] != 0) return t[k] > 0;
  return false;
}

// Pairs (a, b, t) of a query atom a and a point b with |points[b] + t . box - queries[a]| < cutoff.
// `same`: the queries are the points (one set): an atom is not its own pair in its own image, and
// `half` keeps each pair once. Otherwise (two sets, e.g. ML and MM atoms) every (a, b) is tested.
template <typename T>
PairList<T> search(const T* queries, int64_t n_queries, const T* points, int64_t n_points, const T (*box)[3],
                   T cutoff, bool same, bool half) {
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
      const T d = points[3 * b + c] - queries[3 * a + c] + s[c];
      d2 += d * d;
    }
    if (d2 < cutoff2) {
      out.i.push_back(a);
      out.j.push_back(b);
      out.shift.insert(out.shift.end(), s, s + 3);
    }
  };
  auto wanted = [&](int64_t a, int64_t b, const int64_t wraps[3]) {
    if (!same) return true;
    if (a == b && wraps[0] == 0 && wraps[1] == 0 && wraps[2] == 0) return false;  // the atom itself
    return !half || first_of_pair(a, b, wraps);
  };
  if (n_queries == 0 || n_points == 0) return out;
  const int64_t zero[3] = {0, 0, 0};
  if (box == nullptr && (n_queries * n_points <= kAllPairsMaxAtoms * kAllPairsMaxAtoms || !std::isfinite(cutoff))) {
    for (int64_t a = 0; a < n_queries; ++a)
      for (int64_t b = same && half ? a + 1 : 0; b < n_points; ++b)
        if (wanted(a, b, zero)) test(a, b, zero);
    return out;
  }
  const Grid<T> grid = make_grid<T>(points, n_points, box, cutoff);
  const auto& cells = grid.cells;
  // counting sort of the points by cell
  const int64_t total = cells[0] * cells[1] * cells[2];
  auto cell_id = [&](const std::array<int64_t, 3>& c) { return (c[0] * cells[1] + c[1]) * cells[2] + c[2]; };
  std::vector<std::array<int64_t, 3>> point_image(n_points);
  std::vector<int64_t> start(total + 1, 0), order(n_points), point_cell(n_points);
  for (int64_t b = 0; b < n_points; ++b) {
    std::array<int64_t, 3> coord;
    grid.locate(points + 3 * b, coord, point_image[b]);
    point_cell[b] = cell_id(coord);
    ++start[point_cell[b] + 1];
  }
  for (int64_t c = 0; c < total; ++c) start[c + 1] += start[c];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t b = 0; b < n_points; ++b) order[fill[point_cell[b]]++] = b;

  const auto& reach = grid.reach;
  for (int64_t a = 0; a < n_queries; ++a) {
    std::array<int64_t, 3> coord, image;
    grid.locate(queries + 3 * a, coord, image);
    for (int64_t ox = -reach[0]; ox <= reach[0]; ++ox)
      for (int64_t oy = -reach[1]; oy <= reach[1]; ++oy)
        for (int64_t oz = -reach[2]; oz <= reach[2]; ++oz) {
          const int64_t offset[3] = {ox, oy, oz};
          std::array<int64_t, 3> c;
          int64_t wraps[3] = {0, 0, 0};  // periodic: how many boxes the visited cell lies away
          bool inside = true;
          for (int k = 0; k < 3; ++k) {
            const int64_t u = coord[k] + offset[k];
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
            if (!wanted(a, b, wraps)) continue;
            // b's wrapped copy in the visited cell, seen from a's wrapped copy
            int64_t t[3];
            for (int k = 0; k < 3; ++k) t[k] = wraps[k] + image[k] - point_image[b][k];
            test(a, b, t);
          }
        }
  }
  return out;
}

template <typename T>
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> pairs_for(const torch::Tensor& queries,
                                                                  const c10::optional<torch::Tensor>& points,
                                                                  const c10::optional<torch::Tensor>& cell,
                                                                  double cutoff, bool half) {
  T box[3][3] = {};
  if (cell.has_value()) {
    TORCH_CHECK_VALUE(std::isfinite(cutoff), "a periodic neighbour list needs a finite cutoff");
    const auto b = cell->to(queries.dtype()).contiguous();
    const T* data = b.data_ptr<T>();
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) box[r][c] = data[3 * r + c];
    TORCH_CHECK_VALUE(box[0][0] > 0 && box[1][1] > 0 && box[2][2] > 0 && box[0][1] == 0 && box[0][2] == 0 &&
                          box[1][2] == 0,
                      "the periodic cell must be lower triangular with a positive diagonal (OpenMM's reduced form)");
  }
  const auto q = queries.contiguous();
  const auto p = points.has_value() ? points->contiguous() : q;
  PairList<T> pairs = search<T>(q.data_ptr<T>(), q.size(0), p.data_ptr<T>(), p.size(0),
                                cell.has_value() ? box : nullptr, static_cast<T>(cutoff), !points.has_value(), half);
  const int64_t n = static_cast<int64_t>(pairs.i.size());
  auto long_options = torch::TensorOptions().dtype(torch::kLong);
  auto idx_i = torch::from_blob(pairs.i.data(), {n}, long_options).clone();
  auto idx_j = torch::from_blob(pairs.j.data(), {n}, long_options).clone();
  auto shifts = torch::from_blob(pairs.shift.data(), {n, 3}, queries.options()).clone();
  return {idx_i, idx_j, shifts};
}

void check_positions(const torch::Tensor& positions, const char* what) {
  TORCH_CHECK_VALUE(positions.dim() == 2 && positions.size(1) == 3, what, " must have shape (N, 3), got ",
                    positions.sizes());
  TORCH_CHECK_VALUE(positions.scalar_type() == torch::kFloat || positions.scalar_type() == torch::kDouble, what,
                    " must be float32 or float64");
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> dispatch(const torch::Tensor& queries,
                                                                 const c10::optional<torch::Tensor>& points,
                                                                 const c10::optional<torch::Tensor>& cell,
                                                                 double cutoff, bool half) {
  TORCH_CHECK_VALUE(!cell.has_value() || (cell->dim() == 2 && cell->size(0) == 3 && cell->size(1) == 3),
                    "the periodic cell must have shape (3, 3)");
  TORCH_CHECK_VALUE(cutoff > 0, "the cutoff must be positive, got ", cutoff);
  if (queries.scalar_type() == torch::kDouble) return pairs_for<double>(queries, points, cell, cutoff, half);
  return pairs_for<float>(queries, points, cell, cutoff, half);
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> neighbor_pairs_cpu(const torch::Tensor& positions,
                                                                           const c10::optional<torch::Tensor>& cell,
                                                                           double cutoff, bool half) {
  check_positions(positions, "positions");
  return dispatch(positions, c10::nullopt, cell, cutoff, half);
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> neighbor_pairs_between_cpu(
    const torch::Tensor& queries, const torch::Tensor& points, const c10::optional<torch::Tensor>& cell,
    double cutoff) {
  check_positions(queries, "query positions");
  check_positions(points, "point positions");
  TORCH_CHECK_VALUE(points.scalar_type() == queries.scalar_type(), "query and point positions must have one dtype");
  return dispatch(queries, points, cell, cutoff, false);
}

}  // namespace

TORCH_LIBRARY(so3krates, m) {
  // `half` has a default: model files of format 2 and 3 call the op with three arguments
  m.def("neighbor_pairs(Tensor positions, Tensor? cell, float cutoff, bool half=False) -> (Tensor, Tensor, Tensor)");
  // pairs of two sets (electrostatic embedding: ML atoms and MM charges): (idx_query, idx_point, shifts)
  // with r = points[idx_point] - queries[idx_query] + shifts
  m.def("neighbor_pairs_between(Tensor queries, Tensor points, Tensor? cell, float cutoff) -> "
        "(Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(so3krates, CPU, m) {
  m.impl("neighbor_pairs", &neighbor_pairs_cpu);
  m.impl("neighbor_pairs_between", &neighbor_pairs_between_cpu);
}

// pair indices and image shifts are constants: nothing to differentiate
TORCH_LIBRARY_IMPL(so3krates, Autograd, m) {
  m.impl("neighbor_pairs", torch::CppFunction::makeFallthrough());
  m.impl("neighbor_pairs_between", torch::CppFunction::makeFallthrough());
}
