"""Shared, session-scoped environments and runs for the tests, and the two tiers.

Building a ``ReachEnv`` is cheap, but compiling ``vmap(reset)`` / ``vmap(step)`` for MJX-Warp on
the CPU takes seconds each, so every env (and its jitted functions) is built once per session and
shared. ``reset``/``step``/``render`` are always called on exactly ``num_envs`` worlds: the Warp
render context is sized for that batch. The whole run, ``train.py`` processes the tests start
included, shares one JAX compilation cache and one Warp kernel cache (``.cache/`` of the checkout
unless ``JAX_COMPILATION_CACHE_DIR`` / ``WARP_CACHE_PATH`` say otherwise).

Tiers (docs/testing.md): ``pytest -q`` runs the fast tier; ``pytest -q -m slow`` the slow one
(tests marked ``slow``: learning to a threshold, several processes, whole workflows, the notebooks,
which are marked here).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable

REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".cache" / "jax"))
os.environ.setdefault("WARP_CACHE_PATH", str(REPO / ".cache" / "warp"))

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mujoco import mjx

from mjx_reach import camera as camera_model
from mjx_reach import config as config_lib
from mjx_reach import randomize, training
from mjx_reach.config import Config, EnvConfig, RandomizationConfig
from mjx_reach.env import ReachEnv

NUM_ENVS = 4
SMALL_NUM_ENVS = 2
TINY_RUN = [
    "--preset",
    "smoke",
    "--num-envs",
    "2",
    "--total-steps",
    "40",
    "--train.replay-capacity",
    "40",
    "--train.learning-starts",
    "20",
    "--train.eval-envs",
    "2",
    "--train.video-envs",
    "1",
    "--train.no-pretrain-encoder",
    "--env.episode-steps",
    "5",
]
"""``train.py`` flags of a run that goes through every stage in seconds (too short to learn)."""


@dataclasses.dataclass
class EnvHandle:
    """An env with its jitted, vmapped functions (all over exactly ``env.num_envs`` worlds)."""

    env: ReachEnv
    reset: Callable
    step: Callable
    render: Callable
    """``render(data, domain, qpos)`` → images (N, H, W, C): a fresh policy render of ``data`` with
    its arm joints set to ``qpos`` (N, 7) and rendering inputs ``domain``; no pixel noise."""

    @property
    def n(self) -> int:
        return self.env.num_envs

    def keys(self, seed: int) -> jax.Array:
        return jax.random.split(jax.random.key(seed), self.n)

    def actions(self, action) -> jax.Array:
        """The same action (3,) for every world, as an (N, 3) float32 array."""
        return jnp.tile(jnp.asarray(action, jnp.float32)[None], (self.n, 1))

    def ee(self, state) -> np.ndarray:
        """(N, 3) tool centre point positions, metres."""
        return np.asarray(state.data.site_xpos[:, self.env.scene.tcp_site])

    def nominal_projection(self, points, camera_cfg=None):
        """Project world points through the (un-randomized) policy camera of the config."""
        cam = camera_cfg or self.env.env_cfg.camera
        xmat = camera_model.look_at_xmat(cam.pos, cam.lookat)
        return camera_model.project(points, cam.pos, xmat, cam.fovy_deg, self.env.env_cfg.image_size)


def _fresh_render_fn(env: ReachEnv) -> Callable:
    def one(data: mjx.Data, domain: randomize.DomainParams, qpos: jax.Array) -> jax.Array:
        data = mjx.kinematics(env.mx, data.replace(qpos=qpos))
        m, data = randomize.apply(env.mx, data, domain, env.scene)
        image, _ = env.camera.render(m, data)
        return image

    return jax.jit(jax.vmap(one))


def make_handle(cfg: Config, num_envs: int) -> EnvHandle:
    env = ReachEnv(cfg, num_envs=num_envs)
    return EnvHandle(
        env=env,
        reset=jax.jit(jax.vmap(env.reset)),
        step=jax.jit(jax.vmap(env.step)),
        render=_fresh_render_fn(env),
    )


def select_worlds(states: list, indices, num_envs: int) -> object:
    """A batch made of worlds ``indices`` of the concatenation of batched ``states`` (leaves
    without a leading ``num_envs`` world axis, e.g. empty placeholders, are taken as they are)."""
    idx = jnp.asarray(indices)

    def pick(*xs):
        if xs[0].ndim == 0 or xs[0].shape[0] != num_envs:
            return xs[0]
        return jnp.concatenate(xs)[idx]

    return jax.tree.map(pick, *states)


PLAIN_CONFIG = Config(
    env=EnvConfig(init_joint_noise_rad=0.0),
    randomization=RandomizationConfig(enabled=False),
)
"""Randomization off (pixel noise keeps its default std but must be ignored) and every episode
starting at the home pose: renders are exactly reproducible and comparable across worlds."""


@pytest.fixture(scope="session")
def dr_env() -> EnvHandle:
    """The default config (domain randomization on), ``NUM_ENVS`` worlds."""
    return make_handle(Config(), NUM_ENVS)


@pytest.fixture(scope="session")
def plain_env() -> EnvHandle:
    """``PLAIN_CONFIG``, ``NUM_ENVS`` worlds."""
    return make_handle(PLAIN_CONFIG, NUM_ENVS)


@pytest.fixture(scope="session")
def dr_reset(dr_env):
    """A reset batch of the default env (seed 0)."""
    return dr_env.reset(dr_env.keys(0))


@pytest.fixture(scope="session")
def plain_reset(plain_env):
    """A reset batch of the plain env (seed 0)."""
    return plain_env.reset(plain_env.keys(0))


@pytest.fixture(scope="session")
def depth_env() -> EnvHandle:
    return make_handle(
        dataclasses.replace(PLAIN_CONFIG, env=dataclasses.replace(PLAIN_CONFIG.env, depth=True)), SMALL_NUM_ENVS
    )


@pytest.fixture(scope="session")
def second_camera_env() -> EnvHandle:
    return make_handle(
        dataclasses.replace(PLAIN_CONFIG, env=dataclasses.replace(PLAIN_CONFIG.env, second_camera=True)), SMALL_NUM_ENVS
    )


@pytest.fixture(scope="session")
def dynamic_env() -> EnvHandle:
    return make_handle(Config(env=EnvConfig(control_mode="dynamic")), SMALL_NUM_ENVS)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """The notebooks (nbmake's items) belong to the slow tier."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A run folder trained with the ``quick`` preset (a few CPU minutes): config.json,
    checkpoints/, metrics.csv, eval.json. Shared by the slow tier's tests of what training learns."""
    out = tmp_path_factory.mktemp("trained") / "run"
    training.run(config_lib.preset("quick"), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run folder of ``python train.py`` with ``TINY_RUN`` (every stage, too short to learn):
    what the export, evaluation and deploy tests need of a run, in the fast tier."""
    import train

    out = tmp_path_factory.mktemp("tiny") / "run"
    assert train.train([*TINY_RUN, "--out", str(out)]) == 0
    return out
