"""The training camera from a bench file (``python -m deploy calibrate``'s ``bench.json``).

``train.py --bench bench.json`` trains for the calibrated camera: ``camera_config`` turns the bench's
camera (position and look-at point in metres, roll and vertical field of view in degrees, world
frame with the arm base at the origin) into the policy ``CameraConfig``; ``apply`` puts it into a
config and validates it (the workspace box, grown by the gripper, must stay in the image), with a
one-line ``ConfigError`` naming the bench on any problem.
"""

from __future__ import annotations

import dataclasses
import pathlib

from deploy.errors import PolicyError
from deploy.policy import load_bench
from mjx_reach import config as config_lib


def camera_config(path, base: config_lib.CameraConfig) -> config_lib.CameraConfig:
    """The policy camera of the bench at ``path``: its pose and roll, and its ``fovy_deg`` when the
    bench has one (a calibrated bench does), else ``base``'s."""
    try:
        bench = load_bench(path)
    except PolicyError as e:
        raise config_lib.ConfigError(f"--bench: {e}") from None
    fovy = base.fovy_deg if bench.camera_fovy_deg is None else bench.camera_fovy_deg
    return config_lib.CameraConfig(pos=bench.camera_pos, lookat=bench.camera_lookat, fovy_deg=fovy, roll_deg=bench.camera_roll_deg)


def apply(cfg: config_lib.Config, path) -> config_lib.Config:
    """``cfg`` with its policy camera from the bench at ``path``, validated."""
    camera = camera_config(path, cfg.env.camera)
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, camera=camera))
    try:
        return config_lib.validate(cfg)
    except config_lib.ConfigError as e:
        raise config_lib.ConfigError(f"--bench {pathlib.Path(path)}: {e}") from None
