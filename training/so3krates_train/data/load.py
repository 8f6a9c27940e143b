"""One entry point for all formats: `read_frames(path, format=None, **options)`."""
from pathlib import Path
from typing import Callable, Dict, Optional

import h5py
import numpy as np

from .ani1x import read_ani1x
from .extxyz import read_extxyz
from .frames import DataError, Frames
from .npz import RMD17_KEYS, read_rmd17, read_sgdml
from .spice import read_spice

FORMATS: Dict[str, Callable[..., Frames]] = {"rmd17": read_rmd17, "sgdml": read_sgdml, "extxyz": read_extxyz,
                                             "spice": read_spice, "ani1x": read_ani1x}


def detect_format(path: Path) -> str:
    """Guess the format from the extension and, for .npz / HDF5, from the arrays inside."""
    suffix = path.suffix.lower()
    if suffix in (".xyz", ".extxyz"):
        return "extxyz"
    if suffix == ".npz":
        with np.load(path) as archive:
            return "rmd17" if all(k in archive.files for k in RMD17_KEYS) else "sgdml"
    if suffix in (".h5", ".hdf5"):
        with h5py.File(path, "r") as handle:
            first = next(iter(handle.values()), None)
            if first is not None and "conformations" in first:
                return "spice"
            if first is not None and "coordinates" in first:
                return "ani1x"
    raise DataError(f"{path}: cannot tell the data format; give one of {sorted(FORMATS)}")


def read_frames(path: str, format: Optional[str] = None, **options) -> Frames:
    """Read a data file into Frames (Å, eV). `options` go to the format's reader."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown data format {fmt!r}; known: {sorted(FORMATS)}")
    try:
        return FORMATS[fmt](str(path), **options)
    except TypeError as err:
        raise DataError(f"{path}: bad options {sorted(options)} for format {fmt!r}: {err}") from None
