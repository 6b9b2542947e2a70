"""Train the asymmetric DDPG reach policy from pixels.

    python train.py                           # CPU-sized default, finishes in minutes
    python train.py --num-envs 4096           # one GPU: the defaults scale with --num-envs
    python train.py --num-envs 4096 --print-config
    python train.py --resume --out runs/my_run
    python train.py --bench calibration/bench.json  # train for the calibrated camera

Every config field is a flag (``--env.max-step-m 0.03``, ``--agent.batch-size 256``...); ``--preset``
picks the starting values and ``--num-envs`` scales them (``config.scale_to_num_envs``). The run folder gets config.json, checkpoints/, metrics.csv, tb/,
eval.json and eval.mp4 (and encoder/ when the preset pretrains one); the run ends by printing a short
summary (``mjx_reach.summary``) with the export and deploy commands.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time
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


def train(argv: list[str]) -> int:
    resumed = resumed_run(argv)
    # A resumed run's defaults are its saved config: --total-steps may extend it.
    args = cli.parse(TrainArgs, argv, __doc__, base=resumed[1] if resumed else None)
    cfg = config_lib.override(args.config, total_env_steps=args.total_steps, init_encoder=args.init_encoder)
    if args.bench is not None and not args.print_config:
        build_backgrounds(args.bench, cfg.env.image_size)
    cfg = config_lib.validate(cfg if args.bench is None else config_lib.with_bench_camera(cfg, args.bench))
    if args.print_config:
        print(json.dumps(config_lib.to_dict(cfg), indent=2))
        return 0
    from mjx_reach import summary, training

    out = resumed[0] if resumed else args.out or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    start = time.perf_counter()
    result = training.run(cfg, out, resume=resumed is not None)
    print(summary.train_summary(result, out, time.perf_counter() - start, summary.python_command()))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(train))
