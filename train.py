"""Train the asymmetric DDPG reach policy from pixels.

    python train.py                           # CPU-sized default, finishes in minutes
    python train.py --num-envs 4096 --preset best
    python train.py --resume --out runs/my_run

Every config field is a flag (``--env.max-step-m 0.03``, ``--agent.batch-size 256``...); ``--preset``
picks the starting values. The run folder gets config.json, checkpoints/, metrics.csv, tb/,
eval.json and eval.mp4.
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


def parse(argv: list[str]) -> TrainArgs:
    name = "default"
    for i, arg in enumerate(argv):
        if arg.startswith("--preset="):
            name = arg.split("=", 1)[1]
        elif arg == "--preset" and i + 1 < len(argv):
            name = argv[i + 1]
    base = config_lib.preset(name)
    return tyro.cli(TrainArgs, default=TrainArgs(config=base, preset=name), args=argv, description=__doc__)


def latest_run(root: str = "runs") -> str:
    runs = sorted((p for p in os.scandir(root) if p.is_dir()), key=lambda p: p.stat().st_mtime) if os.path.isdir(root) else []
    if not runs:
        raise config_lib.ConfigError(f"--resume: no run folder in {root}/ (pass --out)")
    return runs[-1].path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
        cfg = args.config
        train = cfg.train
        if args.total_steps is not None:
            train = dataclasses.replace(train, total_env_steps=args.total_steps)
        if args.init_encoder is not None:
            train = dataclasses.replace(train, init_encoder=args.init_encoder)
        cfg = config_lib.validate(dataclasses.replace(cfg, train=train))
        out = args.out or (latest_run() if args.resume else f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
        from mjx_reach import training

        result = training.run(cfg, out, resume=args.resume)
    except (config_lib.ConfigError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from mjx_reach.training import TrainingError

        if isinstance(e, TrainingError):
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise
    print(json.dumps(result, indent=2))
    print(f"run folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
