"""Is it faster for the TorchForce to return forces (autograd inside the model) or only the energy
(openmm-torch differentiates)? Runs both in one process, alternating, on alanine dipeptide in vacuum
and on a periodic all-ML water box, and prints ms/step and the ratio.

    python benchmarks/torchforce_outputs.py [--model model.pt] [--repeats 5] [--steps 20]
"""
import argparse
import tempfile
import time
from pathlib import Path

import openmm
import openmm.app as app
from openmmml import MLPotential

from so3krates.md import ALANINE_DIPEPTIDE_PDB
from so3krates.model import SO3kratesConfig
from so3krates.model_file import create_potential, save_model


def water_box(n_per_side: int):
    """Topology and positions of a cubic box of n³ TIP3P-geometry water molecules (0.31 nm apart)."""
    topology = app.Topology()
    chain = topology.addChain()
    positions = []
    spacing = 0.31
    for i in range(n_per_side):
        for j in range(n_per_side):
            for k in range(n_per_side):
                residue = topology.addResidue("HOH", chain)
                o = openmm.Vec3(i, j, k) * spacing
                for name, element, offset in (("O", app.element.oxygen, (0, 0, 0)),
                                              ("H1", app.element.hydrogen, (0.0957, 0, 0)),
                                              ("H2", app.element.hydrogen, (-0.024, 0.0927, 0))):
                    topology.addAtom(name, element, residue)
                    positions.append(o + openmm.Vec3(*offset))
    side = n_per_side * spacing
    topology.setPeriodicBoxVectors([openmm.Vec3(side, 0, 0), openmm.Vec3(0, side, 0), openmm.Vec3(0, 0, side)])
    return topology, positions


def context_for(model: Path, topology, positions, return_forces: bool) -> openmm.Context:
    system = MLPotential("so3krates", modelPath=str(model)).createSystem(topology, returnForces=return_forces)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(positions)
    return context


def ms_per_step(context: openmm.Context, steps: int) -> float:
    start = time.perf_counter()
    context.getIntegrator().step(steps)
    context.getState(getPositions=True)  # waits for the device; getEnergy would evaluate the model again
    return (time.perf_counter() - start) / steps * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (default: untrained model at the paper's default size)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--water", type=int, default=7, help="water molecules per box side (7 -> 1029 atoms)")
    args = parser.parse_args()
    model = Path(args.model) if args.model else Path(tempfile.mkdtemp()) / "default.pt"
    if not args.model:
        save_model(create_potential(SO3kratesConfig(elements=[1, 6, 7, 8], zero_readout=False), seed=0), model)
    pdb = app.PDBFile(str(ALANINE_DIPEPTIDE_PDB))
    systems = {"alanine dipeptide (22 atoms, vacuum)": (pdb.topology, pdb.positions),
               f"water box ({3 * args.water ** 3} atoms, periodic)": water_box(args.water)}
    for label, (topology, positions) in systems.items():
        contexts = {flag: context_for(model, topology, positions, flag) for flag in (True, False)}
        for context in contexts.values():
            ms_per_step(context, 2)  # warm-up: TorchScript profiling runs
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for flag, context in contexts.items():
                times[flag].append(ms_per_step(context, args.steps))
        best = {flag: min(t) for flag, t in times.items()}
        print(f"{label}: forces from the model {best[True]:.2f} ms/step, energy only {best[False]:.2f} ms/step, "
              f"ratio {best[False] / best[True]:.3f} (>1: returning forces is faster)")


if __name__ == "__main__":
    main()
