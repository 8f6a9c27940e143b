"""How many CPU threads torch (and OpenMM's CPU platform) may use.

On a shared node other jobs use the same cores: torch's default (one intra-op thread per core it
sees) then spins against them, and training epochs were measured 15-30x slower on 2 shared cores.
The count is what the user asks for (--threads / the `threads` config key), else OMP_NUM_THREADS
(which schedulers such as Slurm set), else the cores in this process's CPU affinity mask (what
`taskset` or a cgroup allows, not the machine's core count).
"""
import os
from typing import Optional, Tuple


def available_cores() -> int:
    """Cores this process may run on (its affinity mask), or os.cpu_count() where that is unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_threads(requested: Optional[int] = None) -> Tuple[int, str]:
    """-> (thread count, where it came from)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads {requested}: give a positive number of threads")
        return requested, "--threads"
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value:
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS={value!r} is not a number of threads") from None
        if count >= 1:
            return count, "OMP_NUM_THREADS"
    return available_cores(), "the CPU affinity mask"


def use_threads(requested: Optional[int] = None, announce=print) -> int:
    """Set torch's intra-op threads as choose_threads decides, say so, and return the count."""
    import torch

    count, source = choose_threads(requested)
    torch.set_num_threads(count)
    announce(f"using {count} CPU thread{'s' if count != 1 else ''} (from {source}; {available_cores()} "
             f"core{'s' if available_cores() != 1 else ''} available to this process)")
    return count
