"""Shared fixtures: small random-but-smooth models and the alanine dipeptide molecule; where the data
the tests read lies (in the repository: a fresh clone runs every test)."""
from pathlib import Path

import numpy as np
import openmm.app as app
import openmm.unit as unit
import pytest
import torch

from so3krates.md import ALANINE_DIPEPTIDE_PDB
from so3krates.model import SO3kratesConfig
from so3krates.model_file import create_potential, save_model

ELEMENTS = [1, 6, 7, 8]
TEST_DATA = Path(__file__).parent / "data"  # reference outputs and data extracts (data/README.md)
EXAMPLE_DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def small_config(**overrides) -> SO3kratesConfig:
    """A small model with a non-zero random readout, so energies and forces are non-trivial."""
    values = dict(elements=ELEMENTS, num_features=32, num_heads=4, num_layers=2, degrees=[1, 2, 3, 4],
                  cutoff=4.0, num_radial=16, zero_readout=False)
    values.update(overrides)
    return SO3kratesConfig(**values)


def randomize_shifts(potential, seed: int = 1) -> None:
    """Give every element a distinct non-zero reference energy so tests see the per-element shift."""
    generator = torch.Generator().manual_seed(seed)
    potential.model.set_atomic_energies({z: float(-100 * torch.rand(1, generator=generator)) for z in ELEMENTS})


@pytest.fixture(scope="session")
def alanine():
    """(atomic numbers (22,), positions (22, 3) Å, topology) of alanine dipeptide."""
    pdb = app.PDBFile(str(ALANINE_DIPEPTIDE_PDB))
    z = np.array([a.element.atomic_number for a in pdb.topology.atoms()])
    pos = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
    return z, pos, pdb.topology


@pytest.fixture(scope="session")
def potential64():
    """Small float64 SO3kratesPotential (not scripted)."""
    potential = create_potential(small_config(), torch.float64, seed=0)
    randomize_shifts(potential)
    return potential.eval()


@pytest.fixture(scope="session")
def model_file64(tmp_path_factory, potential64):
    path = tmp_path_factory.mktemp("models") / "small64.pt"
    save_model(potential64, path)
    return path


@pytest.fixture(scope="session")
def model_file32(tmp_path_factory):
    potential = create_potential(small_config(), torch.float32, seed=0)
    randomize_shifts(potential)
    path = tmp_path_factory.mktemp("models") / "small32.pt"
    save_model(potential, path)
    return path


def random_rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
