"""Intel RealSense colour frames for the deploy loop (pyrealsense2; no JAX, no MuJoCo).

``RealSenseCamera`` streams RGB frames from a live camera (by serial number), a recording (a
ROS2 ``.db3`` bag, what librealsense 2.59 records, or a ROS1 ``.bag``) or any ``rs.device`` such as an
``rs.software_device`` fed by a test. All three go through the same sensor-level path (open the
colour sensor's profile, stream into a one-frame queue), so tests with
a software device or a recording exercise the code a live camera runs; only the device lookup by
serial needs hardware (``connected_devices`` lists what the USB bus offers). Intrinsics always come
from the opened stream profile, never a constant.
"""

from __future__ import annotations

import os
from typing import Self

import numpy as np
import pyrealsense2 as rs

from mjx_reach.camera import Intrinsics
from mjx_reach.contract import CameraError


class RealSenseCamera:
    """A colour stream ``width`` x ``height`` RGB8 at ``fps`` from one source:

    * ``serial``: the connected camera with that serial number (``None``: the only one connected);
    * ``bag``: a file recorded by librealsense, played back frame by frame, not looping;
    * ``device``: an already created ``rs.device`` (e.g. ``rs.software_device`` in tests).

    ``read()`` waits at most ``timeout_s`` seconds for a frame. Raises ``CameraError`` (one line)
    when the source cannot be opened or has no such stream. Use as a context manager or ``close()``.
    """

    def __init__(
        self,
        serial: str | None = None,
        *,
        bag: str | os.PathLike | None = None,
        device: rs.device | None = None,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        timeout_s: float = 1.0,
    ):
        if (bag is not None) + (device is not None) + (serial is not None) > 1:
            raise CameraError("give a camera serial, a bag or a device, not several")
        self.timeout_s = timeout_s
        self._bag = None if bag is None else os.fspath(bag)
        self._closed = False
        self._frames = 0
        try:
            self._device = device if device is not None else self._find_device(serial)
            self._sensor, profile = _colour_stream(self._device, width, height, fps)
            self._queue = rs.frame_queue(1, keep_frames=True)
            self._sensor.open(profile)
            self._sensor.start(self._queue)
        except CameraError:
            raise
        except RuntimeError as e:
            raise CameraError(f"cannot open RealSense {self._source}: {e}") from e
        self.serial = (
            self._device.get_info(rs.camera_info.serial_number)
            if self._device.supports(rs.camera_info.serial_number)
            else None
        )
        """The opened camera's serial number (None for a source without one)."""
        intr = profile.as_video_stream_profile().get_intrinsics()
        self.intrinsics = Intrinsics(
            width=intr.width, height=intr.height, fx=intr.fx, fy=intr.fy, ppx=intr.ppx, ppy=intr.ppy
        )
        """Pinhole intrinsics of the opened stream (pixels)."""

    @property
    def _source(self) -> str:
        return f"bag {self._bag}" if self._bag else "camera"

    def _find_device(self, serial: str | None) -> rs.device:
        ctx = rs.context()
        if self._bag is not None:
            if not os.path.isfile(self._bag):
                raise CameraError(f"RealSense bag {self._bag} does not exist")
            device = ctx.load_device(self._bag)
            device.as_playback().set_real_time(False)  # every recorded frame, at the reader's pace
            return device
        devices = connected_devices()
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        if serial is None and len(devices) == 1:
            return devices[0]
        if serial in serials:
            return devices[serials.index(serial)]
        wanted = "a RealSense camera" if serial is None else f"the RealSense with serial {serial}"
        raise CameraError(f"cannot choose {wanted}: connected serials {serials or 'none'}")

    def read(self) -> tuple[np.ndarray, Intrinsics]:
        """The next frame captured after the call (H, W, 3) uint8 RGB, and the stream's intrinsics.

        A frame that arrived before the call is dropped (after a move it may show the arm still
        moving); from a bag, the next recorded frame. Raises ``CameraError`` when the camera is
        closed, the bag has ended or no frame arrives within ``timeout_s`` (the stream stopped or
        the camera was disconnected).
        """
        if self._closed:
            raise CameraError("RealSense camera is closed")
        if self._bag is None:
            while self._queue.poll_for_frame():
                pass
        ok, frame = self._queue.try_wait_for_frame(int(self.timeout_s * 1000))
        if not ok:
            if self._bag and self._device.as_playback().current_status() == rs.playback_status.stopped:
                raise CameraError(f"RealSense bag {self._bag} ended after {self._frames} frames")
            raise CameraError(
                f"no colour frame from the RealSense {self._source} within {self.timeout_s:.2f} s "
                "(stream stopped or camera disconnected)"
            )
        image = np.array(frame.as_video_frame().get_data(), dtype=np.uint8, copy=True)
        if image.shape != (self.intrinsics.height, self.intrinsics.width, 3):
            raise CameraError(
                f"RealSense frame has shape {image.shape}, expected "
                f"({self.intrinsics.height}, {self.intrinsics.width}, 3)"
            )
        self._frames += 1
        return image, self.intrinsics

    def close(self) -> None:
        """Stop streaming and release the sensor; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for release in (self._sensor.stop, self._sensor.close):
            try:
                release()
            except RuntimeError:
                pass  # already stopped or closed by the device going away

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connected_devices() -> list[rs.device]:
    """The RealSense devices connected to this machine."""
    return list(rs.context().query_devices())


def _colour_stream(device: rs.device, width: int, height: int, fps: int) -> tuple[rs.sensor, rs.stream_profile]:
    """The sensor and profile of ``device`` that stream colour ``width`` x ``height`` RGB8 at ``fps``."""
    offered = []
    for sensor in device.query_sensors():
        for profile in sensor.get_stream_profiles():
            if profile.stream_type() != rs.stream.color:
                continue
            video = profile.as_video_stream_profile()
            offered.append(f"{video.width()}x{video.height()} {profile.format()} @{profile.fps()}")
            if (video.width(), video.height(), profile.format(), profile.fps()) == (width, height, rs.format.rgb8, fps):
                return sensor, profile
    raise CameraError(
        f"RealSense offers no colour stream {width}x{height} rgb8 @{fps} fps "
        f"(colour streams: {', '.join(offered) or 'none'})"
    )


def open_cameras(serials: list[str | None], *, timeout_s: float = 1.0) -> list[RealSenseCamera]:
    """One 640x480 RGB8 30 fps ``RealSenseCamera`` per serial, in order (a None serial: the only one
    connected). If one cannot be opened, those already open are closed and its ``CameraError`` raised."""
    cameras: list[RealSenseCamera] = []
    try:
        for serial in serials:
            cameras.append(RealSenseCamera(serial, width=640, height=480, fps=30, timeout_s=timeout_s))
    except BaseException:
        for camera in cameras:
            camera.close()
        raise
    return cameras
