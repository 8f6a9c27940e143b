"""Neighbour list inside the TorchScript model: all directed pairs (i, j), i != j, with |r_ij| < cutoff.

Vacuum systems and periodic boxes as OpenMM passes them (rows are box vectors a, b, c in OpenMM's
reduced triclinic form: a along x, b in the xy plane, |b_x| <= a_x/2, |c_x| <= a_x/2, |c_y| <= b_y/2).
Positions may be wrapped or not. With `static_pairs` every ordered pair is returned, also those beyond
the cutoff (the model's cutoff function gives them zero weight): shapes then depend on the atom count
only and nothing waits for the device, as CUDA graphs need. Otherwise, on the CPU the compiled op
`so3krates::neighbor_pairs`
(plugin/extensions, 2-7x faster than the PyTorch version here, see benchmarks/neighbor_list.py)
does the search; on other devices, or with compiled=False, the PyTorch version below: all pairs for
small systems, a cell list with cost linear in the number of atoms for larger ones. Pair selection
runs on detached positions; the returned shift vectors are constants, so
r_ij = pos[j] - pos[i] + shift carries the gradient.
"""
from typing import List, Optional, Tuple

import torch
from torch import nn


def perpendicular_widths(cell: torch.Tensor) -> torch.Tensor:
    """Distances between opposite faces of the cell (3,), in the cell's length unit."""
    a, b, c = cell[0], cell[1], cell[2]
    volume = torch.abs(torch.dot(a, torch.linalg.cross(b, c)))
    areas = torch.stack([torch.linalg.norm(torch.linalg.cross(b, c)), torch.linalg.norm(torch.linalg.cross(c, a)),
                         torch.linalg.norm(torch.linalg.cross(a, b))])
    return volume / areas


def check_box_width(cell: torch.Tensor, cutoff: float) -> None:
    """Raise ValueError if a box width is below twice the cutoff (minimum image would miss pairs)."""
    widths = perpendicular_widths(cell)
    if bool((widths < 2.0 * cutoff).any()):
        width_list: List[float] = widths.tolist()
        raise ValueError("periodic box too small for the model: every box width must be at least "
                         "twice the cutoff (" + str(2.0 * cutoff) + " Angstrom), but the widths are "
                         + str(width_list) + " Angstrom; use a larger box")


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

    `brute_force_max_atoms`: at or below this atom count all N² pairs are tested, which is
    faster than building cells for small molecules. `static_pairs`: return all N(N-1) pairs
    unfiltered (for CUDA graphs; the caller checks the box size once, as this path cannot).
    """

    def __init__(self, cutoff: float, brute_force_max_atoms: int = 96, compiled: bool = True,
                 static_pairs: bool = False):
        super().__init__()
        self.cutoff = cutoff
        self.brute_force_max_atoms = brute_force_max_atoms
        self.compiled = compiled
        self.static_pairs = static_pairs

    def forward(self, positions: torch.Tensor, cell: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = positions.detach()
        if self.static_pairs:
            return self._all_pairs_unfiltered(pos, cell)
        if self.compiled and pos.device.type == "cpu":
            box = None if cell is None else cell.detach().to(pos.dtype)
            return torch.ops.so3krates.neighbor_pairs(pos, box, self.cutoff)
        if cell is not None:
            cell = cell.detach().to(pos.dtype)
            check_box_width(cell, self.cutoff)
        if pos.shape[0] <= self.brute_force_max_atoms:
            idx_i, idx_j = self._all_pairs(pos.shape[0], pos.device)
        else:
            idx_i, idx_j = self._cell_list_candidates(pos, cell)
        delta = pos[idx_j] - pos[idx_i]
        if cell is not None:
            shift = minimum_image_shift(delta, cell)
        else:
            shift = torch.zeros_like(delta)
        keep = torch.linalg.norm(delta + shift, dim=1) < self.cutoff
        return idx_i[keep], idx_j[keep], shift[keep]

    @staticmethod
    def _all_pairs_unfiltered(pos: torch.Tensor, cell: Optional[torch.Tensor]
                              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All ordered pairs i != j by index arithmetic (no boolean masks, whose sizes depend on data)."""
        n_atoms = pos.shape[0]
        others = max(n_atoms - 1, 1)
        k = torch.arange(n_atoms * (n_atoms - 1), device=pos.device)
        idx_i = torch.div(k, others, rounding_mode="floor")
        rest = k - idx_i * others
        idx_j = rest + (rest >= idx_i).to(torch.long)
        delta = pos.index_select(0, idx_j) - pos.index_select(0, idx_i)
        if cell is None:
            return idx_i, idx_j, torch.zeros_like(delta)
        return idx_i, idx_j, minimum_image_shift(delta, cell.detach().to(pos.dtype))

    @staticmethod
    def _all_pairs(n_atoms: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        idx = torch.arange(n_atoms, device=device)
        idx_i = idx.repeat_interleave(n_atoms)
        idx_j = idx.repeat(n_atoms)
        distinct = idx_i != idx_j
        return idx_i[distinct], idx_j[distinct]

    def _cell_list_candidates(self, pos: torch.Tensor, cell: Optional[torch.Tensor]
                              ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pairs of atoms in the same or adjacent cells (each cell at least `cutoff` wide)."""
        device = pos.device
        n_atoms = pos.shape[0]
        if cell is not None:
            fractional = pos @ torch.linalg.inv(cell)
            fractional = fractional - torch.floor(fractional)
            n_cells = torch.floor(perpendicular_widths(cell) / self.cutoff).to(torch.long)
            coords = torch.minimum((fractional * n_cells).to(torch.long), n_cells - 1)
        else:
            scaled = (pos - pos.min(dim=0).values) / self.cutoff
            coords = scaled.to(torch.long)
            n_cells = coords.max(dim=0).values + 1
        n_list: List[int] = n_cells.tolist()
        offset_ranges = []
        for n in n_list:
            # with periodic wrapping, fewer than 3 cells along an axis must not be visited twice
            if cell is not None and n < 3:
                offset_ranges.append(torch.arange(n, device=device))
            else:
                offset_ranges.append(torch.arange(-1, 2, device=device))
        offsets = torch.cartesian_prod(offset_ranges[0], offset_ranges[1], offset_ranges[2])  # (K, 3)
        neighbor_coords = coords[:, None, :] + offsets[None, :, :]  # (N, K, 3)
        if cell is not None:
            valid_cell = torch.ones(neighbor_coords.shape[:2], dtype=torch.bool, device=device)
            neighbor_coords = torch.remainder(neighbor_coords, n_cells)
        else:
            valid_cell = ((neighbor_coords >= 0) & (neighbor_coords < n_cells)).all(dim=2)
            neighbor_coords = torch.clamp(neighbor_coords, min=torch.zeros_like(n_cells), max=n_cells - 1)
        strides = torch.tensor([n_list[1] * n_list[2], n_list[2], 1], device=device)
        atom_cell = (coords * strides).sum(dim=1)
        neighbor_cell = (neighbor_coords * strides).sum(dim=2)  # (N, K)

        order = torch.argsort(atom_cell)
        counts = torch.bincount(atom_cell, minlength=n_list[0] * n_list[1] * n_list[2])
        starts = torch.cumsum(counts, dim=0) - counts
        slot = torch.arange(int(counts.max()), device=device)
        member = starts[neighbor_cell][:, :, None] + slot  # (N, K, M)
        valid = valid_cell[:, :, None] & (slot < counts[neighbor_cell][:, :, None])
        idx_j = order[torch.clamp(member, max=n_atoms - 1)]
        idx_i = torch.arange(n_atoms, device=device)[:, None, None].expand_as(idx_j)
        valid = valid & (idx_i != idx_j)
        return idx_i[valid], idx_j[valid]
