"""A run at a GPU-like config shrunk to a few worlds: rolled update scans, held-out evaluation every
few chunks, stop at the target, one env (model, pose bank, render context) per world count shared
by encoder pretraining, training and evaluation."""

import csv
import dataclasses
import json

import pytest

from mjx_reach import config as config_lib
from mjx_reach import env as env_lib
from mjx_reach import render, training
from mjx_reach import scene as scene_lib

NUM_ENVS = 4
CHUNK_STEPS = NUM_ENVS * 2
EVAL_EVERY = 2


def scaled_tiny_config() -> config_lib.Config:
    """The defaults ``python train.py --num-envs 4096`` resolves to (rolled update scans, periodic
    held-out evaluation), shrunk to ``NUM_ENVS`` worlds and a few chunks. The success threshold is
    wide (0.5 m) so that the untrained policy reaches the target and the run stops at its first
    evaluation."""
    scaled = config_lib.scale_to_num_envs(config_lib.preset("default"), 4096)
    assert not scaled.train.unroll_updates, "at 4096 worlds the update scans are rolled"
    cfg = dataclasses.replace(scaled, num_envs=NUM_ENVS)
    return dataclasses.replace(
        cfg,
        env=dataclasses.replace(cfg.env, success_threshold_m=0.5, report_threshold_m=0.5),
        agent=dataclasses.replace(cfg.agent, batch_size=8),
        train=dataclasses.replace(
            cfg.train,
            total_env_steps=10 * CHUNK_STEPS,
            iterations_per_chunk=2,
            learning_starts=8,
            replay_capacity=64,
            eval_every_chunks=EVAL_EVERY,
            eval_envs=NUM_ENVS,
            video_envs=0,
            target_success=0.25,
            stop_at_target=True,
        ),
        pretrain=dataclasses.replace(
            cfg.pretrain, updates=2, updates_per_call=1, dataset_images=NUM_ENVS, eval_images=NUM_ENVS, batch_size=4
        ),
    )


@pytest.fixture(scope="module")
def scaled_run(tmp_path_factory):
    """(run folder, render contexts built as (num_envs, camera ids), scenes built) of a tiny run
    with encoder pretraining, from empty env caches."""
    contexts, scenes = [], []
    camera_init, build_scene = render.Camera.__init__, scene_lib.build_scene

    def counting_camera(self, mj_model, num_envs, cameras, *args, **kwargs):
        contexts.append((num_envs, tuple(cameras)))
        camera_init(self, mj_model, num_envs, cameras, *args, **kwargs)

    def counting_scene(env_cfg):
        scenes.append(env_cfg)
        return build_scene(env_cfg)

    out = tmp_path_factory.mktemp("scaled") / "run"
    env_lib.release_shared()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(render.Camera, "__init__", counting_camera)
        mp.setattr(scene_lib, "build_scene", counting_scene)
        training.run(scaled_tiny_config(), out, progress=False)
    env_lib.release_shared()  # later tests build their envs without the spies
    return out, contexts, scenes


@pytest.mark.slow
def test_one_env_per_world_count(scaled_run):
    """Pretraining data, held-out pretraining images (other episode length and step size),
    training and evaluation, all at NUM_ENVS worlds, share one model and one render context."""
    _, contexts, scenes = scaled_run
    assert len(scenes) == 1
    assert [n for n, _ in contexts] == [NUM_ENVS], contexts


@pytest.mark.slow
def test_periodic_eval_rolled_scans_and_stop_at_target(scaled_run):
    """Held-out evaluation ran every EVAL_EVERY chunks (eval_* columns only on those rows); it
    reached the target at the first one, so the run stopped there with a checkpoint and eval.json
    (time_to_success_2cm_s = that row's wall_s)."""
    out, _, _ = scaled_run
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(float(r["env_steps"])) for r in rows] == [CHUNK_STEPS * (i + 1) for i in range(EVAL_EVERY)]
    assert [bool(r["eval_success_2cm"]) for r in rows] == [False] * (EVAL_EVERY - 1) + [True]
    last = rows[-1]
    for column in training.EVAL_COLUMNS:
        assert float(last[column]) >= 0
    assert float(last["eval_success_2cm"]) >= 0.25
    result = json.loads((out / "eval.json").read_text())
    assert result["episodes"] == NUM_ENVS and result["env_steps"] == EVAL_EVERY * CHUNK_STEPS
    assert result["target_success"] == 0.25
    assert result["time_to_success_2cm_s"] == pytest.approx(float(last["wall_s"]))
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == [
        str(EVAL_EVERY * CHUNK_STEPS)
    ]
    assert (out / "encoder").is_dir()


def test_time_to_success_reads_the_first_eval_row_at_target():
    rows = [
        {"wall_s": "1", "eval_success_2cm": ""},
        {"wall_s": "2", "eval_success_2cm": "0.5"},
        {"wall_s": "3", "eval_success_2cm": "0.96"},
        {"wall_s": "4", "eval_success_2cm": "0.99"},
    ]
    assert training.time_to_success(rows, 0.95) == 3.0
    assert training.time_to_success(rows, 1.0) is None
    assert training.time_to_success([], 0.95) is None


def test_cpu_default_evaluates_at_least_256_episodes():
    assert config_lib.Config().train.eval_envs >= 256
