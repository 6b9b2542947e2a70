"""Train the asymmetric DDPG reach policy from pixels.

    python train.py                           # CPU-sized default, finishes in minutes
    python train.py --num-envs 4096 --preset best
    python train.py --resume --out runs/my_run
    python train.py --bench calibration/bench.json  # train for the calibrated camera

Every config field is a flag (``--env.max-step-m 0.03``, ``--agent.batch-size 256``...); ``--preset``
picks the starting values. The run folder gets config.json, checkpoints/, metrics.csv, tb/,
eval.json and eval.mp4 (and encoder/ when the preset pretrains one).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Annotated

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # Warp allocates outside XLA

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
    bench: str | None = None
    """Bench JSON (``python -m deploy calibrate``): the policy camera's position, look-at point,
    roll and field of view (replace --env.camera.*); the workspace box must stay in its view."""


def train(argv: list[str]) -> int:
    args = cli.parse(TrainArgs, argv, __doc__)
    train_cfg = args.config.train
    if args.total_steps is not None:
        train_cfg = dataclasses.replace(train_cfg, total_env_steps=args.total_steps)
    if args.init_encoder is not None:
        train_cfg = dataclasses.replace(train_cfg, init_encoder=args.init_encoder)
    cfg = config_lib.validate(dataclasses.replace(args.config, train=train_cfg))
    if args.bench is not None:
        from mjx_reach import bench

        cfg = bench.apply(cfg, args.bench)
    from mjx_reach import training

    out = args.out or (training.latest_run() if args.resume else f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")

    result = training.run(cfg, out, resume=args.resume, total_env_steps=args.total_steps)
    print(json.dumps(result, indent=2))
    print(f"run folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(train))
