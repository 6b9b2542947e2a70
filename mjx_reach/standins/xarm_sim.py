"""A simulated UFACTORY xArm controller on a loopback address, spoken to by the real xArm SDK.

The server implements the part of the controller's TCP protocol that ``xarm.wrapper.XArmAPI(ip)``
and a reach deploy loop use, so the deploy code runs through the vendor SDK without an arm:

* **Command port 502**, the SDK's private Modbus-TCP framing. Request: transaction id (u16),
  protocol id (u16, 2 or 3), length (u16, bytes that follow), register (u8), parameters. Reply:
  the same header, the register, a status byte (0x40 error present, 0x20 warning present,
  0x10 not ready to move, 0x08 command invalid) and the data. Integers are big-endian, floats
  little-endian float32. Registers served: version, serial numbers, motion enable, set/get state,
  command count, error/warning codes, clean error/warning, set mode, linear move
  (``set_position``), joint move (``set_servo_angle``), TCP pose, joint angles and motion-finished
  feedback. Any other register is recorded and answered "invalid", so the SDK call returns code 10.
* **Report ports** 30001 (normal, 133 bytes), 30002 (rich, 245 bytes; the SDK default) and 30003
  (real-time, 87 bytes): a length-prefixed status frame every ``report_period_s`` carrying state,
  mode, command count, joint angles, TCP pose, brake/enable bits and error/warning codes.

Units are the SDK's: millimetres and radians on the wire (the SDK converts degrees). The arm is
``CartesianArm`` by default: the TCP moves on a straight line at the commanded speed (no
acceleration phase), commands queue as on the real controller; given a forward-kinematics callback
it executes joint moves too (else the controller answers them "invalid"). A digital twin can drive
the reported pose instead by passing any object with the ``ArmModel`` methods.

The server records every request (``commands``) and injects faults: ``inject_error``,
``inject_warning``, ``press_emergency_stop`` and ``drop_connections``. Every socket has a
timeout and only loopback addresses are accepted. ``serve()`` starts one on a free loopback
address for a test and stops it afterwards.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import ipaddress
import random
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, Self

import numpy as np

CONTROL_PORT = 502
REPORT_PORTS = {30001: 133, 30002: 245, 30003: 87}
"""Report port → frame length in bytes (normal, rich, real-time), as the SDK reads them."""

VERSION = "7,7,XS1305SIM0001,AS1305SIM0001,v2.5.0"
"""What GET_VERSION answers: axes, arm type (xArm7 X4), robot and control-box serial, firmware."""

SOCKET_TIMEOUT_S = 1.0

# Register ids of the controller protocol (the SDK's ``XCONF.UxbusReg``).
REGISTERS = {
    1: "GET_VERSION",
    2: "GET_ROBOT_SN",
    11: "MOTION_EN",
    12: "SET_STATE",
    13: "GET_STATE",
    14: "GET_CMDNUM",
    15: "GET_ERROR",
    16: "CLEAN_ERR",
    17: "CLEAN_WAR",
    19: "SET_MODE",
    21: "MOVE_LINE",
    23: "MOVE_JOINT",
    41: "GET_TCP_POSE",
    42: "GET_JOINT_POS",
    254: "SET_FEEDBACK_TYPE",
}

# Arm states as the SDK reports them.
MOVING, SLEEPING, STOPPED = 1, 2, 4

# Reply status bits.
_ERROR_BIT, _WARN_BIT, _NOT_READY_BIT, _INVALID_BIT = 0x40, 0x20, 0x10, 0x08

_MOTION_FINISH = 2  # feedback type bit: tell the client when a move has finished
_EMERGENCY_STOP_ERROR = 1  # "The Emergency Stop Button on the xArm Controller is pushed in"
_AXES = 7
_HOME_POSE = (300.0, 0.0, 300.0, np.pi, 0.0, 0.0)
_FLOAT_REGISTERS = (21, 23)  # MOVE_LINE, MOVE_JOINT: their parameters are recorded as float32


@dataclasses.dataclass(frozen=True)
class Command:
    """One request the controller received.

    ``values``: for ``MOVE_LINE`` the float32 parameters (x, y, z mm; roll, pitch, yaw rad;
    speed mm/s; acceleration mm/s²; move time s; [radius mm]); for ``MOVE_JOINT`` the float32
    parameters (joints 1-7 rad; speed rad/s; acceleration rad/s²; move time s); for other registers
    the parameter bytes. ``time_s`` is ``time.monotonic()`` at reception.
    """

    register: int
    name: str
    values: tuple
    time_s: float


@dataclasses.dataclass(frozen=True)
class ArmSample:
    """The arm at one instant: TCP ``pose`` (6,) [x, y, z mm, roll, pitch, yaw rad] in the base
    frame, ``joints`` (7,) rad, ``queued`` moves not yet finished (including the current one) and
    ``done``, the number of moves finished since the arm was created."""

    pose: np.ndarray
    joints: np.ndarray
    queued: int
    done: int


class ArmModel(Protocol):
    """What the controller needs from the simulated arm; times are ``time.monotonic()`` seconds."""

    def move(self, target: np.ndarray, speed_mm_s: float, now: float) -> None:
        """Queue a straight-line move of the TCP to ``target`` (6,) [mm, rad]."""

    def move_joints(self, joints: np.ndarray, speed_rad_s: float, now: float) -> np.ndarray | None:
        """Queue a joint-space move to ``joints`` (7,) rad, the joint that moves furthest at
        ``speed_rad_s``; returns the TCP pose (6,) [mm, rad] it ends at, or None when this arm
        cannot move in joint space (the controller answers "invalid")."""

    def halt(self, now: float) -> None:
        """Stop where the TCP is now and drop the queued moves (they never count as done)."""

    def sample(self, now: float) -> ArmSample:
        """The arm at time ``now``."""


class CartesianArm:
    """The TCP moves on straight lines at the commanded speed, one queued move after another.

    Orientation is interpolated linearly in roll/pitch/yaw over the same time as the position.
    ``joints_of`` maps a TCP pose (6,) [mm, rad] to joint angles (7,) [rad] for the reports (a
    kinematics callback, e.g. the twin's IK); without it the joints read zero. ``tcp_pose_of`` is
    the forward kinematics, joint angles (7,) [rad] → TCP pose (6,) [mm, rad] in the base frame:
    with it a joint move runs the TCP on a straight line to that pose, its duration the largest
    joint change over the joint speed, the joints reported in between interpolated linearly and the
    target's at the end; without it the arm refuses joint moves.
    """

    def __init__(
        self,
        pose=_HOME_POSE,
        joints_of: Callable[[np.ndarray], np.ndarray] | None = None,
        tcp_pose_of: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self._joints_of = joints_of
        self._tcp_pose_of = tcp_pose_of
        self._start = np.asarray(pose, dtype=np.float64)
        self._start_joints: np.ndarray | None = None
        """The joints at ``_start`` when a joint move put them there (None: from ``joints_of``)."""
        self._start_time = 0.0
        self._queue: collections.deque[tuple[np.ndarray, float, np.ndarray | None]] = collections.deque()
        """Queued moves: (TCP target pose, speed: mm/s for a line, rad/s for a joint move, joint
        target or None for a line)."""
        self._done = 0

    def move(self, target: np.ndarray, speed_mm_s: float, now: float) -> None:
        self._enqueue(np.asarray(target, dtype=np.float64), float(speed_mm_s), None, now)

    def move_joints(self, joints: np.ndarray, speed_rad_s: float, now: float) -> np.ndarray | None:
        if self._tcp_pose_of is None:
            return None
        joints = np.asarray(joints, dtype=np.float64)
        target = np.asarray(self._tcp_pose_of(joints), dtype=np.float64)
        self._enqueue(target, float(speed_rad_s), joints, now)
        return target

    def _enqueue(self, target: np.ndarray, speed: float, joints: np.ndarray | None, now: float) -> None:
        if not self._queue:
            self._start_time = now
        self._queue.append((target, speed, joints))

    def halt(self, now: float) -> None:
        self._start, self._start_joints = self._state(now)
        self._queue.clear()

    def sample(self, now: float) -> ArmSample:
        pose, joints = self._state(now)
        return ArmSample(pose, self._joints_at(pose) if joints is None else joints, len(self._queue), self._done)

    def _joints_at(self, pose: np.ndarray) -> np.ndarray:
        """The joints reported at TCP ``pose`` when no joint move set them: ``joints_of`` or zeros."""
        return np.zeros(_AXES) if self._joints_of is None else np.asarray(self._joints_of(pose), np.float64)

    def _joints_at_start(self) -> np.ndarray:
        return self._joints_at(self._start) if self._start_joints is None else self._start_joints

    def _state(self, now: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Advance past finished moves and return the TCP pose at ``now`` and, when a joint move
        sets them, the joints (else None)."""
        while self._queue:
            target, speed, joints = self._queue[0]
            if joints is None:
                duration = np.linalg.norm(target[:3] - self._start[:3]) / speed
            else:
                start_joints = self._joints_at_start()
                duration = np.max(np.abs(joints - start_joints)) / speed
            elapsed = now - self._start_time
            if elapsed < duration:
                fraction = elapsed / duration
                pose = self._start + (target - self._start) * fraction
                return pose, None if joints is None else start_joints + (joints - start_joints) * fraction
            self._queue.popleft()
            self._start, self._start_joints = target, joints
            self._start_time += duration
            self._done += 1
        return self._start.copy(), None if self._start_joints is None else self._start_joints.copy()


@dataclasses.dataclass
class _Client:
    sock: socket.socket
    port: int
    buffer: bytes = b""
    feedback_type: int = 0


class SimController:
    """A simulated xArm controller serving the SDK on ``host`` (a loopback address).

    Binds in the constructor (raises ``OSError``: ``PermissionError`` when port 502 needs
    privileges, ``EADDRINUSE`` when the address is taken); serves from ``start()`` until
    ``stop()`` (or use it as a context manager). ``control_port=0`` binds a free port instead of
    502 (read ``control_port`` afterwards). ``tcp_offset`` (6,) [x, y, z mm, roll, pitch, yaw rad]
    is the tool centre point in the flange frame the reports carry (the SDK's ``tcp_offset``). The
    arm starts powered with its motors disabled and state 4 (stopped), as after boot: a client
    enables the motors, sets mode 0 and state 0.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        control_port: int = CONTROL_PORT,
        arm: ArmModel | None = None,
        report_period_s: float = 0.05,
        tcp_offset=(0, 0, 0, 0, 0, 0),
    ):
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the simulated xArm serves loopback addresses only, not {host}")
        self.host = host
        self.arm = arm if arm is not None else CartesianArm()
        self.report_period_s = report_period_s
        self.tcp_offset = np.asarray(tcp_offset, dtype=np.float64)
        self.state, self.mode, self.error_code, self.warn_code = STOPPED, 0, 0, 0
        self.motors_enabled = 0  # bit i: joint i + 1 enabled
        self.emergency_stop_pressed = False
        self._commands: list[Command] = []
        self._pending: collections.deque[tuple[_Client | None, bytes]] = collections.deque()
        """One entry per queued move, oldest first: who asked for its finish feedback, and the
        reply header (transaction and protocol id) to send it with."""
        self._done_seen = 0  # the arm's ``done`` count already answered from ``_pending``
        self._last_target: np.ndarray | None = None
        self._clients: list[_Client] = []
        self._lock = threading.RLock()
        self._selector = selectors.DefaultSelector()
        self._listeners = []
        try:
            for port in (control_port, *REPORT_PORTS):
                self._listeners.append(self._listen(port))
        except OSError:
            self._close_listeners()
            raise
        self.control_port = self._listeners[0].getsockname()[1]
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"xarm-sim-{host}", daemon=True)

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> SimController:
        self._running.set()
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Close every connection and listener and wait (at most ``timeout_s``) for the server."""
        self._running.clear()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.drop_connections()
        self._close_listeners()
        self._selector.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- inspection and fault injection ------------------------------------------------------

    @property
    def commands(self) -> list[Command]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._commands)

    def moves(self) -> list[np.ndarray]:
        """The ``MOVE_LINE`` commands received: their target poses (6,) [mm, rad]."""
        return [np.asarray(c.values[:6]) for c in self.commands if c.name == "MOVE_LINE"]

    def joint_moves(self) -> list[np.ndarray]:
        """The ``MOVE_JOINT`` commands received: their target joint angles (7,) rad."""
        return [np.asarray(c.values[:_AXES]) for c in self.commands if c.name == "MOVE_JOINT"]

    def sample(self) -> ArmSample:
        """The simulated arm now (TCP pose in mm and rad, joint angles)."""
        with self._lock:
            return self.arm.sample(time.monotonic())

    def inject_error(self, code: int) -> None:
        """Raise controller error ``code`` (the SDK's ``ControllerErrorCodeMap``): the arm stops."""
        with self._lock:
            self.error_code = code
            self._halt()

    def inject_warning(self, code: int) -> None:
        """Raise controller warning ``code``; the arm keeps moving."""
        with self._lock:
            self.warn_code = code

    def press_emergency_stop(self) -> None:
        """The emergency-stop button: error 1, motors disabled, arm stopped until released."""
        with self._lock:
            self.emergency_stop_pressed = True
            self.motors_enabled = 0
            self.inject_error(_EMERGENCY_STOP_ERROR)

    def release_emergency_stop(self) -> None:
        with self._lock:
            self.emergency_stop_pressed = False

    def drop_connections(self) -> None:
        """Close every client connection, as a pulled cable would; listeners stay open."""
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError, KeyError, ValueError):
                    self._selector.unregister(client.sock)
                with contextlib.suppress(OSError):
                    client.sock.shutdown(socket.SHUT_RDWR)
                client.sock.close()
            self._clients.clear()

    # -- sockets ----------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
            sock.listen(4)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, data=None)
        return sock

    def _close_listeners(self) -> None:
        for sock in self._listeners:
            with contextlib.suppress(OSError, KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        self._listeners.clear()

    def _serve(self) -> None:
        next_report = time.monotonic()
        while self._running.is_set():
            for key, _ in self._selector.select(timeout=0.01):
                if key.data is None:
                    self._accept(key.fileobj)
                else:
                    self._receive(key.data)
            with self._lock:
                now = time.monotonic()
                self._send_feedback(now)
                if now >= next_report:
                    self._send_reports(now)
                    next_report = now + self.report_period_s

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            sock, _ = listener.accept()
            sock.settimeout(SOCKET_TIMEOUT_S)
            client = _Client(sock, listener.getsockname()[1])
            with self._lock:
                self._clients.append(client)
                self._selector.register(sock, selectors.EVENT_READ, data=client)
                if client.port in REPORT_PORTS:  # a report stream starts with the current status
                    self._send_report(client, self._report(time.monotonic()))

    def _receive(self, client: _Client) -> None:
        try:
            data = client.sock.recv(4096)
        except OSError:
            data = b""
        with self._lock:
            if not data:
                self._disconnect(client)
                return
            if client.port != self.control_port:
                return  # clients never write to report ports
            client.buffer += data
            while len(client.buffer) >= 6:
                size = 6 + struct.unpack(">H", client.buffer[4:6])[0]
                if len(client.buffer) < size:
                    break
                frame, client.buffer = client.buffer[:size], client.buffer[size:]
                self._handle(client, frame)

    def _send(self, client: _Client, data: bytes) -> None:
        try:
            client.sock.sendall(data)
        except OSError:
            self._disconnect(client)

    def _disconnect(self, client: _Client) -> None:
        if client in self._clients:
            self._clients.remove(client)
            with contextlib.suppress(OSError, KeyError, ValueError):
                self._selector.unregister(client.sock)
            client.sock.close()

    # -- command protocol -------------------------------------------------------------------

    def _handle(self, client: _Client, frame: bytes) -> None:
        trans_id, protocol, _ = struct.unpack(">HHH", frame[:6])
        register, params = frame[6], frame[7:]
        if protocol == 0:  # standard Modbus-TCP (GPIO registers): "illegal function"
            self._record(register, "MODBUS", tuple(params))
            self._send(client, frame[:4] + struct.pack(">HBBB", 3, register, params[0] | 0x80, 1))
            return
        if protocol not in (2, 3):
            return  # the SDK's optional heartbeat (protocol 1) needs no answer
        name = REGISTERS.get(register, f"REGISTER_{register}")
        handler = getattr(self, f"_on_{name.lower()}", None)
        values = (
            struct.unpack(f"<{len(params) // 4}f", params[: len(params) // 4 * 4])
            if register in _FLOAT_REGISTERS
            else tuple(params)
        )
        self._record(register, name, values)
        status, data = (_INVALID_BIT, b"") if handler is None else handler(client, params, trans_id, protocol)
        status |= (_ERROR_BIT if self.error_code else 0) | (_WARN_BIT if self.warn_code else 0)
        status |= 0 if self._ready() else _NOT_READY_BIT
        self._send(client, struct.pack(">HHHBB", trans_id, protocol, 2 + len(data), register, status) + data)

    def _record(self, register: int, name: str, values: tuple) -> None:
        self._commands.append(Command(register, name, values, time.monotonic()))

    def _ready(self) -> bool:
        return self.state < STOPPED and self.motors_enabled == (1 << _AXES) - 1 and not self.error_code

    def _halt(self) -> None:
        now = time.monotonic()
        self.arm.halt(now)
        self._pending.clear()
        self._done_seen = self.arm.sample(now).done
        self.state = STOPPED

    def _on_get_version(self, client, params, trans_id, protocol):
        return 0, VERSION.encode().ljust(40, b"\0")

    def _on_get_robot_sn(self, client, params, trans_id, protocol):
        robot_sn, box_sn = VERSION.split(",")[2:4]
        return 0, f"{robot_sn}\0{box_sn}".encode().ljust(40, b"\0")

    def _on_motion_en(self, client, params, trans_id, protocol):
        axis, enable = params[0], params[1]
        if self.emergency_stop_pressed:
            return _INVALID_BIT, b""
        bits = (1 << _AXES) - 1 if axis == 8 else 1 << (axis - 1)
        self.motors_enabled = self.motors_enabled | bits if enable else self.motors_enabled & ~bits
        if not enable:
            self._halt()
        return 0, b""

    def _on_set_state(self, client, params, trans_id, protocol):
        if params[0] == 0:
            if self.error_code or self.motors_enabled != (1 << _AXES) - 1:
                return _INVALID_BIT, b""
            self.state = SLEEPING
        elif params[0] == STOPPED:
            self._halt()
        else:
            return _INVALID_BIT, b""  # pause (3) is not simulated
        return 0, b""

    def _on_get_state(self, client, params, trans_id, protocol):
        return 0, bytes([self._current_state(time.monotonic())])

    def _on_get_cmdnum(self, client, params, trans_id, protocol):
        return 0, struct.pack(">H", self.arm.sample(time.monotonic()).queued)

    def _on_get_error(self, client, params, trans_id, protocol):
        return 0, bytes([self.error_code, self.warn_code])

    def _on_clean_err(self, client, params, trans_id, protocol):
        if not self.emergency_stop_pressed:
            self.error_code = 0
        return 0, b""

    def _on_clean_war(self, client, params, trans_id, protocol):
        self.warn_code = 0
        return 0, b""

    def _on_set_mode(self, client, params, trans_id, protocol):
        self.mode = params[0]
        return 0, b""

    def _on_set_feedback_type(self, client, params, trans_id, protocol):
        client.feedback_type = params[0]
        return 0, b""

    def _on_move_line(self, client, params, trans_id, protocol):
        """``set_position`` as firmware 1.11+ receives it: 10 floats (pose, speed, acceleration,
        move time, blend radius) and 3-4 bytes (coordinate frame, axis-angle flag, check-only,
        [motion type]). Served: base-frame roll/pitch/yaw moves that execute (the 3 bytes zero);
        an infinite coordinate keeps the previous target's. Acceleration, move time and blend
        radius are recorded, not simulated."""
        reply = b"\0\0\0"
        if len(params) < 43 or any(params[40:43]):
            return _INVALID_BIT, reply
        pose, speed = np.asarray(struct.unpack("<6f", params[:24]), np.float64), struct.unpack("<f", params[24:28])[0]
        if not speed > 0:
            return _INVALID_BIT, reply
        if not self._ready():
            return 0, reply  # the status byte says "not ready"; nothing moves
        now = time.monotonic()
        sample = self.arm.sample(now)
        last = self._last_target if sample.queued else sample.pose
        self._last_target = np.where(np.isfinite(pose), pose, last)
        self.arm.move(self._last_target, speed, now)
        self._queued(client, trans_id, protocol)
        return 0, reply

    def _on_move_joint(self, client, params, trans_id, protocol):
        """``set_servo_angle`` (absolute, no blend radius) as the SDK sends it on register 23: 10
        floats (joints 1-7 rad, speed rad/s, acceleration rad/s², move time s) and, with a check-only
        type, 1 byte.
        Served: moves of all 7 joints that execute (no byte, or a zero one); a single-joint move
        (infinite angles for the others) and an arm without forward kinematics (``ArmModel.move_joints``
        returns None) are answered "invalid". Acceleration and move time are recorded, not simulated."""
        reply = b"\0\0\0" if len(params) > 40 else b""  # a check-only request expects 3 bytes back
        if len(params) < 40 or any(params[40:]):
            return _INVALID_BIT, reply
        values = np.asarray(struct.unpack("<8f", params[:32]), np.float64)
        joints, speed = values[:_AXES], values[_AXES]
        if not (np.all(np.isfinite(joints)) and speed > 0):
            return _INVALID_BIT, reply
        if not self._ready():
            return 0, reply  # the status byte says "not ready"; nothing moves
        target = self.arm.move_joints(joints, speed, time.monotonic())
        if target is None:
            return _INVALID_BIT, reply
        self._last_target = target
        self._queued(client, trans_id, protocol)
        return 0, reply

    def _queued(self, client: _Client, trans_id: int, protocol: int) -> None:
        """Remember a queued move for its motion-finished feedback."""
        wants_feedback = client.feedback_type & _MOTION_FINISH
        self._pending.append((client if wants_feedback else None, struct.pack(">HH", trans_id, protocol)))

    def _on_get_tcp_pose(self, client, params, trans_id, protocol):
        return 0, struct.pack("<6f", *self.arm.sample(time.monotonic()).pose)

    def _on_get_joint_pos(self, client, params, trans_id, protocol):
        return 0, struct.pack("<7f", *self.arm.sample(time.monotonic()).joints)

    # -- state, feedback and reports ---------------------------------------------------------

    def _current_state(self, now: float) -> int:
        if self.state >= STOPPED:
            return self.state
        return MOVING if self.arm.sample(now).queued else SLEEPING

    def _send_feedback(self, now: float) -> None:
        """Tell clients that asked for it which of their moves finished (a frame with register
        0xFF and the move's transaction id; byte 8 the feedback type, byte 12 the result 0)."""
        done = self.arm.sample(now).done
        for _ in range(min(done - self._done_seen, len(self._pending))):
            client, header = self._pending.popleft()
            if client is not None and client in self._clients:
                self._send(client, header + struct.pack(">HBBB3xB", 7, 0xFF, 0, _MOTION_FINISH, 0))
        self._done_seen = done

    def _send_reports(self, now: float) -> None:
        frame = self._report(now)
        for client in [c for c in self._clients if c.port in REPORT_PORTS]:
            self._send_report(client, frame)

    def _send_report(self, client: _Client, rich: bytes) -> None:
        """Send ``rich`` cut to the length of the client's report port."""
        size = REPORT_PORTS[client.port]
        self._send(client, struct.pack(">I", size) + rich[4:size])

    def _report(self, now: float) -> bytes:
        """The rich report (245 bytes); the normal and real-time reports are its prefixes."""
        arm = self.arm.sample(now)
        enabled = self.motors_enabled
        frame = struct.pack(">IBH", 245, self._current_state(now) | self.mode << 4, arm.queued)
        frame += struct.pack("<7f6f7f", *arm.joints, *arm.pose, *np.zeros(_AXES))
        frame += bytes([enabled, enabled, self.error_code, self.warn_code])
        frame += struct.pack("<6f4f", *self.tcp_offset, *np.zeros(4))  # TCP offset, TCP load
        frame += bytes([3, 3]) + struct.pack("<3f", 0.0, 0.0, -1.0)  # sensitivities, gravity
        frame += bytes([7, _AXES, 0, 0, 0, 0]) + VERSION.encode()[:30].ljust(30, b"\0")
        frame += struct.pack("<5f5f2f", 1000, 1, 50000, 0.1, 1000, 20, 0.01, 20, 1e-4, 4, 2.3, 2.7)
        return frame + bytes(16)  # servo status and error codes


@contextlib.contextmanager
def serve(attempts: int = 20, **kwargs: Any) -> Iterator[SimController]:
    """Run a ``SimController(host, **kwargs)`` on a free loopback address (127.x.y.z) for the
    ``with`` block.

    Where binding port 502 needs privileges (not root, ``net.ipv4.ip_unprivileged_port_start``
    above 502), the controller takes a free port and the xArm SDK's control-port constant
    (``XCONF.SocketConf.TCP_CONTROL_PORT``, which the SDK reads at connect time) points at it
    until the block ends. The report ports are unprivileged and always the real ones.
    """
    for _ in range(attempts):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            controller = _bind(host, kwargs)
            break
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    else:
        raise OSError(errno.EADDRINUSE, f"no free loopback address for a simulated xArm after {attempts} tries")
    with controller, _sdk_control_port(controller.control_port):
        yield controller


def _bind(host: str, kwargs: dict) -> SimController:
    try:
        return SimController(host, CONTROL_PORT, **kwargs)
    except PermissionError:
        return SimController(host, 0, **kwargs)


@contextlib.contextmanager
def _sdk_control_port(port: int) -> Iterator[None]:
    if port == CONTROL_PORT:
        yield
        return
    from xarm.core.config.x_config import XCONF

    saved = XCONF.SocketConf.TCP_CONTROL_PORT
    XCONF.SocketConf.TCP_CONTROL_PORT = port
    try:
        yield
    finally:
        XCONF.SocketConf.TCP_CONTROL_PORT = saved
