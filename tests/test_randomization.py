"""What training randomizes and what the held-out benches show (``randomize``, ``robustness``,
``patterns``): draws differ per world and per episode and stay within their ranges, the held-out
families are never drawn in training, and each held-out bench changes what it claims. Sampling is
pure JAX (nothing is rendered) except the last test, which renders one bench of each kind."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjx_reach import config as config_lib
from mjx_reach import patterns, randomize, robustness
from mjx_reach import scene as scene_lib
from mjx_reach.config import Config, RandomizationConfig

DRAWS = 2048
CFG = Config()


@pytest.fixture(scope="module")
def scene():
    return scene_lib.build_scene(CFG.env)


def _draw(scene, spec, n=DRAWS, seed=0, cfg: RandomizationConfig = CFG.randomization):
    base = randomize.nominal(scene)
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.device_get(jax.jit(jax.vmap(lambda k: randomize.sample(k, base, scene, cfg, spec)))(keys))


@pytest.fixture(scope="module")
def training(scene):
    return _draw(scene, randomize.spec(CFG.randomization))


def _rows(scene, ids):
    """Rows of ``DomainParams.pool_xpos`` for the geoms ``ids``."""
    return [int(np.flatnonzero(scene.posed_geoms == g)[0]) for g in ids]


def _shown(params, scene, ids):
    """(draws, len(ids)) whether each geom is placed above the floor."""
    return params.pool_xpos[:, _rows(scene, ids), 2] > scene_lib.HIDDEN_POS[2] + 1.0


def _saturation(rgb):
    return (rgb.max(-1) - rgb.min(-1)) / np.maximum(rgb.max(-1), 1e-9)


def test_pattern_families_are_disjoint_and_differ_by_seed():
    assert not set(patterns.TRAIN_FAMILIES) & set(patterns.HELD_OUT_FAMILIES)
    train = patterns.bank(patterns.TRAIN_FAMILIES, patterns.TRAIN_SEED)
    assert len(train) == len(patterns.TRAIN_FAMILIES) * patterns.PER_FAMILY
    for name, image in train:
        assert image.shape == (patterns.TEXTURE_PX, patterns.TEXTURE_PX, 3) and image.dtype == np.uint8, name
        assert image.std() > 5, f"{name} is a flat colour"
    again = patterns.bank(patterns.TRAIN_FAMILIES, patterns.TRAIN_SEED)
    other = patterns.bank(patterns.TRAIN_FAMILIES, patterns.TRAIN_SEED + 1)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(train, again))
    assert not any(np.array_equal(a, b) for (_, a), (_, b) in zip(train, other))


def test_draws_differ_per_world(training):
    assert len({tuple(np.round(row, 4)) for row in training.pool_xpos[:64, 0]}) == 64  # wall distance
    assert len({tuple(row) for row in training.geom_matid[:64]}) > 32
    assert np.unique(training.geom_rgba[:64, :, :3].reshape(64, -1), axis=0).shape[0] == 64


def test_training_draws_stay_within_their_ranges(scene, training):
    cfg = CFG.randomization
    wall_front = training.pool_xpos[:, 0, 1] - scene_lib.WALL_HALF_THICKNESS_M
    assert np.all(wall_front >= cfg.wall_distance_m[0] - 1e-5) and np.all(wall_front <= cfg.wall_distance_m[1] + 1e-5)
    assert np.all((training.geom_rgba >= 0) & (training.geom_rgba <= 1))
    objects = _shown(training, scene, scene.objects)
    assert 0.4 < objects.mean() < 0.6  # object_prob 0.5
    xy = training.pool_xpos[:, _rows(scene, scene.objects), :2][objects]
    in_region = np.zeros(len(xy), bool)
    for x0, y0, x1, y1 in randomize._TABLE_REGIONS:
        in_region |= (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    assert in_region.all()
    low, high = np.asarray(CFG.env.workspace_low), np.asarray(CFG.env.workspace_high)
    in_front_of_box = (xy[:, 0] > low[0] - 0.1) & (xy[:, 0] < high[0] + 0.1) & (xy[:, 1] < high[1] + 0.05)
    assert not in_front_of_box.any(), "an object stands in the arm's path or between it and the camera"
    size = training.geom_size[:, scene.objects]
    assert np.all(size[:, :, 0] >= 0.02 - 1e-6) and np.all(size.max(-1) <= 0.15 + 1e-6)
    z = training.pool_xpos[:, _rows(scene, scene.objects), 2][objects]
    assert np.all(z > 0) and np.all(z < 0.2)  # standing on the table top (z = 0)
    posters = _shown(training, scene, scene.posters)
    assert 0.3 < posters.mean() < 0.5  # poster_prob 0.4
    poster_y = training.pool_xpos[:, _rows(scene, scene.posters), 1]
    np.testing.assert_allclose(
        poster_y[posters], np.broadcast_to(wall_front[:, None], poster_y.shape)[posters] - 0.005, atol=1e-4
    )
    person = _shown(training, scene, scene.person[:1])[:, 0]
    assert 0.1 < person.mean() < 0.3  # person_prob 0.25, only where the wall leaves room
    person_y = training.pool_xpos[person, _rows(scene, scene.person[:1])[0], 1]
    assert np.all(person_y > scene_lib.TABLE_END_Y_M) and np.all(person_y < wall_front[person])


def test_held_out_families_are_never_drawn_in_training(scene, training):
    assert not _shown(training, scene, scene.held_out_objects).any()
    assert not _shown(training, scene, scene.held_out_person).any()
    randomized = np.concatenate([scene.coloured_geoms, scene.posed_geoms[1:]])
    used = set(np.unique(training.geom_matid[:, randomized])) - {-1}
    assert used and used <= set(scene.train_materials.tolist())
    surfaces = training.geom_rgba[:, scene.coloured_geoms, :3]
    assert np.all(_saturation(surfaces) < randomize.HELD_OUT_SATURATION)
    textured = training.geom_matid[:, scene.coloured_geoms] >= 0
    assert 0.4 < textured.mean() < 0.6  # texture_prob 0.5


def test_each_held_out_bench_changes_what_it_claims(scene):
    benches = robustness.benches(CFG.randomization)
    draws = {name: _draw(scene, spec, n=256, seed=1) for name, spec in benches.items()}
    plain = draws[robustness.PLAIN]
    assert not _shown(plain, scene, np.concatenate([scene.objects, scene.posters, scene.person])).any()
    assert np.all(plain.geom_matid[:, scene.coloured_geoms] == -1)
    np.testing.assert_allclose(plain.pool_xpos[:, 0, 1], 0.99 + scene_lib.WALL_HALF_THICKNESS_M, atol=1e-6)

    assert _shown(draws["objects"], scene, scene.held_out_objects).all()
    poster = draws["poster"]
    assert _shown(poster, scene, scene.posters[:1]).all()
    assert set(poster.geom_matid[:, scene.posters[0]]) <= set(scene.held_out_materials.tolist())
    wall = scene.coloured_geoms[-1]
    assert np.all(_saturation(draws["wall_colour"].geom_rgba[:, wall, :3]) >= randomize.HELD_OUT_SATURATION - 1e-5)
    assert set(draws["wall_pattern"].geom_matid[:, wall]) <= set(scene.held_out_materials.tolist())
    assert _shown(draws["person"], scene, scene.held_out_person).all()
    assert draws["person"].geom_rgba[:, scene.held_out_person, :3].max() <= 0.2 + 1e-6  # dark
    for name in ("objects", "poster", "wall_colour", "wall_pattern", "person", "tilt_1deg", "pan_1deg"):
        # Everything else is the plain bench's: the same episodes differ only in the bench.
        np.testing.assert_allclose(draws[name].light_diffuse, plain.light_diffuse, err_msg=name)

    nominal = randomize.nominal(scene).cam_xmat[scene.policy_cameras[0]]
    for name, axis in (("tilt_1deg", 0), ("pan_1deg", 1)):
        turn = np.einsum("ji,njk->nik", np.asarray(nominal), draws[name].cam_xmat[:, scene.policy_cameras[0]])
        angles = np.degrees(np.arccos(np.clip((np.trace(turn, axis1=1, axis2=2) - 1) / 2, -1, 1)))
        np.testing.assert_allclose(angles, robustness.CAMERA_OFF_DEG, atol=1e-3, err_msg=name)
        rotvec_axis = np.stack(
            [turn[:, 2, 1] - turn[:, 1, 2], turn[:, 0, 2] - turn[:, 2, 0], turn[:, 1, 0] - turn[:, 0, 1]], 1
        )
        assert np.all(np.abs(rotvec_axis[:, axis]) > 0.99 * np.linalg.norm(rotvec_axis, axis=1)), name
        signs = np.sign(rotvec_axis[:, axis])
        assert (signs > 0).any() and (signs < 0).any(), f"{name}: the camera turns either way"


def test_plain_level_draws_no_lab(scene):
    cfg = config_lib.RANDOMIZATION_LEVELS["plain"]
    draws = _draw(scene, randomize.spec(cfg), n=256, cfg=cfg)
    assert not _shown(draws, scene, scene.posed_geoms[1:]).any()
    assert np.all(draws.geom_matid[:, scene.coloured_geoms] == -1)


def test_config_refuses_bad_lab_ranges():
    bad = [
        (dict(object_prob=1.5), "randomization.object_prob"),
        (dict(texture_prob=-0.1), "randomization.texture_prob"),
        (dict(wall_distance_m=(0.5, 2.0)), "randomization.wall_distance_m"),
        (dict(wall_distance_m=(2.0, 1.0)), "randomization.wall_distance_m"),
        (dict(cam_rot_eval_deg=-1.0), "randomization.cam_rot_eval_deg"),
    ]
    for fields, name in bad:
        with pytest.raises(config_lib.ConfigError, match=name):
            config_lib.validate(
                dataclasses.replace(CFG, randomization=dataclasses.replace(CFG.randomization, **fields))
            )


def test_episodes_draw_new_benches(scene):
    """In the env, an episode's bench holds for the whole episode and the next episode draws anew."""
    from mjx_reach.env import ReachEnv

    cfg = dataclasses.replace(CFG, env=dataclasses.replace(CFG.env, episode_steps=2), num_envs=4)
    env = ReachEnv(cfg, 4, images=False)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(3), 4))
    step = jax.jit(jax.vmap(env.step))
    zero = jnp.zeros((4, 3))
    first = state.domain
    state = step(state, zero)
    np.testing.assert_array_equal(state.domain.geom_matid, first.geom_matid)
    state = step(state, zero)  # the episode ends here: the next one's domain
    assert not np.array_equal(np.asarray(state.domain.pool_xpos), np.asarray(first.pool_xpos))
