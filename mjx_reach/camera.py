"""Pinhole camera model shared by the simulator, export and the deploy loop (numpy only).

MuJoCo cameras look along their local -z axis with +y up; ``fovy`` is the *vertical* field of
view and pixels are square. Pixel coordinates here are ``(u, v)``: ``u`` to the right from the
left edge, ``v`` down from the top edge, in pixels, with pixel centres at half-integers.

This module must not import JAX or MuJoCo: ``deploy/`` uses it on the robot laptop.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def look_at_xmat(pos, lookat, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world rotation (3, 3) of a camera at ``pos`` looking at ``lookat`` (metres).

    Columns are the camera's x (right), y (up) and z (backward) axes in world coordinates.
    """
    pos, lookat, up = (np.asarray(v, dtype=np.float64) for v in (pos, lookat, up))
    backward = pos - lookat
    norm = np.linalg.norm(backward)
    if norm < 1e-9:
        raise ValueError("camera position and look-at point coincide")
    z = backward / norm
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("camera looks straight along the up axis: orientation is undefined")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def focal_length_px(fovy_deg: float, height_px: int) -> float:
    """Focal length in pixels of a camera with vertical field of view ``fovy_deg`` (degrees)."""
    return 0.5 * height_px / np.tan(np.deg2rad(fovy_deg) / 2.0)


def fovy_deg_from_intrinsics(fy_px: float, height_px: float) -> float:
    """Vertical field of view (degrees) of an image ``height_px`` tall with focal length ``fy_px``."""
    return float(np.rad2deg(2.0 * np.arctan(0.5 * height_px / fy_px)))


def project(points, cam_pos, cam_xmat, fovy_deg: float, image_hw: tuple[int, int]):
    """Project world points (..., 3) [m] into a MuJoCo camera.

    Returns ``(uv, depth)``: pixel coordinates (..., 2) and depth along the view axis (...,) in
    metres (positive in front of the camera).
    """
    points = np.asarray(points, dtype=np.float64)
    rel = points - np.asarray(cam_pos, dtype=np.float64)
    cam = rel @ np.asarray(cam_xmat, dtype=np.float64)  # world → camera frame
    depth = -cam[..., 2]
    h, w = image_hw
    f = focal_length_px(fovy_deg, h)
    safe = np.where(depth > 1e-9, depth, 1e-9)
    u = 0.5 * w + f * cam[..., 0] / safe
    v = 0.5 * h - f * cam[..., 1] / safe
    return np.stack([u, v], axis=-1), depth


def box_corners(low, high) -> np.ndarray:
    """The 8 corners (8, 3) of the axis-aligned box [low, high]."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    idx = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])
    return np.where(idx == 1, high, low)


def gripper_hull(tcp, half_width_m: float, height_m: float) -> np.ndarray:
    """Corners (..., 8, 3) of the box that holds a downward-pointing gripper whose tool centre
    point (fingertips) is at ``tcp`` (..., 3): ``half_width_m`` around it and below it, and
    ``height_m`` above it up to the flange."""
    tcp = np.asarray(tcp, dtype=np.float64)[..., None, :]
    offset = box_corners([-half_width_m, -half_width_m, -half_width_m], [half_width_m, half_width_m, height_m])
    return tcp + offset


def pixels_inside(uv, depth, image_hw: tuple[int, int], margin_px: float) -> np.ndarray:
    """Whether each projected point lies in front of the camera and ``margin_px`` inside the frame."""
    h, w = image_hw
    u, v = uv[..., 0], uv[..., 1]
    return (depth > 0) & (u >= margin_px) & (u <= w - margin_px) & (v >= margin_px) & (v <= h - margin_px)


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of a real colour stream, in pixels (as RealSense reports them)."""

    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """The region (pixels, in the real frame) that sees what the sim camera sees."""

    left: float
    top: float
    width: float
    height: float


def crop_for_sim_camera(intr: Intrinsics, fovy_deg: float, image_hw: tuple[int, int]) -> CropSpec:
    """The crop of a real frame with intrinsics ``intr`` that has the sim camera's vertical field of
    view ``fovy_deg`` and aspect ``image_hw`` (height, width), centred on the principal point.

    Raises ``ValueError`` if the real frame is too small (its field of view narrower than the sim's).
    """
    h, w = image_hw
    crop_h = 2.0 * intr.fy * np.tan(np.deg2rad(fovy_deg) / 2.0)
    crop_w = crop_h * (w / h) * (intr.fx / intr.fy)
    left, top = intr.ppx - crop_w / 2.0, intr.ppy - crop_h / 2.0
    if left < -0.5 or top < -0.5 or left + crop_w > intr.width + 0.5 or top + crop_h > intr.height + 0.5:
        raise ValueError(
            f"the real camera ({intr.width}x{intr.height}, fy={intr.fy:.1f} px) cannot see the sim camera's "
            f"{fovy_deg:.1f} deg field of view: crop {crop_w:.0f}x{crop_h:.0f} px at ({left:.0f}, {top:.0f}) "
            "leaves the frame"
        )
    return CropSpec(float(left), float(top), float(crop_w), float(crop_h))


def crop_resize(frame: np.ndarray, crop: CropSpec, image_hw: tuple[int, int]) -> np.ndarray:
    """Crop ``frame`` (H, W, C) uint8 to ``crop`` and resize it to ``image_hw`` by area averaging.

    Each output pixel is the mean of the input pixels its footprint covers (fractional coverage
    weighted), which is what a camera with fewer, larger pixels would have measured.
    """
    out_h, out_w = image_hw
    rows = _area_weights(crop.top, crop.height, out_h, frame.shape[0])
    cols = _area_weights(crop.left, crop.width, out_w, frame.shape[1])
    x = frame.astype(np.float32)
    x = np.einsum("oh,hwc->owc", rows, x)
    x = np.einsum("pw,owc->opc", cols, x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _area_weights(start: float, length: float, n_out: int, n_in: int) -> np.ndarray:
    """Matrix (n_out, n_in): the fraction of each input pixel inside each output pixel's footprint,
    rows normalised to sum to 1."""
    edges = start + length * np.arange(n_out + 1) / n_out
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)
