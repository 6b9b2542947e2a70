"""The notebooks in ``notebooks/``: committed without outputs, and executed by the README's test
command (``pytest -q`` runs them through nbmake: ``[tool.pytest.ini_options]`` in pyproject.toml),
at the small sizes they select when ``MJX_REACH_NOTEBOOK_SMALL`` is unset.

Strip outputs before committing: ``.venv/bin/python tests/test_notebooks.py`` (clears outputs,
execution counts and execution timing metadata of every notebook in place).
"""

from __future__ import annotations

import json
import pathlib
import sys
import tomllib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_reach_world.ipynb", "02_train_and_evaluate.ipynb", "03_export_and_deploy.ipynb"]
SIZE_VARIABLE = "MJX_REACH_NOTEBOOK_SMALL"


def test_the_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


def test_pytest_executes_the_notebooks():
    """The README's test command collects ``notebooks/`` and runs it with nbmake."""
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "notebooks" in options["testpaths"]
    assert "--nbmake" in options["addopts"].split()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        where = f"{path.name} cell {i}: strip it with `.venv/bin/python tests/test_notebooks.py`"
        assert cell.get("outputs") == [], f"{where} (has outputs)"
        assert cell.get("execution_count") is None, f"{where} (has an execution count)"
        assert "execution" not in cell.get("metadata", {}), f"{where} (has execution timing metadata)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_selects_its_size_in_the_first_code_cell(path):
    nb = json.loads(path.read_text())
    first = next(cell for cell in nb["cells"] if cell["cell_type"] == "code")
    assert SIZE_VARIABLE in "".join(first["source"])


def strip(path: pathlib.Path) -> None:
    """Remove outputs, execution counts and execution timing metadata from notebook ``path``."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)
    path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")  # nbformat's layout


if __name__ == "__main__":
    for notebook in [pathlib.Path(p) for p in sys.argv[1:]] or NOTEBOOKS:
        strip(notebook)
        print(f"stripped {notebook}")
