"""Your own bench behind the arm (``background``): the arm is masked out of the calibration frames,
the key pixels of a green-screen render are exactly the bench's, the background round-trips from
``python -m deploy calibrate`` through ``bench.json`` into training, and the twin bench renders what
it claims."""

from __future__ import annotations

import dataclasses
import json

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from mjx_reach import background, randomize, robustness
from mjx_reach import config as config_lib
from mjx_reach import scene as scene_lib
from mjx_reach.config import Config
from mjx_reach.env import ReachEnv

NUM_ENVS = 4


def test_bench_view_removes_a_moving_arm():
    """A static scene with a bright 'arm' square moving through it: the view is the scene wherever
    some frame shows it, and the coverage counts the pixels no frame shows."""
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    frames, masks = [], []
    for i in range(5):
        frame, mask = scene.copy(), np.zeros((40, 60), bool)
        mask[5:25, 10 * i : 10 * i + 12] = True
        mask[30:, :6] = True  # the arm's base: in every frame
        frame[mask] = 255
        frames.append(frame)
        masks.append(mask)
    view, coverage = background.bench_view(np.stack(frames), np.stack(masks), margin_px=1)
    free = ~np.stack([background._grow(m, 1) for m in masks]).all(axis=0)
    np.testing.assert_array_equal(view[free], scene[free])
    assert coverage == pytest.approx(free.mean())
    assert coverage < 1.0


@pytest.fixture(scope="module")
def calibrated_clutter_bench(tmp_path_factory):
    """``python -m deploy calibrate --twin --twin-bench clutter`` (the calibration twin on the
    cluttered twin bench), then ``python -m mjx_reach.background`` on its bench.json."""
    from deploy.__main__ import main as deploy_main

    out = tmp_path_factory.mktemp("cal")
    assert deploy_main(["calibrate", "--twin", "--twin-bench", "clutter", "--out", str(out)]) == 0
    assert background.main([str(out / "bench.json")]) == 0
    return out


def test_background_round_trips_from_calibrate_through_the_bench_into_training(calibrated_clutter_bench):
    out = calibrated_clutter_bench
    bench = json.loads((out / "bench.json").read_text())
    assert bench["camera"]["background"] == "background.png"
    policy = iio.imread(out / "background.png")
    full = iio.imread(out / "background_full.png")
    assert policy.shape == (84, 84, 3) and full.shape == (480, 640, 3)
    frames = np.load(out / "calibration_log.npz")["frames"]
    # The arm moved away from most of the view: the background matches the frames' median there,
    # and no frame is the background (each had the arm in it).
    assert np.mean(np.abs(full.astype(int) - np.median(frames, axis=0)) <= 8) > 0.9
    assert all(np.mean(np.any(f != full, axis=-1)) > 0.01 for f in frames)

    cfg = config_lib.with_bench_camera(config_lib.preset("smoke"), out / "bench.json")
    assert cfg.env.backgrounds == (str(out / "background.png"),)
    still = dataclasses.replace(
        cfg.randomization, pixel_noise=0.0, background_gain=0.0, background_bias=0.0, background_shift_px=0.0
    )
    env = ReachEnv(dataclasses.replace(cfg, randomization=still), NUM_ENVS)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), NUM_ENVS))
    images = np.asarray(state.obs["image"])
    same = np.all(images == policy[None], axis=-1)
    # The bench around the arm is the real view: most pixels, but not the arm's.
    assert np.all(same.mean(axis=(1, 2)) > 0.6) and np.all(same.mean(axis=(1, 2)) < 0.99)
    assert not np.any((images[..., 0] == 0) & (images[..., 2] == 0) & ~same), "a key pixel was left"


def test_keyed_pixels_are_exactly_the_bench(tmp_path):
    """With a background of one colour and no jitter, the composite shows that colour exactly where
    the green-screen render has the key, and nowhere on the arm (the arm never renders as the key,
    whatever its randomized colours)."""
    colour = np.array([200, 40, 120], np.uint8)
    path = tmp_path / "bg.png"
    iio.imwrite(path, np.broadcast_to(colour, (84, 84, 3)).copy())
    cfg = Config(env=dataclasses.replace(Config().env, backgrounds=(str(path),)))
    cfg = dataclasses.replace(
        cfg,
        randomization=dataclasses.replace(
            cfg.randomization,
            pixel_noise=0.0,
            color=0.3,
            background_gain=0.0,
            background_bias=0.0,
            background_shift_px=0.0,
            object_prob=0.0,
            poster_prob=0.0,
            person_prob=0.0,
        ),
    )
    keyed = ReachEnv(cfg, NUM_ENVS)
    domains = jax.jit(jax.vmap(keyed.sample_domain))(jax.random.split(jax.random.key(1), NUM_ENVS))
    assert np.all(np.asarray(domains.mat_rgba)[..., :3] >= randomize.ARM_MIN_RGB)
    state = jax.jit(jax.vmap(keyed.reset))(jax.random.split(jax.random.key(1), NUM_ENVS))
    images = np.asarray(state.obs["image"])
    bench = np.all(images == colour, axis=-1)
    assert np.all(bench.mean(axis=(1, 2)) > 0.5)
    assert not np.any((images[..., 0] == 0) & (images[..., 2] == 0))
    arm_pixels = ~bench
    assert np.all(arm_pixels.mean(axis=(1, 2)) > 0.01)


def test_twin_bench_renders_what_it_claims():
    scene = scene_lib.build_scene(Config().env)
    plain, clutter = robustness.twin_bench(scene, "plain"), robustness.twin_bench(scene, "clutter")
    nominal = randomize.nominal(scene)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(nominal)))
    rows = lambda ids: [int(np.flatnonzero(scene.posed_geoms == g)[0]) for g in ids]
    z = np.asarray(clutter.pool_xpos)[:, 2]
    assert np.all(z[rows(scene.held_out_objects)] > 0) and np.all(z[rows(scene.held_out_person)] > -1)
    assert np.all(z[rows(scene.objects)] < -1) and np.all(z[rows(scene.person)] < -1)
    assert int(clutter.geom_matid[scene.posters[0]]) in scene.held_out_materials
    assert int(clutter.geom_matid[scene.wall_geom]) in scene.held_out_materials
    np.testing.assert_array_equal(clutter.cam_xmat, nominal.cam_xmat)
    np.testing.assert_array_equal(clutter.light_diffuse, nominal.light_diffuse)
    with pytest.raises(ValueError, match="unknown twin bench"):
        robustness.twin_bench(scene, "kitchen")

    from mjx_reach.standins import twin

    frames = {}
    for name in ("plain", "clutter"):
        world = twin.TwinWorld(Config(), bench=name)
        frames[name] = twin.TwinCamera(world).read()[0]
    changed = np.abs(frames["plain"].astype(int) - frames["clutter"]).max(axis=-1) > 40  # beyond pixel noise
    assert 0.2 < changed.mean() < 0.9  # the wall, poster, figure and objects change; arm and table do not
