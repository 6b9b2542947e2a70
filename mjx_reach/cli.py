"""Command-line plumbing shared by ``train.py`` and ``python -m mjx_reach.pretrain``: a typed
argument dataclass whose ``config`` field is flattened into flags (``--agent.batch-size 64``) and
whose defaults come from the ``--preset`` named on the command line, scaled to its ``--num-envs``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from mjx_reach import config as config_lib

Args = TypeVar("Args")


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` (``--flag V`` or ``--flag=V``) in ``argv``, or None when absent: for
    the few flags that decide the defaults of the others, read before the full parse."""
    for i, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
    return None


def without_flags(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` without ``flags`` and their values (``--flag V`` or ``--flag=V``)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        elif not any(arg.startswith(flag + "=") for flag in flags):
            kept.append(arg)
    return kept


def preset_name(argv: list[str]) -> str:
    """The value of ``--preset`` in ``argv`` (``default`` when absent)."""
    return flag_value(argv, "--preset") or "default"


def default_config(argv: list[str]) -> config_lib.Config:
    """The ``--preset`` named in ``argv``, scaled to its ``--num-envs`` (``config.scale_to_num_envs``):
    the defaults that the other flags then override."""
    cfg = config_lib.preset(preset_name(argv))
    num_envs = flag_value(argv, "--num-envs")
    if num_envs is None:
        return cfg
    try:
        return config_lib.scale_to_num_envs(cfg, int(num_envs))
    except ValueError:
        raise config_lib.ConfigError(f"num_envs: must be an integer, got {num_envs!r}") from None


def parse(args_cls: type[Args], argv: list[str], description: str, base: config_lib.Config | None = None) -> Args:
    """Parse ``argv`` into ``args_cls(config=...)`` (its other fields have defaults) with the values
    of ``base`` (default: the preset named in ``argv``, scaled to its ``--num-envs``) as defaults."""
    import tyro

    defaults = default_config(argv) if base is None else base
    return tyro.cli(args_cls, default=args_cls(config=defaults), args=argv, description=description)


def run_main(body: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """Run ``body(argv)``; bad input (``ConfigError``, a missing dependency) or a failed run
    (``TrainingError``) becomes one line on stderr and exit status 2 or 1."""
    try:
        return body(sys.argv[1:] if argv is None else argv)
    except (config_lib.ConfigError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        # Only a run that imported mjx_reach.runs can raise its TrainingError; importing it here would
        # import JAX for --help and --print-config.
        runs = sys.modules.get("mjx_reach.runs")
        if runs is None or not isinstance(e, runs.TrainingError):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
