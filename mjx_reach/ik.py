"""Damped-least-squares inverse kinematics on ``mjx.jac`` (works on Warp ``Data``).

The tool centre point is driven to a target position *and* a fixed orientation (the gripper
pointing down, as the deploy loop commands the real arm), so sim images show the poses the real
xArm takes in position mode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from mujoco import mjx


def orientation_error(xmat: jax.Array, target_xmat: jax.Array) -> jax.Array:
    """Rotation vector (3,) [rad, small-angle] that turns ``xmat`` towards ``target_xmat`` (both (3, 3))."""
    return 0.5 * jnp.sum(jnp.cross(xmat.T, target_xmat.T), axis=0)


def solve(
    m: mjx.Model,
    d: mjx.Data,
    target_pos: jax.Array,
    target_xmat: jax.Array,
    site: int,
    body: int,
    iterations: int,
    damping: float,
) -> jax.Array:
    """Joint angles (nq,) [rad] that move site ``site`` (on body ``body``) to ``target_pos`` (3,)
    [m] with rotation ``target_xmat`` (3, 3), from ``d.qpos``, clipped to the joint ranges.

    Each iteration: kinematics → 6D error → ``dq = Jᵀ (J Jᵀ + λ² I)⁻¹ e``. Assumes one hinge per
    qpos entry (nq == nv), as in the reach scene.
    """
    low, high = m.jnt_range[:, 0], m.jnt_range[:, 1]
    qpos = d.qpos
    for _ in range(iterations):
        d = mjx.com_pos(m, mjx.kinematics(m, d.replace(qpos=qpos)))
        pos, xmat = d.site_xpos[site], d.site_xmat[site]
        error = jnp.concatenate([target_pos - pos, orientation_error(xmat, target_xmat)])
        jacp, jacr = mjx.jac(m, d, pos, body)
        jac = jnp.concatenate([jacp.T, jacr.T])
        dq = jac.T @ jnp.linalg.solve(jac @ jac.T + damping**2 * jnp.eye(6), error)
        qpos = jnp.clip(qpos + dq, low, high)
    return qpos
