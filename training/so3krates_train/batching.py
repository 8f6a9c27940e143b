"""Batches of molecules as one flat graph: atoms concatenated, pairs within each molecule."""
from functools import lru_cache
from typing import Dict, Sequence

import numpy as np
import torch

from .data import Frames


@lru_cache(maxsize=256)
def _all_pairs(n_atoms: int):
    i, j = np.nonzero(~np.eye(n_atoms, dtype=bool))
    return i, j


def collate(frames: Frames, indices: Sequence[int], cutoff: float, dtype: torch.dtype,
            device: torch.device) -> Dict[str, torch.Tensor]:
    """Tensors for frames `indices`: atomic_numbers (N,), positions (N, 3) Å, forces (N, 3) eV/Å,
    batch (N,) frame index within the batch, energy (B,) eV, charge (B,) e, n_atoms (B,), idx_i / idx_j (P,) pairs
    closer than `cutoff` within each frame (the data are molecules in vacuum)."""
    idx_i, idx_j, atom_index = [], [], []
    start = 0
    for k in indices:
        atoms = frames.atoms(k)
        n = atoms.stop - atoms.start
        i, j = _all_pairs(n)
        idx_i.append(i + start)
        idx_j.append(j + start)
        atom_index.append(np.arange(atoms.start, atoms.stop))
        start += n
    atom_index = np.concatenate(atom_index)
    positions = torch.tensor(frames.positions[atom_index], dtype=dtype, device=device)
    idx_i = torch.tensor(np.concatenate(idx_i), dtype=torch.long, device=device)
    idx_j = torch.tensor(np.concatenate(idx_j), dtype=torch.long, device=device)
    close = torch.linalg.norm(positions[idx_j] - positions[idx_i], dim=1) < cutoff
    n_atoms = torch.tensor(frames.n_atoms[list(indices)], device=device)
    return {"atomic_numbers": torch.tensor(frames.atomic_numbers[atom_index], device=device),
            "positions": positions,
            "forces": torch.tensor(frames.forces[atom_index], dtype=dtype, device=device),
            "energy": torch.tensor(frames.energy[list(indices)], dtype=dtype, device=device),
            "charge": torch.tensor(frames.charge[list(indices)], dtype=dtype, device=device),
            "n_atoms": n_atoms,
            "batch": torch.repeat_interleave(torch.arange(len(indices), device=device), n_atoms),
            "idx_i": idx_i[close], "idx_j": idx_j[close]}


def predict(model: torch.nn.Module, batch: Dict[str, torch.Tensor], create_graph: bool):
    """(energy (B,) eV, forces (N, 3) eV/Å) of an SO3krates network on a collated batch."""
    positions = batch["positions"].detach().requires_grad_(True)
    vectors = positions.index_select(0, batch["idx_j"]) - positions.index_select(0, batch["idx_i"])
    atomic = model(batch["atomic_numbers"], vectors, batch["idx_i"], batch["idx_j"], batch["batch"], batch["charge"])
    energy = torch.zeros(len(batch["n_atoms"]), dtype=atomic.dtype, device=atomic.device)
    energy = energy.index_add(0, batch["batch"], atomic)
    forces = -torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)[0]
    return energy, forces
