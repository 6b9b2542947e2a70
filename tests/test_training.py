"""DDPG update and training-loop tests (small sizes: updates dominate CPU time)."""

import csv
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjx_reach import config as config_lib
from mjx_reach import ddpg, replay, runs, training

IMAGE_SHAPE = (84, 84, 3)


@pytest.fixture(scope="module")
def agent_and_batch():
    cfg = config_lib.Config(agent=config_lib.AgentConfig(batch_size=16))
    agent = ddpg.Agent(cfg, IMAGE_SHAPE)
    rng = np.random.default_rng(0)
    buf = replay.create(8, 4, IMAGE_SHAPE, 20)
    for _ in range(8):
        state = rng.uniform(-0.5, 0.5, (4, 20)).astype(np.float32)
        obs = {"image": rng.integers(0, 255, (4, *IMAGE_SHAPE), dtype=np.uint8), "goal": state[:, 3:6], "state": state}
        buf = replay.add(
            buf, obs, rng.uniform(-1, 1, (4, 3)).astype(np.float32), -np.abs(state[:, 0]), np.zeros(4, bool)
        )
    return agent, replay.sample(buf, jax.random.PRNGKey(0), 16)


def test_update_shapes_and_finite(agent_and_batch):
    agent, batch = agent_and_batch
    state = agent.init()
    new, info = jax.jit(agent.update)(state, batch, jax.random.PRNGKey(1))
    assert int(new.updates) == 1
    assert jax.tree.structure(new.params) == jax.tree.structure(state.params)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params)):
        assert a.shape == b.shape and bool(jnp.all(jnp.isfinite(a)))
    assert all(np.isfinite(float(v)) for v in info.values())
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(new.target_params), jax.tree.leaves(state.target_params))
    ]
    assert any(changed), "Polyak averaging should move the targets"


def test_losses_decrease_on_fixed_batch(agent_and_batch):
    """Critic TD loss and bottleneck loss fall over 30 updates on one batch; the actor's -Q falls
    against a critic held fixed (the actor loss alone is not monotone while the critic moves)."""
    agent, batch = agent_and_batch
    update = jax.jit(agent.update)
    state = agent.init()
    _, _, first = agent.losses(state.params, state.target_params, batch, jax.random.PRNGKey(0))
    for i in range(30):
        state, _ = update(state, batch, jax.random.PRNGKey(i))
    _, _, last = agent.losses(state.params, state.target_params, batch, jax.random.PRNGKey(0))
    assert float(last["critic_loss"]) < float(first["critic_loss"])
    assert float(last["bottleneck_loss"]) < 0.5 * float(first["bottleneck_loss"])


def test_sample_masks_episode_boundaries():
    """Next obs is the next row; the newest row and rows that ended an episode are invalid."""
    buf = replay.create(4, 2, (2, 2, 3), 20)
    for t in range(6):
        state = np.full((2, 20), t, np.float32)
        state[:, 1] = [0, 1]  # env index
        obs = {"image": np.zeros((2, 2, 2, 3), np.uint8), "goal": state[:, :3], "state": state}
        buf = replay.add(buf, obs, np.zeros((2, 3), np.float32), np.zeros(2, np.float32), np.array([t == 3, False]))
    batch = jax.device_get(replay.sample(buf, jax.random.PRNGKey(0), 512))
    t, t_next = batch["state"][:, 0], batch["next_state"][:, 0]
    assert set(np.unique(t)) <= {2.0, 3.0, 4.0}  # rows 2..5 are held; 5 is the newest, never sampled
    valid = batch["valid"]
    assert np.all(t_next[valid] == t[valid] + 1)
    env = batch["state"][:, 1]
    assert np.any((t == 3) & (env == 0)) and not np.any(valid & (t == 3) & (env == 0))
    assert np.all(valid[(t != 3) | (env != 0)])
    assert 0.5 < valid.mean() < 1.0


def tiny_config(total: int) -> config_lib.Config:
    cfg = config_lib.Config(num_envs=4)
    return dataclasses.replace(
        cfg,
        agent=dataclasses.replace(cfg.agent, batch_size=16),
        train=dataclasses.replace(
            cfg.train,
            total_env_steps=total,
            iterations_per_chunk=2,
            learning_starts=8,
            replay_capacity=64,
            checkpoint_every_chunks=1,
            eval_envs=4,
            video_envs=0,
            pretrain_encoder=False,
        ),
    )


@pytest.mark.parametrize("per_step", [False, True])
def test_collection_draws_a_domain_per_episode_or_per_step(per_step):
    """Within an episode the collected images share one randomized domain, or with
    ``train.domain_per_step`` each step draws its own (the episode itself goes on)."""
    cfg = tiny_config(16)
    cfg = dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, iterations_per_chunk=1, domain_per_step=per_step)
    )
    trainer = training.Trainer(cfg)
    ts = trainer.init()
    before = jax.tree.map(np.asarray, ts.env.domain)
    goal = np.asarray(ts.env.goal)
    ts, _ = trainer._collect(ts)
    assert np.all(np.asarray(ts.env.steps) == 1)
    np.testing.assert_array_equal(np.asarray(ts.env.goal), goal)
    for field in ("cam_xpos", "cam_xmat", "light_diffuse"):
        old, new = getattr(before, field), np.asarray(getattr(ts.env.domain, field))
        same = np.all(new == old, axis=tuple(range(1, old.ndim)))  # per world
        assert (not same.any()) if per_step else same.all(), field


def test_run_then_resume(tmp_path):
    """A run writes its folder, with where its time went; --resume continues from the checkpoint's
    step and parameters and adds its time to the run's phase table."""
    out = tmp_path / "run"
    returned = training.run(tiny_config(16), out, progress=False)
    assert json.loads((out / "config.json").read_text())["num_envs"] == 4
    result = json.loads((out / "eval.json").read_text())
    assert 0 <= result["success_5cm"] <= 1 and np.isfinite(result["mean_final_distance_m"])
    assert "phases" not in result and returned["phases"] == json.loads((out / "phases.json").read_text())
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(float(r["env_steps"])) for r in rows] == [8, 16]
    first = returned["phases"]
    named = {"collection", "updates", "checkpoints", "evaluation: plain", "evaluation: oracle", "other"}
    assert named <= set(first["phases"]) and "evaluation: person" in first["phases"]
    assert "video" not in first["phases"]  # train.video_envs 0: no video made
    assert sum(row["s"] for row in first["phases"].values()) == pytest.approx(first["total_s"])
    assert all(0 <= row["compile_s"] <= row["s"] + 1e-6 for row in first["phases"].values())
    assert first["phases"]["collection"]["compile_s"] > 0  # the first chunk compiles its programs

    cfg = json.loads((out / "config.json").read_text())
    cfg["train"]["total_env_steps"] = 24
    (out / "config.json").write_text(json.dumps(cfg))
    resumed = training.run(tiny_config(24), out, resume=True, progress=False)["phases"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(float(r["env_steps"])) for r in rows] == [8, 16, 24]
    assert resumed["total_s"] > first["total_s"]
    assert resumed["phases"]["collection"]["s"] > first["phases"]["collection"]["s"]


def test_resume_without_checkpoint_is_one_line_error(tmp_path):
    with pytest.raises(runs.TrainingError) as err:
        training.run(tiny_config(8), tmp_path / "missing", resume=True, progress=False)
    assert "\n" not in str(err.value) and "--resume" in str(err.value)
