"""How TorchScript runs our model files in this process (OpenMM and ASE call this)."""
import os

import torch


def configure_torchscript() -> None:
    """Switch off TorchScript's profiling mode (process-wide) unless SO3KRATES_JIT_PROFILING=1.

    The profiling executor builds autodiff subgraphs that keep more of the forward pass alive for the
    same energies and forces (954-atom water box in OpenMM: process peak 1.5 GB against 1.1 GB, the
    model's share 2.7x larger, and 10% slower). Whether its fusion pays on CUDA is unmeasured (no
    GPU here). Other TorchScript models in the process then run unprofiled too, with the same
    results; SO3KRATES_JIT_PROFILING=1 keeps the profiling executor.
    """
    if os.environ.get("SO3KRATES_JIT_PROFILING", "0") != "1":
        torch._C._jit_set_profiling_mode(False)
