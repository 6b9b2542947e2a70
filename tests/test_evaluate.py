"""Held-out evaluation diagnostics: the encoder's error along the policy camera's axes, and the
oracle rollout (the same actor fed the true ee position) on the same episodes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mjx_reach import camera as camera_model
from mjx_reach import config as config_lib
from mjx_reach import ddpg, evaluate

CAMERA = config_lib.CameraConfig()


def test_known_offsets_are_reported_on_the_right_camera_axes():
    pos, lookat = np.asarray(CAMERA.pos), np.asarray(CAMERA.lookat)
    forward = (lookat - pos) / np.linalg.norm(lookat - pos)
    xmat = camera_model.camera_xmat(CAMERA.pos, CAMERA.lookat, CAMERA.roll_deg)
    right, up = xmat[:, 0], xmat[:, 1]
    for offset, axis in [(0.03 * forward, "depth"), (-0.02 * right, "image_x"), (0.01 * up, "image_y")]:
        split = evaluate.error_per_camera_axis(np.tile(offset, (5, 4, 1)), CAMERA)
        for name, values in split.items():
            want = np.linalg.norm(offset) if name == axis else 0.0
            np.testing.assert_allclose(values, want, atol=1e-9, err_msg=f"{axis} offset read on {name}")


def test_camera_axes_follow_the_roll():
    rolled = dataclasses.replace(CAMERA, roll_deg=90.0)
    up = camera_model.camera_xmat(CAMERA.pos, CAMERA.lookat)[:, 1]
    split = evaluate.error_per_camera_axis(0.02 * up, rolled)
    assert split["image_x"] == pytest.approx(0.02) and split["image_y"] == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def tiny_eval_config() -> config_lib.Config:
    cfg = config_lib.Config(num_envs=4)
    return dataclasses.replace(
        cfg,
        env=dataclasses.replace(cfg.env, episode_steps=6),
        train=dataclasses.replace(cfg.train, eval_envs=4, video_envs=0),
    )


def test_oracle_rollout_equals_the_env_success_when_the_encoder_is_the_truth(tiny_eval_config):
    """Evaluating the oracle as the policy: its encoder error is 0, its success at the env's
    threshold is the env's own ``success`` metric, and the oracle fields (a rollout that renders
    nothing) repeat it exactly: the same episodes and physics as the rendered rollout."""
    cfg = tiny_eval_config
    agent = ddpg.Agent(cfg, config_lib.image_shape(cfg.env))
    params = agent.init().params
    oracle = evaluate.oracle_policy(agent)
    result = evaluate.Evaluator(cfg, oracle, oracle=oracle)(params)
    assert result["encoder_ee_error_m"] == 0.0 and result["encoder_error_depth_p90_m"] == 0.0
    assert result["success_2cm"] == result["success"] == result["oracle_success_2cm"]
    assert result["success_5cm"] == result["oracle_success_5cm"]
    assert result["mean_final_distance_m"] == pytest.approx(result["oracle_mean_final_distance_m"])
    policy = evaluate.Evaluator(cfg, evaluate.agent_policy(agent), oracle=oracle)(params)
    assert policy["oracle_success_2cm"] == result["success_2cm"], "the oracle runs on the same held-out episodes"
    assert policy["encoder_ee_error_m"] > 0 and {
        f"encoder_error_{a}_median_m" for a in ("image_x", "image_y", "depth")
    } <= set(policy)
