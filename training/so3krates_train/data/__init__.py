"""Readers for reference data, one module per file format, all returning `Frames` in Å and eV."""
from .frames import DataError, Frames
from .load import FORMATS, read_frames

__all__ = ["Frames", "DataError", "read_frames", "FORMATS"]
