"""Neighbour lists inside the TorchScript model: pairs (i, j, image) with |r_ij| < cutoff.

Vacuum systems and periodic boxes as OpenMM passes them (rows are box vectors a, b, c in OpenMM's
reduced triclinic form: a along x, b in the xy plane), positions wrapped or not, boxes of any size:
where the cutoff exceeds half a box width an atom meets several images of another atom, and of
itself, each a pair of its own (as a lattice sum needs). `half=False` gives both (i, j) and (j, i)
(message passing); `half=True` each pair once (the long-range energy terms).

With `static_pairs` every ordered pair (or every pair once) is returned, minimum image, also those
beyond the cutoff (the energy terms give them zero weight): shapes then depend on the atom count only
and nothing waits for the device, as CUDA graphs need; the caller checks once that the box is wide
enough for minimum image. Otherwise, on the CPU the compiled op `so3krates::neighbor_pairs`
(plugin/extensions, 2-7x faster than the PyTorch version, benchmarks/neighbor_list.py) does the
search; on other devices, or with compiled=False, the PyTorch version below, with the same cell-list
algorithm (linear cost) and all pairs for small molecules. Pair selection runs on detached positions;
shifts are whole lattice vectors (constants), so r_ij = pos[j] - pos[i] + shift carries the gradient.
"""
import math
from typing import List, Optional, Tuple

import torch
from torch import nn

CELL_DIVISIONS = 2  # cells at least cutoff / 2 wide (as the compiled op)


def perpendicular_widths(cell: torch.Tensor) -> torch.Tensor:
    """Distances between opposite faces of the cell (3,), in the cell's length unit."""
    a, b, c = cell[0], cell[1], cell[2]
    volume = torch.abs(torch.dot(a, torch.linalg.cross(b, c)))
    areas = torch.stack([torch.linalg.norm(torch.linalg.cross(b, c)), torch.linalg.norm(torch.linalg.cross(c, a)),
                         torch.linalg.norm(torch.linalg.cross(a, b))])
    return volume / areas


def check_box_width(cell: torch.Tensor, cutoff: float, what: str = "the model's cutoff") -> None:
    """Raise ValueError if a box width is below twice `cutoff` (minimum image would miss images)."""
    widths = perpendicular_widths(cell)
    if bool((widths < 2.0 * cutoff).any()):
        width_list: List[float] = widths.tolist()
        raise ValueError("periodic box too small for a fixed-size (minimum-image) pair list: every box width must "
                         "be at least twice " + what + " (" + str(2.0 * cutoff) + " Angstrom), but the widths are "
                         + str(width_list) + " Angstrom; use a larger box or cudaGraphs=False")


def minimum_image_shift(delta: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """Shift vectors (P, 3) that bring displacements `delta` (P, 3) to their minimum image in a
    reduced triclinic cell (the same sequential rounding OpenMM uses)."""
    reduced = delta
    for k in (2, 1, 0):
        n = torch.round(reduced[:, k] / cell[k, k])
        reduced = reduced - n[:, None] * cell[k][None, :]
    return reduced - delta


class NeighborList(nn.Module):
    """positions (N, 3), optional cell (3, 3) -> idx_i (P,), idx_j (P,), shifts (P, 3).

    `cutoff` may be infinite (vacuum only: all pairs, for plain Coulomb). `brute_force_max_atoms`:
    vacuum systems up to this size test all N² pairs, faster than building cells.
    """

    def __init__(self, cutoff: float, brute_force_max_atoms: int = 96, compiled: bool = True,
                 static_pairs: bool = False, half: bool = False):
        super().__init__()
        self.cutoff = cutoff
        self.brute_force_max_atoms = brute_force_max_atoms
        self.compiled = compiled
        self.static_pairs = static_pairs
        self.half = half
        self.cell_divisions = CELL_DIVISIONS

    def forward(self, positions: torch.Tensor, cell: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = positions.detach()
        box: Optional[torch.Tensor] = None
        if cell is not None:
            box = cell.detach().to(pos.dtype)
            if not math.isfinite(self.cutoff):
                raise ValueError("a periodic system needs a finite long-range cutoff (no cutoff means plain "
                                 "Coulomb over all pairs, which is defined in vacuum only)")
        if self.static_pairs:
            return self._all_pairs_unfiltered(pos, box)
        if self.compiled and pos.device.type == "cpu":
            return torch.ops.so3krates.neighbor_pairs(pos, box, self.cutoff, self.half)
        if box is None and (pos.shape[0] <= self.brute_force_max_atoms or not math.isfinite(self.cutoff)):
            idx_i, idx_j = self._all_pairs(pos.shape[0], pos.device)
            shift = torch.zeros(idx_i.shape[0], 3, dtype=pos.dtype, device=pos.device)
        else:
            idx_i, idx_j, shift = self._cell_list_candidates(pos, box)
        distance = torch.linalg.norm(pos.index_select(0, idx_j) - pos.index_select(0, idx_i) + shift, dim=1)
        keep = distance < self.cutoff
        return idx_i[keep], idx_j[keep], shift[keep]

    def _all_pairs_unfiltered(self, pos: torch.Tensor, cell: Optional[torch.Tensor]
                              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All pairs i != j (ordered, or each pair once if half) by index arithmetic, minimum image
        (no boolean masks, whose sizes depend on data)."""
        n_atoms = pos.shape[0]
        others = max(n_atoms - 1, 1)
        k = torch.arange(n_atoms * (n_atoms - 1), device=pos.device)
        idx_i = torch.div(k, others, rounding_mode="floor")
        rest = k - idx_i * others
        idx_j = rest + (rest >= idx_i).to(torch.long)
        if self.half:
            # each pair once: (i, i + s mod n) for s = 1 .. (n-1)//2, and for even n also (i, i + n/2)
            # for i < n/2 (sizes depend on n only)
            steps = (n_atoms - 1) // 2
            k = torch.arange(n_atoms * steps, device=pos.device)
            first = torch.remainder(k, n_atoms)
            second = torch.remainder(first + torch.div(k, n_atoms, rounding_mode="floor") + 1, n_atoms)
            across = torch.arange((n_atoms // 2) * (1 - n_atoms % 2), device=pos.device)
            idx_i = torch.cat([first, across])
            idx_j = torch.cat([second, across + n_atoms // 2])
        delta = pos.index_select(0, idx_j) - pos.index_select(0, idx_i)
        if cell is None:
            return idx_i, idx_j, torch.zeros_like(delta)
        return idx_i, idx_j, minimum_image_shift(delta, cell)

    def _all_pairs(self, n_atoms: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        idx = torch.arange(n_atoms, device=device)
        idx_i = idx.repeat_interleave(n_atoms)
        idx_j = idx.repeat(n_atoms)
        wanted = idx_i < idx_j if self.half else idx_i != idx_j
        return idx_i[wanted], idx_j[wanted]

    def _cell_list_candidates(self, pos: torch.Tensor, cell: Optional[torch.Tensor]
                              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(i, j, lattice shift) of atoms in nearby cells, images included (the compiled op's algorithm)."""
        return cell_list_candidates(pos, pos, cell, self.cutoff, self.cell_divisions, True, self.half)


def cell_list_candidates(queries: torch.Tensor, points: torch.Tensor, cell: Optional[torch.Tensor], cutoff: float,
                         divisions: int, same: bool, half: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(query, point, lattice shift) of the points in cells near each query, images included: the
    candidates of a cell list over `points` (the compiled op's algorithm; cells at least cutoff / divisions
    wide), to be filtered by distance.
    `same`: queries and points are one set (no atom pairs with itself in its own image; `half` keeps
    each pair once). In vacuum a query outside the points' bounding box takes the nearest cell, which
    only brings it closer to every point."""
    device = points.device
    n_points = points.shape[0]
    if cell is not None:
        inverse = torch.linalg.inv(cell)
        fractional = points @ inverse
        whole = torch.floor(fractional)
        fractional = fractional - whole
        query_fractional = queries @ inverse
        query_whole = torch.floor(query_fractional)
        query_fractional = query_fractional - query_whole
        extent = perpendicular_widths(cell)
    else:
        low = points.min(dim=0).values
        extent = torch.clamp(points.max(dim=0).values - low, min=cutoff) * (1 + 1e-6)
        fractional = (points - low) / extent
        query_fractional = (queries - low) / extent
        whole = torch.zeros_like(points)
        query_whole = torch.zeros_like(queries)
    width = cutoff / divisions
    n_cells = torch.clamp(torch.floor(extent / width), min=1).to(torch.long)
    while int(n_cells.prod()) > max(64, 4 * n_points):  # a dilute gas must not allocate millions of cells
        width *= 1.5
        n_cells = torch.clamp(torch.floor(extent / width), min=1).to(torch.long)
    reach: List[int] = torch.ceil(cutoff * n_cells.to(points.dtype) / extent).to(torch.long).tolist()
    n_list: List[int] = n_cells.tolist()
    coords = torch.minimum(torch.clamp(torch.floor(fractional * n_cells), min=0).to(torch.long), n_cells - 1)
    query_coords = torch.minimum(torch.clamp(torch.floor(query_fractional * n_cells), min=0).to(torch.long),
                                 n_cells - 1)
    offsets = torch.cartesian_prod(torch.arange(-reach[0], reach[0] + 1, device=device),
                                   torch.arange(-reach[1], reach[1] + 1, device=device),
                                   torch.arange(-reach[2], reach[2] + 1, device=device))  # (K, 3)
    visited = query_coords[:, None, :] + offsets[None, :, :]  # (Q, K, 3), unwrapped cell coordinates
    if cell is not None:
        valid_cell = torch.ones(visited.shape[:2], dtype=torch.bool, device=device)
        wrapped = torch.remainder(visited, n_cells)
        wraps = torch.div(visited - wrapped, n_cells, rounding_mode="floor")  # boxes away, (Q, K, 3)
    else:
        valid_cell = ((visited >= 0) & (visited < n_cells)).all(dim=2)
        wrapped = torch.minimum(torch.clamp(visited, min=0), n_cells - 1)
        wraps = torch.zeros_like(visited)
    strides = torch.tensor([n_list[1] * n_list[2], n_list[2], 1], device=device)
    point_cell = (coords * strides).sum(dim=1)
    visited_id = (wrapped * strides).sum(dim=2)  # (Q, K)

    order = torch.argsort(point_cell)
    counts = torch.bincount(point_cell, minlength=n_list[0] * n_list[1] * n_list[2])
    starts = torch.cumsum(counts, dim=0) - counts
    slot = torch.arange(int(counts.max()), device=device)
    member = starts[visited_id][:, :, None] + slot  # (Q, K, M)
    valid = valid_cell[:, :, None] & (slot < counts[visited_id][:, :, None])
    idx_j = order[torch.clamp(member, max=n_points - 1)]
    idx_i = torch.arange(queries.shape[0], device=device)[:, None, None].expand_as(idx_j)
    wraps = wraps[:, :, None, :].expand(-1, -1, idx_j.shape[2], -1)  # (Q, K, M, 3)
    if same:
        own_image = (wraps == 0).all(dim=3)
        valid = valid & ~((idx_i == idx_j) & own_image)
        if half:
            # (i, j, t) and (j, i, -t) are one pair: keep i < j, and for i == j the positive translation
            nonzero = wraps != 0
            first_nonzero = torch.argmax(nonzero.to(torch.long), dim=3, keepdim=True)
            positive = torch.gather(wraps, 3, first_nonzero).squeeze(3) > 0
            valid = valid & ((idx_i < idx_j) | ((idx_i == idx_j) & positive))
    idx_i, idx_j, wraps = idx_i[valid], idx_j[valid], wraps[valid]
    if cell is None:
        return idx_i, idx_j, torch.zeros(idx_i.shape[0], 3, dtype=points.dtype, device=device)
    lattice = wraps.to(points.dtype) + query_whole.index_select(0, idx_i) - whole.index_select(0, idx_j)
    return idx_i, idx_j, lattice @ cell


class PairsBetween(nn.Module):
    """queries (Q, 3), points (P, 3), optional cell (3, 3) -> idx_query, idx_point, shifts (each image
    within the cutoff a pair of its own), r = points[idx_point] - queries[idx_query] + shifts: the pairs
    of two sets, e.g. the ML atoms and the MM charges of electrostatic embedding. A cell list over the
    points: cost linear in both counts. `cutoff` may be infinite (vacuum: all pairs)."""

    def __init__(self, cutoff: float, compiled: bool = True):
        super().__init__()
        self.cutoff = cutoff
        self.compiled = compiled
        self.cell_divisions = CELL_DIVISIONS

    def forward(self, queries: torch.Tensor, points: torch.Tensor, cell: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, p = queries.detach(), points.detach()
        box: Optional[torch.Tensor] = None
        if cell is not None:
            box = cell.detach().to(q.dtype)
            if not math.isfinite(self.cutoff):
                raise ValueError("a periodic system needs a finite cutoff for the pairs between two sets")
        if self.compiled and q.device.type == "cpu":
            return torch.ops.so3krates.neighbor_pairs_between(q, p, box, self.cutoff)
        if q.shape[0] == 0 or p.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.long, device=q.device)
            return empty, empty, torch.zeros(0, 3, dtype=q.dtype, device=q.device)
        if box is None and not math.isfinite(self.cutoff):
            idx_i = torch.arange(q.shape[0], device=q.device).repeat_interleave(p.shape[0])
            idx_j = torch.arange(p.shape[0], device=q.device).repeat(q.shape[0])
            return idx_i, idx_j, torch.zeros(idx_i.shape[0], 3, dtype=q.dtype, device=q.device)
        idx_i, idx_j, shift = cell_list_candidates(q, p, box, self.cutoff, self.cell_divisions, False, False)
        distance = torch.linalg.norm(p.index_select(0, idx_j) - q.index_select(0, idx_i) + shift, dim=1)
        keep = distance < self.cutoff
        return idx_i[keep], idx_j[keep], shift[keep]
