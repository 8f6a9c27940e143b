"""Batches of molecules as one flat graph: atoms concatenated, pairs within each molecule."""
from functools import lru_cache
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from so3krates.model import SO3krates

from .data import Frames


@lru_cache(maxsize=256)
def _all_pairs(n_atoms: int):
    i, j = np.nonzero(~np.eye(n_atoms, dtype=bool))
    return i, j


@lru_cache(maxsize=256)
def _half_pairs(n_atoms: int):
    return np.triu_indices(n_atoms, k=1)


def collate(frames: Frames, indices: Sequence[int], cutoff: float, dtype: torch.dtype,
            device: torch.device, long_range: bool = False,
            lr_cutoff: Optional[float] = None) -> Dict[str, torch.Tensor]:
    """Tensors for frames `indices`: atomic_numbers (N,), positions (N, 3) Å, forces (N, 3) eV/Å,
    batch (N,) frame index within the batch, energy (B,) eV, charge (B,) e, n_atoms (B,), idx_i / idx_j (P,) pairs
    closer than `cutoff` within each frame (the data are molecules in vacuum); labels that may be
    missing (NaN): dipole (B, 3) e·Å, partial_charges (N,) e. `long_range`: also lr_idx_i / lr_idx_j,
    each pair of a frame once, closer than `lr_cutoff` Å (None: all)."""
    idx_i, idx_j, atom_index, lr_i, lr_j = [], [], [], [], []
    start = 0
    for k in indices:
        atoms = frames.atoms(k)
        n = atoms.stop - atoms.start
        i, j = _all_pairs(n)
        idx_i.append(i + start)
        idx_j.append(j + start)
        if long_range:
            i, j = _half_pairs(n)
            lr_i.append(i + start)
            lr_j.append(j + start)
        atom_index.append(np.arange(atoms.start, atoms.stop))
        start += n
    atom_index = np.concatenate(atom_index)
    positions = torch.tensor(frames.positions[atom_index], dtype=dtype, device=device)
    idx_i = torch.tensor(np.concatenate(idx_i), dtype=torch.long, device=device)
    idx_j = torch.tensor(np.concatenate(idx_j), dtype=torch.long, device=device)
    close = torch.linalg.norm(positions[idx_j] - positions[idx_i], dim=1) < cutoff
    n_atoms = torch.tensor(frames.n_atoms[list(indices)], device=device)
    batch = {}
    if long_range:
        lr_i = torch.tensor(np.concatenate(lr_i), dtype=torch.long, device=device)
        lr_j = torch.tensor(np.concatenate(lr_j), dtype=torch.long, device=device)
        if lr_cutoff is not None:
            within = torch.linalg.norm(positions[lr_j] - positions[lr_i], dim=1) < lr_cutoff
            lr_i, lr_j = lr_i[within], lr_j[within]
        batch = {"lr_idx_i": lr_i, "lr_idx_j": lr_j}
    return {**batch, "atomic_numbers": torch.tensor(frames.atomic_numbers[atom_index], device=device),
            "positions": positions,
            "forces": torch.tensor(frames.forces[atom_index], dtype=dtype, device=device),
            "energy": torch.tensor(frames.energy[list(indices)], dtype=dtype, device=device),
            "charge": torch.tensor(frames.charge[list(indices)], dtype=dtype, device=device),
            "dipole": torch.tensor(frames.dipole[list(indices)], dtype=dtype, device=device),
            "partial_charges": torch.tensor(frames.partial_charges[atom_index], dtype=dtype, device=device),
            "n_atoms": n_atoms,
            "batch": torch.repeat_interleave(torch.arange(len(indices), device=device), n_atoms),
            "idx_i": idx_i[close], "idx_j": idx_j[close]}


class EnergiesAndProperties(torch.nn.Module):
    """An SO3krates model whose forward is its energies_and_properties (what DDP must wrap in training:
    charges and Hirshfeld ratios come out of the same pass as the energies)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args):
        return self.model.energies_and_properties(*args)


def molecule_energies(model: torch.nn.Module, batch: Dict[str, torch.Tensor], positions: torch.Tensor,
                      lr_cutoff: Optional[float] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(energy (B,) eV, partial charges (N,) e or None) of an SO3krates network, or an EnergiesAndProperties
    around one, on a collated batch at `positions` (N, 3) Å (lr_cutoff Å: the long-range pairs' cutoff)."""
    vectors = positions.index_select(0, batch["idx_j"]) - positions.index_select(0, batch["idx_i"])
    lr_vectors = None
    if "lr_idx_i" in batch:
        lr_vectors = positions.index_select(0, batch["lr_idx_j"]) - positions.index_select(0, batch["lr_idx_i"])
    inputs = (batch["atomic_numbers"], vectors, batch["idx_i"], batch["idx_j"], batch["batch"], batch["charge"], False,
              None, lr_vectors, batch.get("lr_idx_i"), batch.get("lr_idx_j"), lr_cutoff)
    outputs = model.energies_and_properties(*inputs) if isinstance(model, SO3krates) else model(*inputs)
    atomic, charges = outputs[0], outputs[1]
    energy = torch.zeros(len(batch["n_atoms"]), dtype=atomic.dtype, device=atomic.device)
    return energy.index_add(0, batch["batch"], atomic), charges


def predict(model: torch.nn.Module, batch: Dict[str, torch.Tensor], create_graph: bool,
            lr_cutoff: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """(energy (B,) eV, forces (N, 3) eV/Å, partial charges (N,) e or None): molecule_energies and -dE/dx."""
    positions = batch["positions"].detach().requires_grad_(True)
    energy, charges = molecule_energies(model, batch, positions, lr_cutoff)
    forces = -torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)[0]
    return energy, forces, charges


def molecular_dipoles(charges: torch.Tensor, positions: torch.Tensor, batch: torch.Tensor,
                      n_molecules: int) -> torch.Tensor:
    """Dipole vectors (B, 3) e·Å of point charges (N,) e at positions (N, 3) Å, about the origin of the
    coordinates (as SPICE's scf_dipole; for charged molecules the origin matters)."""
    dipole = torch.zeros(n_molecules, 3, dtype=charges.dtype, device=charges.device)
    return dipole.index_add(0, batch, charges.unsqueeze(1) * positions)


def labelled_mse(prediction: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries whose label is finite (NaN marks a missing label); 0 if none."""
    known = torch.isfinite(label)
    error = torch.where(known, prediction - torch.nan_to_num(label), torch.zeros_like(prediction))
    return error.pow(2).sum() / known.sum().clamp(min=1)
