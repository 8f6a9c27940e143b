"""The TorchScript module that openmm-torch's TorchForce runs: nm and kJ/mol outside,
Å and eV inside. Holds the atomic numbers and (for mixed systems) the ML atom indices."""
from typing import Optional, Sequence

import openmm
import openmmtorch
import torch
from torch import nn

ANGSTROM_PER_NM = 10.0
KJ_PER_MOL_PER_EV = 96.48533212331002  # CODATA 2018: e·N_A/1000


class OpenMMSO3krates(nn.Module):
    """positions (N_total, 3) nm, box (3, 3) nm -> energy kJ/mol [, forces (N_total, 3) kJ/mol/nm]."""

    def __init__(self, potential: torch.jit.ScriptModule, atomic_numbers: Sequence[int],
                 atom_indices: Optional[Sequence[int]], periodic: bool, dtype: torch.dtype, total_charge: float,
                 num_unpaired_electrons: float):
        super().__init__()
        self.potential = potential
        self.register_buffer("atomic_numbers", torch.tensor(list(atomic_numbers), dtype=torch.long))
        self.select_atoms = atom_indices is not None
        self.register_buffer("atom_indices", torch.tensor(list(atom_indices) if atom_indices is not None else [],
                                                          dtype=torch.long))
        self.periodic = periodic
        self.total_charge = total_charge
        self.num_unpaired_electrons = num_unpaired_electrons
        self.dtype = dtype
        self.angstrom_per_nm = ANGSTROM_PER_NM
        self.kj_per_mol_per_ev = KJ_PER_MOL_PER_EV

    def energy(self, positions: torch.Tensor, box_vectors: Optional[torch.Tensor]) -> torch.Tensor:
        pos = positions.to(self.dtype) * self.angstrom_per_nm
        if self.select_atoms:
            pos = pos[self.atom_indices]
        cell: Optional[torch.Tensor] = None
        if self.periodic and box_vectors is not None:
            cell = box_vectors.to(self.dtype) * self.angstrom_per_nm
        energy = self.potential(self.atomic_numbers, pos, cell, self.total_charge, self.num_unpaired_electrons)
        return energy.to(torch.float64) * self.kj_per_mol_per_ev


class EnergyOnly(OpenMMSO3krates):
    """TorchForce output: energy; openmm-torch differentiates it."""

    def forward(self, positions: torch.Tensor, box_vectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.energy(positions, box_vectors)


class EnergyAndForces(OpenMMSO3krates):
    """TorchForce output: energy and forces computed here by autograd."""

    def forward(self, positions: torch.Tensor, box_vectors: Optional[torch.Tensor] = None):
        positions = positions.detach().requires_grad_(True)
        energy = self.energy(positions, box_vectors)
        gradient = torch.autograd.grad([energy], [positions])[0]
        if gradient is None:
            gradient = torch.zeros_like(positions)
        return energy.detach(), -gradient


def make_torch_force(potential: torch.jit.ScriptModule, atomic_numbers: Sequence[int],
                     atom_indices: Optional[Sequence[int]], periodic: bool, dtype: torch.dtype,
                     total_charge: float, num_unpaired_electrons: float, return_forces: bool,
                     cuda_graphs: bool) -> openmm.Force:
    """Wrap `potential` (an SO3kratesPotential in Å/eV, already cast to `dtype`) in a TorchForce."""
    cls = EnergyAndForces if return_forces else EnergyOnly
    module = torch.jit.script(cls(potential, atomic_numbers, atom_indices, periodic, dtype, total_charge,
                                  num_unpaired_electrons))
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(periodic)
    force.setOutputsForces(return_forces)
    if cuda_graphs:
        force.setProperty("useCUDAGraphs", "true")
    return force
