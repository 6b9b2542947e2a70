"""The contract between training and deploy (pure Python: no numpy, no JAX, no MuJoCo).

What an exported model promises: the ONNX metadata key and schema version of the JSON it carries
(``mjx_reach.export.metadata`` writes it, ``deploy.policy.parse_metadata`` reads it), the graph's
input and output names, the ONNX-vs-JAX parity tolerance export enforces, and the tolerances
deploy applies when it holds a model's training camera against a bench. The bench file
(``BENCH_EXAMPLE``): written by ``python -m deploy calibrate``, read by ``train.py --bench`` and
``python -m deploy --bench`` (``load_bench``). And how a device tells the loop to stop: the error
types raised by deploy's drivers and by the library's stand-ins for them (``mjx_reach.standins``),
each with a one-line message naming the cause.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

METADATA_KEY = "mjx_reach"
"""ONNX metadata key of the contract's JSON string."""
SCHEMA_VERSION = 1
"""Version of that JSON; deploy refuses any other."""
INPUT_NAMES = ("image", "goal")
"""ONNX inputs: ``image`` (B, H, W, C) uint8 and ``goal`` (B, 3) float32, metres."""
OUTPUT_NAMES = ("action", "ee_pred")
"""ONNX outputs: ``action`` (B, 3) in [-1, 1] and ``ee_pred`` (B, 3), metres."""
PARITY_ATOL = 1e-5
"""Largest allowed |onnxruntime - JAX| on ``action`` (unitless) and ``ee_pred`` (metres)."""
MIN_POS_TOLERANCE_M = 1e-3
"""Smallest bench camera position tolerance (metres per axis), when training did not jitter the camera."""
MIN_ROT_TOLERANCE_DEG = 0.1
"""Smallest bench camera orientation tolerance (degrees), when training did not jitter the camera."""


class DeployError(RuntimeError):
    """Deploy cannot start or go on (bad input, a refused model, a failed guard)."""


class PolicyError(DeployError):
    """The ONNX model or its metadata is unusable, or does not match this bench."""


class CameraError(DeployError):
    """The camera timed out, stopped streaming or delivered an unusable frame."""


class ArmError(DeployError):
    """The arm lost its connection, reported an error or warning code, or refused a command."""


class SafetyError(DeployError):
    """A safety check refused a limit, a policy output or a target."""


@dataclasses.dataclass(frozen=True)
class BenchCamera:
    """One camera of the real bench as measured or calibrated (sim world frame: arm base at the
    origin, metres)."""

    pos: tuple[float, float, float]
    lookat: tuple[float, float, float]
    """A point on the optical axis, m."""
    roll_deg: float = 0.0
    """Roll about its optical axis, degrees (``camera.camera_xmat``)."""
    fovy_deg: float | None = None
    """Vertical field of view of the real camera's full frame, degrees (written by ``python -m
    deploy calibrate``; ``train.py --bench`` trains with it; deploy crops with the stream's own
    intrinsics)."""
    serial: str | None = None
    """The RealSense's serial number (deploy opens this camera by it)."""
    background: str | None = None
    """The bench behind the arm from this camera, a policy-sized PNG (``python -m mjx_reach.background``),
    resolved against the bench file's folder; None when not built."""
    position_std_m: float | None = None
    """The calibrated position's standard deviation, worst axis, metres (``calibration`` of ``python
    -m deploy calibrate``); None when the bench was measured by hand."""
    rotation_std_deg: float | None = None
    """The calibrated orientation's standard deviation, degrees."""


@dataclasses.dataclass(frozen=True)
class Bench:
    """The real bench: its cameras in the policy's input channel order (camera k's RGB in
    channels 3k..3k+2) and the policy image size it expects."""

    cameras: tuple[BenchCamera, ...]
    image_hw: tuple[int, int] | None = None
    """Policy image size this bench expects, (height, width); None accepts the model's."""


BENCH_CAMERA = '{"pos": [x, y, z], "lookat": [x, y, z], "roll_deg": r, "serial": "S"}'
BENCH_EXAMPLE = (
    f'{{"camera": {BENCH_CAMERA}, "image": {{"height": H, "width": W}}}} '
    f'or {{"cameras": [{BENCH_CAMERA}, {BENCH_CAMERA}], "image": ...}}'
)
"""The bench JSON (metres, sim world frame, degrees): one ``camera`` or a list of ``cameras`` in
the policy's camera order; ``image`` and each camera's ``roll_deg`` and ``serial`` are optional
(``python -m deploy calibrate`` writes more fields: ``fovy_deg``, ``xmat``, ``intrinsics``,
``calibration``)."""


def _bench_camera(camera: dict, calibration: dict | None, folder: pathlib.Path) -> BenchCamera:
    """One camera of a bench JSON in ``folder``, with its ``calibration`` (the camera's own, or for a
    one-camera bench the top-level one)."""
    serial = camera.get("serial")
    calibration = camera.get("calibration", calibration) or {}
    pos_std = calibration.get("position_std_m")
    rot_std = calibration.get("rotation_std_deg")
    return BenchCamera(
        pos=tuple(float(v) for v in camera["pos"]),
        lookat=tuple(float(v) for v in camera["lookat"]),
        roll_deg=float(camera.get("roll_deg", 0.0)),
        fovy_deg=None if camera.get("fovy_deg") is None else float(camera["fovy_deg"]),
        serial=None if serial is None else str(serial),
        background=None if camera.get("background") is None else str(folder / camera["background"]),
        position_std_m=None if pos_std is None else float(max(pos_std)),
        rotation_std_deg=None if rot_std is None else float(rot_std),
    )


def load_bench(path: str | os.PathLike) -> Bench:
    """Read a bench JSON (``BENCH_EXAMPLE``); an unreadable one is a one-line ``PolicyError``."""
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text())
        if ("camera" in data) == ("cameras" in data):
            raise KeyError("give either 'camera' or 'cameras'")
        cameras = [data["camera"]] if "camera" in data else data["cameras"]
        if not isinstance(cameras, list) or not cameras:
            raise ValueError("'cameras' must be a non-empty list")
        image = data.get("image")
        return Bench(
            cameras=tuple(_bench_camera(camera, data.get("calibration"), path.parent) for camera in cameras),
            image_hw=None if image is None else (int(image["height"]), int(image["width"])),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise PolicyError(
            f"bench file {path}: unreadable ({type(e).__name__}: {e}); expected {BENCH_EXAMPLE}"
        ) from None


def calibration_log_name(camera_index: int) -> str:
    """The calibration log of bench camera ``camera_index`` (1-based) beside the bench file, as
    ``python -m deploy calibrate`` writes it."""
    return "calibration_log.npz" if camera_index == 1 else f"calibration_log_{camera_index}.npz"


TWIN_BENCHES = ("plain", "clutter")
"""The benches the digital twins can stand on (``python -m deploy ... --twin --twin-bench NAME``,
``python -m deploy calibrate --twin --twin-bench NAME``; ``robustness.twin_bench`` draws them)."""
