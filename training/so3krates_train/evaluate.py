"""Error metrics of a model file on a data set: energies per molecule and per atom, force
components, per element and per SPICE subset; in meV and kcal/mol; JSON; parity plots."""
import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from so3krates.elements import check_elements, symbol

from .data import Frames
from .units import KCAL_MOL_EV


def predict_frames(potential: torch.jit.ScriptModule, frames: Frames, dtype: torch.dtype = torch.float64):
    """Energies (n,) eV and forces (n_atoms_total, 3) eV/Å of a model file's potential, frame by frame."""
    energies, forces = np.zeros(len(frames)), np.zeros_like(frames.forces)
    potential = potential.to(dtype)
    for k in range(len(frames)):
        atoms = frames.atoms(k)
        z = torch.tensor(frames.atomic_numbers[atoms])
        pos = torch.tensor(frames.positions[atoms], dtype=dtype, requires_grad=True)
        energy = potential(z, pos, None, float(frames.charge[k]))
        forces[atoms] = -torch.autograd.grad(energy, pos)[0].numpy()
        energies[k] = energy.item()
    return energies, forces


@torch.no_grad()
def predict_charges(potential: torch.jit.ScriptModule, frames: Frames) -> Optional[np.ndarray]:
    """Partial charges (n_atoms_total,) e of a model file with an electrostatic term, frame by frame;
    None for models without charges (or files written before models gave them out)."""
    network = getattr(potential, "model", None)
    if network is None or not hasattr(network, "energies_and_properties") \
            or not list(network.partial_charges.children()):
        return None
    charges = np.zeros(len(frames.atomic_numbers))
    dtype = next(potential.parameters()).dtype  # the precision the file was loaded in or moved to
    for k in range(len(frames)):
        atoms = frames.atoms(k)
        z = torch.tensor(frames.atomic_numbers[atoms])
        pos = torch.tensor(frames.positions[atoms], dtype=dtype)
        idx_i, idx_j, vectors = potential.pair_vectors(pos, None)
        lr_i, lr_j, shifts = potential.lr_neighbor_list(pos, None)
        q = network.energies_and_properties(
            z, vectors, idx_i, idx_j, None, torch.tensor([float(frames.charge[k])], dtype=dtype), False, None,
            pos.index_select(0, lr_j) - pos.index_select(0, lr_i) + shifts, lr_i, lr_j, potential.lr_cutoff, True)[1]
        charges[atoms] = q.numpy()
    return charges


def _mae_rmse(error: np.ndarray) -> Dict[str, float]:
    return {"mae_meV": 1000 * float(np.mean(np.abs(error))), "rmse_meV": 1000 * float(np.sqrt(np.mean(error ** 2))),
            "mae_kcal_mol": float(np.mean(np.abs(error))) / KCAL_MOL_EV,
            "rmse_kcal_mol": float(np.sqrt(np.mean(error ** 2))) / KCAL_MOL_EV}


def error_metrics(frames: Frames, energy_pred: np.ndarray, forces_pred: np.ndarray,
                  charges_pred: Optional[np.ndarray] = None) -> Dict:
    """Energy errors per molecule (meV) and per atom (meV/atom), force-component errors (meV/Å),
    per-element force MAE and, where subsets are named, per-subset errors; with predicted partial
    charges, dipole-component (e·Å) and charge (e) MAE/RMSE on the frames that have those labels."""
    e_err = energy_pred - frames.energy
    f_err = forces_pred - frames.forces
    metrics = {"frames": len(frames), "energy_per_molecule": _mae_rmse(e_err),
               "energy_per_atom": _mae_rmse(e_err / frames.n_atoms), "forces": _mae_rmse(f_err),
               "force_mae_meV_A_by_element": {
                   symbol(z): 1000 * float(np.mean(np.abs(f_err[frames.atomic_numbers == z])))
                   for z in frames.elements}}
    if charges_pred is not None:
        frame_of_atom = np.repeat(np.arange(len(frames)), frames.n_atoms)
        dipole = np.zeros((len(frames), 3))
        np.add.at(dipole, frame_of_atom, charges_pred[:, None] * frames.positions)
        for name, error in (("dipole_e_angstrom", dipole - frames.dipole),
                            ("partial_charges_e", charges_pred - frames.partial_charges)):
            error = error[np.isfinite(error)]
            if error.size:
                metrics[name] = {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
                                 "labels": int(error.size)}
    subsets = sorted(set(frames.subset) - {""})
    if subsets:
        frame_of_atom = np.repeat(np.arange(len(frames)), frames.n_atoms)
        metrics["by_subset"] = {
            s: {"frames": int(np.sum(frames.subset == s)),
                "energy_per_atom_mae_meV": 1000 * float(np.mean(np.abs((e_err / frames.n_atoms)[frames.subset == s]))),
                "force_mae_meV_A": 1000 * float(np.mean(np.abs(f_err[frames.subset[frame_of_atom] == s])))}
            for s in subsets}
    return metrics


def parity_plots(frames: Frames, energy_pred: np.ndarray, forces_pred: np.ndarray, out: Path) -> None:
    """energy_parity.png, force_parity.png and error_histogram.png in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    e_ref, e_pred = frames.energy / frames.n_atoms, energy_pred / frames.n_atoms
    for name, ref, pred, unit in (("energy", e_ref, e_pred, "eV/atom"),
                                  ("force", frames.forces.ravel(), forces_pred.ravel(), "eV/Å")):
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(ref, pred, s=2, alpha=0.5)
        lims = [min(ref.min(), pred.min()), max(ref.max(), pred.max())]
        ax.plot(lims, lims, "k--", lw=0.8)
        ax.set_xlabel(f"reference {name} ({unit})")
        ax.set_ylabel(f"predicted {name} ({unit})")
        fig.tight_layout()
        fig.savefig(out / f"{name}_parity.png", dpi=120)
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].hist(1000 * (e_pred - e_ref), bins=50)
    axes[0].set_xlabel("energy error (meV/atom)")
    axes[1].hist(1000 * (forces_pred - frames.forces).ravel(), bins=50)
    axes[1].set_xlabel("force component error (meV/Å)")
    fig.tight_layout()
    fig.savefig(out / "error_histogram.png", dpi=120)
    plt.close(fig)


def evaluate_model(potential, elements, frames: Frames, json_path: Optional[Path] = None,
                   plots: Optional[Path] = None) -> Dict:
    unsupported = set(frames.elements) - set(elements)
    if unsupported:  # name the first offending frame and atom; labels are built only for that frame
        k = next(k for k in range(len(frames)) if set(frames.atomic_numbers[frames.atoms(k)].tolist()) & unsupported)
        check_elements(frames.atomic_numbers[frames.atoms(k)], elements,
                       [f"{frames.origin[k]} atom {i}" for i in range(frames.n_atoms[k])])
    energy, forces = predict_frames(potential, frames)
    metrics = error_metrics(frames, energy, forces, predict_charges(potential, frames))
    if json_path is not None:
        json_path.write_text(json.dumps(metrics, indent=1))
    if plots is not None:
        parity_plots(frames, energy, forces, plots)
    return metrics
