"""The xArm7 reach environment: functional ``reset``/``step`` over a ``State`` pytree.

``reset(key)`` and ``step(state, action)`` describe **one** world; batch them with ``jax.vmap``
over exactly ``num_envs`` worlds (the renderer's buffers are sized for that) and roll out with
``lax.scan(vmap(step))``::

    env = ReachEnv(cfg, num_envs=64)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(key, 64))
    state = jax.jit(jax.vmap(env.step))(state, actions)          # actions (64, 3) in [-1, 1]

Observations: ``image`` (H, W, C) uint8 from the policy camera(s), ``goal`` (3,) metres, and the
privileged ``state`` (20,) for the critic: ee position (3), goal (3), joint angles (7, rad), joint
velocities (7, rad/s). An action in [-1, 1]^3 moves the end-effector target by up to
``max_step_m`` per axis; the target is clipped to the workspace box and reached by DLS IK with the
gripper pointing down. Episodes end at the time limit only (``done`` marks the last step; the
returned state already holds the next episode's first observation, Brax-style auto-reset).

Envs share their heavy host-side parts: the compiled model, the initial-pose bank and each Warp
render context (with its BVH) are built once per process for a given world (``cfg.env`` without
the fields in ``STEP_ONLY_FIELDS``, ``cfg.randomization``'s shadows, ``cfg.seed``) and world count,
so training, held-out evaluation and encoder pretraining (which changes only ``episode_steps`` and
``max_step_m``) render through one context when their ``num_envs`` agree.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from mujoco import mjx

from mjx_reach import ik, randomize, render
from mjx_reach import scene as scene_lib
from mjx_reach.config import (
    Config,
    EnvConfig,
    gripper_visibility,
    image_shape,
    validate,
)

OVERVIEW_HW = (240, 320)
_POSE_BANK_SIZE = 256
_CACHED_WORLDS = 8
"""Models, pose banks and render contexts kept for reuse (least recently used ones are dropped)."""
STEP_ONLY_FIELDS = (
    "episode_steps",
    "max_step_m",
    "reward",
    "success_threshold_m",
    "report_threshold_m",
    "ik_iterations",
    "ik_damping",
)
"""``EnvConfig`` fields used only by the in-graph step logic: envs that differ only in them share
the model, the pose bank and the render contexts."""


@struct.dataclass
class State:
    """One world's state. Batched under ``vmap``: every field gains a leading ``num_envs`` axis."""

    data: mjx.Data
    domain: randomize.DomainParams
    spec: randomize.DomainSpec
    """What new episodes' domains are drawn from (``ReachEnv.spec`` unless ``reset`` got another)."""
    goal: jax.Array
    """(3,) goal position, metres."""
    target: jax.Array
    """(3,) commanded ee position, metres: actions move it (like the real arm's commanded pose), so
    a tracking lag in ``dynamic`` mode does not accumulate into drift."""
    obs: dict
    """``image`` (H, W, C) uint8, ``goal`` (3,) m, ``state`` (20,)."""
    reward: jax.Array
    """() reward of the last step."""
    done: jax.Array
    """() True when the last step ended an episode (time limit)."""
    steps: jax.Array
    """() int32 steps taken in the current episode."""
    metrics: dict
    """``distance`` (m), ``success`` and ``success_loose`` (bool) after the last step."""
    key: jax.Array


class ReachEnv:
    """Reach env for ``num_envs`` worlds (see the module docstring for the API). ``overview``: also
    a third-person render context (``overview_image``); ``images=False``: observations carry a
    zero image and nothing is rendered (for rollouts that act on the privileged state only)."""

    def __init__(self, cfg: Config, num_envs: int, overview: bool = False, images: bool = True):
        self.cfg = validate(cfg)
        self.images = images
        self.env_cfg, self.dr_cfg = cfg.env, cfg.randomization
        self.num_envs = num_envs
        world = world_config(cfg.env)
        self.scene, self.mx, self._data0 = _model(world)
        self._nominal = randomize.nominal(self.scene)
        self.spec = randomize.spec(cfg.randomization)
        """The training benches' ``DomainSpec`` (``reset``'s default)."""
        self.backgrounds = (
            jnp.asarray(render.load_backgrounds(cfg.env.backgrounds, cfg.env.image_size))
            if cfg.env.backgrounds
            else None
        )
        """(ncam, H, W, 3) uint8 green-screen backgrounds (``env.backgrounds``), or None."""
        self.workspace_low = jnp.asarray(cfg.env.workspace_low, jnp.float32)
        self.workspace_high = jnp.asarray(cfg.env.workspace_high, jnp.float32)
        _, home_xmat = scene_lib.tcp_pose(self.scene.mj_model, scene_lib.HOME_QPOS)
        self._tcp_xmat = jnp.asarray(home_xmat, jnp.float32)
        self._pose_bank = _pose_bank(world, cfg.seed)
        shadows = cfg.randomization.enabled and cfg.randomization.shadow_prob > 0
        self.camera = _render_context(world, num_envs, "policy", shadows) if images else None
        self.overview = _render_context(world, num_envs, "overview", False) if overview else None
        self._substeps = round(cfg.env.control_dt_s / cfg.env.physics_dt_s)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return image_shape(self.env_cfg)

    # --- episode start -------------------------------------------------------------------------
    def _episode_start(self, key: jax.Array, spec: randomize.DomainSpec):
        """Initial joint angles (7,), goal (3,) and domain parameters of a new episode."""
        k_pose, k_goal, k_domain = jax.random.split(key, 3)
        qpos = self._pose_bank[jax.random.randint(k_pose, (), 0, self._pose_bank.shape[0])]
        goal = jax.random.uniform(k_goal, (3,), minval=self.workspace_low, maxval=self.workspace_high)
        return qpos, goal, self.sample_domain(k_domain, spec)

    def sample_domain(self, key: jax.Array, spec: randomize.DomainSpec | None = None) -> randomize.DomainParams:
        """A randomized domain (camera, light, bench and distractor parameters) for one world, drawn
        from ``spec`` (default: the training benches, ``self.spec``)."""
        domain = randomize.sample(key, self._nominal, self.scene, self.dr_cfg, self.spec if spec is None else spec)
        return domain if self.backgrounds is None else randomize.key_bench(domain, self.scene)

    def redraw_domain(self, state: State, key: jax.Array) -> State:
        """``state`` of one world with a freshly drawn domain from its ``spec``: the next step renders
        in it (a domain per image rather than per episode; the physics is untouched)."""
        return state.replace(domain=self.sample_domain(key, state.spec))

    # --- observation ---------------------------------------------------------------------------
    def _observe(self, data: mjx.Data, domain, goal, key):
        """Forward kinematics, render, and the observation dict; returns (data, obs). Without
        ``images`` the image is zeros (nothing rendered; the physics is the same)."""
        data = mjx.kinematics(self.mx, data)
        m, data = randomize.apply(self.mx, data, domain, self.scene)
        if self.images:
            image, data = self.camera.render(m, data)
            if self.backgrounds is not None:
                image = render.composite_background(
                    image,
                    self.backgrounds,
                    domain.background_gain,
                    domain.background_bias,
                    domain.background_shift,
                    3 + self.env_cfg.depth,
                )
            if self.dr_cfg.enabled and self.dr_cfg.pixel_noise > 0:
                image = render.add_pixel_noise(image, key, self.dr_cfg.pixel_noise)
        else:
            image = jnp.zeros(self.image_shape, jnp.uint8)
        ee = data.site_xpos[self.scene.tcp_site]
        state = jnp.concatenate([ee, goal, data.qpos, data.qvel])
        return data, {"image": image, "goal": goal, "state": state}

    def overview_image(self, state: State) -> jax.Array:
        """Third-person view (240, 320, 3) uint8 with the goal marker (env built with ``overview=True``)."""
        image, _ = self.overview.render(*randomize.apply(self.mx, state.data, state.domain, self.scene))
        return image

    # --- API -----------------------------------------------------------------------------------
    def reset(self, key: jax.Array, spec: randomize.DomainSpec | None = None) -> State:
        """A new episode for one world; its domain, and those of the episodes that follow, drawn from
        ``spec`` (default ``self.spec``; ``robustness`` passes the held-out benches')."""
        spec = self.spec if spec is None else spec
        key, k_start, k_noise = jax.random.split(key, 3)
        qpos, goal, domain = self._episode_start(k_start, spec)
        data = self._data0.replace(qpos=qpos, ctrl=qpos, mocap_pos=goal[None])
        data, obs = self._observe(data, domain, goal, k_noise)
        zero = jnp.zeros((), jnp.float32)
        distance = jnp.linalg.norm(obs["state"][:3] - goal)
        return State(
            data=data,
            domain=domain,
            spec=spec,
            goal=goal,
            target=obs["state"][:3],
            obs=obs,
            reward=zero,
            done=jnp.zeros((), bool),
            steps=jnp.zeros((), jnp.int32),
            metrics=self._metrics(distance),
            key=key,
        )

    def step(self, state: State, action: jax.Array) -> State:
        """Apply ``action`` (3,) in [-1, 1] to one world; auto-resets at the time limit."""
        env = self.env_cfg
        key, k_start, k_noise = jax.random.split(state.key, 3)
        target = jnp.clip(
            state.target + jnp.clip(action, -1.0, 1.0) * env.max_step_m, self.workspace_low, self.workspace_high
        )
        data = self.move(state.data, target)
        distance = jnp.linalg.norm(data.site_xpos[self.scene.tcp_site] - state.goal)
        if env.reward == "progress":
            reward = (jnp.linalg.norm(state.obs["state"][:3] - state.goal) - distance) / env.max_step_m
        elif env.reward == "dense":
            reward = -distance
        else:
            reward = jnp.where(distance < env.success_threshold_m, 0.0, -1.0)
        steps = state.steps + 1
        done = steps >= env.episode_steps

        qpos0, goal0, domain0 = self._episode_start(k_start, state.spec)
        goal = jnp.where(done, goal0, state.goal)
        domain = jax.tree.map(lambda a, b: jnp.where(done, a, b), domain0, state.domain)
        data = data.replace(
            qpos=jnp.where(done, qpos0, data.qpos),
            qvel=jnp.where(done, 0.0, data.qvel),
            ctrl=jnp.where(done, qpos0, data.ctrl),
            mocap_pos=goal[None],
        )
        data, obs = self._observe(data, domain, goal, k_noise)
        target = jnp.where(done, obs["state"][:3], target)
        return State(
            data=data,
            domain=domain,
            spec=state.spec,
            goal=goal,
            target=target,
            obs=obs,
            reward=reward.astype(jnp.float32),
            done=done,
            steps=jnp.where(done, 0, steps),
            metrics=self._metrics(distance),
            key=key,
        )

    # --- internals -----------------------------------------------------------------------------
    def move(self, data: mjx.Data, target: jax.Array) -> mjx.Data:
        """Drive the arm towards ee ``target`` (3,) [m] for one control step; kinematics fresh."""
        env, sc = self.env_cfg, self.scene
        qpos = ik.solve(
            self.mx, data, target, self._tcp_xmat, sc.tcp_site, sc.tcp_body, env.ik_iterations, env.ik_damping
        )
        if env.control_mode == "kinematic":
            data = data.replace(qpos=qpos, qvel=(qpos - data.qpos) / env.control_dt_s)
            return mjx.kinematics(self.mx, data)
        data = jax.lax.fori_loop(0, self._substeps, lambda _, d: mjx.step(self.mx, d), data.replace(ctrl=qpos))
        return mjx.kinematics(self.mx, data)

    def _metrics(self, distance: jax.Array) -> dict:
        return {
            "distance": distance,
            "success": distance < self.env_cfg.success_threshold_m,
            "success_loose": distance < self.env_cfg.report_threshold_m,
        }


# --- shared host-side parts ----------------------------------------------------------------------
def world_config(env: EnvConfig) -> EnvConfig:
    """``env`` with the ``STEP_ONLY_FIELDS`` at their defaults: the key of the shared parts."""
    defaults = EnvConfig()
    return dataclasses.replace(env, **{name: getattr(defaults, name) for name in STEP_ONLY_FIELDS})


def release_shared() -> None:
    """Forget the shared models, pose banks and render contexts: envs built later build fresh ones
    (existing envs keep theirs). Frees their memory in a long-lived process once its envs are gone."""
    for cache in (_render_context, _pose_bank, _model):
        cache.cache_clear()


@functools.lru_cache(maxsize=_CACHED_WORLDS)
def _model(world: EnvConfig) -> tuple[scene_lib.Scene, mjx.Model, mjx.Data]:
    """The scene, its MJX-Warp model and an initial ``Data`` for ``world``, on this process's first
    device (MJX's default is the first device of all processes')."""
    scene = scene_lib.build_scene(world)
    device = jax.local_devices()[0]
    return (
        scene,
        mjx.put_model(scene.mj_model, impl="warp", device=device),
        mjx.make_data(scene.mj_model, impl="warp", device=device),
    )


@functools.lru_cache(maxsize=_CACHED_WORLDS)
def _pose_bank(world: EnvConfig, seed: int) -> jax.Array:
    """Joint configurations (K, 7) around home whose gripper is in the workspace box and in view."""
    mjm = _model(world)[0].mj_model
    rng = np.random.default_rng(seed)
    home = np.asarray(scene_lib.HOME_QPOS)
    bank = [home]
    for _ in range(100 * _POSE_BANK_SIZE):
        if len(bank) == _POSE_BANK_SIZE:
            break
        q = np.clip(home + rng.uniform(-1, 1, 7) * world.init_joint_noise_rad, mjm.jnt_range[:, 0], mjm.jnt_range[:, 1])
        tcp, _ = scene_lib.tcp_pose(mjm, q)
        in_box = np.all(tcp >= world.workspace_low) and np.all(tcp <= world.workspace_high)
        if in_box and gripper_visibility(world, world.camera, tcp)[2].all():
            bank.append(q)
    return jnp.asarray(np.stack(bank), jnp.float32)


@functools.lru_cache(maxsize=_CACHED_WORLDS)
def _render_context(world: EnvConfig, num_envs: int, view: str, shadows: bool) -> render.Camera:
    """The ``policy`` camera(s) or the ``overview`` camera (with the goal marker) of ``world``,
    rendering ``num_envs`` worlds."""
    scene = _model(world)[0]
    if view == "overview":
        return render.Camera(
            scene.mj_model,
            num_envs,
            [scene.overview_camera],
            OVERVIEW_HW,
            scene_lib.POLICY_GROUPS + (scene_lib.MARKER_GROUP,),
        )
    depth = world.depth_range_m if world.depth else None
    return render.Camera(
        scene.mj_model,
        num_envs,
        scene.policy_cameras,
        world.image_size,
        scene_lib.POLICY_GROUPS,
        depth_range_m=depth,
        shadows=shadows,
    )
