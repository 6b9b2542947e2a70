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

from mjx_reach.config import RandomizationConfig
from mjx_reach.scene import Scene


@struct.dataclass
class DomainParams:
    """One world's randomized rendering inputs (shapes for ``ncam`` cameras, ``nlight`` lights)."""

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
    """(ngeom, 4) geom colours (table, floor, background)."""
    mat_rgba: jax.Array
    """(nmat, 4) material colours (the arm)."""


def nominal(scene: Scene) -> DomainParams:
    """The un-randomized scene as ``DomainParams``."""
    m = scene.mj_model
    light_dir = m.light_dir / np.linalg.norm(m.light_dir, axis=1, keepdims=True)
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
    )


def sample(key: jax.Array, base: DomainParams, scene: Scene, cfg: RandomizationConfig) -> DomainParams:
    """Randomize ``base`` for one world. Policy cameras, the key light and the bench colours vary;
    the overview camera stays fixed. Returns ``base`` unchanged when ``cfg.enabled`` is False."""
    if not cfg.enabled:
        return base
    ks = iter(jax.random.split(key, 10))
    cams = jnp.asarray(scene.policy_cameras)
    ncam = len(scene.policy_cameras)

    def uniform(k, shape, half):
        return jax.random.uniform(k, shape, minval=-half, maxval=half)

    cam_xpos = base.cam_xpos.at[cams].add(uniform(next(ks), (ncam, 3), cfg.cam_pos_m))
    jitter = jax.vmap(_rotvec_to_xmat)(uniform(next(ks), (ncam, 3), np.deg2rad(cfg.cam_rot_deg)))
    cam_xmat = base.cam_xmat.at[cams].set(base.cam_xmat[cams] @ jitter)
    cam_fovy = base.cam_fovy.at[cams].add(uniform(next(ks), (ncam,), cfg.cam_fovy_deg))

    light = scene.key_light
    direction = base.light_xdir[light] + uniform(next(ks), (3,), cfg.light_dir)
    direction = direction.at[2].set(-jnp.abs(direction[2]) - 0.1)
    light_xdir = base.light_xdir.at[light].set(direction / jnp.linalg.norm(direction))
    tint = 1.0 + uniform(next(ks), (3,), cfg.light_color)
    diffuse = jax.random.uniform(next(ks), (), minval=cfg.light_diffuse[0], maxval=cfg.light_diffuse[1])
    ambient = jax.random.uniform(next(ks), (), minval=cfg.light_ambient[0], maxval=cfg.light_ambient[1])
    light_diffuse = base.light_diffuse.at[light].set(jnp.clip(diffuse * tint, 0.0, 1.0))
    light_ambient = base.light_ambient.at[light].set(jnp.clip(ambient * tint, 0.0, 1.0))
    shadow = jax.random.bernoulli(next(ks), cfg.shadow_prob)
    light_castshadow = base.light_castshadow.at[light].set(shadow)

    geoms = jnp.asarray(scene.coloured_geoms)
    geom_rgb = base.geom_rgba[geoms, :3] + uniform(next(ks), (len(scene.coloured_geoms), 3), cfg.color)
    geom_rgba = base.geom_rgba.at[geoms, :3].set(jnp.clip(geom_rgb, 0.0, 1.0))
    mat_rgb = base.mat_rgba[:, :3] + uniform(next(ks), base.mat_rgba[:, :3].shape, cfg.color)
    mat_rgba = base.mat_rgba.at[:, :3].set(jnp.clip(mat_rgb, 0.0, 1.0))
    return DomainParams(
        cam_xpos, cam_xmat, cam_fovy, light_xdir, light_diffuse, light_ambient, light_castshadow, geom_rgba, mat_rgba
    )


def apply(m: mjx.Model, d: mjx.Data, p: DomainParams) -> tuple[mjx.Model, mjx.Data]:
    """Model and data that render with ``p``: model fields replaced, and the (world-fixed) camera and
    light poses written into ``d`` (Warp kinematics does not compute them)."""
    m = m.tree_replace(
        {
            "cam_fovy": p.cam_fovy,
            "light_diffuse": p.light_diffuse,
            "light_ambient": p.light_ambient,
            "light_castshadow": p.light_castshadow,
            "geom_rgba": p.geom_rgba,
            "mat_rgba": p.mat_rgba,
        }
    )
    d = d.replace(cam_xpos=p.cam_xpos, cam_xmat=p.cam_xmat)
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
