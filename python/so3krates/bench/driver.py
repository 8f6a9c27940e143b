"""Runs benchmark cases through worker.py, each in its own process (so peers may live in their own
virtual environments), alternating cases across repeats; reports the fastest repeat of each."""
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ..md import ALANINE_DIPEPTIDE_PDB
from ..model import SO3kratesConfig
from ..model_file import create_potential, save_model
from .worker import SPICE_ELEMENTS

WORKER = Path(__file__).with_name("worker.py")
SYSTEMS = {"alanine": "alanine dipeptide, vacuum", "alanine-water": "alanine dipeptide in TIP3P (mixed)",
           "water": "water box, all ML, periodic"}
# our sizes: the paper's default, a small one, and the 3 blocks with the so3lr block options of
# examples/qm7x_multi_molecule.yaml (the setting that beat MACE on unseen QM7-X molecules)
SO3KRATES_SIZES = {"default": {}, "small": {"num_features": 64, "num_radial": 16},
                   "3-block": {"num_layers": 3, "layer_norm_1": True, "residual_mlp_1": True, "identity_at_init": True}}
UNTRAINED_ENERGY_SCALE_EV = 0.05  # as `so3krates init`: keeps the untrained models' MD finite


@dataclass
class Case:
    label: str
    python: str
    args: List[str]


def write_models(folder: Path) -> Dict[str, Path]:
    """Untrained model files of our sizes (speed does not depend on the weights)."""
    paths = {}
    for size, options in SO3KRATES_SIZES.items():
        paths[size] = folder / f"so3krates_{size}.pt"
        config = SO3kratesConfig(elements=SPICE_ELEMENTS, zero_readout=False, **options)
        save_model(create_potential(config, seed=0, energy_scale_eV=UNTRAINED_ENERGY_SCALE_EV), paths[size])
    return paths


SO3LR = "SO3LR (ours, pretrained)"
SO3LR_PEER = "SO3LR in so3krates-torch (ASE)"
CASE_GROUPS = ("so3krates", "so3lr", "peers")


def cases(folder: Path, peer_python: Optional[str], groups=CASE_GROUPS) -> List[Case]:
    """The cases of the named groups: our SO3krates sizes, SO3LR (ours and, with peers, so3krates-torch's),
    and the peers (MACE-OFF23, TensorNet; they need `peer_python`)."""
    found = []
    if "so3krates" in groups:
        found += [Case(f"SO3krates {size}", sys.executable, ["--potential", "so3krates", "--model", str(path)])
                  for size, path in write_models(folder).items()]
    if "so3lr" in groups:
        found.append(Case(SO3LR, sys.executable, ["--potential", "so3lr"]))
        if peer_python:
            found.append(Case(SO3LR_PEER, peer_python, ["--potential", "so3krates-torch"]))
    if "peers" in groups and peer_python:
        found += [Case(f"MACE-OFF23 {size} (random weights)", peer_python, ["--potential", "mace", "--size", size])
                  for size in ("small", "medium")]
        found.append(Case("TensorNet 128ch 2L (random weights)", peer_python, ["--potential", "torchmdnet"]))
    return found


def run_case(case: Case, system: str, steps: int, platform: str, water_nm: float) -> dict:
    # e3nn 0.4 (pinned by mace-torch) and openmm-ml's MACE loader unpickle whole objects
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    command = [case.python, str(WORKER), *case.args, "--system", system, "--pdb", str(ALANINE_DIPEPTIDE_PDB),
               "--steps", str(steps), "--platform", platform, "--water-nm", str(water_nm)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _better(new: dict, old: Optional[dict]) -> bool:
    """A timing beats an error; a faster timing beats a slower one."""
    if old is None or ("error" in old and "error" not in new):
        return True
    return "error" not in new and new["ms_per_step"] < old["ms_per_step"]


def benchmark(peer_python: Optional[str], systems: List[str], repeats: int, steps: Dict[str, int],
              platform: str, water_nm: float, progress=print, groups=CASE_GROUPS) -> Dict[str, Dict[str, dict]]:
    """{case label: {system: best result}} over `repeats` alternating rounds."""
    best: Dict[str, Dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        all_cases = cases(Path(tmp), peer_python, groups)
        for round_ in range(repeats):
            for system in systems:
                for case in all_cases:
                    if case.label == SO3LR_PEER and system == "alanine-water":
                        continue  # no OpenMM interface: no ML/MM systems
                    progress(f"round {round_ + 1}/{repeats}: {case.label} on {system}")
                    result = run_case(case, system, steps[system], platform, water_nm)
                    slot = best.setdefault(case.label, {})
                    if _better(result, slot.get(system)):
                        slot[system] = result
    return best


def table(best: Dict[str, Dict[str, dict]], systems: List[str]) -> str:
    """Per system: ms/step, ns/day at 1 fs, speed relative to MACE-OFF23 small (SO3LR: to SO3LR in
    so3krates-torch), first step and peak memory of the whole process."""
    reference = "MACE-OFF23 small (random weights)"
    lines = []
    for system in systems:
        lines.append(f"\n{SYSTEMS[system]}")
        lines.append(f"  {'potential':38s} {'atoms':>6s} {'ms/step':>9s} {'ns/day':>8s} {'speed-up':>14s} "
                     f"{'first step s':>12s} {'peak MB':>8s}  force")
        for label, results in best.items():
            r = results.get(system)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"  {label:38s} failed: {r['error']}")
                continue
            peer = SO3LR_PEER if label == SO3LR else reference
            ref = best.get(peer, {}).get(system, {}).get("ms_per_step")
            ratio = f"{ref / r['ms_per_step']:.2f}x vs {'peer' if label == SO3LR else 'MACE-S'}" if ref else "-"
            lines.append(f"  {label:38s} {r['atoms']:6d} {r['ms_per_step']:9.1f} {86.4 / r['ms_per_step']:8.3f} "
                         f"{ratio:>14s} {r['first_step_s']:12.1f} {r['peak_memory_MB']:8.0f}  {r['force']}")
    return "\n".join(lines)


def scaling(edges_nm: List[float], steps: int, platform: str, progress=print) -> Dict[str, List[dict]]:
    """{model: ms/step results} of SO3krates (default size) and SO3LR for all-ML water boxes of the given edges."""
    results: Dict[str, List[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in (c for c in cases(Path(tmp), None) if c.label in ("SO3krates default", SO3LR)):
            for edge in edges_nm:
                progress(f"scaling: {case.label}, water box {edge} nm")
                result = run_case(case, "water", steps, platform, edge)
                if "error" not in result:
                    results.setdefault(case.label, []).append(result)
    return results


def scaling_plot(curves: Dict[str, List[dict]], path: str, platform: str = "CPU") -> Dict[str, float]:
    """ms/step against atoms (log-log, with the fitted exponents; 1 = linear cost) and the cost per
    atom (flat = linear cost) of each model; returns {model: exponent}."""
    import numpy as np
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("the scaling plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exponents = {}
    fig, (total, per_atom) = plt.subplots(1, 2, figsize=(9, 4))
    for label, results in curves.items():
        atoms = np.array([r["atoms"] for r in results], dtype=float)
        ms = np.array([r["ms_per_step"] for r in results])
        exponents[label] = float(np.polyfit(np.log(atoms), np.log(ms), 1)[0])
        line, = total.loglog(atoms, ms, "o-", label=f"{label} (slope {exponents[label]:.2f})")
        total.loglog(atoms, ms[-1] * atoms / atoms[-1], "--", lw=0.8, color=line.get_color())
        per_atom.semilogx(atoms, 1000 * ms / atoms, "o-", color=line.get_color())
    total.set(xlabel="atoms (water box, all ML, periodic)", ylabel="ms per MD step")
    total.legend(title="dashed: linear cost")
    per_atom.set(xlabel="atoms", ylabel="µs per atom and step", ylim=(0, None))
    fig.suptitle(f"OpenMM {platform} platform")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return exponents
