"""What users install: the CUDA extras pin the same OpenMM and openmm-torch versions as the base
dependencies (so they cannot drift apart), in pyproject.toml and in the installed package's metadata;
`so3krates doctor` reports on the installation and names what is missing."""
import re
import tomllib
from importlib.metadata import requires
from pathlib import Path

from so3krates import doctor
from so3krates.cli import main

ROOT = Path(__file__).resolve().parents[1]
# extra package -> the base dependency whose version it must equal
CUDA_PACKAGES = {"openmm-cuda-{v}": "openmm", "openmm-torch-cuda-{v}": "openmmtorch"}


def pins(specs):
    """{lower-case name: pinned version} of '=='-pinned requirement strings (markers ignored)."""
    found = {}
    for spec in specs:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^;\s]+)", spec)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_cuda_extras_pin_the_base_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = pins(project["dependencies"])
    for cuda in ("12", "13"):
        extra = pins(project["optional-dependencies"][f"cuda{cuda}"])
        for package, dependency in CUDA_PACKAGES.items():
            assert extra[package.format(v=cuda)] == base[dependency], f"cuda{cuda}: {package} != {dependency}"


def test_installed_metadata_carries_the_extras():
    installed = requires("openmm-so3krates")
    for cuda in ("12", "13"):
        specs = [r for r in installed if f'extra == "cuda{cuda}"' in r]
        assert sorted(pins(specs)) == sorted(p.format(v=cuda) for p in CUDA_PACKAGES)


def test_doctor_passes_on_this_installation(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for topic in ("torch", "openmm-torch kernels", "compiled ops", "SO3LR model", "GPU", "threads"):
        assert topic in out
    assert "no problems found" in out


def test_doctor_names_a_missing_library(monkeypatch, tmp_path, capsys):
    from so3krates import _ops

    monkeypatch.setattr(_ops, "OPS_LIBRARY", tmp_path / "libso3krates_ops.so")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM  compiled ops" in out and "pip install --force-reinstall --no-deps ." in out


def test_plugin_failures_are_translated():
    cases = {
        "Error loading library /x/plugins/libOpenMMCUDA.so: libcuda.so.1: cannot open shared object file": "no NVIDIA driver",
        "Error loading library /x/plugins/libOpenMMTorchCUDA.so: libOpenMMCUDA.so: cannot open shared object file":
            "openmm-so3krates[cuda12]",
        "Error loading library /x/plugins/libOpenMMTorchCUDA.so: libcudart.so.13: cannot open shared object file":
            "cuda13 extra",
        "Error loading library /x/plugins/libOpenMMTorchReference.so: libc10.so: cannot open shared object file":
            "fixed automatically",
        "Error loading library /x/plugins/libOpenMMOpenCL.so: libOpenCL.so.1: cannot open shared object file":
            "no OpenCL runtime",
    }
    for failure, expected in cases.items():
        assert expected in doctor.explain_failure(failure), failure
