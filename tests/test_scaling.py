"""``--num-envs`` scaling of the defaults, ``--print-config`` and the memory refusal (cheap: no env
is built, nothing is compiled)."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import pytest

from mjx_reach import cli, memory
from mjx_reach import config as config_lib
from mjx_reach.config import STATE_DIM

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402  (the script at the repository root)

DEFAULT = config_lib.preset("default")


def _parse(argv: list[str]) -> config_lib.Config:
    return cli.parse(train.TrainArgs, argv, "").config


@pytest.mark.parametrize("argv", [[], ["--num-envs", "16"], ["--num-envs=16"]])
def test_cpu_default_is_exactly_the_preset(argv):
    assert _parse(argv) == DEFAULT
    assert config_lib.scale_to_num_envs(DEFAULT, DEFAULT.num_envs) == DEFAULT


def test_fewer_worlds_change_only_num_envs():
    smoke = config_lib.preset("smoke")
    assert _parse(["--preset", "smoke", "--num-envs", "4"]) == config_lib.Config(**{**smoke.__dict__, "num_envs": 4})


@pytest.mark.parametrize("num_envs", [1024, 4096, 8192])
def test_scaled_defaults_follow_the_rule(num_envs):
    cfg = config_lib.validate(config_lib.scale_to_num_envs(DEFAULT, num_envs))
    train_cfg, n = cfg.train, num_envs
    assert cfg.num_envs == n
    steps_per_world = train_cfg.total_env_steps / n
    assert steps_per_world >= 10 * cfg.env.episode_steps, "every world must finish several episodes"
    assert steps_per_world == DEFAULT.train.total_env_steps / DEFAULT.num_envs
    rows = train_cfg.replay_capacity // n
    assert train_cfg.replay_capacity == rows * n and rows >= 2
    replay_bytes = memory.replay_bytes(rows, n, config_lib.image_shape(cfg.env), STATE_DIM)
    assert replay_bytes <= config_lib.REPLAY_BUDGET_BYTES
    assert (
        memory.replay_bytes(1, 1, config_lib.image_shape(cfg.env), STATE_DIM)
        <= math.prod(config_lib.image_shape(cfg.env)) + config_lib.TRANSITION_FLOAT_BYTES
    )
    samples_per_env_step = train_cfg.updates_per_iteration * cfg.agent.batch_size / n
    assert samples_per_env_step >= config_lib.SAMPLES_PER_ENV_STEP
    assert DEFAULT.agent.batch_size < cfg.agent.batch_size <= 1024
    assert n <= train_cfg.learning_starts < train_cfg.replay_capacity
    assert train_cfg.eval_envs >= 1024
    assert not train_cfg.unroll_updates
    assert train_cfg.iterations_per_chunk * n >= config_lib.CHUNK_ENV_STEPS // 2
    chunks = math.ceil(train_cfg.total_env_steps / (train_cfg.iterations_per_chunk * n))
    assert math.ceil(chunks / train_cfg.eval_every_chunks) == config_lib.GPU_EVALUATIONS
    pre = cfg.pretrain
    assert pre.dataset_images % n == 0 and pre.dataset_images > DEFAULT.pretrain.dataset_images
    assert pre.dataset_images * math.prod(config_lib.image_shape(cfg.env)) <= config_lib.PRETRAIN_BUDGET_BYTES
    passes = lambda p: p.updates * p.batch_size / p.dataset_images
    assert passes(pre) == pytest.approx(passes(DEFAULT.pretrain), rel=0.01)


def test_scaling_grows_with_the_worlds():
    small, big = (config_lib.scale_to_num_envs(DEFAULT, n) for n in (1024, 4096))
    assert small.agent.batch_size < big.agent.batch_size
    assert small.train.updates_per_iteration < big.train.updates_per_iteration
    assert small.train.total_env_steps < big.train.total_env_steps
    assert small.pretrain.dataset_images < big.pretrain.dataset_images


def test_explicit_flags_override_the_scaled_defaults():
    scaled = config_lib.scale_to_num_envs(DEFAULT, 4096)
    cfg = _parse(["--num-envs", "4096", "--agent.batch-size", "77", "--train.unroll-updates"])
    assert cfg.agent.batch_size == 77 and cfg.train.unroll_updates
    assert cfg.train == config_lib.TrainConfig(**{**scaled.train.__dict__, "unroll_updates": True})


def test_pretrain_cli_scales_too():
    from mjx_reach import pretrain

    cfg = cli.parse(pretrain.PretrainArgs, ["--num-envs", "4096", "--pretrain.updates", "20"], "").config
    assert cfg.pretrain.dataset_images == config_lib.scale_to_num_envs(DEFAULT, 4096).pretrain.dataset_images
    assert cfg.pretrain.updates == 20


def test_bad_num_envs_is_a_one_line_error(capsys):
    assert cli.run_main(train.train, ["--num-envs", "many", "--print-config"]) == 2
    assert capsys.readouterr().err.strip() == "error: num_envs: must be an integer, got 'many'"


def test_print_config_prints_the_resolved_config_without_jax():
    code = (
        "import sys, runpy; sys.argv = ['train.py', '--num-envs', '4096', '--total-steps', '123', '--print-config']\n"
        "try:\n    runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'jax' not in sys.modules, 'printing the config imported JAX'"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    printed = config_lib.from_dict(config_lib.Config, json.loads(out))
    expected = config_lib.scale_to_num_envs(DEFAULT, 4096)
    assert printed == config_lib.Config(
        **{**expected.__dict__, "train": config_lib.TrainConfig(**{**expected.train.__dict__, "total_env_steps": 123})}
    )


def test_buffers_that_do_not_fit_are_refused_with_estimate_free_and_field():
    with pytest.raises(memory.DoesNotFitError) as err:
        memory.check_fits({"replay": 3 * 10**9, "render": 10**8}, "train.replay_capacity", free=2 * 10**9)
    message = str(err.value)
    assert "\n" not in message and message.startswith("train.replay_capacity:")
    assert "3.1 GB" in message and "2.0 GB free" in message
    memory.check_fits({"replay": 10**9}, "train.replay_capacity", free=2 * 10**9)


def test_training_refuses_a_huge_replay_before_building_anything(tmp_path):
    from mjx_reach import training

    cfg = config_lib.Config(num_envs=4, train=config_lib.TrainConfig(replay_capacity=10**9))
    with pytest.raises(
        memory.DoesNotFitError, match=r"^train\.replay_capacity: .* GB .* GB free; lower train\.replay_capacity"
    ):
        training.run(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_pretrain_refuses_a_huge_data_set(tmp_path, capsys):
    from mjx_reach import pretrain

    argv = ["--num-envs", "4", "--pretrain.dataset-images", str(10**9), "--out", str(tmp_path / "enc")]
    assert cli.run_main(pretrain.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: pretrain.dataset_images: ") and "GB free" in err and "\n" not in err
    assert not (tmp_path / "enc").exists()


def test_compare_scales_its_presets_too():
    from mjx_reach import compare

    cfg = compare.preset_config("default", 1000, 1024, None)
    scaled = config_lib.scale_to_num_envs(DEFAULT, 1024)
    assert cfg.agent == scaled.agent and cfg.train.total_env_steps == 1000
    assert cfg.train.replay_capacity == scaled.train.replay_capacity
