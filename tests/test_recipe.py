"""The conda recipe parses and agrees with pyproject.toml (it cannot be built here: no conda channels)."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names of our PyPI dependencies
CONDA_NAMES = {"torch": "pytorch", "openmmtorch": "openmm-torch", "openmmml": "openmm-ml"}


def requirement(spec: str):
    name, constraint = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", spec).groups()
    return CONDA_NAMES.get(name.lower(), name.lower()), constraint.replace(" ", "")


def test_recipe_version_and_dependencies_match_pyproject():
    recipe = yaml.safe_load((ROOT / "recipe" / "recipe.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert recipe["context"]["version"] == project["version"]
    run = dict(requirement(s) for s in recipe["requirements"]["run"] if s != "python")
    for spec in project["dependencies"]:
        name, constraint = requirement(spec)
        assert name in run, f"{name} missing from the recipe's run requirements"
        assert run[name] == constraint, f"{name}: recipe {run[name]!r}, pyproject {constraint!r}"
    host = dict(requirement(s) for s in recipe["requirements"]["host"])
    for name in ("pytorch", "openmm", "openmm-torch"):
        assert host[name] == run[name]
    assert any("so3krates md" in step for test in recipe["tests"] for step in test.get("script", []))
