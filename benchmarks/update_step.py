"""DDPG update cost: milliseconds per jitted update (replay sample + ``Agent.update``) per batch size.

    python benchmarks/update_step.py --batch-size 256 512 1024 --json out.json
    python benchmarks/update_step.py --preset two-cameras --batch-size 64 --replay-envs 16
    python benchmarks/update_step.py --conv-channels 32 32 32 --batch-size 64 --replay-envs 16

The replay (``--replay-rows`` x ``--replay-envs`` transitions at ``--preset``'s image shape)
is filled with uniform random data; per batch size, ``sample + update`` is jitted, called once to
compile (``compile_s``: first call minus one timed call), then called ``--updates`` times and
timed until ``block_until_ready``. Networks of ``--preset`` (default: ``default``), with
``--conv-channels`` replacing its conv widths when given.
``--json`` writes ``{"device", "peak_device_bytes", "results": [{"batch_size", "ms_per_update",
"compile_s", "replay_transitions"}]}`` (``peak_device_bytes``: JAX's ``memory_stats()``
``peak_bytes_in_use`` where the backend reports it, else null).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from mjx_reach import config as config_lib
from mjx_reach import ddpg, replay
from mjx_reach.env import STATE_DIM


def random_replay(rows: int, num_envs: int, image_shape, seed: int = 0) -> replay.Replay:
    """A full replay of ``rows`` x ``num_envs`` transitions of uniform random data (drawn on the
    host: drawing uint8 images with ``jax.random`` takes several times their size in memory)."""
    rng, shape = np.random.default_rng(seed), (rows, num_envs)
    uniform = lambda *s: jnp.asarray(rng.uniform(-1.0, 1.0, (*shape, *s)), jnp.float32)
    return replay.Replay(
        image=jnp.asarray(rng.integers(0, 256, (*shape, *image_shape), np.uint8)),
        goal=uniform(3),
        state=uniform(STATE_DIM),
        action=uniform(3),
        reward=uniform(),
        done=jnp.zeros(shape, bool),
        cursor=jnp.zeros((), jnp.int32),
        size=jnp.asarray(rows, jnp.int32),
    )


def benchmark(cfg: config_lib.Config, batch_size: int, buf: replay.Replay, updates: int) -> dict:
    """ms per update and compile seconds of ``cfg``'s networks at ``batch_size``."""
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, batch_size=batch_size))
    agent = ddpg.Agent(cfg, config_lib.image_shape(cfg.env))

    @jax.jit
    def step(agent_state, buf, key):
        return agent.update(agent_state, replay.sample(buf, key, batch_size), key)[0]

    state, keys = agent.init(), jax.random.split(jax.random.key(0), updates + 1)
    start = time.perf_counter()
    state = jax.block_until_ready(step(state, buf, keys[0]))
    first = time.perf_counter() - start
    start = time.perf_counter()
    for key in keys[1:]:
        state = step(state, buf, key)
    jax.block_until_ready(state)
    per_update = (time.perf_counter() - start) / updates
    return {
        "batch_size": batch_size,
        "ms_per_update": 1e3 * per_update,
        "compile_s": max(first - per_update, 0.0),
        "replay_transitions": int(buf.reward.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[256], help="batch sizes to measure")
    parser.add_argument("--updates", type=int, default=20, help="timed updates per batch size")
    parser.add_argument("--replay-rows", type=int, default=16, help="replay rows (vectorised env steps)")
    parser.add_argument("--replay-envs", type=int, default=256, help="replay worlds per row")
    parser.add_argument(
        "--preset", default="default", choices=sorted(config_lib.PRESETS), help="networks of this preset"
    )
    parser.add_argument("--conv-channels", type=int, nargs="+", help="replace the preset's conv widths")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()
    cfg = config_lib.preset(args.preset)
    if args.conv_channels:
        cfg = dataclasses.replace(
            cfg, network=dataclasses.replace(cfg.network, conv_channels=tuple(args.conv_channels))
        )
    buf = random_replay(args.replay_rows, args.replay_envs, config_lib.image_shape(cfg.env))
    results = [benchmark(cfg, b, buf, args.updates) for b in args.batch_size]
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    print(f"device: {device.device_kind}")
    print(f"{'batch':>6}  {'ms/update':>10}  {'compile s':>9}")
    for r in results:
        print(f"{r['batch_size']:>6}  {r['ms_per_update']:>10.2f}  {r['compile_s']:>9.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": str(device.device_kind),
                    "peak_device_bytes": stats.get("peak_bytes_in_use"),
                    "results": results,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
