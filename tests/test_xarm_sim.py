"""The vendor xArm SDK (``xarm.wrapper.XArmAPI``) against the simulated controller
(``mjx_reach.standins.xarm_sim``) on a loopback address: handshake, units, reports and faults."""

from __future__ import annotations

import math
import pathlib
import re
import tempfile
import threading
import time
import types

import mujoco
import numpy as np
import pytest
from xarm.wrapper import XArmAPI

from deploy import loop, safety
from deploy.arm import XArm, rpy_deg
from deploy.camera import RealSenseCamera
from mjx_reach import scene as scene_lib
from mjx_reach.camera import Intrinsics
from mjx_reach.config import EnvConfig
from mjx_reach.contract import ArmError
from mjx_reach.standins import xarm_sim
from mjx_reach.standins.realsense_sim import SoftwareCamera

SPEED_MM_S = 200.0


def wait_until(predicate, timeout_s: float = 2.0) -> bool:
    """Poll ``predicate`` every 10 ms until it is true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def controller():
    with xarm_sim.serve() as ctl:
        yield ctl


@pytest.fixture
def arm(controller):
    """An SDK client, connected, motors enabled, position mode, ready to move."""
    api = XArmAPI(controller.host, forbid_uds=True)
    assert api.connected
    assert (api.motion_enable(True), api.set_mode(0), api.set_state(0)) == (0, 0, 0)
    assert wait_until(lambda: api.state == xarm_sim.SLEEPING)
    yield api
    api.disconnect()


def test_cartesian_arm_moves_at_the_commanded_speed():
    arm = xarm_sim.CartesianArm(pose=(300, 0, 200, math.pi, 0, 0))
    first, second = np.array([340, 0, 200, math.pi, 0, 0]), np.array([340, 30, 200, math.pi, 0, 0.3])
    arm.move(first, 100.0, now=10.0)
    arm.move(second, 50.0, now=10.1)
    np.testing.assert_allclose(arm.sample(10.2).pose, [320, 0, 200, math.pi, 0, 0])
    mid = arm.sample(10.4 + 0.3)  # 0.4 s for the first move, then half of the second's 0.6 s
    np.testing.assert_allclose(mid.pose, [340, 15, 200, math.pi, 0, 0.15])
    assert (mid.queued, mid.done) == (1, 1)
    end = arm.sample(11.5)
    np.testing.assert_allclose(end.pose, second)
    assert (end.queued, end.done) == (0, 2)
    arm.move(first, 100.0, now=12.0)
    arm.halt(now=12.1)
    stopped = arm.sample(13.0)
    np.testing.assert_allclose(stopped.pose[:3], [340, 20, 200], atol=1e-9)
    assert (stopped.queued, stopped.done) == (0, 2)


def test_sdk_connects_and_enables(controller):
    api = XArmAPI(controller.host, forbid_uds=True)
    try:
        major, minor, revision = map(int, re.search(r"v(\d+)\.(\d+)\.(\d+)$", xarm_sim.VERSION).groups())
        assert api.connected and api.version_number == (major, minor, revision) and api.axis == 7
        assert wait_until(lambda: api.state == xarm_sim.STOPPED)  # after boot: motors off, stopped
        assert api.set_position(x=350, speed=SPEED_MM_S) != 0  # not ready: refused by the SDK
        assert (api.motion_enable(True), api.set_mode(0), api.set_state(0)) == (0, 0, 0)
        assert wait_until(lambda: api.state == xarm_sim.SLEEPING and api.mode == 0)
        assert api.error_code == api.warn_code == 0
        names = [c.name for c in controller.commands]
        assert {"GET_VERSION", "MOTION_EN", "SET_MODE", "SET_STATE"} <= set(names)
        assert controller.moves() == []
    finally:
        api.disconnect()


def test_a_20_mm_move_in_x_moves_the_tcp_20_mm_in_x(controller, arm):
    code, start = arm.get_position()
    assert code == 0
    began = time.monotonic()
    assert (
        arm.set_position(
            x=start[0] + 20,
            y=start[1],
            z=start[2],
            roll=start[3],
            pitch=start[4],
            yaw=start[5],
            speed=SPEED_MM_S,
            wait=True,
        )
        == 0
    )
    assert time.monotonic() - began >= 20 / SPEED_MM_S  # motion simulated at the commanded speed
    code, end = arm.get_position()
    assert code == 0
    np.testing.assert_allclose(np.subtract(end, start), [20, 0, 0, 0, 0, 0], atol=1e-3)
    # On the wire: millimetres and radians.
    (target,) = controller.moves()
    np.testing.assert_allclose(target, [start[0] + 20, *start[1:3], *np.radians(start[3:])], atol=1e-3)
    np.testing.assert_allclose(controller.sample().pose, target, atol=1e-3)
    # The report stream agrees with get_position.
    assert wait_until(lambda: np.allclose(arm.position, end, atol=1e-3))


def test_state_and_cmdnum_follow_a_move_in_progress(controller, arm):
    _, start = arm.get_position()
    assert arm.set_position(x=start[0] + 20, speed=50.0) == 0  # 0.4 s, without waiting
    assert wait_until(lambda: arm.state == xarm_sim.MOVING, timeout_s=0.3)
    assert arm.get_cmdnum() == (0, 1)
    x_mid = arm.get_position()[1][0]
    assert start[0] < x_mid < start[0] + 20
    assert wait_until(lambda: arm.state == xarm_sim.SLEEPING and arm.get_cmdnum() == (0, 0))
    assert arm.get_position()[1][0] == pytest.approx(start[0] + 20, abs=1e-3)


def test_injected_error_surfaces_and_stops_the_arm(controller, arm):
    _, start = arm.get_position()
    assert arm.set_position(x=start[0] + 40, speed=SPEED_MM_S) == 0
    controller.inject_error(22)  # self-collision
    assert wait_until(lambda: arm.error_code == 22 and arm.state == xarm_sim.STOPPED)
    assert arm.get_err_warn_code() == (0, [22, 0])
    stopped = controller.sample().pose
    assert stopped[0] < start[0] + 40
    assert arm.set_position(x=start[0] + 60, speed=SPEED_MM_S) != 0
    time.sleep(0.1)
    np.testing.assert_allclose(controller.sample().pose, stopped)
    assert arm.clean_error() == 0
    assert wait_until(lambda: arm.error_code == 0)
    assert (arm.motion_enable(True), arm.set_state(0)) == (0, 0)
    assert arm.set_position(x=start[0], speed=SPEED_MM_S, wait=True) == 0


def test_injected_warning_surfaces_without_stopping(controller, arm):
    controller.inject_warning(11)
    assert wait_until(lambda: arm.warn_code == 11)
    _, start = arm.get_position()
    assert arm.set_position(x=start[0] + 10, speed=SPEED_MM_S, wait=True) == 0
    assert controller.sample().pose[0] == pytest.approx(start[0] + 10, abs=1e-3)
    assert arm.clean_warn() == 0 and wait_until(lambda: arm.warn_code == 0)


def test_dropped_connection_surfaces(controller, arm):
    controller.drop_connections()
    assert wait_until(lambda: not arm.connected, timeout_s=3.0)
    assert arm.set_position(x=300, speed=SPEED_MM_S) != 0
    assert controller.moves() == []


def test_emergency_stop_button_surfaces_and_holds(controller, arm):
    _, start = arm.get_position()
    assert arm.set_position(x=start[0] + 40, speed=SPEED_MM_S) == 0
    controller.press_emergency_stop()
    assert wait_until(lambda: arm.error_code == 1 and arm.state == xarm_sim.STOPPED)
    assert controller.sample().pose[0] < start[0] + 40
    arm.clean_error()
    assert arm.get_err_warn_code() == (0, [1, 0])  # cannot be cleared while pressed
    assert arm.motion_enable(True) != 0
    controller.release_emergency_stop()
    assert arm.clean_error() == 0 and arm.get_err_warn_code() == (0, [0, 0])
    assert (arm.motion_enable(True), arm.set_state(0)) == (0, 0)


def test_sdk_emergency_stop_stops_the_move(controller, arm):
    _, start = arm.get_position()
    assert arm.set_position(x=start[0] + 40, speed=SPEED_MM_S) == 0
    time.sleep(0.05)
    arm.emergency_stop()
    assert arm.state == xarm_sim.STOPPED
    assert [c.values for c in controller.commands if c.name == "SET_STATE"][-1] == (xarm_sim.STOPPED,)
    stopped = controller.sample().pose
    assert start[0] < stopped[0] < start[0] + 40
    time.sleep(0.1)
    np.testing.assert_allclose(controller.sample().pose, stopped)


def test_cartesian_arm_joint_moves_need_forward_kinematics():
    """With a forward-kinematics callback a joint move runs the TCP on a straight line to the FK pose,
    the largest joint change at the joint speed, joints interpolated and the target's at the end;
    without one the arm refuses it."""
    assert xarm_sim.CartesianArm().move_joints(np.ones(7), 1.0, now=0.0) is None
    fk = {0.0: np.array([300, 0, 200, math.pi, 0, 0]), 1.0: np.array([400, 50, 200, math.pi, 0, 0.5])}
    arm = xarm_sim.CartesianArm(pose=fk[0.0], tcp_pose_of=lambda q: fk[float(np.max(q))])
    target = np.array([0.5, 1.0, 0, 0, 0, 0, 0])  # the largest change, 1 rad, takes 2 s at 0.5 rad/s
    np.testing.assert_allclose(arm.move_joints(target, 0.5, now=10.0), fk[1.0])
    mid = arm.sample(11.0)
    np.testing.assert_allclose(mid.pose, (fk[0.0] + fk[1.0]) / 2)
    np.testing.assert_allclose(mid.joints, target / 2)
    assert (mid.queued, mid.done) == (1, 0)
    end = arm.sample(12.0)
    np.testing.assert_allclose(end.pose, fk[1.0])
    np.testing.assert_allclose(end.joints, target)
    assert (end.queued, end.done) == (0, 1)


def test_unsupported_commands_are_recorded_and_refused(controller, arm):
    assert arm.set_tcp_jerk(1000) == 10  # "invalid" from the controller
    assert controller.commands[-1].name == "REGISTER_31"


def test_only_loopback_addresses_are_served():
    with pytest.raises(ValueError, match="loopback"):
        xarm_sim.SimController("192.168.1.185")


# -- the deploy loop through the SDK (deploy.loop.run with deploy.arm.XArm) -----------------------

WORLD_TO_BASE = np.array([[0.0, -1.0, 0.0, 0.05], [1.0, 0.0, 0.0, -0.02], [0.0, 0.0, 1.0, 0.01], [0.0, 0.0, 0.0, 1.0]])
"""Sim world → arm base: 90° about z plus an offset, so a wrong frame or unit cannot pass."""
FLANGE_DOWN = np.diag([1.0, -1.0, -1.0])
TCP_OFFSET_M = np.array([0.0, 0.0, 0.172])
BOX_LOW, BOX_HIGH = np.array([0.25, -0.20, 0.08]), np.array([0.60, 0.20, 0.36])
XARM7 = scene_lib.build_scene(EnvConfig()).mj_model
HOME_JOINTS_RAD = np.asarray(scene_lib.HOME_QPOS)
HOME_M = scene_lib.tcp_pose(XARM7, HOME_JOINTS_RAD)[0]
JOINT_SPEED_RAD_S = math.pi
"""The SDK's fastest joint speed: a home move from the joints the simulated arm reports as zero takes 0.4 s."""


def base_mm(point_m) -> np.ndarray:
    """A world point (3,) m in the arm base frame, mm (what the controller sees)."""
    return (WORLD_TO_BASE[:3, :3] @ point_m + WORLD_TO_BASE[:3, 3]) * 1000


def tcp_pose_mm_rad(joints) -> np.ndarray:
    """The xArm7's forward kinematics as the controller reports it: the tool centre point and the
    flange (``link7``) rotation at ``joints`` (7,) rad, in the base frame, (6,) [mm, rad]."""
    data = mujoco.MjData(XARM7)
    data.qpos[:] = joints
    mujoco.mj_kinematics(XARM7, data)
    flange = WORLD_TO_BASE[:3, :3] @ data.xmat[XARM7.body("link7").id].reshape(3, 3)
    return np.concatenate([base_mm(data.site_xpos[XARM7.site(scene_lib.TCP_SITE).id]), np.deg2rad(rpy_deg(flange))])


def world_m(point_mm) -> np.ndarray:
    """The inverse of ``base_mm``."""
    return WORLD_TO_BASE[:3, :3].T @ (np.asarray(point_mm) / 1000 - WORLD_TO_BASE[:3, 3])


class ScriptedPolicy:
    """Stands in for ``deploy.policy.Policy``: always pushes the ee along ``action`` (3,) and
    predicts the simulated arm's ee exactly; on step ``fault_at`` (0-based) it calls ``fault()`` first."""

    def __init__(self, controller, action, fault_at: int = -1, fault=None):
        self.meta = types.SimpleNamespace(
            home_m=HOME_M,
            home_joints_rad=HOME_JOINTS_RAD,
            success_threshold_m=0.02,
            max_step_m=0.02,
            cameras=(types.SimpleNamespace(),),
        )
        self.controller, self.action = controller, np.asarray(action, np.float64)
        self.fault_at, self.fault, self.calls = fault_at, fault, 0

    def preprocess(self, frame, intr, camera=0):
        return frame[::8, ::8]

    def __call__(self, image, goal):
        if self.calls == self.fault_at:
            self.fault()
        self.calls += 1
        return self.action, world_m(self.controller.sample().pose[:3])


class StreamingCamera:
    """A ``deploy.camera.RealSenseCamera`` on a software RealSense streaming one rendered frame at 30 fps."""

    def __init__(self):
        self.sim = SoftwareCamera(Intrinsics(640, 480, fx=615.0, fy=615.0, ppx=320.0, ppy=240.0))
        image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        self._streaming = self.sim.streaming(lambda: image)
        self._streaming.__enter__()
        self.camera = RealSenseCamera(device=self.sim.device)

    def read(self):
        return self.camera.read()

    def close(self):
        self.camera.close()
        self._streaming.__exit__(None, None, None)


@pytest.fixture
def bench():
    """A controller with the TCP 5 cm off home and the xArm7's forward kinematics, and the
    deploy-side ``XArm`` for it."""
    start = CartesianArmAt(base_mm(HOME_M + [0.0, 0.05, 0.0]))
    with xarm_sim.serve(arm=start, tcp_offset=(*TCP_OFFSET_M * 1000, 0, 0, 0)) as ctl:
        arm = XArm(
            ctl.host, WORLD_TO_BASE, TCP_OFFSET_M, FLANGE_DOWN, speed_m_s=0.5, joint_speed_rad_s=JOINT_SPEED_RAD_S
        )
        yield ctl, arm
        arm.close()


def CartesianArmAt(xyz_mm) -> xarm_sim.CartesianArm:
    """A simulated arm with the gripper pointing down (roll 180°, yaw of the base rotation) at
    ``xyz_mm`` that executes joint moves by the xArm7's forward kinematics (``tcp_pose_mm_rad``)."""
    yaw = math.atan2(WORLD_TO_BASE[1, 0], WORLD_TO_BASE[0, 0])
    return xarm_sim.CartesianArm(pose=(*xyz_mm, math.pi, 0.0, -yaw), tcp_pose_of=tcp_pose_mm_rad)


def test_xarm_move_joints_through_the_sdk(bench):
    """``XArm.move_joints`` sends the joint-move register with the angles (rad) and joint speed
    (rad/s), returns when the move is done, and the reported joints and pose arrive; a controller
    error during the move is an ``ArmError``."""
    controller, arm = bench
    arm.connect()
    began = time.monotonic()
    arm.move_joints(HOME_JOINTS_RAD)
    assert time.monotonic() - began >= np.max(HOME_JOINTS_RAD) / JOINT_SPEED_RAD_S  # waited for the move
    ((command,),) = [[c for c in controller.commands if c.name == "MOVE_JOINT"]]
    assert command.register == 23
    np.testing.assert_allclose(command.values[:7], HOME_JOINTS_RAD, atol=1e-6)
    assert command.values[7] == pytest.approx(JOINT_SPEED_RAD_S) and command.values[8] == pytest.approx(
        arm.joint_accel_rad_s2
    )
    np.testing.assert_allclose(arm.joint_angles(), HOME_JOINTS_RAD, atol=1e-6)
    np.testing.assert_allclose(arm.position(), HOME_M, atol=1e-4)
    assert wait_until(lambda: np.allclose(arm.api.angles, np.degrees(HOME_JOINTS_RAD), atol=1e-4))  # reports, deg
    arm.move_to(HOME_M + [0.0, 0.05, 0.0])  # away, so the next joint move takes a while
    threading.Timer(0.1, controller.inject_error, (22,)).start()
    with pytest.raises(ArmError, match="set_servo_angle returned code"):
        arm.move_joints(HOME_JOINTS_RAD)
    assert wait_until(lambda: arm.api.error_code == 22) and controller.sample().queued == 0  # stopped


def test_a_joint_move_without_forward_kinematics_is_refused():
    with xarm_sim.serve(tcp_offset=(*TCP_OFFSET_M * 1000, 0, 0, 0)) as controller:
        arm = XArm(controller.host, WORLD_TO_BASE, TCP_OFFSET_M, FLANGE_DOWN)
        arm.connect()
        try:
            with pytest.raises(ArmError, match="set_servo_angle returned code 10"):
                arm.move_joints(HOME_JOINTS_RAD)
        finally:
            arm.close()


def run_loop(arm, policy, goals, max_steps: int = 6):
    limits = safety.Limits(BOX_LOW, BOX_HIGH, 0.02)
    view = types.SimpleNamespace(check=lambda tcp, what: None)  # the view guard is not under test here
    options = loop.Options(max_steps=max_steps)
    with tempfile.TemporaryDirectory() as logs:
        return loop.run(
            policy, [StreamingCamera()], arm, goals, limits, view, options, pathlib.Path(logs), say=lambda _: None
        )


def test_deploy_loop_moves_in_metres_and_never_sends_a_target_outside_the_box(bench):
    controller, arm = bench
    results, cause = run_loop(arm, ScriptedPolicy(controller, [1.0, 0.0, 0.0]), [BOX_LOW + 0.01], max_steps=12)
    assert cause is None and results[0].steps == 12
    targets = [world_m(move[:3]) for move in controller.moves()]
    assert len(targets) == 12  # one move per step, after the joint move home
    np.testing.assert_allclose(controller.joint_moves(), [HOME_JOINTS_RAD], atol=1e-6)
    assert np.all(np.abs(targets[0] - HOME_M) <= 0.02 + 1e-4)  # the first step starts from home
    assert all(np.all(t >= BOX_LOW - 1e-4) and np.all(t <= BOX_HIGH + 1e-4) for t in targets)
    assert targets[-1][0] == pytest.approx(BOX_HIGH[0], abs=1e-4)  # the policy pushed past the box
    assert np.all(np.abs(np.diff(targets, axis=0)) <= 0.02 + 1e-4)
    np.testing.assert_allclose(results[0].final_ee, world_m(controller.sample().pose[:3]), atol=1e-4)
    np.testing.assert_allclose(controller.moves()[-1][3:], controller.moves()[0][3:], atol=1e-4)  # gripper kept down


def test_deploy_loop_refuses_a_goal_outside_the_box_before_commanding(bench):
    controller, arm = bench
    results, cause = run_loop(arm, ScriptedPolicy(controller, [0.0, 0.0, 0.0]), [BOX_HIGH + 0.05])
    assert results == [] and "outside the workspace box" in cause
    assert controller.moves() == controller.joint_moves() == []


@pytest.mark.parametrize(
    "fault, expected, stop_sent",
    [
        (lambda ctl: ctl.inject_error(22), "error code 22", True),
        (lambda ctl: ctl.press_emergency_stop(), "error code 1", True),
        (lambda ctl: ctl.drop_connections(), "connection", False),
    ],
)
def test_deploy_loop_stops_with_the_cause_of_a_controller_fault(bench, fault, expected, stop_sent):
    controller, arm = bench

    def fault_and_wait_for_the_sdk():
        fault(controller)
        wait_until(lambda: not arm.api.connected or arm.api.error_code != 0, timeout_s=3.0)

    policy = ScriptedPolicy(controller, [0.0, 1.0, 0.0], fault_at=2, fault=fault_and_wait_for_the_sdk)
    results, cause = run_loop(arm, policy, [BOX_LOW + 0.01])
    assert results == [] and expected in cause and "\n" not in cause
    assert len(controller.joint_moves()) == 1 and len(controller.moves()) == 2  # home, steps before the fault
    names = [(c.name, c.values) for c in controller.commands]
    last_move = max(i for i, (name, _) in enumerate(names) if name in ("MOVE_LINE", "MOVE_JOINT"))
    assert (("SET_STATE", (xarm_sim.STOPPED,)) in names[last_move:]) == stop_sent  # the loop stopped the arm
