"""openmm-so3krates: SO3krates machine-learned force fields for OpenMM."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("openmm-so3krates")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from ._ops import load_ops  # noqa: E402

load_ops()  # model files call the compiled neighbour list

from .elements import UnsupportedElementError, check_elements  # noqa: E402
from .model_file import ModelFileError, ModelInfo, load_model, save_model  # noqa: E402

__all__ = ["__version__", "load_model", "save_model", "ModelInfo", "ModelFileError",
           "UnsupportedElementError", "check_elements"]
