"""openmm-so3krates: SO3krates machine-learned force fields for OpenMM."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("openmm-so3krates")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

import os  # noqa: E402

from ._ops import CompiledOpsError, load_ops  # noqa: E402

try:
    load_ops()  # model files call the compiled neighbour lists and pair ops
except CompiledOpsError:
    # a source tree on a machine that cannot build them (benchmarks/gpu_check.sh): the PyTorch
    # versions (compiled=False, and every device but the CPU) still run; model files do not
    if os.environ.get("SO3KRATES_WITHOUT_OPS") != "1":
        raise

from .elements import UnsupportedElementError, check_elements  # noqa: E402
from .model_file import ModelFileError, ModelInfo, load_model, save_model  # noqa: E402

__all__ = ["__version__", "load_model", "save_model", "ModelInfo", "ModelFileError",
           "UnsupportedElementError", "check_elements"]
