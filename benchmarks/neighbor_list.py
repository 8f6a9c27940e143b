"""Compiled neighbour list (so3krates::neighbor_pairs) against the pure-PyTorch one, in one process,
for 20 to 20,000 atoms at liquid-water density (periodic where the box is wide enough); then one
energy+forces step of the default-size model with either neighbour list.

    python benchmarks/neighbor_list.py [--repeats 5]
"""
import argparse
import time

import numpy as np
import torch

import so3krates  # noqa: F401  (loads the compiled ops)
from so3krates.model import NeighborList, SO3kratesConfig
from so3krates.model_file import create_potential

CUTOFF = 5.0  # Å
DENSITY = 0.1  # atoms per Å³ (liquid water)


def best_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    compiled = torch.jit.script(NeighborList(CUTOFF, compiled=True))
    python = torch.jit.script(NeighborList(CUTOFF, compiled=False))
    print(f"{'atoms':>7s} {'pairs':>9s} {'PyTorch ms':>11s} {'compiled ms':>12s} {'speed-up':>9s}")
    for n in (20, 200, 2000, 20000):
        side = (n / DENSITY) ** (1 / 3)
        positions = torch.tensor(np.random.default_rng(0).uniform(0, side, (n, 3)), dtype=torch.float32)
        cell = torch.eye(3) * side if side >= 2 * CUTOFF else None
        pairs = len(compiled(positions, cell)[0])
        assert pairs == len(python(positions, cell)[0])
        t_python = best_ms(lambda: python(positions, cell), args.repeats)
        t_compiled = best_ms(lambda: compiled(positions, cell), args.repeats)
        print(f"{n:7d} {pairs:9d} {t_python:11.2f} {t_compiled:12.2f} {t_python / t_compiled:8.1f}x")
    print("\nmodel step (energy + forces, 128 features, 2 layers, degrees 1-4, TorchScript)")
    potential = create_potential(SO3kratesConfig(elements=[1, 8], zero_readout=False), seed=0)
    for n in (21, 1029):
        side = (n / DENSITY) ** (1 / 3)
        positions = torch.tensor(np.random.default_rng(1).uniform(0, side, (n, 3)), dtype=torch.float32)
        cell = torch.eye(3) * side if side >= 2 * CUTOFF else None
        z = torch.tensor([8, 1, 1] * (n // 3))
        times = {}
        for flag in (False, True):
            potential.neighbor_list.compiled = flag
            scripted = torch.jit.script(potential)

            def step():
                pos = positions.clone().requires_grad_(True)
                torch.autograd.grad(scripted(z, pos, cell), pos)

            times[flag] = best_ms(step, args.repeats)
        print(f"{n:7d} atoms: PyTorch neighbour list {times[False]:.1f} ms, compiled {times[True]:.1f} ms, "
              f"speed-up {times[False] / times[True]:.2f}x")


if __name__ == "__main__":
    main()
