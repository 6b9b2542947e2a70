"""Every GPU figure of BENCHMARKS.md from one command, each measurement in its own process.

    python benchmarks/gpu_suite.py                      # on a GPU: the full sizes (below)
    python benchmarks/gpu_suite.py --quick              # a dry run on a CPU (under 10 minutes on 2 cores)

Measurements (each a subprocess with ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` and JAX's persistent
compilation cache off, so compile times are a first run's; Warp's kernel cache is kept):

* ``env``: ``benchmarks/env_throughput.py`` per world count (``--env-worlds``, default 1024 4096
  8192): env-steps/s of physics alone and of physics+render+DR, with compile seconds.
* ``update``: ``benchmarks/update_step.py`` per batch size (``--update-batches``, default 256 512
  1024): ms per jitted DDPG update (replay sample included) on a replay of random data.
* ``train``: ``train.py --num-envs N --train.stop-at-target`` (``--train-envs``, default 4096):
  trains until held-out success@2 cm reaches ``train.target_success``, ``--train-steps`` env
  steps or the wall-clock cap ``--time-cap-s`` (then it is sent SIGTERM: it checkpoints and
  stops); read back from its ``metrics.csv``/``eval.json``: env-steps/s end to end (env steps /
  the command's wall time, pretraining and compiles included) and of the training loop alone,
  ``time_to_success_2cm_s`` (from the training loop's start) and the held-out evaluation curve.

Memory, per measurement: ``peak_device_bytes`` (JAX ``memory_stats()`` ``peak_bytes_in_use``,
reported by the env and update scripts where the backend has it), ``gpu_used_peak_bytes``
(``nvidia-smi --query-gpu=memory.used`` of GPU 0 polled every ``--poll-s`` while it runs, where
nvidia-smi exists: includes Warp's buffers and other processes on that GPU) and
``host_peak_rss_bytes`` (the subprocess's peak resident set, from ``os.wait4``'s rusage).

Writes ``{"date", "command", "quick", "device", "versions", "env": [...], "update": [...],
"train": {...}}`` atomically to ``--json`` (default ``benchmarks/results/gpu_suite-<date>.json``)
and prints the Markdown rows for BENCHMARKS.md; logs, the measurements' own JSON and the training's
run folder (``train/``: metrics.csv, eval.json, checkpoints) stay in ``--work-dir``. ``--quick`` shrinks every size (and trains without
encoder pretraining, evaluating every 2 chunks on as many episodes as worlds); any size flag given
overrides it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
VERSIONED = ("jax", "jaxlib", "mujoco", "mujoco-mjx", "warp-lang", "flax", "optax", "numpy")
"""Packages whose versions the record lists (with Python's)."""
FULL = {
    "env_worlds": [1024, 4096, 8192],
    "env_steps": 20,
    "repeats": 5,
    "update_batches": [256, 512, 1024],
    "updates": 50,
    "train_envs": 4096,
    "train_steps": 20_000_000,
    "time_cap_s": 1800.0,
}
"""Sizes on a GPU (the training stops at the target well before ``train_steps`` or the cap)."""
QUICK = {
    "env_worlds": [16, 64],
    "env_steps": 5,
    "repeats": 2,
    "update_batches": [16, 32, 64],
    "updates": 5,
    "train_envs": 16,
    "train_steps": 480,
    "time_cap_s": 300.0,
}
"""Sizes of ``--quick`` (a 2-core CPU)."""
KILL_GRACE_S = 300.0
"""After the cap's SIGTERM, the training may take this long to checkpoint before it is killed."""
GB = 1e9


class SuiteError(RuntimeError):
    """A measurement failed; the message is one line."""


def gpu_used_bytes() -> int | None:
    """Memory in use on GPU 0 according to nvidia-smi, bytes; None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(float(out.split()[0]) * 2**20)
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


def measure(name: str, cmd: list[str], log: pathlib.Path, poll_s: float, cap_s: float | None = None) -> dict:
    """Run ``cmd`` (output to ``log``); returns ``wall_s``, ``capped`` (sent SIGTERM at ``cap_s``),
    ``host_peak_rss_bytes`` and ``gpu_used_peak_bytes``. A non-zero exit (other than after the
    cap) is a ``SuiteError`` naming ``name`` and the log."""
    env = os.environ | {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    gpu_peak, capped, start = None, False, time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            used = gpu_used_bytes()
            gpu_peak = used if gpu_peak is None or (used is not None and used > gpu_peak) else gpu_peak
            elapsed = time.perf_counter() - start
            if cap_s is not None and elapsed > cap_s and not capped:
                proc.send_signal(signal.SIGTERM)
                capped = True
            elif capped and elapsed > cap_s + KILL_GRACE_S:
                proc.kill()
            time.sleep(poll_s)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and not capped:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise SuiteError(f"{name} failed (exit {proc.returncode}): {tail[0]} (log: {log})")
    return {
        "wall_s": time.perf_counter() - start,
        "capped": capped,
        "host_peak_rss_bytes": usage.ru_maxrss * 1024,
        "gpu_used_peak_bytes": gpu_peak,
    }


def env_measurements(args, work: pathlib.Path) -> tuple[str, list[dict]]:
    """(device kind, one row per world count and mode)."""
    device, rows = "unknown", []
    for n in args.env_worlds:
        out = work / f"env_{n}.json"
        cmd = [
            sys.executable,
            str(REPO / "benchmarks" / "env_throughput.py"),
            "--num-envs",
            str(n),
            "--steps",
            str(args.env_steps),
            "--repeats",
            str(args.repeats),
            "--json",
            str(out),
        ]
        usage = measure(f"env_throughput --num-envs {n}", cmd, work / f"env_{n}.log", args.poll_s)
        record = json.loads(out.read_text())
        device = record["device"]
        rows += rows_with_usage(record, usage)
    return device, rows


def rows_with_usage(record: dict, usage: dict) -> list[dict]:
    """The result rows of a measurement's JSON ``record``, each with the process's peak memory and
    wall time (``measure``'s ``usage``)."""
    extra = {"peak_device_bytes": record["peak_device_bytes"]}
    extra |= {k: usage[k] for k in ("wall_s", "host_peak_rss_bytes", "gpu_used_peak_bytes")}
    return [r | extra for r in record["results"]]


def update_measurements(args, work: pathlib.Path) -> list[dict]:
    rows = []
    for b in args.update_batches:
        out = work / f"update_{b}.json"
        cmd = [
            sys.executable,
            str(REPO / "benchmarks" / "update_step.py"),
            "--batch-size",
            str(b),
            "--updates",
            str(args.updates),
            "--updates-per-call",
            str(min(args.updates, 20)),
            "--json",
            str(out),
        ]
        usage = measure(f"update_step --batch-size {b}", cmd, work / f"update_{b}.log", args.poll_s)
        rows += rows_with_usage(json.loads(out.read_text()), usage)
    return rows


def train_flags(args) -> list[str]:
    """``train.py`` flags of the training measurement."""
    flags = ["--num-envs", str(args.train_envs), "--total-steps", str(args.train_steps), "--train.stop-at-target"]
    if args.quick:
        flags += [
            "--train.no-pretrain-encoder",
            "--train.eval-envs",
            str(args.train_envs),
            "--train.eval-every-chunks",
            "2",
            "--train.video-envs",
            "0",
            "--train.learning-starts",
            str(4 * args.train_envs),
            "--train.replay-capacity",
            str(max(2 * args.train_envs, args.train_steps)),
        ]
    return flags + shlex.split(args.train_args)


def train_measurement(args, work: pathlib.Path) -> dict:
    # imported here, after the env/update subprocesses: the suite itself never uses a device
    from mjx_reach import runs, training

    run = work / "train"
    flags = train_flags(args)
    usage = measure(
        "train.py",
        [sys.executable, str(REPO / "train.py"), *flags, "--out", str(run)],
        work / "train.log",
        args.poll_s,
        args.time_cap_s,
    )
    rows = runs.read_rows(run)
    if not rows:
        raise SuiteError(f"train.py logged no chunk within {args.time_cap_s:.0f} s (log: {work / 'train.log'})")
    cfg = json.loads((run / "config.json").read_text())
    target = cfg["train"]["target_success"]
    result = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else None
    env_steps, loop_s = int(float(rows[-1]["env_steps"])), float(rows[-1]["wall_s"])
    curve = [
        {
            "env_steps": int(float(r["env_steps"])),
            "wall_s": float(r["wall_s"]),
            **{column: float(r[column]) for column in training.EVAL_COLUMNS},
        }
        for r in rows
        if r.get("eval_success_2cm")
    ]
    time_to_target = training.time_to_success(rows, target)
    stopped = (
        "time_cap"
        if usage["capped"]
        else "target"
        if time_to_target is not None and env_steps < args.train_steps
        else "total_steps"
    )
    return {
        "command": shlex.join(["python", "train.py", *flags]),
        "num_envs": args.train_envs,
        "stopped": stopped,
        "env_steps": env_steps,
        "wall_s": usage["wall_s"],
        "train_loop_s": loop_s,
        "env_steps_per_s": env_steps / usage["wall_s"],
        "train_loop_env_steps_per_s": env_steps / loop_s,
        "target_success": target,
        "time_to_success_2cm_s": time_to_target,
        "best_eval_success_2cm": max((c["eval_success_2cm"] for c in curve), default=None),
        "final_eval": result,
        "eval_curve": curve,
        "config": cfg,
        "host_peak_rss_bytes": usage["host_peak_rss_bytes"],
        "gpu_used_peak_bytes": usage["gpu_used_peak_bytes"],
    }


def versions() -> dict:
    """Python's and the measured stack's package versions (None: not installed)."""
    from mjx_reach import export

    return {"python": sys.version.split()[0]} | export.versions(VERSIONED)


def _gb(value) -> str:
    return "n/a" if value is None else f"{value / GB:.2f}"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def markdown(record: dict) -> str:
    """The BENCHMARKS.md rows of ``record``."""
    head = f"{record['date']}, {record['device']}{' (--quick)' if record['quick'] else ''}: `{record['command']}`"
    lines = [
        head,
        "",
        "| num_envs | mode | env-steps/s | compile s | JAX peak GB | GPU used GB | host RSS GB |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['num_envs']} | {r['mode']} | {_rate(r['env_steps_per_s'])} | {r['compile_s']:.1f} | {_gb(r['peak_device_bytes'])} | "
        f"{_gb(r['gpu_used_peak_bytes'])} | {_gb(r['host_peak_rss_bytes'])} |"
        for r in record["env"]
    ]
    lines += [
        "",
        "| batch | ms / update | compile s | JAX peak GB | GPU used GB | host RSS GB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['batch_size']} | {r['ms_per_update']:.1f} | {r['compile_s']:.1f} | {_gb(r['peak_device_bytes'])} | "
        f"{_gb(r['gpu_used_peak_bytes'])} | {_gb(r['host_peak_rss_bytes'])} |"
        for r in record["update"]
    ]
    t = record["train"]
    tts = "not reached" if t["time_to_success_2cm_s"] is None else f"{t['time_to_success_2cm_s']:.0f}"
    best = "n/a" if t["best_eval_success_2cm"] is None else f"{t['best_eval_success_2cm']:.2f}"
    lines += [
        "",
        (
            "| num_envs | env steps | wall s | env-steps/s end to end | env-steps/s loop | time to success@2 cm s "
            "| best held-out success@2 cm | stopped | GPU used GB | host RSS GB |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        (
            f"| {t['num_envs']} | {t['env_steps']:,} | {t['wall_s']:.0f} | {_rate(t['env_steps_per_s'])} | {_rate(t['train_loop_env_steps_per_s'])} "
            f"| {tts} | {best} | {t['stopped']} | {_gb(t['gpu_used_peak_bytes'])} | {_gb(t['host_peak_rss_bytes'])} |"
        ),
    ]
    return "\n".join(lines)


def check_finite(record) -> None:
    """Every number in ``record`` is finite (a NaN would be written as invalid JSON)."""
    if isinstance(record, dict):
        for v in record.values():
            check_finite(v)
    elif isinstance(record, list):
        for v in record:
            check_finite(v)
    elif isinstance(record, float) and not math.isfinite(record):
        raise SuiteError(f"a measurement is not finite: {record}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU-sized dry run (QUICK sizes)")
    parser.add_argument("--json", help="output path (default benchmarks/results/gpu_suite-<date>.json)")
    parser.add_argument("--env-worlds", type=int, nargs="+", help="world counts of the env measurements")
    parser.add_argument("--env-steps", type=int, help="control steps per timed env call")
    parser.add_argument("--repeats", type=int, help="timed env calls per measurement")
    parser.add_argument("--update-batches", type=int, nargs="+", help="batch sizes of the update measurements")
    parser.add_argument("--updates", type=int, help="timed updates per batch size")
    parser.add_argument("--train-envs", type=int, help="worlds of the training run")
    parser.add_argument("--train-steps", type=int, help="env steps at most of the training run")
    parser.add_argument("--time-cap-s", type=float, help="wall-clock cap of the training run, seconds")
    parser.add_argument("--train-args", default="", help='extra train.py flags, one string (e.g. "--preset best")')
    parser.add_argument("--poll-s", type=float, default=0.5, help="nvidia-smi / exit polling interval, seconds")
    parser.add_argument(
        "--work-dir", help="subprocess outputs, logs and the training's run folder (default runs/gpu_suite-<time>)"
    )
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("env_steps", "repeats", "updates", "train_envs", "train_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.env_worlds + args.update_batches) < 1 or args.time_cap_s <= 0:
        parser.error("sizes and --time-cap-s must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    path = pathlib.Path(args.json or REPO / "benchmarks" / "results" / f"gpu_suite-{time.strftime('%Y-%m-%d')}.json")
    work = pathlib.Path(args.work_dir or REPO / "runs" / f"gpu_suite-{time.strftime('%Y%m%d-%H%M%S')}")
    work.mkdir(parents=True, exist_ok=True)
    try:
        device, env_rows = env_measurements(args, work)
        record = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": shlex.join(["python", "benchmarks/gpu_suite.py", *argv]),
            "quick": args.quick,
            "device": device,
            "versions": versions(),
            "env": env_rows,
            "update": update_measurements(args, work),
            "train": train_measurement(args, work),
        }
        check_finite(record)
    except SuiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from mjx_reach import runs

    path.parent.mkdir(parents=True, exist_ok=True)
    runs.atomic_write(path, json.dumps(record, indent=2))
    print(markdown(record))
    print(f"\nrecord: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
