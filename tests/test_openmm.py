"""openmm-ml potential `so3krates`: OpenMM energies and forces equal the pure-PyTorch model."""
import os
import subprocess
import sys

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import pytest
import torch
from openmmml import MLPotential

from so3krates import UnsupportedElementError
from so3krates.openmm.torchforce import KJ_PER_MOL_PER_EV

KJ_NM = unit.kilojoule_per_mole / unit.nanometer


def openmm_energy_forces(system, positions_nm, platform, group=-1):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions_nm)
    groups = -1 if group < 0 else {group}
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(KJ_NM))


def torch_energy_forces(potential, z, pos_angstrom, cell_angstrom=None):
    """Reference values from the Python model, converted to kJ/mol and kJ/mol/nm."""
    pos = torch.tensor(pos_angstrom, dtype=torch.float64, requires_grad=True)
    cell = None if cell_angstrom is None else torch.tensor(cell_angstrom, dtype=torch.float64)
    energy = potential(torch.tensor(z), pos, cell)
    forces = -torch.autograd.grad(energy, pos)[0].numpy()
    return energy.item() * KJ_PER_MOL_PER_EV, forces * KJ_PER_MOL_PER_EV * 10.0


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
@pytest.mark.parametrize("return_forces", [True, False])
def test_openmm_matches_pytorch_in_vacuum(alanine, potential64, model_file64, platform, return_forces):
    z, pos, topology = alanine
    system = MLPotential("so3krates", modelPath=str(model_file64)).createSystem(
        topology, precision="double", returnForces=return_forces)
    energy, forces = openmm_energy_forces(system, pos / 10.0, platform)
    ref_energy, ref_forces = torch_energy_forces(potential64, z, pos)
    assert energy == pytest.approx(ref_energy, rel=1e-6)
    np.testing.assert_allclose(forces, ref_forces, rtol=1e-6, atol=1e-6 * np.abs(ref_forces).max())


@pytest.mark.parametrize("box_nm", [np.diag([1.0, 0.95, 0.9]),
                                    np.array([[1.0, 0, 0], [0.3, 0.95, 0], [-0.4, 0.25, 0.9]])],
                         ids=["orthorhombic", "triclinic"])
def test_openmm_matches_pytorch_periodic(alanine, potential64, model_file64, box_nm):
    """Molecule straddling the box boundary, unwrapped positions, interacting with its images."""
    z, pos, topology = alanine
    topology = app.Topology()
    topology.setPeriodicBoxVectors(box_nm * unit.nanometer)
    chain = topology.addChain()
    for atom in alanine[2].atoms():
        topology.addAtom(atom.name, atom.element, topology.addResidue(atom.residue.name, chain))
    shifted = pos - pos.mean(axis=0) + 0.5 * np.array([box_nm[0, 0], 0, 0]) * 10.0  # across x = a
    system = MLPotential("so3krates", modelPath=str(model_file64)).createSystem(topology, precision="double")
    assert system.usesPeriodicBoundaryConditions()
    energy, forces = openmm_energy_forces(system, shifted / 10.0, "Reference")
    ref_energy, ref_forces = torch_energy_forces(potential64, z, shifted, box_nm * 10.0)
    vacuum_energy, _ = torch_energy_forces(potential64, z, shifted)
    assert energy == pytest.approx(ref_energy, rel=1e-6)
    assert abs(ref_energy - vacuum_energy) > 1e-3, "images must interact in this box"
    np.testing.assert_allclose(forces, ref_forces, rtol=1e-6, atol=1e-6 * np.abs(ref_forces).max())


@pytest.fixture(scope="module")
def solvated(alanine):
    _, pos, topology = alanine
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(topology, pos / 10.0 * unit.nanometer)
    modeller.addSolvent(forcefield, padding=1.0 * unit.nanometer, model="tip3p")
    mm_system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                        nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds)
    return modeller.topology, modeller.getPositions(), mm_system


def test_mixed_system_ml_part_equals_isolated_molecule(alanine, model_file64, solvated):
    topology, positions, mm_system = solvated
    ml_atoms = list(range(22))
    potential = MLPotential("so3krates", modelPath=str(model_file64))
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms, forceGroup=1, precision="double")
    energy_ml, forces_ml = openmm_energy_forces(mixed, positions, "CPU", group=1)
    isolated = potential.createSystem(alanine[2], precision="double")
    ml_positions = [positions[i] for i in ml_atoms]
    energy_iso, forces_iso = openmm_energy_forces(isolated, ml_positions, "CPU")
    assert energy_ml == pytest.approx(energy_iso, rel=1e-9)
    np.testing.assert_allclose(forces_ml[:22], forces_iso, rtol=1e-7, atol=1e-6)
    assert np.abs(forces_ml[22:]).max() == 0.0
    # the whole mixed system runs
    integrator = openmm.LangevinMiddleIntegrator(300, 1, 0.001)
    simulation = app.Simulation(topology, mixed, integrator, openmm.Platform.getPlatformByName("CPU"))
    simulation.context.setPositions(positions)
    simulation.step(3)
    assert np.isfinite(simulation.context.getState(getEnergy=True).getPotentialEnergy()._value)


def test_unsupported_element_names_atom_element_and_supported_list(model_file64):
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for name, element in [("C1", app.element.carbon), ("H1", app.element.hydrogen), ("CL1", app.element.chlorine)]:
        topology.addAtom(name, element, residue)
    with pytest.raises(UnsupportedElementError, match=r"atom 2 \(CL1 of MOL\d*\) is Cl.*supported elements: H, C, N, O"):
        MLPotential("so3krates", modelPath=str(model_file64)).createSystem(topology)


def test_missing_model_path_and_bad_precision_are_clear_errors(alanine, model_file64):
    with pytest.raises(ValueError, match="needs modelPath"):
        MLPotential("so3krates")
    with pytest.raises(ValueError, match="precision='half' is not one of"):
        MLPotential("so3krates", modelPath=str(model_file64)).createSystem(alanine[2], precision="half")


def test_ml_long_range_is_false(model_file64):
    assert MLPotential("so3krates", modelPath=str(model_file64))._impl.getMLLongRange() is False


IMPORT_ORDER_SCRIPT = """
import openmm, openmm.app as app, openmm.unit as unit   # openmm first: torch not loaded yet
from openmmml import MLPotential
pdb = app.PDBFile({pdb!r})
system = MLPotential('so3krates', modelPath={model!r}).createSystem(pdb.topology)
context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName('Reference'))
context.setPositions(pdb.positions)
print(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
"""


def test_works_when_openmm_is_imported_before_torch(model_file32):
    from so3krates.md import ALANINE_DIPEPTIDE_PDB

    script = IMPORT_ORDER_SCRIPT.format(pdb=str(ALANINE_DIPEPTIDE_PDB), model=str(model_file32))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.isfinite(float(result.stdout.strip().splitlines()[-1]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_cuda_platform_matches_cpu(alanine, model_file32, cuda_graphs):
    _, pos, topology = alanine
    potential = MLPotential("so3krates", modelPath=str(model_file32))
    cpu_energy, cpu_forces = openmm_energy_forces(potential.createSystem(topology), pos / 10.0, "CPU")
    cuda_system = potential.createSystem(topology, cudaGraphs=cuda_graphs)
    energy, forces = openmm_energy_forces(cuda_system, pos / 10.0, "CUDA")
    assert energy == pytest.approx(cpu_energy, rel=1e-4)
    np.testing.assert_allclose(forces, cpu_forces, rtol=1e-3, atol=1e-3 * np.abs(cpu_forces).max())


@pytest.mark.parametrize("setting,expected_profiling", [(None, False), ("1", True)])
def test_create_system_switches_torchscript_profiling_off_unless_asked(model_file32, setting, expected_profiling):
    """The profiling executor doubles the model's memory; SO3KRATES_JIT_PROFILING=1 keeps it."""
    from so3krates.md import ALANINE_DIPEPTIDE_PDB

    script = (f"import torch, openmm.app as app\nfrom openmmml import MLPotential\n"
              f"assert torch._C._jit_set_profiling_mode(True)\n"
              f"MLPotential('so3krates', modelPath={str(model_file32)!r}).createSystem("
              f"app.PDBFile({str(ALANINE_DIPEPTIDE_PDB)!r}).topology)\n"
              f"print(torch._C._jit_set_profiling_mode(True))")
    env = {k: v for k, v in os.environ.items() if k != "SO3KRATES_JIT_PROFILING"}
    if setting is not None:
        env["SO3KRATES_JIT_PROFILING"] = setting
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(expected_profiling)


def test_cuda_graphs_option_keeps_energies_and_forces(solvated, model_file64):
    """cudaGraphs=True switches to the fixed-size pair list; the numbers must not change (checked on
    the CPU platform, which ignores the graph property itself). Mixed system, periodic box."""
    topology, positions, mm_system = solvated
    ml_atoms = [a.index for a in topology.atoms() if a.residue.name != "HOH"]
    potential = MLPotential("so3krates", modelPath=str(model_file64))
    results = [openmm_energy_forces(potential.createMixedSystem(topology, mm_system, ml_atoms, precision="double",
                                                                cudaGraphs=graphs), positions, "Reference")
               for graphs in (False, True)]
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-9)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-7, atol=1e-7 * np.abs(results[0][1]).max())


def test_cuda_graphs_refuses_large_ml_regions_and_small_boxes(solvated, model_file64):
    topology, _, _ = solvated
    potential = MLPotential("so3krates", modelPath=str(model_file64))
    with pytest.raises(ValueError, match=r"fixed size.*up to 512 ML atoms.*has \d+"):
        potential.createSystem(topology, cudaGraphs=True)
    small = app.Topology()
    chain = small.addChain()
    for element in (app.element.oxygen, app.element.hydrogen, app.element.hydrogen):
        small.addAtom(element.symbol, element, small.addResidue("HOH", chain))
    small.setPeriodicBoxVectors(np.eye(3) * 0.7 * unit.nanometer)  # the test models cut off at 4 Å
    with pytest.raises(ValueError, match="too small for a fixed-size.*twice the model's cutoff"):
        potential.createSystem(small, cudaGraphs=True)
