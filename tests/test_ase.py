"""ASE calculator: same numbers as the model, clear errors for bad input."""
import numpy as np
import pytest
import torch
from ase import Atoms

from so3krates import UnsupportedElementError
from so3krates.ase import SO3kratesCalculator


def test_calculator_matches_model(alanine, potential64, model_file64):
    z, pos, _ = alanine
    atoms = Atoms(numbers=z, positions=pos)
    atoms.calc = SO3kratesCalculator(str(model_file64))
    pos_t = torch.tensor(pos, requires_grad=True)
    energy = potential64(torch.tensor(z), pos_t)
    forces = -torch.autograd.grad(energy, pos_t)[0].numpy()
    assert atoms.get_potential_energy() == pytest.approx(energy.item(), rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), forces, rtol=1e-10, atol=1e-12)


def test_periodic_cell_matches_model(alanine, potential64, model_file64):
    z, pos, _ = alanine
    cell = np.diag([9.5, 10.0, 9.0])
    atoms = Atoms(numbers=z, positions=pos, cell=cell, pbc=True)
    atoms.calc = SO3kratesCalculator(str(model_file64))
    expected = potential64(torch.tensor(z), torch.tensor(pos), torch.tensor(cell)).item()
    assert atoms.get_potential_energy() == pytest.approx(expected, rel=1e-12)


def test_unsupported_element_and_bad_cell_are_clear_errors(model_file64):
    atoms = Atoms("CHCl", positions=[[0, 0, 0], [1.1, 0, 0], [-1.8, 0, 0]])
    atoms.calc = SO3kratesCalculator(str(model_file64))
    with pytest.raises(UnsupportedElementError, match=r"atom 2 is Cl.*supported elements: H, C, N, O"):
        atoms.get_potential_energy()
    with pytest.raises(ValueError, match="precision='half' is not one of"):
        SO3kratesCalculator(str(model_file64), precision="half")
    skewed = Atoms("CH", positions=[[0, 0, 0], [1.1, 0, 0]], cell=[[10, 0, 0], [9, 10, 0], [0, 0, 10]], pbc=True)
    skewed.calc = SO3kratesCalculator(str(model_file64))
    with pytest.raises(ValueError, match="not in reduced triclinic form"):
        skewed.get_potential_energy()
