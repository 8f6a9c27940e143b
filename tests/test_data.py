"""Data readers on real files, unit conversions, malformed files, per-element fit, splits, check-data."""

import h5py
import numpy as np
import pytest

from so3krates_train.checks import check_frames
from so3krates_train.data import DataError, read_frames
from so3krates_train.data.spice import formal_charge
from so3krates_train.fitting import fit_atomic_energies, residual_energies
from so3krates_train.splits import make_split
from so3krates_train.units import BOHR_ANGSTROM, HARTREE_EV, KCAL_MOL_EV

from conftest import EXAMPLE_DATA as REPO_DATA, TEST_DATA


def test_unit_constants_against_hand_values():
    assert HARTREE_EV == pytest.approx(27.211386, rel=1e-7)
    assert BOHR_ANGSTROM == pytest.approx(0.529177, rel=1e-6)
    assert KCAL_MOL_EV == pytest.approx(0.0433641, rel=1e-6)


def test_rmd17_reader_converts_kcal_mol_to_eV():
    frames = read_frames(REPO_DATA / "rmd17_ethanol_1000.npz")
    raw = np.load(REPO_DATA / "rmd17_ethanol_1000.npz")
    assert len(frames) == 1000 and frames.elements == [1, 6, 8]
    assert frames.energy[3] == pytest.approx(raw["energies"][3] * 0.04336410, rel=1e-7)
    np.testing.assert_allclose(frames.forces[frames.atoms(3)], raw["forces"][3] * 0.04336410, rtol=1e-7)
    np.testing.assert_array_equal(frames.positions[frames.atoms(3)], raw["coords"][3])


def test_extxyz_reader_agrees_with_npz_of_same_data():
    xyz = read_frames(TEST_DATA / "rmd17_ethanol_1000_metatensor.xyz", energy_unit="kcal/mol")
    npz = read_frames(REPO_DATA / "rmd17_ethanol_1000.npz")
    np.testing.assert_allclose(xyz.energy, npz.energy, rtol=1e-12)
    np.testing.assert_allclose(xyz.forces, npz.forces, rtol=1e-9, atol=1e-12)


def test_sgdml_reader_handles_zero_padding_and_requires_units():
    frames = read_frames(REPO_DATA / "qm7x_250_small_mlff.npz", energy_unit="eV")
    raw = np.load(REPO_DATA / "qm7x_250_small_mlff.npz")
    assert len(frames) == 2500
    assert frames.n_atoms[0] == np.count_nonzero(raw["z"][0])
    assert 0 not in frames.atomic_numbers and frames.elements == [1, 6, 7, 8, 16, 17]
    assert frames.energy[0] == raw["E"][0, 0]
    assert 240 <= len(set(frames.molecule)) <= 250
    with pytest.raises(DataError, match="energy unit"):
        read_frames(REPO_DATA / "qm7x_250_small_mlff.npz")


def test_spice_reader_units_sign_and_charge():
    frames = read_frames(TEST_DATA / "spice114_n2_modelforge.hdf5")
    with h5py.File(TEST_DATA / "spice114_n2_modelforge.hdf5") as h:
        group = h["103147721"]
        energy = group["dft_total_energy"][0] * 27.211386245988
        gradient = group["dft_total_gradient"][0]
        coords = group["conformations"][0] * 0.529177210903
    k = list(frames.molecule).index("103147721")
    assert frames.energy[k] == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(frames.forces[frames.atoms(k)], -gradient * 27.211386245988 / 0.529177210903,
                               rtol=1e-6)
    np.testing.assert_allclose(frames.positions[frames.atoms(k)], coords, rtol=1e-6)
    assert set(frames.charge) == {1.0}
    assert "SPICE PubChem Set 6" in frames.subset[k]
    only_pubchem = read_frames(TEST_DATA / "spice114_n2_modelforge.hdf5", subsets=["PubChem"])
    assert set(only_pubchem.molecule) == {"103147721"}
    with pytest.raises(DataError, match="no molecule passed the filters"):
        read_frames(TEST_DATA / "spice114_n2_modelforge.hdf5", charges=[0])


def test_formal_charge_from_smiles():
    assert formal_charge("[N+:9]([H:25])") == 1
    assert formal_charge("C#C.[Na+]") == 1
    assert formal_charge("CC(=O)[O-]") == -1
    assert formal_charge("[Fe+2].[Cl-].[Cl-]") == 0
    assert formal_charge("[NH4+].[O-][N+](=O)[O-]") == 0
    assert formal_charge("CCO") == 0


def test_ani1x_reader():
    frames = read_frames(TEST_DATA / "ani1x_ccx_n5_modelforge.hdf5")
    with h5py.File(TEST_DATA / "ani1x_ccx_n5_modelforge.hdf5") as h:
        name = next(iter(h))
        energy = h[name]["wb97x_dz.energy"][0] * 27.211386245988
    assert frames.energy[0] == pytest.approx(energy, rel=1e-12)
    with pytest.raises(DataError, match="missing.*'nonsense.energy'"):
        read_frames(TEST_DATA / "ani1x_ccx_n5_modelforge.hdf5", method="nonsense")


def test_malformed_files_get_named_errors(tmp_path):
    bad_npz = tmp_path / "bad.npz"
    np.savez(bad_npz, nuclear_charges=np.array([1, 8]), coords=np.zeros((4, 3, 3)), energies=np.zeros(4),
             forces=np.zeros((4, 3, 3)))
    with pytest.raises(DataError, match=r"bad.npz.*inconsistent shapes"):
        read_frames(bad_npz)
    xyz = tmp_path / "no_energy.xyz"
    xyz.write_text("2\nProperties=species:S:1:pos:R:3:forces:R:3 pbc=\"F F F\"\nH 0 0 0 0 0 0\nH 0 0 0.74 0 0 0\n")
    with pytest.raises(DataError, match=r"no_energy.xyz: frame 0: no energy under key 'energy'"):
        read_frames(xyz)
    h5 = tmp_path / "broken.hdf5"
    with h5py.File(h5, "w") as h:
        g = h.create_group("mol")
        g["atomic_numbers"] = np.array([1, 1])
        g["conformations"] = np.zeros((2, 2, 3))
        g["dft_total_energy"] = np.zeros(2)
    with pytest.raises(DataError, match=r"broken.hdf5: group 'mol'.*missing \['dft_total_gradient'\]"):
        read_frames(h5, format="spice")
    with pytest.raises(DataError, match="does not exist"):
        read_frames(tmp_path / "absent.npz")


def test_fit_recovers_known_atomic_energies():
    rng = np.random.default_rng(0)
    truth = {1: -13.6, 6: -1029.5, 7: -1485.0, 8: -2042.0}
    from so3krates_train.data.frames import frames_from_arrays
    numbers = [rng.choice(list(truth), size=rng.integers(3, 12)) for _ in range(200)]
    energy = np.array([sum(truth[int(z)] for z in zs) for zs in numbers]) + rng.normal(0, 1e-3, 200)
    frames = frames_from_arrays("synthetic", numbers, [np.zeros((len(z), 3)) for z in numbers],
                                [np.zeros((len(z), 3)) for z in numbers], energy, [str(k) for k in range(200)])
    fitted = fit_atomic_energies(frames)
    for z, e in truth.items():
        assert fitted[z] == pytest.approx(e, abs=2e-3)
    assert np.abs(residual_energies(frames, fitted)).max() < 5e-3


def test_fit_of_a_single_molecule_gives_every_atom_the_same_energy():
    """rMD17-like data (one composition) fix one sum, not three energies: the fit reproduces the totals
    with equal per-atom values (not the minimum-norm split) and says why."""
    from so3krates_train.data.frames import frames_from_arrays

    rng = np.random.default_rng(1)
    numbers = [np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])] * 50
    energy = -4210.0 + rng.normal(0, 0.1, 50)
    frames = frames_from_arrays("ethanol", numbers, [np.zeros((9, 3))] * 50, [np.zeros((9, 3))] * 50, energy,
                                ["ethanol"] * 50)
    messages = []
    fitted = fit_atomic_energies(frames, report=messages.append)
    assert np.allclose(list(fitted.values()), energy.mean() / 9)
    assert np.abs(residual_energies(frames, fitted).mean()) < 1e-9
    assert "determine only 1 of 3" in messages[0] and "atomic_energies" in messages[0]
    # full-rank data keep the ordinary least-squares values and say nothing
    messages.clear()
    mixed = frames_from_arrays("two", [np.array([1, 1]), np.array([8, 1, 1]), np.array([8, 8])],
                               [np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((2, 3))],
                               [np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((2, 3))],
                               np.array([-1.0, -10.0, -18.0]), ["a", "b", "c"])
    assert fit_atomic_energies(mixed, report=messages.append) == pytest.approx({1: -0.5, 8: -9.0}) and not messages


def test_split_by_molecule_never_shares_molecules():
    frames = read_frames(REPO_DATA / "qm7x_250_small_mlff.npz", energy_unit="eV")
    split = make_split(frames, 0.8, 0.1, 0.1, seed=1, by="molecule")
    train_mols = set(frames.molecule[split.train])
    assert not train_mols & set(frames.molecule[split.test]) and not train_mols & set(frames.molecule[split.valid])
    assert len(split.train) + len(split.valid) + len(split.test) == len(frames)
    assert make_split(frames, 100, 20, 20, seed=1).train == make_split(frames, 100, 20, 20, seed=1).train
    with pytest.raises(DataError, match="need"):
        make_split(frames, 3000, 10, 10)


def test_split_moves_molecules_with_elements_training_lacks_into_training():
    """QM7-X's only chlorine molecule must not land in validation or test, where neither its per-element
    energy nor the network could have learnt chlorine; sizes stay as asked, and common splits are unchanged."""
    frames = read_frames(REPO_DATA / "qm7x_250_small_mlff.npz", energy_unit="eV")
    chlorine = {str(m) for k, m in enumerate(frames.molecule) if 17 in frames.atomic_numbers[frames.atoms(k)]}
    assert len(chlorine) == 1
    moved = []
    for seed in range(40):  # seeds that put the chlorine molecule outside training at first
        messages = []
        split = make_split(frames, 0.8, 0.1, 0.1, seed=seed, by="molecule", report=messages.append)
        assert chlorine <= set(frames.molecule[split.train].astype(str))
        sizes = [len(set(frames.molecule[part])) for part in (split.train, split.valid, split.test)]
        assert sizes == [round(f * len(set(frames.molecule))) for f in (0.8, 0.1, 0.1)]
        if messages:
            moved.append(seed)
            assert "Z=17" in messages[0] and "into training" in messages[0]
    assert moved, "some seed must have drawn chlorine outside training"
    # a split without rare elements is the plain random one
    no_sulfur_or_chlorine = frames.select([k for k in range(len(frames))
                                           if not {16, 17} & set(frames.atomic_numbers[frames.atoms(k)])])
    messages = []
    split = make_split(no_sulfur_or_chlorine, 0.8, 0.1, 0.1, seed=3, by="molecule", report=messages.append)
    assert not messages and split.train == make_split(no_sulfur_or_chlorine, 0.8, 0.1, 0.1, seed=3, by="molecule").train


def test_fit_names_elements_the_training_frames_lack():
    from so3krates_train.data.frames import frames_from_arrays

    frames = frames_from_arrays("two", [np.array([1, 1]), np.array([8, 1, 1]), np.array([8, 8])],
                                [np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((2, 3))],
                                [np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((2, 3))],
                                np.array([-1.0, -10.0, -18.0]), ["a", "b", "c"])
    messages = []
    fitted = fit_atomic_energies(frames, elements=[1, 8, 17], report=messages.append)
    assert fitted[1] == pytest.approx(-0.5) and fitted[8] == pytest.approx(-9.0)
    assert fitted[17] == pytest.approx(-4.75)
    assert len(messages) == 1 and "Z=[17] do not occur in the training frames" in messages[0]


def test_check_data_flags_corrupted_frames_and_no_clean_ones():
    frames = read_frames(REPO_DATA / "rmd17_ethanol_1000.npz").select(range(300))
    assert check_frames(frames) == []
    frames.energy[10] += 5.0  # a wrong energy
    frames.forces[frames.atoms(20).start, 0] = np.nan
    frames.positions[frames.atoms(30).start + 1] = frames.positions[frames.atoms(30).start] + 0.1  # atoms collide
    frames.forces[frames.atoms(40).start + 2, 1] = 80.0
    flagged = {}
    for finding in check_frames(frames):
        flagged[finding.frame] = flagged.get(finding.frame, "") + finding.problem + "; "
    assert set(flagged) >= {10, 20, 30, 40}
    assert "outlier" in flagged[10] and "non-finite" in flagged[20]
    assert "apart" in flagged[30] and "force component" in flagged[40]
    assert len(flagged) <= 6, f"clean frames flagged: {flagged}"
