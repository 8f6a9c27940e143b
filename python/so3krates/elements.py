"""Checking that a system only holds elements a model was trained on."""
from typing import Iterable, Optional, Sequence

from ase.data import chemical_symbols


class UnsupportedElementError(ValueError):
    """An atom's element is not among the elements the model was trained on."""


def symbol(atomic_number: int) -> str:
    return chemical_symbols[atomic_number] if 0 <= atomic_number < len(chemical_symbols) else f"Z={atomic_number}"


def check_elements(atomic_numbers: Iterable[int], supported: Sequence[int],
                   atom_labels: Optional[Sequence[str]] = None) -> None:
    """Raise UnsupportedElementError naming the first offending atom (index, element) and the
    supported list. `atom_labels` optionally describes each atom (e.g. "atom 12 (CA of ALA2)")."""
    allowed = set(int(z) for z in supported)
    for index, z in enumerate(atomic_numbers):
        if int(z) not in allowed:
            where = atom_labels[index] if atom_labels is not None else f"atom {index}"
            names = ", ".join(symbol(s) for s in sorted(allowed))
            raise UnsupportedElementError(
                f"{where} is {symbol(int(z))}, which this model was not trained on; "
                f"supported elements: {names}")
