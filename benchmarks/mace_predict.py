"""Energies and forces of a MACE model file on the frames of an extended-XYZ file, written to .npz
(energy (n,) eV, forces (n_atoms_total, 3) eV/Å, frames in file order). Runs in the peers'
environment (mace-torch), for benchmarks/train_accuracy.py, which scores them with its own code.

    PEER_PYTHON benchmarks/mace_predict.py MODEL FRAMES.xyz OUT.npz
"""
import sys

import ase.io
import numpy as np
from mace.calculators import MACECalculator


def main() -> None:
    model, frames_path, out = sys.argv[1:4]
    calculator = MACECalculator(model_paths=model, device="cpu", default_dtype="float64")
    energies, forces = [], []
    for atoms in ase.io.read(frames_path, ":"):
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    np.savez(out, energy=np.array(energies), forces=np.concatenate(forces))


if __name__ == "__main__":
    main()
