"""Total-charge embedding: charged molecules in training and at run time."""

import numpy as np
import pytest
import torch
from ase import Atoms
from openmmml import MLPotential

from so3krates.ase import SO3kratesCalculator
from so3krates.model_file import create_potential, load_model, save_model

from conftest import TEST_DATA, small_config
from test_openmm import openmm_energy_forces



@pytest.fixture(scope="module")
def charged_model(tmp_path_factory):
    potential = create_potential(small_config(use_charge_embed=True), torch.float64, seed=4)
    path = tmp_path_factory.mktemp("charged") / "charged.pt"
    save_model(potential, path)
    return potential, path


def test_charge_changes_energy_and_forces_stay_gradients(alanine, charged_model):
    potential, _ = charged_model
    z, pos, _ = alanine
    z, pos = torch.tensor(z), torch.tensor(pos, requires_grad=True)
    neutral = potential(z, pos, None, 0.0)
    cation = potential(z, pos, None, 1.0)
    assert abs(cation.item() - neutral.item()) > 1e-3
    forces = -torch.autograd.grad(cation, pos)[0]
    h = 1e-5
    for atom, axis in ((0, 0), (7, 2), (15, 1)):
        plus, minus = pos.detach().clone(), pos.detach().clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        numerical = -(potential(z, plus, None, 1.0) - potential(z, minus, None, 1.0)).item() / (2 * h)
        assert forces[atom, axis].item() == pytest.approx(numerical, rel=1e-6, abs=1e-8)
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(0))
    assert potential(z[perm], pos.detach()[perm], None, 1.0).item() == pytest.approx(cation.item(), rel=1e-12)


def test_openmm_needs_and_uses_the_charge(alanine, charged_model):
    potential, path = charged_model
    z, pos, topology = alanine
    ml = MLPotential("so3krates", modelPath=str(path))
    with pytest.raises(ValueError, match="trained on molecules with total charges"):
        ml.createSystem(topology)
    # alanine dipeptide has 78 electrons: a singlet needs an even charge (+1 is refused, test_electrons.py)
    energy, _ = openmm_energy_forces(ml.createSystem(topology, charge=2, precision="double"), pos / 10.0, "Reference")
    expected = potential(torch.tensor(z), torch.tensor(pos), None, 2.0).item() * 96.48533212331002
    assert energy == pytest.approx(expected, rel=1e-8)


def test_neutral_model_refuses_a_charge(alanine, model_file64):
    with pytest.raises(ValueError, match="no charge embedding"):
        MLPotential("so3krates", modelPath=str(model_file64)).createSystem(alanine[2], charge=-1)


def test_ase_calculator_charge(alanine, charged_model):
    potential, path = charged_model
    z, pos, _ = alanine
    with pytest.raises(ValueError, match="total charges"):
        Atoms(numbers=z, positions=pos, calculator=SO3kratesCalculator(str(path))).get_potential_energy()
    atoms = Atoms(numbers=z, positions=pos, calculator=SO3kratesCalculator(str(path), charge=-2))
    expected = potential(torch.tensor(z), torch.tensor(pos), None, -2.0).item()
    assert atoms.get_potential_energy() == pytest.approx(expected, rel=1e-12)
    # as SO3LR's ASE calculator: the charge may also come with the atoms
    atoms = Atoms(numbers=z, positions=pos, calculator=SO3kratesCalculator(str(path)), info={"charge": -2})
    assert atoms.get_potential_energy() == pytest.approx(expected, rel=1e-12)


def test_training_on_charged_spice_molecules_enables_the_charge_embedding(tmp_path):
    from so3krates_train.config import load_config
    from so3krates_train.evaluate import predict_frames
    from so3krates_train.trainer import Trainer

    config = load_config(None, [f"data.path={TEST_DATA / 'spice114_n2_modelforge.hdf5'}", "data.train=40",
                                "data.valid=10", "data.test=5", "model.num_features=16", "model.num_radial=8",
                                "model.num_layers=1", "optim.epochs=2", f"output={tmp_path}"])
    trainer = Trainer(config, show_progress=False)
    assert trainer.model.config.use_charge_embed
    model, info = load_model(trainer.train())
    assert info.config.use_charge_embed
    frames = trainer.valid_frames
    energy, _ = predict_frames(model, frames)
    assert np.all(np.isfinite(energy))
    # the exported model's energies are total energies in the data's reference (per-element fit inside)
    assert np.mean(np.abs(energy - frames.energy) / frames.n_atoms) < 0.5
