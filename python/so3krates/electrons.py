"""The total charge and spin multiplicity a model is given, checked against the atoms.

Never a silently wrong charge: values must be whole numbers; a model without a charge (spin) input
cannot take a non-zero charge (multiplicity other than 1); a charge is taken from the MM force field
when the ML atoms are part of one (their MM charges must then sum to a whole number, and a charge the
user gives must agree); and the electron count must fit the multiplicity (an even number of electrons
needs an odd multiplicity), which catches the usual mistake of a charged molecule run as neutral.
"""
from typing import Iterable, Optional, Tuple

from .model_file import ModelInfo

WHOLE_TOLERANCE = 1e-6  # e: charges and multiplicities given by the user
MM_TOLERANCE = 0.01  # e: sum of MM partial charges (force fields round their charges)

WHERE_CHARGE = "charge= in createSystem/createMixedSystem or the ASE calculator, --charge in `so3krates md`"


def _shown(charge: float) -> str:
    return f"{round(charge, 3) + 0.0:+.3f}"  # + 0.0: no "-0.000"


def _whole(value: float, tolerance: float) -> Optional[int]:
    nearest = round(float(value))
    return nearest if abs(float(value) - nearest) <= tolerance else None


def resolve_charge_and_spin(info: ModelInfo, atomic_numbers: Iterable[int], charge: Optional[float] = None,
                            multiplicity: Optional[int] = None, mm_charge: Optional[float] = None
                            ) -> Tuple[float, float]:
    """-> (total charge in e, number of unpaired electrons = multiplicity - 1) for the model.

    charge/multiplicity: what the user gave (None: not given); mm_charge: the sum of the MM force
    field's charges of the ML atoms (createMixedSystem), None otherwise. A charge not given comes from
    mm_charge, else the model file's default (SO3LR: 0, as the reference); a model trained by us with
    charges has no default and needs it."""
    config = info.config
    takes_charge = config.takes_charge
    if charge is not None:
        given = _whole(charge, WHOLE_TOLERANCE)
        if given is None:
            raise ValueError(f"charge={charge} is not a whole number of elementary charges")
        if mm_charge is not None and abs(given - mm_charge) > MM_TOLERANCE:
            raise ValueError(f"charge={given} disagrees with the MM force field, whose charges of the ML atoms sum "
                             f"to {_shown(mm_charge)} e; fix the force field's protonation states or the charge")
        resolved = given
    elif mm_charge is not None:
        from_mm = _whole(mm_charge, MM_TOLERANCE)
        if from_mm is None:
            raise ValueError(f"the MM force field's charges of the ML atoms sum to {_shown(mm_charge)} e, not a whole "
                             f"number (does the ML region cut through a residue?): give the total charge with charge=")
        resolved = from_mm
    elif takes_charge and info.default_charge is None:
        raise ValueError(f"this model was trained on molecules with total charges: give the system's total charge "
                         f"({WHERE_CHARGE}; 0 for a neutral molecule)")
    else:
        resolved = int(info.default_charge or 0)
    if resolved != 0 and not takes_charge:
        raise ValueError(f"this model has no charge embedding (trained on neutral molecules); it cannot describe a "
                         f"total charge of {resolved}")

    spin = 1 if multiplicity is None else _whole(multiplicity, WHOLE_TOLERANCE)
    if spin is None or spin < 1:
        raise ValueError(f"multiplicity={multiplicity} must be a whole number >= 1 (1 singlet, 2 doublet, ...)")
    if spin != 1 and not config.use_spin_embed:
        raise ValueError(f"this model has no spin embedding; it describes singlets only, not multiplicity {spin}")

    if takes_charge:
        electrons = sum(int(z) for z in atomic_numbers) - resolved
        unpaired = spin - 1
        if electrons < unpaired or (electrons - unpaired) % 2:
            source = "the MM force field's charges" if charge is None and mm_charge is not None else (
                "the default charge" if charge is None else "charge=")
            raise ValueError(f"a total charge of {resolved:+d} e ({source}) leaves {electrons} electrons, which cannot "
                             f"have multiplicity {spin}: give the molecule's real charge ({WHERE_CHARGE}, e.g. +1 for "
                             f"a protonated amine, -1 for a carboxylate) or its multiplicity= for a radical")
    return float(resolved), float(spin - 1)
