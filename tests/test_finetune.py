"""Fine-tuning (init_from, freezing, energy refit) and long-range training with dipole and charge losses."""

import numpy as np
import pytest
import torch

from so3krates.model_file import ModelFileError, load_model
from so3krates_train.batching import collate, labelled_mse, molecular_dipoles, predict
from so3krates_train.checks import check_frames
from so3krates_train.config import load_config
from so3krates_train.data import DataError, read_frames
from so3krates_train.evaluate import error_metrics, predict_charges, predict_frames
from so3krates_train.trainer import FINETUNE_LR, Trainer

from conftest import EXAMPLE_DATA, TEST_DATA

SPICE = TEST_DATA / "spice114_n2_modelforge.hdf5"
ETHANOL = EXAMPLE_DATA / "rmd17_ethanol_1000.npz"
BPA = EXAMPLE_DATA / "3bpa_train_300K.npz"
TINY = ["model.num_features=16", "model.num_radial=8", "model.num_layers=2", "model.hirshfeld_dim=8",
        "optim.warmup_steps=5", "optim.ema_decay=0.5", "optim.batch_size=5"]
# the charged amine of the SPICE extract: 50 conformers with MBIS charges and SCF dipoles
AMINE = [f"data.path={SPICE}", "data.options.elements=[1,6,7]", "data.train=30", "data.valid=10", "data.test=10"]


def config(tmp_path, *settings):
    return load_config(None, [f"output={tmp_path}", *settings])


@pytest.fixture(scope="module")
def long_range_model(tmp_path_factory):
    """A small long-range model trained from scratch on the amine (dipole loss on): its model file."""
    out = tmp_path_factory.mktemp("long_range")
    trainer = Trainer(config(out, *AMINE, *TINY, "model.long_range=true", "optim.lr=3e-3", "optim.epochs=6",
                             "optim.dipole_weight=1.0", "optim.charges_weight=1.0"), show_progress=False)
    before = trainer.validate(trainer.ema)
    path = trainer.train()
    return {"path": path, "trainer": trainer, "before": before, "after": trainer.validate(trainer.ema)}


def test_long_range_model_learns_dipoles_and_charges_from_scratch(long_range_model):
    before, after = long_range_model["before"], long_range_model["after"]
    print(f"\ndipole MAE {before['valid_dipole_mae_eA']:.3f} -> {after['valid_dipole_mae_eA']:.3f} e·Å, charges "
          f"{before['valid_charges_mae_e']:.3f} -> {after['valid_charges_mae_e']:.3f} e")
    assert after["valid_dipole_mae_eA"] < 0.7 * before["valid_dipole_mae_eA"]
    assert after["valid_charges_mae_e"] < 0.7 * before["valid_charges_mae_e"]
    assert after["valid_force_mae_eV_A"] < before["valid_force_mae_eV_A"]


def test_exported_long_range_model_reproduces_training_predictions(long_range_model):
    trainer = long_range_model["trainer"]
    potential, info = load_model(long_range_model["path"])
    assert info.config.electrostatic_energy and info.config.dispersion_energy and info.config.zbl_repulsion
    frames = trainer.valid_frames.select(range(4))
    energy_file, forces_file = predict_frames(potential, frames, dtype=torch.float32)
    batch = collate(frames, range(4), info.config.cutoff, torch.float32, torch.device("cpu"), True, info.config.lr_cutoff)
    energy, forces, charges = predict(trainer.ema, batch, False, info.config.lr_cutoff)
    np.testing.assert_allclose(energy_file, energy.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(forces_file, forces.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(predict_charges(potential.float(), frames), charges.detach().numpy(), atol=1e-5)
    # `so3krates eval` reports the dipole and charge errors of the file
    metrics = error_metrics(frames, energy_file, forces_file, predict_charges(potential, frames))
    assert metrics["dipole_e_angstrom"]["labels"] == 12 and metrics["partial_charges_e"]["labels"] == 4 * 27


def test_dipole_and_charge_losses_vanish_only_at_the_labels(long_range_model):
    trainer = long_range_model["trainer"]
    frames = trainer.valid_frames.select(range(3))
    batch = collate(frames, range(3), 5.0, torch.float32, torch.device("cpu"), True, 12.0)
    _, _, charges = predict(trainer.ema, batch, False, 12.0)
    charges = charges.detach()
    dipole = molecular_dipoles(charges, batch["positions"], batch["batch"], 3)
    assert labelled_mse(dipole, dipole.clone()) == 0 and labelled_mse(charges, charges.clone()) == 0
    assert labelled_mse(dipole, batch["dipole"]) > 0 and labelled_mse(charges, batch["partial_charges"]) > 0
    missing = torch.full_like(dipole, float("nan"))
    assert labelled_mse(dipole, missing) == 0  # frames without labels add nothing
    # the charges a molecule's atoms get add up to its total charge (+1 e)
    torch.testing.assert_close(torch.zeros(3).index_add(0, batch["batch"], charges), batch["charge"])


def test_finetuning_lowers_the_error_and_keeps_frozen_parts_bit_identical(long_range_model, tmp_path):
    start = long_range_model["path"]
    initial = dict(load_model(start)[0].model.named_parameters())
    trainer = Trainer(config(tmp_path, *AMINE, f"init_from={start}", "freeze_embeddings=true", "freeze_layers=1",
                             "optim.epochs=4", "optim.lr=2e-3", "optim.warmup_steps=1", "data.valid=0.2",
                             "seed=1"), show_progress=False)
    assert trainer.schedule.lr == 2e-3 and trainer.config.model == {}
    before = trainer.validate(trainer.ema)["valid_force_mae_eV_A"]
    trainer.train()
    after = trainer.validate(trainer.ema)["valid_force_mae_eV_A"]
    assert after < before
    for name, value in trainer.model.named_parameters():
        frozen = name.startswith(("blocks.0.", "embedding.", "charge_embedding."))
        assert torch.equal(value.detach(), initial[name]) == frozen, name


def test_finetuned_run_resumes_exactly(long_range_model, tmp_path):
    """float64 and a schedule that does not depend on the run's length: 1 epoch + resume = 2 epochs."""
    settings = [*AMINE, f"init_from={long_range_model['path']}", "dtype=float64", "optim.schedule=plateau",
                "optim.warmup_steps=1"]
    straight = Trainer(config(tmp_path / "straight", *settings, "optim.epochs=2"), show_progress=False)
    straight.train()
    Trainer(config(tmp_path / "split", *settings, "optim.epochs=1"), show_progress=False).train()
    resumed = Trainer(config(tmp_path / "split", *settings, "optim.epochs=2"), resume=True, show_progress=False)
    resumed.train()
    for (name, a), b in zip(straight.ema.named_parameters(), resumed.ema.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)


def test_init_from_so3lr_refits_the_energies_and_takes_the_finetuning_rate(tmp_path):
    trainer = Trainer(config(tmp_path, f"data.path={BPA}", "data.options.energy_unit=eV", "data.train=12",
                             "data.valid=6", "data.test=0", "init_from=so3lr", "optim.epochs=0"), show_progress=False)
    assert trainer.model.config.electrostatic_energy and trainer.schedule.lr == FINETUNE_LR
    # SO3LR has no energy zero; after the refit the energies of unseen frames are right to meV/atom
    assert trainer.validate(trainer.ema)["valid_energy_mae_eV_per_atom"] < 0.005
    # the fitted values are stored in the result; elements the data lack keep SO3LR's
    _, original = load_model("so3lr")
    _, info = load_model(trainer.train())
    assert info.atomic_energies_eV == pytest.approx(trainer.model.atomic_energies_eV())
    assert info.training_data["init_from"] == "so3lr"
    assert all(abs(info.atomic_energies_eV[z] - original.atomic_energies_eV[z]) > 100 for z in (1, 6, 7, 8))
    assert all(info.atomic_energies_eV[z] == original.atomic_energies_eV[z] for z in (9, 15, 16, 17))


def test_bad_finetuning_inputs_are_named(tmp_path):
    with pytest.raises(ModelFileError, match="init_from=missing.pt: model file missing.pt does not exist"):
        Trainer(config(tmp_path, f"data.path={ETHANOL}", "init_from=missing.pt"), show_progress=False)
    with pytest.raises(ValueError, match="architecture comes from init_from=so3lr"):
        Trainer(config(tmp_path, f"data.path={ETHANOL}", "init_from=so3lr", "model.num_layers=2"), show_progress=False)
    with pytest.raises(ValueError, match="'mace' is not a preset"):
        Trainer(config(tmp_path, f"data.path={ETHANOL}", "model=mace"), show_progress=False)


def test_elements_the_start_model_lacks_are_named(long_range_model, tmp_path):
    with pytest.raises(DataError, match=r"covers elements \['H', 'C', 'N'\], the data also hold \['O'\]"):
        Trainer(config(tmp_path, f"data.path={ETHANOL}", f"init_from={long_range_model['path']}"), show_progress=False)


def test_check_data_flags_charges_that_miss_the_total_charge():
    frames = read_frames(SPICE, elements=[1, 6, 7]).select(range(4))
    import h5py
    with h5py.File(SPICE) as raw:  # read in e·Å and e: the SCF dipole converted from e·bohr
        np.testing.assert_allclose(frames.dipole[0], raw["103147721/scf_dipole"][0] * 0.529177210903, rtol=1e-6)
        np.testing.assert_allclose(frames.partial_charges[:27], raw["103147721/mbis_charges"][0, :, 0], rtol=1e-6)
    assert not [f for f in check_frames(frames) if "charges" in f.problem or "dipole" in f.problem]
    frames.partial_charges[frames.atoms(2)] += 0.01
    frames.dipole[3] *= 100  # e·Å read as if it were 100 times larger (a unit slip)
    problems = {(f.frame, f.problem.split(" ")[0]) for f in check_frames(frames)}
    assert (2, "partial") in problems and (3, "dipole") in problems


def test_exported_long_range_model_runs_in_openmm_with_its_long_range_terms(long_range_model):
    """MLPotential('so3krates', modelPath=...) of a trained long-range model, float64 on the Reference
    platform, equals the file's own energy and forces (the amine has charge +1)."""
    import openmm
    import openmm.app as app
    import openmm.unit as unit
    from openmmml import MLPotential

    from so3krates.openmm.torchforce import KJ_PER_MOL_PER_EV

    frames = long_range_model["trainer"].valid_frames.select([0])
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for z in frames.atomic_numbers:
        topology.addAtom(app.Element.getByAtomicNumber(int(z)).symbol, app.Element.getByAtomicNumber(int(z)), residue)
    system = MLPotential("so3krates", modelPath=str(long_range_model["path"])).createSystem(
        topology, precision="double", charge=1)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(frames.positions / 10.0)
    state = context.getState(getEnergy=True, getForces=True)
    energy, forces = predict_frames(load_model(long_range_model["path"])[0], frames)
    assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == \
        pytest.approx(energy[0] * KJ_PER_MOL_PER_EV, rel=1e-9)
    np.testing.assert_allclose(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer),
                               forces * KJ_PER_MOL_PER_EV * 10.0, rtol=1e-6, atol=1e-6)


def test_init_from_a_model_file_of_the_previous_format_reproduces_it():
    """A 0.1.0 model file (format 3, inside LegacyCall) as the start: the rebuilt network is that model."""
    from so3krates.model import SO3kratesPotential
    from so3krates_train.finetune import load_initial_model

    path = TEST_DATA / "checkpoint_0.1.0_model.pt"
    frames = read_frames(ETHANOL).select(range(3))
    original = predict_frames(load_model(path)[0], frames)
    rebuilt = predict_frames(torch.jit.script(SO3kratesPotential(load_initial_model(str(path), [1, 6, 8],
                                                                                    torch.float64))), frames)
    np.testing.assert_allclose(rebuilt[0], original[0], rtol=1e-12)
    np.testing.assert_allclose(rebuilt[1], original[1], atol=1e-9)
