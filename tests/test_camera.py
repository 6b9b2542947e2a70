"""The numpy pinhole camera model and the real-frame crop (no JAX, no MuJoCo)."""

from __future__ import annotations

import numpy as np
import pytest

from mjx_reach import camera as cm
from mjx_reach.config import CameraConfig

D435 = cm.Intrinsics(width=640, height=480, fx=615.0, fy=615.0, ppx=320.0, ppy=240.0)


# --- crop -----------------------------------------------------------------------------------------
def test_crop_of_d435_is_the_full_height_and_centred():
    crop = cm.crop_for_sim_camera(D435, 42.5, (84, 84))
    assert abs(crop.height - 480.0) < 5.0  # 2 * 615 * tan(21.25 deg) = 478.4
    assert crop.width == pytest.approx(crop.height)  # square pixels, square image
    assert crop.left + crop.width / 2 == pytest.approx(D435.ppx)
    assert crop.top + crop.height / 2 == pytest.approx(D435.ppy)
    assert crop.top >= -0.5 and crop.top + crop.height <= D435.height + 0.5


def test_crop_follows_principal_point_and_aspect():
    intr = cm.Intrinsics(width=640, height=480, fx=600.0, fy=610.0, ppx=330.0, ppy=235.0)
    crop = cm.crop_for_sim_camera(intr, 30.0, (60, 80))
    assert crop.left + crop.width / 2 == pytest.approx(intr.ppx)
    assert crop.top + crop.height / 2 == pytest.approx(intr.ppy)
    assert crop.height == pytest.approx(2 * intr.fy * np.tan(np.deg2rad(15.0)))
    # The crop sees the sim camera's horizontal field of view too: width/fx = (80/60) * height/fy.
    assert crop.width / intr.fx == pytest.approx((80 / 60) * crop.height / intr.fy)


def test_too_narrow_real_camera_raises():
    narrow = cm.Intrinsics(width=640, height=480, fx=700.0, fy=700.0, ppx=320.0, ppy=240.0)
    with pytest.raises(ValueError):
        cm.crop_for_sim_camera(narrow, 42.5, (84, 84))
    with pytest.raises(ValueError):  # off-centre principal point pushes the crop out of the frame
        cm.crop_for_sim_camera(cm.Intrinsics(640, 480, 615.0, 615.0, 300.0, 200.0), 42.5, (84, 84))


def test_crop_resize_constant_colour_stays_constant():
    frame = np.empty((480, 640, 3), np.uint8)
    frame[:] = (17, 200, 93)
    crop = cm.crop_for_sim_camera(D435, 42.5, (84, 84))
    out = cm.crop_resize(frame, crop, (84, 84))
    assert out.shape == (84, 84, 3) and out.dtype == np.uint8
    assert np.all(out == np.array([17, 200, 93], np.uint8))


def test_crop_resize_is_area_averaging():
    frame = np.zeros((480, 640, 1), np.uint8)
    frame[:, 320:] = 200
    whole = cm.CropSpec(0.0, 0.0, 640.0, 480.0)
    out = cm.crop_resize(frame, whole, (48, 64))  # 10x10 blocks exactly
    assert np.all(out[:, :32] == 0) and np.all(out[:, 32:] == 200)
    odd = cm.crop_resize(frame, whole, (48, 63))  # the middle column straddles the edge
    assert np.all(odd[:, :31] == 0) and np.all(odd[:, 32:] == 200)
    assert np.all(odd[:, 31] == 100)
    # Block means of a random frame are preserved.
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    small = cm.crop_resize(noise, whole, (48, 64)).astype(np.float64)
    expected = noise.reshape(48, 10, 64, 10, 3).mean(axis=(1, 3))
    assert np.max(np.abs(small - expected)) <= 0.5 + 1e-3


# --- pinhole model --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cam",
    [
        CameraConfig(),
        CameraConfig(pos=(1.25, -0.55, 0.75), lookat=(0.40, 0.0, 0.20)),
        CameraConfig(pos=(-0.3, 0.8, 1.5), lookat=(0.1, 0.1, 0.0), fovy_deg=60.0),
    ],
)
def test_look_at_xmat_is_orthonormal_and_looks_at_target(cam):
    xmat = cm.look_at_xmat(cam.pos, cam.lookat)
    assert np.allclose(xmat.T @ xmat, np.eye(3), atol=1e-12)
    assert np.linalg.det(xmat) == pytest.approx(1.0)
    assert abs(xmat[2, 0]) < 1e-12  # camera x axis is horizontal (no roll)
    assert xmat[2, 1] > 0  # camera y axis points up
    for hw in [(84, 84), (60, 80)]:
        uv, depth = cm.project(np.asarray(cam.lookat), cam.pos, xmat, cam.fovy_deg, hw)
        assert np.allclose(uv, [hw[1] / 2, hw[0] / 2], atol=1e-9)
        assert depth == pytest.approx(np.linalg.norm(np.subtract(cam.pos, cam.lookat)))
        # Up in the world is up in the image; the camera's right is right in the image.
        up, _ = cm.project(np.add(cam.lookat, (0, 0, 0.05)), cam.pos, xmat, cam.fovy_deg, hw)
        assert up[1] < hw[0] / 2
        right, _ = cm.project(np.asarray(cam.lookat) + 0.05 * xmat[:, 0], cam.pos, xmat, cam.fovy_deg, hw)
        assert right[0] > hw[1] / 2 and right[1] == pytest.approx(hw[0] / 2)
    behind = np.asarray(cam.pos) + 0.5 * xmat[:, 2]
    _, depth = cm.project(behind, cam.pos, xmat, cam.fovy_deg, (84, 84))
    assert depth < 0
    assert not cm.pixels_inside(*cm.project(behind, cam.pos, xmat, cam.fovy_deg, (84, 84)), (84, 84), 0.0)


def test_look_at_xmat_degenerate_raises():
    with pytest.raises(ValueError):
        cm.look_at_xmat((0.4, 0.0, 0.3), (0.4, 0.0, 0.3))
    with pytest.raises(ValueError):
        cm.look_at_xmat((0.4, 0.0, 1.3), (0.4, 0.0, 0.3))


def test_field_of_view_edges_project_to_image_edges():
    cam = CameraConfig()
    xmat = cm.look_at_xmat(cam.pos, cam.lookat)
    dist = 1.0
    half = np.tan(np.deg2rad(cam.fovy_deg) / 2) * dist
    centre = np.asarray(cam.pos) - dist * xmat[:, 2]
    top = centre + half * xmat[:, 1]
    uv, _ = cm.project(top, cam.pos, xmat, cam.fovy_deg, (84, 84))
    assert uv[1] == pytest.approx(0.0, abs=1e-9)
    assert cm.fovy_deg_from_intrinsics(cm.focal_length_px(cam.fovy_deg, 84), 84) == pytest.approx(cam.fovy_deg)
    assert cm.fovy_deg_from_intrinsics(615.0, 480) == pytest.approx(42.6, abs=0.1)


def test_pixels_inside_margin():
    uv = np.array([[0.5, 40.0], [1.0, 40.0], [83.0, 83.0], [83.5, 40.0], [40.0, 40.0]])
    inside = cm.pixels_inside(uv, np.array([1.0, 1.0, 1.0, 1.0, -1.0]), (84, 84), 1.0)
    assert inside.tolist() == [False, True, True, False, False]


def test_box_corners_and_gripper_hull():
    corners = cm.box_corners((0, 1, 2), (3, 5, 7))
    assert corners.shape == (8, 3)
    assert {tuple(c) for c in corners} == {(x, y, z) for x in (0, 3) for y in (1, 5) for z in (2, 7)}
    tcp = np.array([[0.4, 0.0, 0.2], [0.3, 0.1, 0.1]])
    hull = cm.gripper_hull(tcp, 0.05, 0.17)
    assert hull.shape == (2, 8, 3)
    assert np.allclose(hull.min(axis=1), tcp - [0.05, 0.05, 0.05])
    assert np.allclose(hull.max(axis=1), tcp + [0.05, 0.05, 0.17])


# --- roll -------------------------------------------------------------------------------------------
def test_roll_turns_the_scene_clockwise_about_the_image_centre():
    """A positive roll turns the camera counter-clockwise seen from behind it, so every point's pixel
    turns clockwise about the principal point (u right, v down) by the roll, at the same radius."""
    cam, hw, roll = CameraConfig(), (480, 640), 10.0
    points = np.random.default_rng(0).uniform([0.25, -0.2, 0.08], [0.6, 0.2, 0.36], (20, 3))
    level, _ = cm.project(points, cam.pos, cm.camera_xmat(cam.pos, cam.lookat), cam.fovy_deg, hw)
    rolled, _ = cm.project(points, cam.pos, cm.camera_xmat(cam.pos, cam.lookat, roll), cam.fovy_deg, hw)
    centre = np.array([hw[1] / 2, hw[0] / 2])
    a, b = level - centre, rolled - centre
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1), atol=1e-9)
    # clockwise on screen (v down) is a positive angle in (u, v) coordinates
    turn = np.rad2deg(np.arctan2(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0], np.sum(a * b, axis=1)))
    np.testing.assert_allclose(turn, roll, atol=1e-9)
    np.testing.assert_allclose(cm.camera_xmat(cam.pos, cam.lookat, 0.0), cm.look_at_xmat(cam.pos, cam.lookat))


@pytest.mark.parametrize("roll", [-170.0, -3.0, 0.0, 2.5, 90.0])
def test_lookat_and_roll_round_trip_through_the_rotation(roll):
    cam = CameraConfig()
    xmat = cm.camera_xmat(cam.pos, cam.lookat, roll)
    lookat, got = cm.lookat_roll_from_xmat(cam.pos, xmat, distance_m=0.7)
    assert got == pytest.approx(roll, abs=1e-9)
    np.testing.assert_allclose(cm.camera_xmat(cam.pos, lookat, got), xmat, atol=1e-12)
    assert np.linalg.norm(lookat - np.asarray(cam.pos)) == pytest.approx(0.7)
    assert cm.rotation_angle_deg(xmat, cm.camera_xmat(cam.pos, cam.lookat)) == pytest.approx(abs(roll), abs=1e-6)


def test_gripper_visibility_sees_the_roll():
    """A tool centre point near the image's corner leaves the frame when the camera rolls."""
    cam, hw = CameraConfig(), (84, 84)
    xmat = cm.look_at_xmat(cam.pos, cam.lookat)
    f = cm.focal_length_px(cam.fovy_deg, hw[0])
    depth = 1.2  # a point 1.2 m in front of the camera, at pixel (4, 4) of the level camera
    tcp = np.asarray(cam.pos) + xmat @ np.array([(4 - 42) * depth / f, (42 - 4) * depth / f, -depth])
    args = (cam.pos, cam.lookat, cam.fovy_deg, hw, 0.001, 0.001, 1.0)
    assert cm.gripper_visibility(tcp, *args)[2].all()
    assert not cm.gripper_visibility(tcp, *args, roll_deg=20.0)[2].all()
