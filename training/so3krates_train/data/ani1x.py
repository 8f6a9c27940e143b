"""ANI-1x / ANI-1ccx HDF5: one group per formula with `atomic_numbers`, `coordinates` (Å),
`<method>.energy` (hartree) and `<method>.forces` (hartree/Å)."""
from pathlib import Path

import numpy as np

from ..units import HARTREE_EV
from .frames import DataError, Frames, frames_from_arrays
from .hdf5 import open_hdf5


def read_ani1x(path: str, method: str = "wb97x_dz") -> Frames:
    """Conformations with an energy for `method`; those where it is NaN (not computed) are skipped."""
    path = Path(path)
    parts = []
    with open_hdf5(path) as handle:
        for name, group in handle.items():
            where = f"{path}: group {name!r}"
            needed = ["atomic_numbers", "coordinates", f"{method}.energy", f"{method}.forces"]
            missing = [k for k in needed if k not in group]
            if missing:
                raise DataError(f"{where}: missing {missing} (method {method!r}; datasets: {sorted(group)})")
            z = group["atomic_numbers"][()].astype(np.int64)
            R = group["coordinates"][()]
            E = group[f"{method}.energy"][()] * HARTREE_EV
            F = group[f"{method}.forces"][()] * HARTREE_EV
            if R.ndim != 3 or R.shape[1:] != (len(z), 3) or F.shape != R.shape or E.shape != (R.shape[0],):
                raise DataError(f"{where}: inconsistent shapes: atomic_numbers {z.shape}, coordinates {R.shape}, "
                                f"energy {E.shape}, forces {F.shape}")
            keep = np.flatnonzero(np.isfinite(E))
            if len(keep):
                parts.append(frames_from_arrays(str(path), [z] * len(keep), list(R[keep]), list(F[keep]), E[keep],
                                                [name] * len(keep),
                                                origin=[f"{path}:{name}:conformation {k}" for k in keep]))
    if not parts:
        raise DataError(f"{path}: no conformation has a {method!r} energy")
    return Frames.concatenate(parts)
