"""`check-data`: find frames that would poison training, before training.

Flags non-finite values, atoms closer than a threshold, force components above a threshold,
energies that are outliers after the per-element fit (robust z-score within each composition), and
conformation pairs of one molecule whose energy difference disagrees with the forces (the work
−∫F·dr along the straight path, by the trapezoid rule, between close conformations), and long-range
labels that cannot be right: partial charges that do not add up to the molecule's total charge, a
dipole larger than all atoms' charge at the farthest atom could make (wrong unit or origin)."""
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from .data import Frames
from .fitting import fit_atomic_energies, residual_energies


@dataclass
class Finding:
    frame: int
    origin: str
    problem: str


def _robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    mad = np.median(np.abs(values - median)) * 1.4826
    return np.zeros_like(values) if mad == 0 else (values - median) / mad


def check_frames(frames: Frames, min_distance: float = 0.5, max_force: float = 25.0, max_z: float = 8.0,
                 max_work_error: float = 0.5, max_path: float = 0.2, max_charge_error: float = 0.01) -> List[Finding]:
    """Problems found, one Finding per (frame, problem). Distances Å, forces eV/Å, work error eV, charges e,
    max_path: largest RMS displacement (Å) between two conformations for the energy/force check."""
    findings: List[Finding] = []
    finite = np.ones(len(frames), dtype=bool)
    for k in range(len(frames)):
        atoms = frames.atoms(k)
        pos, f = frames.positions[atoms], frames.forces[atoms]
        note = lambda text: findings.append(Finding(k, str(frames.origin[k]), text))  # noqa: E731
        if not (np.isfinite(pos).all() and np.isfinite(f).all() and np.isfinite(frames.energy[k])):
            note("non-finite energy, position or force")
            finite[k] = False
            continue
        if len(pos) > 1:
            d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(len(pos), 1)]
            if d.min() < min_distance:
                note(f"atoms {d.min():.3f} Å apart (< {min_distance} Å)")
        if np.abs(f).max() > max_force:
            note(f"force component {np.abs(f).max():.1f} eV/Å (> {max_force} eV/Å)")
        q = frames.partial_charges[atoms]
        if np.isfinite(q).all() and abs(q.sum() - frames.charge[k]) > max_charge_error:
            note(f"partial charges sum to {q.sum():.3f} e but the total charge is {frames.charge[k]:g} e")
        dipole = frames.dipole[k]
        if np.isfinite(dipole).all() and np.linalg.norm(dipole) > len(pos) * np.linalg.norm(pos, axis=1).max():
            note(f"dipole of {np.linalg.norm(dipole):.1f} e·Å is larger than {len(pos)} atoms can make at "
                 f"{np.linalg.norm(pos, axis=1).max():.1f} Å from the origin: wrong unit (e·bohr, debye?) or origin")
    ok = np.flatnonzero(finite)
    if len(ok):
        clean = frames.select(ok)
        residual = residual_energies(clean, fit_atomic_energies(clean))
        groups: Dict[bytes, List[int]] = {}
        for k in range(len(clean)):
            groups.setdefault(clean.atomic_numbers[clean.atoms(k)].tobytes(), []).append(k)
        for members in groups.values():
            if len(members) < 5:
                continue
            z = _robust_z(residual[members])
            for k, score in zip(members, z):
                if abs(score) > max_z:
                    findings.append(Finding(int(ok[k]), str(clean.origin[k]),
                                            f"energy outlier: robust z-score {score:.1f} within its composition"))
        findings.extend(_work_checks(clean, ok, max_work_error, max_path))
    return sorted(findings, key=lambda f: f.frame)


def _work_checks(frames: Frames, original: np.ndarray, max_error: float, max_path: float) -> List[Finding]:
    """For each frame, its nearest conformation of the same molecule (same atoms): ΔE must match
    −½(F_a + F_b)·(R_b − R_a). A frame is flagged when the mismatch exceeds `max_error` eV with
    every close partner."""
    by_molecule: Dict[str, List[int]] = {}
    for k in range(len(frames)):
        by_molecule.setdefault(str(frames.molecule[k]), []).append(k)
    findings = []
    for members in by_molecule.values():
        if len(members) < 3:
            continue
        if len(set(frames.n_atoms[members].tolist())) != 1:
            continue
        R = np.stack([frames.positions[frames.atoms(k)] for k in members])
        F = np.stack([frames.forces[frames.atoms(k)] for k in members])
        rms = np.sqrt(((R[:, None] - R[None]) ** 2).sum(-1).mean(-1))
        np.fill_diagonal(rms, np.inf)
        for a, k in enumerate(members):
            partners = np.flatnonzero(rms[a] < max_path)
            if len(partners) == 0:
                continue
            work = -0.5 * ((F[a] + F[partners]) * (R[partners] - R[a])).sum(axis=(1, 2))
            mismatch = np.abs(frames.energy[[members[p] for p in partners]] - frames.energy[k] - work)
            if mismatch.min() > max_error:
                findings.append(Finding(int(original[k]), str(frames.origin[k]),
                                        f"energy and forces disagree: ΔE - work = {mismatch.min():.3f} eV "
                                        f"with its {len(partners)} closest conformations"))
    return findings
