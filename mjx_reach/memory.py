"""Memory a run's large buffers take, checked against what the device has free before compiling.

The estimate counts the buffers that grow with the config: the replay (``replay.nbytes``), the
renderer's per-world buffers and the pretraining image set. Networks, optimizer states and XLA's
temporaries come on top, so a config that passes can still run short; one that fails cannot run.

Render buffers per render context of N worlds and k policy cameras of h x w pixels:
``N · k · h · w · 4 B`` of packed uint32 RGB (plus as much float32 depth with ``env.depth``) held
by Warp, the same again as JAX's copy of the render output, and ``N · h · w · c`` B of the unpacked
uint8 observation (c channels).
"""

from __future__ import annotations

import math
import pathlib

import jax

from mjx_reach import config as config_lib
from mjx_reach import replay
from mjx_reach.env import STATE_DIM

GB = 1e9


class DoesNotFitError(config_lib.ConfigError):
    """A config's buffers exceed the device's free memory; the message is one line and leads with
    the field to change."""


def render_bytes(env: config_lib.EnvConfig, num_envs: int) -> int:
    """Bytes of one policy render context for ``num_envs`` worlds (module docstring)."""
    h, w, c = config_lib.image_shape(env)
    cameras = config_lib.num_cameras(env)
    return num_envs * (cameras * h * w * 4 * (1 + env.depth) * 2 + h * w * c)


def training_bytes(cfg: config_lib.Config) -> dict[str, int]:
    """Bytes of the training run's buffers: ``replay`` and ``render`` (training and evaluation worlds)."""
    rows = replay.rows_for(cfg.train.replay_capacity, cfg.num_envs)
    render = render_bytes(cfg.env, cfg.num_envs)
    if cfg.train.eval_envs != cfg.num_envs:
        render += render_bytes(cfg.env, cfg.train.eval_envs)
    return {"replay": replay.nbytes(rows, cfg.num_envs, config_lib.image_shape(cfg.env), STATE_DIM), "render": render}


def pretrain_bytes(cfg: config_lib.Config) -> dict[str, int]:
    """Bytes of the pretraining run's buffers: the rendered ``images`` (training and held-out sets,
    rounded up to whole vectorised steps, with their ee labels) and ``render``."""
    n, pre = cfg.num_envs, cfg.pretrain
    h, w, c = config_lib.image_shape(cfg.env)
    images = (math.ceil(pre.dataset_images / n) + math.ceil(pre.eval_images / n)) * n
    return {"images": images * (h * w * c + 3 * 4), "render": render_bytes(cfg.env, n)}


def free_bytes(device: jax.Device | None = None) -> int | None:
    """Free memory of ``device`` (default: JAX's first), bytes: ``bytes_limit - bytes_in_use`` of an
    accelerator, the host's ``MemAvailable`` for the CPU; None when unknown."""
    device = device or jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)) if "bytes_limit" in stats else None
    meminfo = pathlib.Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def check_fits(needed: dict[str, int], field: str, free: int | None = None) -> None:
    """Raise ``DoesNotFitError`` naming ``field`` when the buffers ``needed`` (name -> bytes)
    exceed ``free`` bytes (default: ``free_bytes()``; unknown: no check)."""
    free = free_bytes() if free is None else free
    total = sum(needed.values())
    if free is None or total <= free:
        return
    parts = " + ".join(f"{name} {size / GB:.2f} GB" for name, size in needed.items())
    device = jax.devices()[0]
    raise DoesNotFitError(
        f"{field}: the run's buffers need ≈ {total / GB:.1f} GB ({parts}) but {device.platform} device {device.device_kind!r} "
        f"has {free / GB:.1f} GB free; lower {field} (or --num-envs)"
    )


def check_training(cfg: config_lib.Config) -> None:
    """Refuse (``DoesNotFitError``) a training config whose replay and render buffers do not fit."""
    check_fits(training_bytes(cfg), "train.replay_capacity")


def check_pretrain(cfg: config_lib.Config) -> None:
    """Refuse (``DoesNotFitError``) a pretraining config whose image set and render buffers do not fit."""
    check_fits(pretrain_bytes(cfg), "pretrain.dataset_images")
