"""Command-line plumbing shared by ``train.py`` and ``python -m mjx_reach.pretrain``: a typed
argument dataclass whose ``config`` field is flattened into flags (``--agent.batch-size 64``) and
whose defaults come from the ``--preset`` named on the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from mjx_reach import config as config_lib

Args = TypeVar("Args")


def preset_name(argv: list[str]) -> str:
    """The value of ``--preset`` in ``argv`` (``default`` when absent)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--preset="):
            return arg.split("=", 1)[1]
        if arg == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
    return "default"


def parse(args_cls: type[Args], argv: list[str], description: str) -> Args:
    """Parse ``argv`` into ``args_cls(config=..., preset=...)`` with the preset's values as defaults."""
    import tyro

    name = preset_name(argv)
    return tyro.cli(args_cls, default=args_cls(config=config_lib.preset(name), preset=name), args=argv, description=description)


def run_main(body: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """Run ``body(argv)``; bad input (``ConfigError``, a missing dependency) or a failed run
    (``TrainingError``) becomes one line on stderr and exit status 2 or 1."""
    try:
        from mjx_reach.training import TrainingError

        return body(sys.argv[1:] if argv is None else argv)
    except (config_lib.ConfigError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
