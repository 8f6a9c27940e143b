"""`so3krates bench`: runs its cases in worker processes and reports a table (peers need their own
environment, so only our cases run here)."""
import json

import pytest

from so3krates.bench.driver import scaling_plot
from so3krates.cli import main


def test_bench_reports_both_sizes(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    assert main(["bench", "--systems", "alanine", "--repeats", "1", "--steps", "2", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "SO3krates default" in out and "SO3krates small" in out and "TorchForce" in out
    results = json.loads(out_json.read_text())
    for size in ("SO3krates default", "SO3krates small"):
        result = results[size]["alanine"]
        assert result["atoms"] == 22 and result["ms_per_step"] > 0 and result["force"] == "TorchForce"


def test_scaling_plot_fits_the_exponent(tmp_path):
    atoms = [100, 1000, 10000]
    results = [{"atoms": n, "ms_per_step": 0.5 * n} for n in atoms]
    assert scaling_plot(results, str(tmp_path / "scaling.png")) == pytest.approx(1.0)
    assert (tmp_path / "scaling.png").stat().st_size > 1000
