"""The camera model's real-frame preprocessing (``mjx_reach.camera.preprocess``) against the simulator.

A "real" 640x480 frame is rendered by the MJX-Warp renderer from the training camera's pose, in two
ways: (a) with the training camera's vertical field of view (ideal D435-like intrinsics, centred
principal point) and (b) with a wider 50 deg lens rendered at 720x520 and cut off-centre to
640x480 (a principal point off the image centre, as real cameras have). Preprocessed, each must
match the simulator's own 84x84 policy render of the same scene:

* metric: mean absolute pixel difference over all pixels and channels, in 0..255 levels;
* bound: < ``MEAN_ABS_BOUND`` levels (measured ≈ 2: area averaging vs one ray per pixel differ only
  along edges), and below half the difference caused by shifting the crop by one policy pixel
  (measured ≈ 5), so a misaligned crop cannot pass;
* geometry: the ee's pixel through the real intrinsics and the crop agrees with its pixel in the
  sim camera within ``EE_PIXEL_BOUND`` policy pixels;
* roll: a 640x480 render from the camera rolled by ``ROLL_DEG`` (the scene's camera built from
  ``CameraConfig.roll_deg``) matches the level render resampled through the numpy camera model's
  rolled rotation (``camera.camera_xmat``) within ``MEAN_ABS_BOUND`` levels, and clearly better
  than the opposite roll.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mujoco import mjx

from mjx_reach import camera as cm
from mjx_reach import randomize, render
from mjx_reach import scene as scene_lib
from mjx_reach.config import Config, EnvConfig, RandomizationConfig
from mjx_reach.env import ReachEnv

MEAN_ABS_BOUND = 3.0
EE_PIXEL_BOUND = 0.05
ROLL_DEG = 6.0
WIDE_FOVY_DEG, WIDE_HW, CUT = 50.0, (520, 720), (13, 47)
"""The wide lens: fovy, rendered (height, width), and where the 480x640 frame is cut (top, left)."""
TARGETS = [None, (0.30, 0.15, 0.10), (0.55, -0.15, 0.33)]
"""Arm poses: home, then two targets near opposite corners of the workspace box."""


@pytest.fixture(scope="module")
def scenes():
    """Per pose: (ee (3,) m, sim 84x84 render, centred 480x640 render, wide 520x720 render, centred
    480x640 render from the camera rolled by ``ROLL_DEG``)."""
    cfg = Config(env=EnvConfig(init_joint_noise_rad=0.0), randomization=RandomizationConfig(enabled=False))
    env = ReachEnv(cfg, 1)
    sc, mjm = env.scene, env.scene.mj_model
    nominal = randomize.nominal(sc)
    data0 = mjx.make_data(mjm, impl="warp")

    def renderer(hw, fovy=None, params=nominal):
        cam = render.Camera(mjm, 1, sc.policy_cameras, hw, scene_lib.POLICY_GROUPS)
        fovys = params.cam_fovy if fovy is None else params.cam_fovy.at[sc.policy_cameras[0]].set(fovy)
        return jax.jit(
            jax.vmap(lambda d: cam.render(*randomize.apply(env.mx, d, params.replace(cam_fovy=fovys), sc))[0])
        )

    rolled_env = dataclasses.replace(cfg.env, camera=dataclasses.replace(cfg.env.camera, roll_deg=ROLL_DEG))
    rolled_params = nominal.replace(cam_xmat=randomize.nominal(scene_lib.build_scene(rolled_env)).cam_xmat)
    renderers = [
        renderer(cfg.env.image_size),
        renderer((480, 640)),
        renderer(WIDE_HW, WIDE_FOVY_DEG),
        renderer((480, 640), params=rolled_params),
    ]
    move = jax.jit(jax.vmap(env.move))
    data = jax.jit(jax.vmap(lambda q: mjx.kinematics(env.mx, data0.replace(qpos=q))))(
        jnp.asarray(scene_lib.HOME_QPOS, jnp.float32)[None]
    )
    out = []
    for target in TARGETS:
        for _ in range(0 if target is None else 10):
            data = move(data, jnp.asarray(target, jnp.float32)[None])
        ee = np.asarray(data.site_xpos[0, sc.tcp_site], np.float64)
        out.append((ee, *(np.asarray(r(data)[0]) for r in renderers)))
    return cfg, out


def wide_frame(big: np.ndarray) -> tuple[np.ndarray, cm.Intrinsics]:
    top, left = CUT
    f = cm.focal_length_px(WIDE_FOVY_DEG, WIDE_HW[0])
    intr = cm.Intrinsics(640, 480, f, f, WIDE_HW[1] / 2 - left, WIDE_HW[0] / 2 - top)
    return big[top : top + 480, left : left + 640], intr


def mean_abs(a, b) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def test_preprocessed_real_frames_match_the_policy_render(scenes):
    cfg, poses = scenes
    fovy, hw = cfg.env.camera.fovy_deg, cfg.env.image_size
    for ee, sim, centred, wide, _ in poses:
        intr = cm.intrinsics_for_fovy(fovy, 480, 640)
        frame_b, intr_b = wide_frame(wide)
        assert cm.crop_for_sim_camera(intr_b, fovy, hw).width < 600  # (b) really crops inside the frame
        errors = {
            name: mean_abs(cm.preprocess(frame, i, fovy, hw), sim)
            for name, frame, i in [("centred", centred, intr), ("wide", frame_b, intr_b)]
        }
        crop = cm.crop_for_sim_camera(intr, fovy, hw)
        shifted = mean_abs(
            cm.crop_resize(centred, dataclasses.replace(crop, left=crop.left + crop.width / hw[1]), hw), sim
        )
        for name, err in errors.items():
            assert err < MEAN_ABS_BOUND, f"{name} at ee {ee.round(3).tolist()}: mean |diff| {err:.2f} levels"
            assert err < 0.5 * shifted, (
                f"{name}: {err:.2f} levels is not clearly better than a 1-px shifted crop ({shifted:.2f})"
            )


def test_ee_pixel_through_real_intrinsics_and_crop_matches_the_sim_camera(scenes):
    cfg, poses = scenes
    cam, hw = cfg.env.camera, cfg.env.image_size
    xmat = cm.look_at_xmat(cam.pos, cam.lookat)
    top, left = CUT
    for ee, *_ in poses:
        uv_sim, _ = cm.project(ee, cam.pos, xmat, cam.fovy_deg, hw)
        uv_big, _ = cm.project(ee, cam.pos, xmat, WIDE_FOVY_DEG, WIDE_HW)
        _, intr = wide_frame(np.zeros((*WIDE_HW, 3), np.uint8))
        crop = cm.crop_for_sim_camera(intr, cam.fovy_deg, hw)
        uv_real = uv_big - [left, top]
        uv_policy = (uv_real - [crop.left, crop.top]) * [hw[1] / crop.width, hw[0] / crop.height]
        assert np.max(np.abs(uv_policy - uv_sim)) < EE_PIXEL_BOUND


def test_preprocess_rejects_frames_that_disagree_with_their_intrinsics():
    intr = cm.intrinsics_for_fovy(42.5, 480, 640)
    with pytest.raises(ValueError, match="intrinsics say 640x480"):
        cm.preprocess(np.zeros((240, 320, 3), np.uint8), intr, 42.5, (84, 84))
    assert intr.fx == intr.fy == pytest.approx(cm.focal_length_px(42.5, 480)) and (intr.ppx, intr.ppy) == (320.0, 240.0)
    assert cm.fovy_deg_from_intrinsics(intr.fy, 480) == pytest.approx(42.5)


def resample_level_as_rolled(level: np.ndarray, cam, roll_deg: float) -> np.ndarray:
    """The level camera's frame (H, W, 3) seen through the camera model rolled by ``roll_deg``: each
    pixel's ray through ``camera_xmat(..., roll_deg)``, projected into the level camera, nearest pixel."""
    h, w = level.shape[:2]
    f = cm.focal_length_px(cam.fovy_deg, h)
    v, u = np.mgrid[0:h, 0:w] + 0.5
    rays = np.stack([(u - w / 2) / f, -(v - h / 2) / f, -np.ones_like(u)], axis=-1)
    world = np.asarray(cam.pos) + rays @ cm.camera_xmat(cam.pos, cam.lookat, roll_deg).T
    uv, _ = cm.project(world, cam.pos, cm.camera_xmat(cam.pos, cam.lookat), cam.fovy_deg, (h, w))
    cols = np.clip(np.floor(uv[..., 0]).astype(int), 0, w - 1)
    rows = np.clip(np.floor(uv[..., 1]).astype(int), 0, h - 1)
    return level[rows, cols]


def test_rolled_render_matches_the_rolled_camera_model(scenes):
    cfg, poses = scenes
    cam = cfg.env.camera
    v, u = np.mgrid[0:480, 0:640] + 0.5
    inner = np.hypot(u - 320, v - 240) < 230  # pixels whose rays stay inside the level frame
    for ee, _, centred, _, rolled in poses:
        err = mean_abs(resample_level_as_rolled(centred, cam, ROLL_DEG)[inner], rolled[inner])
        wrong = mean_abs(resample_level_as_rolled(centred, cam, -ROLL_DEG)[inner], rolled[inner])
        assert err < MEAN_ABS_BOUND, f"rolled {ROLL_DEG} deg at ee {ee.round(3).tolist()}: mean |diff| {err:.2f} levels"
        assert err < 0.5 * wrong, (
            f"rolled render: {err:.2f} levels is not clearly better than the opposite roll ({wrong:.2f})"
        )
