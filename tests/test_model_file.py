"""Model files: round trip, metadata, and clear errors for files we cannot use."""
import json
import zipfile

import pytest
import torch

from so3krates import ModelFileError, load_model, save_model
from so3krates.model_file import FORMAT_VERSION, METADATA_FILE


def test_round_trip_gives_identical_outputs(alanine, potential64, model_file64):
    z, pos, _ = alanine
    loaded, info = load_model(model_file64)
    z_t, pos_t = torch.tensor(z), torch.tensor(pos, dtype=torch.float64)
    assert loaded(z_t, pos_t).item() == potential64(z_t, pos_t).item()
    assert info.config == potential64.model.config
    assert info.dtype == "float64"
    assert info.atomic_energies_eV == pytest.approx(potential64.model.atomic_energies_eV())
    assert info.cutoff_angstrom == 4.0 and info.elements == [1, 6, 7, 8]


def test_training_data_description_is_stored(tmp_path, potential64):
    description = {"file": "rmd17_ethanol_1000.npz", "sha256": "b0928a", "frames": 1000}
    save_model(potential64, tmp_path / "m.pt", training_data=description)
    assert load_model(tmp_path / "m.pt")[1].training_data == description


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nothing.pt")


def test_not_a_torchscript_file(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a model" * 100)
    with pytest.raises(ModelFileError, match="not a readable TorchScript model file"):
        load_model(path)


def test_truncated_file(tmp_path, model_file64):
    path = tmp_path / "truncated.pt"
    path.write_bytes(model_file64.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="not a readable TorchScript model file"):
        load_model(path)


def test_torchscript_file_that_is_not_ours(tmp_path):
    path = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 1)), str(path))
    with pytest.raises(ModelFileError, match="not an openmm-so3krates model"):
        load_model(path)


def rewrite_archive(source, target, edit):
    """Copy a TorchScript zip, letting `edit(name, data)` change member contents."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            zout.writestr(item, edit(item.filename, zin.read(item.filename)))


def with_metadata(source, target, **changes):
    """Copy a model file with some metadata fields replaced."""
    def edit(name, data):
        if name.endswith("extra/" + METADATA_FILE):
            return json.dumps({**json.loads(data), **changes}).encode()
        return data
    rewrite_archive(source, target, edit)


def test_newer_format_version_is_refused(tmp_path, model_file64):
    with_metadata(model_file64, tmp_path / "future.pt", format_version=FORMAT_VERSION + 1, package_version="9.0.0")
    with pytest.raises(ModelFileError, match="written by openmm-so3krates 9.0.0.*upgrade"):
        load_model(tmp_path / "future.pt")


def test_older_format_version_is_refused_with_what_to_do(tmp_path, model_file64):
    with_metadata(model_file64, tmp_path / "old.pt", format_version=1)
    with pytest.raises(ModelFileError, match="format 1.*no longer runs.*so3krates export"):
        load_model(tmp_path / "old.pt")


def test_corrupted_weights_are_detected(tmp_path, model_file64):
    def flip(name, data):
        if "/data/" in name and len(data) > 64:
            data = bytearray(data)
            data[40] ^= 0xFF
            return bytes(data)
        return data
    path = tmp_path / "corrupt.pt"
    rewrite_archive(model_file64, path, flip)
    with pytest.raises(ModelFileError, match="corrupted"):
        load_model(path)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, potential64):
    save_model(potential64, tmp_path / "m.pt")
    save_model(potential64, tmp_path / "m.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
