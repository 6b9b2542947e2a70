"""Config validation, presets and (de)serialisation (no JAX needed except for the env check)."""

from __future__ import annotations

import dataclasses

import pytest

from mjx_reach import config as config_lib
from mjx_reach.config import (
    CameraConfig,
    Config,
    ConfigError,
    EnvConfig,
    RandomizationConfig,
    validate,
)


def _env(**kw) -> Config:
    return Config(env=EnvConfig(**kw))


def _dr(**kw) -> Config:
    return Config(randomization=RandomizationConfig(**kw))


def _assert_one_line_naming(err: pytest.ExceptionInfo, field: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    assert field in message, message
    assert message.startswith(field), f"the message should lead with the field: {message}"


def test_defaults_are_valid():
    cfg = Config()
    assert validate(cfg) is cfg
    assert validate(_env(control_mode="dynamic", second_camera=True, depth=True)).env.depth


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        (_env(control_mode="torque"), "env.control_mode"),
        (_env(reward="shaped"), "env.reward"),
        (_env(workspace_high=(0.60, 0.20, 0.90)), "env.workspace_high"),
        (_env(workspace_low=(-0.60, -0.20, 0.08)), "env.workspace_high"),  # box leaves the image on the left
        (_env(workspace_low=(0.25, -0.20, 0.01)), "env.workspace_low"),  # gripper into the table
        (_env(workspace_high=(0.26, 0.20, 0.36)), "env.workspace_high"),  # box thinner than 2 cm
        (_env(image_size=(8, 8)), "env.image_size"),
        (_env(image_size=(84, 0)), "env.image_size"),
        (_env(physics_dt_s=0.003), "env.physics_dt_s"),
        (_env(physics_dt_s=0.0), "env.physics_dt_s"),
        (_env(control_dt_s=-0.1), "env.control_dt_s"),
        (_env(max_step_m=0.5), "env.max_step_m"),
        (_env(episode_steps=0), "env.episode_steps"),
        (_env(ik_iterations=0), "env.ik_iterations"),
        (_env(ik_damping=0.0), "env.ik_damping"),
        (_env(success_threshold_m=0.1), "env.success_threshold_m"),
        (_env(init_joint_noise_rad=-0.1), "env.init_joint_noise_rad"),
        (_env(depth_range_m=(2.0, 0.5)), "env.depth_range_m"),
        (_env(camera=CameraConfig(fovy_deg=170.0)), "env.camera.fovy_deg"),
        (_env(camera=CameraConfig(roll_deg=200.0)), "env.camera.roll_deg"),
        (_env(camera=CameraConfig(pos=(0.4, 0.0, 0.3))), "env.camera.lookat"),  # pos == lookat
        (_env(camera=CameraConfig(pos=(0.4, 0.0, 2.0))), "env.camera.lookat"),  # straight down
        (_env(second_camera=True, camera2=CameraConfig(pos=(0.4, 0.0, 0.3))), "env.camera2.lookat"),
        (Config(num_envs=0), "num_envs"),
        (_dr(light_diffuse=(0.9, 0.4)), "randomization.light_diffuse"),
        (_dr(light_ambient=(0.1, 1.5)), "randomization.light_ambient"),
        (_dr(cam_pos_m=-0.01), "randomization.cam_pos_m"),
        (_dr(cam_rot_deg=-1.0), "randomization.cam_rot_deg"),
        (_dr(pixel_noise=-3.0), "randomization.pixel_noise"),
        (_dr(color=-0.1), "randomization.color"),
        (_dr(shadow_prob=1.5), "randomization.shadow_prob"),
    ],
)
def test_invalid_config_is_a_one_line_error_naming_the_field(cfg, field):
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    _assert_one_line_naming(err, field)


def test_workspace_leaving_the_image_names_the_camera():
    with pytest.raises(ConfigError) as err:
        validate(_env(workspace_high=(0.60, 0.20, 0.90)))
    _assert_one_line_naming(err, "env.workspace_high")
    assert "env.camera" in str(err.value)
    # The same box is fine for camera 1 but not for a narrow second camera.
    narrow = CameraConfig(pos=(1.25, -0.55, 0.75), lookat=(0.40, 0.0, 0.20), fovy_deg=10.0)
    validate(_env(camera2=narrow))  # camera2 unused: not checked
    with pytest.raises(ConfigError) as err:
        validate(_env(second_camera=True, camera2=narrow))
    _assert_one_line_naming(err, "env.workspace_high")
    assert "env.camera2" in str(err.value)


def test_env_constructor_validates():
    from mjx_reach.env import (
        ReachEnv,  # imported here: the rest of this module needs no JAX
    )

    with pytest.raises(ConfigError) as err:
        ReachEnv(_env(control_mode="torque"), num_envs=1)
    _assert_one_line_naming(err, "env.control_mode")


def test_presets():
    assert config_lib.preset("default") == Config()
    for name in config_lib.PRESETS:
        validate(config_lib.preset(name))
    with pytest.raises(ConfigError) as err:
        config_lib.preset("no-such-preset")
    _assert_one_line_naming(err, "preset")
    assert "no-such-preset" in str(err.value) and "default" in str(err.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_dict_round_trip_and_hash():
    cfg = Config(
        env=EnvConfig(image_size=(64, 96), depth=True, camera=CameraConfig(pos=(0.4, -1.4, 0.5))),
        randomization=RandomizationConfig(light_diffuse=(0.5, 0.8), pixel_noise=0.0),
        seed=3,
        num_envs=8,
    )
    data = config_lib.to_dict(cfg)
    back = config_lib.from_dict(Config, data)
    assert back == cfg
    assert config_lib.config_hash(back) == config_lib.config_hash(cfg)
    assert len(config_lib.config_hash(cfg)) == 12
    assert config_lib.config_hash(dataclasses.replace(cfg, seed=4)) != config_lib.config_hash(cfg)


def test_from_dict_rejects_unknown_fields():
    data = config_lib.to_dict(Config())
    data["env"]["max_step_cm"] = 2.0
    with pytest.raises(ConfigError) as err:
        config_lib.from_dict(Config, data)
    assert "\n" not in str(err.value)
    assert "max_step_cm" in str(err.value)


def test_bench_calibration_sets_the_camera_jitter():
    """A calibrated bench's pose standard deviations set the camera jitter: 3 sigma, plus a 1 degree
    margin for the orientation in training; a bench measured by hand keeps the config's."""
    from mjx_reach import contract

    cfg = Config().randomization
    calibrated = contract.Bench(
        cameras=(
            contract.BenchCamera(pos=(0, 0, 0), lookat=(1, 0, 0), position_std_m=0.004, rotation_std_deg=0.05),
            contract.BenchCamera(pos=(0, 0, 0), lookat=(1, 0, 0), position_std_m=0.001, rotation_std_deg=0.2),
        )
    )
    fields = config_lib.bench_camera_jitter(cfg, calibrated)
    assert fields["cam_pos_m"] == pytest.approx(0.012)
    assert fields["cam_rot_deg"] == pytest.approx(0.6 + config_lib.CAMERA_BUMP_MARGIN_DEG)
    assert fields["cam_rot_eval_deg"] == pytest.approx(0.6)
    tight = contract.Bench(cameras=(contract.BenchCamera(pos=(0, 0, 0), lookat=(1, 0, 0), position_std_m=0.0001),))
    assert config_lib.bench_camera_jitter(cfg, tight) == {"cam_pos_m": cfg.cam_pos_m}
    by_hand = contract.Bench(cameras=(contract.BenchCamera(pos=(0, 0, 0), lookat=(1, 0, 0)),))
    assert config_lib.bench_camera_jitter(cfg, by_hand) == {}
