"""pyproject.toml and environment.yml list the same dependencies; notebooks are committed without outputs."""
import json
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert [p for p in pip if p != "-e ."] == wanted


def test_notebooks_are_committed_without_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [p.name[:3] for p in notebooks] == ["01_", "02_", "03_", "04_", "05_"]
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{path.name} has outputs"
        tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one parameters cell"
        assert nb["metadata"]["kernelspec"]["name"] == "mamc"


def test_parameters_cells_hold_literals_only():
    import ast

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cell = next(c for c in json.loads(path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
        for node in ast.parse("".join(cell["source"])).body:
            assert isinstance(node, ast.Assign), f"{path.name}: only assignments in the parameters cell"
            ast.literal_eval(node.value)
