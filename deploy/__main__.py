"""Run an exported reach policy on the real xArm7 (or its digital twin).

    python -m deploy runs/RUN/actor.onnx --ip 192.168.1.185 --bench bench.json --goal 0.45 0.05 0.20
    python -m deploy runs/RUN/actor.onnx --ip ... --bench ... --camera-serial S1 --camera-serial S2 --goal ...
    python -m deploy runs/RUN/actor.onnx --twin --random-goals 5          # simulated arm and camera
    python -m deploy runs/RUN/actor.onnx --ip ... --bench ... --random-goals 3 --dry-run
    python -m deploy calibrate --ip 192.168.1.185 --out calibration   # the camera's pose: bench.json

Positions are metres in the sim world frame (arm base at the origin, +x forward, +z up). The
workspace box and the max step come from the model; --box-low/--box-high/--max-step-m can only
tighten them. A model trained with K cameras opens K RealSense cameras by serial (--camera-serial K
times in the model's camera order, or the bench's serials). Each episode is logged to
LOG_DIR/episode_NNN.npz (+ .mp4 with imageio). Ctrl-C stops the arm's motion and ends the run.

An episode ends when the policy says it has arrived (its own ee estimate within the success
threshold of the goal and its moves below --stop-move-m for --stop-steps steps in a row; the arm's
measured position is only reported) or after --max-steps. --full-episode runs every episode to
--max-steps (the in-sim evaluation's definition), so the summary compares like with like.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from deploy import loop, safety
from deploy.arm import Arm
from deploy.bench import check_bench
from deploy.calibrate import write_json
from deploy.policy import Policy
from mjx_reach.contract import TWIN_BENCHES, Bench, DeployError, load_bench


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deploy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("onnx", help="the exported policy (RUN_DIR/actor.onnx from `python export.py`)")
    where = p.add_argument_group("where it runs")
    where.add_argument("--ip", help="the xArm controller's address (real arm)")
    where.add_argument(
        "--bench",
        help="bench JSON with the measured camera pose(s) (real arm): "
        + '{"camera": {"pos": [x, y, z], "lookat": [x, y, z]}} or {"cameras": [{...}, {...}]}',
    )
    where.add_argument("--twin", action="store_true", help="drive the simulated arm and camera (needs the train extra)")
    where.add_argument(
        "--twin-bench",
        choices=TWIN_BENCHES,
        default="plain",
        help="what the twin's camera sees around the arm: the plain sim bench, or 'clutter' (objects, a poster, "
        "a patterned wall and a figure that training never draws)",
    )
    where.add_argument(
        "--dry-run", action="store_true", help="check model, bench, limits and goals, print the plan, move nothing"
    )
    goals = p.add_argument_group("goals (metres, world frame; inside the box)")
    goals.add_argument(
        "--goal", nargs=3, type=float, action="append", metavar=("X", "Y", "Z"), help="a goal (repeatable)"
    )
    goals.add_argument("--goals-file", help="text file with one goal 'x y z' per line")
    goals.add_argument("--random-goals", type=int, default=0, metavar="N", help="N goals uniform in the box")
    goals.add_argument("--seed", type=int, default=0, help="seed of --random-goals")
    limits = p.add_argument_group("safety (can only tighten the model's limits)")
    limits.add_argument("--box-low", nargs=3, type=float, metavar=("X", "Y", "Z"), help="workspace box lower corner, m")
    limits.add_argument(
        "--box-high", nargs=3, type=float, metavar=("X", "Y", "Z"), help="workspace box upper corner, m"
    )
    limits.add_argument("--max-step-m", type=float, help="largest target change per axis per step, m")
    limits.add_argument(
        "--drift-warn-m",
        type=float,
        default=safety.DriftLimits.warn_m,
        help="warn when the encoder's ee prediction is this far from the arm's, m",
    )
    limits.add_argument(
        "--drift-stop-m", type=float, default=safety.DriftLimits.stop_m, help="stop when it is this far, m"
    )
    limits.add_argument(
        "--drift-patience", type=int, default=safety.DriftLimits.patience, help="stop after this many warnings in a row"
    )
    limits.add_argument("--speed-m-s", type=float, default=0.1, help="Cartesian speed of each move, m/s")
    limits.add_argument(
        "--joint-speed-deg-s",
        type=float,
        default=20.0,
        help="joint speed of the joint-space move home at each episode start, deg/s",
    )
    where.add_argument(
        "--camera-serial",
        action="append",
        metavar="SERIAL",
        help="a RealSense's serial number, once per model camera in its order (default: the bench's serials; "
        "with one camera and none, the only one connected)",
    )
    limits.add_argument(
        "--camera-timeout-s", type=float, default=1.0, help="a camera read slower than this stops the run"
    )
    run = p.add_argument_group("episodes")
    run.add_argument("--max-steps", type=int, help="policy steps per episode (default: the training episode length)")
    run.add_argument(
        "--full-episode",
        action="store_true",
        help="no early stop: run every episode to --max-steps (with the default, the in-sim evaluation's episode)",
    )
    run.add_argument(
        "--stop-move-m",
        type=float,
        default=loop.PolicyStop.move_m,
        help="policy stop: the policy holds still when its largest per-axis move is below this, m",
    )
    run.add_argument(
        "--stop-steps",
        type=int,
        default=loop.PolicyStop.steps,
        help="policy stop: end after this many steps in a row at the goal (its own estimate) and holding still",
    )
    run.add_argument("--log-dir", default=None, help="episode logs (default: deploy_logs/<time>)")
    run.add_argument("--log-raw-frames", action="store_true", help="keep every camera frame in the logs")
    run.add_argument("--summary-json", help="also write the summary to this JSON file")
    return p


def read_goals(args: argparse.Namespace, limits: safety.Limits) -> np.ndarray:
    """(N, 3) goals from --goal, --goals-file and --random-goals, checked inside the box."""
    goals = [np.asarray(args.goal or [], np.float64).reshape(-1, 3)]
    if args.goals_file:
        try:
            goals.append(np.loadtxt(args.goals_file, ndmin=2, dtype=np.float64).reshape(-1, 3))
        except (OSError, ValueError) as e:
            raise DeployError(
                f"--goals-file {args.goals_file}: {str(e).splitlines()[0]} (expected one 'x y z' per line)"
            ) from None
    goals.append(loop.random_goals(limits, args.random_goals, args.seed))
    goals = np.concatenate(goals)
    if len(goals) == 0:
        raise DeployError("no goals: pass --goal X Y Z, --goals-file FILE or --random-goals N")
    return loop.check_goals(goals, limits)


def camera_serials(given: list[str] | None, count: int, bench: Bench | None) -> list[str | None]:
    """The serial of each of the model's ``count`` cameras, in its order: ``given`` (--camera-serial,
    once per camera), else the bench's; with one camera and no serial, None (the only one connected).
    A count mismatch, a missing or a duplicate serial is a one-line ``DeployError``."""
    if given:
        if len(given) != count:
            raise DeployError(
                f"--camera-serial given {len(given)} time(s) but the model has {count} camera(s): give one serial per camera, in the model's camera order"
            )
        serials: list[str | None] = list(given)
    elif bench is not None and any(c.serial for c in bench.cameras):
        serials = [c.serial for c in bench.cameras]
    elif count == 1:
        return [None]
    else:
        serials = [None] * count
    missing = [k + 1 for k, serial in enumerate(serials) if not serial]
    if missing and count > 1:
        raise DeployError(
            f"no serial for camera(s) {missing} of the model's {count}: pass --camera-serial {count} times (in the model's camera order) or put a \"serial\" on every bench camera"
        )
    repeated = sorted({s for s in serials if s and serials.count(s) > 1})
    if repeated:
        raise DeployError(f"camera serial {repeated[0]} is given for more than one camera")
    return serials


def open_devices(args: argparse.Namespace, policy: Policy, serials: list[str | None]) -> tuple[list[loop.Camera], Arm]:
    """(cameras in the model's camera order, arm) for the twin or the real bench (``serials``: one
    per camera, ``camera_serials``)."""
    meta = policy.meta
    if args.twin:
        from mjx_reach.standins import twin

        world = twin.TwinWorld.from_metadata(meta.raw, bench_path=args.bench, twin_bench=args.twin_bench)
        return twin.cameras(world), twin.TwinArm(world)
    from deploy import camera
    from deploy.arm import XArm

    arm = XArm(
        args.ip,
        meta.world_to_base,
        meta.tcp_offset_m,
        meta.flange_xmat,
        speed_m_s=args.speed_m_s,
        joint_speed_rad_s=float(np.deg2rad(args.joint_speed_deg_s)),
    )
    return camera.open_cameras(serials, timeout_s=args.camera_timeout_s), arm


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["calibrate"]:
        from deploy import calibrate

        return calibrate.main(argv[1:])
    args = parser().parse_args(argv)
    try:
        if not args.twin and not (args.ip and args.bench):
            raise DeployError("the real arm needs --ip and --bench (or pass --twin)")
        policy = Policy(args.onnx)
        meta = policy.meta
        bench = load_bench(args.bench) if args.bench else None
        if bench is not None:
            check_bench(meta, bench)
        base = safety.Limits(meta.workspace_low, meta.workspace_high, meta.max_step_m)
        limits = safety.tighten(base, args.box_low, args.box_high, args.max_step_m)
        goals = read_goals(args, limits)
        max_steps = meta.episode_steps if args.max_steps is None else args.max_steps
        if max_steps < 1:
            raise DeployError(f"--max-steps must be >= 1, got {max_steps}")
        drift = safety.DriftLimits(args.drift_warn_m, args.drift_stop_m, args.drift_patience)
        stop = None if args.full_episode else loop.PolicyStop(args.stop_move_m, args.stop_steps)
        options = loop.Options(max_steps, stop, drift, args.log_raw_frames)
        view = loop.view_guard(meta, bench)
        serials = [] if args.twin else camera_serials(args.camera_serial, len(meta.cameras), bench)
        plan = {
            "model": args.onnx,
            "config_hash": meta.config_hash,
            "box_low": limits.low.tolist(),
            "box_high": limits.high.tolist(),
            "max_step_m": limits.max_step_m,
            "goals": goals.tolist(),
            "episode_definition": loop.episode_definition(options, meta.episode_steps),
            "max_steps": max_steps,
            "camera_serials": serials,
            "in_sim_eval": meta.raw.get("eval"),
        }
        print(json.dumps(plan))
        if args.dry_run:
            return 0
        cameras, arm = open_devices(args, policy, serials)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    log_dir = pathlib.Path(args.log_dir or f"deploy_logs/{time.strftime('%Y%m%d-%H%M%S')}")
    results, cause = loop.run(policy, cameras, arm, goals, limits, view, options, log_dir)
    summary = loop.summary(results, meta, options)
    result = {**summary, "in_sim_eval": meta.raw.get("eval"), "stopped": cause, "log_dir": str(log_dir)}
    print(json.dumps(result, indent=2))
    print(loop.format_summary(summary))
    if args.summary_json:
        write_json(args.summary_json, result)
    if cause is not None:
        print(f"stopped: {cause}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
