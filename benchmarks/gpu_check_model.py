"""GPU checks of the model in plain PyTorch, for benchmarks/gpu_check.sh (which runs it where OpenMM
may be missing): SO3LR on the device against float64 on the CPU, CUDA-graph capture and replay of
energy and forces with the fixed-size pair lists, and short training runs with TF32 and bf16.

    python benchmarks/gpu_check_model.py model [--device cuda]
    python benchmarks/gpu_check_model.py train --output DIR [--device cuda] [--tf32] [--bf16] [--finetune]

Prints one line per check; exits non-zero on the first failure.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def so3lr_potential(compiled: bool):
    """The shipped SO3LR if its file loads here (it needs our compiled ops), else the SO3LR
    architecture with random weights (same code paths, meaningless energies)."""
    from so3krates.model import SO3krates, SO3kratesConfig, SO3kratesPotential
    from so3krates.so3lr import CONFIG, PACKAGED_MODEL

    if compiled and hasattr(torch.ops.so3krates, "pair_energy"):
        from so3krates.model_file import load_model

        return load_model(PACKAGED_MODEL)[0], "shipped SO3LR"
    torch.manual_seed(0)
    return SO3kratesPotential(SO3krates(SO3kratesConfig(**CONFIG), torch.float64), compiled=False), \
        "SO3LR architecture, random weights (model file needs the compiled ops)"


def molecule():
    """Alanine dipeptide: atomic numbers and positions (Å) (ASE, which so3krates needs anyway: no OpenMM)."""
    import ase.io

    atoms = ase.io.read(ROOT / "python" / "so3krates" / "data" / "alanine-dipeptide.pdb")
    return torch.tensor(atoms.numbers), torch.tensor(atoms.positions, dtype=torch.float64)


def water_box(copies: int = 4):
    """A periodic box of water built by repeating one molecule on a 3.1 Å grid: (numbers, positions Å, cell)."""
    grid = np.array([[i, j, k] for i in range(copies * 2) for j in range(copies * 2) for k in range(copies * 2)]) * 3.1
    molecule = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    rng = np.random.default_rng(0)
    positions = (grid[:, None, :] + molecule[None] + rng.normal(scale=0.05, size=(len(grid), 3, 3))).reshape(-1, 3)
    numbers = np.tile([8, 1, 1], len(grid))
    return torch.tensor(numbers), torch.tensor(positions), torch.eye(3, dtype=torch.float64) * 3.1 * copies * 2


def energy_forces(potential, numbers, positions, cell=None):
    x = positions.clone().requires_grad_(True)
    energy = potential(numbers, x, cell, 0.0, 0.0)
    return energy.detach(), -torch.autograd.grad(energy, x)[0]


def check(name: str, condition: bool, detail: str) -> None:
    print(f"{'PASS' if condition else 'FAIL'}  {name}: {detail}", flush=True)
    if not condition:
        sys.exit(1)


def check_model(device: str) -> None:
    potential, what = so3lr_potential(compiled=True)
    print(f"model: {what}; torch {torch.__version__}, device {device}")
    for label, numbers, positions, cell in (("alanine dipeptide", *molecule(), None), ("water box", *water_box())):
        reference = energy_forces(potential.to(torch.float64).cpu(), numbers, positions, cell)
        scale = float(reference[1].abs().max())
        for dtype, tolerance in ((torch.float64, 1e-9), (torch.float32, 2e-4)):
            moved = potential.to(dtype).to(device)
            args = [t.to(device) for t in (numbers, positions.to(dtype))] + [None if cell is None else cell.to(device, dtype)]
            for _ in range(3):  # TorchScript's profiling executor specialises over the first calls
                energy, forces = energy_forces(moved, *args)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                energy, forces = energy_forces(moved, *args)
            if device == "cuda":
                torch.cuda.synchronize()
            ms = (time.perf_counter() - start) * 100
            error = float((forces.double().cpu() - reference[1]).abs().max()) / scale
            check(f"{label} ({len(numbers)} atoms) on {device}, {dtype}", error < tolerance,
                  f"max force error {error:.1e} of the largest force, {ms:.2f} ms per energy+forces")
    if device == "cuda":
        check_cuda_graph(potential)


def check_cuda_graph(potential) -> None:
    """Capture energy and forces with the fixed-size pair lists (what openmm-torch's useCUDAGraphs
    replays) and replay them for new positions."""
    numbers, positions = molecule()
    model = potential.to(torch.float32).cuda()
    static_lists = [m for m in model.modules() if hasattr(m, "static_pairs")]
    for neighbor_list in static_lists:
        neighbor_list.static_pairs = True
    z = numbers.cuda()
    static_positions = positions.float().cuda().requires_grad_(True)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as capture requires
            energy = model(z, static_positions, None, 0.0, 0.0)
            torch.autograd.grad(energy, static_positions)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_energy = model(z, static_positions, None, 0.0, 0.0)
        static_gradient = torch.autograd.grad(static_energy, static_positions)[0]
    worst = 0.0
    for seed in range(3):
        moved = positions.float() + 0.02 * torch.randn(positions.shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            static_positions.copy_(moved.cuda())
        graph.replay()
        for neighbor_list in static_lists:
            neighbor_list.static_pairs = False
        reference = energy_forces(model, z, moved.cuda())[1]
        for neighbor_list in static_lists:
            neighbor_list.static_pairs = True
        worst = max(worst, float((-static_gradient - reference).abs().max() / reference.abs().max()))
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(100):
        graph.replay()
    torch.cuda.synchronize()
    check("CUDA graph capture and replay (alanine dipeptide, float32)", worst < 1e-4,
          f"max force difference to eager {worst:.1e} of the largest force, "
          f"{(time.perf_counter() - start) * 10:.3f} ms per replay")


def train(device: str, output: str, tf32: bool, bf16: bool, finetune: bool) -> None:
    """A short training run on the shipped ethanol data (through so3krates_train, as `so3krates train`);
    `finetune`: SO3LR fine-tuned on the shipped 3BPA frames (long-range terms in training)."""
    from so3krates_train.config import load_config
    from so3krates_train.trainer import Trainer

    settings = [f"output={output}", f"device={device}", f"tf32={str(tf32).lower()}", f"bf16={str(bf16).lower()}",
                "optim.epochs=2", "data.train=400", "data.valid=50", "data.test=50"]
    config = str(ROOT / "examples" / "rmd17_ethanol.yaml")
    if finetune:
        config = None
        settings += [f"data.path={ROOT / 'examples' / 'data' / '3bpa_train_300K.npz'}", "data.options.energy_unit=eV",
                     "init_from=so3lr", "freeze_embeddings=true"]
    start = time.perf_counter()
    trainer = Trainer(load_config(config, settings), show_progress=False)
    model_path = trainer.train()
    metrics = trainer.validate(trainer.ema)
    force = 1000 * metrics["valid_force_mae_eV_A"]
    what = "fine-tuning SO3LR" if finetune else "training"
    check(f"{what} on {device} (tf32={tf32}, bf16={bf16})", model_path is not None and np.isfinite(force),
          f"2 epochs in {time.perf_counter() - start:.1f} s, validation force MAE {force:.0f} meV/Å")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["model", "train"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--output", default="runs/gpu_check_train")
    parser.add_argument("--tf32", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--finetune", action="store_true", help="fine-tune SO3LR on 3BPA instead")
    args = parser.parse_args()
    if args.what == "model":
        check_model(args.device)
    else:
        train(args.device, args.output, args.tf32, args.bf16, args.finetune)


if __name__ == "__main__":
    main()
