"""Digital twin of the calibration bench: an xArm7 with an ArUco marker on its gripper and a camera
at a pose the calibrator does not know, rendered at a real camera's size.

The marker (``add_marker``) is built from thin boxes, white plate and black cells, attached to the
gripper body in this scene only (never in the training scene). ``CalibrationTwin`` is the
``deploy.calibrate.CalibrationArm`` and ``deploy.calibrate.Camera`` of ``deploy.calibrate.run``:
``move_to(target, rotation)`` solves position + orientation IK (damped least squares on MuJoCo's
site Jacobian, CPU) and sets the joints, as the real arm in position mode once a move completes;
``read()`` renders the true camera at ``FRAME_HW`` with the MJX-Warp renderer (nominal scene) plus
Gaussian pixel noise. The tool frame is the scene's tool centre point site (``scene.TCP_SITE``).

Needs the train extra (JAX, MuJoCo).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from mjx_reach import camera as camera_model
from mjx_reach import randomize, render, robustness
from mjx_reach import scene as scene_lib
from mjx_reach.config import CameraConfig, EnvConfig
from mjx_reach.contract import ArmError
from mjx_reach.standins.controller import SimulatedController

FRAME_HW = (480, 640)
"""Rendered frame (height, width), pixels (a RealSense D435 colour stream)."""
MARKER_BODY = scene_lib.TCP_BODY
MARKER_POS = (0.0, -0.097, 0.05)
"""Marker centre in the gripper body's frame, m: on the outside of a finger, facing the camera."""
MARKER_XMAT = ((-1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, -1.0, 0.0))
"""Marker-to-gripper-body rotation: the printed face looks along the body's -y, its top along -z
(towards the default camera when the gripper points down; ``marker_mount_facing`` turns it to another
side of the gripper)."""
IK_ITERATIONS = 200
IK_TOLERANCE = 1e-6
"""IK stops when position (m) and rotation (rad) errors are below this."""


def add_marker(
    spec: mujoco.MjSpec,
    bits: np.ndarray,
    size_m: float,
    body: str = MARKER_BODY,
    pos: np.ndarray = MARKER_POS,
    xmat: np.ndarray = MARKER_XMAT,
) -> None:
    """Attach a square marker to ``body`` of ``spec`` at ``pos`` (m) and rotation ``xmat`` (marker to
    body): its cells ``bits`` (n, n) bool (True = white, row 0 at the top, the black border included;
    ``deploy.calibrate.MarkerSpec.bits``) over ``size_m`` metres, as a white plate with a one-cell
    quiet zone and one thin black box per run of black cells in a row."""
    cells = bits.shape[0]
    cell = size_m / cells
    rot = np.asarray(xmat, np.float64)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rot.ravel())
    parent = spec.body(body)

    def box(name, centre_m, half_m, rgba):
        parent.add_geom(
            name=name,
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=list(np.asarray(pos) + rot @ centre_m),
            quat=list(quat),
            size=list(half_m),
            rgba=rgba,
            contype=0,
            conaffinity=0,
            group=0,
        )

    half_plate = (cells + 2) * cell / 2.0
    box("aruco_plate", np.array([0.0, 0.0, -0.001]), [half_plate, half_plate, 0.001], [0.95, 0.95, 0.95, 1.0])
    for row in range(cells):
        col = 0
        while col < cells:
            if bits[row, col]:
                col += 1
                continue
            end = col
            while end < cells and not bits[row, end]:
                end += 1
            centre = np.array([((col + end) / 2.0 - cells / 2.0) * cell, (cells / 2.0 - row - 0.5) * cell, 0.0005])
            box(f"aruco_{row}_{col}", centre, [(end - col) * cell / 2.0, cell / 2.0, 0.0005], [0.03, 0.03, 0.03, 1.0])
            col = end


def marker_mount_facing(body_xmat: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The marker mount (``MARKER_POS`` (3,) m, ``MARKER_XMAT`` (3, 3)) moved to the side of the
    gripper that faces ``direction`` (3,) (world frame) best: turned about the gripper body's z axis
    by a multiple of 90 deg, as a marker is stuck on one of the gripper's four flat sides.
    ``body_xmat`` (3, 3) is the gripper body's rotation in the world frame."""
    toward = np.asarray(body_xmat, np.float64).T @ np.asarray(direction, np.float64)
    quarter_turns = np.round(np.arctan2(toward[0], -toward[1]) / (np.pi / 2.0))
    turn = camera_model.rotvec_to_xmat([0.0, 0.0, quarter_turns * np.pi / 2.0])
    return turn @ np.asarray(MARKER_POS, np.float64), turn @ np.asarray(MARKER_XMAT, np.float64)


def random_true_camera(
    rng: np.random.Generator, base: CameraConfig, pos_m: float = 0.05, rot_deg: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """A camera pose near ``base``: position (3,) m offset uniformly by up to ``pos_m`` per axis and
    rotation (3, 3) turned by up to ``rot_deg`` about each camera axis (roll included)."""
    pos = np.asarray(base.pos, np.float64) + rng.uniform(-pos_m, pos_m, 3)
    turn = camera_model.rotvec_to_xmat(np.deg2rad(rng.uniform(-rot_deg, rot_deg, 3)))
    return pos, camera_model.camera_xmat(base.pos, base.lookat, base.roll_deg) @ turn


class CalibrationTwin(SimulatedController):
    """The arm, marker and camera of the calibration bench in simulation.

    Args:
      env: the scene's config (workspace, nominal camera: its field of view is the true one).
      cam_pos, cam_xmat: the true camera pose (3,) m and camera-to-world rotation (3, 3).
      marker_bits, marker_size_m: the marker, on the side of the gripper that faces the camera at
        home (``add_marker``, ``marker_mount_facing``).
      pixel_noise: std of Gaussian noise on each frame's pixels, 0..255 levels.
      seed: seed of the pixel noise.
      bench: the twin bench the arm stands on (``robustness.TWIN_BENCHES``).
    """

    name = "calibration twin"

    def __init__(
        self,
        env: EnvConfig,
        cam_pos: np.ndarray,
        cam_xmat: np.ndarray,
        marker_bits: np.ndarray,
        marker_size_m: float,
        pixel_noise: float = 3.0,
        seed: int = 0,
        bench: str = "plain",
    ):
        super().__init__()
        spec = scene_lib.build_spec(env)
        home = mujoco.MjData(bare := spec.compile())
        home.qpos[[bare.joint(j).qposadr[0] for j in scene_lib.ARM_JOINTS]] = scene_lib.HOME_QPOS
        mujoco.mj_kinematics(bare, home)
        body = bare.body(MARKER_BODY).id
        mount = marker_mount_facing(home.xmat[body].reshape(3, 3), np.asarray(cam_pos) - home.xpos[body])
        add_marker(spec, marker_bits, marker_size_m, pos=mount[0], xmat=mount[1])
        self.mj_model = mjm = spec.compile()
        self.mj_data = mujoco.MjData(mjm)
        self.camera_id = mjm.camera("policy").id
        self.site = mjm.site(scene_lib.TCP_SITE).id
        self.qposadr = np.array([mjm.joint(j).qposadr[0] for j in scene_lib.ARM_JOINTS])
        self.dofadr = np.array([mjm.joint(j).dofadr[0] for j in scene_lib.ARM_JOINTS])
        self.ranges = np.array([mjm.joint(j).range for j in scene_lib.ARM_JOINTS])
        self.cam_pos, self.cam_xmat = np.asarray(cam_pos, np.float64), np.asarray(cam_xmat, np.float64)
        self.intrinsics = camera_model.intrinsics_for_fovy(env.camera.fovy_deg, *FRAME_HW)
        self.pixel_noise = pixel_noise
        self.rng = np.random.default_rng(seed)
        self.renderer = ArmRenderer(mjm, self.camera_id, FRAME_HW, bench=bench)
        self.set_joints(scene_lib.HOME_QPOS)

    # --- the arm (deploy.calibrate.CalibrationArm) -----------------------------------------------
    def set_joints(self, qpos: np.ndarray) -> None:
        self.mj_data.qpos[self.qposadr] = qpos
        mujoco.mj_kinematics(self.mj_model, self.mj_data)
        mujoco.mj_comPos(self.mj_model, self.mj_data)

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        self.check()
        d = self.mj_data
        return d.site_xpos[self.site].copy(), d.site_xmat[self.site].reshape(3, 3).copy()

    def position(self) -> np.ndarray:
        return self.pose()[0]

    def joint_angles(self) -> np.ndarray:
        self.check()
        return self.mj_data.qpos[self.qposadr].copy()

    def move_to(self, target: np.ndarray, rotation: np.ndarray | None = None) -> None:
        """Solve IK for ``target`` (3,) m and tool rotation ``rotation`` (3, 3) (None: the home
        pose's, gripper pointing down) and set the joints; ``ArmError`` if it is not reachable."""
        self.check()
        target = np.asarray(target, np.float64)
        rotation = np.asarray(
            scene_lib.tcp_pose(self.mj_model, scene_lib.HOME_QPOS)[1] if rotation is None else rotation, np.float64
        )
        m, d = self.mj_model, self.mj_data
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        self.set_joints(scene_lib.HOME_QPOS)  # the controller's IK, not the path: start from home every time
        for _ in range(IK_ITERATIONS):
            err = np.concatenate(
                [
                    target - d.site_xpos[self.site],
                    camera_model.xmat_to_rotvec(rotation @ d.site_xmat[self.site].reshape(3, 3).T),
                ]
            )
            if np.max(np.abs(err)) < IK_TOLERANCE:
                return
            mujoco.mj_jacSite(m, d, jacp, jacr, self.site)
            jac = np.concatenate([jacp, jacr])[:, self.dofadr]
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
            self.set_joints(np.clip(d.qpos[self.qposadr] + dq, self.ranges[:, 0], self.ranges[:, 1]))
        raise ArmError(
            f"calibration twin: pose {np.round(target, 3).tolist()} m not reachable (IK error {np.max(np.abs(err)):.1e})"
        )

    # --- the camera (deploy.calibrate.Camera) ------------------------------------------------------
    def read(self) -> tuple[np.ndarray, camera_model.Intrinsics]:
        frame = self.renderer.render(self.mj_data.qpos[self.qposadr], self.cam_pos, self.cam_xmat)
        if self.pixel_noise > 0:
            frame = np.clip(np.rint(frame + self.rng.normal(0.0, self.pixel_noise, frame.shape)), 0, 255).astype(
                np.uint8
            )
        return frame, self.intrinsics


class ArmRenderer:
    """Renders the scene of ``mj_model`` at arm joint angles from a camera pose given per call:
    ``render(qpos (7,) rad, cam_pos (3,) m, cam_xmat (3, 3)) → (H, W, C) uint8``, through camera
    ``camera_id`` (its field of view) on the twin bench ``bench`` (``robustness.twin_bench``: the
    nominal look by default); C is 3, or 4 with a depth channel over ``depth_range_m``
    (``render.Camera``)."""

    def __init__(
        self,
        mj_model: mujoco.MjModel,
        camera_id: int,
        image_hw=FRAME_HW,
        geom_groups=scene_lib.POLICY_GROUPS,
        depth_range_m=None,
        bench: str = "plain",
    ):
        mx = mjx.put_model(mj_model, impl="warp")
        camera = render.Camera(mj_model, 1, [camera_id], image_hw, geom_groups, depth_range_m=depth_range_m)
        scene = scene_lib.scene_of(mj_model)
        nominal = robustness.twin_bench(scene, bench)
        data0 = mjx.make_data(mj_model, impl="warp")
        qposadr = jnp.asarray([mj_model.joint(j).qposadr[0] for j in scene_lib.ARM_JOINTS])

        def one(qpos, cam_pos, cam_xmat):
            d = mjx.kinematics(mx, data0.replace(qpos=data0.qpos.at[qposadr].set(qpos)))
            params = nominal.replace(
                cam_xpos=nominal.cam_xpos.at[camera_id].set(cam_pos),
                cam_xmat=nominal.cam_xmat.at[camera_id].set(cam_xmat),
            )
            return camera.render(*randomize.apply(mx, d, params, scene))[0]

        self._render = jax.jit(jax.vmap(one))

    def render(self, qpos: np.ndarray, cam_pos: np.ndarray, cam_xmat: np.ndarray) -> np.ndarray:
        args = (jnp.asarray(v, jnp.float32)[None] for v in (qpos, cam_pos, cam_xmat))
        return np.asarray(self._render(*args)[0])
