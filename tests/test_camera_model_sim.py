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
  sim camera within ``EE_PIXEL_BOUND`` policy pixels.
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
WIDE_FOVY_DEG, WIDE_HW, CUT = 50.0, (520, 720), (13, 47)
"""The wide lens: fovy, rendered (height, width), and where the 480x640 frame is cut (top, left)."""
TARGETS = [None, (0.30, 0.15, 0.10), (0.55, -0.15, 0.33)]
"""Arm poses: home, then two targets near opposite corners of the workspace box."""


@pytest.fixture(scope="module")
def scenes():
    """Per pose: (ee (3,) m, sim 84x84 render, centred 480x640 render, wide 520x720 render)."""
    cfg = Config(env=EnvConfig(init_joint_noise_rad=0.0), randomization=RandomizationConfig(enabled=False))
    env = ReachEnv(cfg, 1)
    sc, mjm = env.scene, env.scene.mj_model
    nominal = randomize.nominal(sc)
    data0 = mjx.make_data(mjm, impl="warp")

    def renderer(hw, fovy=None):
        cam = render.Camera(mjm, 1, sc.policy_cameras, hw, scene_lib.POLICY_GROUPS)
        fovys = nominal.cam_fovy if fovy is None else nominal.cam_fovy.at[sc.policy_cameras[0]].set(fovy)
        return jax.jit(jax.vmap(lambda d: cam.render(*randomize.apply(env.mx, d, nominal.replace(cam_fovy=fovys)))[0]))

    sim, centred, wide = renderer(cfg.env.image_size), renderer((480, 640)), renderer(WIDE_HW, WIDE_FOVY_DEG)
    move = jax.jit(jax.vmap(env.move))
    data = jax.jit(jax.vmap(lambda q: mjx.kinematics(env.mx, data0.replace(qpos=q))))(jnp.asarray(scene_lib.HOME_QPOS, jnp.float32)[None])
    out = []
    for target in TARGETS:
        for _ in range(0 if target is None else 10):
            data = move(data, jnp.asarray(target, jnp.float32)[None])
        ee = np.asarray(data.site_xpos[0, sc.tcp_site], np.float64)
        out.append((ee, *(np.asarray(r(data)[0]) for r in (sim, centred, wide))))
    return cfg, out


def wide_frame(big: np.ndarray) -> tuple[np.ndarray, cm.Intrinsics]:
    top, left = CUT
    f = cm.focal_length_px(WIDE_FOVY_DEG, WIDE_HW[0])
    intr = cm.Intrinsics(640, 480, f, f, WIDE_HW[1] / 2 - left, WIDE_HW[0] / 2 - top)
    return big[top:top + 480, left:left + 640], intr


def mean_abs(a, b) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def test_preprocessed_real_frames_match_the_policy_render(scenes):
    cfg, poses = scenes
    fovy, hw = cfg.env.camera.fovy_deg, cfg.env.image_size
    for ee, sim, centred, wide in poses:
        intr = cm.intrinsics_for_fovy(fovy, 480, 640)
        frame_b, intr_b = wide_frame(wide)
        assert cm.crop_for_sim_camera(intr_b, fovy, hw).width < 600  # (b) really crops inside the frame
        errors = {name: mean_abs(cm.preprocess(frame, i, fovy, hw), sim) for name, frame, i in [("centred", centred, intr), ("wide", frame_b, intr_b)]}
        crop = cm.crop_for_sim_camera(intr, fovy, hw)
        shifted = mean_abs(cm.crop_resize(centred, dataclasses.replace(crop, left=crop.left + crop.width / hw[1]), hw), sim)
        for name, err in errors.items():
            assert err < MEAN_ABS_BOUND, f"{name} at ee {ee.round(3).tolist()}: mean |diff| {err:.2f} levels"
            assert err < 0.5 * shifted, f"{name}: {err:.2f} levels is not clearly better than a 1-px shifted crop ({shifted:.2f})"


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
