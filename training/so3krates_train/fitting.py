"""Per-element reference energies: E ≈ Σ_Z E_Z · n_Z (+ c), fitted by least squares before training.

Without this step every molecule's energy is off by the sum of its atomic energies (the seed
reproduction's 90 eV errors); with it the network learns only the small interaction energy.
"""
from typing import Dict, Optional, Sequence

import numpy as np

from .data import Frames


def fit_atomic_energies(frames: Frames, elements: Optional[Sequence[int]] = None,
                        intercept: bool = False) -> Dict[int, float]:
    """{Z: E_Z in eV} minimising Σ_frames (E - Σ_Z E_Z n_Z - c)². With `intercept`, the constant c is
    fitted too and spread evenly over the atoms of an average frame (so totals stay unbiased).

    Where the compositions do not determine every E_Z (one molecule, as in rMD17), the minimum-norm
    solution is taken: the split between elements is then arbitrary but the fitted totals are exact.
    """
    elements = list(frames.elements if elements is None else elements)
    counts = frames.composition(elements)
    design = np.hstack([counts, np.ones((len(frames), 1))]) if intercept else counts
    solution, *_ = np.linalg.lstsq(design, frames.energy, rcond=None)
    energies = solution[:len(elements)]
    if intercept:
        energies = energies + solution[-1] / counts.sum(axis=1).mean()
    return {int(z): float(e) for z, e in zip(elements, energies)}


def residual_energies(frames: Frames, atomic_energies: Dict[int, float]) -> np.ndarray:
    """E - Σ_Z E_Z n_Z for each frame (eV)."""
    elements = sorted(atomic_energies)
    return frames.energy - frames.composition(elements) @ np.array([atomic_energies[z] for z in elements])
