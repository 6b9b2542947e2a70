"""The exported policy: an onnxruntime session and the metadata contract it carries.

``Policy(path)`` loads ``actor.onnx``, parses the JSON under metadata key ``mjx_reach`` into a
``Metadata`` (every field deploy needs; a missing or malformed one is refused with a one-line
``PolicyError`` naming it) and checks the graph's inputs against it (the contract's constants:
``mjx_reach.contract``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

import numpy as np

from mjx_reach import camera as camera_model
from mjx_reach.contract import INPUT_NAMES, METADATA_KEY, OUTPUT_NAMES, SCHEMA_VERSION, CameraError, PolicyError


@dataclasses.dataclass(frozen=True)
class ModelCamera:
    """One policy camera the model was trained with (sim world frame, metres; degrees where a name
    says so)."""

    pos: np.ndarray
    """(3,) position, m."""
    lookat: np.ndarray
    """(3,) a point on the optical axis, m."""
    roll_deg: float
    """Roll about the optical axis, degrees (``camera.camera_xmat``; 0 for models exported before
    roll existed)."""
    fovy_deg: float
    """Vertical field of view, degrees."""
    jitter: dict
    """Camera randomization seen in training: ``pos_m`` per axis, ``rot_deg``, ``fovy_deg``."""


@dataclasses.dataclass(frozen=True)
class Metadata:
    """The deploy contract written by ``mjx_reach.export`` (metres, sim world frame, degrees only
    where a name says so)."""

    image_hw: tuple[int, int]
    channels: int
    """Image input channels: 3 per camera (camera k's RGB in channels 3k..3k+2)."""
    cameras: tuple[ModelCamera, ...]
    """The policy cameras in input channel order."""
    preprocessing: dict
    max_step_m: float
    workspace_low: np.ndarray
    """(3,) workspace box lower corner, m."""
    workspace_high: np.ndarray
    """(3,) workspace box upper corner, m."""
    world_to_base: np.ndarray
    """(4, 4) transform from the sim world frame to the arm's base frame."""
    home_m: np.ndarray
    """(3,) tool centre point at the home pose, m."""
    home_joints_rad: np.ndarray
    """(7,) joint angles of the home pose, rad (every training episode starts near them; deploy homes
    the arm to them with a joint-space move, which puts the tool centre point at ``home_m``)."""
    tcp_offset_m: np.ndarray
    """(3,) tool centre point in the flange frame, m (the controller's TCP offset must match)."""
    flange_xmat: np.ndarray
    """(3, 3) flange rotation in the world frame held while reaching (gripper pointing down)."""
    gripper_half_width_m: float
    gripper_height_m: float
    frame_margin_px: float
    success_threshold_m: float
    report_threshold_m: float
    episode_steps: int
    control_dt_s: float
    config_hash: str
    raw: dict
    """The whole parsed JSON (also ``config``, ``eval``, ``versions``, ``parity``)."""


def _field(data: dict, name: str):
    value = data
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise PolicyError(f"ONNX metadata: missing field {name!r}")
        value = value[part]
    return value


def _array(data: dict, name: str, shape) -> np.ndarray:
    try:
        value = np.asarray(_field(data, name), dtype=np.float64)
    except (TypeError, ValueError):
        raise PolicyError(f"ONNX metadata: field {name!r} is not numeric") from None
    if value.shape != tuple(shape) or not np.all(np.isfinite(value)):
        raise PolicyError(
            f"ONNX metadata: field {name!r} must be finite with shape {tuple(shape)}, got {value.tolist()}"
        )
    return value


def _number(data: dict, name: str, positive: bool = True) -> float:
    value = _field(data, name)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (positive and value <= 0)
    ):
        raise PolicyError(
            f"ONNX metadata: field {name!r} must be a finite{' positive' if positive else ''} number, got {value!r}"
        )
    return float(value)


def _camera(data: dict, name: str) -> ModelCamera:
    jitter = {k: _number(data, f"{name}.trained_jitter.{k}", positive=False) for k in ("pos_m", "rot_deg", "fovy_deg")}
    return ModelCamera(
        pos=_array(data, f"{name}.pos", (3,)),
        lookat=_array(data, f"{name}.lookat", (3,)),
        roll_deg=_number(data, f"{name}.roll_deg", positive=False) if "roll_deg" in _field(data, name) else 0.0,
        fovy_deg=_number(data, f"{name}.fovy_deg"),
        jitter=jitter,
    )


def _cameras(data: dict) -> tuple[ModelCamera, ...]:
    """The policy cameras: ``cameras`` (a list, input channel order) or, in models exported before
    it, the one ``camera``."""
    if "cameras" not in data:
        return (_camera(data, "camera"),)
    cameras = data["cameras"]
    if not isinstance(cameras, list) or not cameras:
        raise PolicyError(f"ONNX metadata: field 'cameras' must be a non-empty list, got {cameras!r}")
    return tuple(_camera({f"cameras[{k}]": cam}, f"cameras[{k}]") for k, cam in enumerate(cameras))


def _home_joints(data: dict) -> np.ndarray:
    """The home joint configuration (7,) rad; a model exported before it was recorded is refused."""
    if "home_joints_rad" not in data:
        raise PolicyError(
            "ONNX metadata: no 'home_joints_rad' (the home joint configuration deploy homes the arm to): "
            "the model predates it, re-export it with `python export.py RUN_DIR`"
        )
    return _array(data, "home_joints_rad", (7,))


def parse_metadata(text: str) -> Metadata:
    """Parse and validate the metadata JSON; ``PolicyError`` (one line) on any problem."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as e:
        raise PolicyError(f"ONNX metadata {METADATA_KEY!r} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"ONNX metadata {METADATA_KEY!r} must be a JSON object")
    if _field(data, "schema") != SCHEMA_VERSION:
        raise PolicyError(
            f"ONNX metadata: schema {data['schema']!r} is not the supported {SCHEMA_VERSION} (re-export with this version)"
        )
    low, high = _array(data, "workspace.low", (3,)), _array(data, "workspace.high", (3,))
    if not np.all(high > low):
        raise PolicyError(f"ONNX metadata: workspace box is empty (low {low.tolist()}, high {high.tolist()})")
    w2b = _array(data, "world_to_base", (4, 4))
    rot = w2b[:3, :3]
    if not (
        np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) and np.allclose(w2b[3], [0, 0, 0, 1]) and np.linalg.det(rot) > 0
    ):
        raise PolicyError("ONNX metadata: world_to_base is not a rigid transform")
    image = {k: _field(data, f"image.{k}") for k in ("height", "width", "channels")}
    if not all(isinstance(v, int) and v > 0 for v in image.values()):
        raise PolicyError(f"ONNX metadata: image sizes must be positive integers, got {image}")
    cameras = _cameras(data)
    if image["channels"] != 3 * len(cameras):
        raise PolicyError(
            f"image channels: deploy feeds 3 RGB channels per camera, the model takes {image['channels']} for {len(cameras)} camera(s)"
        )
    return Metadata(
        image_hw=(image["height"], image["width"]),
        channels=image["channels"],
        cameras=cameras,
        preprocessing=_field(data, "preprocessing"),
        max_step_m=_number(data, "max_step_m"),
        workspace_low=low,
        workspace_high=high,
        world_to_base=w2b,
        home_m=_array(data, "home_m", (3,)),
        home_joints_rad=_home_joints(data),
        tcp_offset_m=_array(data, "tcp.offset_m", (3,)),
        flange_xmat=_array(data, "tcp.flange_xmat", (3, 3)),
        gripper_half_width_m=_number(data, "gripper.half_width_m"),
        gripper_height_m=_number(data, "gripper.height_m"),
        frame_margin_px=_number(data, "gripper.frame_margin_px", positive=False),
        success_threshold_m=_number(data, "success_threshold_m"),
        report_threshold_m=_number(data, "report_threshold_m"),
        episode_steps=int(_number(data, "episode_steps")),
        control_dt_s=_number(data, "control_dt_s"),
        config_hash=str(_field(data, "config_hash")),
        raw=data,
    )


class Policy:
    """``actor.onnx`` on onnxruntime (CPU). ``policy(image, goal)`` → (action (3,) in [-1, 1],
    ee_pred (3,) m); ``policy.preprocess(frame, intrinsics, camera)`` → that camera's policy image
    (the model's input stacks every camera's along channels)."""

    def __init__(self, path, threads: int = 1):
        import onnxruntime as ort

        path = pathlib.Path(path)
        if not path.is_file():
            raise PolicyError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for a damaged file
            raise PolicyError(
                f"{path}: not a loadable ONNX model ({type(e).__name__}: {str(e).splitlines()[0]})"
            ) from None
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if text is None:
            raise PolicyError(f"{path}: no {METADATA_KEY!r} metadata (export it with `python export.py`)")
        self.meta = parse_metadata(text)
        self._check_graph()

    def _check_graph(self) -> None:
        meta = self.meta
        if meta.preprocessing != camera_model.PREPROCESSING:
            raise PolicyError(
                f"preprocessing: the model was trained with {meta.preprocessing.get('name')!r} v{meta.preprocessing.get('version')}, this deploy implements {camera_model.PREPROCESSING['name']!r} v{camera_model.PREPROCESSING['version']}"
            )
        inputs = {i.name: i for i in self.session.get_inputs()}
        image_name, goal_name = INPUT_NAMES
        want = {image_name: ("tensor(uint8)", [*meta.image_hw, meta.channels]), goal_name: ("tensor(float)", [3])}
        for name, (dtype, shape) in want.items():
            got = inputs.get(name)
            if got is None or got.type != dtype or list(got.shape[1:]) != shape:
                found = None if got is None else f"{got.type} {got.shape}"
                raise PolicyError(
                    f"ONNX input {name!r}: expected {dtype} (B, {', '.join(map(str, shape))}) from the metadata, found {found}"
                )
        outputs = {o.name for o in self.session.get_outputs()}
        if not set(OUTPUT_NAMES) <= outputs:
            raise PolicyError(
                f"ONNX outputs: expected {' and '.join(map(repr, OUTPUT_NAMES))}, found {sorted(outputs)}"
            )

    def preprocess(self, frame: np.ndarray, intr: camera_model.Intrinsics, camera: int = 0) -> np.ndarray:
        """Camera ``camera``'s policy image (H, W, 3) uint8 from its real RGB ``frame`` (h, w, 3) uint8
        with its own intrinsics ``intr`` (the model's camera k: channels 3k..3k+2 of its input)."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise CameraError(f"frame must be (h, w, 3) uint8 RGB, got {frame.dtype} {frame.shape}")
        try:
            return camera_model.preprocess(frame, intr, self.meta.cameras[camera].fovy_deg, self.meta.image_hw)
        except ValueError as e:
            raise CameraError(str(e)) from None

    def __call__(self, image: np.ndarray, goal) -> tuple[np.ndarray, np.ndarray]:
        """(action (3,), ee_pred (3,) m) for one policy image (H, W, 3K) uint8 (K cameras stacked
        along channels) and goal (3,) m."""
        feeds = dict(zip(INPUT_NAMES, (np.ascontiguousarray(image[None]), np.asarray(goal, np.float32).reshape(1, 3))))
        action, ee_pred = self.session.run(list(OUTPUT_NAMES), feeds)
        return action[0].astype(np.float64), ee_pred[0].astype(np.float64)
