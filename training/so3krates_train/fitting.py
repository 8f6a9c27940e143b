"""Per-element reference energies: E ≈ Σ_Z E_Z · n_Z (+ c), fitted by least squares before training.

Without this step every molecule's energy is off by the sum of its atomic energies (the seed
reproduction's 90 eV errors); with it the network learns only the small interaction energy.
"""
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from .data import Frames


def fit_atomic_energies(frames: Frames, elements: Optional[Sequence[int]] = None,
                        intercept: bool = False, report: Callable[[str], None] = print) -> Dict[int, float]:
    """{Z: E_Z in eV} minimising Σ_frames (E - Σ_Z E_Z n_Z - c)². With `intercept`, the constant c is
    fitted too and spread evenly over the atoms of an average frame (so totals stay unbiased).

    Where the compositions do not determine every E_Z (one molecule, as in rMD17: 2 C + 6 H + O fixes
    one sum, not three energies), the minimum-norm solution would split the mean energy arbitrarily
    (ethanol: H -616, C -205, O -103 eV). Among the exact fits, the one whose E_Z are closest to each
    other is taken instead — for one molecule, the same energy for every atom — and `report` says so:
    such values carry no chemistry to other molecules (give isolated-atom energies for that).
    Elements asked for that no frame holds are not fitted (they get the mean of the others, and
    `report` names them), rather than reported as undetermined by the compositions.
    """
    requested = list(frames.elements if elements is None else elements)
    all_counts = frames.composition(requested)
    occurring = all_counts.sum(axis=0) > 0
    elements = [z for z, seen in zip(requested, occurring) if seen]
    absent = [z for z, seen in zip(requested, occurring) if not seen]
    counts = all_counts[:, occurring]
    design = np.hstack([counts, np.ones((len(frames), 1))]) if intercept else counts
    solution, _, rank, _ = np.linalg.lstsq(design, frames.energy, rcond=None)
    if rank < design.shape[1]:
        # exact fits are solution + null @ t; choose t to minimise the spread of the E_Z
        null = np.linalg.svd(design)[2][rank:].T
        centering = np.zeros((design.shape[1], design.shape[1]))
        n = len(elements)
        centering[:n, :n] = np.eye(n) - 1.0 / n
        t = np.linalg.lstsq(centering @ null, -centering @ solution, rcond=None)[0]
        solution = solution + null @ t
        report(f"per-element energies: the training data's compositions determine only {rank} of "
               f"{design.shape[1]} unknowns (e.g. a single molecule); taking the fit whose element energies are "
               f"as equal as possible. They reproduce these molecules' energies but are not transferable: give "
               f"`atomic_energies: {{Z: eV}}` (isolated-atom energies at the same level of theory) for that")
    energies = solution[:len(elements)]
    if intercept:
        energies = energies + solution[-1] / counts.sum(axis=1).mean()
    fitted = {int(z): float(e) for z, e in zip(elements, energies)}
    if absent:
        report(f"per-element energies: element(s) Z={absent} do not occur in the training frames, so their "
               f"energies are not fitted (set to the mean of the others); the model learns nothing about them: "
               f"put frames with them into training, or give `atomic_energies: {{Z: eV}}`")
        fitted.update({int(z): float(np.mean(energies)) for z in absent})
    return {z: fitted[z] for z in requested}


def residual_energies(frames: Frames, atomic_energies: Dict[int, float]) -> np.ndarray:
    """E - Σ_Z E_Z n_Z for each frame (eV)."""
    elements = sorted(atomic_energies)
    return frames.energy - frames.composition(elements) @ np.array([atomic_energies[z] for z in elements])
