"""This machine, as the benchmark records name it: its CPU model and the cores this process may use."""

from __future__ import annotations

import os
import pathlib


def cpu_model() -> str:
    """The ``model name`` of the first CPU in /proc/cpuinfo (``unknown`` elsewhere)."""
    try:
        lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def describe() -> dict:
    """``{"cpu": cpu_model(), "cores": cores available to this process}``."""
    return {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0))}
