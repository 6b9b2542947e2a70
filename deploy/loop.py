"""The deploy loop: episodes of frame → preprocess → ONNX → safety → move, each logged.

``run`` connects the arm (clear errors, enable, position mode), then per goal homes the arm and
steps. Homing is a joint-space move to the model's home joint configuration (``home_joints_rad``,
where every training episode starts), never a Cartesian one: the xArm7 is redundant, so a
Cartesian move home, solved by IK from wherever the last episode ended, lets the elbow drift
episode after episode into postures the encoder never saw. After it the measured tool centre point
must be at the model's ``home_m`` (``HOME_TOLERANCE_M``), else the arm's TCP offset or base
transform is not the model's. Each step: read a frame from every camera, preprocess each with the
camera model and its own intrinsics, stack them along channels in the model's camera order, run the
policy, compare its ee prediction with the arm's measured ee (drift guard) and check the gripper is
in view of every camera (view guard), turn the action into the next target (max step, box) and
command it (a Cartesian move). An episode ends when the
policy says it has arrived (``PolicyStop``: its own ee estimate at the goal and its action small,
decided from the images alone; the arm's measured distance to the goal is only reported), at the
step limit, or on a stop: Ctrl-C, a camera/arm/safety error. On a stop the arm's motion is stopped
first, then the episode's log is written and the cause returned for printing.

``summary`` reports the success rates under an explicit episode definition (``FULL_EPISODE``, the
in-sim evaluation's, or ``POLICY_STOP``) next to the in-sim evaluation recorded in the model, and
says whether the two compare like with like.

Positions are metres in the sim world frame; only ``deploy.arm`` knows millimetres.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from deploy import safety
from deploy.arm import Arm
from deploy.policy import Metadata, Policy
from mjx_reach import camera as camera_model
from mjx_reach.contract import ArmError, Bench, DeployError, SafetyError


class Camera(Protocol):
    """A colour camera (``deploy.camera`` for a RealSense, ``mjx_reach.standins.twin.TwinCamera`` in the twin)."""

    def read(self) -> tuple[np.ndarray, camera_model.Intrinsics]:
        """The next frame captured after the call, (h, w, 3) uint8 RGB, and its intrinsics; raises
        ``CameraError`` on a timeout or a stopped stream."""

    def close(self) -> None:
        """Stop streaming."""


HOME_TOLERANCE_M = 0.005
"""After the joint-space home move, the measured tool centre point must be this close to the model's
``home_m``, m (a sound arm lands within a fraction of a millimetre)."""

FULL_EPISODE = "full episode"
"""Episode definition of the in-sim evaluation (``mjx_reach.evaluate``): the measured distance to the
goal after ``episode_steps`` steps, no early stop."""
POLICY_STOP = "policy stop"
"""Episode definition with ``PolicyStop``: the measured distance where the policy stopped itself (or
at the step limit)."""
STEP_LIMIT = "step limit"
"""``EpisodeResult.ended_by`` of an episode that ran ``Options.max_steps`` steps."""


@dataclasses.dataclass(frozen=True)
class PolicyStop:
    """When the policy itself says it has arrived: for ``steps`` consecutive steps its ``ee_pred`` is
    within the model's success threshold of the goal AND the move it asks for, max |clip(action, -1,
    1)| times the trained ``max_step_m``, is below ``move_m``. Uses the policy's outputs only (what it
    sees in the images), never the arm's measured position.

    The defaults: 3 mm is 15 % of a full 2 cm step and well inside the 2 cm threshold, so an arm that
    asks for less is holding still where it believes the goal is; 3 steps (0.3 s at the 0.1 s control
    step) keep one lucky frame from ending an episode."""

    move_m: float = 0.003
    """A step whose largest per-axis move is below this counts as holding still, m."""
    steps: int = 3
    """Consecutive settled steps that end the episode."""

    def __post_init__(self):
        if not (self.move_m > 0 and np.isfinite(self.move_m)) or self.steps < 1:
            raise DeployError(
                f"policy stop: need a finite move > 0 m (got {self.move_m}) and steps >= 1 (got {self.steps})"
            )

    def settled(self, action: np.ndarray, ee_pred: np.ndarray, goal: np.ndarray, meta: Metadata) -> bool:
        """Whether one step's ``action`` (3,) and ``ee_pred`` (3,) m say the policy is at ``goal`` (3,) m
        and holding still (a non-finite output never is)."""
        move_m = float(np.max(np.abs(np.clip(action, -1.0, 1.0)))) * meta.max_step_m
        return bool(np.linalg.norm(ee_pred - goal) < meta.success_threshold_m and move_m < self.move_m)


@dataclasses.dataclass(frozen=True)
class Options:
    """How episodes run."""

    max_steps: int
    """Policy steps per episode."""
    policy_stop: PolicyStop | None = PolicyStop()
    """End an episode early when the policy says it has arrived; ``None``: run every episode to
    ``max_steps`` (with the training ``episode_steps``, the in-sim ``FULL_EPISODE`` definition).
    On by default: on a real arm the user wants it to stop once it believes it is there rather than
    keep stepping, and a policy that never settles runs the full episode anyway."""
    drift: safety.DriftLimits = safety.DriftLimits()
    """Drift guard thresholds."""
    log_raw_frames: bool = False
    """Keep every camera frame in the episode log (default: each camera's first one only)."""


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
    goal: np.ndarray
    """(3,) m."""
    final_ee: np.ndarray
    """(3,) measured ee at the end, m."""
    final_distance_m: float
    """Measured distance from the ee to the goal at the end, m (reported, never used to stop)."""
    final_ee_pred: np.ndarray
    """(3,) the policy's ee estimate at the end, m."""
    steps: int
    """Moves commanded."""
    ended_by: str
    """``POLICY_STOP``, ``STEP_LIMIT`` or the cause of a stop."""


class EpisodeLog:
    """Per-step record of one episode, saved as ``<stem>.npz`` (+ ``<stem>.mp4`` of the policy images,
    the cameras side by side, when imageio with ffmpeg is installed)."""

    def __init__(self, goal, keep_raw_frames: bool):
        self.goal = np.asarray(goal, np.float64)
        self.keep_raw_frames = keep_raw_frames
        self.rows: dict[str, list] = {
            k: [] for k in ("time_s", "image", "action", "ee_pred", "ee_sdk", "drift_m", "target")
        }
        self.frames: list[list[np.ndarray]] = []
        """Per camera, its raw frames."""
        self.intrinsics: list[camera_model.Intrinsics] = []
        """Per camera, the intrinsics of its latest frame."""
        self.ended_by = ""

    def frame(self, frames: Sequence[np.ndarray], intrinsics: Sequence[camera_model.Intrinsics]) -> None:
        """One step's raw frame (h, w, 3) u8 and intrinsics of each camera, in the model's camera order."""
        if not self.frames:
            self.frames = [[] for _ in frames]
        if self.keep_raw_frames or not self.frames[0]:
            for kept, frame in zip(self.frames, frames, strict=True):
                kept.append(frame)
        self.intrinsics = list(intrinsics)

    def step(self, **row: np.ndarray | float) -> None:
        """One step: ``image`` (H, W, 3K) u8 (K cameras stacked), ``action`` (3,),
        ``ee_pred``/``ee_sdk``/``target`` (3,) m (``target`` NaN when none was commanded), ``drift_m``."""
        row["time_s"] = time.time()
        for key, value in row.items():
            self.rows[key].append(value)

    def save(self, stem: pathlib.Path, say: Callable[[str], None]) -> None:
        """Write ``stem.npz`` atomically, then a best-effort ``stem.mp4``. Camera 1's frames and
        intrinsics are ``raw_frames`` and ``intrinsics``, camera k's (k >= 2) ``raw_frames_k`` and
        ``intrinsics_k``."""
        stem.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(v) for k, v in self.rows.items() if v}
        arrays |= {"goal": self.goal, "ended_by": np.asarray(self.ended_by)}
        for k in range(max(len(self.frames), 1)):
            suffix = "" if k == 0 else f"_{k + 1}"
            frames = self.frames[k] if k < len(self.frames) else []
            intr = self.intrinsics[k] if k < len(self.intrinsics) else None
            arrays[f"raw_frames{suffix}"] = np.asarray(frames, np.uint8)
            arrays[f"intrinsics{suffix}"] = np.zeros(0) if intr is None else intr.to_array()
        tmp = stem.with_name(stem.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, stem.with_suffix(".npz"))
        if self.rows["image"]:
            _write_video(stem.with_suffix(".mp4"), side_by_side(np.asarray(self.rows["image"])), say)


def side_by_side(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3K) images of K stacked cameras → (N, H, K·W, 3), camera 1 on the left."""
    return np.concatenate(np.split(images, images.shape[-1] // 3, axis=-1), axis=2)


def _write_video(path: pathlib.Path, images: np.ndarray, say: Callable[[str], None]) -> None:
    try:
        import imageio_ffmpeg  # noqa: F401  (the train extra; a deploy-only install logs no video)

        from mjx_reach import video  # numpy only; starts ffmpeg without fork hooks (the twin runs JAX)
    except ImportError:
        return
    scale = 4  # 84 px → 336 px, a multiple of the codec's 16 px blocks
    try:
        video.write_mp4(path, np.repeat(np.repeat(images, scale, axis=1), scale, axis=2), fps=5)
    except Exception as e:  # a missing ffmpeg backend must not lose the run
        say(f"note: no episode video ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")


def random_goals(limits: safety.Limits, count: int, seed: int) -> np.ndarray:
    """(count, 3) goals uniform in the box, m."""
    return np.random.default_rng(seed).uniform(limits.low, limits.high, (count, 3))


def check_goals(goals: ArrayLike, limits: safety.Limits) -> np.ndarray:
    """``goals`` (N, 3) m if all are finite and inside the box, else ``SafetyError``."""
    goals = np.asarray(goals, np.float64).reshape(-1, 3)
    for goal in goals:
        if not limits.contains(goal):
            raise SafetyError(
                f"goal {goal.tolist()} m is outside the workspace box [{limits.low.tolist()}, {limits.high.tolist()}] m"
            )
    return goals


def run_episode(
    policy: Policy,
    cameras: Sequence[Camera],
    arm: Arm,
    goal: ArrayLike,
    limits: safety.Limits,
    view: safety.ViewGuards,
    options: Options,
    log: EpisodeLog,
    say: Callable[[str], None],
) -> EpisodeResult:
    """One episode towards ``goal`` (3,) m from the home pose with ``cameras`` in the model's camera
    order; raises a ``DeployError`` on a stop."""
    meta = policy.meta
    goal = np.asarray(goal, np.float64)
    drift_guard = safety.DriftGuard(options.drift)
    home = meta.home_m
    if not limits.contains(home):
        raise SafetyError(
            f"the model's home {np.round(home, 3).tolist()} m is outside the workspace box "
            f"[{limits.low.tolist()}, {limits.high.tolist()}] m: the arm homes there by a joint-space move, "
            "so the box must contain it"
        )
    view.check(home, "home")
    arm.move_joints(meta.home_joints_rad)
    at_home = arm.position()
    offset_m = float(np.linalg.norm(at_home - home))
    if offset_m > HOME_TOLERANCE_M:
        raise ArmError(
            f"after the joint-space home move the TCP is {offset_m * 1000:.1f} mm from the model's home: "
            "TCP offset or base transform differs from the model's"
        )
    target = np.clip(at_home, limits.low, limits.high)
    steps = settled = 0
    while True:
        arm.check()
        ee = arm.position()
        view.check(ee, "measured ee")
        frames, intrinsics = zip(*(camera.read() for camera in cameras))
        log.frame(frames, intrinsics)
        image = np.concatenate(
            [policy.preprocess(frame, intr, k) for k, (frame, intr) in enumerate(zip(frames, intrinsics))], axis=-1
        )
        action, ee_pred = policy(image, goal)
        drift, warned = drift_guard.update(ee_pred, ee)
        if warned:
            say(f"warning: step {steps}: encoder ee prediction {drift * 100:.1f} cm from the measured ee")
        stop = options.policy_stop
        settled = settled + 1 if stop is not None and stop.settled(action, ee_pred, goal, meta) else 0
        arrived = stop is not None and settled >= stop.steps
        if arrived or steps == options.max_steps:
            log.step(image=image, action=action, ee_pred=ee_pred, ee_sdk=ee, drift_m=drift, target=np.full(3, np.nan))
            distance = float(np.linalg.norm(ee - goal))
            return EpisodeResult(goal, ee, distance, ee_pred, steps, POLICY_STOP if arrived else STEP_LIMIT)
        target = safety.next_target(target, action, meta.max_step_m, limits)
        view.check(target, "target")
        log.step(image=image, action=action, ee_pred=ee_pred, ee_sdk=ee, drift_m=drift, target=target)
        arm.move_to(target)
        steps += 1


def stop_motion(arm: Arm, say: Callable[[str], None]) -> None:
    """Stop the arm's motion; a failure (a lost connection) is said, not raised."""
    try:
        arm.stop()
    except Exception as e:  # a lost connection cannot be stopped through; say so and go on
        say(f"warning: could not send stop to the arm: {type(e).__name__}: {e}")


def view_guard(meta: Metadata, bench: Bench | None = None) -> safety.ViewGuards:
    """The view guard of every policy camera (default: where the model trained it; pass the bench to
    guard the measured poses on the real arm), with the model's image, field of view, gripper and
    margin."""
    poses = (
        [(c.pos, c.lookat, c.roll_deg) for c in meta.cameras]
        if bench is None
        else [(c.pos, c.lookat, c.roll_deg) for c in bench.cameras]
    )
    return safety.ViewGuards(
        tuple(
            safety.ViewGuard(
                np.asarray(pos, np.float64),
                np.asarray(lookat, np.float64),
                trained.fovy_deg,
                meta.image_hw,
                meta.gripper_half_width_m,
                meta.gripper_height_m,
                meta.frame_margin_px,
                roll_deg,
                "camera" if len(meta.cameras) == 1 else f"camera {k + 1}",
            )
            for k, (trained, (pos, lookat, roll_deg)) in enumerate(zip(meta.cameras, poses, strict=True))
        )
    )


def run(
    policy: Policy,
    cameras: Sequence[Camera],
    arm: Arm,
    goals: ArrayLike,
    limits: safety.Limits,
    view: safety.ViewGuards,
    options: Options,
    log_dir: pathlib.Path,
    say: Callable[[str], None] = print,
) -> tuple[list[EpisodeResult], str | None]:
    """Run one episode per goal with ``cameras`` (one per model camera, in its order); returns
    (results of the finished episodes, cause of a stop or None). Motion is stopped before the cause
    is returned; every camera and the arm are closed at the end."""
    results: list[EpisodeResult] = []
    try:
        goals = check_goals(goals, limits)
        if len(cameras) != len(policy.meta.cameras):
            raise DeployError(f"the model takes {len(policy.meta.cameras)} camera(s), {len(cameras)} were opened")
        arm.connect()
        for i, goal in enumerate(goals):
            log = EpisodeLog(goal, options.log_raw_frames)
            try:
                result = run_episode(policy, cameras, arm, goal, limits, view, options, log, say)
                log.ended_by = result.ended_by
            except BaseException as e:
                stop_motion(arm, say)
                log.ended_by = "interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else str(e)
                raise
            finally:
                log.save(log_dir / f"episode_{i:03d}", say)
            results.append(result)
            say(
                f"episode {i}: goal {np.round(goal, 3).tolist()} m, final distance {result.final_distance_m * 100:.1f} cm "
                f"(measured; the policy's estimate {np.linalg.norm(result.final_ee_pred - goal) * 100:.1f} cm) "
                f"after {result.steps} steps ({result.ended_by})"
            )
    except KeyboardInterrupt:
        stop_motion(arm, say)
        return results, "interrupted (Ctrl-C): motion stopped"
    except DeployError as e:
        stop_motion(arm, say)
        return results, str(e)
    finally:
        close_all([*cameras, arm])
    return results, None


def close_all(devices: Sequence[Camera | Arm]) -> None:
    """Close every device, even when closing one raises (the first error is raised after)."""
    error = None
    for device in devices:
        try:
            device.close()
        except Exception as e:  # the others must still be closed
            error = error or e
    if error is not None:
        raise error


def episode_definition(options: Options, episode_steps: int) -> str:
    """The episode definition of a run with ``options``: ``POLICY_STOP``, ``FULL_EPISODE`` (no early
    stop for the training ``episode_steps``) or ``"<n> steps"`` (no early stop, another length)."""
    if options.policy_stop is not None:
        return POLICY_STOP
    return FULL_EPISODE if options.max_steps == episode_steps else f"{options.max_steps} steps"


def _rate_keys(meta: Metadata) -> tuple[str, str]:
    """Names of the success rates at the model's success and report thresholds (``success_2cm``,
    ``success_5cm`` by default)."""
    return tuple(f"success_{round(m * 100)}cm" for m in (meta.success_threshold_m, meta.report_threshold_m))


def _in_sim(meta: Metadata) -> dict | None:
    """The model's in-sim evaluation (``eval`` in its metadata) under the deploy summary's keys, or
    None when the model records none."""
    sim = meta.raw.get("eval")
    keys = ("episodes", "success_2cm", "success_5cm", "mean_final_distance_m")
    if not isinstance(sim, dict) or not all(isinstance(sim.get(k), (int, float)) for k in keys):
        return None
    success, report = _rate_keys(meta)  # evaluate names them success_2cm/5cm whatever the thresholds
    return {
        "episode_definition": FULL_EPISODE,
        "episodes": int(sim["episodes"]),
        success: float(sim["success_2cm"]),
        report: float(sim["success_5cm"]),
        "mean_final_distance_m": float(sim["mean_final_distance_m"]),
    }


def summary(results: list[EpisodeResult], meta: Metadata, options: Options) -> dict:
    """The run's figures under its episode definition next to the model's in-sim evaluation.

    ``episode_definition`` (see ``episode_definition``) and ``max_steps``; ``deploy``: ``episodes``,
    ``success_<t>cm`` at the success and report thresholds and ``mean_final_distance_m`` (all from
    the arm's measured final distance), ``ended_by`` (episodes per end); ``in_sim``: the same
    figures from the model's ``eval`` (always ``FULL_EPISODE``; None when the model has none);
    ``like_with_like``: whether the deploy figures are the in-sim definition (a ``FULL_EPISODE`` run,
    or a ``POLICY_STOP`` run of ``episode_steps`` in which no episode stopped early); ``note``: one
    line saying so, or why not.
    """
    definition = episode_definition(options, meta.episode_steps)
    deploy: dict = {"episodes": len(results)}
    if results:
        distances = np.asarray([r.final_distance_m for r in results])
        success, report = _rate_keys(meta)
        deploy |= {
            success: float(np.mean(distances < meta.success_threshold_m)),
            report: float(np.mean(distances < meta.report_threshold_m)),
            "mean_final_distance_m": float(np.mean(distances)),
            "ended_by": dict(collections.Counter(r.ended_by for r in results)),
        }
    in_sim = _in_sim(meta)
    none_stopped_early = bool(results) and all(r.ended_by == STEP_LIMIT for r in results)
    full = options.max_steps == meta.episode_steps and (definition == FULL_EPISODE or none_stopped_early)
    like = in_sim is not None and full
    if in_sim is None:
        note = "the model records no in-sim evaluation to compare with"
    elif like:
        note = (
            f"like with like: deploy and in-sim figures are both the measured distance after the full {meta.episode_steps} steps"
            + ("" if definition == FULL_EPISODE else " (no episode stopped early)")
        )
    else:
        note = (
            f"not the in-sim definition ({FULL_EPISODE}: the distance after {meta.episode_steps} steps, no early stop), "
            "so deploy and in-sim figures do not compare like with like: run with --full-episode and the default --max-steps to compare"
        )
    return {
        "episode_definition": definition,
        "max_steps": options.max_steps,
        "deploy": deploy,
        "in_sim": in_sim,
        "like_with_like": like,
        "note": note,
    }


def format_summary(summary: dict) -> str:
    """``summary`` as a few lines of text: the episode definition, deploy and in-sim figures in one
    table, and its note."""
    definition, steps = summary["episode_definition"], summary["max_steps"]
    how = {
        FULL_EPISODE: f"the measured distance after {steps} steps, no early stop: the in-sim definition",
        POLICY_STOP: f"the measured distance where the policy stopped itself, at most {steps} steps",
    }.get(definition, f"the measured distance after {steps} steps, no early stop")
    rows = [("deploy", summary["deploy"])] + ([("in-sim", summary["in_sim"])] if summary["in_sim"] else [])
    rates = sorted({k for _, row in rows for k in row if k.startswith("success_")}, key=lambda k: int(k[8:-2]))
    header = f"{'':8}{'episodes':>9}" + "".join(f"{'success@' + k.removeprefix('success_'):>14}" for k in rates)
    lines = [f"episodes: {definition} ({how})", header + f"{'mean final distance':>21}"]
    for name, row in rows:
        cells = "".join(f"{row[k]:>14.2f}" if k in row else f"{'-':>14}" for k in rates)
        mean = f"{row['mean_final_distance_m'] * 100:.1f} cm" if "mean_final_distance_m" in row else "-"
        lines.append(f"{name:8}{row['episodes']:>9}{cells}{mean:>21}")
    return "\n".join([*lines, summary["note"]])
