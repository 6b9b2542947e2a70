"""Time one whole training run on this machine and record it with its learning curve.

    python benchmarks/train_cpu.py --preset default --out runs/bench-cpu --json bench.json

Trains ``--preset`` (``--total-steps``/``--num-envs`` override it) with ``training.run`` into the
fresh run folder ``--out``, draws ``OUT/curve.png`` with ``mjx_reach.compare.plot_runs`` and writes
``--json``: ``{"date", "device": {"cpu", "cores"}, "command", "preset", "wall_s", "train_wall_s",
"env_steps", "env_steps_per_s", "updates", "eval", "phases", "run", "curve"}``. ``wall_s`` is the
whole run in seconds (compiling, pretraining an encoder when the preset does, evaluation);
``env_steps_per_s`` is ``env_steps / wall_s``; ``train_wall_s`` is the training loop alone (the
last ``wall_s`` of metrics.csv); ``updates`` counts gradient updates (chunks that learned x
iterations per chunk x updates per iteration); ``phases`` is the run's ``phases.json`` (seconds per
phase and the part spent compiling).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import sys
import time

from mjx_reach import preallocation

preallocation.disable()

import numpy as np

from mjx_reach import cli, compare, machine, runs, training


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", help="config preset to train")
    parser.add_argument("--total-steps", type=int, help="env steps (default: the preset's)")
    parser.add_argument("--num-envs", type=int, help="parallel environments (default: the preset's)")
    parser.add_argument("--out", default="runs/bench-cpu", help="run folder (must not hold checkpoints)")
    parser.add_argument("--json", required=True, help="write the record here")
    args = parser.parse_args(argv)
    cfg = compare.preset_config(args.preset, args.total_steps, args.num_envs, seed=None)
    out = pathlib.Path(args.out)

    start = time.perf_counter()
    result = training.run(cfg, out)
    phases = result.pop("phases")
    wall_s = time.perf_counter() - start
    metrics = runs.read_metrics(out)
    env_steps = int(metrics["env_steps"][-1])
    learned_chunks = int(np.isfinite(metrics["critic_loss"]).sum()) if "critic_loss" in metrics else 0
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "device": machine.describe(),
        "command": shlex.join([os.path.basename(sys.executable), *sys.argv]),
        "preset": args.preset,
        "wall_s": wall_s,
        "train_wall_s": float(metrics["wall_s"][-1]),
        "env_steps": env_steps,
        "env_steps_per_s": env_steps / wall_s,
        "updates": learned_chunks * cfg.train.iterations_per_chunk * cfg.train.updates_per_iteration,
        "eval": result,
        "phases": phases,
        "run": str(out),
        "curve": str(compare.plot_runs([out], out / "curve.png", labels=[args.preset])),
    }
    pathlib.Path(args.json).write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
