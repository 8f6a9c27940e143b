"""The compiled part: a serialized System runs where our Python package is never imported."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import pytest
import torch
from openmmml import MLPotential

import so3krates
from so3krates import _ops

from conftest import EXAMPLE_DATA
from test_openmm import openmm_energy_forces

PLUGIN_TESTS = Path(__file__).resolve().parents[1] / "plugin" / "tests"
DIGLYCINE = EXAMPLE_DATA / "diglycine.pdb"


@pytest.fixture(scope="module", params=["test model", "so3lr"])
def serialized(request, tmp_path_factory, alanine, model_file64):
    """System XML of alanine dipeptide with the float64 test model or SO3LR (whose physical terms are
    compiled ops too), and reference values."""
    _, pos, topology = alanine
    potential = MLPotential("so3lr") if request.param == "so3lr" else MLPotential("so3krates", modelPath=str(model_file64))
    system = potential.createSystem(topology, precision="double")
    folder = tmp_path_factory.mktemp("serialized")
    (folder / "system.xml").write_text(openmm.XmlSerializer.serialize(system))
    energy, forces = openmm_energy_forces(system, pos / 10.0, "Reference")
    return folder, pos / 10.0, energy, forces


FRESH_PROCESS = """
import json, sys
import torch, openmm, openmmtorch   # not so3krates: our ops must come from the OpenMM plugin
system = openmm.XmlSerializer.deserialize(open(sys.argv[1]).read())
context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName('Reference'))
context.setPositions(json.loads(sys.argv[2]))
state = context.getState(getEnergy=True, getForces=True)
print(json.dumps({"energy": state.getPotentialEnergy()._value, "forces": state.getForces(asNumpy=True)._value.tolist(),
                  "so3krates_imported": any(m.startswith("so3krates") for m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def serialized_embedded(tmp_path_factory):
    """System XML of SO3LR's diglycine zwitterion in TIP3P with electrostatic embedding (PME for MM–MM)."""
    pdb = app.PDBFile(str(DIGLYCINE))
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(forcefield, padding=1.0 * unit.nanometer, model="tip3p")
    mm_system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer)
    system = MLPotential("so3lr").createMixedSystem(modeller.topology, mm_system, range(pdb.topology.getNumAtoms()),
                                                    precision="double", embedding="electrostatic")
    folder = tmp_path_factory.mktemp("serialized_embedded")
    (folder / "system.xml").write_text(openmm.XmlSerializer.serialize(system))
    pos_nm = np.array(modeller.getPositions().value_in_unit(unit.nanometer))
    energy, forces = openmm_energy_forces(system, pos_nm, "Reference")
    return folder, pos_nm, energy, forces


def run_in_fresh_process(folder: Path, pos_nm: np.ndarray, energy: float, forces: np.ndarray) -> None:
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(folder / "system.xml"), json.dumps(pos_nm.tolist())],
                            capture_output=True, text=True, timeout=300, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["so3krates_imported"]
    assert out["energy"] == pytest.approx(energy, rel=1e-9)
    np.testing.assert_allclose(out["forces"], forces, rtol=1e-9, atol=1e-9)


def test_serialized_system_runs_in_a_process_without_our_package(serialized):
    run_in_fresh_process(*serialized)


def test_serialized_electrostatic_embedding_runs_in_a_process_without_our_package(serialized_embedded):
    run_in_fresh_process(*serialized_embedded)


def plugin_directory() -> Path:
    """Where `import openmm` loads plugins from (the wheel's OpenMM.libs/lib/plugins)."""
    return Path(openmm.version.openmm_library_path) / "plugins"


def test_plugin_is_installed_next_to_openmms_plugins():
    assert (plugin_directory() / "libSO3kratesPlugin.so").is_file()
    assert not [f for f in openmm.Platform.getPluginLoadFailures() if "SO3krates" in f]


def nvidia_library_dirs():
    """Directories of the CUDA runtime libraries that pip's torch ships, which openmm-torch's plugins
    link to; a process without Python's torch import must find them through LD_LIBRARY_PATH."""
    site = Path(torch.__file__).parents[1]
    return sorted(str(p) for p in site.glob("nvidia/*/lib"))


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("ctest") is None, reason="needs cmake")
def test_ctest_cpp_program_reproduces_python_values(serialized, tmp_path):
    folder, pos_nm, energy, forces = serialized
    reference = folder / "reference.txt"
    lines = [f"{len(pos_nm)} {energy!r}"] + [" ".join(repr(float(v)) for v in (*p, *f)) for p, f in zip(pos_nm, forces)]
    reference.write_text("\n".join(lines) + "\n")
    openmm_dir = Path(openmm.__file__).parents[1] / "OpenMM.libs"
    library_path = ":".join(nvidia_library_dirs() + [str(Path(torch.__file__).parent / "lib"),
                                                      os.environ.get("LD_LIBRARY_PATH", "")])
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(PLUGIN_TESTS), "-B", str(build), f"-DOPENMM_DIR={openmm_dir}",
                    f"-DPLUGIN_DIR={plugin_directory()}",
                    f"-DSYSTEM_XML={folder / 'system.xml'}", f"-DREFERENCE={reference}",
                    f"-DRUNTIME_LIBRARY_PATH={library_path}"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True)
    result = subprocess.run(["ctest", "--output-on-failure"], cwd=build, capture_output=True, text=True, timeout=600)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "100% tests passed" in result.stdout


def test_missing_op_library_says_how_to_rebuild(tmp_path):
    with pytest.raises(_ops.CompiledOpsError, match="is missing; reinstall openmm-so3krates"):
        _ops.load_ops(tmp_path / "libso3krates_ops.so")


def test_library_built_against_another_torch_says_how_to_rebuild(tmp_path):
    fake = tmp_path / "libso3krates_ops.so"
    fake.write_bytes(b"not a shared library")
    with pytest.raises(_ops.CompiledOpsError, match="cannot be loaded with torch.*reinstall"):
        _ops.load_ops(fake)


def test_plugin_directory_without_our_library_fails_clearly(serialized, tmp_path):
    """Deserializing a model that calls our op where neither our package nor our plugin is loaded."""
    folder, pos_nm, _, _ = serialized
    script = """
import sys, torch, openmm, openmmtorch
openmm.Platform.loadPluginsFromDirectory(sys.argv[2])
system = openmm.XmlSerializer.deserialize(open(sys.argv[1]).read())
openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName('Reference'))
"""
    env = dict(os.environ, OPENMM_PLUGIN_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script, str(folder / "system.xml"), str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode != 0
    assert "Unknown builtin op: so3krates::" in result.stderr
    assert so3krates.__version__
