"""Train / validation / test splits: seeded random over frames, or by molecule (no test molecule is
ever seen in training). Sizes are counts or fractions; the split is saved with the run."""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Union

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
               by: str = "frame", report: Callable[[str], None] = print) -> Split:
    """`by="frame"`: random frames; `by="molecule"`: whole molecules are assigned to one part, sizes then
    count molecules. A validation or test unit holding an element that no training unit has (QM7-X's
    one chlorine molecule) is swapped with a training unit whose elements the rest of training still
    has: the model could learn nothing about that element, and its per-element energy would be
    unknown. Splits without such rare elements are unchanged; `report` says what moved."""
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
    parts = [list(p) for p in np.split(order[:n_train + n_valid + n_test], [n_train, n_train + n_valid])]
    _cover_elements_in_training(frames, units, parts, report)
    return Split(*[sorted(k for u in part for k in units[u]) for part in parts])


def _cover_elements_in_training(frames: Frames, units: List[List[int]], parts: List[List[int]],
                                report: Callable[[str], None]) -> None:
    """Swap validation/test units with elements absent from training against training units whose
    elements the other training units cover (in place; sizes unchanged). Keeps a count of training
    units per element, so a split of 100k frames costs one pass, not a union over training per frame."""
    present = frames.composition() > 0  # (frames, elements)
    unit_present = np.array([present[frames_of].any(axis=0) for frames_of in units])  # (units, elements)
    train = parts[0]
    in_training = unit_present[train].sum(axis=0)  # training units holding each element
    for part, name in ((parts[1], "validation"), (parts[2], "test")):
        for position, unit in enumerate(part):
            missing = unit_present[unit] & (in_training == 0)
            if not missing.any():
                continue
            with_unit = in_training + unit_present[unit]
            # a training unit may leave if each of its elements stays in training without it
            leavable = ((with_unit >= 2) | ~unit_present[train]).all(axis=1)
            if not leavable.any():
                continue
            t = int(np.argmax(leavable))
            candidate = train[t]
            train[t], part[position] = unit, candidate
            in_training = with_unit - unit_present[candidate]
            symbols = ", ".join(str(frames.elements[e]) for e in np.flatnonzero(missing))
            report(f"split: moved a {name} unit (frames {units[unit][:3]}{'...' if len(units[unit]) > 3 else ''})"
                   f" with element(s) Z={symbols}, which no training unit has, into training in exchange "
                   f"for frames {units[candidate][:3]}{'...' if len(units[candidate]) > 3 else ''}")
