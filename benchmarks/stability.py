"""Stability of a model in MD, in vacuum or in water.

Vacuum (the molecule alone): Langevin NVT at 300 K and 500 K for as long as the budget allows, whether
the molecule stays intact (every bond between heavy atoms within 1.5x its starting length) and which
hydrogens end on another heavy atom, then NVE energy drift per atom per ns:

    python benchmarks/stability.py --model runs/ethanol/model.pt --pdb examples/data/ethanol.pdb [--minutes 2]
    python benchmarks/stability.py --model so3lr --pdb examples/data/chignolin.pdb --charge -2

Water (--water PADDING_NM): the molecule in TIP3P, described in each of --modes: `mechanical` and
`electrostatic` (ML/MM embeddings of createMixedSystem; `electrostatic-damped`: the same with SO3LR's
erf(r/4 Å) kernel, embeddingDamping=0.4 nm) and `all-ml` (solute and water with the model, no ions). Every mode starts from the same MM-equilibrated structure and velocities (Amber14
and TIP3P, --equilibrate-ps at 300 K) and the same seed, runs --ps of Langevin NVT at 300 K, then
--nve-ps of NVE. Reported every 25 fs: each labile proton (H bonded to N or O) and the heavy atom
nearest to it (when it left its own atom, where it went, how long it stayed), any water hydrogen that
left its own oxygen (more than 1.3 Å away), the salt-bridge distances (ammonium N to the
nearest carboxylate O), the largest heavy-atom bond stretch; then NVE drift and ms/step. One JSON per
run in --output (a run that is interrupted resumes from its last checkpoint), and a figure:

    python benchmarks/stability.py --model so3lr --pdb examples/data/diglycine.pdb --water 1.0 --ps 10
    python benchmarks/stability.py --model so3lr --pdb examples/data/chignolin.pdb --water 1.0 --ps 3 \\
        --modes mechanical electrostatic electrostatic-damped

--plot-from DIR ... --output FIGURE.png draws the stored runs of several molecules into one figure.
--transfer PROTON ACCEPTOR (with --water and --output of such a run) measures why a proton moves: the
energy change of putting it on the acceptor, the rest fixed, per description (SO3LR alone, each
embedding), in the MM start or in --frame (each run keeps the structure of the last report before a
proton first left its atom).
"""
import argparse
import json
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

from so3krates.md import ml_potential, solute_charge, solvate
from so3krates.threads import use_threads

BOND_FACTOR = 1.5
BOND_CUTOFF_ANGSTROM = 1.7  # vacuum mode: atoms closer than this at the start count as bonded
TIMESTEP_FS = 0.5
REPORT_STEPS = 50  # 25 fs
WATER_OH_MAX_NM = 0.13  # a water hydrogen farther than this from its oxygen has left it
CHECKPOINT_STEPS = 1000
WATER_MODES = ("mechanical", "electrostatic", "electrostatic-damped", "all-ml")
EMBEDDING_OPTIONS = {"mechanical": {"embedding": "mechanical"}, "electrostatic": {"embedding": "electrostatic"},
                     "electrostatic-damped": {"embedding": "electrostatic", "embeddingDamping": 0.4 * unit.nanometer}}
AMMONIUM = {("LYS", "NZ"), ("ARG", "NH1"), ("ARG", "NH2"), ("ARG", "NE")}
CARBOXYLATE = {("ASP", "OD1"), ("ASP", "OD2"), ("GLU", "OE1"), ("GLU", "OE2")}


def atom_labels(topology: app.Topology) -> List[str]:
    """"NAME RESn" for every atom (residues numbered from 1), as the reports name atoms."""
    return [f"{a.name} {a.residue.name}{a.residue.index + 1}" for a in topology.atoms()]


# ---- vacuum ----

def bonded_pairs(positions_nm: np.ndarray, atoms: np.ndarray, heavy: np.ndarray) -> np.ndarray:
    """Pairs of heavy `atoms` closer than BOND_CUTOFF_ANGSTROM in the starting structure."""
    atoms = atoms[heavy[atoms]]
    sub = positions_nm[atoms]
    d = np.linalg.norm(sub[:, None] - sub[None], axis=-1) * 10.0
    i, j = np.nonzero(np.triu(d < BOND_CUTOFF_ANGSTROM, 1))
    return np.stack([atoms[i], atoms[j]], axis=1)


def bond_lengths(positions_nm: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions_nm[pairs[:, 0]] - positions_nm[pairs[:, 1]], axis=1)


def hydrogen_partners(positions_nm: np.ndarray, atoms: np.ndarray, heavy: np.ndarray) -> dict:
    """{hydrogen: the heavy atom nearest to it} among `atoms`."""
    hydrogens, heavies = atoms[~heavy[atoms]], atoms[heavy[atoms]]
    d = np.linalg.norm(positions_nm[hydrogens][:, None] - positions_nm[heavies][None], axis=-1)
    return dict(zip(hydrogens.tolist(), heavies[np.argmin(d, axis=1)].tolist()))


def positions_nm(context: openmm.Context) -> np.ndarray:
    return np.asarray(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))


def run_nvt(system, positions, atoms: np.ndarray, heavy: np.ndarray, temperature: float, seconds: float):
    """Langevin at `temperature` until the budget ends or a heavy-atom bond stretches past BOND_FACTOR
    -> (ps, largest stretch, intact, {h: (start partner, end partner)} of moved hydrogens, context)."""
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, 1 / unit.picosecond,
                                                 TIMESTEP_FS * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(positions)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, 1)
    start_positions = np.array(positions.value_in_unit(unit.nanometer))
    pairs = bonded_pairs(start_positions, atoms, heavy)
    reference = bond_lengths(start_positions, pairs)
    partners = hydrogen_partners(start_positions, atoms, heavy)
    worst, steps, start = 0.0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        integrator.step(2 * REPORT_STEPS)
        steps += 2 * REPORT_STEPS
        pos = positions_nm(context)
        worst = max(worst, float(np.max(bond_lengths(pos, pairs) / reference)))
        if worst > BOND_FACTOR:
            break
    now = hydrogen_partners(pos, atoms, heavy)
    moved = {h: (partners[h], now[h]) for h in partners if now[h] != partners[h]}
    return steps * TIMESTEP_FS * 1e-3, worst, worst <= BOND_FACTOR, moved, context


def nve_drift(context: openmm.Context, steps: int, seconds: float = float("inf")):
    """NVE (velocity Verlet) from the context's state for `steps` steps or `seconds` -> (drift in
    kJ/mol per atom per ns, ps run)."""
    system = context.getSystem()
    state = context.getState(getPositions=True, getVelocities=True)
    nve = openmm.Context(system, openmm.VerletIntegrator(TIMESTEP_FS * unit.femtosecond),
                         openmm.Platform.getPlatformByName("CPU"))
    nve.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
    nve.setPositions(state.getPositions())
    nve.setVelocities(state.getVelocities())
    times, totals, done, start = [], [], 0, time.perf_counter()
    while True:
        s = nve.getState(getEnergy=True)
        times.append(s.getTime().value_in_unit(unit.nanosecond))
        totals.append((s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
        if done >= steps or time.perf_counter() - start >= seconds:
            break
        nve.getIntegrator().step(REPORT_STEPS)
        done += REPORT_STEPS
    return float(np.polyfit(times, totals, 1)[0] / system.getNumParticles()), done * TIMESTEP_FS * 1e-3


def vacuum(args) -> None:
    pdb = app.PDBFile(args.pdb)
    system = ml_potential(args.model).createSystem(pdb.topology, charge=args.charge)
    atoms = np.arange(pdb.topology.getNumAtoms())
    labels = atom_labels(pdb.topology)
    heavy = np.array([a.element.symbol != "H" for a in pdb.topology.atoms()])
    for temperature in (300.0, 500.0):
        ps, worst, intact, moved, context = run_nvt(system, pdb.getPositions(), atoms, heavy, temperature,
                                                    60 * args.minutes)
        transfers = "; ".join(f"{labels[h]} moved from {labels[a]} to {labels[b]}" for h, (a, b) in moved.items())
        print(f"NVT {temperature:.0f} K: {ps:.1f} ps, largest heavy-atom bond stretch {worst:.2f}x -> "
              f"{'intact' if intact else 'BROKEN'}; hydrogens on another atom at the end: {transfers or 'none'}")
        if temperature == 300.0:
            drift, ps_nve = nve_drift(context, 10 ** 9, 60 * args.minutes)
            print(f"NVE after 300 K: {ps_nve:.1f} ps, drift {drift:+.3f} kJ/mol per atom per ns")


# ---- water ----

class Observer:
    """What is watched in a solvated run: labile protons and their nearest heavy atom, water
    hydrogens that left their oxygen, salt bridges and heavy-atom bonds of the solute."""

    def __init__(self, topology: app.Topology, solute: List[int]):
        atoms = list(topology.atoms())
        self.labels = atom_labels(topology)
        solute_set = set(solute)
        heavy = [a.index for a in atoms if a.index in solute_set and a.element.symbol != "H"]
        waters = [r for r in topology.residues() if r.name == "HOH"]
        self.water_o = np.array([a.index for r in waters for a in r.atoms() if a.element.symbol == "O"])
        self.water_h = np.array([a.index for r in waters for a in r.atoms() if a.element.symbol == "H"])
        self.water_h_owner = np.array([next(b for b in r.atoms() if b.element.symbol == "O").index
                                       for r in waters for a in r.atoms() if a.element.symbol == "H"])
        self.protons, self.own = [], []
        for a, b in topology.bonds():
            for h, x in ((a, b), (b, a)):
                if h.index in solute_set and h.element.symbol == "H" and x.element.symbol in ("N", "O"):
                    self.protons.append(h.index)
                    self.own.append(x.index)
        self.acceptors = np.array(heavy + self.water_o.tolist())  # where a proton may go
        self.bonds = np.array([(a.index, b.index) for a, b in topology.bonds() if a.index in solute_set
                               and b.index in solute_set and a.element.symbol != "H" and b.element.symbol != "H"])
        positive = [a.index for a in atoms if a.index in solute_set and
                    ((a.residue.name, a.name) in AMMONIUM or (a.name == "N" and a.residue.index == 0))]
        last = max(atoms[i].residue.index for i in solute)
        negative = [a.index for a in atoms if a.index in solute_set and
                    ((a.residue.name, a.name) in CARBOXYLATE or (a.name in ("O", "OXT") and a.residue.index == last))]
        self.bridges = [(p, negative) for p in positive] if negative else []
        self.bond_reference = None

    def observe(self, pos: np.ndarray, box: np.ndarray) -> Dict:
        """One report: nearest acceptor of each labile proton, water hydrogens that left their oxygen,
        salt bridges (Å), largest heavy-atom bond stretch."""
        inverse = np.linalg.inv(box)

        def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # minimum image, rectangular or triclinic
            d = pos[b][None] - pos[a][:, None]
            frac = d @ inverse
            return np.linalg.norm((frac - np.round(frac)) @ box, axis=-1) * 10.0

        nearest = self.acceptors[np.argmin(distances(np.array(self.protons), self.acceptors), axis=1)]
        strayed = [] if not len(self.water_h) else [
            int(h) for h, d in zip(self.water_h, np.linalg.norm(pos[self.water_h] - pos[self.water_h_owner], axis=1))
            if d > WATER_OH_MAX_NM]
        lengths = np.linalg.norm(pos[self.bonds[:, 0]] - pos[self.bonds[:, 1]], axis=1)
        if self.bond_reference is None:
            self.bond_reference = lengths
        return {"nearest": nearest.tolist(), "water_h_away": strayed,
                "bridges": [float(distances(np.array([p]), np.array(qs)).min()) for p, qs in self.bridges],
                "stretch": float(np.max(lengths / self.bond_reference))}


def away_from_own_atom(result: Dict) -> np.ndarray:
    """(reports, protons) True where a labile proton's nearest heavy atom is another than its own."""
    return np.array([[n != o for n, o in zip(row, result["own_atom"])] for row in result["nearest"]],
                    dtype=bool).reshape(len(result["nearest"]), len(result["own_atom"]))


def summarize(result: Dict) -> Dict:
    """Add to a run's record: proton visits away from their own atom [(proton, to, first ps, last ps)],
    the fraction of reports with any proton away, water hydrogens seen near the solute, the salt-bridge
    distances at the end and the largest bond stretch (computed from the stored reports, so a stored
    run is summarised again by a newer version of this script)."""
    visits = []
    for k, (proton, own) in enumerate(zip(result["proton_labels"], result["own_atom"])):
        current = None
        for t, row in zip(result["times_ps"], result["nearest"]):
            where = row[k]
            if where == own:
                current = None
            elif current is not None and current[1] == where:
                current[3] = t
            else:
                current = [proton, where, t, t]
                visits.append(current)
    away = away_from_own_atom(result).any(axis=1)
    return {**result, "proton_visits": visits,
            "fraction_of_reports_with_a_proton_away": float(away.sum()) / max(1, len(away)),
            "water_h_left_their_oxygen": sorted({h for row in result["water_h_away"] for h in row}),
            "salt_bridge_A_last": result["bridges"][-1] if result["bridges"] else [],
            "largest_bond_stretch": max(result["stretch"], default=1.0)}


def equilibrated_start(pdb: app.PDBFile, padding_nm: float, neutralize: bool, ps: float, seed: int, out: Path):
    """Solvate, minimise and run Amber14/TIP3P NVT at 300 K (2 fs, H bonds constrained): the MM start
    that every mode in the same box shares (kept in `out`; a neutral solute gets no ions, so ML/MM and
    all-ML share it) -> (topology, positions, velocities, MM system)."""
    modeller, mm_system = solvate(pdb, padding_nm, neutralize=neutralize)
    saved = out / f"start_{padding_nm:g}nm_{modeller.topology.getNumAtoms()}atoms.xml"
    if not saved.exists():
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
        integrator.setRandomNumberSeed(seed)
        simulation = app.Simulation(modeller.topology, mm_system, integrator,
                                    openmm.Platform.getPlatformByName("CPU"))
        simulation.context.setPositions(modeller.positions)
        simulation.minimizeEnergy(maxIterations=500)
        simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
        simulation.step(int(ps * 500))
        state = simulation.context.getState(getPositions=True, getVelocities=True)
        saved.write_text(openmm.XmlSerializer.serialize(state))
    state = openmm.XmlSerializer.deserialize(saved.read_text())
    modeller.topology.setPeriodicBoxVectors(state.getPeriodicBoxVectors())
    return modeller.topology, state.getPositions(), state.getVelocities(), mm_system


def water_run(args, mode: str, out: Path) -> Dict:
    """One mode: NVT then NVE from the shared MM start; resumes from out/<mode>.checkpoint.xml."""
    result_file = out / f"{mode}.json"
    if result_file.exists():
        return summarize(json.loads(result_file.read_text()))
    pdb = app.PDBFile(args.pdb)
    solute = list(range(pdb.topology.getNumAtoms()))
    all_ml = mode == "all-ml"
    padding = args.all_ml_padding if all_ml and args.all_ml_padding else args.water
    topology, positions, velocities, mm_system = equilibrated_start(pdb, padding, not all_ml, args.equilibrate_ps,
                                                                    args.seed, out)
    potential = ml_potential(args.model)
    if all_ml:
        charge = solute_charge(args.model, topology, solute, mm_system, args.charge, None)
        system = potential.createSystem(topology, charge=charge)
    else:
        system = potential.createMixedSystem(topology, mm_system, solute, charge=args.charge, **EMBEDDING_OPTIONS[mode])
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, TIMESTEP_FS * unit.femtosecond)
    integrator.setRandomNumberSeed(args.seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"),
                             {"Threads": str(args.threads)})
    context.setPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    context.setPositions(positions)
    context.setVelocities(velocities)
    observer = Observer(topology, solute)
    partial, checkpoint = out / f"{mode}.partial.json", out / f"{mode}.checkpoint.xml"
    record = {"reports": [], "times_ps": [], "seconds": 0.0, "steps": 0}
    box = np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    observer.observe(np.array(positions.value_in_unit(unit.nanometer)), box)  # bond lengths of the start
    if checkpoint.exists() and partial.exists():
        context.setState(openmm.XmlSerializer.deserialize(checkpoint.read_text()))
        record = json.loads(partial.read_text())
        print(f"{mode}: resuming at {record['steps'] * TIMESTEP_FS / 1000:.2f} ps")
    total_steps = int(round((args.all_ml_ps if all_ml else args.ps) * 1000 / TIMESTEP_FS))
    before_transfer = out / f"{mode}.before_first_transfer.xml"  # for --transfer --frame
    previous = context.getState(getPositions=True)
    while record["steps"] < total_steps:
        start = time.perf_counter()
        integrator.step(REPORT_STEPS)
        record["seconds"] += time.perf_counter() - start
        record["steps"] += REPORT_STEPS
        record["times_ps"].append(record["steps"] * TIMESTEP_FS / 1000)
        state = context.getState(getPositions=True)
        record["reports"].append(observer.observe(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), box))
        if not before_transfer.exists() and any(w != o for w, o in zip(record["reports"][-1]["nearest"], observer.own)):
            before_transfer.write_text(openmm.XmlSerializer.serialize(previous))
        previous = state
        if record["steps"] % CHECKPOINT_STEPS == 0 or record["steps"] >= total_steps:
            state = context.getState(getPositions=True, getVelocities=True, getParameters=True)
            checkpoint.write_text(openmm.XmlSerializer.serialize(state))
            partial.write_text(json.dumps(record))
            print(f"{mode}: {record['times_ps'][-1]:.2f} ps, {1000 * record['seconds'] / record['steps']:.1f} ms/step")
    drift, nve_ps = nve_drift(context, int(round(args.nve_ps * 1000 / TIMESTEP_FS)))
    result = {"mode": mode, "pdb": args.pdb, "model": args.model, "atoms": topology.getNumAtoms(),
              "ml_atoms": topology.getNumAtoms() if all_ml else len(solute), "nvt_ps": record["times_ps"][-1],
              "ms_per_step": 1000 * record["seconds"] / record["steps"], "nve_ps": nve_ps,
              "nve_drift_kJ_mol_atom_ns": drift, "times_ps": record["times_ps"],
              "proton_labels": [observer.labels[h] for h in observer.protons],
              "own_atom": [observer.labels[x] for x in observer.own],
              "nearest": [[observer.labels[w] for w in r["nearest"]] for r in record["reports"]],
              "water_h_away": [[observer.labels[h] for h in r["water_h_away"]] for r in record["reports"]],
              "bridges": [r["bridges"] for r in record["reports"]],
              "stretch": [r["stretch"] for r in record["reports"]]}
    result_file.write_text(json.dumps(result))
    checkpoint.unlink()
    partial.unlink()
    return summarize(result)


def describe(result: Dict) -> str:
    visits = "; ".join(f"{h} -> {to} {t0:.2f}-{t1:.2f} ps" for h, to, t0, t1 in result["proton_visits"][:6])
    more = len(result["proton_visits"]) - 6
    return (f"{result['mode']}: {result['nvt_ps']:.2f} ps NVT, {result['ms_per_step']:.1f} ms/step, "
            f"{result['atoms']} atoms ({result['ml_atoms']} ML); protons away in "
            f"{100 * result['fraction_of_reports_with_a_proton_away']:.0f} % of reports"
            f"{': ' + visits if visits else ''}{f' (+{more} more)' if more > 0 else ''}; water H that left their O: "
            f"{', '.join(result['water_h_left_their_oxygen']) or 'none'}; salt bridges at the end "
            f"{', '.join(f'{d:.1f}' for d in result['salt_bridge_A_last'])} Å; bonds within "
            f"{result['largest_bond_stretch']:.2f}x; NVE {result['nve_ps']:.2f} ps, drift "
            f"{result['nve_drift_kJ_mol_atom_ns']:+.3f} kJ/mol per atom per ns")


def plot(results: List[Dict], path: Path) -> None:
    """One panel per mode: 1 where a labile proton's nearest heavy atom is another than its own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(8, 1.6 * len(results)), sharex=True, squeeze=False)
    for ax, result in zip(axes[:, 0], results):
        away = away_from_own_atom(result)
        for k, label in enumerate(result["proton_labels"]):
            if away[:, k].any():
                ax.plot(result["times_ps"], away[:, k] + 0.04 * k, drawstyle="steps-post", label=label)
        bridges = np.array(result["bridges"])
        if bridges.size:
            twin = ax.twinx()
            twin.plot(result["times_ps"], bridges.min(axis=1), color="grey", lw=0.6)
            twin.set_ylabel("salt bridge (Å)", fontsize=7)
        ax.set_ylim(-0.1, 1.6)
        ax.set_yticks([0, 1], ["own", "away"])
        ax.set_title(f"{result.get('run', Path(result['pdb']).stem)}, {result['mode']}", fontsize=8)
        if away.any():
            ax.legend(fontsize=6, loc="upper left")
    axes[-1, 0].set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def proton_transfer_energies(args) -> None:
    """Why a proton moves: with the MM-equilibrated start of --water fixed, the proton --transfer H ACCEPTOR
    is put at its bond length from the acceptor, on the line from its own atom (nothing relaxed), and
    the energy change is printed for the solute alone (SO3LR in vacuum) and for each ML/MM mode. A
    negative change favours the transfer; the difference between the modes is what the water's answer
    to the moved charges is worth in each description."""
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    pdb = app.PDBFile(args.pdb)
    solute = list(range(pdb.topology.getNumAtoms()))
    topology, positions, _, mm_system = equilibrated_start(pdb, args.water, True, args.equilibrate_ps, args.seed, out)
    if args.frame:
        positions = openmm.XmlSerializer.deserialize(Path(args.frame).read_text()).getPositions()
    labels = atom_labels(topology)
    proton, acceptor = (labels.index(name) for name in args.transfer)
    own = next(b.index if a.index == proton else a.index for a, b in topology.bonds() if proton in (a.index, b.index))
    start = np.array(positions.value_in_unit(unit.nanometer))
    moved = start.copy()
    direction = start[own] - start[acceptor]
    moved[proton] = start[acceptor] + direction / np.linalg.norm(direction) * np.linalg.norm(start[proton] - start[own])
    print(f"{labels[proton]}: {labels[own]} -> {labels[acceptor]}, {10 * np.linalg.norm(start[own] - start[acceptor]):.2f} Å "
          f"apart; energy change on moving it (kJ/mol; negative favours the transfer):")
    potential = ml_potential(args.model)
    charge = solute_charge(args.model, topology, solute, mm_system, args.charge, None)
    cases = {"SO3LR, solute alone (vacuum)": (potential.createSystem(pdb.topology, charge=charge), solute)}
    for mode in ("mechanical", "electrostatic", "electrostatic-damped"):
        cases[f"ML/MM, {mode}"] = (potential.createMixedSystem(topology, mm_system, solute, charge=args.charge,
                                                               **EMBEDDING_OPTIONS[mode]), None)
    for name, (system, atoms) in cases.items():
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                                 {"Threads": str(args.threads)})
        energies = []
        for pos in (start, moved):
            context.setPositions(pos if atoms is None else pos[atoms])
            energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        print(f"  {name:36s} {energies[1] - energies[0]:+9.1f}")


def water(args) -> None:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for mode in args.modes:
        results.append(water_run(args, mode, out))
        print(describe(results[-1]), flush=True)
    plot(results, out / "stability.png")
    print(f"wrote {out / 'stability.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model file, or so3lr (the pretrained SO3LR)")
    parser.add_argument("--pdb", required=True)
    parser.add_argument("--charge", type=float, default=None, help="total charge (e) of the molecule (in water: "
                        "default the sum of its Amber14 charges)")
    parser.add_argument("--minutes", type=float, default=2.0, help="vacuum: budget per temperature and for NVE")
    parser.add_argument("--water", type=float, default=0.0, metavar="PADDING_NM",
                        help="solvate in TIP3P with this padding (nm) and compare --modes")
    parser.add_argument("--modes", nargs="+", choices=WATER_MODES, default=list(WATER_MODES))
    parser.add_argument("--all-ml-padding", type=float, default=None,
                        help="water padding (nm) for all-ML (default: --water)")
    parser.add_argument("--ps", type=float, default=2.0, help="NVT length per mode (ps)")
    parser.add_argument("--all-ml-ps", type=float, default=1.0, help="NVT length of the all-ML mode (ps)")
    parser.add_argument("--nve-ps", type=float, default=1.0, help="NVE length after NVT (ps)")
    parser.add_argument("--equilibrate-ps", type=float, default=20.0, help="MM equilibration (ps)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frame", help="with --transfer: a state XML to start from instead of the MM start "
                        "(a run's <mode>.before_first_transfer.xml: the last report before a proton first left)")
    parser.add_argument("--plot-from", nargs="+", metavar="DIR",
                        help="only draw the runs stored in these --output folders into the figure --output")
    parser.add_argument("--transfer", nargs=2, metavar=("PROTON", "ACCEPTOR"),
                        help='with --water: energy change of moving one proton, e.g. "H GLY1" "OD2 ASP3"')
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: OMP_NUM_THREADS or all cores)")
    parser.add_argument("--output", default="runs/stability")
    args = parser.parse_args()
    if args.plot_from:
        results = [{**summarize(json.loads(f.read_text())), "run": Path(d).name} for d in args.plot_from
                   for m in WATER_MODES if (f := Path(d) / f"{m}.json").exists()]
        plot(results, Path(args.output))
        return
    args.threads = use_threads(args.threads)
    if args.transfer:
        proton_transfer_energies(args)
    else:
        water(args) if args.water > 0 else vacuum(args)


if __name__ == "__main__":
    main()
