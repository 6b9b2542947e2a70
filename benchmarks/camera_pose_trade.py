"""What the training camera jitter trades: precision at the calibrated pose against a camera off it.

    python benchmarks/camera_pose_trade.py runs/jitter-0.5 runs/jitter-1 runs/jitter-2 --json trade.json

For each trained run folder (trained with its own ``randomization.cam_rot_deg``, the camera
orientation jitter), its final policy drives the same held-out episodes (``train.eval_envs`` of
them, ``evaluate.held_out_key``) on the plain bench with the policy camera exactly at its calibrated
pose and turned by each of ``--offsets-deg`` about its horizontal axis (tilt) and its vertical axis
(pan), either way (``robustness.camera_off``). Prints a markdown table (a row per run: success@2 cm
/ @5 cm per case) and writes ``--json`` atomically: ``{"date", "device", "command", "episodes",
"offsets_deg", "runs": [{"run", "train_cam_rot_deg", "cases": {"0deg" | "tilt_Xdeg" | "pan_Xdeg":
{"success_2cm", "success_5cm", "mean_final_distance_m", "encoder_ee_error_median_m",
"encoder_error_depth_median_m"}}}]}``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys
import time

from mjx_reach import preallocation

preallocation.disable()

from mjx_reach import evaluate, machine, robustness, runs
from mjx_reach.config import Config


def cases(cfg: Config, offsets_deg: list[float]) -> dict:
    """{case name: bench}: the camera at its calibrated pose (``0deg``), then tilted and panned by
    each non-zero offset."""
    plain = robustness.plain_bench(cfg.randomization)
    benches = {"0deg": robustness.camera_off(plain, robustness.TILT, 0.0)}
    for degrees in (d for d in offsets_deg if d != 0):
        for name, axis in (("tilt", robustness.TILT), ("pan", robustness.PAN)):
            benches[f"{name}_{degrees:g}deg"] = robustness.camera_off(plain, axis, degrees)
    return benches


def measure(run_dir: pathlib.Path, offsets_deg: list[float]) -> dict:
    """The final policy of ``run_dir`` on every case of ``cases``."""
    cfg, agent, params = runs.load_params(run_dir)
    evaluator = evaluate.Evaluator(cfg, evaluate.agent_policy(agent), benches=cases(cfg, offsets_deg))
    results = {}
    for name in evaluator.benches:
        outcome = evaluator.bench(params, name)
        results[name] = {field: outcome[field] for field in evaluate.ROBUSTNESS_FIELDS}
        print(f"{run_dir}: {name}: {results[name]['success_2cm']:.2f} @2 cm, {results[name]['success_5cm']:.2f} @5 cm")
    return {"run": str(run_dir), "train_cam_rot_deg": cfg.randomization.cam_rot_deg, "cases": results}


def markdown(record: dict) -> str:
    """A row per run: the training jitter, then success@2 cm / @5 cm per case."""
    names = list(record["runs"][0]["cases"])
    lines = [
        "| training jitter | " + " | ".join(f"{name} @2 / @5 cm" for name in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for run in record["runs"]:
        cells = [f"{c['success_2cm']:.2f} / {c['success_5cm']:.2f}" for c in run["cases"].values()]
        lines.append(f"| ±{run['train_cam_rot_deg']:g}° | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path, help="trained run folders")
    parser.add_argument("--offsets-deg", type=float, nargs="+", default=[1.0, 2.0], help="camera offsets, degrees")
    parser.add_argument("--json", type=pathlib.Path, help="write the record here")
    args = parser.parse_args(argv)
    measured = [measure(run_dir, args.offsets_deg) for run_dir in args.runs]
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "device": machine.describe(),
        "command": shlex.join(["python", "benchmarks/camera_pose_trade.py", *argv]),
        "episodes": runs.read_config(args.runs[0]).train.eval_envs,
        "offsets_deg": [0.0, *(d for d in args.offsets_deg if d != 0)],
        "runs": measured,
    }
    print(markdown(record))
    if args.json:
        runs.atomic_write(args.json, json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
