"""``deploy.camera.RealSenseCamera`` through pyrealsense2 without a camera: frames are injected
into an ``rs.software_device`` (``mjx_reach.standins.realsense_sim``) with D435-like colour intrinsics, and
recorded to a bag with ``rs.recorder`` for the playback path."""

from __future__ import annotations

import dataclasses
import gc
import threading
import time

import numpy as np
import pyrealsense2 as rs
import pytest

from deploy.camera import RealSenseCamera
from mjx_reach.camera import D435_COLOUR, Intrinsics
from mjx_reach.contract import CameraError
from mjx_reach.standins.realsense_sim import SoftwareCamera


def read_while_pushing(cam: RealSenseCamera, sim: SoftwareCamera, image: np.ndarray, delay_s: float = 0.05):
    """``cam.read()`` while ``image`` arrives ``delay_s`` after the call, as from a streaming camera."""
    timer = threading.Timer(delay_s, sim.push, [image])
    timer.start()
    try:
        return cam.read()
    finally:
        timer.join()


def rendered_frames(n: int, intr: Intrinsics, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct (H, W, 3) uint8 RGB frames: a colour ramp plus noise, different per frame."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, intr.width, dtype=np.float32)[None, :, None]
    return [
        np.clip(ramp + rng.integers(0, 56, (intr.height, intr.width, 3)), 0, 255).astype(np.uint8) for _ in range(n)
    ]


def as_float32(intr: Intrinsics) -> Intrinsics:
    """``intr`` with the focal lengths and principal point rounded to float32, as librealsense stores them."""
    return dataclasses.replace(intr, **{k: float(np.float32(getattr(intr, k))) for k in ("fx", "fy", "ppx", "ppy")})


@pytest.mark.parametrize("intr", [D435_COLOUR, Intrinsics(640, 480, fx=600.5, fy=601.25, ppx=317.75, ppy=245.5)])
def test_frames_and_intrinsics_round_trip(intr):
    sim = SoftwareCamera(intr)
    with RealSenseCamera(device=sim.device, timeout_s=1.0) as cam:
        assert cam.intrinsics == as_float32(intr)
        for image in rendered_frames(3, intr):
            frame, frame_intr = read_while_pushing(cam, sim, image)
            assert frame.dtype == np.uint8 and frame.shape == (intr.height, intr.width, 3)
            np.testing.assert_array_equal(frame, image)
            assert frame_intr == as_float32(intr)


def test_read_returns_a_frame_captured_after_the_call():
    sim = SoftwareCamera(D435_COLOUR)
    stale, fresh = rendered_frames(2, D435_COLOUR)
    with RealSenseCamera(device=sim.device) as cam:
        sim.push(stale)
        time.sleep(0.05)
        np.testing.assert_array_equal(read_while_pushing(cam, sim, fresh)[0], fresh)


def test_no_frame_within_timeout_raises_camera_error():
    sim = SoftwareCamera(D435_COLOUR)
    with RealSenseCamera(device=sim.device, timeout_s=0.2) as cam:
        start = time.monotonic()
        with pytest.raises(CameraError, match="no colour frame .* within 0.20 s") as err:
            cam.read()
        assert 0.15 < time.monotonic() - start < 2.0
        assert "\n" not in str(err.value)


def test_stopped_stream_and_closed_camera_raise_camera_error():
    sim = SoftwareCamera(D435_COLOUR)
    image = rendered_frames(1, D435_COLOUR)[0]
    cam = RealSenseCamera(device=sim.device, timeout_s=0.2)
    np.testing.assert_array_equal(read_while_pushing(cam, sim, image)[0], image)
    sim.sensor.stop()  # the device stops streaming under the reader
    with pytest.raises(CameraError, match="stream stopped or camera disconnected"):
        cam.read()
    cam.close()
    cam.close()
    with pytest.raises(CameraError, match="closed"):
        cam.read()


def test_bag_recorded_from_the_software_device_plays_back(tmp_path):
    path = tmp_path / "d435.db3"  # librealsense 2.59 records ROS2 bags (.db3)
    sim = SoftwareCamera(D435_COLOUR)
    images = rendered_frames(3, D435_COLOUR, seed=1)
    recorder = rs.recorder(str(path), sim.device)
    with RealSenseCamera(device=recorder) as cam:
        for image in images:
            np.testing.assert_array_equal(read_while_pushing(cam, sim, image)[0], image)
    del cam, recorder
    gc.collect()  # the recorder writes the bag when it is destroyed

    with RealSenseCamera(bag=path, timeout_s=0.5) as cam:
        assert cam.intrinsics == as_float32(D435_COLOUR)
        for image in images:
            frame, intr = cam.read()
            np.testing.assert_array_equal(frame, image)
            assert intr == as_float32(D435_COLOUR)
        with pytest.raises(CameraError, match="ended after 3 frames"):
            cam.read()


def test_unavailable_sources_raise_camera_error(tmp_path):
    sim = SoftwareCamera(D435_COLOUR)
    with pytest.raises(CameraError, match=r"no colour stream 640x480 rgb8 @15 fps \(colour streams: 640x480"):
        RealSenseCamera(device=sim.device, fps=15)
    with pytest.raises(CameraError, match="does not exist"):
        RealSenseCamera(bag=tmp_path / "missing.db3")
    with pytest.raises(CameraError, match="serial 000000000000: connected serials"):
        RealSenseCamera(serial="000000000000")


def test_cameras_open_by_serial_in_the_order_asked_and_close_on_a_failure(monkeypatch):
    """``open_cameras`` picks each device by its serial from what the bus lists (here two software
    devices, listed in the other order), reports the serial, takes the only device for a None
    serial, and closes the cameras it opened when a later one cannot be opened."""
    import deploy.camera as realsense

    sims = {serial: SoftwareCamera(D435_COLOUR, serial=serial) for serial in ("A1", "B2")}
    monkeypatch.setattr(realsense, "connected_devices", lambda: [sims["B2"].device, sims["A1"].device])
    cameras = realsense.open_cameras(["A1", "B2"])
    assert [c.serial for c in cameras] == ["A1", "B2"]
    for cam, sim in zip(cameras, (sims["A1"], sims["B2"])):
        image = rendered_frames(1, D435_COLOUR, seed=len(cam.serial))[0]
        np.testing.assert_array_equal(read_while_pushing(cam, sim, image)[0], image)
        cam.close()
    closed, close = [], RealSenseCamera.close
    monkeypatch.setattr(RealSenseCamera, "close", lambda self: (closed.append(self.serial), close(self)))
    with pytest.raises(CameraError, match="serial C3: connected serials") as err:
        realsense.open_cameras(["B2", "C3"])
    assert closed == ["B2"] and "\n" not in str(err.value)
    with pytest.raises(CameraError, match="cannot choose a RealSense camera"):
        realsense.open_cameras([None])  # two connected: none is "the only one"
    monkeypatch.setattr(realsense, "connected_devices", lambda: [sims["A1"].device])
    (only,) = realsense.open_cameras([None])
    assert only.serial == "A1"
    only.close()
