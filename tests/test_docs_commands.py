"""Every ``python ...`` command in the fenced code blocks of README.md, BENCHMARKS.md and docs/*.md
names flags that exist: each is parsed by the real argument parser of its command, and nothing runs.

* ``train.py``, ``evaluate.py`` and ``python -m mjx_reach.pretrain`` (tyro): ``cli.parse`` with the command's
  arguments, so nested config flags (``--agent.batch-size``) and the ``--preset`` and
  ``--num-envs`` they depend on are checked as the CLI reads them.
* The argparse commands (``export.py``, ``python -m deploy`` and ``python -m deploy calibrate``,
  ``mjx_reach.compare``, ``mjx_reach.align``, ``mjx_reach.viz``, ``benchmarks/*.py``): the script or
  module runs as ``__main__`` until it calls ``parse_args``, which is intercepted; the parser it built
  then parses the arguments (types, counts and required arguments included).

Placeholders such as ``runs/<run>`` become a dummy name. A command this file does not know is a
failure: add its parser here."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import pathlib
import re
import runpy
import shlex
import sys
import warnings
from unittest import mock

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console", "text"}
"""Fenced blocks whose lines may be commands (``python`` and ``json`` blocks are not)."""
PYTHON = re.compile(r"^(?:\S*/)?python3?$")
TYRO_CLIS = {
    "train.py": ("train", "TrainArgs"),
    "evaluate.py": ("evaluate", "EvaluateArgs"),
    "-m mjx_reach.pretrain": ("mjx_reach.pretrain", "PretrainArgs"),
}
"""Command → (module, argument dataclass) of the tyro CLIs (``mjx_reach.cli.parse``)."""
ARGPARSE_CLIS = {
    "export.py",
    "-m deploy",
    "-m mjx_reach.compare",
    "-m mjx_reach.align",
    "-m mjx_reach.background",
    "-m mjx_reach.viz",
    *(f"benchmarks/{path.name}" for path in (REPO / "benchmarks").glob("*.py")),
}
OTHER_TOOLS = {"-m pytest", "-m pip"}
"""Not this project's commands: their flags are not checked."""


def commands_in(markdown: str) -> list[str]:
    """The ``python ...`` commands (``.venv/bin/python`` too, after ``&&`` or ``;`` too) of the
    fenced shell blocks of ``markdown``, comments removed, one string each."""
    commands = []
    for lang, body in re.findall(r"^```([\w-]*)\n(.*?)^```", markdown, flags=re.S | re.M):
        if lang not in SHELL_BLOCKS:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if not re.search(r"(^|\s)(\S*/)?python3?(\s|$)", line):
                continue
            tokens = shlex.split(line, comments=True)
            part: list[str] = []
            for token in [*tokens, "&&"]:
                if token not in ("&&", "||", ";", "|"):
                    part.append(token)
                    continue
                while part and re.match(r"^[A-Z_][A-Z0-9_]*=", part[0]):  # VAR=value python ...
                    part = part[1:]
                if part and PYTHON.match(part[0]):
                    commands.append(shlex.join(part))
                part = []
    return commands


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for every command of the docs."""
    return [(path.relative_to(REPO).as_posix(), cmd) for path in DOCS for cmd in commands_in(path.read_text())]


class _Parsed(BaseException):
    """Raised by the intercepted ``parse_args``: the parser a CLI built and the arguments it passed."""

    def __init__(self, parser: argparse.ArgumentParser, args: list[str]):
        super().__init__()
        self.parser, self.args = parser, args


def _intercept(self, args=None, namespace=None):
    raise _Parsed(self, list(sys.argv[1:] if args is None else args))


def _error_line(text: str) -> str:
    """The line of a parser's output that says what is wrong (else its last line)."""
    lines = [line.strip(" │╭╰─") for line in text.strip().splitlines() if line.strip(" │╭╰─")]
    found = [line for line in lines if re.search(r"error|unrecognized|required|expected", line, re.I)]
    return max(found or lines or ["exit status 2, no message"], key=len)


def _parse_tyro(target: str, args: list[str]) -> str | None:
    from mjx_reach import cli
    from mjx_reach import config as config_lib

    module_name, cls_name = TYRO_CLIS[target]
    module = importlib.import_module(module_name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            cli.parse(getattr(module, cls_name), args, module.__doc__ or "")
        except SystemExit as e:
            return None if e.code in (0, None) else _error_line(out.getvalue())
        except config_lib.ConfigError as e:
            return str(e)
    return None


def _parse_argparse(target: str, args: list[str]) -> str | None:
    name = target.removeprefix("-m ")
    original = argparse.ArgumentParser.parse_args
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", _intercept),
        mock.patch.object(sys, "argv", [name, *args]),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported before
        try:
            if target.startswith("-m "):
                runpy.run_module(name, run_name="__main__")
            else:
                runpy.run_path(str(REPO / name), run_name="__main__")
        except _Parsed as parsed:
            parser, parsed_args = parsed.parser, parsed.args
        except SystemExit as e:
            return f"exited ({e.code}) before parsing its arguments"
        else:
            return "finished without parsing its arguments"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            original(parser, parsed_args)
        except SystemExit as e:
            return None if e.code in (0, None) else _error_line(out.getvalue())
    return None


def check_command(command: str) -> str | None:
    """None when ``command``'s parser accepts its arguments, else why not (one line)."""
    _, *rest = shlex.split(command)
    if rest[:1] == ["-m"]:
        target, args = f"-m {rest[1]}", rest[2:]
    elif rest:
        target, args = rest[0].removeprefix("./"), rest[1:]
    else:
        return "no script or module"
    args = [re.sub(r"<[^<>]*>", "placeholder", arg) for arg in args]
    if target in OTHER_TOOLS:
        return None
    if target in TYRO_CLIS:
        return _parse_tyro(target, args)
    if target in ARGPARSE_CLIS:
        return _parse_argparse(target, args)
    return f"unknown command {target!r}: add its parser to tests/test_docs_commands.py"


def test_commands_are_found_in_every_block_kind():
    text = "\n".join(
        [
            "```bash",
            "bash setup.sh && .venv/bin/python train.py --preset smoke   # comment --not-a-flag",
            "XLA_FLAGS=x python -m deploy runs/<run>/actor.onnx \\",
            "    --twin --random-goals 5",
            "```",
            "```python",
            "python = 3  # not a command",
            "```",
            "```text",
            "next: python export.py runs/a",
            "      python -m deploy runs/a/actor.onnx --twin",
            "```",
            "`python train.py --inline` is prose",
        ]
    )
    assert commands_in(text) == [
        ".venv/bin/python train.py --preset smoke",
        "python -m deploy 'runs/<run>/actor.onnx' --twin --random-goals 5",
        "python -m deploy runs/a/actor.onnx --twin",
    ]


@pytest.mark.parametrize(
    "command",
    [
        "python train.py --agent.made-up-flag 3",
        "python train.py --made-up-flag",
        "python train.py --preset no-such-preset",
        "python export.py runs/x --made-up-flag",
        "python -m deploy runs/x/actor.onnx --twin --made-up-flag",
        "python -m deploy runs/x/actor.onnx --goal 0.4 0.1",  # --goal takes 3 numbers
        "python -m deploy calibrate --made-up-flag",
        "python -m mjx_reach.compare --made-up-flag",
        "python -m mjx_reach.pretrain --pretrain.made-up-flag 1",
        "python benchmarks/env_throughput.py --made-up-flag",
        "python benchmarks/no_such_script.py",
    ],
)
def test_a_flag_that_does_not_exist_fails(command):
    error = check_command(command)
    assert error, f"{command} was accepted"
    assert "\n" not in error


def test_the_real_flags_pass():
    for command in (
        "python train.py --agent.batch-size 77 --num-envs 4096 --train.no-pretrain-encoder",
        "python -m deploy calibrate --twin --json out.json",
        "python export.py runs/x --check-envs 1",
    ):
        assert check_command(command) is None, command


def test_the_docs_have_commands_of_every_step():
    commands = " ".join(cmd for _, cmd in documented_commands())
    for cli in ("train.py", "export.py", "-m deploy ", "-m deploy calibrate", "-m mjx_reach.align", "benchmarks/"):
        assert cli in commands, cli


@pytest.mark.parametrize(("doc", "command"), documented_commands(), ids=lambda v: v[:70])
def test_documented_command_parses(doc, command):
    assert check_command(command) is None, f"{doc}: {command}: {check_command(command)}"
