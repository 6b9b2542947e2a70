"""On-device replay: a [time, env] ring that stores every uint8 frame once.

Slot ``(t, e)`` holds env ``e``'s observation at vectorised step ``t`` (image, goal, privileged
state) plus the action taken from it, the reward and whether that step ended the episode. The
next observation of transition ``(t, e)`` is slot ``(t + 1, e)``, so a frame is never stored twice.
A transition is valid when slot ``t + 1`` is newer data (``t`` is not the newest row) and step
``t`` did not end its episode (then slot ``t + 1`` holds the next episode's first frame); the
update masks invalid samples out (≈ 1/episode_steps of them).

Memory per transition at 84x84x3: 21,168 B of image + 29 floats ≈ 21.3 KB. So 1M transitions
(≈ 244 steps of 4096 envs) take 21 GB, which fits an 80 GB H100 beside the renderer; the CPU
default of 50k transitions takes 1.1 GB. Storing states and re-rendering at sample time would
cost 6x less memory but one render per sampled frame and its next frame: rendering is the most
expensive part of an env step (BENCHMARKS.md), so frames are stored.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Replay:
    image: jax.Array
    """(T, N, H, W, C) uint8."""
    goal: jax.Array
    """(T, N, 3) float32, metres."""
    state: jax.Array
    """(T, N, S) float32 privileged state."""
    action: jax.Array
    """(T, N, 3) float32 action taken from this observation."""
    reward: jax.Array
    """(T, N) float32."""
    done: jax.Array
    """(T, N) bool: this step ended the episode."""
    cursor: jax.Array
    """() int32 row the next ``add`` writes."""
    size: jax.Array
    """() int32 rows written so far (saturates at T)."""


def create(rows: int, num_envs: int, image_shape: tuple[int, int, int], state_dim: int) -> Replay:
    """An empty buffer of ``rows`` vectorised steps of ``num_envs`` envs."""
    z = lambda *shape, dtype=jnp.float32: jnp.zeros((rows, num_envs, *shape), dtype)
    return Replay(
        image=z(*image_shape, dtype=jnp.uint8),
        goal=z(3),
        state=z(state_dim),
        action=z(3),
        reward=z(),
        done=z(dtype=bool),
        cursor=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def add(buf: Replay, obs: dict, action: jax.Array, reward: jax.Array, done: jax.Array) -> Replay:
    """Write one vectorised step: ``obs`` fields (N, ...), ``action`` (N, 3), ``reward``/``done`` (N,)."""
    row = buf.cursor
    put = lambda arr, value: arr.at[row].set(value)
    rows = buf.image.shape[0]
    return buf.replace(
        image=put(buf.image, obs["image"]),
        goal=put(buf.goal, obs["goal"]),
        state=put(buf.state, obs["state"]),
        action=put(buf.action, action),
        reward=put(buf.reward, reward),
        done=put(buf.done, done),
        cursor=(row + 1) % rows,
        size=jnp.minimum(buf.size + 1, rows),
    )


def sample(buf: Replay, key: jax.Array, batch_size: int) -> dict:
    """``batch_size`` transitions: obs/next-obs fields, action, reward, and ``valid`` (B,) mask."""
    rows, num_envs = buf.image.shape[:2]
    k_t, k_e = jax.random.split(key)
    age = jax.random.randint(k_t, (batch_size,), 1, jnp.maximum(buf.size, 2))  # 1 = newest row
    t = (buf.cursor - 1 - age) % rows
    t_next = (t + 1) % rows
    e = jax.random.randint(k_e, (batch_size,), 0, num_envs)
    valid = (buf.size >= 2) & ~buf.done[t, e]
    return {
        "image": buf.image[t, e],
        "goal": buf.goal[t, e],
        "state": buf.state[t, e],
        "action": buf.action[t, e],
        "reward": buf.reward[t, e],
        "next_image": buf.image[t_next, e],
        "next_goal": buf.goal[t_next, e],
        "next_state": buf.state[t_next, e],
        "valid": valid,
    }
