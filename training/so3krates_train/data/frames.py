"""`Frames`: structures with energies and forces, in eV and Å, stored flat (atoms concatenated)."""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np


class DataError(ValueError):
    """A data file that does not fit: the message names the file, group/frame and what is wrong."""


@dataclass
class Frames:
    """n frames; atom arrays concatenated over frames (frame k owns atoms offsets[k]:offsets[k+1]).

    energy (n,) eV total energy; forces (n_atoms_total, 3) eV/Å; positions Å; charge (n,) e;
    molecule (n,) an identifier shared by conformations of one molecule (for by-molecule splits and
    per-molecule checks); subset (n,) data-set subset name (SPICE) or ""; origin (n,) "file:group:frame"
    for error messages and reports. Optional labels, NaN where a file has none: dipole (n, 3) e·Å
    (about the coordinates' origin), partial_charges (n_atoms_total,) e (e.g. MBIS).
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    forces: np.ndarray
    energy: np.ndarray
    n_atoms: np.ndarray
    charge: np.ndarray
    molecule: np.ndarray
    subset: np.ndarray
    origin: np.ndarray
    dipole: Optional[np.ndarray] = None
    partial_charges: Optional[np.ndarray] = None
    offsets: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.n_atoms = np.asarray(self.n_atoms, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.n_atoms)])
        n, total = len(self.n_atoms), int(self.offsets[-1])
        if self.dipole is None:
            self.dipole = np.full((n, 3), np.nan)
        if self.partial_charges is None:
            self.partial_charges = np.full(total, np.nan)
        for name, array, expected in (("atomic_numbers", self.atomic_numbers, (total,)),
                                      ("positions", self.positions, (total, 3)), ("forces", self.forces, (total, 3)),
                                      ("energy", self.energy, (n,)), ("charge", self.charge, (n,)),
                                      ("molecule", self.molecule, (n,)), ("subset", self.subset, (n,)),
                                      ("origin", self.origin, (n,)), ("dipole", self.dipole, (n, 3)),
                                      ("partial_charges", self.partial_charges, (total,))):
            if array.shape != expected:
                raise DataError(f"Frames.{name} has shape {array.shape}, expected {expected}")

    def __len__(self) -> int:
        return len(self.n_atoms)

    def atoms(self, k: int) -> slice:
        return slice(int(self.offsets[k]), int(self.offsets[k + 1]))

    @property
    def elements(self) -> List[int]:
        return sorted(int(z) for z in np.unique(self.atomic_numbers))

    def select(self, indices: Sequence[int]) -> "Frames":
        """The frames at `indices`, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        atom_index = (np.concatenate([np.arange(self.offsets[k], self.offsets[k + 1]) for k in indices])
                      if len(indices) else np.zeros(0, dtype=np.int64))
        return Frames(self.atomic_numbers[atom_index], self.positions[atom_index], self.forces[atom_index],
                      self.energy[indices], self.n_atoms[indices], self.charge[indices], self.molecule[indices],
                      self.subset[indices], self.origin[indices], self.dipole[indices],
                      self.partial_charges[atom_index])

    def composition(self, elements: Optional[Sequence[int]] = None) -> np.ndarray:
        """(n, len(elements)) count of each element in each frame."""
        elements = list(self.elements if elements is None else elements)
        column = {z: c for c, z in enumerate(elements)}
        counts = np.zeros((len(self), len(elements)))
        frame_of_atom = np.repeat(np.arange(len(self)), self.n_atoms)
        np.add.at(counts, (frame_of_atom, [column[int(z)] for z in self.atomic_numbers]), 1)
        return counts

    @staticmethod
    def concatenate(parts: Sequence["Frames"]) -> "Frames":
        return Frames(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                        ("atomic_numbers", "positions", "forces", "energy", "n_atoms", "charge", "molecule",
                         "subset", "origin", "dipole", "partial_charges")))


def frames_from_arrays(path: str, numbers: Sequence[np.ndarray], positions: Sequence[np.ndarray],
                       forces: Sequence[np.ndarray], energy: np.ndarray, molecule: Sequence[str],
                       charge: Optional[np.ndarray] = None, subset: Optional[Sequence[str]] = None,
                       origin: Optional[Sequence[str]] = None, dipole: Optional[np.ndarray] = None,
                       partial_charges: Optional[Sequence[np.ndarray]] = None) -> Frames:
    """Build Frames from per-frame arrays (already in Å, eV and e), checking shapes frame by frame."""
    n = len(numbers)
    for k in range(n):
        where = origin[k] if origin is not None else f"{path}: frame {k}"
        n_k = len(numbers[k])
        if positions[k].shape != (n_k, 3) or forces[k].shape != (n_k, 3):
            raise DataError(f"{where}: {n_k} atoms but positions {positions[k].shape} and forces "
                            f"{forces[k].shape}; expected ({n_k}, 3)")
        if partial_charges is not None and np.shape(partial_charges[k]) != (n_k,):
            raise DataError(f"{where}: {n_k} atoms but {np.shape(partial_charges[k])} partial charges")
    return Frames(
        atomic_numbers=np.concatenate(numbers).astype(np.int64) if n else np.zeros(0, np.int64),
        positions=np.concatenate(positions).astype(np.float64) if n else np.zeros((0, 3)),
        forces=np.concatenate(forces).astype(np.float64) if n else np.zeros((0, 3)),
        energy=np.asarray(energy, dtype=np.float64).reshape(n),
        n_atoms=np.array([len(z) for z in numbers]),
        charge=np.zeros(n) if charge is None else np.asarray(charge, dtype=np.float64),
        molecule=np.asarray(molecule, dtype=object),
        subset=np.asarray(subset if subset is not None else [""] * n, dtype=object),
        origin=np.asarray(origin if origin is not None else [f"{path}:{k}" for k in range(n)], dtype=object),
        dipole=None if dipole is None else np.asarray(dipole, dtype=np.float64).reshape(n, 3),
        partial_charges=None if partial_charges is None or n == 0 else
        np.concatenate(partial_charges).astype(np.float64))
