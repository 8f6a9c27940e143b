"""Extended XYZ (`Properties=species:S:1:pos:R:3:forces:R:3 energy=...`), read with ASE."""
from pathlib import Path

import numpy as np
from ase.io import read

from ..units import ENERGY_UNITS_EV
from .frames import DataError, Frames, frames_from_arrays


def read_extxyz(path: str, energy_key: str = "energy", forces_key: str = "forces", charge_key: str = "charge",
                energy_unit: str = "eV", dipole_key: str = "dipole", charges_key: str = "charges") -> Frames:
    """Energies from the comment line's `energy_key`, forces from the per-atom `forces_key` column,
    total charge from `charge_key` if present (else 0). Positions in Å; energies in `energy_unit`
    (forces in `energy_unit`/Å). Where present, the dipole (3 numbers, e·Å) under `dipole_key` and
    per-atom partial charges (e) under `charges_key` (frames without them: NaN, no loss)."""
    path = Path(path)
    if energy_unit not in ENERGY_UNITS_EV:
        raise DataError(f"{path}: unknown energy unit {energy_unit!r}; known: {sorted(ENERGY_UNITS_EV)}")
    e = ENERGY_UNITS_EV[energy_unit]
    try:
        images = read(str(path), index=":", format="extxyz")
    except Exception as err:  # ASE raises many kinds of errors for malformed files
        raise DataError(f"{path}: not a readable extended XYZ file: {err}") from None
    numbers, positions, forces, energies, charges, dipoles, partial_charges = [], [], [], [], [], [], []
    for k, atoms in enumerate(images):
        where = f"{path}: frame {k}"
        calc_results = atoms.calc.results if atoms.calc is not None else {}
        energy = atoms.info.get(energy_key, calc_results.get(energy_key))
        if energy is None:
            raise DataError(f"{where}: no energy under key {energy_key!r} (info keys: {sorted(atoms.info)})")
        if forces_key in atoms.arrays:
            f = atoms.arrays[forces_key]
        elif forces_key in calc_results:
            f = calc_results[forces_key]
        else:
            raise DataError(f"{where}: no per-atom forces under key {forces_key!r} "
                            f"(arrays: {sorted(atoms.arrays)})")
        numbers.append(atoms.get_atomic_numbers())
        positions.append(atoms.get_positions())
        forces.append(np.asarray(f, dtype=np.float64) * e)
        energies.append(float(energy) * e)
        charges.append(float(atoms.info.get(charge_key, 0.0)))
        dipole = atoms.info.get(dipole_key, calc_results.get(dipole_key))
        dipoles.append(np.full(3, np.nan) if dipole is None else np.asarray(dipole, dtype=np.float64).reshape(3))
        q = atoms.arrays.get(charges_key, calc_results.get(charges_key))
        partial_charges.append(np.full(len(atoms), np.nan) if q is None else np.asarray(q, dtype=np.float64).reshape(-1))
    if not images:
        raise DataError(f"{path}: no frames")
    composition = ["-".join(map(str, z)) for z in numbers]
    return frames_from_arrays(str(path), numbers, positions, forces, np.array(energies),
                              [f"{path.stem}:{c}" for c in composition], charge=np.array(charges),
                              origin=[f"{path}:frame {k}" for k in range(len(images))], dipole=np.array(dipoles),
                              partial_charges=partial_charges)
