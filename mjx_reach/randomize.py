"""Per-episode, per-environment domain randomization, in-graph.

``sample`` draws a ``DomainParams`` (one world's model fields and camera/light poses) from a key;
the env carries it in its ``State`` so every world keeps its own look for a whole episode, and
``apply`` puts it into the model and data right before rendering. Under ``vmap`` the model fields
get a leading world axis, which the MJX-Warp renderer reads per world.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import mjx

from mjx_reach import scene as scene_lib
from mjx_reach.config import RandomizationConfig
from mjx_reach.scene import Scene

KEY_RGB = (0.0, 1.0, 0.0)
"""Colour of the bench surfaces in green-screen mode (``key_bench``): lit, it keeps red and blue at
exactly 0, which ``render.composite_background`` keys on."""
ARM_MIN_RGB = 0.02
"""The arm's randomized material colours stay at least this bright in every channel, so no arm pixel
is ever taken for the key."""
TRAIN_SATURATION = 0.75
"""Bench colours drawn over the whole range (``RandomizationConfig.recolor_prob``) have at most this
HSV saturation; the held-out wall colours (``robustness``) lie above ``HELD_OUT_SATURATION``."""
HELD_OUT_SATURATION = 0.8
TEXTURE_REPEAT = (1.0, 6.0)
"""Range of a texture's repeats per metre of half extent (``mat_texrepeat``, ``texuniform``)."""
_TABLE_REGIONS = np.array([[-0.20, 0.30, 0.90, 0.70], [0.78, -0.65, 0.90, 0.30], [-0.22, -0.65, -0.12, 0.30]])
"""(x_low, y_low, x_high, y_high) of the table areas where distractor objects stand, metres: behind
the workspace box and to either side of it, never between the policy camera and the arm's path."""
_TABLE_REGION_WEIGHTS = np.array([0.6, 0.25, 0.15])


@struct.dataclass
class DomainSpec:
    """What ``sample`` draws from: the ranges and probabilities of ``RandomizationConfig`` as arrays
    (``spec``), plus switches only the held-out benches turn on (``robustness``). An argument of the
    jitted rollout (carried in the env's ``State``), so every bench shares one compiled program."""

    cam_pos_m: jax.Array
    cam_rot_deg: jax.Array
    cam_fovy_deg: jax.Array
    cam_rot_offset_deg: jax.Array
    """(3,) the first policy camera turned this far about its x (tilt), y (pan) and z (roll) axes,
    degrees, each with a random sign, on top of the jitter: a camera off its calibrated pose."""
    light_dir: jax.Array
    light_diffuse: jax.Array
    light_ambient: jax.Array
    light_color: jax.Array
    shadow_prob: jax.Array
    color: jax.Array
    recolor_prob: jax.Array
    texture_prob: jax.Array
    object_prob: jax.Array
    poster_prob: jax.Array
    person_prob: jax.Array
    wall_distance_m: jax.Array
    background_gain: jax.Array
    background_bias: jax.Array
    background_shift_px: jax.Array
    held_out_objects: jax.Array
    """() bool: the held-out shapes (``scene.HELD_OUT_OBJECTS``) all stand on the table."""
    held_out_poster: jax.Array
    """() bool: a large poster of a held-out pattern family hangs right behind the arm."""
    held_out_wall_colour: jax.Array
    """() bool: the wall takes a held-out (strongly saturated) colour."""
    held_out_wall_pattern: jax.Array
    """() bool: the wall takes a held-out pattern family."""
    held_out_person: jax.Array
    """() bool: the held-out figure (``scene.HELD_OUT_PERSON``), dark, stands behind the table."""


def spec(cfg: RandomizationConfig) -> DomainSpec:
    """The ``DomainSpec`` that draws what ``cfg`` describes (every held-out switch off)."""
    f = lambda v: jnp.asarray(v, jnp.float32)
    off = jnp.zeros((), bool)
    return DomainSpec(
        cam_pos_m=f(cfg.cam_pos_m),
        cam_rot_deg=f(cfg.cam_rot_deg),
        cam_fovy_deg=f(cfg.cam_fovy_deg),
        cam_rot_offset_deg=jnp.zeros(3, jnp.float32),
        light_dir=f(cfg.light_dir),
        light_diffuse=f(cfg.light_diffuse),
        light_ambient=f(cfg.light_ambient),
        light_color=f(cfg.light_color),
        shadow_prob=f(cfg.shadow_prob),
        color=f(cfg.color),
        recolor_prob=f(cfg.recolor_prob),
        texture_prob=f(cfg.texture_prob),
        object_prob=f(cfg.object_prob),
        poster_prob=f(cfg.poster_prob),
        person_prob=f(cfg.person_prob),
        wall_distance_m=f(cfg.wall_distance_m),
        background_gain=f(cfg.background_gain),
        background_bias=f(cfg.background_bias),
        background_shift_px=f(cfg.background_shift_px),
        held_out_objects=off,
        held_out_poster=off,
        held_out_wall_colour=off,
        held_out_wall_pattern=off,
        held_out_person=off,
    )


@struct.dataclass
class DomainParams:
    """One world's randomized rendering inputs (shapes for ``ncam`` cameras, ``nlight`` lights,
    ``ngeom`` geoms, ``nmat`` materials and the ``npool`` geoms of ``Scene.posed_geoms``)."""

    cam_xpos: jax.Array
    """(ncam, 3) camera positions, metres."""
    cam_xmat: jax.Array
    """(ncam, 3, 3) camera-to-world rotations."""
    cam_fovy: jax.Array
    """(ncam,) vertical fields of view, degrees."""
    light_xdir: jax.Array
    """(nlight, 3) unit light directions."""
    light_diffuse: jax.Array
    """(nlight, 3) diffuse colour."""
    light_ambient: jax.Array
    """(nlight, 3) ambient colour."""
    light_castshadow: jax.Array
    """(nlight,) whether each light casts shadows."""
    geom_rgba: jax.Array
    """(ngeom, 4) geom colours (bench surfaces, distractors)."""
    mat_rgba: jax.Array
    """(nmat, 4) material colours (the arm)."""
    geom_size: jax.Array
    """(ngeom, 3) geom sizes (the distractors'), metres."""
    geom_matid: jax.Array
    """(ngeom,) int32 material of each geom, -1 for none (textured surfaces and posters)."""
    mat_texrepeat: jax.Array
    """(nmat, 2) texture repeats per metre of half extent."""
    pool_xpos: jax.Array
    """(npool, 3) positions of the wall and the distractors (``Scene.posed_geoms``), metres."""
    pool_xmat: jax.Array
    """(npool, 3, 3) their rotations."""
    background_gain: jax.Array
    """(3,) per-channel gain of the green-screen background (``render.composite_background``)."""
    background_bias: jax.Array
    """() offset added to it, 0..255 levels."""
    background_shift: jax.Array
    """(2,) int32 rows, columns it is shifted by, pixels."""


def nominal(scene: Scene) -> DomainParams:
    """The un-randomized scene (the plain bench, every distractor hidden) as ``DomainParams``."""
    m = scene.mj_model
    light_dir = m.light_dir / np.linalg.norm(m.light_dir, axis=1, keepdims=True)
    posed = scene.posed_geoms
    return DomainParams(
        cam_xpos=jnp.asarray(m.cam_pos, jnp.float32),
        cam_xmat=jnp.asarray(np.stack([_quat_to_xmat_np(q) for q in m.cam_quat]), jnp.float32),
        cam_fovy=jnp.asarray(m.cam_fovy, jnp.float32),
        light_xdir=jnp.asarray(light_dir, jnp.float32),
        light_diffuse=jnp.asarray(m.light_diffuse, jnp.float32),
        light_ambient=jnp.asarray(m.light_ambient, jnp.float32),
        light_castshadow=jnp.asarray(m.light_castshadow, bool),
        geom_rgba=jnp.asarray(m.geom_rgba, jnp.float32),
        mat_rgba=jnp.asarray(m.mat_rgba, jnp.float32),
        geom_size=jnp.asarray(m.geom_size, jnp.float32),
        geom_matid=jnp.asarray(m.geom_matid, jnp.int32),
        mat_texrepeat=jnp.asarray(m.mat_texrepeat, jnp.float32),
        pool_xpos=jnp.asarray(m.geom_pos[posed], jnp.float32),
        pool_xmat=jnp.asarray(np.stack([_quat_to_xmat_np(q) for q in m.geom_quat[posed]]), jnp.float32),
        background_gain=jnp.ones(3, jnp.float32),
        background_bias=jnp.zeros((), jnp.float32),
        background_shift=jnp.zeros(2, jnp.int32),
    )


def sample(key: jax.Array, base: DomainParams, scene: Scene, cfg: RandomizationConfig, s: DomainSpec) -> DomainParams:
    """Randomize ``base`` for one world as ``s`` says. Policy cameras, the key light, the bench's
    colours, textures and wall, and the distractors vary; the overview camera stays fixed. Returns
    ``base`` unchanged when ``cfg.enabled`` is False."""
    if not cfg.enabled:
        return base
    k_cam, k_light, k_bench, k_pool = jax.random.split(key, 4)
    p = _sample_camera(k_cam, base, scene, s)
    p = _sample_light(k_light, p, scene, s)
    p = _sample_bench(k_bench, p, scene, s)
    return _sample_distractors(k_pool, p, scene, s)


def _uniform(key: jax.Array, shape, low, high) -> jax.Array:
    return jax.random.uniform(key, shape, minval=low, maxval=high)


def _sample_camera(key: jax.Array, p: DomainParams, scene: Scene, s: DomainSpec) -> DomainParams:
    ks = jax.random.split(key, 4)
    cams = jnp.asarray(scene.policy_cameras)
    ncam = len(scene.policy_cameras)
    cam_xpos = p.cam_xpos.at[cams].add(_uniform(ks[0], (ncam, 3), -s.cam_pos_m, s.cam_pos_m))
    sign = jnp.where(jax.random.bernoulli(ks[1], 0.5, (3,)), 1.0, -1.0)
    turn_deg = _uniform(ks[2], (ncam, 3), -s.cam_rot_deg, s.cam_rot_deg).at[0].add(sign * s.cam_rot_offset_deg)
    turn = jax.vmap(_rotvec_to_xmat)(jnp.deg2rad(turn_deg))
    cam_xmat = p.cam_xmat.at[cams].set(p.cam_xmat[cams] @ turn)
    cam_fovy = p.cam_fovy.at[cams].add(_uniform(ks[3], (ncam,), -s.cam_fovy_deg, s.cam_fovy_deg))
    return p.replace(cam_xpos=cam_xpos, cam_xmat=cam_xmat, cam_fovy=cam_fovy)


def _sample_light(key: jax.Array, p: DomainParams, scene: Scene, s: DomainSpec) -> DomainParams:
    ks = jax.random.split(key, 5)
    light = scene.key_light
    direction = p.light_xdir[light] + _uniform(ks[0], (3,), -s.light_dir, s.light_dir)
    direction = direction.at[2].set(-jnp.abs(direction[2]) - 0.1)
    tint = 1.0 + _uniform(ks[1], (3,), -s.light_color, s.light_color)
    diffuse = _uniform(ks[2], (), s.light_diffuse[0], s.light_diffuse[1])
    ambient = _uniform(ks[3], (), s.light_ambient[0], s.light_ambient[1])
    return p.replace(
        light_xdir=p.light_xdir.at[light].set(direction / jnp.linalg.norm(direction)),
        light_diffuse=p.light_diffuse.at[light].set(jnp.clip(diffuse * tint, 0.0, 1.0)),
        light_ambient=p.light_ambient.at[light].set(jnp.clip(ambient * tint, 0.0, 1.0)),
        light_castshadow=p.light_castshadow.at[light].set(jax.random.bernoulli(ks[4], s.shadow_prob)),
    )


def _hsv_colours(key: jax.Array, n: int, saturation, value) -> jax.Array:
    """(n, 3) RGB colours of uniform hue and saturation/value uniform in the given (low, high)."""
    kh, ks, kv = jax.random.split(key, 3)
    h = jax.random.uniform(kh, (n,))
    sat = _uniform(ks, (n,), *saturation)
    val = _uniform(kv, (n,), *value)
    k = (jnp.array([5.0, 3.0, 1.0]) + 6.0 * h[:, None]) % 6.0
    return val[:, None] * (1.0 - sat[:, None] * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0))


def _pick(key: jax.Array, ids: np.ndarray, shape=()) -> jax.Array:
    """Uniform draws from the id array ``ids``."""
    return jnp.asarray(ids, jnp.int32)[jax.random.randint(key, shape, 0, len(ids))]


def _sample_bench(key: jax.Array, p: DomainParams, scene: Scene, s: DomainSpec) -> DomainParams:
    """Colours, textures and pattern scales of table, floor and wall; the arm's colours; the wall's
    distance; the green-screen background's jitter."""
    ks = jax.random.split(key, 13)
    surfaces = jnp.asarray(scene.coloured_geoms)  # table, floor, wall
    n = len(scene.coloured_geoms)
    jittered = p.geom_rgba[surfaces, :3] + _uniform(ks[0], (n, 3), -s.color, s.color)
    recoloured = _hsv_colours(ks[1], n, (0.0, TRAIN_SATURATION), (0.15, 1.0))
    rgb = jnp.where(jax.random.bernoulli(ks[2], s.recolor_prob, (n, 1)), recoloured, jittered)
    wall_colour = _hsv_colours(ks[3], 1, (HELD_OUT_SATURATION, 1.0), (0.45, 1.0))[0]
    rgb = rgb.at[n - 1].set(jnp.where(s.held_out_wall_colour, wall_colour, rgb[n - 1]))
    geom_rgba = p.geom_rgba.at[surfaces, :3].set(jnp.clip(rgb, 0.0, 1.0))
    mat_rgb = p.mat_rgba[:, :3] + _uniform(ks[4], p.mat_rgba[:, :3].shape, -s.color, s.color)

    textured = jax.random.bernoulli(ks[5], s.texture_prob, (n,))
    material = jnp.where(textured, _pick(ks[6], scene.train_materials, (n,)), -1)
    wall_pattern = _pick(ks[7], scene.held_out_materials)
    material = material.at[n - 1].set(jnp.where(s.held_out_wall_pattern, wall_pattern, material[n - 1]))
    repeat = _uniform(ks[8], p.mat_texrepeat.shape[:1] + (1,), *TEXTURE_REPEAT)

    wall_y = _uniform(ks[9], (), s.wall_distance_m[0], s.wall_distance_m[1]) + scene_lib.WALL_HALF_THICKNESS_M
    return p.replace(
        geom_rgba=geom_rgba,
        mat_rgba=p.mat_rgba.at[:, :3].set(jnp.clip(mat_rgb, ARM_MIN_RGB, 1.0)),
        geom_matid=p.geom_matid.at[surfaces].set(material),
        mat_texrepeat=jnp.broadcast_to(repeat, p.mat_texrepeat.shape),
        pool_xpos=p.pool_xpos.at[0, 1].set(wall_y),
        background_gain=1.0 + _uniform(ks[10], (3,), -s.background_gain, s.background_gain),
        background_bias=_uniform(ks[11], (), -s.background_bias, s.background_bias),
        background_shift=jnp.round(_uniform(ks[12], (2,), -s.background_shift_px, s.background_shift_px)).astype(
            jnp.int32
        ),
    )


def _table_spots(key: jax.Array, n: int) -> jax.Array:
    """(n, 2) x, y on the table where distractors may stand (``_TABLE_REGIONS``), metres."""
    k_region, k_spot = jax.random.split(key)
    region = jnp.asarray(_TABLE_REGIONS)[jax.random.choice(k_region, 3, (n,), p=jnp.asarray(_TABLE_REGION_WEIGHTS))]
    t = jax.random.uniform(k_spot, (n, 2))
    return region[:, :2] + t * (region[:, 2:] - region[:, :2])


def _yaw_xmat(yaw: jax.Array) -> jax.Array:
    """(..., 3, 3) rotations about world z by ``yaw`` (...) radians."""
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    zero, one = jnp.zeros_like(yaw), jnp.ones_like(yaw)
    return jnp.stack([jnp.stack([c, -s, zero], -1), jnp.stack([s, c, zero], -1), jnp.stack([zero, zero, one], -1)], -2)


class _Pool:
    """The distractor pool's rows being drawn, in ``Scene.posed_geoms[1:]`` order."""

    def __init__(self):
        self.pos, self.size, self.xmat, self.rgb, self.shown = [], [], [], [], []

    def add(self, xy, z, size, xmat, colour, shown) -> None:
        """Geoms at ``xy`` (n, 2), ``z`` (n,) metres, ``size`` (n, 3), rotation ``xmat`` (n, 3, 3),
        ``colour`` (n, 3), shown where ``shown`` (n,)."""
        self.pos.append(jnp.concatenate([xy, z[:, None]], axis=1))
        self.size.append(size)
        self.xmat.append(xmat)
        self.rgb.append(colour)
        self.shown.append(shown)


def _objects(key: jax.Array, pool: _Pool, s: DomainSpec) -> None:
    """Training's objects standing on the table, two boxes (half sizes), two cylinders (radius, half
    height), a sphere (radius) and a thin panel on its edge, each shown with ``object_prob``; then
    the held-out ones, two upright capsules (radius, half length) and two ellipsoids, shown together
    with ``held_out_objects``."""
    ks = jax.random.split(key, 14)
    boxes = _uniform(ks[0], (2, 3), jnp.array([0.02, 0.02, 0.02]), jnp.array([0.08, 0.08, 0.12]))
    cylinders = _uniform(ks[1], (2, 2), jnp.array([0.02, 0.03]), jnp.array([0.06, 0.12]))
    sphere = _uniform(ks[2], (), 0.02, 0.07)
    panel = _uniform(ks[3], (2,), 0.05, 0.15)
    size = jnp.concatenate(
        [
            boxes,
            jnp.pad(cylinders, ((0, 0), (0, 1))),
            jnp.array([[sphere, 0.0, 0.0], [panel[0], scene_lib.POSTER_HALF_THICKNESS_M, panel[1]]]),
        ]
    )
    pool.add(
        _table_spots(ks[4], 6),
        jnp.concatenate([boxes[:, 2], cylinders[:, 1], jnp.stack([sphere, panel[1]])]),
        size,
        _yaw_xmat(_uniform(ks[5], (6,), 0.0, np.pi)),
        _hsv_colours(ks[6], 6, (0.0, 1.0), (0.1, 1.0)),
        jax.random.bernoulli(ks[7], s.object_prob, (6,)),
    )
    radius = _uniform(ks[8], (2,), 0.02, 0.04)
    half_length = _uniform(ks[9], (2,), 0.03, 0.10)
    axes = _uniform(ks[10], (2, 3), 0.03, 0.08)
    pool.add(
        _table_spots(ks[11], 4),
        jnp.concatenate([radius + half_length, axes[:, 2]]),
        jnp.concatenate([jnp.stack([radius, half_length, jnp.zeros(2)], 1), axes]),
        _yaw_xmat(_uniform(ks[12], (4,), 0.0, np.pi)),
        _hsv_colours(ks[13], 4, (0.0, 1.0), (0.1, 1.0)),
        jnp.broadcast_to(s.held_out_objects, (4,)),
    )


def _posters(key: jax.Array, pool: _Pool, s: DomainSpec, scene: Scene, wall_front, wall_xmat) -> jax.Array:
    """Two posters on the wall's face (``wall_front``: its world y), training patterns, each shown
    with ``poster_prob``; with ``held_out_poster``, poster 0 is a large held-out pattern right
    behind the arm. Returns their materials (2,)."""
    ks = jax.random.split(key, 10)
    xz = _uniform(ks[0], (2, 2), jnp.array([-0.3, 0.0]), jnp.array([1.2, 1.0]))
    half = _uniform(ks[1], (2, 2), 0.10, jnp.array([0.40, 0.35]))
    material = _pick(ks[2], scene.train_materials, (2,))
    shown = jax.random.bernoulli(ks[3], s.poster_prob, (2,))
    held = s.held_out_poster
    xz = xz.at[0].set(jnp.where(held, _uniform(ks[4], (2,), jnp.array([0.15, 0.15]), jnp.array([0.65, 0.5])), xz[0]))
    half = half.at[0].set(
        jnp.where(held, _uniform(ks[5], (2,), jnp.array([0.25, 0.2]), jnp.array([0.4, 0.3])), half[0])
    )
    material = material.at[0].set(jnp.where(held, _pick(ks[6], scene.held_out_materials), material[0]))
    pool.add(
        jnp.stack([xz[:, 0], jnp.full((2,), wall_front - scene_lib.POSTER_HALF_THICKNESS_M - 0.001)], axis=1),
        xz[:, 1],
        jnp.concatenate([half, jnp.full((2, 1), scene_lib.POSTER_HALF_THICKNESS_M)], axis=1),
        jnp.broadcast_to(wall_xmat, (2, 3, 3)),
        _hsv_colours(ks[7], 2, (0.0, 0.5), (0.6, 1.0)),
        shown.at[0].set(shown[0] | held),
    )
    return material


def _people(key: jax.Array, pool: _Pool, s: DomainSpec, wall_front) -> None:
    """A person-sized figure standing on the floor between the table and the wall, where there is
    room: training's of boxes (body, head), shown with ``person_prob``; the held-out one a capsule
    and a sphere, dark, right behind the arm, shown with ``held_out_person``."""
    ks = jax.random.split(key, 7)
    room = wall_front > scene_lib.TABLE_END_Y_M + 0.23
    y = _uniform(
        ks[0], (2,), scene_lib.TABLE_END_Y_M + 0.11, jnp.maximum(wall_front - 0.12, scene_lib.TABLE_END_Y_M + 0.11)
    )
    x = _uniform(ks[1], (), -0.6, 1.4)
    floor = scene_lib.FLOOR_TOP_Z_M
    body = _uniform(ks[2], (3,), jnp.array([0.17, 0.10, 0.72]), jnp.array([0.25, 0.14, 0.85]))
    colour = _hsv_colours(ks[3], 1, (0.0, 1.0), (0.05, 0.7))[0]
    shown = room & jax.random.bernoulli(ks[4], s.person_prob)
    pool.add(
        jnp.stack([jnp.full(2, x), jnp.full(2, y[0])], axis=1),
        jnp.stack([floor + body[2], floor + 2 * body[2] + 0.11]),
        jnp.stack([body, jnp.array([0.09, 0.10, 0.11])]),
        _yaw_xmat(jnp.zeros(2)),
        jnp.stack([colour, colour]),
        jnp.stack([shown, shown]),
    )
    radius, half_length = 0.2, 0.55
    dark = _hsv_colours(ks[5], 1, (0.0, 0.5), (0.03, 0.2))[0]
    held_x = _uniform(ks[6], (), 0.0, 0.9)
    held = room & s.held_out_person
    pool.add(
        jnp.stack([jnp.full(2, held_x), jnp.full(2, y[1])], axis=1),
        jnp.array([floor + radius + half_length, floor + 2 * (radius + half_length) + 0.11]),
        jnp.array([[radius, half_length, 0.0], [0.11, 0.0, 0.0]]),
        _yaw_xmat(jnp.zeros(2)),
        jnp.stack([dark, dark]),
        jnp.stack([held, held]),
    )


def _sample_distractors(key: jax.Array, p: DomainParams, scene: Scene, s: DomainSpec) -> DomainParams:
    """Sizes, poses, colours and visibility of the distractor pool (``scene.OBJECTS`` ...
    ``HELD_OUT_PERSON``), hidden below the floor where not shown."""
    k_objects, k_posters, k_people = jax.random.split(key, 3)
    wall_front = p.pool_xpos[0, 1] - scene_lib.WALL_HALF_THICKNESS_M
    pool = _Pool()
    _objects(k_objects, pool, s)
    poster_material = _posters(k_posters, pool, s, scene, wall_front, p.pool_xmat[0])
    _people(k_people, pool, s, wall_front)

    rows = jnp.asarray(scene.posed_geoms[1:])
    shown = jnp.concatenate(pool.shown)
    pool_xpos = jnp.where(shown[:, None], jnp.concatenate(pool.pos), jnp.asarray(scene_lib.HIDDEN_POS, jnp.float32))
    materials = (
        jnp.full(len(rows), -1, jnp.int32).at[np.isin(scene.posed_geoms[1:], scene.posters)].set(poster_material)
    )
    rgba = jnp.concatenate([jnp.concatenate(pool.rgb), jnp.ones((len(rows), 1))], axis=1)
    return p.replace(
        geom_size=p.geom_size.at[rows].set(jnp.concatenate(pool.size)),
        geom_rgba=p.geom_rgba.at[rows].set(rgba),
        geom_matid=p.geom_matid.at[rows].set(materials),
        pool_xpos=p.pool_xpos.at[1:].set(pool_xpos),
        pool_xmat=p.pool_xmat.at[1:].set(jnp.concatenate(pool.xmat)),
    )


def key_bench(p: DomainParams, scene: Scene) -> DomainParams:
    """``p`` with the table, floor and wall in ``KEY_RGB``, untextured (green-screen mode)."""
    surfaces = jnp.asarray(scene.coloured_geoms)
    return p.replace(
        geom_rgba=p.geom_rgba.at[surfaces, :3].set(jnp.asarray(KEY_RGB, jnp.float32)),
        geom_matid=p.geom_matid.at[surfaces].set(-1),
    )


def apply(m: mjx.Model, d: mjx.Data, p: DomainParams, scene: Scene) -> tuple[mjx.Model, mjx.Data]:
    """Model and data that render with ``p``: model fields replaced, and the (world-fixed) camera,
    light, wall and distractor poses written into ``d`` (Warp kinematics computes none of them)."""
    m = m.tree_replace(
        {
            "cam_fovy": p.cam_fovy,
            "light_diffuse": p.light_diffuse,
            "light_ambient": p.light_ambient,
            "light_castshadow": p.light_castshadow,
            "geom_rgba": p.geom_rgba,
            "mat_rgba": p.mat_rgba,
            "geom_size": p.geom_size,
            "geom_matid": p.geom_matid,
            "_impl.mat_texrepeat": p.mat_texrepeat,
        }
    )
    posed = jnp.asarray(scene.posed_geoms)
    d = d.replace(
        cam_xpos=p.cam_xpos,
        cam_xmat=p.cam_xmat,
        geom_xpos=d.geom_xpos.at[posed].set(p.pool_xpos),
        geom_xmat=d.geom_xmat.at[posed].set(p.pool_xmat),
    )
    d = d.tree_replace({"_impl.light_xdir": p.light_xdir})
    return m, d


def _rotvec_to_xmat(rotvec: jax.Array) -> jax.Array:
    """Rotation matrix (3, 3) of a rotation vector (3,) [rad] (Rodrigues)."""
    angle = jnp.linalg.norm(rotvec) + 1e-12
    k = rotvec / angle
    kx = jnp.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return jnp.eye(3) + jnp.sin(angle) * kx + (1.0 - jnp.cos(angle)) * kx @ kx


def _quat_to_xmat_np(quat) -> np.ndarray:
    xmat = np.zeros(9)
    mujoco.mju_quat2Mat(xmat, quat)
    return xmat.reshape(3, 3)
