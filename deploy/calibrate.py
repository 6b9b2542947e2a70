"""Eye-to-hand camera calibration: where the fixed camera is in the arm's base frame.

    python -m deploy calibrate --ip 192.168.1.185 --out calibration         # real arm + RealSense
    python -m deploy calibrate --ip ... --camera-serial S2 --camera-index 2 --out calibration   # a second camera
    python -m deploy calibrate --twin --json out.json                        # the digital twin
    python -m deploy calibrate --print-marker marker.png                     # the marker to print

An ArUco marker (``MarkerSpec``: dictionary, id, side in metres) is fixed anywhere on the gripper,
facing the camera. ``run`` moves the arm through ``pose_set`` (tool centre points spread over the
workspace box, the gripper turned and tilted about the gripper-down pose), every move through the
deploy safety limits (``safety.Limits``: the box) and speed, reads a frame after each move and
detects the marker's 4 corners (``detect``). ``solve`` then estimates two unknown rigid transforms:
the camera's pose in the world frame and the marker's pose in the tool frame, first in closed form
(OpenCV ``calibrateRobotWorldHandEye`` on per-frame ``solvePnP`` poses), then refined jointly by
Levenberg-Marquardt on the reprojection error of every detected corner. It reports the residual
(pixels) and the pose's standard deviations from the LM covariance, and refuses with a one-line
``CalibrationError`` on too few detections, a degenerate pose set (too little rotation or spread)
or a residual above ``max_rms_px``. ``run`` then writes ``bench.json`` (the camera's position,
look-at point, roll, field of view, full rotation and serial, the intrinsics and the calibration's
quality) and ``calibration_log.npz`` (frames, joint angles, tool poses, detections), each
atomically. A bench holds one camera per policy camera: ``--camera-index K`` puts the calibrated
camera in as camera K of the bench already in the folder (``bench_with_camera``; its log is
``calibration_log_K.npz`` for K > 1).

Conventions: metres, the sim world frame (arm base at the origin); rotations are camera-to-world
matrices in MuJoCo's camera convention (looking along -z, +y up: ``mjx_reach.camera``). OpenCV's
camera frame (+z forward, +y down) appears only inside this module. Distortion is taken as zero
(the RealSense colour stream reports none). numpy and OpenCV only: no JAX, MuJoCo or onnxruntime.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from deploy import safety
from deploy.arm import Arm
from deploy.loop import Camera, stop_motion
from mjx_reach import camera as camera_model
from mjx_reach.contract import TWIN_BENCHES, DeployError, calibration_log_name, load_bench

CV_FROM_MJ = np.diag([1.0, -1.0, -1.0])
"""MuJoCo camera axes (x right, y up, z back) → OpenCV camera axes (x right, y down, z forward)."""
DEFAULT_TCP_OFFSET_M = (0.0, 0.0, 0.172)
"""The xArm Gripper's tool centre point in the flange frame, m (what training and deploy use)."""
GRIPPER_DOWN_XMAT = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))
"""Flange rotation in the world frame with the gripper pointing down (SDK roll 180, pitch 0, yaw 0)."""
DEFAULT_BOX = ((0.25, -0.20, 0.08), (0.60, 0.20, 0.36))
"""The training workspace box (``EnvConfig.workspace_low/high``), m: in view by construction."""


class CalibrationError(DeployError):
    """Calibration cannot go on or its result is refused (one line naming the cause)."""


@dataclasses.dataclass(frozen=True)
class MarkerSpec:
    """The printed ArUco marker: OpenCV dictionary name, marker id and side length (black border's
    outer edge) in metres."""

    dictionary: str = "DICT_4X4_50"
    marker_id: int = 0
    size_m: float = 0.08

    def object_points(self) -> np.ndarray:
        """Corners (4, 3) m in the marker frame (x right, y up, z out of the printed face), in
        OpenCV's detection order: top-left, top-right, bottom-right, bottom-left."""
        h = self.size_m / 2.0
        return np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])

    def cv_dictionary(self) -> Any:
        """The OpenCV ``aruco.Dictionary``; ``CalibrationError`` for an unknown name."""
        import cv2

        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            raise CalibrationError(f"marker: unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_4X4_50)")
        return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))

    def bits(self) -> np.ndarray:
        """The marker's cells (n + 2, n + 2) bool, True = white, black border included, row 0 at the top."""
        import cv2

        dictionary = self.cv_dictionary()
        if not 0 <= self.marker_id < len(dictionary.bytesList):
            raise CalibrationError(
                f"marker: id {self.marker_id} is not in {self.dictionary} (0..{len(dictionary.bytesList) - 1})"
            )
        n = dictionary.markerSize
        return cv2.aruco.generateImageMarker(dictionary, self.marker_id, n + 2, borderBits=1) > 127


@dataclasses.dataclass(frozen=True)
class Settings:
    """The procedure's knobs."""

    marker: MarkerSpec = MarkerSpec()
    poses: int = 20
    """Poses in the pose set."""
    tilt_deg: float = 20.0
    """Largest turn of the gripper about the horizontal axes away from pointing down, degrees."""
    yaw_deg: float = 30.0
    """Largest turn of the gripper about the vertical axis, degrees."""
    box_margin_m: float = 0.03
    """Pose positions keep this far inside the workspace box, m."""
    min_detections: int = 8
    """Fewest frames with the marker found."""
    min_rotation_deg: float = 8.0
    """The detected tool rotations must spread at least this much (rms) about each of two axes."""
    min_spread_m: float = 0.05
    """The detected tool positions must spread at least this much (std) along each of two axes."""
    max_rms_px: float = 1.0
    """Largest accepted rms reprojection error, pixels."""
    seed: int = 0
    """Seed of the pose set."""
    settle_frames: int = 1
    """Frames dropped after each move before the one used (a frame exposed while the arm still moved
    or shook, or delivered late by the camera, must not be paired with the new pose)."""


class CalibrationArm(Arm, Protocol):
    """What calibration drives: ``deploy.arm.Arm`` plus orientation and joint read-outs."""

    def move_to(self, target: np.ndarray, rotation: np.ndarray | None = None) -> None:
        """Move the tool centre point to ``target`` (3,) m with the flange at world rotation
        ``rotation`` (3, 3) (None: gripper pointing down); returns when the move is done."""

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured tool centre point (3,) m and tool rotation (3, 3) in the world frame."""

    def joint_angles(self) -> np.ndarray:
        """Measured joint angles (7,) rad."""


# --- rotations --------------------------------------------------------------------------------------
# --- the pose set -----------------------------------------------------------------------------------
def pose_set(
    low: ArrayLike, high: ArrayLike, down_xmat: ArrayLike, settings: Settings
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``settings.poses`` (tool centre point (3,) m, flange rotation (3, 3)) pairs: positions from a
    Latin hypercube over the box shrunk by ``box_margin_m``, rotations = ``down_xmat`` turned about
    the world's vertical axis by up to ``yaw_deg`` and tilted about the horizontal axes by up to
    ``tilt_deg`` (each pose's angles from a Latin hypercube too, so every axis is well covered)."""
    rng = np.random.default_rng(settings.seed)
    n = settings.poses
    low, high = (
        np.asarray(low, np.float64) + settings.box_margin_m,
        np.asarray(high, np.float64) - settings.box_margin_m,
    )
    if n < 1 or np.any(high <= low):
        raise CalibrationError(
            f"pose set: need >= 1 pose and a box wider than 2 x {settings.box_margin_m} m, got {n} poses in [{low.tolist()}, {high.tolist()}]"
        )
    unit = (np.argsort(rng.random((n, 6)), axis=0) + rng.random((n, 6))) / n  # Latin hypercube in [0, 1)^6
    poses = []
    for u in unit:
        pos = low + u[:3] * (high - low)
        tilt = np.deg2rad(settings.tilt_deg) * (2.0 * u[3:5] - 1.0)
        yaw = np.deg2rad(settings.yaw_deg) * (2.0 * u[5] - 1.0)
        turn = camera_model.rotvec_to_xmat([tilt[0], tilt[1], 0.0]) @ camera_model.rotvec_to_xmat([0.0, 0.0, yaw])
        poses.append((pos, turn @ np.asarray(down_xmat, np.float64)))
    return poses


# --- detection --------------------------------------------------------------------------------------
def detect(frame: np.ndarray, marker: MarkerSpec) -> np.ndarray | None:
    """The marker's corners (4, 2) in pixels (u right, v down, pixel centres at half-integers, the
    convention of ``mjx_reach.camera.project``) in an RGB ``frame`` (h, w, 3) uint8, or None when
    the marker is not found (or found more than once)."""
    import cv2

    aruco = cv2.aruco
    params = aruco.DetectorParameters()
    params.cornerRefinementMethod = aruco.CORNER_REFINE_SUBPIX
    detector = aruco.ArucoDetector(marker.cv_dictionary(), params)
    corners, ids, _ = detector.detectMarkers(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    if ids is None:
        return None
    hits = [c for c, i in zip(corners, ids.ravel()) if i == marker.marker_id]
    if len(hits) != 1:
        return None
    return hits[0].reshape(4, 2).astype(np.float64) + 0.5  # OpenCV puts pixel centres at integers


# --- the solver -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Observations:
    """What the solver needs, for N frames with the marker found."""

    corners_px: np.ndarray
    """(N, 4, 2) detected corners, pixels (``detect``)."""
    tool_pos: np.ndarray
    """(N, 3) tool centre points, m, world frame."""
    tool_xmat: np.ndarray
    """(N, 3, 3) tool rotations, world frame."""
    intrinsics: camera_model.Intrinsics
    marker: MarkerSpec


@dataclasses.dataclass(frozen=True)
class Solution:
    """The calibrated camera and the marker's mount, with their quality."""

    cam_pos: np.ndarray
    """(3,) camera position, m, world frame."""
    cam_xmat: np.ndarray
    """(3, 3) camera-to-world rotation (MuJoCo camera axes)."""
    marker_pos: np.ndarray
    """(3,) marker centre in the tool frame, m."""
    marker_xmat: np.ndarray
    """(3, 3) marker-to-tool rotation."""
    rms_px: float
    """Root-mean-square reprojection error over all corner coordinates, pixels."""
    max_px: float
    """Largest corner reprojection error (Euclidean), pixels."""
    pos_std_m: np.ndarray
    """(3,) standard deviation of the camera position per world axis, m (LM covariance)."""
    rot_std_deg: float
    """Root-sum-square standard deviation of the camera rotation over its three axes, degrees."""
    residuals_px: np.ndarray
    """(N, 4) reprojection error of each corner, pixels."""


def _project_cv(points_cam: np.ndarray, intr: camera_model.Intrinsics) -> np.ndarray:
    """Pixels (..., 2) (centres at half-integers) of points (..., 3) in OpenCV camera coordinates."""
    z = points_cam[..., 2]
    u = intr.fx * points_cam[..., 0] / z + intr.ppx
    v = intr.fy * points_cam[..., 1] / z + intr.ppy
    return np.stack([u, v], axis=-1)


def _residuals(cam_pos, cam_xmat, marker_pos, marker_xmat, obs: Observations) -> np.ndarray:
    """(N, 4, 2) predicted minus detected corner pixels."""
    corners = obs.marker.object_points() @ marker_xmat.T + marker_pos  # tool frame (4, 3)
    world = np.einsum("nij,kj->nki", obs.tool_xmat, corners) + obs.tool_pos[:, None]
    cam_cv = (world - cam_pos) @ cam_xmat @ CV_FROM_MJ  # world → MuJoCo camera → OpenCV camera
    return _project_cv(cam_cv, obs.intrinsics) - obs.corners_px


def _apply(x, delta):
    """The state ``x`` = (cam_pos, cam_xmat, marker_pos, marker_xmat) moved by ``delta`` (12,):
    camera rotation (world frame, rad), camera position (m), marker rotation (tool frame, rad),
    marker position (m)."""
    cam_pos, cam_xmat, marker_pos, marker_xmat = x
    return (
        cam_pos + delta[3:6],
        camera_model.rotvec_to_xmat(delta[0:3]) @ cam_xmat,
        marker_pos + delta[9:12],
        camera_model.rotvec_to_xmat(delta[6:9]) @ marker_xmat,
    )


def _jacobian(x, obs: Observations, eps: float = 1e-6) -> np.ndarray:
    """(M, 12) central-difference Jacobian of the flattened residuals."""
    cols = []
    for i in range(12):
        d = np.zeros(12)
        d[i] = eps
        cols.append((_residuals(*_apply(x, d), obs) - _residuals(*_apply(x, -d), obs)).ravel() / (2 * eps))
    return np.stack(cols, axis=1)


def initial_guess(obs: Observations) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form start: per-frame ``solvePnP`` marker poses, then ``calibrateRobotWorldHandEye``.

    With the camera fixed and the marker on the tool, OpenCV's eye-in-hand roles map as: its "world"
    is our camera, its "camera" our marker, its "gripper" our tool. Returns (cam_pos, cam_xmat,
    marker_pos, marker_xmat)."""
    import cv2

    intr = obs.intrinsics
    k = np.array([[intr.fx, 0.0, intr.ppx - 0.5], [0.0, intr.fy, intr.ppy - 0.5], [0.0, 0.0, 1.0]])
    r_m2c, t_m2c, r_t2b, t_t2b = [], [], [], []  # marker-from-camera, tool-from-world
    for corners, pos, xmat in zip(obs.corners_px, obs.tool_pos, obs.tool_xmat):
        ok, rvec, tvec = cv2.solvePnP(
            obs.marker.object_points(), corners - 0.5, k, None, flags=cv2.SOLVEPNP_IPPE_SQUARE
        )
        if not ok:
            raise CalibrationError("solvePnP failed on a detected marker")
        r_cm = cv2.Rodrigues(rvec)[0]  # marker → OpenCV camera
        r_m2c.append(r_cm.T)
        t_m2c.append(-r_cm.T @ tvec.ravel())
        r_t2b.append(xmat.T)
        t_t2b.append(-xmat.T @ pos)
    r_world2cam, t_world2cam, r_tool2marker, t_tool2marker = cv2.calibrateRobotWorldHandEye(r_m2c, t_m2c, r_t2b, t_t2b)
    # r_world2cam: world → OpenCV camera; r_tool2marker: tool → marker.
    cam_xmat = r_world2cam.T @ CV_FROM_MJ
    cam_pos = -r_world2cam.T @ t_world2cam.ravel()
    marker_xmat = r_tool2marker.T
    marker_pos = -r_tool2marker.T @ t_tool2marker.ravel()
    return cam_pos, cam_xmat, marker_pos, marker_xmat


def check_pose_set(obs: Observations, settings: Settings) -> None:
    """Refuse (``CalibrationError``) too few detections or a degenerate set: the tool rotations
    must spread by ``min_rotation_deg`` (rms) about two independent axes and the positions by
    ``min_spread_m`` (std) along two independent directions."""
    n = len(obs.corners_px)
    if n < settings.min_detections:
        raise CalibrationError(
            f"too few detections: the marker was found in {n} frames, need >= {settings.min_detections} (is it on the gripper, facing the camera, in view?)"
        )
    mean = obs.tool_xmat[0]
    rotvecs = np.stack([camera_model.xmat_to_rotvec(mean.T @ r) for r in obs.tool_xmat])
    rot_spread = np.rad2deg(np.linalg.svd(rotvecs - rotvecs.mean(axis=0), compute_uv=False) / np.sqrt(n))
    if rot_spread[1] < settings.min_rotation_deg:
        raise CalibrationError(
            f"degenerate pose set: the tool turned about fewer than two axes (rms {np.round(rot_spread, 1).tolist()} deg, need >= {settings.min_rotation_deg} deg about two)"
        )
    pos_spread = np.linalg.svd(obs.tool_pos - obs.tool_pos.mean(axis=0), compute_uv=False) / np.sqrt(n)
    if pos_spread[1] < settings.min_spread_m:
        raise CalibrationError(
            f"degenerate pose set: the tool positions spread along fewer than two directions (std {np.round(pos_spread, 3).tolist()} m, need >= {settings.min_spread_m} m along two)"
        )


def solve(obs: Observations, settings: Settings, iterations: int = 50) -> Solution:
    """Camera pose and marker mount from ``obs``: ``check_pose_set``, ``initial_guess``, then
    Levenberg-Marquardt on all corner reprojection errors. Refuses a residual above ``max_rms_px``."""
    check_pose_set(obs, settings)
    x = initial_guess(obs)
    cost = float(np.sum(_residuals(*x, obs) ** 2))
    damping = 1e-3
    for _ in range(iterations):
        jac = _jacobian(x, obs)
        r = _residuals(*x, obs).ravel()
        jtj, jtr = jac.T @ jac, jac.T @ r
        step = np.linalg.solve(jtj + damping * np.diag(np.diag(jtj) + 1e-12), -jtr)
        trial = _apply(x, step)
        trial_cost = float(np.sum(_residuals(*trial, obs) ** 2))
        if trial_cost < cost:
            converged = cost - trial_cost < 1e-10 * max(cost, 1e-12)
            x, cost, damping = trial, trial_cost, max(damping / 3.0, 1e-9)
            if converged or np.max(np.abs(step)) < 1e-10:
                break
        else:
            damping *= 4.0
            if damping > 1e8:
                break
    res = _residuals(*x, obs)
    jac = _jacobian(x, obs)
    dof = res.size - 12
    sigma2 = cost / max(dof, 1)
    jtj = jac.T @ jac
    if np.linalg.cond(jtj) > 1e12:
        raise CalibrationError(
            "degenerate pose set: the camera and marker poses are not determined by these views (singular normal equations)"
        )
    cov = sigma2 * np.linalg.inv(jtj)
    rms = float(np.sqrt(np.mean(res**2)))
    sol = Solution(
        cam_pos=x[0],
        cam_xmat=x[1],
        marker_pos=x[2],
        marker_xmat=x[3],
        rms_px=rms,
        max_px=float(np.max(np.linalg.norm(res, axis=-1))),
        pos_std_m=np.sqrt(np.diag(cov)[3:6]),
        rot_std_deg=float(np.rad2deg(np.sqrt(np.trace(cov[0:3, 0:3])))),
        residuals_px=np.linalg.norm(res, axis=-1),
    )
    if rms > settings.max_rms_px:
        raise CalibrationError(
            f"residual too large: rms reprojection error {rms:.2f} px > {settings.max_rms_px} px (marker size, intrinsics or a moved camera/marker?)"
        )
    return sol


# --- outputs ----------------------------------------------------------------------------------------
def widest_fovy_deg(intr: camera_model.Intrinsics) -> float:
    """The widest vertical field of view (degrees) of a square-pixel-aspect crop centred on the
    principal point that stays inside the frame: what a square policy image can be trained with."""
    half_h = min(intr.ppy, intr.height - intr.ppy, min(intr.ppx, intr.width - intr.ppx) * intr.fy / intr.fx)
    return float(np.floor(camera_model.fovy_deg_from_intrinsics(intr.fy, 2.0 * half_h) * 100.0) / 100.0)


def bench_dict(
    sol: Solution,
    intr: camera_model.Intrinsics,
    marker: MarkerSpec,
    lookat_distance_m: float,
    frames: int,
    serial: str | None = None,
) -> dict:
    """The one-camera bench JSON: ``camera`` (pos, lookat ``lookat_distance_m`` along the optical axis,
    roll_deg, fovy_deg = ``widest_fovy_deg``, xmat, and ``serial`` when known), ``intrinsics`` and
    ``calibration`` (quality, marker mount)."""
    lookat, roll = camera_model.lookat_roll_from_xmat(sol.cam_pos, sol.cam_xmat, lookat_distance_m)
    return {
        "camera": {
            "pos": sol.cam_pos.tolist(),
            "lookat": lookat.tolist(),
            "roll_deg": roll,
            "fovy_deg": widest_fovy_deg(intr),
            "xmat": sol.cam_xmat.tolist(),
        }
        | ({} if serial is None else {"serial": serial}),
        "intrinsics": dataclasses.asdict(intr),
        "calibration": {
            "method": "eye-to-hand: solvePnP + calibrateRobotWorldHandEye, refined by Levenberg-Marquardt on corner reprojection",
            "reprojection_rms_px": sol.rms_px,
            "reprojection_max_px": sol.max_px,
            "position_std_m": sol.pos_std_m.tolist(),
            "rotation_std_deg": sol.rot_std_deg,
            "detections": int(len(sol.residuals_px)),
            "poses": frames,
            "marker": dataclasses.asdict(marker),
            "marker_in_tool": {"pos": sol.marker_pos.tolist(), "xmat": sol.marker_xmat.tolist()},
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }


_PER_CAMERA = ("intrinsics", "calibration")
"""Fields a one-camera bench keeps beside ``camera`` and a several-camera bench inside each camera."""


def read_bench(path: str | os.PathLike) -> dict | None:
    """The bench JSON at ``path`` as written (None when there is none); an unreadable one is a
    one-line ``PolicyError``."""
    path = pathlib.Path(path)
    if not path.exists():
        return None
    load_bench(path)
    return json.loads(path.read_text())


def bench_cameras(bench: dict | None) -> list[dict]:
    """The cameras of a bench JSON (None: no bench), each with its ``intrinsics`` and ``calibration``."""
    if bench is None:
        return []
    if "cameras" in bench:
        return [dict(camera) for camera in bench["cameras"]]
    return [bench["camera"] | {k: bench[k] for k in _PER_CAMERA if k in bench}]


def check_camera_index(bench: dict | None, index: int) -> None:
    """Refuse (``CalibrationError``) a camera ``index`` (1-based) that neither replaces a camera of
    ``bench`` nor comes right after its last one."""
    count = len(bench_cameras(bench))
    if not 1 <= index <= count + 1:
        raise CalibrationError(
            f"--camera-index {index}: the bench in the output folder has {count} camera(s); calibrate camera 1 to {count + 1}"
        )


def bench_with_camera(bench: dict | None, calibrated: dict, index: int) -> dict:
    """The bench JSON ``bench`` (None: none yet) with the one-camera bench ``calibrated``
    (``bench_dict``) as its camera ``index`` (1-based): replacing that camera, or appended after the
    last. One camera is written as ``camera`` + ``intrinsics`` + ``calibration`` (what deploy and
    training always read), several as ``cameras`` (each with its ``intrinsics`` and
    ``calibration``); other fields (``image``) are kept."""
    check_camera_index(bench, index)
    cameras = bench_cameras(bench)
    cameras[index - 1 : index] = [calibrated["camera"] | {k: calibrated[k] for k in _PER_CAMERA}]
    out = {k: v for k, v in (bench or {}).items() if k not in ("camera", "cameras", *_PER_CAMERA)}
    if len(cameras) > 1:
        return out | {"cameras": cameras}
    only = cameras[0]
    return out | {"camera": {k: v for k, v in only.items() if k not in _PER_CAMERA}} | {k: only[k] for k in _PER_CAMERA}


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


@dataclasses.dataclass
class CalibrationLog:
    """Everything the procedure saw, one row per commanded pose (``calibration_log.npz``)."""

    frames: list = dataclasses.field(default_factory=list)
    joint_angles: list = dataclasses.field(default_factory=list)
    tool_pos: list = dataclasses.field(default_factory=list)
    tool_xmat: list = dataclasses.field(default_factory=list)
    commanded_pos: list = dataclasses.field(default_factory=list)
    commanded_xmat: list = dataclasses.field(default_factory=list)
    corners_px: list = dataclasses.field(default_factory=list)
    intrinsics: camera_model.Intrinsics | None = None

    def detected(self) -> np.ndarray:
        """(N,) whether each row's frame showed the marker."""
        return np.asarray([not np.any(np.isnan(c)) for c in self.corners_px], bool)

    def observations(self, marker: MarkerSpec) -> Observations:
        ok = self.detected()
        return Observations(
            np.asarray(self.corners_px, np.float64).reshape(-1, 4, 2)[ok],
            np.asarray(self.tool_pos, np.float64).reshape(-1, 3)[ok],
            np.asarray(self.tool_xmat, np.float64).reshape(-1, 3, 3)[ok],
            self.intrinsics,
            marker,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the log to ``path`` (.npz) atomically. Arrays: ``frames`` (N, h, w, 3) uint8,
        ``joint_angles`` (N, 7) rad, ``tool_pos`` (N, 3) m, ``tool_xmat`` (N, 3, 3), ``commanded_pos``,
        ``commanded_xmat``, ``corners_px`` (N, 4, 2) (NaN where not detected), ``detected`` (N,),
        ``intrinsics`` [width, height, fx, fy, ppx, ppy]."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        intr = self.intrinsics
        arrays = {
            name: np.asarray(getattr(self, name))
            for name in (
                "frames",
                "joint_angles",
                "tool_pos",
                "tool_xmat",
                "commanded_pos",
                "commanded_xmat",
                "corners_px",
            )
        }
        arrays["frames"] = arrays["frames"].astype(np.uint8)
        arrays |= {
            "detected": self.detected(),
            "intrinsics": np.zeros(0) if intr is None else intr.to_array(),
        }
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)


def load_log(path: str | os.PathLike) -> dict:
    """A ``calibration_log.npz`` as a dict of arrays (``CalibrationLog.save``)."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# --- the procedure ----------------------------------------------------------------------------------
def collect(
    arm: CalibrationArm,
    camera: Camera,
    poses: list[tuple[np.ndarray, np.ndarray]],
    limits: safety.Limits,
    marker: MarkerSpec,
    log: CalibrationLog,
    corner_noise_px: float = 0.0,
    rng: np.random.Generator | None = None,
    say: Callable[[str], None] = print,
    settle_frames: int = 0,
) -> None:
    """Move through ``poses`` (each position checked inside ``limits``' box before it is sent), read a
    frame after each move (after dropping ``settle_frames``), detect the marker and append a row to ``log``. ``corner_noise_px`` adds
    Gaussian noise (std, pixels) to each detected corner: simulated detection noise for the twin."""
    for i, (pos, xmat) in enumerate(poses):
        if not limits.contains(pos):
            raise safety.SafetyError(
                f"calibration pose {np.round(pos, 3).tolist()} m is outside the workspace box: refused"
            )
        arm.check()
        arm.move_to(pos, xmat)
        tool_pos, tool_xmat = arm.pose()
        joints = arm.joint_angles()
        for _ in range(settle_frames):
            camera.read()
        frame, intr = camera.read()
        corners = detect(frame, marker)
        if corners is not None and corner_noise_px > 0:
            corners = corners + (rng or np.random.default_rng()).normal(0.0, corner_noise_px, corners.shape)
        log.frames.append(frame)
        log.joint_angles.append(np.asarray(joints, np.float64))
        log.tool_pos.append(tool_pos)
        log.tool_xmat.append(tool_xmat)
        log.commanded_pos.append(np.asarray(pos, np.float64))
        log.commanded_xmat.append(np.asarray(xmat, np.float64))
        log.corners_px.append(np.full((4, 2), np.nan) if corners is None else corners)
        log.intrinsics = intr
        say(f"pose {i + 1}/{len(poses)}: marker {'found' if corners is not None else 'not found'}")


def run(
    arm: CalibrationArm,
    camera: Camera,
    limits: safety.Limits,
    settings: Settings,
    out: pathlib.Path,
    corner_noise_px: float = 0.0,
    say: Callable[[str], None] = print,
    camera_index: int = 1,
    serial: str | None = None,
) -> tuple[Solution | None, dict | None, str | None]:
    """The whole procedure: connect, move home (gripper down), collect over ``pose_set``, move home,
    solve, write ``out/bench.json`` (the camera, with its ``serial``, as camera ``camera_index`` of
    the bench already there: ``bench_with_camera``) and its log ``out/calibration_log_name(camera_index)``.
    Ctrl-C or any arm, camera or safety fault stops the arm's motion first. Returns (solution, the
    camera's one-camera bench dict, cause of a refusal or stop). The log is written whenever frames
    were collected, also after a stop or a refusal."""
    log = CalibrationLog()
    out = pathlib.Path(out)
    log_path = out / calibration_log_name(camera_index)
    try:
        arm.connect()
        home = (limits.low + limits.high) / 2.0
        arm.move_to(home)
        _, down = arm.pose()
        poses = pose_set(limits.low, limits.high, down, settings)
        collect(
            arm,
            camera,
            poses,
            limits,
            settings.marker,
            log,
            corner_noise_px,
            np.random.default_rng(settings.seed + 1),
            say,
            settings.settle_frames,
        )
        arm.move_to(home)
    except KeyboardInterrupt:
        stop_motion(arm, say)
        return None, None, _finish(log, log_path, "interrupted (Ctrl-C): motion stopped")
    except DeployError as e:
        stop_motion(arm, say)
        return None, None, _finish(log, log_path, str(e))
    finally:
        camera.close()
        arm.close()
    try:
        sol = solve(log.observations(settings.marker), settings)
    except CalibrationError as e:
        return None, None, _finish(log, log_path, str(e))
    bench = bench_dict(
        sol,
        log.intrinsics,
        settings.marker,
        float(np.linalg.norm(sol.cam_pos - np.mean(log.tool_pos, axis=0))),
        len(log.frames),
        serial,
    )
    try:
        merged = bench_with_camera(read_bench(out / "bench.json"), bench, camera_index)
    except DeployError as e:
        return None, None, _finish(log, log_path, str(e))
    write_json(out / "bench.json", merged)
    _finish(log, log_path, None)
    return sol, bench, None


def _finish(log: CalibrationLog, path: pathlib.Path, cause: str | None) -> str | None:
    if log.frames:
        log.save(path)
    return cause


def marker_image(marker: MarkerSpec, dpi: int = 300) -> np.ndarray:
    """A printable image (H, W) uint8 of ``marker`` at ``dpi`` with a white quiet zone of one cell
    on each side: printed at that resolution, the black square is ``size_m`` wide."""
    bits = marker.bits()
    cell_px = max(1, round(marker.size_m / bits.shape[0] / 0.0254 * dpi))
    img = np.kron(bits.astype(np.uint8) * 255, np.ones((cell_px, cell_px), np.uint8))
    return np.pad(img, cell_px, constant_values=255)


# --- the command line -------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deploy calibrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = p.add_argument_group("where it runs")
    where.add_argument("--ip", help="the xArm controller's address (real arm; TCP offset [0, 0, 172] mm as for deploy)")
    where.add_argument("--camera-serial", help="the RealSense's serial number (default: the only one connected)")
    where.add_argument(
        "--camera-index",
        type=int,
        default=1,
        help="which camera of the bench in --out this one is (1-based, the policy's camera order): it replaces "
        "that camera or is appended after the last (default 1: a one-camera bench)",
    )
    where.add_argument(
        "--twin",
        action="store_true",
        help="calibrate the digital twin's camera, placed at a random pose (needs the train extra)",
    )
    where.add_argument("--twin-seed", type=int, default=0, help="seed of the twin's true camera pose and noise")
    where.add_argument(
        "--twin-bench",
        choices=TWIN_BENCHES,
        default="plain",
        help="what the twin's camera sees around the arm (plain sim bench, or 'clutter': see python -m deploy --help)",
    )
    where.add_argument("--print-marker", metavar="PNG", help="write the marker to print (300 dpi) and exit")
    out = p.add_argument_group("outputs")
    out.add_argument(
        "--out",
        default="calibration",
        help="folder for bench.json and calibration_log.npz (calibration_log_K.npz for --camera-index K > 1)",
    )
    out.add_argument(
        "--json", help="also write a summary JSON here (with --twin: true vs estimated pose and the errors)"
    )
    marker = p.add_argument_group("marker")
    marker.add_argument("--marker-dict", default=MarkerSpec.dictionary, help="OpenCV ArUco dictionary")
    marker.add_argument("--marker-id", type=int, default=MarkerSpec.marker_id)
    marker.add_argument(
        "--marker-size-m",
        type=float,
        default=MarkerSpec.size_m,
        help="side of the printed black square, m (measure the print)",
    )
    moves = p.add_argument_group("poses and safety")
    moves.add_argument("--poses", type=int, default=Settings.poses)
    moves.add_argument("--tilt-deg", type=float, default=Settings.tilt_deg)
    moves.add_argument("--yaw-deg", type=float, default=Settings.yaw_deg)
    moves.add_argument("--seed", type=int, default=Settings.seed, help="seed of the pose set")
    moves.add_argument(
        "--box-low",
        nargs=3,
        type=float,
        default=DEFAULT_BOX[0],
        metavar=("X", "Y", "Z"),
        help="workspace box lower corner, m",
    )
    moves.add_argument(
        "--box-high",
        nargs=3,
        type=float,
        default=DEFAULT_BOX[1],
        metavar=("X", "Y", "Z"),
        help="workspace box upper corner, m",
    )
    moves.add_argument("--speed-m-s", type=float, default=0.1, help="Cartesian speed of each move, m/s")
    moves.add_argument(
        "--camera-timeout-s", type=float, default=1.0, help="a camera read slower than this stops the run"
    )
    moves.add_argument(
        "--max-rms-px", type=float, default=Settings.max_rms_px, help="refuse a larger rms reprojection error, pixels"
    )
    moves.add_argument("--min-detections", type=int, default=Settings.min_detections)
    return p


TWIN_CORNER_NOISE_PX = 0.2
"""Detection noise added to each detected corner on the twin, pixels (std)."""
TWIN_PIXEL_NOISE = 3.0
"""Pixel noise of the twin's frames, 0..255 levels (std)."""


def main(argv: list[str]) -> int:
    import sys

    args = parser().parse_args(argv)
    marker = MarkerSpec(args.marker_dict, args.marker_id, args.marker_size_m)
    try:
        if not 0.005 <= marker.size_m <= 0.5:
            raise CalibrationError(f"--marker-size-m must be in [0.005, 0.5] m, got {marker.size_m}")
        if args.print_marker:
            import cv2

            marker.bits()  # an unknown dictionary or id fails here, in one line
            if not cv2.imwrite(args.print_marker, marker_image(marker)):
                raise CalibrationError(f"cannot write {args.print_marker}")
            print(
                f"wrote {args.print_marker}: {marker.dictionary} id {marker.marker_id}, print at 300 dpi, black square {marker.size_m * 1000:.0f} mm"
            )
            return 0
        if not args.twin and not args.ip:
            raise CalibrationError("the real arm needs --ip (or pass --twin)")
        settings = Settings(
            marker=marker,
            poses=args.poses,
            tilt_deg=args.tilt_deg,
            yaw_deg=args.yaw_deg,
            seed=args.seed,
            max_rms_px=args.max_rms_px,
            min_detections=args.min_detections,
        )
        limits = safety.Limits(np.asarray(args.box_low, np.float64), np.asarray(args.box_high, np.float64), 0.1)
        check_camera_index(read_bench(pathlib.Path(args.out) / "bench.json"), args.camera_index)
        truth, serial = None, None
        if args.twin:
            from mjx_reach.config import EnvConfig
            from mjx_reach.standins import calibration_twin

            nominal = EnvConfig().camera2 if args.camera_index == 2 else EnvConfig().camera
            cam_pos, cam_xmat = calibration_twin.random_true_camera(np.random.default_rng(args.twin_seed), nominal)
            twin = calibration_twin.CalibrationTwin(
                EnvConfig(),
                cam_pos,
                cam_xmat,
                marker.bits(),
                marker.size_m,
                TWIN_PIXEL_NOISE,
                args.twin_seed,
                bench=args.twin_bench,
            )
            arm, camera, noise, truth = twin, twin, TWIN_CORNER_NOISE_PX, (cam_pos, cam_xmat)
        else:
            from deploy import camera as realsense
            from deploy.arm import XArm

            camera = realsense.RealSenseCamera(
                args.camera_serial, width=640, height=480, fps=30, timeout_s=args.camera_timeout_s
            )
            serial = camera.serial
            arm, noise = (
                XArm(args.ip, np.eye(4), DEFAULT_TCP_OFFSET_M, GRIPPER_DOWN_XMAT, speed_m_s=args.speed_m_s),
                0.0,
            )
    except (DeployError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sol, bench, cause = run(
        arm, camera, limits, settings, pathlib.Path(args.out), noise, camera_index=args.camera_index, serial=serial
    )
    if cause is not None:
        print(f"error: {cause}", file=sys.stderr)
        return 1
    summary = {
        "bench": str(pathlib.Path(args.out) / "bench.json"),
        "camera_index": args.camera_index,
        "camera": bench["camera"],
        "reprojection_px": sol.rms_px,
        "position_std_m": sol.pos_std_m.tolist(),
        "rotation_std_deg": sol.rot_std_deg,
    }
    if truth is not None:
        lookat, roll = camera_model.lookat_roll_from_xmat(
            truth[0], truth[1], np.linalg.norm(np.subtract(bench["camera"]["lookat"], bench["camera"]["pos"]))
        )
        summary |= {
            "true": {"pos": truth[0].tolist(), "lookat": lookat.tolist(), "roll_deg": roll, "xmat": truth[1].tolist()},
            "estimated": {k: bench["camera"][k] for k in ("pos", "lookat", "roll_deg", "xmat")},
            "position_error_m": float(np.linalg.norm(sol.cam_pos - truth[0])),
            "rotation_error_deg": camera_model.rotation_angle_deg(sol.cam_xmat, truth[1]),
        }
    print(json.dumps(summary, indent=2))
    if args.json:
        write_json(args.json, summary)
    return 0
