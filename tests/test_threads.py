"""Thread counts on shared machines: --threads, else OMP_NUM_THREADS, else the affinity mask."""
import os

import pytest
import torch

from so3krates.threads import available_cores, choose_threads, use_threads


def test_thread_count_sources(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads() == (len(os.sched_getaffinity(0)), "the CPU affinity mask")
    assert available_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert choose_threads() == (1, "OMP_NUM_THREADS")
    assert choose_threads(3) == (3, "--threads")
    with pytest.raises(ValueError, match="positive number"):
        choose_threads(0)
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='lots'"):
        choose_threads()


def test_use_threads_sets_torch_and_says_so():
    before = torch.get_num_threads()
    messages = []
    try:
        assert use_threads(1, announce=messages.append) == 1
        assert torch.get_num_threads() == 1
        assert messages[0].startswith("using 1 CPU thread (from --threads")
    finally:
        torch.set_num_threads(before)
