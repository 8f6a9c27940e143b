"""Molecular dynamics: NVE energy conservation (reported) and the `md` driver."""
import numpy as np
import openmm
import openmm.unit as unit
import torch
from openmmml import MLPotential

from so3krates.model_file import create_potential, save_model

from conftest import small_config


def test_nve_energy_drift_is_small(alanine, tmp_path, record_property):
    """Velocity Verlet at 0.5 fs for 0.5 ps of alanine dipeptide with a smooth random model.

    An untrained model has no bonds, so the molecule is held together by harmonic bonds and the
    random ML energy is scaled to forces of ~0.1 eV/Å; any force that is not minus the gradient of
    the energy, or a jump at the cutoff, shows up as drift. Prints the drift per atom per ps and
    asserts only a loose physical bound."""
    _, pos, topology = alanine
    potential = create_potential(small_config(), torch.float64, seed=0)
    potential.model.energy_scale.mul_(0.05)
    save_model(potential, tmp_path / "smooth.pt")
    system = MLPotential("so3krates", modelPath=str(tmp_path / "smooth.pt")).createSystem(
        topology, precision="double", removeCMMotion=False)
    bonds = openmm.HarmonicBondForce()
    for bond in topology.bonds():
        i, j = bond[0].index, bond[1].index
        bonds.addBond(i, j, np.linalg.norm(pos[i] - pos[j]) / 10.0, 2.0e5)
    system.addForce(bonds)
    timestep_ps = 0.0005
    context = openmm.Context(system, openmm.VerletIntegrator(timestep_ps), openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(pos / 10.0)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 100)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    times, totals, kinetic = [], [], []
    for block in range(50):
        context.getIntegrator().step(20)
        state = context.getState(getEnergy=True)
        times.append(state.getTime().value_in_unit(unit.picosecond))
        kinetic.append(state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole))
        totals.append(kinetic[-1] + state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    n_atoms = system.getNumParticles()
    drift = np.polyfit(times, totals, 1)[0] / n_atoms  # kJ/mol per atom per ps
    fluctuation = np.std(totals) / n_atoms
    print(f"\nNVE alanine dipeptide, 0.5 fs, {times[-1]:.2f} ps: drift {drift:+.2e} kJ/mol/atom/ps, "
          f"total-energy std {fluctuation:.2e} kJ/mol/atom, mean kinetic {np.mean(kinetic):.1f} kJ/mol")
    record_property("nve_drift_kJ_mol_atom_ps", drift)
    assert np.mean(kinetic) > 10.0, "the molecule must actually move"
    assert abs(drift) < 0.05
    assert fluctuation < 0.05
