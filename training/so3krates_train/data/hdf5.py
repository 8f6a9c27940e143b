"""Opening HDF5 data files with an error that names the file."""
from pathlib import Path

import h5py

from .frames import DataError


def open_hdf5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file: {err}") from None
