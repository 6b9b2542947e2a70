"""The few lines a command prints when it ends: what the run reached against its target, where its
misses come from, how long it took, where its files are and what to run next.

The inputs are the dicts the run wrote (``eval.json``, ``pretrain.json``); any field may be missing
or null (a run without the oracle, a target never reached), and the line then says so. Pure Python:
no JAX, nothing is read from disk.
"""

from __future__ import annotations

import math
import os
import pathlib
import shlex
import sys
from collections.abc import Mapping, Sequence

DEPLOY_TWIN_GOALS = 5
"""``--random-goals`` of the suggested ``python -m deploy ... --twin`` rehearsal."""


def number(result: Mapping | None, key: str) -> float | None:
    """``result[key]`` as a float, or None when missing, null, not a number or not finite."""
    value = (result or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def millimetres(metres: float | None) -> str:
    return "n/a" if metres is None else f"{metres * 1000:.1f} mm"


def duration(seconds: float | None) -> str:
    """``42 s``, ``12.3 min`` or ``2.1 h``; ``n/a`` for None."""
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def python_command(executable: str | None = None, cwd: str | os.PathLike | None = None) -> str:
    """How to call this interpreter in a printed command: its path relative to ``cwd`` when it lives
    below it (``.venv/bin/python``), else ``python``."""
    exe = pathlib.Path(executable or sys.executable)
    try:
        return str(exe.relative_to(pathlib.Path(cwd or os.getcwd())))
    except ValueError:
        return "python"


def misses_source(success_2cm: float | None, oracle_success_2cm: float | None) -> str | None:
    """Where the policy's misses @2 cm come from: ``"perception"`` when more of the episodes are
    missed by the policy but reached by the oracle (the same actor fed the true ee position) than are
    missed by both, else ``"control"``; None without misses or without either figure."""
    if success_2cm is None or oracle_success_2cm is None or success_2cm >= 1.0:
        return None
    perception = oracle_success_2cm - success_2cm  # the true position would have reached these
    control = 1.0 - oracle_success_2cm  # not even the true position reaches these
    return "perception" if perception > control else "control"


def misses_line(result: Mapping) -> str:
    """One line: the encoder's ee error (median, and along the depth axis) and the oracle's
    success@2 cm, with the verdict of ``misses_source``."""
    errors = (
        f"encoder ee error median {millimetres(number(result, 'encoder_ee_error_median_m'))}, "
        f"depth axis {millimetres(number(result, 'encoder_error_depth_median_m'))}"
    )
    success, oracle = number(result, "success_2cm"), number(result, "oracle_success_2cm")
    if success is not None and success >= 1.0:
        return f"misses: none @2 cm ({errors})"
    if oracle is None:
        return f"misses: no oracle in this evaluation to tell perception from control ({errors})"
    return f"misses: oracle {fraction(oracle)} @2 cm: misses are {misses_source(success, oracle)} ({errors})"


def robustness_line(result: Mapping, file: str = "eval.json") -> str | None:
    """One line on the held-out benches (the ``robustness`` block of ``result``, read from ``file``):
    the worst bench's success@2 cm and @5 cm and its name; None when the evaluation ran none."""
    block = result.get("robustness")
    if not isinstance(block, Mapping) or not block:
        return None
    scores = {name: number(r, "success_2cm") for name, r in block.items()}
    known = {name: v for name, v in scores.items() if v is not None}
    if not known:
        return None
    worst = min(known, key=known.get)
    return (
        f"held-out benches ({len(block)}, {file} 'robustness'): worst {worst} {fraction(known[worst])} @2 cm, "
        f"{fraction(number(block[worst], 'success_5cm'))} @5 cm"
    )


EVALUATION_PREFIX = "evaluation: "
"""Phases of ``phases.json`` named so (one per bench, and the oracle) share one line of the summary."""


def phases_lines(table: Mapping | None, file: str = "phases.json") -> list[str]:
    """Where the wall clock went (``table``: ``phases.Phases.table``, read from ``file``): a line per
    phase, longest first, with its share and the part of it spent compiling; the evaluation's
    phases on one line with each bench's seconds; phases under a second left out (``file`` has
    them). ``[]`` without a table."""
    rows = (table or {}).get("phases")
    total = number(table, "total_s")
    if not isinstance(rows, Mapping) or not rows or not total:
        return []
    seconds = {name: number(row, "s") or 0.0 for name, row in rows.items()}
    compiling = {name: number(row, "compile_s") or 0.0 for name, row in rows.items()}
    benches = {
        name.removeprefix(EVALUATION_PREFIX): s for name, s in seconds.items() if name.startswith(EVALUATION_PREFIX)
    }
    if benches:
        seconds = {name: s for name, s in seconds.items() if not name.startswith(EVALUATION_PREFIX)}
        seconds["evaluation"] = sum(benches.values())
        compiling["evaluation"] = sum(c for name, c in compiling.items() if name.startswith(EVALUATION_PREFIX))
    shown = sorted((name for name, s in seconds.items() if s >= 1.0), key=seconds.get, reverse=True)
    width = max((len(name) for name in shown), default=0)
    lines = [f"where the time went ({file}):"]
    for name in shown:
        notes = [f"{duration(compiling[name])} compiling"] if compiling[name] >= 1.0 else []
        if name == "evaluation":
            notes.append(", ".join(f"{bench} {duration(s)}" for bench, s in benches.items()))
        note = f"  ({'; '.join(notes)})" if notes else ""
        lines.append(f"  {name:<{width}}  {duration(seconds[name]):>9}  {100 * seconds[name] / total:3.0f} %{note}")
    return lines


def success_line(result: Mapping, note: str) -> str:
    """Held-out success@2 cm (with ``note``) and @5 cm, the episode count and the mean final distance."""
    episodes = number(result, "episodes")
    distance = number(result, "mean_final_distance_m")
    return (
        f"held-out success@2 cm {fraction(number(result, 'success_2cm'))} ({note}), @5 cm "
        f"{fraction(number(result, 'success_5cm'))} on {'n/a' if episodes is None else f'{episodes:.0f}'} episodes; "
        f"mean final distance {'n/a' if distance is None else f'{distance * 100:.1f} cm'}"
    )


def train_summary(
    result: Mapping,
    run_dir: str | os.PathLike,
    wall_s: float | None = None,
    python: str = "python",
    phases: Mapping | None = None,
) -> str:
    """The end of ``python train.py``: held-out success against ``target_success``, the misses'
    source, wall clock and where it went (``phases``: ``phases.json``), the run folder and the export
    and deploy commands (``result``: ``eval.json``)."""
    run_dir = pathlib.Path(run_dir)
    success = number(result, "success_2cm")
    target = number(result, "target_success")
    reached_s = number(result, "time_to_success_2cm_s")
    if target is None:
        target_note = "no target"
    elif reached_s is not None:
        target_note = f"target {fraction(target)} reached after {duration(reached_s)} of training"
    else:
        met = success is not None and success >= target
        target_note = f"target {fraction(target)}: {'met' if met else 'not reached'}"
    lines = [
        success_line(result, target_note),
        misses_line(result),
        *filter(None, [robustness_line(result)]),
        f"wall clock: {duration(wall_s)}"
        + ("" if number(result, "env_steps") is None else f" ({number(result, 'env_steps'):,.0f} env steps)"),
        *phases_lines(phases),
        f"run folder: {run_dir}  (eval.json, phases.json, metrics.csv, checkpoints/)",
        f"next: {python} export.py {shlex.quote(str(run_dir))}",
        f"      {python} -m deploy {shlex.quote(str(run_dir / 'actor.onnx'))} --twin --random-goals {DEPLOY_TWIN_GOALS}",
    ]
    return "\n".join(lines)


def evaluate_summary(result: Mapping, path: str | os.PathLike, wall_s: float | None = None) -> str:
    """The end of ``python evaluate.py``: held-out success of the checkpoint evaluated, the misses'
    source, the worst held-out bench, the config fields the evaluation changed, wall clock and the
    file written (``result``: what it wrote)."""
    step = number(result, "env_steps")
    changes = result.get("config_changes") or {}
    lines = [
        success_line(result, f"checkpoint at env step {'n/a' if step is None else f'{step:,.0f}'}"),
        misses_line(result),
        *filter(None, [robustness_line(result, pathlib.Path(path).name)]),
        "config as trained" if not changes else "changed: " + ", ".join(f"{k}={v}" for k, v in changes.items()),
        f"wall clock: {duration(wall_s)}",
        f"written: {path}",
    ]
    return "\n".join(lines)


def pretrain_summary(
    result: Mapping,
    out: str | os.PathLike,
    wall_s: float | None = None,
    python: str = "python",
    phases: Mapping | None = None,
) -> str:
    """The end of ``python -m mjx_reach.pretrain``: the pretrained encoder's held-out ee error, its
    data and updates, wall clock and where it went (``phases``), folder and the training command
    (``result``: ``pretrain.json``)."""
    encoder = pathlib.Path(out) / "encoder"
    axes = " / ".join(
        millimetres(number(result, f"held_out_error_{a}_median_m")) for a in ("image_x", "image_y", "depth")
    )

    def count(key: str) -> str:
        value = number(result, key)
        return "n/a" if value is None else f"{value:,.0f}"

    return "\n".join(
        [
            f"held-out ee error of the pretrained encoder: median {millimetres(number(result, 'held_out_ee_error_median_m'))}"
            f" (image x / image y / depth: {axes}), p90 {millimetres(number(result, 'held_out_ee_error_p90_m'))}"
            f", on {count('held_out_images')} held-out images",
            f"trained on {count('train_images')} images with {count('updates')} updates",
            f"wall clock: {duration(wall_s)}",
            *phases_lines(phases),
            f"folder: {out}  (encoder/, pretrain.json, phases.json, config.json)",
            f"next: {python} train.py --init-encoder {shlex.quote(str(encoder))}",
        ]
    )


def compare_summary(
    results: Mapping[str, Mapping | None],
    run_dirs: Sequence[str | os.PathLike],
    table: str | os.PathLike,
    figure: str | os.PathLike,
) -> str:
    """The end of ``python -m mjx_reach.compare``: one line per preset (``results``: its
    ``eval.json`` or None, in the order of ``run_dirs``), then the table and the figure."""
    lines = []
    for (name, result), run_dir in zip(results.items(), run_dirs):
        if result is None:
            lines.append(f"{name}: no eval.json ({run_dir})")
            continue
        lines.append(
            f"{name}: success@2 cm {fraction(number(result, 'success_2cm'))}, "
            f"@5 cm {fraction(number(result, 'success_5cm'))}, "
            f"depth error median {millimetres(number(result, 'encoder_error_depth_median_m'))}, "
            f"oracle @2 cm {fraction(number(result, 'oracle_success_2cm'))}  ({run_dir})"
        )
    lines += [f"table: {table}", f"figure: {figure}"]
    return "\n".join(lines)
