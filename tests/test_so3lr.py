"""SO3LR, the pretrained force field shipped with the package: the reference outputs of the original
code, OpenMM against PyTorch, physics (finite differences, invariance, periodic images, NVE) and
every bad input with its named error."""
import pickle

import ase.io
import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import pytest
import torch
from ase import Atoms
from openmmml import MLPotential

from so3krates import UnsupportedElementError
from so3krates.ase import SO3kratesCalculator
from so3krates.model_file import load_model, save_model
from so3krates.openmm.torchforce import KJ_PER_MOL_PER_EV
from so3krates.so3lr import SO3LRImportError, import_so3lr

from conftest import TEST_DATA, random_rotation
from test_openmm import openmm_energy_forces

REFERENCE = TEST_DATA / "so3lr"  # the so3lr repository's weights and reference outputs (tests/data/README.md)
KJ_NM = unit.kilojoule_per_mole / unit.nanometer


@pytest.fixture(scope="module")
def so3lr64():
    """The shipped SO3LR in float64 (its file stores the float32 weights exactly)."""
    return load_model("so3lr")[0].to(torch.float64)


def energy_forces(potential, numbers, positions, cell=None, charge=0.0, unpaired=0.0):
    """(energy eV, forces (N, 3) eV/Å) in float64."""
    pos = torch.tensor(np.asarray(positions), dtype=torch.float64, requires_grad=True)
    box = None if cell is None else torch.tensor(np.asarray(cell), dtype=torch.float64)
    energy = potential(torch.tensor(np.asarray(numbers)), pos, box, float(charge), float(unpaired))
    return energy.item(), -torch.autograd.grad(energy, pos)[0].numpy()


def water_box(edge_nm: float):
    """(topology, positions nm) of a box of TIP3P-placed water (OpenMM's Modeller)."""
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), boxSize=openmm.Vec3(edge_nm, edge_nm, edge_nm) *
                        unit.nanometer, model="tip3p")
    return modeller.topology, np.array(modeller.getPositions().value_in_unit(unit.nanometer))


# ---- the reference outputs of the original code (so3lr tests/test_data, float64 JAX-MD) ----

@pytest.mark.parametrize("name", ["atat", "dha", "bb"])
def test_reference_molecules_in_float64(so3lr64, name):
    """Within the tolerances of shared/design/so3lr.md §5 (the reference files are themselves
    ~6e-7 eV off the original code run today)."""
    atoms = ase.io.read(REFERENCE / f"{name}.xyz")
    reference = np.load(REFERENCE / f"{name}_jaxmd.npz")
    energy, forces = energy_forces(so3lr64, atoms.numbers, atoms.positions)
    assert energy == pytest.approx(float(reference["energy"]), abs=2e-6)
    np.testing.assert_allclose(forces, reference["forces"], rtol=0, atol=1e-5)


def test_periodic_water_box_in_float64(so3lr64):
    """64 waters repeated 2x2x2 (1536 atoms) in a 24.8 Å cube, minimum image, 12 Å long-range cutoff."""
    atoms = ase.io.read(REFERENCE / "water_64.xyz")
    atoms.wrap()
    atoms = atoms.repeat([2, 2, 2])
    reference = np.load(REFERENCE / "water_jaxmd.npz")
    energy, forces = energy_forces(so3lr64, atoms.numbers, atoms.positions, np.diag([24.8] * 3))
    assert energy == pytest.approx(float(reference["energy"]), abs=2e-4)  # 7e-8 of 2681 eV
    np.testing.assert_allclose(forces, reference["forces"], rtol=0, atol=1e-5)


def test_default_single_precision_matches_the_float32_reference():
    """The ASE calculator runs SO3LR in single precision by default, as the reference ASE calculator."""
    atoms = ase.io.read(REFERENCE / "dha.xyz")
    reference = np.load(REFERENCE / "dha_ase.npz")
    atoms.calc = SO3kratesCalculator("so3lr")
    assert atoms.calc.dtype == torch.float32
    assert atoms.get_potential_energy() == pytest.approx(float(reference["energy"]), abs=1e-4 * len(atoms) / 100)
    np.testing.assert_allclose(atoms.get_forces(), reference["forces"], rtol=0, atol=2e-4)


@pytest.mark.parametrize("name,expected", [("atat", -112.912622), ("dha", -95.647775), ("bb", -256.953862)])
def test_without_long_range_cutoff_matches_the_original_code(name, expected):
    """lr_cutoff=None: plain erf-damped Coulomb over all pairs and unswitched dispersion (values of the
    original code, shared/design/so3lr.md §5, given to 1e-6 eV)."""
    potential = load_model("so3lr")[0].to(torch.float64)
    potential.set_lr_cutoff(None)
    atoms = ase.io.read(REFERENCE / f"{name}.xyz")
    energy, _ = energy_forces(potential, atoms.numbers, atoms.positions)
    assert energy == pytest.approx(expected, abs=2e-6)


# ---- the converter and the shipped file ----

def test_shipped_model_is_the_conversion_of_the_reference_parameters(tmp_path):
    """Every learned weight bit for bit. Buffers are constants the code derives, some by a LAPACK fit
    (the spherical-harmonic coefficients) whose last bits differ between machines, so they match to
    rounding and the whole-file digest is not compared across machines."""
    converted_path = tmp_path / "so3lr.pt"
    save_model(import_so3lr(REFERENCE / "params.pkl"), converted_path)
    converted, shipped = load_model(converted_path)[0], load_model("so3lr")[0]
    weights = dict(converted.named_parameters())
    assert weights.keys() == dict(shipped.named_parameters()).keys()
    for name, tensor in shipped.named_parameters():
        assert tensor.dtype == weights[name].dtype and torch.equal(tensor, weights[name]), name
    buffers = dict(converted.named_buffers())
    assert buffers.keys() == dict(shipped.named_buffers()).keys()
    for name, tensor in shipped.named_buffers():
        torch.testing.assert_close(tensor, buffers[name], rtol=0, atol=1e-12, equal_nan=True, msg=name)


def test_converter_names_a_missing_or_misshapen_array_and_other_hyperparameters(tmp_path):
    with open(REFERENCE / "params.pkl", "rb") as handle:
        tree = pickle.load(handle)
    del tree["params"]["observables_2"]["Embed_1"]
    broken = tmp_path / "missing.pkl"
    broken.write_bytes(pickle.dumps(tree))
    with pytest.raises(SO3LRImportError, match=r"missing.pkl: no array 'observables_2/Embed_1/embedding'"):
        import_so3lr(broken)
    tree["params"]["observables_2"]["Embed_1"] = {"embedding": np.zeros((100, 32), dtype=np.float32)}
    broken.write_bytes(pickle.dumps(tree))
    with pytest.raises(SO3LRImportError, match=r"observables_2/Embed_1/embedding has shape \(100, 32\), SO3LR's is "
                                               r"\(100, 64\)"):
        import_so3lr(broken)
    other = tmp_path / "other"
    other.mkdir()
    (other / "params.pkl").write_bytes((REFERENCE / "params.pkl").read_bytes())
    (other / "hyperparameters.json").write_text('{"model": {"num_layers": 2}}')
    with pytest.raises(SO3LRImportError, match="num_layers=2, but SO3LR's architecture has 3"):
        import_so3lr(other / "params.pkl")
    (tmp_path / "garbage.pkl").write_bytes(b"not a pickle")
    with pytest.raises(SO3LRImportError, match="not a readable pickle"):
        import_so3lr(tmp_path / "garbage.pkl")


# ---- physics ----

def test_forces_of_a_charged_molecule_equal_finite_differences(so3lr64):
    """A protonated amine from SPICE (+1 e): the charge enters the embedding and, through charge
    conservation, every partial charge, so its forces exercise all of the model."""
    import h5py

    with h5py.File(TEST_DATA / "spice114_n2_modelforge.hdf5") as data:
        group = data["103147721"]
        numbers = group["atomic_numbers"][()].astype(int)
        positions = group["conformations"][0].astype(np.float64) * 0.529177210903  # bohr -> Å
    energy, forces = energy_forces(so3lr64, numbers, positions, charge=1.0)
    neutral, _ = energy_forces(so3lr64, numbers, positions, charge=0.0)
    assert abs(energy - neutral) > 0.1  # the charge matters
    h = 1e-4
    for atom, axis in ((0, 0), (8, 1), (20, 2), (26, 0)):
        shifted = []
        for sign in (1, -1):
            moved = positions.copy()
            moved[atom, axis] += sign * h
            shifted.append(energy_forces(so3lr64, numbers, moved, charge=1.0)[0])
        assert forces[atom, axis] == pytest.approx(-(shifted[0] - shifted[1]) / (2 * h), rel=1e-6, abs=1e-7)


def test_rotation_and_translation(so3lr64):
    atoms = ase.io.read(REFERENCE / "bb.xyz")
    energy, forces = energy_forces(so3lr64, atoms.numbers, atoms.positions)
    rotation = random_rotation(5).numpy()
    moved = atoms.positions @ rotation.T + np.array([3.0, -7.5, 11.0])
    energy_moved, forces_moved = energy_forces(so3lr64, atoms.numbers, moved)
    assert energy_moved == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(forces_moved, forces @ rotation.T, rtol=0, atol=1e-9)


def test_small_periodic_box_counts_every_image(so3lr64):
    """A box narrower than the 12 Å long-range cutoff (atoms meet many images of each other and of
    themselves) has exactly 1/27 of the energy of its 3x3x3 supercell, where minimum image holds."""
    topology, positions_nm = water_box(0.9)
    numbers = [a.element.atomic_number for a in topology.atoms()]
    box = np.diag([9.0, 9.0, 9.0])
    positions = positions_nm * 10.0
    energy, forces = energy_forces(so3lr64, numbers, positions, box)
    copies = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(3)]) @ box
    super_positions = np.concatenate([positions + shift for shift in copies])
    super_energy, super_forces = energy_forces(so3lr64, numbers * 27, super_positions, 3 * box)
    assert super_energy / 27 == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(super_forces[:len(numbers)], forces, rtol=0, atol=1e-8)


# ---- OpenMM ----

@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_openmm_matches_pytorch(alanine, so3lr64, platform):
    z, pos, topology = alanine
    system = MLPotential("so3lr").createSystem(topology, precision="double")
    energy, forces = openmm_energy_forces(system, pos / 10.0, platform)
    ref_energy, ref_forces = energy_forces(so3lr64, z, pos)
    assert energy == pytest.approx(ref_energy * KJ_PER_MOL_PER_EV, rel=1e-9)
    np.testing.assert_allclose(forces, ref_forces * KJ_PER_MOL_PER_EV * 10.0, rtol=1e-7, atol=1e-6)


def test_openmm_periodic_box_narrower_than_twice_the_long_range_cutoff(so3lr64):
    """A 1.5 nm water box (the 1.2 nm cutoff reaches past half the box: all images count)."""
    topology, positions_nm = water_box(1.5)
    numbers = [a.element.atomic_number for a in topology.atoms()]
    system = MLPotential("so3lr").createSystem(topology, precision="double")
    energy, forces = openmm_energy_forces(system, positions_nm, "Reference")
    ref_energy, ref_forces = energy_forces(so3lr64, numbers, positions_nm * 10.0, np.eye(3) * 15.0)
    assert energy == pytest.approx(ref_energy * KJ_PER_MOL_PER_EV, rel=1e-9)
    np.testing.assert_allclose(forces, ref_forces * KJ_PER_MOL_PER_EV * 10.0, rtol=1e-7, atol=1e-5)


def test_lr_cutoff_option(alanine, so3lr64):
    z, pos, topology = alanine
    potential = MLPotential("so3lr")
    energies = {}
    for label, value in (("default", None), ("none", "none"), ("1.0 nm", 1.0), ("10 Å", 10.0 * unit.angstrom)):
        options = {} if value is None else {"lrCutoff": None if value == "none" else value}
        energies[label] = openmm_energy_forces(potential.createSystem(topology, precision="double", **options),
                                               pos / 10.0, "Reference")[0]
    reference = load_model("so3lr")[0].to(torch.float64)
    for label, cutoff in (("default", 12.0), ("none", None), ("1.0 nm", 10.0), ("10 Å", 10.0)):
        reference.set_lr_cutoff(cutoff)
        assert energies[label] == pytest.approx(energy_forces(reference, z, pos)[0] * KJ_PER_MOL_PER_EV, rel=1e-9)
    assert abs(energies["none"] - energies["default"]) > 1.0  # the electrostatic shift changes energies


def test_ml_long_range_and_registration(model_file64):
    assert MLPotential("so3lr")._impl.getMLLongRange() is False
    with pytest.raises(ValueError, match=r"MLPotential\('so3krates', modelPath=...\)"):
        MLPotential("so3lr", modelPath=str(model_file64))


def solvate(alanine, padding_nm: float):
    """(topology, positions, Amber14/TIP3P MM system) of alanine dipeptide in water."""
    _, pos, topology = alanine
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(topology, pos / 10.0 * unit.nanometer)
    modeller.addSolvent(forcefield, padding=padding_nm * unit.nanometer, model="tip3p")
    mm_system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                        nonbondedCutoff=0.9 * unit.nanometer, constraints=app.HBonds)
    return modeller.topology, modeller.getPositions(), mm_system


@pytest.fixture(scope="module")
def solvated_alanine(alanine):
    return solvate(alanine, 1.0)


def with_ml_charges_shifted(mm_system, ml_atoms, extra_e):
    """A copy of the MM system whose ML atoms carry `extra_e` more charge in total."""
    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(mm_system))
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    q, sigma, epsilon = nonbonded.getParticleParameters(ml_atoms[0])
    nonbonded.setParticleParameters(ml_atoms[0], q + extra_e * unit.elementary_charge, sigma, epsilon)
    return system


def test_mixed_system_takes_the_charge_from_the_mm_force_field(alanine, solvated_alanine):
    topology, positions, mm_system = solvated_alanine
    ml_atoms = list(range(22))
    potential = MLPotential("so3lr")

    def ml_energy(system):
        return openmm_energy_forces(system, positions, "Reference", group=1)[0]

    neutral = ml_energy(potential.createMixedSystem(topology, mm_system, ml_atoms, forceGroup=1, precision="double"))
    isolated = openmm_energy_forces(potential.createSystem(alanine[2], precision="double"),
                                    [positions[i] for i in ml_atoms], "Reference")[0]
    assert neutral == pytest.approx(isolated, rel=1e-9)
    # MM charges summing to +2 (even: a possible singlet) give the model a charge of +2
    doubly = with_ml_charges_shifted(mm_system, ml_atoms, 2.0)
    charged = ml_energy(potential.createMixedSystem(topology, doubly, ml_atoms, forceGroup=1, precision="double"))
    explicit = openmm_energy_forces(potential.createSystem(alanine[2], precision="double", charge=2),
                                    [positions[i] for i in ml_atoms], "Reference")[0]
    assert charged == pytest.approx(explicit, rel=1e-9) and abs(charged - neutral) > 1.0
    with pytest.raises(ValueError, match=r"sum to \+0.370 e, not a whole number.*charge="):
        potential.createMixedSystem(topology, with_ml_charges_shifted(mm_system, ml_atoms, 0.37), ml_atoms)
    with pytest.raises(ValueError, match=r"charge=2 disagrees with the MM force field.*\+0.000 e"):
        potential.createMixedSystem(topology, mm_system, ml_atoms, charge=2)
    with pytest.raises(ValueError, match=r"\+1 e \(the MM force field's charges\) leaves 77 electrons"):
        potential.createMixedSystem(topology, with_ml_charges_shifted(mm_system, ml_atoms, 1.0), ml_atoms)


def test_cuda_graph_pair_lists_keep_energies_and_forces(alanine, solvated_alanine):
    """cudaGraphs=True switches both pair lists to their fixed-size form (checked on the Reference
    platform, which ignores the graph property itself); a box 2.6 nm wide allows minimum image at
    1.2 nm, the 2.0 nm box of 1 nm padding does not (a named error)."""
    potential = MLPotential("so3lr")
    topology, _, mm_system = solvated_alanine
    with pytest.raises(ValueError, match="twice the long-range cutoff"):
        potential.createMixedSystem(topology, mm_system, list(range(22)), cudaGraphs=True)
    topology, positions, mm_system = solvate(alanine, 1.3)
    results = [openmm_energy_forces(potential.createMixedSystem(topology, mm_system, list(range(22)), precision="double",
                                                                cudaGraphs=graphs), positions, "Reference")
               for graphs in (False, True)]
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-10)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-7, atol=1e-6)
    topology_small, _ = water_box(1.5)
    with pytest.raises(ValueError, match="twice the long-range cutoff"):
        potential.createSystem(topology_small, cudaGraphs=True)


def test_nve_energy_is_conserved(alanine):
    """Velocity Verlet, 0.5 fs, 400 steps (0.2 ps) after 0.2 ps of Langevin at 300 K: the total energy
    neither drifts nor fluctuates by more than a small fraction of kT per atom (benchmarks/stability.py
    reports longer runs)."""
    _, pos, topology = alanine
    system = MLPotential("so3lr").createSystem(topology, precision="double")
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 5 / unit.picosecond, 0.5 * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(pos / 10.0)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    integrator.step(400)
    state = context.getState(getPositions=True, getVelocities=True)
    verlet = openmm.VerletIntegrator(0.5 * unit.femtosecond)
    context = openmm.Context(system, verlet, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(state.getPositions())
    context.setVelocities(state.getVelocities())
    totals = []
    for _ in range(40):
        verlet.step(10)
        s = context.getState(getEnergy=True)
        totals.append((s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
    totals = np.array(totals)
    per_atom_kT = 2.494 * 22  # kJ/mol
    drift = np.polyfit(np.arange(len(totals)) * 5e-3, totals, 1)[0]  # kJ/mol per ps
    assert np.ptp(totals) < 0.01 * per_atom_kT, f"total energy fluctuates by {np.ptp(totals):.3f} kJ/mol"
    assert abs(drift) * 0.2 < 0.005 * per_atom_kT, f"drift {drift:.3f} kJ/mol/ps"


# ---- bad input ----

def single_atom_topology(elements):
    topology = app.Topology()
    residue = topology.addResidue("LIG", topology.addChain())
    for k, element in enumerate(elements):
        topology.addAtom(f"{element.symbol}{k}", element, residue)
    return topology


def test_bad_inputs_are_named(alanine):
    _, _, topology = alanine
    potential = MLPotential("so3lr")
    bromine = single_atom_topology([app.element.carbon, app.element.bromine, app.element.hydrogen])
    with pytest.raises(UnsupportedElementError, match=r"atom 1 \(Br1 of LIG\d*\) is Br.*supported elements: "
                                                      r"H, C, N, O, F, P, S, Cl"):
        potential.createSystem(bromine)
    with pytest.raises(ValueError, match="charge=0.5 is not a whole number"):
        potential.createSystem(topology, charge=0.5)
    with pytest.raises(ValueError, match=r"\+1 e \(charge=\) leaves 77 electrons, which cannot have multiplicity 1"):
        potential.createSystem(topology, charge=1)
    with pytest.raises(ValueError, match="leaves 78 electrons, which cannot have multiplicity 2"):
        potential.createSystem(topology, multiplicity=2)
    with pytest.raises(ValueError, match=r"multiplicity=0 must be a whole number >= 1"):
        potential.createSystem(topology, multiplicity=0)
    water, _ = water_box(1.5)
    with pytest.raises(ValueError, match="lrCutoff=None .* vacuum only"):
        potential.createSystem(water, lrCutoff=None)
    with pytest.raises(ValueError, match=r"lrCutoff=12 is in nm .* pass 1.2 or 12\*unit.angstrom"):
        potential.createSystem(topology, lrCutoff=12)
    with pytest.raises(ValueError, match="radical|multiplicity"):
        Atoms("CH3", positions=[[0, 0, 0], [1.09, 0, 0], [-0.5, 0.9, 0], [-0.5, -0.9, 0]],
              calculator=SO3kratesCalculator("so3lr")).get_potential_energy()


def test_multiplicity_enters_the_model(so3lr64):
    """The methyl radical as a doublet (the only multiplicity its 9 electrons allow with charge 0 besides
    quartets) runs; its triplet cation as well; the spin changes the energy."""
    positions = [[0, 0, 0], [1.09, 0, 0], [-0.545, 0.944, 0], [-0.545, -0.944, 0]]
    doublet = Atoms("CH3", positions=positions, calculator=SO3kratesCalculator("so3lr", precision="double",
                                                                              multiplicity=2))
    quartet = Atoms("CH3", positions=positions, calculator=SO3kratesCalculator("so3lr", precision="double",
                                                                              multiplicity=4))
    assert abs(doublet.get_potential_energy() - quartet.get_potential_energy()) > 1e-3
    expected = energy_forces(so3lr64, [6, 1, 1, 1], positions, unpaired=1.0)[0]
    assert doublet.get_potential_energy() == pytest.approx(expected, rel=1e-12)
