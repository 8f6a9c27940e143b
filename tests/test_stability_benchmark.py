"""benchmarks/stability.py in water: which proton left its atom, when, and for how long, read from the
positions (the benchmark's runs take minutes to hours; this checks what they report)."""
import sys
from pathlib import Path

import numpy as np
import openmm.app as app
import openmm.unit as unit

from conftest import EXAMPLE_DATA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from stability import Observer, summarize  # noqa: E402

from so3krates.md import solvate  # noqa: E402


def test_a_proton_moved_to_the_carboxylate_is_reported_with_when_and_how_long():
    pdb = app.PDBFile(str(EXAMPLE_DATA / "diglycine.pdb"))
    modeller, _ = solvate(pdb, 1.0, neutralize=False)
    topology = modeller.topology
    positions = np.array(modeller.getPositions().value_in_unit(unit.nanometer))
    box = np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    observer = Observer(topology, list(range(pdb.topology.getNumAtoms())))
    labels = observer.labels
    assert sorted(labels[h] for h in observer.protons) == ["H GLY1", "H GLY2", "H2 GLY1", "H3 GLY1"]
    start = observer.observe(positions, box)
    assert [labels[w] for w in start["nearest"]] == [labels[x] for x in observer.own]
    assert start["stretch"] == 1.0 and not start["water_h_away"] and len(start["bridges"]) == 1

    moved = positions.copy()
    proton = observer.protons[[labels[h] for h in observer.protons].index("H2 GLY1")]
    oxt = labels.index("OXT GLY2")
    moved[proton] = positions[oxt] + np.array([0.1, 0.0, 0.0])  # 1 Å from the carboxylate oxygen
    water_h = observer.water_h[0]
    moved[water_h] = moved[water_h] + np.array([0.2, 0.0, 0.0])  # a water proton leaves its oxygen
    away = observer.observe(moved, box)
    assert labels[away["nearest"][observer.protons.index(proton)]] == "OXT GLY2"
    assert away["water_h_away"] == [int(water_h)]

    reports = [start, away, away, start, away]
    result = {"proton_labels": [labels[h] for h in observer.protons], "own_atom": [labels[x] for x in observer.own],
              "times_ps": [0.025, 0.05, 0.075, 0.1, 0.125],
              "nearest": [[labels[w] for w in r["nearest"]] for r in reports],
              "water_h_away": [[labels[h] for h in r["water_h_away"]] for r in reports],
              "bridges": [r["bridges"] for r in reports], "stretch": [r["stretch"] for r in reports]}
    summary = summarize(result)
    assert summary["proton_visits"] == [["H2 GLY1", "OXT GLY2", 0.05, 0.075], ["H2 GLY1", "OXT GLY2", 0.125, 0.125]]
    assert summary["fraction_of_reports_with_a_proton_away"] == 0.6
    assert summary["water_h_left_their_oxygen"] == [labels[water_h]]
