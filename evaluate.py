"""Evaluate a trained run again, without training: its last checkpoint on the held-out episodes of
the plain bench and of every held-out bench (``mjx_reach.robustness``), as trained or with the
evaluation's settings changed.

    python evaluate.py                                          # the latest run in runs/
    python evaluate.py runs/my_run --train.eval-envs 512        # more held-out episodes
    python evaluate.py runs/my_run --randomization.cam-rot-eval-deg 1 --out runs/my_run/eval_cam1.json

Every flag's default is the run's saved config (``config.json``). Only what an evaluation varies
may change (``EVALUATION_FIELDS``: the seed of the held-out episodes, the env, the randomization the
benches are built from, the episode count), never what shapes the networks. Writes ``--out``
(default ``RUN/evaluate.json``; never the run's own ``eval.json``) atomically: the fields of
``eval.json`` (the plain bench, the oracle, the ``robustness`` block), the checkpoint's
``env_steps`` and the ``config_changes`` made; then prints a summary (``summary.evaluate_summary``).
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

EVALUATION_FIELDS = ("seed", "env.", "randomization.", "train.eval_envs")
"""The config fields (dotted names, or their sections' prefixes) an evaluation may change."""


@dataclasses.dataclass
class EvaluateArgs:
    config: Annotated[config_lib.Config, tyro.conf.arg(name="")]
    run: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="RUN")] = ""
    """Run folder (default: the latest in runs/)."""
    out: str = ""
    """Where to write the result (default: RUN/evaluate.json)."""


def evaluation_changes(saved: config_lib.Config, cfg: config_lib.Config) -> dict[str, object]:
    """{dotted field: new value} of what ``cfg`` changes in the run's ``saved`` config; a change
    outside ``EVALUATION_FIELDS``, or one that changes the policy's image, is a ``ConfigError``."""
    changes = config_lib.changed_fields(config_lib.to_dict(saved), config_lib.to_dict(cfg))
    for name in changes:
        if not any(name == field or (field.endswith(".") and name.startswith(field)) for field in EVALUATION_FIELDS):
            raise config_lib.ConfigError(
                f"--{name.replace('_', '-')}: not an evaluation setting (it changes the policy or its training)"
            )
    if config_lib.image_shape(cfg.env) != config_lib.image_shape(saved.env):
        raise config_lib.ConfigError(
            f"env: the policy takes {config_lib.image_shape(saved.env)} images, the changes make them "
            f"{config_lib.image_shape(cfg.env)}"
        )
    return changes


def evaluate(argv: list[str]) -> int:
    from mjx_reach import runs  # imports JAX

    run = pathlib.Path(cli.parse(EvaluateArgs, argv, __doc__).run or runs.latest_run())
    saved = runs.read_config(run)
    args = cli.parse(EvaluateArgs, argv, __doc__, base=saved)
    cfg = config_lib.validate(args.config)
    changes = evaluation_changes(saved, cfg)
    out = pathlib.Path(args.out) if args.out else run / "evaluate.json"
    if out.resolve() == (run / "eval.json").resolve():
        raise config_lib.ConfigError(f"--out: {out} is the run's own eval.json; choose another file")

    from mjx_reach import evaluate as evaluate_lib
    from mjx_reach import summary

    start = time.perf_counter()
    _, agent, params = runs.load_params(run, cfg)
    evaluator = evaluate_lib.Evaluator(cfg, evaluate_lib.agent_policy(agent), oracle=evaluate_lib.oracle_policy(agent))
    result = evaluator(params, robustness=True) | {
        "env_steps": runs.Checkpoints(run).latest_step(),
        "run": str(run),
        "config_changes": changes,
    }
    runs.atomic_write(out, json.dumps(result, indent=2))
    print(summary.evaluate_summary(result, out, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(evaluate))
