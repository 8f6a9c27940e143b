"""Loads openmm-so3krates' compiled TorchScript ops (plugin/extensions), which model files call.

The same library is loaded by the OpenMM plugin in OpenMM's plugin directory, so a serialized System
runs in processes that never import this package.
"""
import os
import sys
from pathlib import Path

import torch

LIBRARY_NAME = "libso3krates_ops.so"
# SO3KRATES_OPS_LIBRARY (a library built apart, e.g. by benchmarks/gpu_check.sh), the wheel layout
# (inside the package), or a conda prefix's lib/
CANDIDATES = tuple(Path(p) for p in (os.environ.get("SO3KRATES_OPS_LIBRARY"),) if p) + (
    Path(__file__).parent / "lib" / LIBRARY_NAME, Path(sys.prefix) / "lib" / LIBRARY_NAME)
OPS_LIBRARY = next((path for path in CANDIDATES if path.is_file()), CANDIDATES[0])
REBUILD_HINT = ("reinstall openmm-so3krates from its source tree with `pip install --force-reinstall --no-deps .` "
                "(needs a C++17 compiler and CMake; the build uses the installed torch and openmm)")


class CompiledOpsError(ImportError):
    """The compiled op library is missing or does not match the installed torch."""


def load_ops(library: Path = OPS_LIBRARY) -> None:
    """Register torch.ops.so3krates.* from `library` (loading it again is harmless)."""
    if not library.is_file():
        raise CompiledOpsError(f"the compiled library {library} is missing; {REBUILD_HINT}")
    try:
        torch.ops.load_library(str(library))
    except OSError as err:
        raise CompiledOpsError(f"{library} cannot be loaded with torch {torch.__version__} ({err}); it was "
                               f"probably built against another torch: {REBUILD_HINT}") from None
