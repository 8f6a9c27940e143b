"""ASE calculator for quick single points, geometry optimisation and ASE MD with a model file.

    from so3krates.ase import SO3kratesCalculator
    atoms.calc = SO3kratesCalculator("model.pt")
"""
from typing import Optional

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .electrons import resolve_charge_and_spin
from .elements import check_elements
from .model_file import load_model
from .openmm import MODEL_DEFAULT
from .torchscript import configure_torchscript


def check_reduced_cell(cell: np.ndarray, tolerance: float = 1e-6) -> None:
    """Raise unless `cell` (rows a, b, c in Å) is in OpenMM's reduced triclinic form, which the
    in-model neighbour list's minimum-image convention relies on."""
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = cell
    lower_triangular = max(abs(ay), abs(az), abs(bz)) <= tolerance
    reduced = (ax > 0 and by > 0 and cz > 0 and abs(bx) <= 0.5 * ax + tolerance
               and abs(cx) <= 0.5 * ax + tolerance and abs(cy) <= 0.5 * by + tolerance)
    if not (lower_triangular and reduced):
        raise ValueError(f"periodic cell {cell.tolist()} Å is not in reduced triclinic form (a along x, b in the "
                         "xy plane, |b_x| <= a_x/2, |c_x| <= a_x/2, |c_y| <= b_y/2); rotate and reduce it first "
                         "(e.g. atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True) for a box)")


class SO3kratesCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) of an SO3krates model file, or "so3lr" for the shipped SO3LR.
    Periodic cells must be in OpenMM's reduced lower-triangular form (a along x, b in the xy plane) as
    ASE's `cell.standard_form()` gives for ordinary boxes; partial periodicity is not supported.
    `charge` (e) and `multiplicity`: given here, or else read from atoms.info["charge"] and
    atoms.info["multiplicity"] as SO3LR's ASE calculator does, or else the model's defaults (checked as
    in OpenMM: so3krates.electrons). `lr_cutoff`: long-range cutoff in Å for models that have one
    (None: no cutoff, vacuum only; default: the model's)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, model_path: str, device: str = "cpu", precision: Optional[str] = None,
                 charge: Optional[float] = None, multiplicity: Optional[int] = None, lr_cutoff=MODEL_DEFAULT, **kwargs):
        super().__init__(**kwargs)
        configure_torchscript()
        self.potential, self.info = load_model(model_path, device=device)
        self.charge, self.multiplicity = charge, multiplicity
        self.device = torch.device(device)
        self.dtype = self.info.torch_dtype(precision)
        self.potential = self.potential.to(self.dtype)
        if lr_cutoff is not MODEL_DEFAULT:
            if not self.info.config.long_range:
                raise ValueError(f"lr_cutoff: {model_path} has no long-range terms")
            self.potential.set_lr_cutoff(None if lr_cutoff is None else float(lr_cutoff))

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        numbers = self.atoms.get_atomic_numbers()
        check_elements(numbers, self.info.elements)
        charge = self.charge if self.charge is not None else self.atoms.info.get("charge")
        multiplicity = self.multiplicity if self.multiplicity is not None else self.atoms.info.get("multiplicity")
        total_charge, unpaired = resolve_charge_and_spin(self.info, numbers, charge, multiplicity)
        cell = None
        pbc = self.atoms.get_pbc()
        if pbc.any():
            if not pbc.all():
                raise ValueError(f"partially periodic systems (pbc={pbc.tolist()}) are not supported")
            cell_array = self.atoms.get_cell().array
            check_reduced_cell(cell_array)
            cell = torch.tensor(cell_array, dtype=self.dtype, device=self.device)
        z = torch.tensor(numbers, dtype=torch.long, device=self.device)
        pos = torch.tensor(self.atoms.get_positions(), dtype=self.dtype, device=self.device, requires_grad=True)
        energy = self.potential(z, pos, cell, total_charge, unpaired)
        forces = -torch.autograd.grad(energy, pos)[0]
        self.results["energy"] = self.results["free_energy"] = float(energy.detach())
        self.results["forces"] = forces.detach().cpu().numpy().astype(np.float64)
