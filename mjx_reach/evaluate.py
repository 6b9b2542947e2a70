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

from mjx_reach import camera as camera_model
from mjx_reach import config as config_lib
from mjx_reach import ddpg, distributed, randomize
from mjx_reach import phases as phases_lib
from mjx_reach import robustness as robustness_lib
from mjx_reach.env import ReachEnv
from mjx_reach.robustness import PLAIN

HELD_OUT_OFFSET = 1_000_003
ROBUSTNESS_FIELDS = (
    "success_2cm",
    "success_5cm",
    "mean_final_distance_m",
    "encoder_ee_error_median_m",
    "encoder_error_depth_median_m",
)
"""What ``Evaluator`` reports per held-out bench."""
Act = Callable[[nnx.State | None, dict, jax.Array], tuple[jax.Array, jax.Array]]
"""A policy: ``act(params, obs, key) -> (action (N, 3) in [-1, 1], ee_pred (N, 3) m)``."""


def agent_policy(agent: ddpg.Agent) -> Act:
    """The deterministic policy of ``agent`` as ``act(params, obs, key) -> (action, ee_pred)``."""
    return lambda params, obs, key: agent.act(params, obs)


def oracle_policy(agent: ddpg.Agent) -> Act:
    """``agent``'s actor fed the **true** ee position (privileged state) instead of the encoder's
    prediction: the same actor with perfect perception. Its success bounds what better perception
    could give; ``ee_pred`` is the true ee (error 0)."""

    def act(params: nnx.State, obs: dict, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        ee = obs["state"][:, :3]
        return agent.nets(params).actor(ee, obs["goal"]), ee

    return act


def error_per_camera_axis(error_world: np.ndarray, camera: config_lib.CameraConfig) -> dict[str, np.ndarray]:
    """An ee error (..., 3) in world metres split along the policy camera's axes (magnitudes, m):
    ``image_x`` (right in the image), ``image_y`` (up in the image) and ``depth`` (along the optical
    axis: what a single camera sees worst)."""
    xmat = camera_model.camera_xmat(camera.pos, camera.lookat, camera.roll_deg)  # columns: x right, y up, z backward
    in_camera = np.abs(np.asarray(error_world) @ xmat)
    return {"image_x": in_camera[..., 0], "image_y": in_camera[..., 1], "depth": in_camera[..., 2]}


def random_policy(params: nnx.State | None, obs: dict, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Uniform random actions in [-1, 1]³: the baseline policy (no parameters and no encoder:
    ``ee_pred`` is 0)."""
    return jax.random.uniform(key, obs["goal"].shape, minval=-1.0, maxval=1.0), jnp.zeros_like(obs["goal"])


def rollout(
    env: ReachEnv,
    act: Act,
    params: nnx.State | None,
    key: jax.Array,
    with_video: bool = False,
    spec: randomize.DomainSpec | None = None,
    share: tuple[int, int] = (0, 1),
) -> tuple:
    """One episode in each of ``env.num_envs`` worlds with ``act(params, obs, key) -> (action, ee_pred)``,
    on the benches ``spec`` draws (default: the env's training benches). With ``share`` (i, P) the
    worlds run episodes ``i·N ... (i+1)·N - 1`` of the ``P·N`` that ``key`` starts: process i's share
    of a held-out evaluation split over P processes, the episodes one process would run alone.

    Returns (final metrics dict of (N,) arrays, ee error ``ee_pred - ee`` (T, N, 3) metres, frames or
    None): frames are (T+1, N, H, W, 3) policy images and (T+1, N, 240, 320, 3) overview images when
    ``with_video``.
    """
    steps = env.env_cfg.episode_steps
    key, k_act = jax.random.split(key)
    index, count = share
    reset_keys = jax.random.split(key, count * env.num_envs)[index * env.num_envs : (index + 1) * env.num_envs]
    state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, spec)

    def frame(s):
        return (s.obs["image"][..., :3], jax.vmap(env.overview_image)(s)) if with_video else None

    def body(s, k):
        action, ee_pred = act(params, s.obs, k)
        err = ee_pred - s.obs["state"][:, :3]
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
    """Held-out evaluation of policy ``act(params, obs, key)`` on ``cfg.train.eval_envs`` episodes of
    the plain bench and, with ``robustness``, of each held-out bench (``robustness.benches``: the same
    episodes, the bench changed); with ``oracle``, the same actor fed the true ee position on the
    plain bench's episodes.

    Each rollout is jitted once with the parameters and the bench as arguments, so evaluating during
    training, and on every bench, does not recompile. With several processes (``distributed``) each
    runs its share of the episodes (``rollout``'s ``share``) and they gather the outcomes: every
    process gets the result one process would get alone. The oracle acts on the privileged state, so its
    rollout renders nothing (``ReachEnv(images=False)``: same episodes, same physics). Call it with
    the parameters for the result dict (each rollout's time counted in ``phases``, when given, as
    ``evaluation: <bench>`` and ``evaluation: oracle``):

    - ``success_2cm`` / ``success_5cm`` (at ``env.success_threshold_m`` / ``env.report_threshold_m``,
      2 and 5 cm by default), ``success``, ``mean_final_distance_m``, after the whole episode;
    - the encoder's ee error over every step: ``encoder_ee_error_m`` (mean), ``..._median_m``, and
      per axis of the policy camera (``error_per_camera_axis``) ``encoder_error_{image_x,image_y,
      depth}_{median,p90}_m``;
    - with ``oracle``: ``oracle_success_2cm``, ``oracle_success_5cm``,
      ``oracle_mean_final_distance_m``. Oracle near 1 and ``success_2cm`` well below it: precision
      is bounded by perception, not by control;
    - with ``robustness``: ``robustness`` {bench: ``success_2cm``, ``success_5cm``,
      ``mean_final_distance_m``, ``encoder_ee_error_median_m``, ``encoder_error_depth_median_m``}
      and the worst bench's ``robustness_min_success_2cm`` / ``robustness_min_success_5cm``.
    """

    def __init__(
        self,
        cfg: config_lib.Config,
        act: Act,
        oracle: Act | None = None,
        benches: dict[str, randomize.DomainSpec] | None = None,
        phases: phases_lib.Phases | None = None,
    ):
        self.cfg = cfg
        self.act = act
        self.phases = phases or phases_lib.Phases()
        self.group = distributed.current()
        episodes = self.group.share(cfg.train.eval_envs)
        self.env = ReachEnv(cfg, episodes)
        self.benches = robustness_lib.benches(cfg.randomization) if benches is None else benches
        """{name: bench}: ``plain`` and the held-out benches (default ``robustness.benches``)."""
        share = (self.group.index, self.group.count)
        jit_rollout = lambda env, a: jax.jit(
            lambda params, key, spec: rollout(env, a, params, key, spec=spec, share=share)[:2]
        )
        self._rollouts = {"policy": jit_rollout(self.env, act)}
        if oracle is not None:
            self._rollouts["oracle"] = jit_rollout(ReachEnv(cfg, episodes, images=False), oracle)

    def _run(self, rollout: str, params: nnx.State | None, bench: str) -> tuple[dict, np.ndarray]:
        """Final metrics {name: (E,)} and ee errors (T, E, 3) of all E held-out episodes of ``bench``."""
        with self.phases(f"evaluation: {bench if rollout == 'policy' else rollout}"):
            final, err = self._rollouts[rollout](params, held_out_key(self.cfg), self.benches[bench])
            return jax.device_get((self.group.gather(final), self.group.gather(err, axis=1)))

    def _outcome(self, final: dict, prefix: str = "") -> dict:
        distance = final["distance"]
        return {
            f"{prefix}success_2cm": float(np.mean(distance < self.cfg.env.success_threshold_m)),
            f"{prefix}success_5cm": float(np.mean(distance < self.cfg.env.report_threshold_m)),
            f"{prefix}mean_final_distance_m": float(np.mean(distance)),
        }

    def bench(self, params: nnx.State | None, bench: str) -> dict:
        """The policy's outcome and encoder error on ``bench``'s held-out episodes."""
        final, err = self._run("policy", params, bench)
        norm = np.linalg.norm(err, axis=-1)
        result = {
            **self._outcome(final),
            "success": float(np.mean(final["success"])),
            "encoder_ee_error_m": float(np.mean(norm)),
            "encoder_ee_error_median_m": float(np.median(norm)),
        }
        for axis, values in error_per_camera_axis(err, self.cfg.env.camera).items():
            result |= {
                f"encoder_error_{axis}_median_m": float(np.median(values)),
                f"encoder_error_{axis}_p90_m": float(np.percentile(values, 90)),
            }
        return result

    def __call__(self, params: nnx.State | None = None, robustness: bool = True) -> dict:
        result = {"episodes": int(self.cfg.train.eval_envs), **self.bench(params, PLAIN)}
        if "oracle" in self._rollouts:
            oracle_final, _ = self._run("oracle", params, PLAIN)
            result |= self._outcome(oracle_final, "oracle_")
        if robustness:
            block = {name: self.bench(params, name) for name in self.benches if name != PLAIN}
            result["robustness"] = {name: {k: r[k] for k in ROBUSTNESS_FIELDS} for name, r in block.items()}
            for threshold in ("2cm", "5cm"):
                result[f"robustness_min_success_{threshold}"] = min(r[f"success_{threshold}"] for r in block.values())
        return result


def evaluate(
    cfg: config_lib.Config,
    act: Act,
    params: nnx.State | None = None,
    out: pathlib.Path | None = None,
    oracle: Act | None = None,
) -> dict:
    """``Evaluator(cfg, act, oracle)(params)``: held-out success, final distance and encoder ee error
    of policy ``act`` (see ``rollout``) with ``params``; writes ``eval.mp4`` into ``out`` when given."""
    result = Evaluator(cfg, act, oracle)(params)
    if out is not None and cfg.train.video_envs > 0:
        write_video(cfg, act, params, pathlib.Path(out) / "eval.mp4")
    return result


def write_video(cfg: config_lib.Config, act: Act, params: nnx.State | None, path: pathlib.Path) -> None:
    """An mp4 of ``cfg.train.video_envs`` held-out episodes of ``act`` with ``params``: policy camera
    (upscaled) beside the third-person view with the goal marker, episodes one after another."""
    from mjx_reach import video

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
    video.write_mp4(path, frames, fps=10)  # ffmpeg started without Python's fork hooks: JAX runs here
