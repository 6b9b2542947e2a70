"""Safety checks between the policy and the arm (pure numpy; metres, sim world frame).

* ``Limits``: the workspace box and the max step per axis. ``tighten`` applies operator overrides
  and refuses any that would widen the limits recorded in the model's metadata.
* ``next_target``: policy action → next commanded ee position, exactly as the simulator does it
  (action clipped to [-1, 1] times the trained ``max_step_m``), then clipped to the (possibly
  tightened) max step and box. Non-finite inputs are refused, so every returned target is finite
  and inside the box.
* ``ViewGuard`` (sim-to-real guard a): the gripper must stay inside the policy camera's view, checked
  by projecting it through the camera model exactly as training's config validation does;
  ``ViewGuards`` checks it for every policy camera.
* ``DriftGuard`` (sim-to-real guard b): the encoder's ee prediction must track the arm's measured
  ee position: a drift above ``warn_m`` warns, ``patience`` such steps in a row or one drift above
  ``stop_m`` stops.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

from mjx_reach import camera as camera_model
from mjx_reach.contract import SafetyError


@dataclasses.dataclass(frozen=True)
class Limits:
    """Workspace box ``low``/``high`` (3,) m and the largest target change per axis per step, m."""

    low: np.ndarray
    high: np.ndarray
    max_step_m: float

    def contains(self, point: ArrayLike) -> bool:
        point = np.asarray(point, np.float64)
        return bool(np.all(np.isfinite(point)) and np.all(point >= self.low) and np.all(point <= self.high))


def tighten(
    limits: Limits, low: ArrayLike | None = None, high: ArrayLike | None = None, max_step_m: float | None = None
) -> Limits:
    """``limits`` with the given overrides; each may only shrink the box or the step. Widening, an
    empty box or a non-finite value raises ``SafetyError`` (one line)."""
    new_low = limits.low if low is None else np.asarray(low, np.float64)
    new_high = limits.high if high is None else np.asarray(high, np.float64)
    step = limits.max_step_m if max_step_m is None else float(max_step_m)
    for name, value, bound, wider in (
        ("box low", new_low, limits.low, new_low < limits.low),
        ("box high", new_high, limits.high, new_high > limits.high),
    ):
        if value.shape != (3,) or not np.all(np.isfinite(value)):
            raise SafetyError(f"{name} must be 3 finite numbers (metres), got {value.tolist()}")
        if np.any(wider):
            raise SafetyError(
                f"{name} {value.tolist()} m would widen the model's workspace box ({bound.tolist()} m): overrides can only tighten it"
            )
    if np.any(new_high <= new_low):
        raise SafetyError(f"box low {new_low.tolist()} m and high {new_high.tolist()} m leave an empty workspace")
    if not (np.isfinite(step) and 0 < step <= limits.max_step_m):
        raise SafetyError(
            f"max step {step} m must be in (0, {limits.max_step_m}] m: overrides can only tighten the model's max step"
        )
    return Limits(new_low, new_high, step)


def next_target(target: ArrayLike, action: ArrayLike, action_scale_m: float, limits: Limits) -> np.ndarray:
    """The next commanded ee position (3,) m: ``target`` + clip(``action``, -1, 1) * ``action_scale_m``,
    the change clipped to ±``limits.max_step_m`` per axis, the result clipped to the box.

    Raises ``SafetyError`` for a non-finite action or target (the arm must not move on garbage)."""
    target, action = np.asarray(target, np.float64), np.asarray(action, np.float64)
    if action.shape != (3,) or not np.all(np.isfinite(action)):
        raise SafetyError(f"policy output {action.tolist()} is not 3 finite numbers: refused")
    if target.shape != (3,) or not np.all(np.isfinite(target)):
        raise SafetyError(f"current target {target.tolist()} is not 3 finite numbers: refused")
    step = np.clip(np.clip(action, -1.0, 1.0) * action_scale_m, -limits.max_step_m, limits.max_step_m)
    out = np.clip(target + step, limits.low, limits.high)
    if not limits.contains(out):  # unreachable by construction; the last line of defence
        raise SafetyError(f"target {out.tolist()} m left the workspace box: refused")
    return out


@dataclasses.dataclass(frozen=True)
class ViewGuard:
    """Refuses ee positions whose gripper would leave the policy camera's image (``margin_px`` inside)."""

    cam_pos: np.ndarray
    cam_lookat: np.ndarray
    fovy_deg: float
    image_hw: tuple[int, int]
    half_width_m: float
    height_m: float
    margin_px: float
    roll_deg: float = 0.0
    """Camera roll about its optical axis, degrees (``camera.camera_xmat``)."""
    name: str = "camera"
    """What refusals call this camera (e.g. ``camera 2``)."""

    def check(self, tcp: ArrayLike, what: str) -> None:
        """Raise ``SafetyError`` naming ``what`` (e.g. "target") if the gripper at ``tcp`` (3,) m is
        not wholly in view."""
        hull, uv, inside = camera_model.gripper_visibility(
            tcp,
            self.cam_pos,
            self.cam_lookat,
            self.fovy_deg,
            self.image_hw,
            self.half_width_m,
            self.height_m,
            self.margin_px,
            self.roll_deg,
        )
        if not inside.all():
            worst = int(np.argmin(inside))
            raise SafetyError(
                f"{what} {np.round(np.asarray(tcp, np.float64), 3).tolist()} m: the gripper would leave the {self.name} image "
                f"(point {np.round(hull[worst], 3).tolist()} m projects to pixel {np.round(uv[worst], 1).tolist()} of "
                f"{self.image_hw[1]}x{self.image_hw[0]}): refused"
            )


@dataclasses.dataclass(frozen=True)
class ViewGuards:
    """The view guard of every policy camera: the gripper must be wholly in view of each."""

    guards: tuple[ViewGuard, ...]

    def check(self, tcp: ArrayLike, what: str) -> None:
        """Raise ``SafetyError`` naming ``what`` and the camera if the gripper at ``tcp`` (3,) m is
        not wholly in view of every camera."""
        for guard in self.guards:
            guard.check(tcp, what)


@dataclasses.dataclass(frozen=True)
class DriftLimits:
    """Drift guard thresholds: warn above ``warn_m``; stop above ``stop_m`` or after ``patience``
    warnings in a row (metres, steps)."""

    warn_m: float = 0.03
    stop_m: float = 0.08
    patience: int = 5

    def __post_init__(self):
        if not (0 < self.warn_m <= self.stop_m) or self.patience < 1:
            raise SafetyError(
                f"drift guard: need 0 < warn ({self.warn_m} m) <= stop ({self.stop_m} m) and patience ({self.patience}) >= 1"
            )


class DriftGuard:
    """Compares the encoder's ee prediction with the arm's measured ee position every step."""

    def __init__(self, limits: DriftLimits):
        self.limits = limits
        self.strikes = 0

    def update(self, ee_pred: ArrayLike, ee_measured: ArrayLike) -> tuple[float, bool]:
        """(drift in m, whether it is above ``warn_m``); raises ``SafetyError`` on a drift above
        ``stop_m``, a non-finite prediction, or ``patience`` warnings in a row."""
        lim = self.limits
        drift = float(np.linalg.norm(np.asarray(ee_pred, np.float64) - np.asarray(ee_measured, np.float64)))
        if not np.isfinite(drift):
            raise SafetyError(f"encoder ee prediction {np.asarray(ee_pred).tolist()} is not finite: stopped")
        if drift > lim.stop_m:
            raise SafetyError(
                f"encoder ee prediction is {drift * 100:.1f} cm from the arm's measured ee (limit {lim.stop_m * 100:.1f} cm): the policy does not see the arm where it is; stopped"
            )
        self.strikes = self.strikes + 1 if drift > lim.warn_m else 0
        if self.strikes >= lim.patience:
            raise SafetyError(
                f"encoder ee prediction off the measured ee by more than {lim.warn_m * 100:.1f} cm for {self.strikes} steps in a row (now {drift * 100:.1f} cm): stopped"
            )
        return drift, drift > lim.warn_m
