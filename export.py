"""Export a trained run's policy (encoder + actor) to ONNX for the deploy loop.

    python export.py                    # the latest run folder in runs/
    python export.py runs/my_run        # writes runs/my_run/actor.onnx
    python export.py runs/my_run --out policy.onnx

The file carries the deploy contract as metadata (image size, camera, preprocessing, workspace box,
max step, frames, thresholds, config hash, versions) and is written only after onnxruntime agrees
with JAX on held-out rendered images.
"""

from __future__ import annotations

import argparse
import json
import sys

from mjx_reach import preallocation

preallocation.disable()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", default=None, help="run folder (default: the latest in runs/)")
    parser.add_argument("--out", default=None, help="ONNX path (default: RUN_DIR/actor.onnx)")
    parser.add_argument(
        "--check-envs", type=int, default=4, help="held-out worlds rendered for the parity check (2 images each)"
    )
    args = parser.parse_args(argv)

    from mjx_reach import config as config_lib
    from mjx_reach import export, runs

    try:
        run_dir = args.run_dir or runs.latest_run()
        path, meta = export.export(run_dir, args.out, args.check_envs)
    except (export.ExportError, runs.TrainingError, config_lib.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"onnx": str(path), "config_hash": meta["config_hash"], "parity": meta["parity"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
