"""Command-line plumbing shared by ``train.py`` and ``python -m mjx_reach.pretrain``: a typed
argument dataclass whose ``config`` field is flattened into flags (``--agent.batch-size 64``) and
whose defaults come from the ``--preset`` named on the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from mjx_reach import config as config_lib
from mjx_reach.runs import TrainingError

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


def preset_name(argv: list[str]) -> str:
    """The value of ``--preset`` in ``argv`` (``default`` when absent)."""
    return flag_value(argv, "--preset") or "default"


def parse(args_cls: type[Args], argv: list[str], description: str, base: config_lib.Config | None = None) -> Args:
    """Parse ``argv`` into ``args_cls(config=..., preset=...)`` with the values of ``base`` (default:
    the preset named in ``argv``) as defaults."""
    import tyro

    name = preset_name(argv)
    defaults = config_lib.preset(name) if base is None else base
    return tyro.cli(args_cls, default=args_cls(config=defaults, preset=name), args=argv, description=description)


def run_main(body: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """Run ``body(argv)``; bad input (``ConfigError``, a missing dependency) or a failed run
    (``TrainingError``) becomes one line on stderr and exit status 2 or 1."""
    try:
        return body(sys.argv[1:] if argv is None else argv)
    except (config_lib.ConfigError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
