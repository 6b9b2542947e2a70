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
from mjx_reach import patterns
from mjx_reach.config import CameraConfig, EnvConfig

ASSET_DIR = pathlib.Path(__file__).parent / "assets" / "ufactory_xarm7"
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
HOME_QPOS = (0.0, -0.247, 0.0, 0.909, 0.0, 1.15644, 0.0)
"""Menagerie's ``home`` keyframe for the 7 arm joints, radians."""
TCP_SITE = "link_tcp"
TCP_BODY = "xarm_gripper_base_link"
MARKER_GROUP = 5
UNRENDERED_GROUP = 4
"""A geom group no render context draws (``align`` moves the bench there to see the arm alone)."""
POLICY_GROUPS = (0, 1, 2)
OVERVIEW_CAMERA = CameraConfig(pos=(1.30, -1.00, 0.85), lookat=(0.35, 0.0, 0.18), fovy_deg=45.0)

# Nominal colours (RGBA) of the plain bench; randomization jitters them per episode.
TABLE_RGBA = (0.55, 0.42, 0.30, 1.0)
FLOOR_RGBA = (0.35, 0.35, 0.38, 1.0)
BACKGROUND_RGBA = (0.80, 0.80, 0.78, 1.0)
MARKER_RGBA = (0.95, 0.10, 0.10, 1.0)
COLOURED_GEOMS = ("table", "floor", "background")
KEY_LIGHT_DIR = (0.3, 0.4, -1.0)
TABLE_END_Y_M = 0.75
"""The table top's far edge (world y), metres (the table spans y ±0.75, its top at z = 0)."""
FLOOR_TOP_Z_M = -0.75
"""The floor's top (world z), metres."""
WALL_QUAT = (np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0)
"""The wall's and posters' orientation: their thin local z axis points at the arm (world -y), so a
texture spans their faces evenly."""
WALL_HALF_THICKNESS_M = 0.01
POSTER_HALF_THICKNESS_M = 0.004
HIDDEN_POS = (0.0, 0.0, -5.0)
"""Where the distractor pool waits below the floor (out of every view) while unused."""

# The distractor pool (randomize.sample places, sizes, colours or hides each per episode and world):
# (name, geom type). Training draws OBJECTS, POSTERS and PERSON; HELD_OUT_OBJECTS and HELD_OUT_PERSON
# are shapes only the held-out benches show (robustness.py).
_BOX, _CYL, _SPHERE = mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_SPHERE
_CAPSULE, _ELLIPSOID = mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_ELLIPSOID
OBJECTS = (
    ("box0", _BOX),
    ("box1", _BOX),
    ("cylinder0", _CYL),
    ("cylinder1", _CYL),
    ("sphere0", _SPHERE),
    ("panel0", _BOX),
)
HELD_OUT_OBJECTS = (
    ("capsule0", _CAPSULE),
    ("capsule1", _CAPSULE),
    ("ellipsoid0", _ELLIPSOID),
    ("ellipsoid1", _ELLIPSOID),
)
POSTERS = (("poster0", _BOX), ("poster1", _BOX))
PERSON = (("person_body", _BOX), ("person_head", _BOX))
HELD_OUT_PERSON = (("held_out_person_body", _CAPSULE), ("held_out_person_head", _SPHERE))


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
    """(3,) geom ids of the bench surfaces: table, floor, wall (``COLOURED_GEOMS``)."""
    key_light: int
    wall_geom: int
    objects: np.ndarray
    """Geom ids of ``OBJECTS``."""
    held_out_objects: np.ndarray
    posters: np.ndarray
    person: np.ndarray
    """(2,) geom ids of ``PERSON``: body, head."""
    held_out_person: np.ndarray
    train_materials: np.ndarray
    """Material ids of the ``patterns.TRAIN_FAMILIES`` textures."""
    held_out_materials: np.ndarray
    """Material ids of the ``patterns.HELD_OUT_FAMILIES`` textures."""

    @property
    def posed_geoms(self) -> np.ndarray:
        """Geoms whose pose the randomization sets per world: the wall, then the distractor pool in
        ``OBJECTS``, ``HELD_OUT_OBJECTS``, ``POSTERS``, ``PERSON``, ``HELD_OUT_PERSON`` order."""
        return np.concatenate(
            [[self.wall_geom], self.objects, self.held_out_objects, self.posters, self.person, self.held_out_person]
        )


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
        ("table", [0.6, TABLE_END_Y_M, 0.02], [0.35, 0.0, -0.02], [1, 0, 0, 0], TABLE_RGBA),
        ("floor", [3.0, 3.0, 0.01], [0.0, 0.0, FLOOR_TOP_Z_M - 0.01], [1, 0, 0, 0], FLOOR_RGBA),
        ("background", [3.0, 2.0, WALL_HALF_THICKNESS_M], [0.3, 1.0, 0.5], list(WALL_QUAT), BACKGROUND_RGBA),
    ]
    for name, size, pos, quat, rgba in boxes:
        world.add_geom(
            name=name,
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=size,
            pos=pos,
            quat=quat,
            rgba=list(rgba),
            contype=0,
            conaffinity=0,
        )
    for name, geom_type in OBJECTS + HELD_OUT_OBJECTS + POSTERS + PERSON + HELD_OUT_PERSON:
        world.add_geom(
            name=name, type=geom_type, size=[0.05, 0.05, 0.05], pos=list(HIDDEN_POS), contype=0, conaffinity=0
        )
    for name, image in _texture_bank():
        texture = spec.add_texture(
            name=f"tex_{name}", type=mujoco.mjtTexture.mjTEXTURE_2D, width=image.shape[1], height=image.shape[0]
        )
        texture.nchannel = 3
        texture.data = image.tobytes()
        material = spec.add_material(name=f"mat_{name}", texuniform=True, texrepeat=[2.0, 2.0])
        material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = f"tex_{name}"

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


def _texture_bank() -> list[tuple[str, np.ndarray]]:
    """The training families' images, then the held-out families' (``patterns.bank``)."""
    return patterns.bank(patterns.TRAIN_FAMILIES, patterns.TRAIN_SEED) + patterns.bank(
        patterns.HELD_OUT_FAMILIES, patterns.HELD_OUT_SEED
    )


def build_scene(env: EnvConfig) -> Scene:
    """Compile the scene for ``env`` and collect the ids the environment uses."""
    return scene_of(build_spec(env).compile())


def scene_of(mjm: mujoco.MjModel) -> Scene:
    """The ``Scene`` of a model compiled from ``build_spec`` (possibly with more added to it)."""
    policy_names = [n for n in ("policy", "policy2") if mujoco.mj_name2id(mjm, mujoco.mjtObj.mjOBJ_CAMERA, n) >= 0]
    geoms = lambda pool: np.array([mjm.geom(name).id for name, _ in pool])
    materials = lambda families: np.array([mjm.material(f"mat_{name}").id for name in patterns.names(families)])
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
        wall_geom=mjm.geom("background").id,
        objects=geoms(OBJECTS),
        held_out_objects=geoms(HELD_OUT_OBJECTS),
        posters=geoms(POSTERS),
        person=geoms(PERSON),
        held_out_person=geoms(HELD_OUT_PERSON),
        train_materials=materials(patterns.TRAIN_FAMILIES),
        held_out_materials=materials(patterns.HELD_OUT_FAMILIES),
    )


def tcp_pose(mjm: mujoco.MjModel, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tool centre point position (3,) [m] and rotation (3, 3) at arm joint angles ``qpos`` (7,) [rad]."""
    d = mujoco.MjData(mjm)
    d.qpos[:] = qpos
    mujoco.mj_kinematics(mjm, d)
    sid = mjm.site(TCP_SITE).id
    return d.site_xpos[sid].copy(), d.site_xmat[sid].reshape(3, 3).copy()
