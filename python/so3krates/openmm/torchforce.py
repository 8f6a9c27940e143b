"""The TorchScript module that openmm-torch's TorchForce runs: nm and kJ/mol outside, Å and eV
inside. An energy module (the model on the ML atoms, optionally with the electrostatic embedding of
those atoms in the MM charges) inside an output module (energy, or energy and forces)."""
from typing import Optional, Sequence, Tuple

import openmm
import openmmtorch
import torch
from torch import nn

from ..model.embedding import ElectrostaticEmbedding

ANGSTROM_PER_NM = 10.0
KJ_PER_MOL_PER_EV = 96.48533212331002  # CODATA 2018: e·N_A/1000


class MLEnergy(nn.Module):
    """positions (N_total, 3) nm, box (3, 3) nm -> energy () kJ/mol of the model on the ML atoms.
    Holds the atomic numbers and, for mixed systems, the ML atom indices."""

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

    def in_angstrom(self, positions: torch.Tensor, box_vectors: Optional[torch.Tensor]
                    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """-> all positions (N_total, 3), ML positions (N, 3) and the cell (3, 3) or None, in Å."""
        every = positions.to(self.dtype) * self.angstrom_per_nm
        ml = every[self.atom_indices] if self.select_atoms else every
        cell: Optional[torch.Tensor] = None
        if self.periodic and box_vectors is not None:
            cell = box_vectors.to(self.dtype) * self.angstrom_per_nm
        return every, ml, cell

    def forward(self, positions: torch.Tensor, box_vectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        _, pos, cell = self.in_angstrom(positions, box_vectors)
        energy = self.potential(self.atomic_numbers, pos, cell, self.total_charge, self.num_unpaired_electrons)
        return energy.to(torch.float64) * self.kj_per_mol_per_ev


class EmbeddedMLEnergy(MLEnergy):
    """The model's energy plus the electrostatic embedding of its predicted charges in the MM point
    charges (model/embedding.py), all in one TorchScript step."""

    def __init__(self, potential: torch.jit.ScriptModule, atomic_numbers: Sequence[int],
                 atom_indices: Sequence[int], periodic: bool, dtype: torch.dtype, total_charge: float,
                 num_unpaired_electrons: float, mm_indices: Sequence[int], mm_charges: Sequence[float],
                 embedding: ElectrostaticEmbedding):
        super().__init__(potential, atomic_numbers, atom_indices, periodic, dtype, total_charge,
                         num_unpaired_electrons)
        self.register_buffer("mm_indices", torch.tensor(list(mm_indices), dtype=torch.long))
        self.register_buffer("mm_charges", torch.tensor(list(mm_charges), dtype=dtype))
        self.embedding = embedding

    def forward(self, positions: torch.Tensor, box_vectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        every, pos, cell = self.in_angstrom(positions, box_vectors)
        energy, charges = self.potential.energy_and_charges(self.atomic_numbers, pos, cell, self.total_charge,
                                                            self.num_unpaired_electrons)
        if charges is None:
            raise RuntimeError("electrostatic embedding needs a model that predicts partial charges")
        energy = energy + self.embedding(pos, charges, every[self.mm_indices], self.mm_charges, cell)
        return energy.to(torch.float64) * self.kj_per_mol_per_ev


class EnergyOnly(nn.Module):
    """TorchForce output: energy; openmm-torch differentiates it."""

    def __init__(self, energy: nn.Module):
        super().__init__()
        self.energy = energy

    def forward(self, positions: torch.Tensor, box_vectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.energy(positions, box_vectors)


class EnergyAndForces(EnergyOnly):
    """TorchForce output: energy and forces on every particle, computed here by autograd."""

    def forward(self, positions: torch.Tensor, box_vectors: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        positions = positions.detach().requires_grad_(True)
        energy = self.energy(positions, box_vectors)
        gradient = torch.autograd.grad([energy], [positions])[0]
        if gradient is None:
            gradient = torch.zeros_like(positions)
        return energy.detach(), -gradient


def make_torch_force(energy: MLEnergy, periodic: bool, return_forces: bool, cuda_graphs: bool) -> openmm.Force:
    """Wrap an energy module in a TorchForce."""
    module = torch.jit.script((EnergyAndForces if return_forces else EnergyOnly)(energy))
    force = openmmtorch.TorchForce(module)
    force.setUsesPeriodicBoundaryConditions(periodic)
    force.setOutputsForces(return_forces)
    if cuda_graphs:
        force.setProperty("useCUDAGraphs", "true")
    return force
