"""Electrostatic embedding: the ML region's predicted charges act on the MM charges through the model's
own Coulomb kernel, inside the TorchForce; the MM force field no longer computes the ML–MM Coulomb."""
import copy
import itertools
import math
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import pytest
import torch
from openmmml import MLPotential

from so3krates.model.embedding import ElectrostaticEmbedding
from so3krates.model.physics import COULOMB_EV_ANGSTROM
from so3krates.model_file import create_potential, save_model
from so3krates.openmm.embedding import EmbeddingError
from so3krates.openmm.torchforce import KJ_PER_MOL_PER_EV

from conftest import randomize_shifts, small_config
from test_openmm import openmm_energy_forces

ASP_PRO = Path(__file__).parent / "data" / "asp-pro.pdb"  # zwitterion, total charge -1 e
LR_CUTOFF = 9.0  # Å: the test model's long-range cutoff, hence the embedding's
DAMPING = 4.0  # Å, SO3LR's


def phi(r: float, cutoff, sigma: float) -> float:
    """SO3LR's Coulomb kernel written out (shared/design/so3lr.md §4.5), independent of the package's code;
    sigma = 0: the same shifted-force form of point charges."""
    v = math.erf(r / sigma) / r if sigma else 1 / r
    if cutoff is None:
        return v
    if r >= cutoff:
        return 0.0
    if sigma:
        v_c = math.erf(cutoff / sigma) / cutoff
        dv_c = (2 * cutoff * math.exp(-(cutoff / sigma) ** 2) / (math.sqrt(math.pi) * sigma)
                - math.erf(cutoff / sigma)) / cutoff ** 2
    else:
        v_c, dv_c = 1 / cutoff, -1 / cutoff ** 2
    on = 0.45 * cutoff
    c = (r - on) / (cutoff - on)
    step = (lambda x: math.exp(-1 / x) if x > 0 else 0.0)
    switch = 1.0 if r <= on else step(1 - c) / (step(1 - c) + step(c))
    return v - v_c - (1 - switch) * dv_c * (r - cutoff)


def direct_double_sum(ml_pos, ml_q, mm_pos, mm_q, box, cutoff, sigma: float = 0.0) -> float:
    """Σ_i Σ_J k_e q_i Q_J φ(r_iJ) over every periodic image within the cutoff (eV)."""
    images = [np.zeros(3)] if box is None else [np.array(n) @ box for n in itertools.product(range(-3, 4), repeat=3)]
    total = 0.0
    for i in range(len(ml_pos)):
        for j in range(len(mm_pos)):
            for shift in images:
                r = float(np.linalg.norm(mm_pos[j] + shift - ml_pos[i]))
                if cutoff is None or r < cutoff:
                    total += COULOMB_EV_ANGSTROM * ml_q[i] * mm_q[j] * phi(r, cutoff, sigma)
    return total


@pytest.mark.parametrize("sigma", [0.0, DAMPING], ids=["point", "damped"])
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "torch"])
@pytest.mark.parametrize("box_width", [None, 30.0, 10.0], ids=["vacuum", "box>2cutoff", "box<cutoff"])
def test_embedding_term_equals_direct_double_sum(compiled, box_width, sigma):
    rng = np.random.default_rng(0)
    cutoff = 12.0
    ml_pos = rng.uniform(2, 8, size=(6, 3))
    mm_pos = rng.uniform(-6, 16, size=(60, 3))  # outside the box too (unwrapped)
    ml_q, mm_q = rng.normal(0, 0.4, 6), rng.normal(0, 0.6, 60)
    box = None if box_width is None else np.diag([box_width, box_width * 1.1, box_width * 0.9])
    if box is not None:
        box[2, 0], box[1, 0] = 0.2 * box_width, -0.1 * box_width  # triclinic, reduced form
    embedding = ElectrostaticEmbedding(sigma, cutoff, compiled=compiled)
    t = (lambda a: torch.tensor(a, dtype=torch.float64))
    energy = embedding(t(ml_pos), t(ml_q), t(mm_pos), t(mm_q), None if box is None else t(box))
    expected = direct_double_sum(ml_pos, ml_q, mm_pos, mm_q, box, cutoff, sigma)
    assert energy.item() == pytest.approx(expected, rel=1e-10)
    if box is None:  # lrCutoff=None: the unshifted kernel over all pairs
        plain = ElectrostaticEmbedding(sigma, None, compiled=compiled)(t(ml_pos), t(ml_q), t(mm_pos), t(mm_q))
        assert plain.item() == pytest.approx(direct_double_sum(ml_pos, ml_q, mm_pos, mm_q, None, None, sigma),
                                             rel=1e-10)


@pytest.mark.parametrize("sigma", [0.0, DAMPING], ids=["point", "damped"])
def test_embedding_kernel_is_smooth_at_the_cutoff(sigma):
    """Energy and force go to zero at r_c, so nothing jumps when an MM charge crosses it."""
    embedding = ElectrostaticEmbedding(sigma, 12.0)
    one = torch.ones(1, dtype=torch.float64)
    for r in (11.999, 12.001):
        pos = torch.tensor([[r, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
        energy = embedding(torch.zeros(1, 3, dtype=torch.float64), one, pos, one)
        (force,) = torch.autograd.grad(energy, pos)
        assert abs(energy.item()) < 1e-8 and force.abs().max().item() < 1e-4


# ---- the mixed System ----

@pytest.fixture(scope="module")
def charged_model(tmp_path_factory):
    """A float64 test model with a partial-charge head and a total-charge input (SO3LR's options)."""
    config = small_config(electrostatic_energy=True, use_charge_embed=True, lr_cutoff=LR_CUTOFF)
    potential = create_potential(config, torch.float64, seed=4, energy_scale_eV=0.1)
    randomize_shifts(potential)
    path = tmp_path_factory.mktemp("models") / "charged64.pt"
    save_model(potential, path)
    return potential.eval(), path


@pytest.fixture(scope="module")
def asp_pro_in_water():
    """Asp-Pro zwitterion (−1 e) in TIP3P, PME: (topology, positions nm (N, 3), MM system, ML atoms)."""
    pdb = app.PDBFile(str(ASP_PRO))
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(forcefield, padding=1.0 * unit.nanometer, model="tip3p")
    mm_system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                        nonbondedCutoff=0.9 * unit.nanometer, constraints=None, rigidWater=False)
    positions = np.array(modeller.getPositions().value_in_unit(unit.nanometer))
    return modeller.topology, positions, mm_system, list(range(pdb.topology.getNumAtoms()))


def mixed(path, topology, mm_system, ml_atoms, **options):
    return MLPotential("so3krates", modelPath=str(path)).createMixedSystem(
        topology, mm_system, ml_atoms, forceGroup=1, precision="double", embedding="electrostatic", **options)


def model_charges(potential, topology, positions_nm, ml_atoms, total_charge):
    z = torch.tensor([a.element.atomic_number for a in topology.atoms()])[ml_atoms]
    pos = torch.tensor(positions_nm[ml_atoms] * 10.0, dtype=torch.float64)
    energy, charges = potential.energy_and_charges(z, pos, None, total_charge)
    return energy.item(), charges.detach().numpy()


def test_ml_charges_are_handed_over_and_lennard_jones_kept(charged_model, asp_pro_in_water):
    topology, _, mm_system, ml_atoms = asp_pro_in_water
    system = mixed(charged_model[1], topology, mm_system, ml_atoms)
    before = next(f for f in mm_system.getForces() if isinstance(f, openmm.NonbondedForce))
    after = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    for i in range(system.getNumParticles()):
        q0, sigma0, epsilon0 = before.getParticleParameters(i)
        q1, sigma1, epsilon1 = after.getParticleParameters(i)
        assert (sigma1, epsilon1) == (sigma0, epsilon0)
        assert q1 == (0.0 * unit.elementary_charge if i in ml_atoms else q0)
    assert any(before.getParticleParameters(i)[0]._value != 0 for i in ml_atoms)


@pytest.mark.parametrize("sigma", [0.0, DAMPING], ids=["point", "damped"])
def test_total_energy_is_mm_part_plus_model_plus_embedding(charged_model, asp_pro_in_water, sigma):
    """Against a System built by hand: the MM force field without the ML atoms' internal terms and
    charges, plus the model's energy and the direct double sum with the model's charges (point charges
    by default, SO3LR's damped kernel with embeddingDamping). Nothing is counted twice, nothing dropped."""
    potential, path = charged_model
    topology, positions, mm_system, ml_atoms = asp_pro_in_water
    system = mixed(path, topology, mm_system, ml_atoms, **({"embeddingDamping": sigma * unit.angstrom} if sigma else {}))
    total, _ = openmm_energy_forces(system, positions, "Reference")

    by_hand = copy.deepcopy(mm_system)
    ml = set(ml_atoms)
    for force in by_hand.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for k in range(force.getNumBonds()):
                p1, p2, length, _ = force.getBondParameters(k)
                if {p1, p2} <= ml:
                    force.setBondParameters(k, p1, p2, length, 0.0)
        elif isinstance(force, openmm.HarmonicAngleForce):
            for k in range(force.getNumAngles()):
                p1, p2, p3, angle, _ = force.getAngleParameters(k)
                if {p1, p2, p3} <= ml:
                    force.setAngleParameters(k, p1, p2, p3, angle, 0.0)
        elif isinstance(force, openmm.PeriodicTorsionForce):
            for k in range(force.getNumTorsions()):
                *atoms, periodicity, phase, _ = force.getTorsionParameters(k)
                if set(atoms) <= ml:
                    force.setTorsionParameters(k, *atoms, periodicity, phase, 0.0)
        elif isinstance(force, openmm.NonbondedForce):
            for i in ml_atoms:
                _, lj_sigma, epsilon = force.getParticleParameters(i)
                force.setParticleParameters(i, 0.0, lj_sigma, epsilon)
            existing = {tuple(sorted(force.getExceptionParameters(k)[:2])): k for k in range(force.getNumExceptions())}
            for i in ml_atoms:
                for j in ml_atoms:
                    if i < j:
                        if (i, j) in existing:
                            force.setExceptionParameters(existing[(i, j)], i, j, 0.0, 1.0, 0.0)
                        else:
                            force.addException(i, j, 0.0, 1.0, 0.0)
        else:
            assert isinstance(force, openmm.CMMotionRemover), type(force).__name__
    mm_part, _ = openmm_energy_forces(by_hand, positions, "Reference")
    model_energy, q = model_charges(potential, topology, positions, ml_atoms, -1.0)
    assert q.sum() == pytest.approx(-1.0, abs=1e-10)
    nonbonded = next(f for f in mm_system.getForces() if isinstance(f, openmm.NonbondedForce))
    mm_atoms = [i for i in range(mm_system.getNumParticles()) if i not in ml]
    mm_q = np.array([nonbonded.getParticleParameters(i)[0]._value for i in mm_atoms])
    box = np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.angstrom))
    embed = direct_double_sum(positions[ml_atoms] * 10, q, positions[mm_atoms] * 10, mm_q, box, LR_CUTOFF, sigma)
    assert abs(embed) > 0.01, "the embedding term must matter in this test"
    expected = mm_part + (model_energy + embed) * KJ_PER_MOL_PER_EV
    assert total == pytest.approx(expected, rel=1e-8, abs=1e-6)


def test_forces_on_ml_and_mm_atoms_are_minus_the_numerical_gradient(charged_model, asp_pro_in_water):
    """float64, charged ML region: ML atoms (forces through dq/dR too) and the MM atoms nearest to the ML
    region and near the cutoff, from the TorchForce's energy alone (force group 1)."""
    topology, positions, mm_system, ml_atoms = asp_pro_in_water
    system = mixed(charged_model[1], topology, mm_system, ml_atoms)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))

    def group_energy(pos):
        context.setPositions(pos)
        return context.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    context.setPositions(positions)
    forces = context.getState(getForces=True, groups={1}).getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer)
    mm_atoms = np.array([i for i in range(len(positions)) if i not in set(ml_atoms)])
    distance = np.min(np.linalg.norm(positions[mm_atoms][:, None] - positions[ml_atoms][None], axis=-1), axis=1) * 10
    nearest = mm_atoms[np.argsort(distance)[:3]]
    near_cutoff = mm_atoms[np.argmin(np.abs(distance - (LR_CUTOFF - 0.3)))]
    assert np.abs(forces[nearest]).max() > 1.0, "MM atoms next to the ML region must feel the embedding"
    h = 1e-6  # nm: central differences of this random model's steep energy need a small step
    for atom in [0, 5, 17, *nearest, near_cutoff]:
        for axis in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[atom, axis] += h
            minus[atom, axis] -= h
            numerical = -(group_energy(plus) - group_energy(minus)) / (2 * h)
            assert forces[atom, axis] == pytest.approx(numerical, rel=1e-5, abs=1e-4)


def test_charge_derivatives_contribute_to_forces(charged_model, asp_pro_in_water):
    """The forces on ML atoms include Σ_J k_e Q_J φ ∂q_i/∂R: with charges held fixed they differ."""
    potential = charged_model[0]
    topology, positions, mm_system, ml_atoms = asp_pro_in_water
    z = torch.tensor([a.element.atomic_number for a in topology.atoms()])[ml_atoms]
    nonbonded = next(f for f in mm_system.getForces() if isinstance(f, openmm.NonbondedForce))
    mm_atoms = [i for i in range(len(positions)) if i not in set(ml_atoms)]
    mm_q = torch.tensor([nonbonded.getParticleParameters(i)[0]._value for i in mm_atoms], dtype=torch.float64)
    mm_pos = torch.tensor(positions[mm_atoms] * 10, dtype=torch.float64)
    cell = torch.tensor(np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.angstrom)))
    embedding = ElectrostaticEmbedding(0.0, LR_CUTOFF)
    gradients = []
    for frozen in (False, True):
        pos = torch.tensor(positions[ml_atoms] * 10, dtype=torch.float64, requires_grad=True)
        q = potential.energy_and_charges(z, pos, cell, -1.0)[1]
        energy = embedding(pos, q.detach() if frozen else q, mm_pos, mm_q, cell)
        gradients.append(torch.autograd.grad(energy, pos)[0])
    assert (gradients[0] - gradients[1]).abs().max() > 1e-3 * gradients[0].abs().max()


def test_serialized_mixed_system_gives_the_same_energy(charged_model, asp_pro_in_water):
    topology, positions, mm_system, ml_atoms = asp_pro_in_water
    system = mixed(charged_model[1], topology, mm_system, ml_atoms)
    copy_of = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    energy, forces = openmm_energy_forces(system, positions, "Reference", group=1)
    energy2, forces2 = openmm_energy_forces(copy_of, positions, "Reference", group=1)
    assert energy2 == energy
    np.testing.assert_array_equal(forces2, forces)


def test_mechanical_and_electrostatic_differ_only_in_ml_mm_coulomb(charged_model, asp_pro_in_water):
    """Mechanical embedding keeps today's behaviour (and is the default); the two Systems share
    everything but the ML–MM Coulomb, so their difference is MM-charge Coulomb minus model-charge Coulomb."""
    topology, positions, mm_system, ml_atoms = asp_pro_in_water
    potential = MLPotential("so3krates", modelPath=str(charged_model[1]))
    default = potential.createMixedSystem(topology, mm_system, ml_atoms, precision="double")
    named = potential.createMixedSystem(topology, mm_system, ml_atoms, precision="double", embedding="mechanical")
    assert openmm_energy_forces(default, positions, "Reference")[0] == openmm_energy_forces(named, positions,
                                                                                            "Reference")[0]
    nonbonded = next(f for f in default.getForces() if isinstance(f, openmm.NonbondedForce))
    assert nonbonded.getParticleParameters(ml_atoms[0])[0]._value != 0


# ---- what is refused, with the reason ----

def test_unknown_keywords_are_errors_naming_them(charged_model, asp_pro_in_water, alanine):
    topology, _, mm_system, ml_atoms = asp_pro_in_water
    potential = MLPotential("so3krates", modelPath=str(charged_model[1]))
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) fooBar; it accepts precision, .*embedding"):
        potential.createMixedSystem(topology, mm_system, ml_atoms, fooBar=1)
    with pytest.raises(TypeError, match="unknown keyword argument.*lrcutoff"):
        MLPotential("so3krates", modelPath=str(charged_model[1])).createSystem(alanine[2], charge=0, lrcutoff=1.0)
    with pytest.raises(TypeError, match="unknown keyword argument.*modelpath"):
        MLPotential("so3krates", modelpath="model.pt")
    with pytest.raises(TypeError, match="unknown keyword argument.*device"):
        MLPotential("so3lr", device="cpu")
    with pytest.raises(ValueError, match="embedding='electrostatics' is not one of mechanical, electrostatic"):
        potential.createMixedSystem(topology, mm_system, ml_atoms, embedding="electrostatics")


def test_electrostatic_embedding_refusals(charged_model, model_file64, asp_pro_in_water, alanine):
    topology, _, mm_system, ml_atoms = asp_pro_in_water
    with pytest.raises(EmbeddingError, match="needs a model that predicts partial charges.*no charge head"):
        mixed(model_file64, topology, mm_system, ml_atoms)
    with pytest.raises(ValueError, match=r"charge=1 disagrees with the MM force field.*-1.000 e"):
        mixed(charged_model[1], topology, mm_system, ml_atoms, charge=1)
    with pytest.raises(EmbeddingError, match=r"interpolate=True\) is not supported with embedding='electrostatic'"):
        mixed(charged_model[1], topology, mm_system, ml_atoms, interpolate=True)
    with pytest.raises(ValueError, match="option of createMixedSystem"):
        MLPotential("so3krates", modelPath=str(charged_model[1])).createSystem(alanine[2], charge=0,
                                                                              embedding="electrostatic")
    with pytest.raises(ValueError, match="embeddingDamping is an option of embedding='electrostatic'"):
        MLPotential("so3krates", modelPath=str(charged_model[1])).createMixedSystem(
            topology, mm_system, ml_atoms, embeddingDamping=0.4)
    with pytest.raises(ValueError, match=r"embeddingDamping=40 is in nm .*pass 4 or 40\*unit.angstrom"):
        mixed(charged_model[1], topology, mm_system, ml_atoms, embeddingDamping=40)
    with pytest.raises(ValueError, match="embeddingDamping=-0.1 must be a positive length"):
        mixed(charged_model[1], topology, mm_system, ml_atoms, embeddingDamping=-0.1)
    with pytest.raises(ValueError, match="cudaGraphs=True is not supported with embedding='electrostatic'"):
        mixed(charged_model[1], topology, mm_system, ml_atoms, cudaGraphs=True)
    with pytest.raises(EmbeddingError, match=r"cuts 1 covalent bond\(s\) \(C of ASP1 \(atom \d+\) - N of PRO2"):
        mixed(charged_model[1], topology, mm_system, [a.index for a in topology.atoms() if a.residue.index == 0])


def test_implicit_solvent_and_charged_custom_forces_are_refused(charged_model):
    pdb = app.PDBFile(str(ASP_PRO))
    ml_atoms = list(range(pdb.topology.getNumAtoms()))
    gbsa = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(pdb.topology)
    with pytest.raises(EmbeddingError, match=r"force \d+ \((CustomGBForce|GBSAOBCForce)\).*implicit solvent"):
        mixed(charged_model[1], pdb.topology, gbsa, ml_atoms)
    system = app.ForceField("amber14-all.xml").createSystem(pdb.topology)
    custom = openmm.CustomNonbondedForce("q1*q2/r")
    custom.addPerParticleParameter("q")
    for _ in range(system.getNumParticles()):
        custom.addParticle([0.1])
    system.addForce(custom)
    with pytest.raises(EmbeddingError, match=r"CustomNonbondedForce.*looks like electrostatics \(\['q'\]\)"):
        mixed(charged_model[1], pdb.topology, system, ml_atoms)


def test_interpolation_with_a_charged_model_needs_the_charge(charged_model, asp_pro_in_water):
    """openmm-ml's interpolate=True hides the MM system from the potential: the charge cannot be read
    from it and must be given (before, a charged ML region silently ran as neutral)."""
    topology, positions, mm_system, ml_atoms = asp_pro_in_water
    potential = MLPotential("so3krates", modelPath=str(charged_model[1]))
    with pytest.raises(ValueError, match="interpolate=True.*give the ML atoms' total charge"):
        potential.createMixedSystem(topology, mm_system, ml_atoms, interpolate=True)
    system = potential.createMixedSystem(topology, mm_system, ml_atoms, interpolate=True, charge=-1,
                                         precision="double")
    assert np.isfinite(openmm_energy_forces(system, positions, "Reference")[0])
