"""The xArm7 reach scene as an ``mujoco.MjModel`` built from the config (no JAX import).

World frame: the arm base sits at the origin on a table whose top is z=0; +x points away from the
arm's front, +z up. The Menagerie xArm7 (BSD-3, ``assets/ufactory_xarm7/LICENSE``) keeps its
gripper meshes, but the gripper joints are welded (removed) to save physics: the model has the 7
arm joints only. Contacts are off: the reach task needs none.

Cameras: ``policy`` (and ``policy2`` when ``env.second_camera``) are what the actor sees;
``overview`` is a fixed third-person view for videos. The goal marker is a mocap sphere in geom
group ``MARKER_GROUP``, which only the overview render context draws.
"""

from __future__ import annotations

import dataclasses
import pathlib

import mujoco
import numpy as np

from mjx_reach import camera as camera_model
from mjx_reach.config import CameraConfig, EnvConfig

ASSET_DIR = pathlib.Path(__file__).parent / "assets" / "ufactory_xarm7"
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
HOME_QPOS = (0.0, -0.247, 0.0, 0.909, 0.0, 1.15644, 0.0)
"""Menagerie's ``home`` keyframe for the 7 arm joints, radians."""
TCP_SITE = "link_tcp"
TCP_BODY = "xarm_gripper_base_link"
MARKER_GROUP = 5
POLICY_GROUPS = (0, 1, 2)
OVERVIEW_CAMERA = CameraConfig(pos=(1.30, -1.00, 0.85), lookat=(0.35, 0.0, 0.18), fovy_deg=45.0)

# Nominal colours (RGBA) of the plain bench; randomization jitters them per episode.
TABLE_RGBA = (0.55, 0.42, 0.30, 1.0)
FLOOR_RGBA = (0.35, 0.35, 0.38, 1.0)
BACKGROUND_RGBA = (0.80, 0.80, 0.78, 1.0)
MARKER_RGBA = (0.95, 0.10, 0.10, 1.0)
COLOURED_GEOMS = ("table", "floor", "background")
KEY_LIGHT_DIR = (0.3, 0.4, -1.0)


@dataclasses.dataclass(frozen=True)
class Scene:
    """The compiled model and the ids the env needs."""

    mj_model: mujoco.MjModel
    policy_cameras: tuple[int, ...]
    overview_camera: int
    tcp_site: int
    tcp_body: int
    marker_mocap: int
    arm_qposadr: np.ndarray
    coloured_geoms: np.ndarray
    key_light: int


def _add_camera(body, name: str, cam: CameraConfig) -> None:
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, camera_model.camera_xmat(cam.pos, cam.lookat, cam.roll_deg).ravel())
    body.add_camera(name=name, pos=list(cam.pos), quat=list(quat), fovy=cam.fovy_deg)


def _weld_gripper(spec: mujoco.MjSpec) -> None:
    """Remove the gripper's joints, tendon, actuator and equality constraints."""
    for eq in list(spec.equalities):
        spec.delete(eq)
    for tendon in list(spec.tendons):
        spec.delete(tendon)
    for act in list(spec.actuators):
        if act.name not in {f"act{i}" for i in range(1, 8)}:
            spec.delete(act)
    for joint in list(spec.joints):
        if joint.name not in ARM_JOINTS:
            spec.delete(joint)
    for key in list(spec.keys):
        spec.delete(key)


def build_spec(env: EnvConfig) -> mujoco.MjSpec:
    """The scene as an editable ``MjSpec``."""
    spec = mujoco.MjSpec.from_file(str(ASSET_DIR / "xarm7.xml"))
    spec.modelname = "xarm7_reach"
    _weld_gripper(spec)
    spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    spec.option.timestep = env.physics_dt_s
    spec.body("link_base").pos = [0.0, 0.0, 0.0]

    world = spec.worldbody
    # (name, half sizes, centre, colour) of the static boxes: table top, floor, plain background, metres.
    boxes = [
        ("table", [0.6, 0.75, 0.02], [0.35, 0.0, -0.02], TABLE_RGBA),
        ("floor", [3.0, 3.0, 0.01], [0.0, 0.0, -0.76], FLOOR_RGBA),
        ("background", [3.0, 0.01, 2.0], [0.3, 1.0, 0.5], BACKGROUND_RGBA),
    ]
    for name, size, pos, rgba in boxes:
        world.add_geom(
            name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=size, pos=pos, rgba=list(rgba), contype=0, conaffinity=0
        )

    marker = world.add_body(name="goal_marker", mocap=True, pos=[0.4, 0.0, 0.2])
    marker.add_geom(
        name="goal_marker",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[0.02, 0, 0],
        rgba=list(MARKER_RGBA),
        group=MARKER_GROUP,
        contype=0,
        conaffinity=0,
    )

    world.add_light(
        name="key",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        pos=[0.3, -0.5, 2.0],
        dir=list(KEY_LIGHT_DIR),
        diffuse=[0.7, 0.7, 0.7],
        ambient=[0.25, 0.25, 0.25],
        specular=[0.1, 0.1, 0.1],
        castshadow=1,
    )
    world.add_light(
        name="fill",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        pos=[0.0, -2.0, 1.0],
        dir=[0.0, 1.0, -0.3],
        diffuse=[0.25, 0.25, 0.25],
        specular=[0.0, 0.0, 0.0],
        castshadow=0,
    )

    _add_camera(world, "policy", env.camera)
    if env.second_camera:
        _add_camera(world, "policy2", env.camera2)
    _add_camera(world, "overview", OVERVIEW_CAMERA)
    return spec


def build_scene(env: EnvConfig) -> Scene:
    """Compile the scene for ``env`` and collect the ids the environment uses."""
    mjm = build_spec(env).compile()
    policy_names = ["policy", "policy2"] if env.second_camera else ["policy"]
    return Scene(
        mj_model=mjm,
        policy_cameras=tuple(mjm.camera(n).id for n in policy_names),
        overview_camera=mjm.camera("overview").id,
        tcp_site=mjm.site(TCP_SITE).id,
        tcp_body=mjm.body(TCP_BODY).id,
        marker_mocap=int(mjm.body_mocapid[mjm.body("goal_marker").id]),
        arm_qposadr=np.array([mjm.joint(j).qposadr[0] for j in ARM_JOINTS]),
        coloured_geoms=np.array([mjm.geom(g).id for g in COLOURED_GEOMS]),
        key_light=mjm.light("key").id,
    )


def tcp_pose(mjm: mujoco.MjModel, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tool centre point position (3,) [m] and rotation (3, 3) at arm joint angles ``qpos`` (7,) [rad]."""
    d = mujoco.MjData(mjm)
    d.qpos[:] = qpos
    mujoco.mj_kinematics(mjm, d)
    sid = mjm.site(TCP_SITE).id
    return d.site_xpos[sid].copy(), d.site_xmat[sid].reshape(3, 3).copy()
