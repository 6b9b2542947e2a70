"""Where a run's time goes (``mjx_reach.phases``): seconds per phase, the part spent compiling,
the table a resumed run adds to, and the summary's lines of it."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import pytest

from mjx_reach import phases as phases_lib
from mjx_reach import summary


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_union_counts_nested_and_overlapping_spans_once():
    assert phases_lib.union_seconds([(1, 5), (2, 3), (4, 6)], 0, 10) == 5
    assert phases_lib.union_seconds([(1, 5), (8, 20)], 2, 10) == 5  # clipped to the window
    assert phases_lib.union_seconds([], 0, 10) == 0


def test_phases_add_up_and_the_rest_is_other():
    clock = FakeClock()
    phases = phases_lib.Phases(clock)
    for name, seconds in [("collection", 3.0), ("updates", 5.0), ("collection", 2.0)]:
        with phases(name):
            clock.now += seconds
    clock.now += 1.5
    table = phases.table()
    assert list(table["phases"]) == ["collection", "updates", "other"]
    assert table["phases"]["collection"]["s"] == 5.0 and table["phases"]["updates"]["s"] == 5.0
    assert table["phases"]["other"]["s"] == 1.5 and table["total_s"] == 11.5


def test_a_phase_inside_another_is_refused():
    phases = phases_lib.Phases()
    with phases("updates"), pytest.raises(RuntimeError, match="collection"):
        with phases("collection"):
            pass


def test_compiling_is_counted_in_the_phase_that_compiles():
    """The first call of a new program spends most of its phase compiling; the same call again, none."""
    phases = phases_lib.Phases()
    f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + 17.25)  # a program no other test compiles
    x = jnp.ones((8, 8))
    with phases("first"):
        f(x).block_until_ready()
    with phases("again"):
        f(x).block_until_ready()
    table = phases.table()["phases"]
    assert 0 < table["first"]["compile_s"] <= table["first"]["s"]
    assert table["again"]["compile_s"] == 0


def test_a_resumed_run_adds_its_table_to_the_one_in_the_run_folder(tmp_path):
    clock = FakeClock()
    first = phases_lib.Phases(clock)
    with first("collection"):
        clock.now += 4.0
    phases_lib.write(tmp_path, first.table())
    clock = FakeClock()
    second = phases_lib.Phases(clock)
    with second("evaluation: plain"):
        clock.now += 2.0
    with second("collection"):
        clock.now += 1.0
    written = phases_lib.write(tmp_path, second.table(), resumed=True)
    assert written == json.loads((tmp_path / phases_lib.FILE).read_text())
    assert list(written["phases"]) == ["collection", "evaluation: plain", "other"]
    assert written["phases"]["collection"]["s"] == 5.0 and written["total_s"] == 7.0
    assert phases_lib.write(tmp_path, second.table())["total_s"] == 3.0  # a fresh run starts over


def test_summary_lists_the_phases_longest_first_with_their_compiling():
    """A line per phase, longest first; the evaluation's benches on one line; under a second left out."""
    table = {
        "phases": {
            "collection": {"s": 60.0, "compile_s": 20.0},
            "updates": {"s": 200.0, "compile_s": 0.2},
            "evaluation: plain": {"s": 30.0, "compile_s": 12.0},
            "evaluation: person": {"s": 10.0, "compile_s": 0.0},
            "other": {"s": 0.4, "compile_s": 0.0},
        },
        "total_s": 300.4,
    }
    lines = summary.phases_lines(table)
    assert lines[0].startswith("where the time went (phases.json)")
    assert [line.split()[0] for line in lines[1:]] == ["updates", "collection", "evaluation"]
    assert "67 %" in lines[1] and "compiling" not in lines[1]  # under a second of compiling is not shown
    assert "20 %" in lines[2] and "(20 s compiling)" in lines[2]
    assert "40 s" in lines[3] and "(12 s compiling; plain 30 s, person 10 s)" in lines[3]
    text = summary.train_summary({"success_2cm": 0.5}, "runs/x", 300.0, phases=table)
    assert "where the time went" in text
    assert summary.phases_lines(None) == [] and summary.phases_lines({"phases": {}, "total_s": 0}) == []
