"""The xArm SDK edge: the only place where millimetres and degrees appear.

The rest of deploy speaks metres in the sim world frame; ``XArm`` converts to the SDK's base frame
(``world_to_base`` from the model's metadata) in millimetres, and turns the flange rotation the
policy was trained with (gripper pointing down) into the SDK's roll/pitch/yaw in degrees
(fixed axes: R = Rz(yaw) Ry(pitch) Rx(roll)). It wraps ``xarm.wrapper.XArmAPI`` (xArm-Python-SDK):
``connect``, ``clean_error``, ``clean_warn``, ``motion_enable``, ``set_mode(0)`` (position mode),
``set_state(0)``, ``set_position(..., wait=True)``, ``set_servo_angle(..., is_radian=True, wait=True)``
(the joint-space home move), ``get_position``, ``get_servo_angle`` (calibration),
``error_code``, ``warn_code``,
``connected``, ``tcp_offset``, ``emergency_stop``, ``disconnect``. SDK calls return a code; any
code other than 0 raises ``ArmError``.

The twin (``mjx_reach.standins.twin.TwinArm``) has the same interface as ``XArm`` (``Arm``).
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from mjx_reach.contract import ArmError

MM_PER_M = 1000.0
TCP_OFFSET_TOLERANCE_MM = 1.0
TCP_OFFSET_TOLERANCE_DEG = 0.5
REPORT_WAIT_S = 2.0
"""How long ``connect`` waits for the controller's report stream to deliver its TCP offset, s."""


class Arm(Protocol):
    """What the deploy loop drives (positions: tool centre point, metres, sim world frame)."""

    def connect(self) -> None:
        """Connect, clear errors and warnings, enable motion, position mode, ready state."""

    def position(self) -> np.ndarray:
        """Measured ee position (3,) m."""

    def move_to(self, target: np.ndarray) -> None:
        """Move the ee to ``target`` (3,) m, gripper pointing down; returns when the move is done."""

    def move_joints(self, angles_rad: np.ndarray) -> None:
        """Move the joints to ``angles_rad`` (7,) rad in joint space; returns when the move is done."""

    def check(self) -> None:
        """Raise ``ArmError`` if the connection is lost or the controller reports an error or warning."""

    def stop(self) -> None:
        """Stop all motion now (safe to call in any state, more than once)."""

    def close(self) -> None:
        """Disconnect."""


def world_to_sdk_mm(point_m: ArrayLike, world_to_base: np.ndarray) -> np.ndarray:
    """A world point (3,) m as the SDK's base-frame (x, y, z) in mm."""
    w2b = np.asarray(world_to_base, np.float64)
    return (w2b[:3, :3] @ np.asarray(point_m, np.float64) + w2b[:3, 3]) * MM_PER_M


def sdk_mm_to_world(point_mm: ArrayLike, world_to_base: np.ndarray) -> np.ndarray:
    """The SDK's base-frame (x, y, z) in mm as a world point (3,) m."""
    w2b = np.asarray(world_to_base, np.float64)
    base = np.asarray(point_mm, np.float64) / MM_PER_M
    return w2b[:3, :3].T @ (base - w2b[:3, 3])


def xmat_from_rpy_deg(rpy: ArrayLike) -> np.ndarray:
    """Rotation (3, 3) R = Rz(yaw) Ry(pitch) Rx(roll) of roll, pitch, yaw (3,) in degrees (``rpy_deg``'s inverse)."""
    (cr, cp, cy), (sr, sp, sy) = np.cos(np.deg2rad(rpy)), np.sin(np.deg2rad(rpy))
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def rpy_deg(rot: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (3,) in degrees of a rotation (3, 3) with R = Rz(yaw) Ry(pitch) Rx(roll)."""
    r = np.asarray(rot, np.float64)
    pitch = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    return np.rad2deg([np.arctan2(r[2, 1], r[2, 2]), pitch, np.arctan2(r[1, 0], r[0, 0])])


class XArm:
    """A real xArm7 through the SDK, in metres and the sim world frame.

    Args:
      ip: the controller's address.
      world_to_base: (4, 4) sim world → arm base (model metadata).
      tcp_offset_m: (3,) the tool centre point in the flange frame (model metadata); ``connect``
        refuses a controller whose TCP offset differs (every position would be off by the difference).
      flange_xmat: (3, 3) world rotation of the flange to hold (model metadata).
      speed_m_s, accel_m_s2: Cartesian speed and acceleration of each move.
      joint_speed_rad_s, joint_accel_rad_s2: joint speed and acceleration of a joint-space move
        (``move_joints``: homing).
      make_api: ``XArmAPI``-like factory ``make_api(ip)`` (default: ``xarm.wrapper.XArmAPI``; tests pass a fake).
    """

    def __init__(
        self,
        ip: str,
        world_to_base,
        tcp_offset_m,
        flange_xmat,
        speed_m_s: float = 0.1,
        accel_m_s2: float = 1.0,
        joint_speed_rad_s: float = math.radians(20.0),
        joint_accel_rad_s2: float = math.radians(200.0),
        make_api=None,
    ):
        self.ip = ip
        self.world_to_base = np.asarray(world_to_base, np.float64)
        self.tcp_offset_mm = np.asarray(tcp_offset_m, np.float64) * MM_PER_M
        self.rpy_deg = rpy_deg(self.world_to_base[:3, :3] @ np.asarray(flange_xmat, np.float64))
        self.speed_mm_s, self.accel_mm_s2 = speed_m_s * MM_PER_M, accel_m_s2 * MM_PER_M
        self.joint_speed_rad_s, self.joint_accel_rad_s2 = joint_speed_rad_s, joint_accel_rad_s2
        self._make_api = make_api
        self.api = None

    def _call(self, name: str, *args, **kwargs):
        code = getattr(self.api, name)(*args, **kwargs)
        if code != 0:
            raise ArmError(
                f"xArm {name} returned code {code} (error code {self.api.error_code}, warn code {self.api.warn_code})"
            )

    def connect(self) -> None:
        make_api = self._make_api
        if make_api is None:
            from xarm.wrapper import XArmAPI as make_api
        try:
            self.api = make_api(self.ip)
        except Exception as e:  # the SDK raises a bare Exception when the controller is unreachable
            raise ArmError(
                f"cannot connect to the xArm at {self.ip}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from None
        if not self.api.connected:
            raise ArmError(f"cannot connect to the xArm at {self.ip}")
        self._call("clean_error")
        self._call("clean_warn")
        self._call("motion_enable", enable=True)
        self._call("set_mode", 0)
        self._call("set_state", 0)
        self._check_tcp_offset()
        self.check()

    def _reported_tcp_offset(self) -> np.ndarray:
        """The controller's TCP offset (6,) (mm, deg). The SDK fills it from the report stream, so
        right after connecting it can still read zeros: wait up to ``REPORT_WAIT_S`` for a report."""
        deadline = time.monotonic() + REPORT_WAIT_S
        while True:
            offset = np.asarray(self.api.tcp_offset, np.float64)
            if np.any(offset) or time.monotonic() > deadline:
                return offset
            time.sleep(0.02)

    def _check_tcp_offset(self) -> None:
        offset = self._reported_tcp_offset()
        want = np.concatenate([self.tcp_offset_mm, np.zeros(3)])
        if (
            offset.shape != (6,)
            or np.any(np.abs(offset[:3] - want[:3]) > TCP_OFFSET_TOLERANCE_MM)
            or np.any(np.abs(offset[3:]) > TCP_OFFSET_TOLERANCE_DEG)
        ):
            raise ArmError(
                f"controller TCP offset is {np.round(offset, 1).tolist()} (mm, deg) but the policy was trained with "
                f"{np.round(want, 1).tolist()}: set it (xArm Studio > Settings > TCP) and retry"
            )

    def check(self) -> None:
        if self.api is None or not self.api.connected:
            raise ArmError(f"lost the connection to the xArm at {self.ip}")
        if self.api.error_code:
            raise ArmError(
                f"xArm controller error code {self.api.error_code} (see the xArm controller error code table)"
            )
        if self.api.warn_code:
            raise ArmError(
                f"xArm controller warning code {self.api.warn_code} (see the xArm controller warn code table)"
            )

    def position(self) -> np.ndarray:
        return self.pose()[0]

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured tool centre point (3,) m and tool rotation (3, 3), world frame."""
        self.check()
        code, pose = self.api.get_position(is_radian=False)
        if code != 0:
            raise ArmError(f"xArm get_position returned code {code}")
        return sdk_mm_to_world(pose[:3], self.world_to_base), self.world_to_base[:3, :3].T @ xmat_from_rpy_deg(
            pose[3:6]
        )

    def joint_angles(self) -> np.ndarray:
        """Measured joint angles (7,) rad."""
        self.check()
        code, angles = self.api.get_servo_angle(is_radian=True)
        if code != 0:
            raise ArmError(f"xArm get_servo_angle returned code {code}")
        return np.asarray(angles[:7], np.float64)

    def move_to(self, target: np.ndarray, rotation: np.ndarray | None = None) -> None:
        """Move the tool centre point to ``target`` (3,) m; the flange at world rotation ``rotation``
        (3, 3), by default the policy's (gripper pointing down)."""
        self.check()
        x, y, z = world_to_sdk_mm(target, self.world_to_base)
        roll, pitch, yaw = (
            self.rpy_deg if rotation is None else rpy_deg(self.world_to_base[:3, :3] @ np.asarray(rotation, np.float64))
        )
        self._call(
            "set_position",
            x=float(x),
            y=float(y),
            z=float(z),
            roll=float(roll),
            pitch=float(pitch),
            yaw=float(yaw),
            speed=self.speed_mm_s,
            mvacc=self.accel_mm_s2,
            is_radian=False,
            wait=True,
        )
        self.check()

    def move_joints(self, angles_rad: np.ndarray) -> None:
        self.check()
        self._call(
            "set_servo_angle",
            angle=[float(a) for a in np.asarray(angles_rad, np.float64)],
            speed=self.joint_speed_rad_s,
            mvacc=self.joint_accel_rad_s2,
            is_radian=True,
            wait=True,
        )
        self.check()

    def stop(self) -> None:
        if self.api is not None and self.api.connected:
            self.api.emergency_stop()

    def close(self) -> None:
        if self.api is not None:
            self.api.disconnect()
            self.api = None
