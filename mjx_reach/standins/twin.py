"""Digital twin of the bench for deploy dry runs and tests: a simulated xArm7 and colour camera.

``TwinArm`` has the interface of ``deploy.arm.XArm`` (``deploy.arm.Arm``: tool centre point in
metres, sim world frame) and moves with ``ReachEnv.move`` (damped least-squares IK, gripper pointing
down), repeated until the ee settles on the target as the real arm does in position mode with
``wait=True``; its joint-space move (``move_joints``, the real arm's ``set_servo_angle``) sets the
joints. ``TwinCamera`` has the interface of ``deploy.camera`` (``deploy.loop.Camera``): it
renders one training (or bench) camera (``cameras``: one per policy camera, in the model's order)
at a real camera's size (``FRAME_HW``, 640x480 like a RealSense D435 colour stream) with the
intrinsics of that render (``camera.intrinsics_for_fovy`` of that camera's field of view), with the
nominal (un-randomized) scene and without pixel noise, for the deploy loop to preprocess like a
real frame.

Deploy imports this module only in ``--twin`` mode (it needs JAX and MuJoCo).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from mjx_reach import camera as camera_model
from mjx_reach import config as config_lib
from mjx_reach import randomize, render, robustness
from mjx_reach import scene as scene_lib
from mjx_reach.contract import CameraError, DeployError
from mjx_reach.env import ReachEnv
from mjx_reach.standins.controller import SimulatedController

FRAME_HW = (480, 640)
"""Rendered frame (height, width), pixels."""
SETTLE_TOLERANCE_M = 1e-3
"""A move is done when the ee is this close to its target, metres."""
SETTLE_MAX_MOVES = 20
"""At most this many ``ReachEnv.move`` control steps per ``move_to``."""


class TwinWorld:
    """One simulated world: the arm's joint state, its IK move and a ``frame_hw`` render of every
    policy camera on the twin bench ``bench`` (``robustness.TWIN_BENCHES``). Built from the training
    config (``from_metadata`` reads it from the ONNX)."""

    def __init__(self, cfg: config_lib.Config, frame_hw=FRAME_HW, bench: str = "plain"):
        self.env = ReachEnv(cfg, num_envs=1)
        scene = self.env.scene
        mjm = scene.mj_model
        self.frame_hw = tuple(frame_hw)
        env_cfg = cfg.env
        cams = [env_cfg.camera, env_cfg.camera2] if env_cfg.second_camera else [env_cfg.camera]
        self.intrinsics = tuple(camera_model.intrinsics_for_fovy(cam.fovy_deg, *self.frame_hw) for cam in cams)
        """Per policy camera, the intrinsics of its render."""
        self._camera = render.Camera(mjm, 1, scene.policy_cameras, self.frame_hw, scene_lib.POLICY_GROUPS)
        data0 = mjx.make_data(mjm, impl="warp")
        mx = self.env.mx
        self._pose = jax.jit(jax.vmap(lambda q: mjx.kinematics(mx, data0.replace(qpos=q))))
        self._move = jax.jit(jax.vmap(self.env.move))
        look = robustness.twin_bench(scene, bench)
        self._render = jax.jit(jax.vmap(lambda d: self._camera.render(*randomize.apply(mx, d, look, scene))[0]))
        self._frames: np.ndarray | None = None
        self.set_joints(scene_lib.HOME_QPOS)

    @classmethod
    def from_metadata(
        cls,
        raw: dict,
        frame_hw: tuple[int, int] = FRAME_HW,
        bench_path: str | os.PathLike | None = None,
        twin_bench: str = "plain",
    ) -> TwinWorld:
        """The twin of the run an exported model's metadata (``Policy.meta.raw``) describes, on the
        twin bench ``twin_bench``; with a bench file, its cameras where the bench has them
        (``config.with_bench_camera``)."""
        try:
            cfg = config_lib.from_dict(config_lib.Config, raw["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise DeployError(
                f"--twin: the model's metadata holds no usable training config ({type(e).__name__}: {e})"
            ) from None
        if bench_path is not None:
            try:
                cfg = config_lib.with_bench_camera(cfg, bench_path)
            except config_lib.ConfigError as e:
                raise DeployError(f"--twin: {e}") from None
        return cls(cfg, frame_hw, twin_bench)

    def tcp(self) -> np.ndarray:
        """Tool centre point (3,) m."""
        return np.asarray(self.data.site_xpos[0, self.env.scene.tcp_site], np.float64)

    def joints(self) -> np.ndarray:
        """Arm joint angles (7,) rad."""
        return np.asarray(self.data.qpos[0, self.env.scene.arm_qposadr], np.float64)

    def set_joints(self, qpos: np.ndarray) -> None:
        """Put the arm at joint angles ``qpos`` (7,) rad."""
        self.data = self._pose(jnp.asarray(qpos, jnp.float32)[None])
        self._frames = None

    def move(self, target: np.ndarray) -> None:
        """One control step of IK towards ``target`` (3,) m."""
        self.data = self._move(self.data, jnp.asarray(target, jnp.float32)[None])
        self._frames = None

    def render(self, camera: int = 0) -> np.ndarray:
        """Policy camera ``camera``'s view (H, W, 3) uint8 at ``frame_hw`` (every camera is rendered
        once per arm pose)."""
        if self._frames is None:
            self._frames = np.asarray(self._render(self.data)[0])
        return self._frames[..., 3 * camera : 3 * camera + 3]


class TwinArm(SimulatedController):
    """``deploy.arm.Arm`` on a ``TwinWorld`` (connection, stop and error state: ``SimulatedController``)."""

    name = "twin arm"

    def __init__(self, world: TwinWorld):
        super().__init__()
        self.world = world

    def position(self) -> np.ndarray:
        self.check()
        return self.world.tcp()

    def move_to(self, target: np.ndarray) -> None:
        self.check()
        target = np.asarray(target, np.float64)
        for _ in range(SETTLE_MAX_MOVES):
            self.world.move(target)
            if np.linalg.norm(self.world.tcp() - target) < SETTLE_TOLERANCE_M:
                break

    def move_joints(self, angles_rad: np.ndarray) -> None:
        self.check()
        self.world.set_joints(np.asarray(angles_rad, np.float64))


class TwinCamera:
    """``deploy.loop.Camera`` on policy camera ``index`` of a ``TwinWorld``: ``read()`` → (frame
    (480, 640, 3) uint8 RGB, intrinsics)."""

    def __init__(self, world: TwinWorld, index: int = 0):
        self.world = world
        self.index = index
        self.streaming = True

    def read(self) -> tuple[np.ndarray, camera_model.Intrinsics]:
        if not self.streaming:
            raise CameraError(f"twin camera {self.index + 1}: the stream is stopped")
        return self.world.render(self.index), self.world.intrinsics[self.index]

    def close(self) -> None:
        self.streaming = False


def cameras(world: TwinWorld) -> list[TwinCamera]:
    """A ``TwinCamera`` per policy camera of ``world``, in the model's camera order."""
    return [TwinCamera(world, k) for k in range(len(world.intrinsics))]
