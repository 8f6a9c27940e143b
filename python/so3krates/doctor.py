"""`so3krates doctor`: what a user needs to debug an installation, in one screen.

Each check gives a status (ok, note: worth knowing, problem: something this package needs is
missing or broken) and, where something is wrong, what to install or set. OpenMM's plugin load
failures are translated into their usual causes.
"""
import os
import platform as host
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import List, Optional

OK, NOTE, PROBLEM = "ok", "note", "problem"
CUDA_EXTRA = "pip install 'openmm-so3krates[cuda12]' (CUDA 12, matching the torch wheel from PyPI)"
FAILURE = re.compile(r"Error loading library (\S+?): (.*)", re.S)


@dataclass
class Finding:
    topic: str
    status: str
    text: str


def package_version(name: str) -> Optional[str]:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def explain_failure(failure: str) -> str:
    """One of OpenMM's plugin load failures -> its usual cause and what to do."""
    match = FAILURE.match(failure)
    library, reason = (Path(match.group(1)).name, match.group(2)) if match else ("a plugin", failure)
    if "libOpenCL.so" in reason or "libOpenMMOpenCL" in reason:
        return f"{library}: no OpenCL runtime on this machine: the OpenCL platform cannot load (not needed)"
    if "libcuda.so" in reason:
        return f"{library}: no NVIDIA driver on this machine (libcuda.so.1 not found): the CUDA platform cannot load here"
    if "libOpenMMCUDA" in reason or re.search(r"libcudart\.so\.\d+|libcufft|libnvrtc", reason):
        return (f"{library}: the CUDA libraries it links to are missing ({reason.strip().splitlines()[0]}): "
                f"{CUDA_EXTRA}; with a CUDA-13 torch use the cuda13 extra instead")
    if "OpenMMTorch" in library and ("libtorch" in reason or "libc10" in reason or "undefined symbol" in reason):
        return (f"{library} failed because torch was not loaded when openmm was imported; so3krates reloads it "
                f"when it creates a System (fixed automatically)")
    if "SO3krates" in library:
        return (f"{library}: {reason.strip().splitlines()[0]}; reinstall openmm-so3krates from its source tree: "
                f"pip install --force-reinstall --no-deps .")
    return f"{library}: {reason.strip().splitlines()[0]}"


def platform_names() -> List[str]:
    """The OpenMM platforms that loaded."""
    import openmm

    return [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]


def check_versions() -> List[Finding]:
    import torch

    found = [Finding("python", OK, f"{host.python_version()} ({host.machine()}, {host.system()})")]
    cuda = torch.version.cuda or "CPU-only build"
    found.append(Finding("torch", OK, f"{torch.__version__} (CUDA {cuda})"))
    for name, required in (("openmm", True), ("openmmtorch", True), ("openmmml", True), ("openmm-so3krates", True),
                           ("OpenMM-CUDA-12", False), ("OpenMM-Torch-CUDA-12", False), ("OpenMM-CUDA-13", False),
                           ("OpenMM-Torch-CUDA-13", False)):
        installed = package_version(name)
        if installed:
            found.append(Finding(name, OK, installed))
        elif required:
            found.append(Finding(name, PROBLEM, "not installed: pip install openmm-so3krates installs it"))
    return found


def check_openmm() -> List[Finding]:
    import openmm

    from .openmm.plugins import ensure_torch_plugins

    ensure_torch_plugins()  # as creating a System does: reload openmm-torch's plugins now that torch is loaded
    platforms = platform_names()
    found = [Finding("OpenMM platforms", OK, ", ".join(platforms))]
    kernels = [name for name in platforms if openmm.Platform.getPlatformByName(name).supportsKernels(["CalcTorchForce"])]
    missing = [name for name in ("Reference", "CPU") if name in platforms and name not in kernels]
    found.append(Finding("openmm-torch kernels", PROBLEM if missing else OK,
                         f"TorchForce runs on: {', '.join(kernels) or 'no platform'}"
                         + (f"; missing on {', '.join(missing)}: reinstall openmmtorch" if missing else "")))
    for failure in openmm.Platform.getPluginLoadFailures():
        # OpenMM keeps the list from its first attempt; what it lacks shows in the checks above and below
        status = PROBLEM if "SO3krates" in failure else NOTE
        found.append(Finding("plugin load failure", status, explain_failure(failure)))
    return found


def check_ours() -> List[Finding]:
    import openmm
    import torch

    from . import _ops

    found = []
    if not _ops.OPS_LIBRARY.is_file():
        found.append(Finding("compiled ops", PROBLEM, f"{_ops.OPS_LIBRARY} is missing; {_ops.REBUILD_HINT}"))
    elif not hasattr(torch.ops.so3krates, "pair_energy"):
        found.append(Finding("compiled ops", PROBLEM, f"{_ops.OPS_LIBRARY} is an older build without SO3LR's ops; "
                                                      f"{_ops.REBUILD_HINT}"))
    else:
        found.append(Finding("compiled ops", OK, str(_ops.OPS_LIBRARY)))
    plugin = Path(openmm.version.openmm_library_path) / "plugins" / "libSO3kratesPlugin.so"
    if plugin.is_file():
        found.append(Finding("OpenMM plugin", OK, f"{plugin} (serialized Systems run without importing so3krates)"))
    else:
        found.append(Finding("OpenMM plugin", NOTE, f"not in {plugin.parent} (a conda install keeps it in "
                                                    f"$PREFIX/lib/plugins); serialized Systems need `import so3krates`"))
    from .so3lr import PACKAGED_MODEL

    found.append(Finding("SO3LR model", OK if PACKAGED_MODEL.is_file() else PROBLEM,
                         str(PACKAGED_MODEL) if PACKAGED_MODEL.is_file() else f"{PACKAGED_MODEL} is missing: reinstall"))
    return found


def check_gpu(platforms: List[str]) -> List[Finding]:
    import torch

    if not torch.cuda.is_available():
        reason = "torch is a CPU-only build" if torch.version.cuda is None else "no GPU or NVIDIA driver visible"
        cuda = ("OpenMM's CUDA platform is installed" if "CUDA" in platforms else
                f"OpenMM's CUDA platform is not installed (on a GPU machine: {CUDA_EXTRA})")
        return [Finding("GPU", NOTE, f"torch sees no CUDA device ({reason}); {cuda}")]
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    found = [Finding("GPU", OK, f"torch sees {torch.cuda.device_count()}: {names}")]
    if "CUDA" not in platforms:
        found.append(Finding("CUDA platform", PROBLEM, f"torch sees a GPU but OpenMM has no CUDA platform: {CUDA_EXTRA}"))
    return found


def check_threads() -> List[Finding]:
    import torch

    from .threads import available_cores, choose_threads

    count, source = choose_threads()
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    text = (f"torch uses {torch.get_num_threads()} intra-op threads now; so3krates train/md would use {count} "
            f"(from {source}); OMP_NUM_THREADS={omp}; {available_cores()} of {os.cpu_count()} cores in this "
            f"process's affinity mask")
    status = NOTE if torch.get_num_threads() > available_cores() else OK
    return [Finding("threads", status, text)]


def diagnose() -> List[Finding]:
    return check_versions() + check_openmm() + check_ours() + check_gpu(platform_names()) + check_threads()
