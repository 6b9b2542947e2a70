"""Evaluation on held-out randomization seeds, and the evaluation video.

Held-out: episodes start from keys derived from ``seed + HELD_OUT_OFFSET``, which training never
draws (training keys descend from ``PRNGKey(seed)``). The policy is deterministic (no exploration
noise). Success is measured at the end of each episode (the arm must *stay* at the goal).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mjx_reach import config as config_lib
from mjx_reach import ddpg
from mjx_reach.env import ReachEnv

HELD_OUT_OFFSET = 1_000_003
Act = Callable[[nnx.State | None, dict, jax.Array], tuple[jax.Array, jax.Array]]
"""A policy: ``act(params, obs, key) -> (action (N, 3) in [-1, 1], ee_pred (N, 3) m)``."""


def agent_policy(agent: ddpg.Agent) -> Act:
    """The deterministic policy of ``agent`` as ``act(params, obs, key) -> (action, ee_pred)``."""
    return lambda params, obs, key: agent.act(params, obs)


def random_policy(params: nnx.State | None, obs: dict, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Uniform random actions in [-1, 1]³: the baseline policy (no parameters and no encoder:
    ``ee_pred`` is 0)."""
    return jax.random.uniform(key, obs["goal"].shape, minval=-1.0, maxval=1.0), jnp.zeros_like(obs["goal"])


def rollout(env: ReachEnv, act: Act, params: nnx.State | None, key: jax.Array, with_video: bool = False) -> tuple:
    """One episode in each of ``env.num_envs`` worlds with ``act(params, obs, key) -> (action, ee_pred)``.

    Returns (final metrics dict of (N,) arrays, ee error (T, N) metres, frames or None): frames are
    (T+1, N, H, W, 3) policy images and (T+1, N, 240, 320, 3) overview images when ``with_video``.
    """
    steps = env.env_cfg.episode_steps
    key, k_act = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(key, env.num_envs))

    def frame(s):
        return (s.obs["image"][..., :3], jax.vmap(env.overview_image)(s)) if with_video else None

    def body(s, k):
        action, ee_pred = act(params, s.obs, k)
        err = jnp.linalg.norm(ee_pred - s.obs["state"][:, :3], axis=-1)
        s = jax.vmap(env.step)(s, action)
        return s, (err, s.metrics, frame(s) if with_video else None)

    first = frame(state)
    state, (err, metrics, frames) = jax.lax.scan(body, state, jax.random.split(k_act, steps))
    final = jax.tree.map(lambda x: x[-1], metrics)
    if with_video:
        frames = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, frames)
    return final, err, frames


def held_out_key(cfg: config_lib.Config) -> jax.Array:
    """The key of the held-out episodes (the same for every evaluation of a run)."""
    return jax.random.PRNGKey(cfg.seed + HELD_OUT_OFFSET)


class Evaluator:
    """Held-out evaluation of policy ``act(params, obs, key)`` on ``cfg.train.eval_envs`` episodes.

    The rollout is jitted once with the parameters as an argument, so evaluating during training
    does not recompile. Call it with the parameters for the result dict (see ``evaluate``).
    """

    def __init__(self, cfg: config_lib.Config, act):
        self.cfg = cfg
        self.act = act
        self.env = ReachEnv(cfg, cfg.train.eval_envs)
        self._rollout = jax.jit(lambda params, key: rollout(self.env, act, params, key))

    def __call__(self, params=None) -> dict:
        final, err, _ = jax.device_get(self._rollout(params, held_out_key(self.cfg)))
        distance = final["distance"]
        return {
            "episodes": int(self.env.num_envs),
            "success_2cm": float(np.mean(distance < self.cfg.env.success_threshold_m)),
            "success_5cm": float(np.mean(distance < self.cfg.env.report_threshold_m)),
            "success": float(np.mean(final["success"])),
            "mean_final_distance_m": float(np.mean(distance)),
            "encoder_ee_error_m": float(np.mean(err)),
            "encoder_ee_error_median_m": float(np.median(err)),
        }


def evaluate(cfg: config_lib.Config, act: Act, params: nnx.State | None = None, out: pathlib.Path | None = None) -> dict:
    """Success at ``env.success_threshold_m`` (``success_2cm``) and ``env.report_threshold_m``
    (``success_5cm``; 2 and 5 cm by default), mean final distance and encoder ee error (metres) of
    policy ``act`` (see ``rollout``) with ``params`` on held-out seeds; writes ``eval.mp4`` into
    ``out`` when given."""
    result = Evaluator(cfg, act)(params)
    if out is not None and cfg.train.video_envs > 0:
        write_video(cfg, act, params, pathlib.Path(out) / "eval.mp4")
    return result


def write_video(cfg: config_lib.Config, act: Act, params: nnx.State | None, path: pathlib.Path) -> None:
    """An mp4 of ``cfg.train.video_envs`` held-out episodes of ``act`` with ``params``: policy camera
    (upscaled) beside the third-person view with the goal marker, episodes one after another."""
    import imageio.v3 as iio

    env = ReachEnv(cfg, cfg.train.video_envs, overview=True)
    _, _, (policy, overview) = jax.jit(lambda p, k: rollout(env, act, p, k, with_video=True))(params, held_out_key(cfg))
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
