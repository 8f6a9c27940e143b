"""The charge and multiplicity a model is given (so3krates.electrons): defaults, the MM force field's
charge, and every refusal with its reason."""
import pytest

from so3krates.electrons import resolve_charge_and_spin
from so3krates.model_file import ModelInfo

from conftest import small_config

ALANINE = [6] * 6 + [7] * 2 + [8] * 2 + [1] * 12  # 78 electrons
AMMONIUM = [7, 1, 1, 1, 1]  # 11 protons


def info(default_charge=None, **config) -> ModelInfo:
    return ModelInfo(config=small_config(**config), package_version="test", format_version=4, dtype="float32",
                     atomic_energies_eV={}, training_data=None, created="", weights_sha256="",
                     default_charge=default_charge)


SO3LR_LIKE = dict(use_charge_embed=True, use_spin_embed=True, electrostatic_energy=True)


def test_defaults_and_given_values():
    so3lr = info(0.0, **SO3LR_LIKE)
    assert resolve_charge_and_spin(so3lr, ALANINE) == (0.0, 0.0)
    assert resolve_charge_and_spin(so3lr, AMMONIUM, charge=1) == (1.0, 0.0)
    assert resolve_charge_and_spin(so3lr, ALANINE, charge=0, multiplicity=3) == (0.0, 2.0)
    assert resolve_charge_and_spin(so3lr, AMMONIUM, mm_charge=0.9999) == (1.0, 0.0)  # force fields round
    assert resolve_charge_and_spin(info(), ALANINE) == (0.0, 0.0)  # a model without charge input


def test_refusals_name_the_problem():
    so3lr, trained = info(0.0, **SO3LR_LIKE), info(None, use_charge_embed=True)
    with pytest.raises(ValueError, match="trained on molecules with total charges"):
        resolve_charge_and_spin(trained, ALANINE)
    with pytest.raises(ValueError, match=r"\+0 e \(the default charge\) leaves 11 electrons"):
        resolve_charge_and_spin(so3lr, AMMONIUM)  # NH4 without its charge: a radical, not an ion
    with pytest.raises(ValueError, match="charge=1.5 is not a whole number"):
        resolve_charge_and_spin(so3lr, AMMONIUM, charge=1.5)
    with pytest.raises(ValueError, match=r"sum to \+0.500 e, not a whole number"):
        resolve_charge_and_spin(so3lr, AMMONIUM, mm_charge=0.5)
    with pytest.raises(ValueError, match=r"charge=-1 disagrees with the MM force field.*\+1.000 e"):
        resolve_charge_and_spin(so3lr, AMMONIUM, charge=-1, mm_charge=1.0)
    with pytest.raises(ValueError, match="multiplicity=1.5 must be a whole number"):
        resolve_charge_and_spin(so3lr, ALANINE, multiplicity=1.5)
    with pytest.raises(ValueError, match="no charge embedding"):
        resolve_charge_and_spin(info(), ALANINE, charge=2)
    with pytest.raises(ValueError, match="no spin embedding"):
        resolve_charge_and_spin(info(None, use_charge_embed=True), ALANINE, charge=0, multiplicity=3)
    with pytest.raises(ValueError, match="leaves -2 electrons"):
        resolve_charge_and_spin(so3lr, [1], charge=3)
