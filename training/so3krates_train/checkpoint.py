"""Checkpoints written atomically (temp file + rename): a kill never leaves a half-written file."""
from pathlib import Path
from typing import Any, Dict

import torch

from so3krates.atomic_file import atomic_path


def save_checkpoint(state: Dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    # our own file: it holds optimizer state and python containers besides tensors
    return torch.load(path, map_location="cpu", weights_only=False)
