"""Make openmm-torch's kernels (and our plugin) available whatever was imported first.

OpenMM loads its plugins when `openmm` is imported. If torch has not been imported yet, the
openmm-torch plugin libraries fail to load (their libtorch dependencies, e.g. libnvrtc.so.12, are
found only once torch is loaded) and a Context with a TorchForce fails with "does not support all
required kernels". After importing torch we load those libraries again.
"""
import re

import openmm
import torch  # noqa: F401  (must be loaded before the plugin libraries)

_FAILURE = re.compile(r"Error loading library (\S+?): ")


def ensure_torch_plugins() -> None:
    """Load every openmm-torch or openmm-so3krates plugin library that failed to load at `import openmm`."""
    for failure in openmm.Platform.getPluginLoadFailures():
        match = _FAILURE.match(failure)
        if match and ("OpenMMTorch" in match.group(1) or "SO3krates" in match.group(1)):
            try:
                openmm.Platform.loadPluginLibrary(match.group(1))
            except Exception:  # a plugin for hardware this machine lacks (OpenCL, CUDA) stays unloaded
                continue
