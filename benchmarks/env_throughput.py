"""Env throughput: env-steps/s for physics only and for physics+render+DR, per batch size.

    python benchmarks/env_throughput.py --num-envs 64 256 --json out.json
    python benchmarks/env_throughput.py --preset plain-bench   # without the lab randomization
    python benchmarks/env_throughput.py --num-envs 64 --processes 2   # 32 worlds in each of 2 processes

Each measurement jits ``lax.scan(vmap(step))`` over ``--steps`` control steps, calls it once to
compile (reported as ``compile_s``: first call minus one steady-state call), then times
``--repeats`` further calls. ``physics`` is the arm motion alone (IK + kinematics, or IK + physics
substeps in ``dynamic`` mode); ``physics+render+dr`` is the full ``ReachEnv.step`` (auto-reset,
randomized rendering, pixel noise). ``--json`` writes ``{"device", "peak_device_bytes", "results":
[{"num_envs", "mode", "control_mode", "env_steps_per_s", "compile_s"}]}`` (``peak_device_bytes``:
JAX's ``memory_stats()`` ``peak_bytes_in_use`` where the backend reports it, else null; Warp's
render buffers are allocated outside JAX and not in it).

With ``--processes P`` (``mjx_reach.launcher``: P processes of one device each, on a CPU each on
its own group of cores) every process steps ``num_envs / P`` worlds, the processes start and stop
each timed measurement together (``distributed.Group.barrier``), and env-steps/s counts all
``num_envs`` worlds: what the training loop's collection gets from P processes. The JSON gains
``processes``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mjx_reach import preallocation

preallocation.disable()

import jax
import jax.numpy as jnp

from mjx_reach import config as config_lib
from mjx_reach import distributed, launcher
from mjx_reach.env import ReachEnv


def _measure(fn, carry, steps: int, repeats: int) -> tuple[float, float]:
    """(env-steps/s per world, compile seconds) of ``fn(carry) -> carry`` covering ``steps`` steps,
    timed from all processes' start to the last one's end."""
    group = distributed.current()
    start = time.perf_counter()
    carry = jax.block_until_ready(fn(carry))
    first = time.perf_counter() - start
    group.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        carry = fn(carry)
    jax.block_until_ready(carry)
    group.barrier()
    per_call = (time.perf_counter() - start) / repeats
    return steps / per_call, max(first - per_call, 0.0)


def benchmark(num_envs: int, cfg: config_lib.Config, steps: int, repeats: int) -> list[dict]:
    """Both modes at ``num_envs`` worlds in all (this process's share of them)."""
    group = distributed.current()
    worlds = group.share(num_envs)
    env = ReachEnv(cfg, worlds)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(group.key(jax.random.key(0)), worlds))
    actions = jax.random.uniform(group.key(jax.random.key(1)), (steps, worlds, 3), minval=-1, maxval=1)

    @jax.jit
    def physics(data):
        def body(data, action):
            ee = data.site_xpos[:, env.scene.tcp_site]
            target = jnp.clip(ee + action * cfg.env.max_step_m, env.workspace_low, env.workspace_high)
            return jax.vmap(env.move)(data, target), None

        return jax.lax.scan(body, data, actions)[0]

    @jax.jit
    def full(state):
        return jax.lax.scan(lambda s, a: (jax.vmap(env.step)(s, a), None), state, actions)[0]

    results = []
    for mode, fn, carry in [("physics", physics, state.data), ("physics+render+dr", full, state)]:
        rate, compile_s = _measure(fn, carry, steps, repeats)
        results.append(
            {
                "num_envs": num_envs,
                "mode": mode,
                "control_mode": cfg.env.control_mode,
                "env_steps_per_s": rate * num_envs,
                "compile_s": compile_s,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64], help="batch sizes to measure")
    parser.add_argument("--steps", type=int, default=10, help="control steps per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement")
    parser.add_argument("--control-mode", choices=["kinematic", "dynamic"], default="kinematic")
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument(
        "--preset", default="default", help="config preset whose randomization is rendered (e.g. plain-bench)"
    )
    launcher.add_process_arguments(parser)
    args = parser.parse_args()
    if (status := launcher.start_script_processes(args, sys.argv[1:])) is not None:
        sys.exit(status)
    if any(n % args.processes for n in args.num_envs):
        parser.error(f"--num-envs must split evenly over --processes {args.processes}")
    base = config_lib.preset(args.preset)
    cfg = config_lib.Config(env=config_lib.EnvConfig(control_mode=args.control_mode), randomization=base.randomization)
    group = distributed.current()
    device = str(group.device.device_kind)
    results = [r for n in args.num_envs for r in benchmark(n, cfg, args.steps, args.repeats)]
    if not group.is_main:
        return
    stats = group.device.memory_stats() or {}
    print(f"device: {device}, {group.count} process(es)")
    print(f"{'num_envs':>8}  {'mode':<18} {'control':<9} {'env-steps/s':>12}  {'compile s':>9}")
    for r in results:
        print(
            f"{r['num_envs']:>8}  {r['mode']:<18} {r['control_mode']:<9} {r['env_steps_per_s']:>12,.0f}  {r['compile_s']:>9.1f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": device,
                    "processes": group.count,
                    "peak_device_bytes": stats.get("peak_bytes_in_use"),
                    "results": results,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
