"""Every entry point turns JAX's GPU preallocation off (as a default) before JAX is imported."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from mjx_reach import preallocation

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENTRY_POINTS = [
    "train.py",
    "export.py",
    "mjx_reach/pretrain.py",
    "mjx_reach/compare.py",
    "mjx_reach/viz.py",
    "benchmarks/env_throughput.py",
    "benchmarks/train_cpu.py",
]
IMPORT = re.compile(r"^\s*(?:import (?P<module>[\w.]+)|from (?P<package>[\w.]+) import (?P<names>.+))$", re.M)
JAX_FREE = {"preallocation", "cli", "config"}
"""Project modules that import no JAX."""


def _may_import_jax(match: re.Match) -> bool:
    module = match["module"] or match["package"]
    if module == "mjx_reach":
        return not {name.split()[0] for name in match["names"].split(",")} <= JAX_FREE
    return module.split(".")[0] in ("jax", "mjx_reach", "flax", "optax", "orbax")


def _code_before_jax(source: str) -> str:
    """``source`` up to its first import that may import JAX."""
    match = next((m for m in IMPORT.finditer(source) if _may_import_jax(m)), None)
    return source if match is None else source[: match.start()]


@pytest.mark.parametrize("path", ENTRY_POINTS)
def test_entry_point_disables_preallocation_before_jax(path):
    assert "preallocation.disable()" in _code_before_jax((ROOT / path).read_text()), path


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_first_cell_disables_preallocation(path):
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert "preallocation.disable()" in _code_before_jax("".join(cells[0]["source"]))


def test_disable_is_a_default_the_user_can_override(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    preallocation.disable()
    assert preallocation.os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    preallocation.disable()
    assert preallocation.os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
