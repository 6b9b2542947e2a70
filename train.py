"""Train the asymmetric DDPG reach policy from pixels.

    python train.py                           # CPU-sized default, finishes in minutes
    python train.py --num-envs 4096           # one GPU: the defaults scale with --num-envs
    python train.py --num-envs 4096 --print-config
    python train.py --resume --out runs/my_run
    python train.py --bench calibration/bench.json  # train for the calibrated camera
    python train.py --num-envs 4096 --processes 8   # one process per GPU of this host

Every config field is a flag (``--env.max-step-m 0.03``, ``--agent.batch-size 256``...); ``--preset``
picks the starting values and ``--num-envs`` scales them (``config.scale_to_num_envs``). The run folder gets config.json, checkpoints/, metrics.csv, tb/,
eval.json and eval.mp4 (and encoder/ when the preset pretrains one); the run ends by printing a short
summary (``mjx_reach.summary``) with the export and deploy commands. With ``--processes P`` (and
``--num-hosts``) the run is split over several processes (``mjx_reach.launcher`` starts them,
``mjx_reach.distributed`` joins them; docs/scaling.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time
import traceback
from typing import Annotated

from mjx_reach import preallocation

preallocation.disable()

import tyro

from mjx_reach import cli
from mjx_reach import config as config_lib


@dataclasses.dataclass
class TrainArgs:
    config: Annotated[config_lib.Config, tyro.conf.arg(name="")]
    preset: str = "default"
    """Named starting config (mjx_reach.config.PRESETS)."""
    out: str = ""
    """Run folder (default: runs/<preset>-<time>; with --resume: the latest run in runs/)."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint."""
    total_steps: int | None = None
    """Shorthand for --train.total-env-steps."""
    init_encoder: str | None = None
    """Shorthand for --train.init-encoder: a pretrained encoder checkpoint folder."""
    print_config: bool = False
    """Print the resolved config as JSON and exit (nothing is trained)."""
    processes: int | None = None
    """Shorthand for --distributed.processes: processes on this host, one per GPU (each sees only
    its own) or per group of CPU cores; the worlds, replay and batch split evenly over them."""
    num_hosts: int | None = None
    """Shorthand for --distributed.hosts: hosts that each run this command with --processes."""
    host_rank: int = 0
    """This host's place among --num-hosts (0 runs process 0, which serves the coordinator)."""
    coordinator: str = ""
    """HOST:PORT of process 0's coordinator (needed with several hosts; one host picks a free
    local port); ``auto``: this process is one task of a cluster job and JAX finds the
    coordinator, the process count and its index itself (SLURM: one task per GPU)."""
    process_id: int | None = None
    """This process's index in the run: set by the launcher, not by hand."""
    bench: str | None = None
    """Bench JSON (``python -m deploy calibrate``): the policy camera's position, look-at point,
    roll and field of view (replace --env.camera.*), camera jitter from the calibration's standard
    deviations, and the real bench behind the arm as a green-screen background (built from the
    calibration logs beside it when missing: ``python -m mjx_reach.background``); the workspace box
    must stay in its view."""


def resumed_run(argv: list[str]) -> tuple[pathlib.Path, config_lib.Config] | None:
    """With ``--resume`` in ``argv``: the run folder it continues (``--out``, else the latest in
    runs/) and that run's saved config; else None."""
    if "--resume" not in argv:
        return None
    from mjx_reach import runs  # imports JAX: only when resuming

    out = cli.flag_value(argv, "--out")
    out = pathlib.Path(out) if out else runs.latest_run()
    return out, runs.read_config(out, "--resume: ")


def build_backgrounds(bench: str, image_hw: tuple[int, int]) -> None:
    """The green-screen backgrounds of a calibrated bench, built beside it when it has none yet
    (``background.ensure``); a failure is a one-line ``ConfigError``."""
    from mjx_reach import background
    from mjx_reach.contract import PolicyError

    try:
        if background.ensure(bench, image_hw):
            print(f"built the bench's background from its calibration log(s), recorded in {bench}", file=sys.stderr)
    except (ValueError, PolicyError) as e:
        raise config_lib.ConfigError(f"--bench: {e}") from None


LAUNCHER_FLAGS = ("--coordinator", "--host-rank", "--process-id")
"""Flags that place one process in a run: the launcher gives each process its own."""


def join_processes(args: TrainArgs, cfg: config_lib.Config) -> None:
    """Join this process to the run's others (``distributed.initialize``) when the run has several."""
    count = config_lib.process_count(cfg)
    if count == 1:
        return
    from mjx_reach import distributed

    distributed.initialize(args.coordinator, count, args.process_id, cfg.distributed)


def train(argv: list[str]) -> int:
    resumed = resumed_run(argv)
    # A resumed run's defaults are its saved config: --total-steps may extend it.
    args = cli.parse(TrainArgs, argv, __doc__, base=resumed[1] if resumed else None)
    cfg = config_lib.override(
        args.config,
        total_env_steps=args.total_steps,
        init_encoder=args.init_encoder,
        processes=args.processes,
        hosts=args.num_hosts,
    )
    if resumed and config_lib.process_count(cfg) != config_lib.process_count(resumed[1]):
        raise config_lib.ConfigError(
            f"--processes: {resumed[0]} was trained by {config_lib.process_count(resumed[1])} process(es); resume it with as many"
        )
    if args.bench is not None and not args.print_config and args.process_id in (None, 0):
        build_backgrounds(args.bench, cfg.env.image_size)
    cfg = config_lib.validate(cfg if args.bench is None else config_lib.with_bench_camera(cfg, args.bench))
    if args.print_config:
        from mjx_reach import memory  # no JAX

        print(json.dumps(config_lib.to_dict(cfg), indent=2))
        print(memory.describe(cfg), file=sys.stderr)
        return 0
    dist = cfg.distributed
    if config_lib.process_count(cfg) > 1 and args.process_id is None and args.coordinator != "auto":
        if dist.hosts > 1 and not args.coordinator:
            raise config_lib.ConfigError("--coordinator: several hosts need process 0's HOST:PORT (on host rank 0)")
        if not 0 <= args.host_rank < dist.hosts:
            raise config_lib.ConfigError(f"--host-rank: must be in [0, {dist.hosts}), got {args.host_rank}")
        from mjx_reach import launcher

        run_argv = cli.without_flags(argv, LAUNCHER_FLAGS)
        return launcher.launch(
            run_argv, dist.processes, dist.hosts, args.host_rank, args.coordinator or None, dist.stop_grace_s
        )
    join_processes(args, cfg)
    from mjx_reach import distributed, summary, training
    from mjx_reach.phases import Phases

    out = resumed[0] if resumed else args.out or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    phases = Phases()
    result = training.run(cfg, out, resume=resumed is not None, phases=phases)
    if distributed.current().is_main:
        table = result["phases"]
        print(summary.train_summary(result, out, phases.table()["total_s"], summary.python_command(), phases=table))
    return 0


def main(argv: list[str]) -> int:
    """``train``; a process of a several-process run that fails exits at once, without waiting at
    JAX's shutdown barrier for processes that will not come (its launcher stops them)."""
    if cli.flag_value(argv, "--process-id") is None:
        return cli.run_main(train, argv)
    try:
        status = cli.run_main(train, argv)
    except BaseException as e:
        traceback.print_exc()
        print(f"error: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}", file=sys.stderr)
        status = 1
    if status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
