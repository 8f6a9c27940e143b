"""`so3krates init`: write an untrained model file (for smoke tests and speed benchmarks)."""
import argparse

import torch
from ase.data import atomic_numbers as ATOMIC_NUMBERS

from ..model import SO3kratesConfig
from ..model_file import create_potential, save_model

SPICE_ELEMENTS = "H,C,N,O,F,P,S,Cl,Br,I"


def parse_elements(text: str):
    """'H,C,N,O' or '1,6,7,8' -> sorted atomic numbers."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if item.isdigit():
            out.append(int(item))
        elif item in ATOMIC_NUMBERS:
            out.append(ATOMIC_NUMBERS[item])
        else:
            raise ValueError(f"--elements: {item!r} is not an element symbol or atomic number")
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("init", help="write an untrained model with the given hyperparameters",
                       description="Write a model file with random weights. Its energies are meaningless, but "
                                   "smooth: use it to test a setup or measure speed before training.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("output", help="model file to write (.pt)")
    p.add_argument("--elements", default=SPICE_ELEMENTS, help="elements the model supports (symbols or Z)")
    defaults = SO3kratesConfig(elements=[1])
    p.add_argument("--features", type=int, default=defaults.num_features, help="invariant features per atom")
    p.add_argument("--heads", type=int, default=defaults.num_heads, help="attention heads")
    p.add_argument("--layers", type=int, default=defaults.num_layers, help="Euclidean transformer blocks")
    p.add_argument("--degrees", default=",".join(map(str, defaults.degrees)), help="spherical harmonic degrees")
    p.add_argument("--cutoff", type=float, default=defaults.cutoff, help="cutoff radius in Å")
    p.add_argument("--radial", type=int, default=defaults.num_radial, help="radial basis functions")
    p.add_argument("--ev-init", choices=["zero", "neighbour_mean"], default=defaults.ev_init,
                   help="initial Euclidean variables")
    p.add_argument("--charge-embedding", action="store_true",
                   help="include the total-charge embedding (the model then needs the charge at run time)")
    p.add_argument("--precision", choices=["single", "double"], default="single")
    p.add_argument("--zero-readout", action="store_true",
                   help="start the energy readout at zero as for training (default: random, so forces are non-zero)")
    p.add_argument("--energy-scale", type=float, default=0.05,
                   help="scale (eV) of the random energy readout: an untrained model has no bonds, so small "
                        "forces keep short MD runs from blowing up; speed does not depend on it")
    p.add_argument("--seed", type=int, default=0, help="random seed for the weights")


def run(args) -> int:
    config = SO3kratesConfig(elements=parse_elements(args.elements), num_features=args.features,
                             num_heads=args.heads, num_layers=args.layers,
                             degrees=[int(d) for d in args.degrees.split(",")], cutoff=args.cutoff,
                             num_radial=args.radial, ev_init=args.ev_init, zero_readout=args.zero_readout,
                             use_charge_embed=args.charge_embedding)
    dtype = torch.float64 if args.precision == "double" else torch.float32
    potential = create_potential(config, dtype, seed=args.seed, energy_scale_eV=args.energy_scale)
    info = save_model(potential, args.output)
    n_params = sum(p.numel() for p in potential.parameters())
    print(f"wrote untrained SO3krates model {args.output} ({info.dtype}, {len(config.elements)} elements, "
          f"cutoff {config.cutoff} Å, {n_params} weights)")
    return 0
