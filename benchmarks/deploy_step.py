"""Time one deploy step on the CPU: a 640x480 RGB frame → camera-model preprocessing (crop + area
resize to the policy image) → the ONNX policy on onnxruntime. Target: <= 2 ms per step.

    python benchmarks/deploy_step.py --onnx runs/RUN/actor.onnx --json out.json
    python benchmarks/deploy_step.py            # an untrained default-config policy (needs the train extra)

The step's cost does not depend on the weights, so without ``--onnx`` an untrained policy of the
default network is exported to a temporary file first. ``--json`` writes
``{"device", "threads", "iterations", "frame", "image", "results": {"preprocess_ms", "policy_ms",
"step_ms"}}`` with the median and 90th percentile of each, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

from deploy.policy import Policy
from mjx_reach.camera import D435_COLOUR
from mjx_reach.contract import METADATA_KEY


def untrained_onnx(path: pathlib.Path) -> pathlib.Path:
    """Export the default config's untrained encoder + actor with its metadata to ``path``."""
    import onnx

    from mjx_reach import config as config_lib
    from mjx_reach import ddpg, export, networks

    cfg = config_lib.Config()
    agent = ddpg.Agent(cfg, config_lib.image_shape(cfg.env))
    nets = agent.nets(agent.init().params)
    model = export.to_onnx(networks.Policy(nets.encoder, nets.actor), config_lib.image_shape(cfg.env))
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(export.metadata(cfg))})
    path.write_bytes(model.SerializeToString())
    return path


def timed(fn, iterations: int) -> dict:
    """Median and 90th percentile wall time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", help="exported policy (default: an untrained one in a temporary file)")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (deploy uses 1)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(args.onnx) if args.onnx else untrained_onnx(pathlib.Path(tmp) / "actor.onnx")
        policy = Policy(path, threads=args.threads)
    frame = np.random.default_rng(0).integers(0, 256, (D435_COLOUR.height, D435_COLOUR.width, 3), dtype=np.uint8)
    goal = (policy.meta.workspace_low + policy.meta.workspace_high) / 2
    image = policy.preprocess(frame, D435_COLOUR)

    def step():
        policy(policy.preprocess(frame, D435_COLOUR), goal)

    timed(step, args.warmup)
    results = {
        "preprocess_ms": timed(lambda: policy.preprocess(frame, D435_COLOUR), args.iterations),
        "policy_ms": timed(lambda: policy(image, goal), args.iterations),
        "step_ms": timed(step, args.iterations),
    }
    out = {
        "device": f"CPU ({os.cpu_count()} cores, {platform.machine()}, {platform.processor() or platform.system()})",
        "threads": args.threads,
        "iterations": args.iterations,
        "frame": [D435_COLOUR.height, D435_COLOUR.width, 3],
        "image": list(image.shape),
        "results": results,
    }
    for name, r in results.items():
        print(f"{name:>14}: median {r['median']:.3f} ms, p90 {r['p90']:.3f} ms")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
