"""Times one benchmark case in its own process and prints one JSON line. Self-contained (openmm,
openmm-ml, torch, numpy; mace-torch for MACE), so it also runs in a peer's virtual environment:

    python worker.py --potential so3krates --model model.pt --system alanine --steps 20
    python worker.py --potential so3lr --system water --steps 3
    python worker.py --potential mace --size small --system water --steps 5
    python worker.py --potential torchmdnet --system alanine --steps 5
    python worker.py --potential so3krates-torch --system alanine --steps 5   (SO3LR, its ASE calculator)
"""
import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

SPICE_ELEMENTS = [1, 6, 7, 8, 9, 15, 16, 17, 35, 53]
# MACE-OFF23 architectures as described in the MACE-OFF paper (Kovács et al.): 2 interactions,
# correlation 3, max_ell 3, 5 Å cutoff; small 96 invariant channels, medium 128 channels with L=1.
MACE_SIZES = {"small": "96x0e", "medium": "128x0e + 128x1o"}


def build_system(name: str, pdb_path: str, water_nm: float):
    """(topology, positions, ML atom indices or None) for alanine | alanine-water | water."""
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    if name == "water":
        modeller = app.Modeller(app.Topology(), [])
        modeller.addSolvent(forcefield, boxSize=openmm.Vec3(water_nm, water_nm, water_nm) * unit.nanometer,
                            model="tip3p")
        return modeller.topology, modeller.positions, None, None
    pdb = app.PDBFile(pdb_path)
    if name == "alanine":
        return pdb.topology, pdb.positions, None, None
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(forcefield, padding=1.0 * unit.nanometer, model="tip3p")
    mm = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                 constraints=app.HBonds)
    ml = [a.index for a in modeller.topology.atoms() if a.residue.name != "HOH"]
    return modeller.topology, modeller.positions, ml, mm


def mace_model_file(size: str) -> str:
    """A MACE model with the MACE-OFF23 architecture of `size` and random weights (speed does not
    depend on the weight values), saved whole, as openmm-ml's 'mace' potential loads it."""
    import torch
    from e3nn import o3
    from mace import modules

    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3, interaction_cls=block,
        interaction_cls_first=block, num_interactions=2, num_elements=len(SPICE_ELEMENTS),
        hidden_irreps=o3.Irreps(MACE_SIZES[size]), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(SPICE_ELEMENTS)), avg_num_neighbors=10.0, atomic_numbers=SPICE_ELEMENTS,
        correlation=3, gate=torch.nn.functional.silu, atomic_inter_scale=1.0, atomic_inter_shift=0.0)
    path = os.path.join(tempfile.mkdtemp(), f"mace_off23_{size}_random.model")
    torch.save(model, path)
    return path


def tensornet_checkpoint() -> str:
    """A TorchMD-Net checkpoint of TensorNet (128 channels, 2 layers, 32 radial functions, 5 Å) with
    random weights, in the layout openmm-ml's 'torchmdnet' potential loads."""
    import torch
    from torchmdnet.models.model import create_model
    from torchmdnet.scripts.train import get_argparse

    args = vars(get_argparse().parse_args(["--model", "tensornet", "--embedding-dimension", "128", "--num-layers", "2",
                                           "--num-rbf", "32", "--cutoff-upper", "5.0", "--max-z", "128",
                                           "--derivative", "true"]))
    model = create_model(args)
    path = os.path.join(tempfile.mkdtemp(), "tensornet_random.ckpt")
    torch.save({"hyper_parameters": args, "state_dict": {"model." + k: v for k, v in model.state_dict().items()}}, path)
    return path


def time_so3krates_torch(topology, positions, steps: int) -> dict:
    """so3krates-torch's pretrained SO3LR through its own ASE calculator (float32, the long-range
    settings of the reference: 12 Å, dispersion switched off over its last 2 Å): ms per energy and
    forces evaluation, its neighbour lists included. Vacuum or periodic, all atoms ML."""
    import ase
    import so3krates_torch
    import torch
    from so3krates_torch.calculator.so3 import TorchkratesCalculator

    path = os.path.join(os.path.dirname(so3krates_torch.__file__), "pretrained", "so3lr", "so3lr.model")
    calculator = TorchkratesCalculator(model_paths=path, r_max_lr=12.0, dispersion_energy_cutoff_lr_damping=2.0,
                                       default_dtype="float32")
    box = topology.getPeriodicBoxVectors()
    atoms = ase.Atoms(numbers=[a.element.atomic_number for a in topology.atoms()],
                      positions=np.array(positions.value_in_unit(unit.angstrom)),
                      cell=None if box is None else np.array(box.value_in_unit(unit.angstrom)), pbc=box is not None)
    atoms.calc = calculator
    rng = np.random.default_rng(0)

    def evaluate():
        atoms.positions = atoms.positions + rng.normal(scale=1e-3, size=atoms.positions.shape)
        atoms.get_forces()

    start = time.perf_counter()
    evaluate()
    first = time.perf_counter() - start
    evaluate()
    start = time.perf_counter()
    for _ in range(steps):
        evaluate()
    seconds = time.perf_counter() - start
    return {"atoms": len(atoms), "ml_atoms": len(atoms), "ms_per_step": 1000 * seconds / steps, "first_step_s": first,
            "peak_memory_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": torch.__version__,
            "force": "ASE calculator (energy + forces)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--potential", choices=["so3krates", "so3lr", "mace", "torchmdnet", "so3krates-torch"],
                        required=True)
    parser.add_argument("--model", help="so3krates model file")
    parser.add_argument("--size", default="small", help="mace: small | medium")
    parser.add_argument("--system", choices=["alanine", "alanine-water", "water"], required=True)
    parser.add_argument("--pdb", help="alanine dipeptide PDB")
    parser.add_argument("--water-nm", type=float, default=2.2, help="edge of the all-ML water box")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--platform", default="CPU")
    args = parser.parse_args()
    import torch  # after openmm, like a user script; the potentials reload openmm-torch plugins as needed
    from openmmml import MLPotential

    topology, positions, ml_atoms, mm_system = build_system(args.system, args.pdb, args.water_nm)
    if args.potential == "so3krates-torch":
        if ml_atoms is not None:
            raise SystemExit("so3krates-torch has no OpenMM interface: mixed ML/MM systems cannot run")
        print(json.dumps(time_so3krates_torch(topology, positions, args.steps)))
        return
    n_ml = len(ml_atoms) if ml_atoms else topology.getNumAtoms()
    options = {}
    if args.potential in ("so3krates", "so3lr"):
        from so3krates.openmm.potential import STATIC_PAIRS_MAX_ATOMS

        potential = MLPotential("so3lr") if args.potential == "so3lr" else MLPotential("so3krates", modelPath=args.model)
        # CUDA graphs where our model supports them; the peers' PythonForce cannot be captured
        options["cudaGraphs"] = args.platform == "CUDA" and n_ml <= STATIC_PAIRS_MAX_ATOMS
    elif args.potential == "mace":
        potential = MLPotential("mace", modelPath=mace_model_file(args.size))
    else:
        potential = MLPotential("torchmdnet", modelPath=tensornet_checkpoint())

    def create(**extra):
        if ml_atoms is None:
            return potential.createSystem(topology, **options, **extra)
        return potential.createMixedSystem(topology, mm_system, ml_atoms, **options, **extra)

    try:
        system = create()
    except ValueError:
        if not options.get("cudaGraphs"):
            raise
        options["cudaGraphs"] = False  # a box too narrow for minimum image (SO3LR: 2 x 1.2 nm)
        system = create()
    # plugin forces come back from SWIG as plain Force; PythonForce is OpenMM's own class
    kind = "PythonForce" if any(isinstance(f, openmm.PythonForce) for f in system.getForces()) else "TorchForce"
    if options.get("cudaGraphs"):
        kind += " (CUDA graph)"
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(args.platform))
    context.setPositions(positions)
    # reading positions waits for the device without another force evaluation (asking for the
    # energy would add one to every measurement)
    start = time.perf_counter()
    integrator.step(1)
    context.getState(getPositions=True)
    first = time.perf_counter() - start
    integrator.step(2)  # warm-up (TorchScript profiling runs)
    context.getState(getPositions=True)
    start = time.perf_counter()
    integrator.step(args.steps)
    context.getState(getPositions=True)
    seconds = time.perf_counter() - start
    print(json.dumps({"atoms": topology.getNumAtoms(), "ml_atoms": n_ml,
                      "ms_per_step": 1000 * seconds / args.steps, "first_step_s": first,
                      "peak_memory_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "torch": torch.__version__, "force": kind}))


if __name__ == "__main__":
    main()
