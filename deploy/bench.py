"""Is a model trained for this bench? The check deploy makes before it moves the arm.

``check_bench`` refuses (``PolicyError``, one line) a model whose cameras or image size do not
match the bench (``mjx_reach.contract.Bench``, read with ``contract.load_bench``) it is about to
run on.
"""

from __future__ import annotations

import numpy as np

from deploy.policy import Metadata, ModelCamera
from mjx_reach import camera as camera_model
from mjx_reach.contract import MIN_POS_TOLERANCE_M, MIN_ROT_TOLERANCE_DEG, Bench, BenchCamera, PolicyError


def check_bench(meta: Metadata, bench: Bench) -> None:
    """Refuse (``PolicyError``) a model trained for another image size, another number of cameras or
    another camera pose than the bench's, camera by camera in input order: position within the
    training jitter per axis, orientation within its rotation jitter (at least
    ``MIN_POS_TOLERANCE_M`` / ``MIN_ROT_TOLERANCE_DEG``), where the orientation difference is the
    whole rotation between the two cameras (optical axis and roll)."""
    if bench.image_hw is not None and tuple(bench.image_hw) != meta.image_hw:
        raise PolicyError(
            f"image size: the model takes {meta.image_hw[0]}x{meta.image_hw[1]} but the bench expects {bench.image_hw[0]}x{bench.image_hw[1]}"
        )
    if len(bench.cameras) != len(meta.cameras):
        raise PolicyError(
            f"cameras: the model was trained with {len(meta.cameras)} camera(s), the bench has {len(bench.cameras)}"
        )
    for k, (trained, real) in enumerate(zip(meta.cameras, bench.cameras)):
        try:
            _check_camera(trained, real)
        except PolicyError as e:
            if len(meta.cameras) == 1:
                raise
            raise PolicyError(f"bench camera {k + 1}: {e}") from None


def _check_camera(trained: ModelCamera, real: BenchCamera) -> None:
    pos = np.asarray(real.pos, np.float64)
    tol_pos = max(trained.jitter["pos_m"], MIN_POS_TOLERANCE_M)
    if np.max(np.abs(pos - trained.pos)) > tol_pos:
        raise PolicyError(
            f"camera position: the bench has {pos.tolist()} m, the model was trained at {trained.pos.tolist()} m (tolerance {tol_pos} m per axis)"
        )
    try:
        bench_xmat = camera_model.camera_xmat(pos, real.lookat, real.roll_deg)
    except ValueError as e:
        raise PolicyError(f"bench camera: {e}") from None
    angle = camera_model.rotation_angle_deg(
        bench_xmat, camera_model.camera_xmat(trained.pos, trained.lookat, trained.roll_deg)
    )
    tol_rot = max(trained.jitter["rot_deg"], MIN_ROT_TOLERANCE_DEG)
    if angle > tol_rot:
        raise PolicyError(
            f"camera orientation: the bench's camera is rotated {angle:.2f} deg from the model's (optical axis and roll; tolerance {tol_rot} deg)"
        )
