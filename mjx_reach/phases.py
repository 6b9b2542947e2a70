"""Where a run's wall clock goes: seconds per phase, and how much of each was JAX compiling.

A ``Phases`` clock starts when the command starts; ``with phases("updates"): ...`` adds the block's
wall-clock seconds to that phase (a phase entered again adds up; the block must wait for its
device work, e.g. by reading a result back, or the time lands in the next phase that waits). While
a phase runs, the clock listens to JAX's compile events (tracing, lowering, XLA compilation, or a
hit in the persistent compilation cache) and counts the part of the phase spent in them, so a slow
first chunk reads as compiling, not as a slow machine. What no phase covers (imports, set-up of
the process) is ``other``.

``python train.py`` writes the table to the run folder as ``phases.json`` and prints it in its
summary (``summary.phases_lines``); a resumed run adds its seconds to those already there. Pure
Python apart from the listener, which is registered only while a phase runs.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import time
from collections.abc import Iterator

COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
"""JAX's monitoring events of tracing, lowering and compiling (or loading from the cache) one program."""
OTHER = "other"
"""The phase of the wall clock that no named phase covers."""
FILE = "phases.json"


def union_seconds(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] covered by the union of ``spans`` ((start, end) pairs, seconds;
    nested or overlapping spans, as a program traced inside another's tracing, count once)."""
    covered, reach = 0.0, start
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, end)
        if b > a:
            covered += b - a
            reach = b
    return covered


def _add(rows: dict, name: str, row: dict) -> None:
    """Add ``row`` ({"s", "compile_s"}, seconds) to phase ``name`` of ``rows`` (a new phase goes last)."""
    old = rows.get(name, {})
    rows[name] = {k: old.get(k, 0.0) + row.get(k, 0.0) for k in ("s", "compile_s")}


class Phases:
    """Wall-clock seconds per named phase of one command, with the compiling share of each.

    ``rows`` maps phase names, in the order first entered, to {"s", "compile_s"} seconds. Phases
    do not nest: entering one while another runs is a ``RuntimeError``.
    """

    def __init__(self, clock=time.time):
        self._clock = clock
        self.started = clock()
        self.rows: dict[str, dict[str, float]] = {}
        self._current: str | None = None
        self._spans: list[tuple[float, float]] = []

    def _on_span(self, event: str, start: float, end: float, **_kwargs) -> None:
        if event in COMPILE_EVENTS:
            self._spans.append((start, end))

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self._current is not None:
            raise RuntimeError(f"phase {name!r} entered while phase {self._current!r} runs")
        from jax import monitoring

        self._current, self._spans = name, []
        monitoring.register_event_time_span_listener(self._on_span)
        start = self._clock()
        try:
            yield
        finally:
            end = self._clock()
            monitoring.unregister_event_time_span_listener(self._on_span)
            _add(self.rows, name, {"s": end - start, "compile_s": union_seconds(self._spans, start, end)})
            self._current = None

    def table(self, total_s: float | None = None) -> dict:
        """``{"phases": {name: {"s", "compile_s"}}, "total_s"}``: every phase, then ``other`` (the
        part of ``total_s``, default the time since the clock started, that no phase covers)."""
        total = self._clock() - self.started if total_s is None else total_s
        covered = sum(row["s"] for row in self.rows.values())
        return {"phases": {**self.rows, OTHER: {"s": max(0.0, total - covered), "compile_s": 0.0}}, "total_s": total}


def added(earlier: dict, later: dict) -> dict:
    """Two phase tables (``Phases.table``) of the same run added phase by phase (a resumed run's
    invocations); phases of either kept in their first order, ``other`` last."""
    rows = {}
    for table in (earlier, later):
        for name, row in table["phases"].items():
            if name != OTHER:
                _add(rows, name, row)
    for table in (earlier, later):
        _add(rows, OTHER, table["phases"].get(OTHER, {}))
    return {"phases": rows, "total_s": earlier["total_s"] + later["total_s"]}


def write(run_dir: str | pathlib.Path, table: dict, resumed: bool = False) -> dict:
    """Write ``table`` as ``run_dir/phases.json`` (atomically); with ``resumed``, added to the table
    already there (if any). Returns what was written."""
    from mjx_reach.runs import atomic_write

    path = pathlib.Path(run_dir) / FILE
    if resumed and path.exists():
        table = added(json.loads(path.read_text()), table)
    atomic_write(path, json.dumps(table, indent=2))
    return table
