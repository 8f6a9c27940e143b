"""Train / validation / test splits: seeded random over frames, or by molecule (no test molecule is
ever seen in training). Sizes are counts or fractions; the split is saved with the run."""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Union

import numpy as np

from .data import DataError, Frames

Size = Union[int, float]


@dataclass
class Split:
    train: List[int]
    valid: List[int]
    test: List[int]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"train": self.train, "valid": self.valid, "test": self.test}))

    @classmethod
    def load(cls, path: Path) -> "Split":
        d = json.loads(Path(path).read_text())
        return cls(d["train"], d["valid"], d["test"])


def _count(size: Size, total: int, name: str) -> int:
    n = int(round(size * total)) if isinstance(size, float) and size <= 1.0 else int(size)
    if n < 0:
        raise DataError(f"split size {name}={size} is negative")
    return n


def make_split(frames: Frames, train: Size, valid: Size, test: Size, seed: int = 0,
               by: str = "frame") -> Split:
    """`by="frame"`: random frames; `by="molecule"`: whole molecules are assigned to one part, sizes then
    count molecules."""
    rng = np.random.default_rng(seed)
    if by == "frame":
        units = [[k] for k in range(len(frames))]
    elif by == "molecule":
        groups: Dict[str, List[int]] = {}
        for k, m in enumerate(frames.molecule):
            groups.setdefault(str(m), []).append(k)
        units = list(groups.values())
    else:
        raise DataError(f"split by={by!r} must be 'frame' or 'molecule'")
    n_train, n_valid, n_test = (_count(s, len(units), n) for s, n in ((train, "train"), (valid, "valid"),
                                                                          (test, "test")))
    if n_train + n_valid + n_test > len(units) or n_train == 0:
        raise DataError(f"split sizes train={n_train}, valid={n_valid}, test={n_test} need "
                        f"{n_train + n_valid + n_test} {by}s (and at least one for training), but the data "
                        f"have {len(units)}")
    order = rng.permutation(len(units))
    parts = np.split(order[:n_train + n_valid + n_test], [n_train, n_train + n_valid])
    return Split(*[sorted(k for u in part for k in units[u]) for part in parts])
