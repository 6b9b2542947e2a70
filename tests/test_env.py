"""The reach env under ``jit(vmap(...))``: observations, determinism, control, visibility, rendering,
domain randomization and the optional depth / second camera / dynamic control modes.

Envs come from session fixtures in ``conftest.py`` (``dr_env``: default config; ``plain_env``:
randomization off and every episode starting at home), always called on exactly ``num_envs`` worlds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import select_worlds

from mjx_reach import camera as camera_model
from mjx_reach import randomize
from mjx_reach import scene as scene_lib

AXES = [(axis, sign) for axis in range(3) for sign in (1.0, -1.0)]


def _changed(a, b) -> np.ndarray:
    """(..., H, W) mask of pixels whose colour differs between images a and b."""
    return np.any(np.asarray(a) != np.asarray(b), axis=-1)


def _hull_window(env_cfg, tcp, camera_cfg=None):
    """Pixel bounds (u0, v0, u1, v1) of the gripper hull around ``tcp`` (3,) in the nominal camera."""
    cam = camera_cfg or env_cfg.camera
    hull = camera_model.gripper_hull(tcp, env_cfg.gripper_half_width_m, env_cfg.gripper_height_m)
    xmat = camera_model.look_at_xmat(cam.pos, cam.lookat)
    uv, _ = camera_model.project(hull, cam.pos, xmat, cam.fovy_deg, env_cfg.image_size)
    h, w = env_cfg.image_size
    u0, v0 = np.clip(np.floor(uv.min(axis=0)).astype(int), 0, [w, h])
    u1, v1 = np.clip(np.ceil(uv.max(axis=0)).astype(int), 0, [w, h])
    return u0, v0, u1, v1


# --- 1. shapes and dtypes ---------------------------------------------------------------------
def _check_batch_layout(handle, state):
    n, env = handle.n, handle.env
    h, w = env.env_cfg.image_size
    assert env.image_shape == (h, w, 3) == (84, 84, 3)
    assert state.obs["image"].shape == (n, 84, 84, 3) and state.obs["image"].dtype == jnp.uint8
    assert state.obs["goal"].shape == (n, 3) and state.obs["goal"].dtype == jnp.float32
    assert state.obs["state"].shape == (n, 20) and state.obs["state"].dtype == jnp.float32
    assert state.goal.shape == (n, 3) and state.goal.dtype == jnp.float32
    assert state.reward.shape == (n,) and state.reward.dtype == jnp.float32
    assert state.done.shape == (n,) and state.done.dtype == jnp.bool_
    assert state.steps.shape == (n,) and state.steps.dtype == jnp.int32
    assert set(state.metrics) == {"distance", "success", "success_loose"}
    assert state.metrics["distance"].shape == (n,) and state.metrics["distance"].dtype == jnp.float32
    assert state.metrics["success"].dtype == jnp.bool_ and state.metrics["success_loose"].dtype == jnp.bool_
    for leaf in jax.tree.leaves(state.obs):
        assert np.all(np.isfinite(np.asarray(leaf, np.float64)))


def _check_obs_contents(handle, state, distance_atol=1e-6):
    """The privileged state is [ee (3), goal (3), qpos (7), qvel (7)] and the metrics match it."""
    obs, ee = np.asarray(state.obs["state"]), handle.ee(state)
    goal = np.asarray(state.goal)
    np.testing.assert_array_equal(obs[:, :3], ee)
    # The goal is a copy, but newer XLA versions may fuse its computation differently (6e-8 m apart
    # with jax 0.12): equal to well below a micrometre.
    np.testing.assert_allclose(obs[:, 3:6], goal, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state.obs["goal"]), goal, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(obs[:, 6:13], np.asarray(state.data.qpos))
    np.testing.assert_array_equal(obs[:, 13:20], np.asarray(state.data.qvel))
    cfg = handle.env.env_cfg
    dist = np.asarray(state.metrics["distance"])
    np.testing.assert_allclose(dist, np.linalg.norm(ee - goal, axis=1), atol=distance_atol)
    np.testing.assert_array_equal(np.asarray(state.metrics["success"]), dist < cfg.success_threshold_m)
    np.testing.assert_array_equal(np.asarray(state.metrics["success_loose"]), dist < cfg.report_threshold_m)


def test_reset_observation_shapes_and_contents(dr_env, dr_reset):
    _check_batch_layout(dr_env, dr_reset)
    _check_obs_contents(dr_env, dr_reset)
    assert not np.any(np.asarray(dr_reset.done))
    assert np.all(np.asarray(dr_reset.steps) == 0)
    assert np.all(np.asarray(dr_reset.reward) == 0)
    assert np.all(np.asarray(dr_reset.data.qvel) == 0)


def _progress_reward(handle, before, after) -> np.ndarray:
    """The default ``progress`` reward of the step ``before`` → ``after``: the distance to the goal
    gained (metres; from the observed ee before, to the distance ``after`` reports), over max_step_m."""
    gained = np.linalg.norm(np.asarray(before.obs["state"][:, :3]) - np.asarray(before.goal), axis=1) - np.asarray(
        after.metrics["distance"]
    )
    return gained / handle.env.env_cfg.max_step_m


def test_step_observation_shapes_reward_and_metrics(dr_env, dr_reset):
    actions = jnp.asarray([[1.0, 0.0, 0.0], [0.0, -1.0, 0.5], [0.3, 0.3, -0.3], [0.0, 0.0, 0.0]], jnp.float32)
    state = dr_env.step(dr_reset, actions)
    _check_batch_layout(dr_env, state)
    _check_obs_contents(dr_env, state)
    assert np.all(np.asarray(state.steps) == 1)
    assert not np.any(np.asarray(state.done))
    np.testing.assert_allclose(np.asarray(state.reward), _progress_reward(dr_env, dr_reset, state), atol=1e-4)
    # Kinematic mode: qvel is the joint displacement over the control period.
    dq = (np.asarray(state.data.qpos) - np.asarray(dr_reset.data.qpos)) / dr_env.env.env_cfg.control_dt_s
    np.testing.assert_allclose(np.asarray(state.data.qvel), dq, atol=1e-4)


def test_episode_time_limit_and_auto_reset(plain_env, plain_reset):
    """``done`` marks the ``episode_steps``-th step; the returned state is the next episode's start."""
    limit = plain_env.env.env_cfg.episode_steps
    state = plain_reset
    actions = plain_env.actions([0.5, -0.5, 0.5])
    for i in range(1, limit + 1):
        prev = state
        state = plain_env.step(state, actions)
        if i < limit:
            assert not np.any(np.asarray(state.done)), i
            assert np.all(np.asarray(state.steps) == i)
    assert np.all(np.asarray(state.done))
    assert np.all(np.asarray(state.steps) == 0)
    # The reward still scores the last move of the old episode ...
    moved = plain_env.ee(state)  # (new episode start)
    np.testing.assert_allclose(np.asarray(state.reward), _progress_reward(plain_env, prev, state), atol=1e-4)
    # ... while the observation is the new episode's first one: home pose, new goal, at rest.
    home_tcp, _ = scene_lib.tcp_pose(plain_env.env.scene.mj_model, scene_lib.HOME_QPOS)
    np.testing.assert_allclose(moved, np.tile(home_tcp, (plain_env.n, 1)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(state.data.qpos), np.tile(scene_lib.HOME_QPOS, (plain_env.n, 1)), atol=1e-6)
    assert np.all(np.asarray(state.data.qvel) == 0)
    assert np.all(np.any(np.asarray(state.goal) != np.asarray(prev.goal), axis=1))
    np.testing.assert_array_equal(np.asarray(state.data.mocap_pos[:, 0]), np.asarray(state.goal))
    obs = np.asarray(state.obs["state"])
    np.testing.assert_array_equal(obs[:, :3], moved)
    np.testing.assert_array_equal(obs[:, 3:6], np.asarray(state.goal))
    fresh = plain_env.render(state.data, state.domain, state.data.qpos)
    np.testing.assert_array_equal(np.asarray(state.obs["image"]), np.asarray(fresh))
    np.testing.assert_array_equal(np.asarray(state.obs["image"]), np.asarray(plain_reset.obs["image"]))


# --- 2. determinism ---------------------------------------------------------------------------
def test_reset_and_step_are_deterministic_per_key(dr_env, dr_reset):
    again = dr_env.reset(dr_env.keys(0))
    for a, b in zip(jax.tree.leaves(dr_reset.obs), jax.tree.leaves(again.obs)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(dr_reset.data.qpos), np.asarray(again.data.qpos))
    actions = dr_env.actions([0.2, -0.7, 0.4])
    s1, s2 = dr_env.step(dr_reset, actions), dr_env.step(again, actions)
    np.testing.assert_array_equal(np.asarray(s1.obs["image"]), np.asarray(s2.obs["image"]))
    np.testing.assert_array_equal(np.asarray(s1.obs["state"]), np.asarray(s2.obs["state"]))

    other = dr_env.reset(dr_env.keys(1))
    goals, other_goals = np.asarray(dr_reset.goal), np.asarray(other.goal)
    assert np.all(np.any(goals != other_goals, axis=1))
    assert len({tuple(g) for g in goals}) == dr_env.n  # every world gets its own goal
    assert not np.array_equal(np.asarray(dr_reset.obs["image"]), np.asarray(other.obs["image"]))


# --- 3. control -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def interior_states(dr_env, dr_reset):
    """``num_envs`` reset worlds (default config) whose tool centre point is at least
    ``max_step_m`` + 5 mm inside every face of the workspace box, so no target gets clipped."""
    cfg = dr_env.env.env_cfg
    margin = cfg.max_step_m + 0.005
    batches = [dr_reset] + [dr_env.reset(dr_env.keys(seed)) for seed in (10, 11, 12)]
    ee = np.concatenate([dr_env.ee(b) for b in batches])
    ok = np.all((ee >= np.add(cfg.workspace_low, margin)) & (ee <= np.subtract(cfg.workspace_high, margin)), axis=1)
    idx = np.flatnonzero(ok)[: dr_env.n]
    assert len(idx) == dr_env.n, f"only {ok.sum()} of {len(ok)} reset worlds are inside the box by {margin} m"
    return select_worlds(batches, idx, dr_env.n)


@pytest.mark.parametrize(("axis", "sign"), AXES)
def test_action_moves_tcp_by_max_step_along_axis(dr_env, interior_states, axis, sign):
    """A unit action along one axis moves the TCP by ``max_step_m`` (0.02 m) that way in one step:
    on-axis error below 2 mm and off-axis motion below 1.5 mm (measured: about 0.7 mm / 0.6 mm)."""
    step = dr_env.env.env_cfg.max_step_m
    action = np.zeros(3, np.float32)
    action[axis] = sign
    before = dr_env.ee(interior_states)
    after = dr_env.ee(dr_env.step(interior_states, dr_env.actions(action)))
    delta = after - before
    np.testing.assert_allclose(delta[:, axis], sign * step, atol=2e-3)
    off = np.delete(delta, axis, axis=1)
    assert np.max(np.abs(off)) < 1.5e-3, delta


def test_action_scales_and_is_clipped(dr_env, interior_states):
    """Half an action moves half as far (2 mm tolerance); actions beyond [-1, 1] act as ±1."""
    step = dr_env.env.env_cfg.max_step_m
    before = dr_env.ee(interior_states)
    half = dr_env.ee(dr_env.step(interior_states, dr_env.actions([0.0, 0.5, 0.0]))) - before
    np.testing.assert_allclose(half[:, 1], 0.5 * step, atol=2e-3)
    big = dr_env.step(interior_states, dr_env.actions([5.0, 0.0, 0.0]))
    unit = dr_env.step(interior_states, dr_env.actions([1.0, 0.0, 0.0]))
    np.testing.assert_array_equal(dr_env.ee(big), dr_env.ee(unit))


def test_zero_action_holds_position_and_points_down(dr_env, interior_states):
    """With zero actions the TCP stays within 1.5 mm of where it started over 10 steps, and the
    gripper ends up pointing down (IK orientation target: within 2 degrees of the home rotation)."""
    state, start = interior_states, dr_env.ee(interior_states)
    for _ in range(10):
        state = dr_env.step(state, dr_env.actions([0.0, 0.0, 0.0]))
    assert np.max(np.linalg.norm(dr_env.ee(state) - start, axis=1)) < 1.5e-3
    _, home_xmat = scene_lib.tcp_pose(dr_env.env.scene.mj_model, scene_lib.HOME_QPOS)
    xmat = np.asarray(state.data.site_xmat[:, dr_env.env.scene.tcp_site]).reshape(-1, 3, 3)
    for r in xmat:
        angle = np.degrees(np.arccos(np.clip((np.trace(home_xmat.T @ r) - 1) / 2, -1, 1)))
        assert angle < 2.0


def test_target_is_clipped_to_workspace_box(plain_env, plain_reset):
    """Pushing against a face of the box stops the TCP on it (within 3 mm) and leaves the other
    coordinates where they were (within 3 mm); pushing into the far top corner (0.6, ±0.2, 0.36),
    which the downward-pointing gripper cannot quite reach (~14 mm short), never leaves the box."""
    cfg = plain_env.env.env_cfg
    low, high = np.asarray(cfg.workspace_low), np.asarray(cfg.workspace_high)
    start = plain_env.ee(plain_reset)
    pushes = [(axis, sign) for axis in range(3) for sign in (1.0, -1.0)]
    for axis, sign in pushes:
        action = np.zeros(3, np.float32)
        action[axis] = sign
        state = plain_reset
        for _ in range(12):  # 0.24 m: further than any face is from home
            state = plain_env.step(state, plain_env.actions(action))
        ee = plain_env.ee(state)
        expected = start.copy()
        expected[:, axis] = high[axis] if sign > 0 else low[axis]
        np.testing.assert_allclose(ee, expected, atol=3e-3, err_msg=f"axis {axis} sign {sign}")
    for action in ([1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]):
        state = plain_reset
        for _ in range(15):
            state = plain_env.step(state, plain_env.actions(action))
            ee = plain_env.ee(state)
            assert np.all(ee >= low - 1e-3) and np.all(ee <= high + 1e-3), ee
    np.testing.assert_allclose(ee, np.tile(low, (plain_env.n, 1)), atol=3e-3)  # the low corner is reachable


# --- 4. visibility ----------------------------------------------------------------------------
def test_goals_in_box_and_visible_with_gripper(dr_env, dr_reset):
    cfg = dr_env.env.env_cfg
    batches = [dr_reset] + [dr_env.reset(dr_env.keys(seed)) for seed in range(20, 27)]
    goals = np.concatenate([np.asarray(b.goal) for b in batches])
    assert np.all(goals >= np.asarray(cfg.workspace_low)) and np.all(goals <= np.asarray(cfg.workspace_high))
    spread = goals.max(axis=0) - goals.min(axis=0)  # goals cover the box, not one spot
    assert np.all(spread > 0.4 * (np.asarray(cfg.workspace_high) - np.asarray(cfg.workspace_low)))
    uv, depth = dr_env.nominal_projection(goals)
    assert np.all(camera_model.pixels_inside(uv, depth, cfg.image_size, cfg.frame_margin_px))
    hull = camera_model.gripper_hull(goals, cfg.gripper_half_width_m, cfg.gripper_height_m)
    uv, depth = dr_env.nominal_projection(hull)
    assert np.all(camera_model.pixels_inside(uv, depth, cfg.image_size, cfg.frame_margin_px))

    tcp = np.concatenate([dr_env.ee(b) for b in batches])
    assert np.all(tcp >= np.asarray(cfg.workspace_low) - 1e-6) and np.all(tcp <= np.asarray(cfg.workspace_high) + 1e-6)
    uv, depth = dr_env.nominal_projection(tcp)
    assert np.all(camera_model.pixels_inside(uv, depth, cfg.image_size, cfg.frame_margin_px))
    hull = camera_model.gripper_hull(tcp, cfg.gripper_half_width_m, cfg.gripper_height_m)
    uv, depth = dr_env.nominal_projection(hull)
    assert np.all(camera_model.pixels_inside(uv, depth, cfg.image_size, cfg.frame_margin_px))


def _wrist_turn_check(handle, state, channels: slice, camera_cfg, u_tol: float, v_tol: float):
    """Render ``state`` as is and with joint 7 turned a quarter turn: only the gripper changes.
    Its changed pixels straddle the gripper axis, so their mean column is the TCP's column, and
    their lowest row is the fingertips, i.e. the TCP's row (the TCP sits ~1 cm below the tips)."""
    qpos = state.data.qpos
    a = np.asarray(handle.render(state.data, state.domain, qpos))[..., channels]
    b = np.asarray(handle.render(state.data, state.domain, qpos.at[:, 6].add(np.pi / 2)))[..., channels]
    uv, _ = handle.nominal_projection(handle.ee(state), camera_cfg)
    for i in range(handle.n):
        rows, cols = np.nonzero(_changed(a[i], b[i]))
        assert len(rows) > 30, f"world {i}: the gripper barely shows ({len(rows)} px changed)"
        assert abs(cols.mean() + 0.5 - uv[i, 0]) < u_tol, (i, cols.mean() + 0.5, uv[i])
        assert abs(rows.max() + 1.0 - uv[i, 1]) < v_tol, (i, rows.max() + 1.0, uv[i])


def _moved_apart(handle, state, steps=4):
    """Step each world in a different direction so the poses differ (targets stay in the box)."""
    actions = jnp.asarray(
        [[1.0, 0.0, 0.5], [-1.0, 0.5, -1.0], [0.5, -1.0, 1.0], [0.0, 1.0, -0.5]][: handle.n], jnp.float32
    )
    for _ in range(steps):
        state = handle.step(state, actions)
    return state


def test_renderer_agrees_with_camera_model(plain_env, plain_reset):
    """The policy render puts the gripper where ``camera.project`` says the TCP is: centroid
    column within 1 px (measured: < 0.35 px), fingertip row within 2 px (measured: < 0.7 px)."""
    state = _moved_apart(plain_env, plain_reset)
    tcp_uv, _ = plain_env.nominal_projection(plain_env.ee(state))
    assert np.ptp(tcp_uv[:, 0]) > 5 and np.ptp(tcp_uv[:, 1]) > 5  # genuinely different poses
    _wrist_turn_check(plain_env, state, slice(0, 3), None, u_tol=1.0, v_tol=2.0)


# --- 5. randomization -------------------------------------------------------------------------
def test_randomization_changes_image_and_is_reproducible(dr_env, dr_reset):
    """Same arm pose and goal in every world, different domain keys → different images; the same
    domain key → the same image."""
    env, n = dr_env.env, dr_env.n
    first = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), dr_reset)
    keys = jax.random.split(jax.random.key(123), n)
    keys = keys.at[n - 1].set(keys[0])  # the last world repeats the first key
    base = randomize.nominal(env.scene)
    domains = jax.vmap(lambda k: randomize.sample(k, base, env.scene, env.dr_cfg, env.spec))(keys)
    images = np.asarray(dr_env.render(first.data, domains, first.data.qpos))
    for i in range(n - 1):
        for j in range(i + 1, n - 1):
            changed = _changed(images[i], images[j]).mean()
            assert changed > 0.2, (i, j, changed)
    np.testing.assert_array_equal(images[0], images[n - 1])
    again = np.asarray(dr_env.render(first.data, domains, first.data.qpos))
    np.testing.assert_array_equal(images, again)
    nominal = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), base)
    plain = np.asarray(dr_env.render(first.data, nominal, first.data.qpos))
    assert _changed(plain[0], images[0]).mean() > 0.2
    # The policy camera moves, the overview camera does not.
    cam_pos = np.asarray(domains.cam_xpos)
    policy, overview = env.scene.policy_cameras[0], env.scene.overview_camera
    assert np.ptp(cam_pos[:-1, policy], axis=0).max() > 0
    assert np.ptp(cam_pos[:, overview], axis=0).max() == 0


def test_pixel_noise_on_top_of_a_fresh_render(dr_env, dr_reset):
    """With randomization on, the observation is a fresh render of the state plus zero-mean
    uniform noise of std ``pixel_noise`` (3 levels): |noise| <= 6, std within [2, 4]."""
    fresh = np.asarray(dr_env.render(dr_reset.data, dr_reset.domain, dr_reset.data.qpos)).astype(int)
    noise = np.asarray(dr_reset.obs["image"]).astype(int) - fresh
    interior = (fresh > 10) & (fresh < 245)  # away from clipping
    assert np.abs(noise).max() <= 6
    assert abs(noise[interior].mean()) < 0.2
    assert 2.0 < noise[interior].std() < 4.0


def test_disabled_randomization_renders_identical_images(plain_env, plain_reset):
    """``RandomizationConfig(enabled=False)`` (pixel noise left at its default std): resets with
    different keys but the same arm pose render identical images and the nominal domain."""
    other = plain_env.reset(plain_env.keys(1))
    np.testing.assert_array_equal(np.asarray(plain_reset.data.qpos), np.asarray(other.data.qpos))
    assert np.all(np.any(np.asarray(plain_reset.goal) != np.asarray(other.goal), axis=1))
    images = np.concatenate([np.asarray(plain_reset.obs["image"]), np.asarray(other.obs["image"])])
    for image in images[1:]:
        np.testing.assert_array_equal(image, images[0])
    nominal = randomize.nominal(plain_env.env.scene)
    for got, want in zip(jax.tree.leaves(other.domain), jax.tree.leaves(nominal)):
        np.testing.assert_array_equal(np.asarray(got), np.broadcast_to(np.asarray(want), got.shape))
    fresh = plain_env.render(other.data, other.domain, other.data.qpos)
    np.testing.assert_array_equal(np.asarray(fresh), images[plain_env.n :])


# --- 6. no stale frames -----------------------------------------------------------------------
def test_image_follows_the_arm_without_lag(plain_env, plain_reset):
    """After each step the image is a fresh render of the *new* pose (a stale frame would equal
    the previous pose's render), and it changed around the gripper."""
    cfg = plain_env.env.env_cfg
    state = plain_reset
    for action in ([1.0, 0.0, 0.0], [0.0, -1.0, 1.0], [-1.0, 1.0, -1.0]):
        prev = state
        state = plain_env.step(prev, plain_env.actions(action))
        image = np.asarray(state.obs["image"])
        fresh = np.asarray(plain_env.render(state.data, state.domain, state.data.qpos))
        np.testing.assert_array_equal(image, fresh)
        old_pose = np.asarray(plain_env.render(state.data, state.domain, prev.data.qpos))
        np.testing.assert_array_equal(old_pose, np.asarray(prev.obs["image"]))
        changed = _changed(image, prev.obs["image"])
        for i in range(plain_env.n):
            u0, v0, u1, v1 = _hull_window(cfg, plain_env.ee(state)[i])
            assert changed[i, v0:v1, u0:u1].sum() >= 10, (action, i)
            assert changed[i, v0:v1, u0:u1].mean() > changed[i].mean()  # concentrated at the gripper


# --- 9. options -------------------------------------------------------------------------------
def _pixel_ray_depths(cam, image_hw):
    """Depth along the view axis (H, W) of each pixel centre's ray to the table plane z=0, and the
    world hit points (H, W, 3)."""
    h, w = image_hw
    xmat = camera_model.look_at_xmat(cam.pos, cam.lookat)
    f = camera_model.focal_length_px(cam.fovy_deg, h)
    v, u = np.mgrid[0:h, 0:w] + 0.5
    ray_cam = np.stack([(u - w / 2) / f, -(v - h / 2) / f, -np.ones_like(u)], axis=-1)
    ray = ray_cam @ xmat.T
    t = np.where(ray[..., 2] < 0, -cam.pos[2] / np.minimum(ray[..., 2], -1e-9), np.inf)
    return t, np.asarray(cam.pos) + t[..., None] * ray


def test_depth_channel(depth_env, plain_env, plain_reset):
    """``depth=True`` adds a 4th channel, linear in metres over ``depth_range_m``: on the table top
    it matches the ray-plane depth within 2 levels; the far wall (beyond 2 m) saturates to 255;
    the gripper is at the TCP's depth (within the gripper's ±9 cm finger span)."""
    env_cfg = depth_env.env.env_cfg
    assert depth_env.env.image_shape == (84, 84, 4)
    state = depth_env.reset(plain_env.keys(0)[: depth_env.n])  # same worlds as plain_reset[:2]
    image = np.asarray(state.obs["image"])
    assert image.shape == (depth_env.n, 84, 84, 4) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., :3], np.asarray(plain_reset.obs["image"])[: depth_env.n])
    near, far = env_cfg.depth_range_m
    level = lambda d: np.clip((d - near) / (far - near), 0, 1) * 255
    depth = image[..., 3].astype(float)
    t, hit = _pixel_ray_depths(env_cfg.camera, env_cfg.image_size)
    on_table = (np.abs(hit[..., 0] - 0.35) < 0.55) & (np.abs(hit[..., 1]) < 0.7)
    on_table[:, :30] = False  # the arm's base stands on the left
    assert on_table.sum() > 200
    for i in range(depth_env.n):
        err = np.abs(depth[i][on_table] - level(t[on_table]))
        assert err.max() <= 2.0, err.max()
        assert np.all(depth[i, :5, 60:] == 255)  # the wall, > 2 m away
        tcp = depth_env.ee(state)[i]
        _, tcp_depth = depth_env.nominal_projection(tcp)
        u0, v0, u1, v1 = _hull_window(env_cfg, tcp)
        nearest = depth[i, v0:v1, u0:u1].min()
        assert level(tcp_depth - 0.12) <= nearest <= level(tcp_depth), (nearest, level(tcp_depth))


def test_second_camera(second_camera_env, plain_env, plain_reset):
    """``second_camera=True`` concatenates a second view (6 channels); the first 3 are the policy
    camera exactly; the second view sees the gripper where ``camera.project`` puts it through
    ``camera2`` (centroid column within 1.5 px, fingertip row within 3 px; measured 0.3 / 1.8)."""
    handle = second_camera_env
    env_cfg = handle.env.env_cfg
    assert handle.env.image_shape == (84, 84, 6)
    state = handle.reset(plain_env.keys(0)[: handle.n])
    image = np.asarray(state.obs["image"])
    assert image.shape == (handle.n, 84, 84, 6) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., :3], np.asarray(plain_reset.obs["image"])[: handle.n])
    assert _changed(image[..., :3], image[..., 3:]).mean() > 0.3
    state = _moved_apart(handle, state)
    tcp = handle.ee(state)
    for cam in (env_cfg.camera, env_cfg.camera2):
        uv, depth = handle.nominal_projection(
            camera_model.gripper_hull(tcp, env_cfg.gripper_half_width_m, env_cfg.gripper_height_m), cam
        )
        assert np.all(camera_model.pixels_inside(uv, depth, env_cfg.image_size, env_cfg.frame_margin_px))
    _wrist_turn_check(handle, state, slice(3, 6), env_cfg.camera2, u_tol=1.5, v_tol=3.0)


def test_dynamic_control_smoke(dynamic_env):
    """``control_mode='dynamic'``: position actuators track the IK solution through physics.

    Within one 0.1 s step from rest the arm also sags under gravity (measured with a zero action:
    about -4 mm in x and -6..-8 mm in z), so the commanded motion is the displacement minus the
    zero-action displacement from the same state. Tolerances (measured values in brackets, 2 worlds):
    along the commanded axis it exceeds 0.35 of the 20 mm step for every axis and sign
    [8.6..12.5 mm] and half the step for +x [12.2, 12.5 mm], with under 3 mm off-axis [< 1.7 mm];
    the raw +x displacement, sag included, is still over a quarter step in +x [7.7, 8.3 mm]."""
    handle = dynamic_env
    step = handle.env.env_cfg.max_step_m
    # Known issue: in dynamic mode ``step`` scores the distance with ``site_xpos`` from before the
    # last physics substep's integration (``mjx.step`` runs kinematics first), while the observation
    # recomputes kinematics; they differ by up to ~0.2 mm here, hence the 1 mm tolerance below.
    start = handle.reset(handle.keys(0))
    _check_obs_contents(handle, start)
    before = handle.ee(start)
    rest = handle.ee(handle.step(start, handle.actions([0.0, 0.0, 0.0]))) - before
    for axis, sign in AXES:
        action = np.zeros(3, np.float32)
        action[axis] = sign
        state = handle.step(start, handle.actions(action))
        _check_obs_contents(handle, state, distance_atol=1e-3)
        assert np.any(np.asarray(state.data.qvel) != 0)
        delta = handle.ee(state) - before
        commanded = delta - rest
        assert np.all(sign * commanded[:, axis] > 0.35 * step), (axis, sign, commanded)
        assert np.max(np.abs(np.delete(commanded, axis, axis=1))) < 3e-3, (axis, sign, commanded)
        if (axis, sign) == (0, 1.0):
            assert np.all(commanded[:, 0] > 0.5 * step), commanded
            assert np.all(delta[:, 0] > 0.25 * step), delta
