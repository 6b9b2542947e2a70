"""DDPG update cost: milliseconds per jitted update (replay sample + ``Agent.update``) per batch size.

    python benchmarks/update_step.py --batch-size 256 512 1024 --json out.json
    python benchmarks/update_step.py --preset two-cameras --batch-size 64 --replay-envs 16
    python benchmarks/update_step.py --conv-channels 32 32 32 --batch-size 64 --replay-envs 16
    python benchmarks/update_step.py --batch-size 64 --replay-envs 16 --processes 2

The replay (``--replay-rows`` x ``--replay-envs`` transitions at ``--preset``'s image shape)
is filled with uniform random data; per batch size, a scan of ``--updates-per-call`` ``sample +
update`` steps (unrolled on the CPU, rolled elsewhere, like a training chunk's) is jitted,
called once to compile (``compile_s``: first call minus one timed call), then called for
``--updates`` updates and timed until ``block_until_ready``. Networks of ``--preset`` (default: ``default``), with
``--conv-channels`` replacing its conv widths when given.

The update is the training loop's (``training.Trainer``): run over the processes' mesh
(``distributed.Group.spmd``), it samples the process's share of the batch from its own replay of
``--replay-envs / P`` worlds and averages the gradients over the processes. With ``--processes P``
(P processes of one device each, ``mjx_reach.launcher``) the updates are timed between barriers and
``ms_local`` times the same update on the process's share without the all-reduce: the difference
is the all-reduce's share; ``allreduce_bytes`` is what each update all-reduces (gradients and
losses, float32).
``--json`` writes ``{"device", "processes", "peak_device_bytes", "results": [{"batch_size",
"ms_per_update", "ms_local", "updates_per_call", "allreduce_bytes", "compile_s",
"replay_transitions"}]}``
(``peak_device_bytes``: JAX's ``memory_stats()`` ``peak_bytes_in_use`` where the backend reports
it, else null).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from mjx_reach import config as config_lib
from mjx_reach import ddpg, distributed, launcher, replay
from mjx_reach.config import STATE_DIM
from mjx_reach.distributed import REPLICATED, SHARDED


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


def _time(step, state, buf, keys, group: distributed.Group) -> tuple[float, float]:
    """(seconds per call, compile seconds) of ``state = step(state, buf, key)`` over ``keys``."""
    start = time.perf_counter()
    state = jax.block_until_ready(step(state, buf, keys[0]))
    first = time.perf_counter() - start
    group.barrier()
    start = time.perf_counter()
    for key in keys[1:]:
        state = step(state, buf, key)
    jax.block_until_ready(state)
    group.barrier()
    per_update = (time.perf_counter() - start) / (len(keys) - 1)
    return per_update, max(first - per_update, 0.0)


def benchmark(cfg: config_lib.Config, batch_size: int, buf: replay.Replay, updates: int, per_call: int) -> dict:
    """ms per update (over the processes, and on this process's share alone) and compile seconds
    of ``cfg``'s networks at ``batch_size``."""
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, batch_size=batch_size))
    agent = ddpg.Agent(cfg, config_lib.image_shape(cfg.env))
    group = distributed.current()
    share = group.share(batch_size)

    def updates_of(agent_state, buf, key, average=group.mean):
        step = lambda state, k: (agent.update(state, replay.sample(buf, k, share), k, average)[0], None)
        keys = jax.random.split(key, per_call)
        return jax.lax.scan(step, agent_state, keys, unroll=jax.default_backend() == "cpu")[0]

    shared = group.spmd(updates_of, (REPLICATED, SHARDED, SHARDED), REPLICATED)
    local = jax.jit(lambda a, b, k: updates_of(a, b, k, average=lambda tree: tree))
    state, keys = agent.init(), jax.random.split(jax.random.PRNGKey(group.index), max(2, updates // per_call + 1))
    _time(local, state, buf, keys, group)  # warms the machine up: the first timed loop runs slower
    per_call_s, compile_s = _time(
        lambda a, b, k: group.local(shared(group.replicated(a), group.sharded(b), group.sharded(k))),
        state,
        buf,
        keys,
        group,
    )
    local_call_s, _ = _time(local, state, buf, keys, group)
    grads = agent.init().params
    return {
        "batch_size": batch_size,
        "ms_per_update": 1e3 * per_call_s / per_call,
        "ms_local": 1e3 * local_call_s / per_call,
        "updates_per_call": per_call,
        "allreduce_bytes": 4 * (sum(x.size for x in jax.tree.leaves(grads)) + 5),
        "compile_s": compile_s,
        "replay_transitions": int(buf.reward.size) * group.count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[256], help="batch sizes to measure")
    parser.add_argument("--updates", type=int, default=100, help="timed updates per batch size")
    parser.add_argument(
        "--updates-per-call", type=int, default=20, help="updates per jitted call (the CPU default chunk's 20)"
    )
    parser.add_argument("--replay-rows", type=int, default=16, help="replay rows (vectorised env steps)")
    parser.add_argument("--replay-envs", type=int, default=256, help="replay worlds per row")
    parser.add_argument(
        "--preset", default="default", choices=sorted(config_lib.PRESETS), help="networks of this preset"
    )
    parser.add_argument("--conv-channels", type=int, nargs="+", help="replace the preset's conv widths")
    parser.add_argument("--json", help="write the results here as JSON")
    launcher.add_process_arguments(parser)
    args = parser.parse_args()
    if (status := launcher.start_script_processes(args, sys.argv[1:])) is not None:
        sys.exit(status)
    cfg = config_lib.preset(args.preset)
    if args.conv_channels:
        cfg = dataclasses.replace(
            cfg, network=dataclasses.replace(cfg.network, conv_channels=tuple(args.conv_channels))
        )
    group = distributed.current()
    buf = random_replay(args.replay_rows, group.share(args.replay_envs), config_lib.image_shape(cfg.env), group.index)
    results = [benchmark(cfg, b, buf, args.updates, args.updates_per_call) for b in args.batch_size]
    if not group.is_main:
        return
    device = group.device
    stats = device.memory_stats() or {}
    print(f"device: {device.device_kind}, {group.count} process(es)")
    print(f"{'batch':>6}  {'ms/update':>10}  {'ms local':>9}  {'all-reduce B':>12}  {'compile s':>9}")
    for r in results:
        print(
            f"{r['batch_size']:>6}  {r['ms_per_update']:>10.2f}  {r['ms_local']:>9.2f}  {r['allreduce_bytes']:>12,}  {r['compile_s']:>9.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": str(device.device_kind),
                    "processes": group.count,
                    "peak_device_bytes": stats.get("peak_bytes_in_use"),
                    "results": results,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
