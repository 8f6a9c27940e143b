"""SPICE HDF5 as released: one group per molecule with `atomic_numbers`, `conformations` (bohr),
`dft_total_energy` (hartree), `dft_total_gradient` (hartree/bohr; forces = -gradient), `smiles`, `subset`;
where present `scf_dipole` (e·bohr, about the coordinates' origin) and `mbis_charges` (e), the labels of
long-range models (groups without them get NaN: no loss on them).

Groups are read one at a time, so a filtered subset of a large file never needs the whole file in memory.
"""
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from ..units import BOHR_ANGSTROM, HARTREE_EV
from .frames import DataError, Frames, frames_from_arrays
from .hdf5 import open_hdf5

REQUIRED = ("atomic_numbers", "conformations", "dft_total_energy", "dft_total_gradient")
_BRACKET_ATOM = re.compile(r"\[([^\]]+)\]")
_CHARGE = re.compile(r"([+-])(\d*)")


def formal_charge(smiles: str) -> int:
    """Total charge of a SMILES string: the sum of the formal charges in its bracket atoms
    ('[N+:9]' +1, '[O-]' -1, '[Fe+2]' +2, '[N++]' +2)."""
    total = 0
    for atom in _BRACKET_ATOM.findall(smiles):
        body = atom.split(":")[0]
        for sign, count in _CHARGE.findall(body):
            n = int(count) if count else 1
            # '++' is matched as two '+' tokens of 1 each
            total += n if sign == "+" else -n
    return total


def _text(value) -> str:
    item = value[()] if hasattr(value, "shape") else value
    if isinstance(item, np.ndarray):
        item = item.reshape(-1)[0]
    return item.decode() if isinstance(item, bytes) else str(item)


def read_spice(path: str, subsets: Optional[Sequence[str]] = None, elements: Optional[Iterable[int]] = None,
               charges: Optional[Iterable[int]] = None, max_force: Optional[float] = None) -> Frames:
    """Read molecules, optionally keeping only those whose subset name contains one of `subsets`,
    whose elements are all in `elements`, whose total charge is in `charges`, and conformations
    whose largest force component is at most `max_force` eV/Å."""
    path = Path(path)
    allowed = None if elements is None else set(int(z) for z in elements)
    allowed_charges = None if charges is None else set(int(c) for c in charges)
    parts = []
    with open_hdf5(path) as handle:
        for name, group in handle.items():
            where = f"{path}: group {name!r}"
            missing = [k for k in REQUIRED if k not in group]
            if missing:
                raise DataError(f"{where}: not a SPICE molecule group: missing {missing}")
            subset = _text(group["subset"]) if "subset" in group else ""
            if subsets is not None and not any(s in subset for s in subsets):
                continue
            z = group["atomic_numbers"][()].astype(np.int64)
            if allowed is not None and not set(z.tolist()) <= allowed:
                continue
            charge = formal_charge(_text(group["smiles"])) if "smiles" in group else 0
            if allowed_charges is not None and charge not in allowed_charges:
                continue
            R = group["conformations"][()] * BOHR_ANGSTROM
            E = group["dft_total_energy"][()] * HARTREE_EV
            F = -group["dft_total_gradient"][()] * (HARTREE_EV / BOHR_ANGSTROM)
            if R.ndim != 3 or R.shape[1:] != (len(z), 3) or F.shape != R.shape or E.shape != (R.shape[0],):
                raise DataError(f"{where}: inconsistent shapes: atomic_numbers {z.shape}, conformations "
                                f"{R.shape}, dft_total_energy {E.shape}, dft_total_gradient {F.shape}")
            keep = np.arange(len(R))
            if max_force is not None:
                keep = keep[np.abs(F).reshape(len(R), -1).max(axis=1) <= max_force]
            if len(keep) == 0:
                continue
            dipole = group["scf_dipole"][()][keep] * BOHR_ANGSTROM if "scf_dipole" in group else None
            charges = None
            if "mbis_charges" in group:  # (n, N, 1) as released; per-frame shapes are checked below
                q = group["mbis_charges"][()]
                if len(q) != len(R):
                    raise DataError(f"{where}: mbis_charges has {len(q)} conformations, conformations {len(R)}")
                charges = list(q.reshape(len(q), -1)[keep])
            parts.append(frames_from_arrays(
                str(path), [z] * len(keep), list(R[keep]), list(F[keep]), E[keep], [name] * len(keep),
                charge=np.full(len(keep), float(charge)), subset=[subset] * len(keep),
                origin=[f"{path}:{name}:conformation {k}" for k in keep], dipole=dipole, partial_charges=charges))
    if not parts:
        raise DataError(f"{path}: no molecule passed the filters (subsets={subsets}, elements={elements}, "
                        f"charges={charges}, max_force={max_force})")
    return Frames.concatenate(parts)
