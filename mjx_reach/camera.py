"""Pinhole camera model shared by the simulator, export and the deploy loop (numpy only).

MuJoCo cameras look along their local -z axis with +y up; ``fovy`` is the *vertical* field of
view and pixels are square. Pixel coordinates here are ``(u, v)``: ``u`` to the right from the
left edge, ``v`` down from the top edge, in pixels, with pixel centres at half-integers.

This module must not import JAX or MuJoCo: ``deploy/`` uses it on the robot laptop.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike


def look_at_xmat(pos: ArrayLike, lookat: ArrayLike, up: ArrayLike = (0.0, 0.0, 1.0)) -> np.ndarray:
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


def roll_xmat(roll_deg: float) -> np.ndarray:
    """Rotation (3, 3) by ``roll_deg`` degrees about the camera's z axis (right-hand rule; z points
    backwards, out of the lens towards whoever stands behind the camera)."""
    c, s = np.cos(np.deg2rad(roll_deg)), np.sin(np.deg2rad(roll_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def camera_xmat(pos: ArrayLike, lookat: ArrayLike, roll_deg: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation (3, 3) of a camera at ``pos`` looking at ``lookat`` (metres), rolled
    by ``roll_deg`` degrees about its optical axis.

    Roll convention: 0 is level (the image's x axis horizontal, ``look_at_xmat``); a positive roll
    turns the camera counter-clockwise as seen from behind it (its right axis tilts up), so the scene
    turns clockwise in the image.
    """
    return look_at_xmat(pos, lookat) @ roll_xmat(roll_deg)


def lookat_roll_from_xmat(pos: ArrayLike, xmat: ArrayLike, distance_m: float = 1.0) -> tuple[np.ndarray, float]:
    """The (look-at point (3,) m, roll in degrees) that ``camera_xmat`` turns back into the camera
    rotation ``xmat`` (3, 3): the look-at point is ``distance_m`` along the optical axis from ``pos``."""
    pos, xmat = np.asarray(pos, np.float64), np.asarray(xmat, np.float64)
    lookat = pos - distance_m * xmat[:, 2]
    rel = look_at_xmat(pos, lookat).T @ xmat
    return lookat, float(np.rad2deg(np.arctan2(rel[1, 0], rel[0, 0])))


def rotation_angle_deg(a: ArrayLike, b: ArrayLike) -> float:
    """Angle (degrees) of the rotation between two rotation matrices (3, 3)."""
    rel = np.asarray(a, np.float64).T @ np.asarray(b, np.float64)
    return float(np.rad2deg(np.arccos(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0))))


def focal_length_px(fovy_deg: float, height_px: int) -> float:
    """Focal length in pixels of a camera with vertical field of view ``fovy_deg`` (degrees)."""
    return 0.5 * height_px / np.tan(np.deg2rad(fovy_deg) / 2.0)


def fovy_deg_from_intrinsics(fy_px: float, height_px: float) -> float:
    """Vertical field of view (degrees) of an image ``height_px`` tall with focal length ``fy_px``."""
    return float(np.rad2deg(2.0 * np.arctan(0.5 * height_px / fy_px)))


def project(
    points: ArrayLike, cam_pos: ArrayLike, cam_xmat: ArrayLike, fovy_deg: float, image_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
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


def box_corners(low: ArrayLike, high: ArrayLike) -> np.ndarray:
    """The 8 corners (8, 3) of the axis-aligned box [low, high]."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    idx = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])
    return np.where(idx == 1, high, low)


def gripper_hull(tcp: ArrayLike, half_width_m: float, height_m: float) -> np.ndarray:
    """Corners (..., 8, 3) of the box that holds a downward-pointing gripper whose tool centre
    point (fingertips) is at ``tcp`` (..., 3): ``half_width_m`` around it and below it, and
    ``height_m`` above it up to the flange."""
    tcp = np.asarray(tcp, dtype=np.float64)[..., None, :]
    offset = box_corners([-half_width_m, -half_width_m, -half_width_m], [half_width_m, half_width_m, height_m])
    return tcp + offset


def pixels_inside(uv: np.ndarray, depth: np.ndarray, image_hw: tuple[int, int], margin_px: float) -> np.ndarray:
    """Whether each projected point lies in front of the camera and ``margin_px`` inside the frame."""
    h, w = image_hw
    u, v = uv[..., 0], uv[..., 1]
    return (depth > 0) & (u >= margin_px) & (u <= w - margin_px) & (v >= margin_px) & (v <= h - margin_px)


def gripper_visibility(
    tcp: ArrayLike,
    cam_pos: ArrayLike,
    cam_lookat: ArrayLike,
    fovy_deg: float,
    image_hw: tuple[int, int],
    half_width_m: float,
    height_m: float,
    margin_px: float,
    roll_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gripper hull corners (K, 3) [m] around tool centre points ``tcp`` (..., 3) [m], their pixels
    (K, 2) in the camera at ``cam_pos`` looking at ``cam_lookat`` (metres), rolled by ``roll_deg``
    (``camera_xmat``), with vertical field of view ``fovy_deg`` and image ``image_hw`` (height,
    width), and whether each lies in front of it and ``margin_px`` inside the image. Shared by
    config validation and the deploy loop's view guard."""
    xmat = camera_xmat(cam_pos, cam_lookat, roll_deg)
    hull = gripper_hull(tcp, half_width_m, height_m).reshape(-1, 3)
    uv, depth = project(hull, cam_pos, xmat, fovy_deg, image_hw)
    return hull, uv, pixels_inside(uv, depth, image_hw, margin_px)


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of a real colour stream, in pixels (as RealSense reports them)."""

    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float

    def to_array(self) -> np.ndarray:
        """(6,) ``[width, height, fx, fy, ppx, ppy]``: how logs store intrinsics."""
        return np.asarray([self.width, self.height, self.fx, self.fy, self.ppx, self.ppy], np.float64)

    @classmethod
    def from_array(cls, values: ArrayLike) -> Intrinsics:
        """Inverse of ``to_array``."""
        width, height, fx, fy, ppx, ppy = np.asarray(values, np.float64)
        return cls(int(width), int(height), float(fx), float(fy), float(ppx), float(ppy))


D435_COLOUR = Intrinsics(width=640, height=480, fx=615.0923, fy=614.7487, ppx=321.3115, ppy=239.6064)
"""Colour intrinsics as an Intel RealSense D435 reports them at 640x480 (one unit's factory
calibration: off-centre principal point), for tests, benchmarks and examples."""


def intrinsics_for_fovy(fovy_deg: float, height_px: int, width_px: int) -> Intrinsics:
    """Intrinsics of an ideal ``width_px`` x ``height_px`` camera (square pixels, centred principal
    point) with vertical field of view ``fovy_deg``: what MuJoCo renders at that size."""
    f = focal_length_px(fovy_deg, height_px)
    return Intrinsics(width=width_px, height=height_px, fx=f, fy=f, ppx=width_px / 2.0, ppy=height_px / 2.0)


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


PREPROCESSING = {
    "name": "sim_fovy_crop_area_resize",
    "version": 1,
    "crop": "centred on the principal point; vertical field of view = camera.fovy_deg; aspect = image width/height",
    "resize": "area averaging to image height x width",
    "colour": "RGB",
    "dtype": "uint8",
}
"""The real-frame preprocessing that ``preprocess`` implements, as recorded in the ONNX metadata:
deploy refuses a model whose recorded preprocessing differs from this one."""


def preprocess(frame: np.ndarray, intr: Intrinsics, fovy_deg: float, image_hw: tuple[int, int]) -> np.ndarray:
    """The policy image (H, W, C) uint8 seen by the sim camera (vertical field of view ``fovy_deg``,
    image ``image_hw``) from a real ``frame`` (h, w, C) uint8 RGB with intrinsics ``intr``.

    Raises ``ValueError`` if the frame's size disagrees with ``intr`` or the real camera is too narrow."""
    if frame.shape[:2] != (intr.height, intr.width):
        raise ValueError(
            f"frame is {frame.shape[1]}x{frame.shape[0]} px but its intrinsics say {intr.width}x{intr.height}"
        )
    return crop_resize(frame, crop_for_sim_camera(intr, fovy_deg, image_hw), image_hw)


def crop_resize(frame: np.ndarray, crop: CropSpec, image_hw: tuple[int, int]) -> np.ndarray:
    """Crop ``frame`` (H, W, C) uint8 to ``crop`` and resize it to ``image_hw`` by area averaging.

    Each output pixel is the mean of the input pixels its footprint covers (fractional coverage
    weighted), which is what a camera with fewer, larger pixels would have measured. Separable, and
    each pass only gathers the few input rows (columns) under each output row (column): ~1 ms for
    640x480 → 84x84 on one CPU core, without BLAS threads that stall on a busy machine.
    """
    out_h, out_w = image_hw
    rows, row_weights = _area_weights(crop.top, crop.height, out_h, frame.shape[0])
    cols, col_weights = _area_weights(crop.left, crop.width, out_w, frame.shape[1])
    x = np.einsum("ok,okwc->owc", row_weights, frame[rows].astype(np.float32))
    x = np.einsum("pk,opkc->opc", col_weights, x[:, cols])
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _area_weights(start: float, length: float, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``n_out`` equal footprints tiling [start, start + length) over ``n_in`` input pixels:
    the indices (n_out, K) of the K consecutive input pixels from each footprint's first one, and
    the fraction (n_out, K) of each inside the footprint, normalised to sum to 1 per footprint."""
    edges = start + length * np.arange(n_out + 1) / n_out
    first = np.clip(np.floor(edges[:-1]).astype(np.intp), 0, n_in - 1)
    pix = first[:, None] + np.arange(int(np.max(np.ceil(edges[1:]) - np.floor(edges[:-1]))))
    overlap = np.clip(np.minimum(edges[1:, None], pix + 1) - np.maximum(edges[:-1, None], pix), 0.0, None)
    overlap[pix >= n_in] = 0.0
    return np.minimum(pix, n_in - 1), (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def rotvec_to_xmat(rotvec: ArrayLike) -> np.ndarray:
    """Rotation matrix (3, 3) of a rotation vector (3,) rad (Rodrigues)."""
    rotvec = np.asarray(rotvec, np.float64)
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * kx @ kx


def xmat_to_rotvec(xmat: ArrayLike) -> np.ndarray:
    """Rotation vector (3,) rad of a rotation matrix (3, 3)."""
    r = np.asarray(xmat, np.float64)
    angle = np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-9:
        return axis / 2.0
    if np.pi - angle < 1e-6:  # near a half turn the antisymmetric part vanishes
        w, v = np.linalg.eigh((r + np.eye(3)) / 2.0)
        return v[:, -1] * angle
    return axis * angle / (2.0 * np.sin(angle))
