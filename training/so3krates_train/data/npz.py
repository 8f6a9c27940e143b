"""NumPy archives: revised MD17 (`nuclear_charges`, `coords`, `energies`, `forces`) and the
sGDML / mlff layout (`R`, `z`, `E`, `F`; per-frame `z` zero-padded for molecules of different sizes,
as in the QM7-X file)."""
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..units import ENERGY_UNITS_EV, LENGTH_UNITS_ANGSTROM
from .frames import DataError, Frames, frames_from_arrays

RMD17_KEYS = ("nuclear_charges", "coords", "energies", "forces")
SGDML_KEYS = ("R", "z", "E", "F")


def _require(path: Path, archive, keys: Sequence[str], layout: str) -> None:
    missing = [k for k in keys if k not in archive.files]
    if missing:
        raise DataError(f"{path}: not an {layout} file: missing arrays {missing} (has {sorted(archive.files)})")


def _unit_factor(path: Path, unit: str, table: dict, what: str) -> float:
    if unit not in table:
        raise DataError(f"{path}: unknown {what} unit {unit!r}; known: {sorted(table)}")
    return table[unit]


def read_rmd17(path: str, energy_unit: str = "kcal/mol", indices: Optional[str] = None) -> Frames:
    """rMD17 .npz (energies in kcal/mol, forces in kcal/mol/Å, coordinates in Å). `indices`: optional
    path of one of the official split files (index_train_0X.csv / index_test_0X.csv) to keep only those frames."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as archive:
        _require(path, archive, RMD17_KEYS, "rMD17")
        z, coords = archive["nuclear_charges"], archive["coords"]
        energies, forces = archive["energies"].reshape(-1), archive["forces"]
    e = _unit_factor(path, energy_unit, ENERGY_UNITS_EV, "energy")
    if coords.ndim != 3 or coords.shape[1:] != (len(z), 3) or forces.shape != coords.shape \
            or energies.shape != (coords.shape[0],):
        raise DataError(f"{path}: inconsistent shapes: nuclear_charges {z.shape}, coords {coords.shape}, "
                        f"energies {energies.shape}, forces {forces.shape}")
    selected = np.arange(len(coords))
    if indices is not None:
        selected = np.loadtxt(indices, dtype=np.int64).reshape(-1)
        if selected.size and (selected.min() < 0 or selected.max() >= len(coords)):
            raise DataError(f"{indices}: frame indices must lie in 0..{len(coords) - 1} for {path}")
    return frames_from_arrays(str(path), [z] * len(selected), list(coords[selected]), list(forces[selected] * e),
                              energies[selected] * e, [path.stem] * len(selected),
                              origin=[f"{path}:frame {k}" for k in selected])


def read_sgdml(path: str, energy_unit: Optional[str] = None, length_unit: Optional[str] = None) -> Frames:
    """sGDML / mlff .npz. Units come from the file's `e_unit`/`r_unit` entries when present, else must
    be given (the layout itself does not fix them: MD17 uses kcal/mol, the mlff QM7-X file eV)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as archive:
        _require(path, archive, SGDML_KEYS, "sGDML/mlff")
        R, z, E, F = archive["R"], archive["z"], archive["E"].reshape(-1), archive["F"]
        energy_unit = energy_unit or (str(archive["e_unit"]) if "e_unit" in archive.files else None)
        length_unit = length_unit or (str(archive["r_unit"]) if "r_unit" in archive.files else "angstrom")
    if energy_unit is None:
        raise DataError(f"{path}: the file does not say its energy unit (no 'e_unit' entry); give energy_unit "
                        f"(one of {sorted(ENERGY_UNITS_EV)})")
    length_unit = {"Ang": "angstrom", "A": "angstrom"}.get(length_unit, length_unit)
    e = _unit_factor(path, energy_unit, ENERGY_UNITS_EV, "energy")
    r = _unit_factor(path, length_unit, LENGTH_UNITS_ANGSTROM, "length")
    n = R.shape[0]
    if R.ndim != 3 or F.shape != R.shape or E.shape != (n,):
        raise DataError(f"{path}: inconsistent shapes R {R.shape}, F {F.shape}, E {E.shape}")
    if z.ndim == 1:
        z = np.broadcast_to(z, (n, len(z)))
    if z.shape != R.shape[:2]:
        raise DataError(f"{path}: z has shape {z.shape}, expected ({R.shape[1]},) or {R.shape[:2]}")
    real = z > 0  # zero-padded atoms are not atoms
    numbers = [z[k][real[k]] for k in range(n)]
    # consecutive frames with the same atoms are conformations of one molecule (QM7-X, MD17)
    new_molecule = np.concatenate([[True], np.any(z[1:] != z[:-1], axis=1)]) if n else np.zeros(0, bool)
    molecules = [f"{path.stem}:{m}" for m in np.cumsum(new_molecule) - 1]
    return frames_from_arrays(str(path), numbers, [R[k][real[k]] * r for k in range(n)],
                              [F[k][real[k]] * (e / r) for k in range(n)], E * e,
                              molecules, origin=[f"{path}:frame {k}" for k in range(n)])
