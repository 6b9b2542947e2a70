"""Evaluation on held-out randomization seeds, and the evaluation video.

Held-out: episodes start from keys derived from ``seed + HELD_OUT_OFFSET``, which training never
draws (training keys descend from ``PRNGKey(seed)``). The policy is deterministic (no exploration
noise). Success is measured at the end of each episode (the arm must *stay* at the goal).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from mjx_reach import config as config_lib
from mjx_reach.env import ReachEnv

HELD_OUT_OFFSET = 1_000_003


def agent_policy(agent, params):
    """The deterministic policy of ``agent`` with ``params`` as ``act(obs, key) -> (action, ee_pred)``."""
    return lambda obs, key: agent.act(params, obs)


def random_policy(obs, key):
    """Uniform random actions in [-1, 1]³: the baseline policy (it has no encoder: ``ee_pred`` is 0)."""
    return jax.random.uniform(key, obs["goal"].shape, minval=-1.0, maxval=1.0), jnp.zeros_like(obs["goal"])


def rollout(env: ReachEnv, act, key: jax.Array, with_video: bool = False):
    """One episode in each of ``env.num_envs`` worlds with ``act(obs, key) -> (action, ee_pred)``.

    Returns (final metrics dict of (N,) arrays, ee error (T, N) metres, frames or None): frames are
    (T+1, N, H, W, 3) policy images and (T+1, N, 240, 320, 3) overview images when ``with_video``.
    """
    steps = env.env_cfg.episode_steps
    key, k_act = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(key, env.num_envs))

    def frame(s):
        return (s.obs["image"][..., :3], jax.vmap(env.overview_image)(s)) if with_video else None

    def body(s, k):
        action, ee_pred = act(s.obs, k)
        err = jnp.linalg.norm(ee_pred - s.obs["state"][:, :3], axis=-1)
        s = jax.vmap(env.step)(s, action)
        return s, (err, s.metrics, frame(s) if with_video else None)

    first = frame(state)
    state, (err, metrics, frames) = jax.lax.scan(body, state, jax.random.split(k_act, steps))
    final = jax.tree.map(lambda x: x[-1], metrics)
    if with_video:
        frames = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, frames)
    return final, err, frames


def evaluate(cfg: config_lib.Config, act, out: pathlib.Path | None = None) -> dict:
    """Success@2 cm / @5 cm, mean final distance and encoder ee error of policy ``act`` (see
    ``rollout``) on held-out seeds; writes ``eval.mp4`` into ``out`` when given."""
    key = jax.random.PRNGKey(cfg.seed + HELD_OUT_OFFSET)
    env = ReachEnv(cfg, cfg.train.eval_envs)
    final, err, _ = jax.jit(lambda k: rollout(env, act, k))(key)
    final, err = jax.device_get((final, err))
    result = {
        "episodes": int(cfg.train.eval_envs),
        "success_2cm": float(np.mean(final["distance"] < 0.02)),
        "success_5cm": float(np.mean(final["distance"] < 0.05)),
        "success": float(np.mean(final["success"])),
        "mean_final_distance_m": float(np.mean(final["distance"])),
        "encoder_ee_error_m": float(np.mean(err)),
        "encoder_ee_error_median_m": float(np.median(err)),
    }
    if out is not None and cfg.train.video_envs > 0:
        write_video(cfg, act, pathlib.Path(out) / "eval.mp4", key)
    return result


def write_video(cfg: config_lib.Config, act, path: pathlib.Path, key: jax.Array) -> None:
    """An mp4 of ``cfg.train.video_envs`` held-out episodes: policy camera (upscaled) beside the
    third-person view with the goal marker, episodes one after another."""
    import imageio.v3 as iio

    env = ReachEnv(cfg, cfg.train.video_envs, overview=True)
    _, _, (policy, overview) = jax.jit(lambda k: rollout(env, act, k, with_video=True))(key)
    policy, overview = np.asarray(policy), np.asarray(overview)
    oh = overview.shape[2]
    scale = max(1, oh // policy.shape[2])
    policy = np.repeat(np.repeat(policy, scale, axis=2), scale, axis=3)
    pad = np.zeros((*policy.shape[:2], oh - policy.shape[2], policy.shape[3], 3), np.uint8)
    policy = np.concatenate([policy, pad], axis=2)
    frames = np.concatenate([policy, overview], axis=3)  # (T+1, N, H, W, 3)
    frames = frames.transpose(1, 0, 2, 3, 4).reshape(-1, *frames.shape[2:])
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    iio.imwrite(tmp, frames, fps=10, codec="libx264")
    tmp.replace(path)
