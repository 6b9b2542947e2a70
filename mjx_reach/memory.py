"""Memory a run's large buffers take, checked against what the device has free before compiling.

The estimate counts the buffers that grow with the config: the replay (``replay_bytes``), the
renderer's per-world buffers and the pretraining image set, per device: with several processes
(``distributed``) each device holds its process's share of the worlds, replay and images
(``per_process``). The arithmetic needs no JAX (``train.py --print-config`` shows it). Networks, optimizer states and XLA's
temporaries come on top, so a config that passes can still run short; one that fails cannot run.

Render buffers per render context of N worlds and k policy cameras of h x w pixels:
``N · k · h · w · 4 B`` of packed uint32 RGB (plus as much float32 depth with ``env.depth``) held
by Warp, the same again as JAX's copy of the render output, and ``N · h · w · c`` B of the unpacked
uint8 observation (c channels).
"""

from __future__ import annotations

import math
import pathlib
from typing import TYPE_CHECKING

from mjx_reach import config as config_lib
from mjx_reach.config import STATE_DIM

if TYPE_CHECKING:
    import jax

GB = 1e9


class DoesNotFitError(config_lib.ConfigError):
    """A config's buffers exceed the device's free memory; the message is one line and leads with
    the field to change."""


def replay_rows(capacity: int, num_envs: int) -> int:
    """Rows (vectorised steps) of a replay of ``capacity`` transitions for ``num_envs`` envs: whole
    steps, at least 2 (a transition needs its next row)."""
    return max(2, capacity // num_envs)


def replay_bytes(rows: int, num_envs: int, image_shape: tuple[int, int, int], state_dim: int = STATE_DIM) -> int:
    """Bytes a replay (``replay.create``) of ``rows`` steps of ``num_envs`` envs takes."""
    h, w, c = image_shape
    return rows * num_envs * (h * w * c + 4 * (3 + state_dim + 3 + 1) + 1)


def render_bytes(env: config_lib.EnvConfig, num_envs: int) -> int:
    """Bytes of one policy render context for ``num_envs`` worlds (module docstring)."""
    h, w, c = config_lib.image_shape(env)
    cameras = config_lib.num_cameras(env)
    return num_envs * (cameras * h * w * 4 * (1 + env.depth) * 2 + h * w * c)


def per_process(cfg: config_lib.Config) -> dict[str, int]:
    """What each of the run's processes holds: ``worlds``, ``replay_transitions``, ``batch``
    samples of each update, held-out ``eval_episodes`` and ``pretrain_images``."""
    count = config_lib.process_count(cfg)
    n = cfg.num_envs // count
    return {
        "worlds": n,
        "replay_transitions": replay_rows(cfg.train.replay_capacity, cfg.num_envs) * n,
        "batch": cfg.agent.batch_size // count,
        "eval_episodes": cfg.train.eval_envs // count,
        "pretrain_images": math.ceil(cfg.pretrain.dataset_images / cfg.num_envs) * n,
    }


def training_bytes(cfg: config_lib.Config) -> dict[str, int]:
    """Bytes of one process's training buffers: ``replay`` and ``render`` (training and evaluation
    worlds)."""
    share = per_process(cfg)
    rows = replay_rows(cfg.train.replay_capacity, cfg.num_envs)
    render = render_bytes(cfg.env, share["worlds"])
    if share["eval_episodes"] != share["worlds"]:
        render += render_bytes(cfg.env, share["eval_episodes"])
    return {"replay": replay_bytes(rows, share["worlds"], config_lib.image_shape(cfg.env)), "render": render}


def pretrain_bytes(cfg: config_lib.Config) -> dict[str, int]:
    """Bytes of one process's pretraining buffers: the rendered ``images`` (training and held-out
    sets, rounded up to whole vectorised steps, with their ee labels) and ``render``."""
    n, pre = cfg.num_envs, cfg.pretrain
    worlds = per_process(cfg)["worlds"]
    h, w, c = config_lib.image_shape(cfg.env)
    images = (math.ceil(pre.dataset_images / n) + math.ceil(pre.eval_images / n)) * worlds
    return {"images": images * (h * w * c + 3 * 4), "render": render_bytes(cfg.env, worlds)}


def describe(cfg: config_lib.Config) -> str:
    """Lines saying what each process holds and the memory it needs on its device."""
    count, share = config_lib.process_count(cfg), per_process(cfg)
    hosts = cfg.distributed.hosts
    train, pre = training_bytes(cfg), pretrain_bytes(cfg)
    return "\n".join(
        [
            f"processes: {count} ({cfg.distributed.processes} per host x {hosts} host{'s' * (hosts > 1)}), one device each",
            f"each process: {share['worlds']} worlds, replay {share['replay_transitions']:,} transitions, "
            f"batch {share['batch']} of {cfg.agent.batch_size}, {share['eval_episodes']} held-out episodes, "
            f"{share['pretrain_images']:,} pretraining images",
            "memory per device: training ≈ "
            + " + ".join(f"{name} {size / GB:.2f} GB" for name, size in train.items())
            + ", pretraining ≈ "
            + " + ".join(f"{name} {size / GB:.2f} GB" for name, size in pre.items()),
        ]
    )


def free_bytes(device: jax.Device | None = None) -> int | None:
    """Free memory of ``device`` (default: JAX's first), bytes: ``bytes_limit - bytes_in_use`` of an
    accelerator, the host's ``MemAvailable`` for the CPU; None when unknown."""
    import jax

    device = device or jax.local_devices()[0]
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
    import jax

    parts = " + ".join(f"{name} {size / GB:.2f} GB" for name, size in needed.items())
    device = jax.local_devices()[0]
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
