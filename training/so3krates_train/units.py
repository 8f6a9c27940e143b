"""Unit conversions into the model's units (Å, eV) — applied once, when data is read."""

HARTREE_EV = 27.211386245988  # CODATA 2018
BOHR_ANGSTROM = 0.529177210903  # CODATA 2018
KCAL_MOL_EV = 4.184 / 96.48533212331002  # thermochemical kcal / (e·N_A) = 0.0433641 eV

ENERGY_UNITS_EV = {"eV": 1.0, "hartree": HARTREE_EV, "kcal/mol": KCAL_MOL_EV, "kJ/mol": 1.0 / 96.48533212331002,
                   "meV": 1e-3}
LENGTH_UNITS_ANGSTROM = {"angstrom": 1.0, "bohr": BOHR_ANGSTROM, "nm": 10.0}
