"""The deploy contract, shared by the exporter and the deploy loop (pure Python: no numpy needed, no JAX, no MuJoCo).

What an exported model promises: the ONNX metadata key and schema version of the JSON it carries
(``mjx_reach.export.metadata`` writes it, ``deploy.policy.parse_metadata`` reads it), the graph's
input and output names, the ONNX-vs-JAX parity tolerance export enforces, and the tolerances
deploy applies when it holds a model's training camera against a bench. And how a device tells the
loop to stop: the error types raised by deploy's drivers and by the library's stand-ins for them
(``mjx_reach.standins``), each with a one-line message naming the cause.
"""

from __future__ import annotations

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
