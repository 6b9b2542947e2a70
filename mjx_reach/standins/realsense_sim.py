"""A simulated Intel RealSense colour camera: an ``rs.software_device`` that frames are pushed into.

``deploy.camera.RealSenseCamera(device=cam.device)`` reads it exactly as it reads a live camera,
so tests and dry runs send rendered frames through pyrealsense2. Not part of the slim deploy path.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pyrealsense2 as rs

from mjx_reach.camera import Intrinsics


class SoftwareCamera:
    """An ``rs.software_device`` with one colour sensor streaming RGB8 at ``fps`` with intrinsics
    ``intr`` (pixels; librealsense stores them as float32), reporting serial number ``serial``
    when given."""

    def __init__(self, intr: Intrinsics, fps: int = 30, serial: str | None = None):
        self.intr = intr
        self.fps = fps
        self.device = rs.software_device()
        if serial is not None:
            self.device.register_info(rs.camera_info.serial_number, serial)
        self.sensor = self.device.add_sensor("RGB Camera")
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
        stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = (
            intr.width,
            intr.height,
            fps,
            3,
            rs.format.rgb8,
        )
        stream.intrinsics = rs.intrinsics()
        for name in ("width", "height", "fx", "fy", "ppx", "ppy"):
            setattr(stream.intrinsics, name, getattr(intr, name))
        self.profile = self.sensor.add_video_stream(stream, True).as_video_stream_profile()
        self._count = 0

    def push(self, image: np.ndarray) -> None:
        """Deliver one (H, W, 3) uint8 RGB frame to whoever streams the sensor."""
        frame = rs.software_video_frame()
        frame.pixels, frame.bpp, frame.stride = np.ascontiguousarray(image, np.uint8), 3, image.shape[1] * 3
        frame.timestamp, frame.domain = self._count * 1000.0 / self.fps, rs.timestamp_domain.hardware_clock
        frame.frame_number, frame.profile = self._count, self.profile
        self.sensor.on_video_frame(frame)
        self._count += 1

    @contextlib.contextmanager
    def streaming(self, render: Callable[[], np.ndarray]) -> Iterator[None]:
        """Push ``render()`` at ``fps`` from a background thread for the ``with`` block."""
        stop = threading.Event()

        def run():
            while not stop.wait(1.0 / self.fps):
                self.push(render())

        thread = threading.Thread(target=run, name="software-realsense", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(1.0)
