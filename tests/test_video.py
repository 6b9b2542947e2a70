"""Videos are written without forking the JAX process's Python state: ffmpeg starts without
``os.register_at_fork`` hooks, so JAX's "os.fork() was called ... deadlock" warning never fires,
and the MP4 reads back with the frames that went in.

The warnings are recorded rather than turned into errors: a warning raised as an error inside a
fork hook does not propagate (CPython reports it as unraisable), so only a record sees it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import warnings

import imageio_ffmpeg
import jax
import numpy as np
import pytest

from mjx_reach import config as config_lib
from mjx_reach import evaluate, video


def fork_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning) and "fork" in str(w.message)]


@pytest.fixture
def jax_running():
    """JAX's backends are up, so its fork hook is installed; checked by forking with a preexec_fn
    (how imageio starts ffmpeg), which runs the hooks and must warn."""
    jax.devices()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        subprocess.run(["true"], preexec_fn=lambda: None, check=True)
    assert fork_warnings(caught), "JAX's fork hook is not installed: this test would prove nothing"


def read_mp4(path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames decoded by ffmpeg (started without fork hooks too)."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    width, height = map(int, re.search(r"Video: h264.*?, (\d+)x(\d+)", probe).groups())
    cmd = [ffmpeg, "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    assert len(raw) % (height * width * 3) == 0
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def test_write_mp4_does_not_fork_and_reads_back(jax_running, tmp_path):
    frames = np.zeros((12, 40, 50, 3), np.uint8)  # padded to 48 x 64 (16-pixel blocks)
    for t in range(len(frames)):
        frames[t, :, : 4 * (t + 1)] = (200, 60, 30)  # a bar that grows frame by frame
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        video.write_mp4(tmp_path / "v.mp4", frames, fps=10)
    assert fork_warnings(caught) == []
    assert not list(tmp_path.glob("*.tmp.mp4"))
    decoded = read_mp4(tmp_path / "v.mp4")
    assert decoded.shape == (12, 48, 64, 3)
    assert np.abs(decoded[:, :40, :50].astype(int) - frames).mean() < 8
    assert decoded[:, 40:].max() < 30 and decoded[:, :, 56:].max() < 30, "the padding is black"


def test_write_mp4_refuses_bad_frames_and_reports_ffmpeg_errors(tmp_path):
    with pytest.raises(ValueError):
        video.write_mp4(tmp_path / "v.mp4", np.zeros((2, 16, 16), np.uint8), fps=10)
    with pytest.raises(video.VideoError) as err:
        video.write_mp4(tmp_path / "missing" / "v.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=10)
    assert "\n" not in str(err.value) and not (tmp_path / "missing").exists()


def test_evaluation_video_is_written_without_a_fork_warning(jax_running, tmp_path):
    """``evaluate.write_video`` of a tiny held-out episode (random policy): no fork warning, and the
    MP4 holds the episode's frames (reset + each step), policy view beside the overview."""
    cfg = config_lib.Config(num_envs=2)
    cfg = dataclasses.replace(
        cfg,
        env=dataclasses.replace(cfg.env, episode_steps=3),
        train=dataclasses.replace(cfg.train, video_envs=1),
    )
    path = tmp_path / "eval.mp4"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate.write_video(cfg, evaluate.random_policy, None, path)
    assert fork_warnings(caught) == []
    decoded = read_mp4(path)
    assert len(decoded) == cfg.env.episode_steps + 1
    assert decoded.shape[1] % video.MACRO_BLOCK == 0 and decoded.shape[2] % video.MACRO_BLOCK == 0
    assert decoded.std() > 5, "rendered frames, not a blank video"
