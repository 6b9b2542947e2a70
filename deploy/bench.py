"""The real bench as measured, and the check that a model was trained for it.

A bench file is JSON (``BENCH_EXAMPLE``: metres, sim world frame with the arm base at the origin);
``load_bench`` reads it, ``check_bench`` refuses (``PolicyError``, one line) a model whose training
camera or image size does not match the bench it is about to run on.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from deploy.policy import Metadata
from mjx_reach.contract import MIN_POS_TOLERANCE_M, MIN_ROT_TOLERANCE_DEG, PolicyError


@dataclasses.dataclass(frozen=True)
class Bench:
    """The real bench as measured (sim world frame: arm base at the origin, metres)."""

    camera_pos: tuple[float, float, float]
    camera_lookat: tuple[float, float, float]
    image_hw: tuple[int, int] | None = None
    """Policy image size this bench expects, (height, width); None accepts the model's."""


BENCH_EXAMPLE = '{"camera": {"pos": [x, y, z], "lookat": [x, y, z]}, "image": {"height": H, "width": W}}'
"""The bench JSON (metres, sim world frame); ``image`` is optional."""


def load_bench(path) -> Bench:
    """Read a bench JSON (``BENCH_EXAMPLE``)."""
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text())
        image = data.get("image")
        return Bench(
            camera_pos=tuple(float(v) for v in data["camera"]["pos"]),
            camera_lookat=tuple(float(v) for v in data["camera"]["lookat"]),
            image_hw=None if image is None else (int(image["height"]), int(image["width"])),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise PolicyError(f"bench file {path}: unreadable ({type(e).__name__}: {e}); expected {BENCH_EXAMPLE}") from None


def check_bench(meta: Metadata, bench: Bench) -> None:
    """Refuse (``PolicyError``) a model trained for another image size or another camera pose than
    the bench's: position within the training jitter per axis, optical axis within its rotation
    jitter (at least ``MIN_POS_TOLERANCE_M`` / ``MIN_ROT_TOLERANCE_DEG``)."""
    if bench.image_hw is not None and tuple(bench.image_hw) != meta.image_hw:
        raise PolicyError(f"image size: the model takes {meta.image_hw[0]}x{meta.image_hw[1]} but the bench expects {bench.image_hw[0]}x{bench.image_hw[1]}")
    pos = np.asarray(bench.camera_pos, np.float64)
    tol_pos = max(meta.camera_jitter["pos_m"], MIN_POS_TOLERANCE_M)
    if np.max(np.abs(pos - meta.camera_pos)) > tol_pos:
        raise PolicyError(f"camera position: the bench has {pos.tolist()} m, the model was trained at {meta.camera_pos.tolist()} m (tolerance {tol_pos} m per axis)")
    axis = lambda p, q: (np.asarray(q) - p) / np.linalg.norm(np.asarray(q) - p)
    angle = np.rad2deg(np.arccos(np.clip(axis(pos, bench.camera_lookat) @ axis(meta.camera_pos, meta.camera_lookat), -1.0, 1.0)))
    tol_rot = max(meta.camera_jitter["rot_deg"], MIN_ROT_TOLERANCE_DEG)
    if angle > tol_rot:
        raise PolicyError(f"camera orientation: the bench's optical axis is {angle:.2f} deg off the model's (tolerance {tol_rot} deg)")
