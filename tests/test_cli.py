"""The `so3krates` command line as a user runs it."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from so3krates.cli import main

from conftest import EXAMPLE_DATA


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("init", "info", "md", "import-so3lr", "doctor"):
        assert command in out


def test_init_info_md_vacuum(tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["init", str(model), "--elements", "H,C,N,O", "--features", "32", "--radial", "8"]) == 0
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "elements        H C N O" in out and "cutoff          5.0 Å" in out
    assert main(["md", "--model", str(model), "--steps", "20", "--report-interval", "10",
                 "--output", str(tmp_path / "md")]) == 0
    out = capsys.readouterr().out
    assert "ns/day" in out
    lines = (tmp_path / "md" / "energies.csv").read_text().splitlines()
    assert len(lines) == 3  # header + 2 reports
    assert (tmp_path / "md" / "trajectory.dcd").stat().st_size > 0


def test_so3lr_by_name_info_and_md_with_threads(tmp_path, capsys):
    assert main(["info", "so3lr"]) == 0
    out = capsys.readouterr().out
    assert "SO3LR" in out and "elements        H C N O F P S Cl" in out and "long-range terms" in out
    threads = torch.get_num_threads()
    try:
        assert main(["md", "--model", "so3lr", "--steps", "4", "--report-interval", "2", "--threads", "1",
                     "--output", str(tmp_path / "md")]) == 0
    finally:
        torch.set_num_threads(threads)  # the command sets it for the whole process
    out = capsys.readouterr().out
    assert "using 1 CPU thread (from --threads" in out and "ns/day" in out


def test_md_in_water_runs(tmp_path, capsys):
    model = tmp_path / "m.pt"
    main(["init", str(model), "--elements", "H,C,N,O", "--features", "32", "--radial", "8"])
    assert main(["md", "--model", str(model), "--water", "1.0", "--steps", "4", "--report-interval", "2",
                 "--output", str(tmp_path / "md")]) == 0
    assert "(22 ML)" in capsys.readouterr().out




def test_md_in_water_with_electrostatic_embedding_and_all_ml(tmp_path, capsys):
    """The diglycine zwitterion with SO3LR: ML/MM with its own charges, and all-ML water."""
    pdb = str(EXAMPLE_DATA / "diglycine.pdb")
    assert main(["md", "--model", "so3lr", "--pdb", pdb, "--water", "1.0", "--embedding", "electrostatic",
                 "--steps", "2", "--report-interval", "1", "--output", str(tmp_path / "embedded")]) == 0
    assert "(17 ML)" in capsys.readouterr().out
    assert main(["md", "--model", "so3lr", "--pdb", pdb, "--water", "1.0", "--all-ml", "--steps", "2",
                 "--report-interval", "1", "--output", str(tmp_path / "all-ml")]) == 0
    out = capsys.readouterr().out
    atoms = int(out.split(" atoms (")[0].split()[-1])
    assert f"{atoms} atoms ({atoms} ML)" in out and atoms > 500


def test_md_in_water_keeps_counter_ions_out_of_the_ml_region(tmp_path, capsys):
    """Chignolin (−2 e) gets two Na+ from the solvation; the ML region is the peptide alone."""
    assert main(["md", "--model", "so3lr", "--pdb", str(EXAMPLE_DATA / "chignolin.pdb"), "--water", "1.0",
                 "--steps", "1", "--report-interval", "1", "--output", str(tmp_path / "md")]) == 0
    assert "(138 ML)" in capsys.readouterr().out


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "m.pt"), "--elements", "H,Xx"]) == 2
    assert "'Xx' is not an element" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "m.pt"), "--features", "30"]) == 2
    assert "must be divisible" in capsys.readouterr().err
    main(["init", str(tmp_path / "m.pt"), "--elements", "C,H"])
    assert main(["md", "--model", str(tmp_path / "m.pt"), "--steps", "1"]) == 2
    assert "supported elements: H, C" in capsys.readouterr().err
    assert main(["md", "--model", str(tmp_path / "m.pt"), "--water", "0.5"]) == 2
    assert "too small" in capsys.readouterr().err
    assert main(["md", "--model", "so3lr", "--all-ml"]) == 2
    assert "give --water PADDING_NM" in capsys.readouterr().err
    assert main(["md", "--model", "so3lr", "--water", "1.0", "--all-ml", "--embedding", "electrostatic"]) == 2
    assert "either --all-ml or --embedding" in capsys.readouterr().err
    assert main(["md", "--model", str(tmp_path / "m.pt"), "--water", "1.0", "--embedding", "electrostatic"]) == 2
    assert "needs a model that predicts partial charges" in capsys.readouterr().err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "so3krates"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "so3krates" in result.stdout


def test_ci_runs_the_readme_test_command():
    root = Path(__file__).resolve().parents[1]
    readme_commands = [line for line in (root / "README.md").read_text().splitlines()
                       if line.startswith("python3.11 -m venv")]
    assert len(readme_commands) == 2
    assert readme_commands[1] in (root / ".ci" / "run").read_text()
