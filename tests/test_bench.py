"""`so3krates bench`: runs its cases in worker processes and reports a table (peers need their own
environment, so only our cases run here)."""
import json
from pathlib import Path

import pytest
import yaml

from so3krates.bench.driver import SO3KRATES_SIZES, scaling_plot
from so3krates.cli import main


def test_bench_reports_our_sizes_and_so3lr(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    assert main(["bench", "--systems", "alanine", "--repeats", "1", "--steps", "2", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert all(f"SO3krates {size}" in out for size in ("default", "small", "3-block"))
    assert "SO3LR" in out and "TorchForce" in out
    results = json.loads(out_json.read_text())
    for label in ("SO3krates default", "SO3krates small", "SO3krates 3-block", "SO3LR (ours, pretrained)"):
        result = results[label]["alanine"]
        assert result["atoms"] == 22 and result["ms_per_step"] > 0 and result["force"] == "TorchForce"


def test_the_3_block_size_is_the_qm7x_example_model():
    """The bench times the model the QM7-X example trains; the two must not drift apart."""
    example = Path(__file__).parents[1] / "examples" / "qm7x_multi_molecule.yaml"
    assert SO3KRATES_SIZES["3-block"] == yaml.safe_load(example.read_text())["model"]


def test_scaling_plot_fits_the_exponents(tmp_path):
    atoms = [100, 1000, 10000]
    curves = {"linear": [{"atoms": n, "ms_per_step": 0.5 * n} for n in atoms],
              "quadratic": [{"atoms": n, "ms_per_step": 1e-3 * n * n} for n in atoms]}
    exponents = scaling_plot(curves, str(tmp_path / "scaling.png"))
    assert exponents["linear"] == pytest.approx(1.0) and exponents["quadratic"] == pytest.approx(2.0)
    assert (tmp_path / "scaling.png").stat().st_size > 1000


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this checks the machine without a GPU")
def test_gpu_check_without_a_gpu_says_so_and_runs_nothing(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    report = tmp_path / "report.txt"
    result = subprocess.run(["bash", str(script), str(report)], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    assert "no CUDA GPU visible" in result.stdout and not report.exists()
