"""Keep JAX from reserving most of the GPU at start-up.

JAX preallocates 75 % of GPU memory by default, but MJX-Warp allocates its own buffers (render
contexts, BVHs) outside XLA, after JAX has started. Every entry point (``train.py``, ``export.py``,
``python -m mjx_reach.pretrain`` / ``compare`` / ``viz``, the benchmarks, the notebooks' first cell)
calls ``disable()`` before importing JAX. It only sets a default: an exported
``XLA_PYTHON_CLIENT_PREALLOCATE`` wins.
"""

from __future__ import annotations

import os


def disable() -> None:
    """Default ``XLA_PYTHON_CLIENT_PREALLOCATE`` to ``false`` (call before JAX initialises)."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
