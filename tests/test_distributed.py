"""Several processes training one run (``mjx_reach.distributed``, ``mjx_reach.launcher``).

Two real ``train.py --processes 2`` runs on the CPU at tiny sizes: one is interrupted like Ctrl-C
once it is learning, then resumed by two processes again, and must leave one run folder whose
every update kept the parameters identical in both processes; in the other, process 1 is killed
and the launcher must end process 0 within its stated grace and say so in one line. Every wait is
bounded. The rest are the pieces without JAX's runtime: core groups, flag handling, output
relaying, the fingerprint, the per-process sizes and the refusals.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import jax.numpy as jnp
import pytest

from mjx_reach import cli, distributed, launcher, memory
from mjx_reach import config as config_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train  # noqa: E402  (the script at the repository root)

TINY = [
    "--preset", "smoke", "--num-envs", "4", "--agent.batch-size", "16", "--train.iterations-per-chunk", "2",
    "--train.learning-starts", "8", "--train.replay-capacity", "64", "--train.checkpoint-every-chunks", "1",
    "--train.eval-envs", "4", "--train.video-envs", "0", "--train.robustness", "off", "--pretrain.updates", "20",
    "--pretrain.dataset-images", "64", "--pretrain.eval-images", "16", "--pretrain.batch-size", "16",
]  # fmt: skip
"""A run of 4 worlds (2 per process) that pretrains, learns from its 3rd chunk and checkpoints every chunk."""
GRACE_S = 5.0
START_TIMEOUT_S = 600
"""Bound on waiting for two processes to pretrain, compile and learn for a few chunks."""
RUN_TIMEOUT_S = 300


def _start(out: pathlib.Path, *flags: str) -> subprocess.Popen:
    """``train.py --processes 2`` in its own session (signals to its group miss pytest)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, "train.py", *TINY, "--processes", "2", "--out", str(out), *flags]
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _rows(out: pathlib.Path) -> list[dict]:
    path = out / "metrics.csv"
    text = path.read_text() if path.exists() else ""
    return list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))


def _wait_for(condition, timeout_s: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {what} within {timeout_s} s")
        time.sleep(0.5)


def _children(pid: int) -> dict[int, str]:
    """{pid: command line} of ``pid``'s child processes."""
    found = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_two_processes_train_stop_together_resume_and_keep_identical_parameters(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, "--total-steps", "1000000")
    learning = lambda: sum(bool(r.get("critic_loss")) for r in _rows(out)) >= 2
    _wait_for(learning, START_TIMEOUT_S, "two chunks of updates", proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the launcher and both processes
    stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 1, stderr[-2000:]
    errors = _errors(stderr)
    assert len(errors) == 1 and errors[0].startswith("error: interrupted by signal"), errors
    step = int(errors[0].split("checkpoint saved at env step ")[1].split(";")[0])
    assert (out / "checkpoints" / str(step)).is_dir()

    resumed = subprocess.run(
        [sys.executable, "train.py", "--resume", "--out", str(out), "--total-steps", str(step + 8), "--processes", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.count("held-out success@2 cm") == 1, "process 0 alone prints the summary"

    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert {"config.json", "metrics.csv", "eval.json", "checkpoints", "encoder", "pretrain.json", "tb"} <= {
        p.name for p in out.iterdir()
    }
    saved = json.loads((out / "config.json").read_text())
    assert saved["distributed"]["processes"] == 2 and saved["num_envs"] == 4
    rows = _rows(out)
    steps = [int(float(r["env_steps"])) for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == step + 8
    learned = [r for r in rows if r.get("critic_loss")]
    assert len(learned) >= 3
    assert all(r.get("replica_mismatches") == "0" for r in learned), "parameters differed between the processes"
    assert json.loads((out / "eval.json").read_text())["episodes"] == 4


@pytest.mark.slow
def test_killing_one_process_ends_the_other_with_one_line(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, "--total-steps", "1000000", "--distributed.stop-grace-s", str(GRACE_S))
    _wait_for(lambda: len(_rows(out)) >= 1, START_TIMEOUT_S, "a first chunk", proc)
    children = _children(proc.pid)
    victim = next(pid for pid, command in children.items() if "--process-id 1 " in command + " ")
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=GRACE_S + 60)
    elapsed = time.monotonic() - killed_at
    assert proc.returncode == 1
    assert elapsed < GRACE_S + 10, f"the launcher took {elapsed:.0f} s to end the run"
    errors = _errors(stderr)
    assert errors == [errors[0]] and errors[0].startswith("error: process 1 was killed by SIGKILL"), errors
    assert all(not pathlib.Path(f"/proc/{pid}").exists() for pid in children), "a process outlived the run"


def test_core_groups_split_evenly_and_never_leave_a_process_without_a_core():
    assert launcher.core_groups(2, [0, 1]) == [[0], [1]]
    assert launcher.core_groups(2, [0, 1, 2, 3, 4]) == [[0, 1], [2, 3, 4]]
    assert launcher.core_groups(3, [0, 1]) == [[0], [1], [0]]
    assert launcher.gpu_for(1, {"CUDA_VISIBLE_DEVICES": "4,6"}) == "6"
    assert launcher.gpu_for(3, {}) == "3"


def test_launcher_flags_are_replaced_not_repeated():
    argv = ["--num-envs", "8", "--coordinator=h:1", "--host-rank", "1", "--processes", "2"]
    assert cli.without_flags(argv, ("--coordinator", "--host-rank")) == ["--num-envs", "8", "--processes", "2"]


def test_relay_passes_progress_through_and_keeps_error_lines_for_the_report():
    reader, writer = os.pipe()
    sink = io.BytesIO()
    stream = launcher._Stream(sink)
    child = launcher._Child(1, popen=None)
    relay = launcher._Relay(child, os.fdopen(reader, "rb"), stream, threading.Event())
    thread = threading.Thread(target=relay.run)
    thread.start()
    os.write(writer, b"\r 10%|#  | 1/10\r 20%|## | 2/10\nwarn")
    os.write(writer, b"ing: slow\nerror: run: bad input\n\r 30%|###| 3/10")
    os.close(writer)
    thread.join(timeout=5)
    stream.report("error: process 1 was killed")
    assert sink.getvalue() == (
        b"\r 10%|#  | 1/10\r 20%|## | 2/10\nwarning: slow\n\r 30%|###| 3/10\nerror: process 1 was killed\n"
    ), "the report starts on a line of its own after a progress bar"
    assert child.error == "run: bad input"


def test_the_process_that_failed_first_is_named_not_the_one_that_lost_it():
    """Process 1 dies; process 0 then fails on the lost connection; by the time the launcher looks
    both have ended: the report names process 1."""
    commands = ["import time; time.sleep(0.5); raise SystemExit(1)", "raise SystemExit(3)"]
    children = [launcher._Child(i, subprocess.Popen([sys.executable, "-c", c])) for i, c in enumerate(commands)]
    for child in children:
        threading.Thread(target=child.reap, daemon=True).start()
    deadline = time.monotonic() + 30
    while any(child.ended_at is None for child in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    failed = launcher._watch(children, threading.Event(), stop_grace_s=1.0, interrupted={"signal": None})
    assert failed is children[1] and launcher._how(failed) == "exited with status 3"


def test_fingerprint_tells_one_flipped_bit():
    tree = {"w": jnp.linspace(-1, 1, 1000, dtype=jnp.float32), "b": jnp.ones(3, jnp.float32)}
    flipped = dict(tree, w=tree["w"].at[517].set(jnp.nextafter(tree["w"][517], 2.0)))
    same = {k: jnp.copy(v) for k, v in tree.items()}
    assert int(distributed.fingerprint(tree)) == int(distributed.fingerprint(same))
    assert int(distributed.fingerprint(tree)) != int(distributed.fingerprint(flipped))


def test_one_process_group_is_the_identity():
    group = distributed.current()
    tree = {"x": jnp.arange(6.0).reshape(2, 3)}
    assert group.count == 1 and group.is_main
    for out in (group.sum(tree), group.gather(tree, axis=1), group.local(group.sharded(group.replicated(tree)))):
        assert out["x"] is tree["x"]
    assert group.mean(tree) is tree and group.agree(True) and not group.agree(False)


def test_each_process_holds_its_share():
    cfg = config_lib.override(config_lib.scale_to_num_envs(config_lib.preset("default"), 4096), processes=8)
    share = memory.per_process(cfg)
    assert share["worlds"] * 8 == cfg.num_envs and share["batch"] * 8 == cfg.agent.batch_size
    assert share["eval_episodes"] * 8 == cfg.train.eval_envs
    assert share["replay_transitions"] * 8 == cfg.train.replay_capacity
    one = memory.training_bytes(config_lib.override(cfg, processes=1))
    assert memory.training_bytes(cfg)["replay"] * 8 == one["replay"]
    assert "512 worlds" in memory.describe(cfg)


def test_print_config_shows_each_process_without_jax():
    code = (
        "import sys, runpy; sys.argv = ['train.py', '--num-envs', '4096', '--processes', '8', '--print-config']\n"
        "try:\n    runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'jax' not in sys.modules, 'printing the config imported JAX'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["distributed"]["processes"] == 8
    assert "each process: 512 worlds" in done.stderr and "memory per device" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "3", "--print-config"], "error: num_envs: 16 does not split evenly over 3 processes"),
        (["--processes", "2", "--num-hosts", "2"], "error: --coordinator: several hosts need process 0's HOST:PORT"),
        (["--processes", "2", "--num-hosts", "2", "--coordinator", "h:1", "--host-rank", "2"], "error: --host-rank"),
    ],
)
def test_bad_process_layouts_are_one_line_errors(argv, message, capsys):
    assert cli.run_main(train.train, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(message), err
