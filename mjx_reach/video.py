"""MP4 files from uint8 RGB frames, encoded by the ffmpeg that imageio-ffmpeg ships, started without
running Python's fork hooks.

imageio's writer starts ffmpeg with ``preexec_fn=os.setpgrp``; a ``preexec_fn`` makes CPython's
``subprocess`` call the ``os.register_at_fork`` hooks, and in a process that runs JAX its hook
warns "os.fork() was called ... JAX is multithreaded, so this will likely lead to a deadlock". Here
ffmpeg is started with ``process_group=0`` instead: the child joins its own process group in C
after the fork (so Ctrl-C in the terminal reaches the training, which checkpoints, and not the
encoder), no Python code runs in between and no fork hook is called. Numpy only (imageio-ffmpeg is
imported when a video is written), so ``deploy`` can use it too.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import numpy as np

MACRO_BLOCK = 16
"""Frames are padded (black, right and bottom) to a multiple of the codec's 16-pixel blocks."""
CRF = 25
"""libx264 constant rate factor (imageio's default quality 5 of 10)."""


class VideoError(RuntimeError):
    """ffmpeg failed; the message is one line."""


def pad_to_blocks(frames: np.ndarray, block: int = MACRO_BLOCK) -> np.ndarray:
    """(T, H, W, 3) frames padded with black to H and W multiples of ``block``."""
    pad_h, pad_w = -frames.shape[1] % block, -frames.shape[2] % block
    if pad_h == 0 and pad_w == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))


def ffmpeg_command(path: str | os.PathLike, height: int, width: int, fps: float) -> list[str]:
    """ffmpeg reading raw RGB24 frames of ``height`` x ``width`` from stdin, writing H.264 (yuv420p) to ``path``."""
    import imageio_ffmpeg

    return [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        f"{fps:g}",
        "-i",
        "-",
        "-an",
        "-vcodec",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        str(CRF),
        str(path),
    ]


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> pathlib.Path:
    """Write (T, H, W, 3) uint8 RGB ``frames`` to ``path`` as an H.264 MP4, atomically (a temporary
    file renamed into place); ``VideoError`` when ffmpeg fails (nothing is left at ``path``)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
    frames = pad_to_blocks(frames)
    path = pathlib.Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    proc = subprocess.Popen(
        ffmpeg_command(tmp, frames.shape[1], frames.shape[2], fps),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    _, err = proc.communicate(np.ascontiguousarray(frames).tobytes())
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        lines = err.decode(errors="replace").strip().splitlines()
        raise VideoError(f"ffmpeg exited with {proc.returncode} writing {path}: {lines[-1] if lines else 'no message'}")
    tmp.replace(path)
    return path
