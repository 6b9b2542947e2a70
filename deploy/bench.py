"""Is a model trained for this bench? The check deploy makes before it moves the arm.

``check_bench`` refuses (``PolicyError``, one line) a model whose training camera or image size does
not match the bench (``mjx_reach.contract.Bench``, read with ``contract.load_bench``) it is about to
run on.
"""

from __future__ import annotations

import numpy as np

from deploy.policy import Metadata
from mjx_reach import camera as camera_model
from mjx_reach.contract import MIN_POS_TOLERANCE_M, MIN_ROT_TOLERANCE_DEG, Bench, PolicyError


def check_bench(meta: Metadata, bench: Bench) -> None:
    """Refuse (``PolicyError``) a model trained for another image size or another camera pose than
    the bench's: position within the training jitter per axis, orientation within its rotation
    jitter (at least ``MIN_POS_TOLERANCE_M`` / ``MIN_ROT_TOLERANCE_DEG``), where the orientation
    difference is the whole rotation between the two cameras (optical axis and roll)."""
    if bench.image_hw is not None and tuple(bench.image_hw) != meta.image_hw:
        raise PolicyError(
            f"image size: the model takes {meta.image_hw[0]}x{meta.image_hw[1]} but the bench expects {bench.image_hw[0]}x{bench.image_hw[1]}"
        )
    pos = np.asarray(bench.camera_pos, np.float64)
    tol_pos = max(meta.camera_jitter["pos_m"], MIN_POS_TOLERANCE_M)
    if np.max(np.abs(pos - meta.camera_pos)) > tol_pos:
        raise PolicyError(
            f"camera position: the bench has {pos.tolist()} m, the model was trained at {meta.camera_pos.tolist()} m (tolerance {tol_pos} m per axis)"
        )
    try:
        bench_xmat = camera_model.camera_xmat(pos, bench.camera_lookat, bench.camera_roll_deg)
    except ValueError as e:
        raise PolicyError(f"bench camera: {e}") from None
    angle = camera_model.rotation_angle_deg(
        bench_xmat, camera_model.camera_xmat(meta.camera_pos, meta.camera_lookat, meta.camera_roll_deg)
    )
    tol_rot = max(meta.camera_jitter["rot_deg"], MIN_ROT_TOLERANCE_DEG)
    if angle > tol_rot:
        raise PolicyError(
            f"camera orientation: the bench's camera is rotated {angle:.2f} deg from the model's (optical axis and roll; tolerance {tol_rot} deg)"
        )
