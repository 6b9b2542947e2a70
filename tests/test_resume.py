"""Crash recovery of the real ``train.py`` CLI, and the comparison figure of ``mjx_reach.compare``.

A tiny run (``test_training.tiny_config``, given as flags) is SIGKILLed once it has two
checkpoints; ``train.py --resume`` must continue it from its newest readable checkpoint and end
exactly where an uninterrupted run of the same config (its own ``train.py`` process) ends (checkpoints hold the replay,
env state and key: resume is exact). Every wait is bounded.
"""

import csv
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from matplotlib import image as mpimg
from test_training import tiny_config

from mjx_reach import compare, runs
from mjx_reach import config as config_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
KILLED_TOTAL = 1_000_000
"""The killed run's total env steps: far more than it reaches before the kill."""
CHUNK_STEPS = tiny_config(1).num_envs * tiny_config(1).train.iterations_per_chunk
CHECKPOINT_INTERVAL = CHUNK_STEPS * tiny_config(1).train.checkpoint_every_chunks
"""Env steps between checkpoints: the most a kill may lose."""
START_TIMEOUT_S = 300
"""Bound on waiting for the killed run's first two checkpoints (includes compiling)."""
RUN_TIMEOUT_S = 300
"""Bound on one resumed run (restore, a few chunks, evaluation)."""
TIMING_COLUMNS = {"wall_s", "env_steps_per_s"}


def config_flags(cfg: config_lib.Config) -> list[str]:
    """``train.py`` flags that turn the default config into ``cfg`` (scalar and boolean fields)."""

    def leaves(d: dict, prefix: str = ""):
        for k, v in d.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(prefix + k, v)]

    base = dict(leaves(config_lib.to_dict(config_lib.Config())))
    flags = []
    for name, value in leaves(config_lib.to_dict(cfg)):
        if value == base[name]:
            continue
        prefix, _, leaf = name.rpartition(".")
        if isinstance(value, bool):
            flags.append(f"--{prefix}.{'' if value else 'no-'}{leaf}".replace("_", "-").replace("--.", "--"))
        else:
            assert isinstance(value, (int, float, str)), f"add flag support for {name}={value!r}"
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def checkpoint_steps(run: pathlib.Path) -> list[int]:
    """Steps of the finished checkpoints in ``run`` (orbax renames a save's temporary folder to the
    bare step number once it is complete), ascending."""
    ckpt = run / "checkpoints"
    return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.is_dir() else []


def metrics_rows(run: pathlib.Path) -> list[dict]:
    return list(csv.DictReader((run / "metrics.csv").open()))


def env_steps(rows: list[dict]) -> list[int]:
    return [int(float(r["env_steps"])) for r in rows]


def train_cli(*args: str, **kwargs):
    """``subprocess.Popen`` of ``python train.py ARGS`` in the repository, output to ``stderr=``."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args], cwd=REPO, stdout=subprocess.DEVNULL, **kwargs
    )


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> pathlib.Path:
    """A run folder whose ``train.py`` was SIGKILLed after its second checkpoint."""
    out = tmp_path_factory.mktemp("killed") / "run"
    log = out.with_name("train.log")
    with log.open("w") as err:
        proc = train_cli(*config_flags(tiny_config(KILLED_TOTAL)), "--out", str(out), stderr=err)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while len(checkpoint_steps(out)) < 2:
                assert proc.poll() is None, f"train.py exited early ({proc.returncode}): {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, (
                    f"no 2 checkpoints after {START_TIMEOUT_S} s: {log.read_text()[-2000:]}"
                )
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return out


@pytest.fixture(scope="module")
def resume_total(killed_run) -> int:
    """Where the resumed runs stop: two chunks after the killed run's newest checkpoint."""
    return checkpoint_steps(killed_run)[-1] + 2 * CHUNK_STEPS


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, resume_total) -> pathlib.Path:
    """The same config trained to ``resume_total`` without interruption, by ``train.py`` in a fresh
    process like the killed and the resumed runs (a process that rendered other worlds before can
    differ in the last digits of the losses: docs/testing.md)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    log = out.with_name("train.log")
    with log.open("w") as err:
        proc = train_cli(*config_flags(tiny_config(resume_total)), "--out", str(out), stderr=err)
        assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, log.read_text()[-2000:]
    return out


def unfinished_save(ckpt: pathlib.Path) -> None:
    """What a kill during orbax's save leaves: the step's files under a temporary name."""
    ckpt.rename(ckpt.with_name(f"{ckpt.name}.orbax-checkpoint-tmp-1"))


def corrupt_data(ckpt: pathlib.Path) -> None:
    """Overwrite every array data file of the checkpoint (disk damage)."""
    files = [p for p in ckpt.rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files, f"no data files under {ckpt}"
    for p in files:
        p.write_bytes(b"damaged")


@pytest.mark.slow  # three train.py processes; tests/test_training.py resumes in-process in the fast tier
@pytest.mark.parametrize(
    "damage", [None, unfinished_save, corrupt_data], ids=["intact", "unfinished-save", "corrupt-data"]
)
def test_sigkill_then_resume_is_exact(killed_run, reference_run, resume_total, tmp_path, damage):
    """After a SIGKILL, ``train.py --resume`` continues from the newest readable checkpoint (the
    previous one when the newest is damaged), losing at most one checkpoint interval of what the
    killed run logged; metrics.csv rows continue without duplicates; the run finishes with
    eval.json, and its rows and final parameters equal the uninterrupted reference run's."""
    run = tmp_path / "run"
    shutil.copytree(killed_run, run)
    killed_rows = metrics_rows(run)
    steps = checkpoint_steps(run)
    assert 0 <= env_steps(killed_rows)[-1] - steps[-1] <= CHECKPOINT_INTERVAL
    if damage is not None:
        damage(run / "checkpoints" / str(steps[-1]))
    start = steps[-1] if damage is None else steps[-2]

    with (tmp_path / "resume.log").open("w") as err:
        proc = train_cli("--resume", "--out", str(run), "--total-steps", str(resume_total), stderr=err)
        try:
            assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, (tmp_path / "resume.log").read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)

    rows = metrics_rows(run)
    kept = [s for s in env_steps(killed_rows) if s <= start]
    assert env_steps(rows) == kept + list(range(start + CHUNK_STEPS, resume_total + 1, CHUNK_STEPS))
    assert np.all(np.diff([float(r["wall_s"]) for r in rows]) > 0), "wall_s must count on over the resume"
    reference = metrics_rows(reference_run)
    assert env_steps(reference) == env_steps(rows)
    for got, want in zip(rows, reference):
        assert {k: v for k, v in got.items() if k not in TIMING_COLUMNS} == {
            k: v for k, v in want.items() if k not in TIMING_COLUMNS
        }
    result = json.loads((run / "eval.json").read_text())
    assert result == json.loads((reference_run / "eval.json").read_text())
    _, _, params = runs.load_params(run)
    _, _, want_params = runs.load_params(reference_run)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(want_params), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def write_run(run: pathlib.Path, columns: dict[str, list], result: dict | None) -> pathlib.Path:
    """A synthetic run folder: ``metrics.csv`` with ``columns`` (None → empty cell) and ``eval.json``."""
    run.mkdir(parents=True)
    names = list(columns)
    lines = [",".join(names)] + [",".join("" if v is None else str(v) for v in row) for row in zip(*columns.values())]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    if result is not None:
        (run / "eval.json").write_text(json.dumps(result))
    return run


def test_plot_runs_writes_png_of_figure_size(tmp_path):
    """Two runs, one without ``ee_error``/``success`` columns and with empty cells, and a folder with
    no metrics at all: the PNG is a whole image of the configured size; the table lists every run."""
    n = 30
    full = write_run(
        tmp_path / "full",
        {
            "env_steps": [8 * (i + 1) for i in range(n)],
            "wall_s": [0.5 * (i + 1) for i in range(n)],
            "success": [None if i % 3 else i / n for i in range(n)],
            "success_loose": [None if i % 3 else min(1.0, 2 * i / n) for i in range(n)],
            "ee_error": [0.1 / (i + 1) for i in range(n)],
        },
        {
            "success_2cm": 0.25,
            "success_5cm": 0.5,
            "mean_final_distance_m": 0.07,
            "encoder_ee_error_m": 0.01,
            "episodes": 4,
        },
    )
    partial = write_run(
        tmp_path / "partial",
        {
            "env_steps": [8 * (i + 1) for i in range(5)],
            "wall_s": [1.0 * (i + 1) for i in range(5)],
            "success_loose": [None, None, 0.0, None, 0.5],
        },
        None,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    png = compare.plot_runs([full, partial, empty], tmp_path / "curves.png", smooth=4)
    image = mpimg.imread(png)
    width, height = compare.FIG_SIZE_IN
    assert image.shape[:2] == (round(height * compare.DPI), round(width * compare.DPI))
    assert image.std() > 0, "the figure is blank"
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["curves.png"], "no temporary file is left"

    results, table = compare.eval_table([full, partial])
    assert results["full"]["success_5cm"] == 0.5 and results["partial"] is None
    assert "| full |" in table and "| partial |" in table and table.count("\n") == 4


def test_compare_table_shows_each_runs_held_out_benches():
    bench = lambda s2, s5: {"success_2cm": s2, "success_5cm": s5, "encoder_ee_error_median_m": 0.012}
    results = {
        "lab": {**bench(0.8, 1.0), "robustness": {"poster": bench(0.7, 0.98), "tilt_1deg": bench(0.6, 0.97)}},
        "old": {**bench(0.77, 1.0)},
        "missing": None,
    }
    table = compare.robustness_table(results)
    assert "| run | plain | poster | tilt_1deg |" in table
    assert "| lab | 0.80 / 1.00 (12) | 0.70 / 0.98 (12) | 0.60 / 0.97 (12) |" in table
    assert "| old |" not in table and "| missing |" not in table
    assert compare.robustness_table({"old": results["old"]}) == ""


def test_rolling_mean_skips_missing_values():
    x = np.arange(6.0)
    y = np.array([1.0, np.nan, 3.0, 5.0, np.nan, 7.0])
    xs, ys = compare.rolling_mean(x, y, window=2)
    np.testing.assert_array_equal(xs, [0, 2, 3, 5])
    np.testing.assert_allclose(ys, [1.0, 2.0, 4.0, 6.0])


def test_compare_cli_unknown_preset_is_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-m", "mjx_reach.compare", "--presets", "nope", "--out", os.devnull],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "preset" in proc.stderr and "nope" in proc.stderr
