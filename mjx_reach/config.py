"""Configuration: typed, frozen dataclasses, named presets and validation (no JAX import).

Units: metres, radians unless a name says otherwise (``_deg``, ``_px``, ``_s``). Every run writes
its resolved config (``to_dict``) next to its outputs; ``from_dict`` reads it back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import typing
from typing import Literal

import numpy as np

from mjx_reach import camera as camera_model
from mjx_reach import contract

Vec3 = tuple[float, float, float]
T = typing.TypeVar("T")


class ConfigError(ValueError):
    """A config value is invalid; the message is one line and names the field."""


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """A fixed camera in the sim world frame (arm base at the origin, table top at z=0).

    The default side camera matches an Intel RealSense D435 colour stream at 640x480
    (fy ≈ 615 px, i.e. 42.6 deg vertical field of view), centre-cropped to a square.
    """

    pos: Vec3 = (0.40, -1.30, 0.46)
    """Camera position, metres."""
    lookat: Vec3 = (0.40, 0.0, 0.30)
    """Point the optical axis passes through, metres."""
    fovy_deg: float = 42.5
    """Vertical field of view, degrees."""
    roll_deg: float = 0.0
    """Rotation about the optical axis, degrees (``camera.camera_xmat``): 0 is level; positive turns
    the camera counter-clockwise as seen from behind it, so the scene turns clockwise in the image."""


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """The reach task: scene, cameras, control and episode."""

    image_size: tuple[int, int] = (84, 84)
    """Policy image (height, width), pixels."""
    camera: CameraConfig = CameraConfig()
    """The policy camera (side view)."""
    second_camera: bool = False
    """Add a second policy camera (its image follows the first's along channels: H x W x 6, or 8
    with depth; the encoder gives each camera its own conv trunk). Preset ``two-cameras``."""
    camera2: CameraConfig = CameraConfig(pos=(1.65, 0.0, 0.62), lookat=(0.42, 0.0, 0.22))
    """The second policy camera, used when ``second_camera``: across the table, facing the arm, its
    optical axis at 88 deg to the first camera's, so the first camera's depth axis (world y) lies
    in its image plane, 1.3 m from the box like the first (the earlier camera2 at 58 deg halved the
    depth error with stacked channels: BENCHMARKS.md)."""
    depth: bool = False
    """Add a depth channel per camera (uint8, linear in metres over ``depth_range_m``)."""
    backgrounds: tuple[str, ...] = ()
    """Green screen: one PNG per policy camera, of the policy image's size, of the real bench behind
    the arm (``python -m mjx_reach.background``; ``train.py --bench`` sets them). The table, floor and
    wall then render as a key colour that these images replace (``render.composite_background``); empty:
    the sim bench."""
    depth_range_m: tuple[float, float] = (0.5, 2.0)
    """Depth mapped to 0..255 (near, far), metres."""
    control_mode: Literal["kinematic", "dynamic"] = "kinematic"
    """``kinematic``: joints are set to the IK solution (the real xArm in position mode once a move
    completes). ``dynamic``: IK targets drive position actuators through physics substeps."""
    control_dt_s: float = 0.1
    """Time per env step, seconds."""
    physics_dt_s: float = 0.004
    """Physics timestep in ``dynamic`` mode, seconds (``control_dt_s`` must be a multiple)."""
    max_step_m: float = 0.02
    """An action of norm-inf 1 moves the end effector target by this much per axis, metres."""
    workspace_low: Vec3 = (0.25, -0.20, 0.08)
    """Workspace box lower corner (goals and ee targets), metres."""
    workspace_high: Vec3 = (0.60, 0.20, 0.36)
    """Workspace box upper corner, metres."""
    gripper_half_width_m: float = 0.05
    """Half width of the gripper around its tool centre point, metres (visibility check)."""
    gripper_height_m: float = 0.17
    """Height of the gripper above its tool centre point up to the flange, metres."""
    frame_margin_px: float = 1.0
    """The gripper must stay this far inside the policy image, pixels."""
    success_threshold_m: float = 0.02
    """An episode succeeds when the ee is this close to the goal, metres."""
    report_threshold_m: float = 0.05
    """A looser success threshold also reported, metres."""
    reward: Literal["progress", "dense", "sparse"] = "progress"
    """``progress``: the distance to the goal gained this step in units of ``max_step_m`` (a
    potential-based shaping of ``dense``: same optimal policy, but the action's effect is the whole
    reward, so the critic learns it fast). ``dense``: -distance (metres). ``sparse``: 0 on
    success, else -1."""
    episode_steps: int = 50
    """Time limit, env steps."""
    init_joint_noise_rad: float = 0.15
    """Initial joint angles: home plus uniform noise of this half width, radians."""
    ik_iterations: int = 2
    """Damped-least-squares IK iterations per env step."""
    ik_damping: float = 0.05
    """DLS damping (metres / radians)."""


@dataclasses.dataclass(frozen=True)
class RandomizationConfig:
    """Per-episode, per-environment domain randomization ranges (uniform, ± half widths)."""

    enabled: bool = True
    """Off switch: every range below is ignored when False."""
    cam_pos_m: float = 0.005
    """Camera position jitter per axis, metres. Sized for a calibrated camera (``python -m deploy
    calibrate`` measured 2.4 mm median, 2.7 mm worst on the twin): about twice the calibration
    error. Preset ``uncalibrated`` keeps the seed's 2 cm for a camera placed by hand."""
    cam_rot_deg: float = 1.0
    """Camera orientation jitter about each camera axis, degrees (calibration: 0.11 deg worst; the
    seed's 2 deg in preset ``uncalibrated``): a margin for a camera bumped up to a degree off its
    calibrated pose (level ``plain``: 0.5). Pose jitter is what limits depth from one camera: an
    encoder cannot tell a camera 2 cm nearer from a gripper 2 cm nearer except by the scene around
    it (held-out depth error 15.9 mm at 2 cm / 2 deg / 1 deg, 10.3 mm here: BENCHMARKS.md)."""
    cam_fovy_deg: float = 0.25
    """Vertical field of view jitter, degrees (deploy crops with the stream's own factory
    intrinsics; preset ``uncalibrated``: 1 deg, i.e. 2.4 % of scale, ±3 cm of apparent depth at 1.3 m)."""
    light_dir: float = 0.3
    """Key light direction jitter per axis before renormalising (unitless)."""
    light_diffuse: tuple[float, float] = (0.45, 0.9)
    """Key light diffuse intensity range."""
    light_ambient: tuple[float, float] = (0.15, 0.4)
    """Ambient intensity range."""
    light_color: float = 0.1
    """Per-channel light colour jitter (multiplicative)."""
    shadow_prob: float = 0.0
    """Probability that the key light casts shadows (> 0 renders with shadows: slower)."""
    color: float = 0.12
    """Per-channel colour jitter of arm, table, floor and background (additive, 0..1 scale)."""
    pixel_noise: float = 3.0
    """Std of Gaussian pixel noise, in 0..255 intensity levels (0 disables)."""
    recolor_prob: float = 0.6
    """Probability, per bench surface (table, floor, wall) and episode, that its colour is drawn over
    the whole range (``randomize.TRAIN_SATURATION``) instead of jittered around the plain bench's."""
    texture_prob: float = 0.5
    """Probability, per bench surface and episode, of a procedural texture (``patterns.TRAIN_FAMILIES``:
    checkers, stripes, noise, gradients, blotches) tinted by the surface colour."""
    object_prob: float = 0.5
    """Probability that each of the scene's distractor objects (``scene.OBJECTS``: boxes, cylinders,
    a sphere, a thin panel) stands on the table, outside the arm's path, in an episode."""
    poster_prob: float = 0.4
    """Probability that each of the scene's wall posters (``scene.POSTERS``) hangs behind the arm."""
    person_prob: float = 0.25
    """Probability of a person-sized figure standing between the table and the wall."""
    wall_distance_m: tuple[float, float] = (0.8, 2.5)
    """Range of the wall's distance behind the arm base (world y of its front face), metres; the
    plain bench's wall is at 0.99 m."""
    background_gain: float = 0.15
    """Green-screen background (``env.backgrounds``): per-channel gain jitter, ± half width."""
    background_bias: float = 12.0
    """Green-screen background: brightness offset jitter, ± 0..255 levels."""
    background_shift_px: float = 2.0
    """Green-screen background: shift jitter per image axis, ± pixels (a camera a little off the
    pose the background was taken from)."""
    cam_rot_eval_deg: float = 0.5
    """Camera orientation jitter of the held-out benches (``robustness``), degrees: a calibrated
    camera. Training may jitter wider (``cam_rot_deg``) so that a camera bumped off its calibrated
    pose still works; the camera-off benches turn it by an exact offset instead."""


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Layer sizes."""

    conv_channels: tuple[int, ...] = (16, 16, 16)
    """Output channels of the encoder's conv layers (3x3 kernels). 16 rather than 32: on a 2-core
    CPU the update costs 66 ms instead of 142 ms at batch 64, and the held-out ee error did not get
    worse (BENCHMARKS.md, "Depth precision from one camera")."""
    conv_strides: tuple[int, ...] = (2, 2, 2)
    """Strides of the conv layers."""
    encoder: Literal["flatten", "keypoints"] = "flatten"
    """Readout of each camera's last feature map (``networks.Encoder``): ``flatten`` it, or
    ``keypoints`` (spatial soft-argmax: each channel's expected image position)."""
    encoder_hidden: int = 256
    """Width of the encoder's MLP layer."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and critic MLPs."""


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Asymmetric DDPG (optionally TD3: twin critics + target policy smoothing)."""

    gamma: float = 0.8
    """Discount per env step (with the ``progress`` reward a short horizon suffices and the critic
    converges faster)."""
    tau: float = 0.05
    """Polyak factor: target ← (1 - tau) target + tau online, every update."""
    critic_lr: float = 1e-3
    actor_lr: float = 1e-3
    encoder_lr: float = 1e-4
    """Learning rate of the encoder (0 freezes it). Lower than the actor's: with few randomized
    domains per CPU run, fast encoder updates overfit them and lose the pretrained encoder's
    generalisation (BENCHMARKS.md)."""
    batch_size: int = 64
    """Transitions per update."""
    bottleneck_weight: float = 10.0
    """Weight of the encoder's bottleneck loss MSE(ee_true, ee_pred), measured in workspace half
    extents; 0 turns it off."""
    twin_critics: bool = False
    """TD3: two critics, the target takes their minimum."""
    target_noise: float = 0.0
    """TD3 target policy smoothing: std of noise on target actions (0 = plain DDPG)."""
    target_noise_clip: float = 0.5
    exploration_std: float = 0.3
    """Std of Gaussian noise added to actions while collecting."""


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Supervised encoder pretraining (``python -m mjx_reach.pretrain``): regress the ee position
    on rendered, randomized images of a scripted arm that reaches random goals."""

    updates: int = 9_000
    """Gradient updates (24 passes over the data set, as at 8,000 images / 3,000 updates)."""
    dataset_images: int = 24_000
    """Images rendered for the training set (rounded up to whole vectorised steps). 24,000 rather than
    8,000 since the ``lab`` randomization: the held-out ee error went from 21.9 mm (8,000 images) to
    16.6 (16,000) and 14.1 (24,000), each step 1 to 3 more minutes of the 2-core CPU's run
    (BENCHMARKS.md, "Perception off the plain bench")."""
    eval_images: int = 512
    """Held-out images (held-out randomization seeds) for the reported ee error."""
    batch_size: int = 64
    learning_rate: float = 1e-3
    action_noise: float = 0.5
    """Std of Gaussian noise on the scripted reaching action (spreads the visited poses)."""
    episode_steps: int = 10
    """Episode length while rendering the data set: short episodes draw many randomized domains
    (one per episode) per image, which is what the encoder must generalise over."""
    domain_per_image: bool = True
    """Draw a fresh randomized domain for every rendered image (not once per episode): the images
    then span as many domains as there are images, the cheapest lever on the held-out ee error
    found (BENCHMARKS.md, "Depth precision from one camera")."""
    max_step_m: float = 0.06
    """The scripted arm's step while rendering the data set, metres per axis: large enough to
    cross the workspace box within ``episode_steps`` (the labels are the true ee positions, so
    how well IK tracks the big steps does not matter)."""
    updates_per_call: int = 20
    """Updates per jitted call (unrolled on the CPU; see ``train.unroll_updates``)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop."""

    total_env_steps: int = 56_000
    """Stop after this many env steps (summed over envs). 56,000 rather than 48,000 since a domain
    per collected step: the extra steps are more labs for the encoder (held-out success@2 cm on the
    plain bench 0.77 → 0.79, on the worst held-out bench 0.59 → 0.64; BENCHMARKS.md, "Perception off
    the plain bench")."""
    replay_capacity: int = 48_000
    """Replay size in transitions (rounded to whole env steps of all envs)."""
    domain_per_step: bool = True
    """Draw a fresh randomized domain (camera, light, bench, distractors) for every collected image,
    not once per episode: the replay then spans as many domains as it holds transitions (48,000
    rather than 960 episodes' worth at the CPU default), so the encoder's fine-tuning cannot fit a
    few of them (like ``pretrain.domain_per_image``); the episode, its goal and the physics go on. Held-out evaluation
    keeps one domain per episode. At the CPU default it took held-out success@2 cm from 0.68 to 0.77
    on the plain bench and from 0.44-0.84 to 0.59-0.84 on the held-out benches, for about a minute
    (BENCHMARKS.md, "Perception off the plain bench")."""
    learning_starts: int = 800
    """Env steps of random actions before updates begin."""
    updates_per_iteration: int = 4
    """Gradient updates per vectorised env step."""
    iterations_per_chunk: int = 5
    """Vectorised env steps per jitted call (host work happens between calls)."""
    unroll_updates: bool = True
    """Unroll the chunk's scan of updates. XLA:CPU runs the conv update ~15x slower inside a rolled
    loop (BENCHMARKS.md), so CPU runs unroll short chunks; GPU runs use long rolled chunks."""
    checkpoint_every_chunks: int = 50
    """Write a checkpoint every this many chunks (and on Ctrl-C / SIGTERM, and at the end)."""
    eval_envs: int = 256
    """Episodes (one per world) in each held-out evaluation (held-out randomization seeds)."""
    eval_every_chunks: int = 700
    """Evaluate the deterministic policy on ``eval_envs`` held-out episodes every this many chunks
    and after the last one (``eval_*`` columns of ``metrics.csv``). CPU default: 56,000 env steps /
    (16 worlds x 5 iterations) = 700 chunks: one evaluation, at the end (a halfway one cost 57 s of
    the 30 minutes). One policy rollout renders 256 worlds x 51 frames = 13,056 frames per camera
    (~30 s at ~430 frames/s on 2 cores) plus the actor on 256 images per step; the oracle rollout
    renders nothing. Measured on a quiet 2-core CPU: 90 s for the first evaluation (compiling both
    rollouts), 55 s for a later one; the last one with the 7 held-out benches and the video, 7.3 min
    (BENCHMARKS.md, "Held-out evaluation cost")."""
    robustness: Literal["every", "final", "off"] = "final"
    """Which held-out evaluations also report the held-out benches (``robustness``; ``eval.json``'s
    ``robustness`` block): each bench is one more policy rollout of ``eval_envs`` episodes (7
    benches; about 40 s each on the 2-core CPU, so the CPU default runs them after the last chunk
    only; from ``GPU_SIZED_WORLDS`` worlds on, ``every`` evaluation)."""
    target_success: float = 0.95
    """Held-out success at ``env.success_threshold_m`` whose first reaching is reported as
    ``time_to_success_2cm_s`` (wall_s of that evaluation) in ``eval.json``."""
    stop_at_target: bool = False
    """Stop the run (final checkpoint, ``eval.json``, video) once a held-out evaluation reaches
    ``target_success``."""
    video_envs: int = 2
    """Episodes in the evaluation video."""
    replay_in_checkpoint_max_gb: float = 4.0
    """Replay buffers up to this size are checkpointed (resume is exact); larger ones are
    refilled after a resume with ``learning_starts`` fresh env steps."""
    init_encoder: str = ""
    """Path of a pretrained encoder checkpoint (``python -m mjx_reach.pretrain``); empty: none."""
    pretrain_encoder: bool = True
    """Without ``init_encoder``: pretrain one first (``pretrain.*``) into the run's ``encoder/``
    and start from it (the seed's best model did; preset ``no-bottleneck`` does not)."""


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Processes that train one run together (``mjx_reach.distributed``; docs/scaling.md). The
    worlds, the replay, each batch, the pretraining images and the held-out episodes are split
    evenly over all ``processes · hosts`` of them; the gradients are averaged across them."""

    processes: int = 1
    """Processes per host: one per GPU (each sees only its own), or per group of CPU cores."""
    hosts: int = 1
    """Hosts that each run ``processes`` (``train.py --coordinator HOST:PORT --host-rank R``)."""
    heartbeat_timeout_s: int = 30
    """A process that sends the coordinator no heartbeat for this long is declared dead and the
    others end (JAX's coordination service): how long a dead host takes to stop the run."""
    barrier_timeout_s: int = 900
    """How long processes wait for each other before a program they run together (one may be
    compiling, evaluating or checkpointing longer); a process alive but stuck ends the run after it."""
    stop_grace_s: float = 10.0
    """After a process on this host fails, the others get SIGTERM, then SIGKILL after this long."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run needs. ``preset(name)`` gives the named starting points."""

    env: EnvConfig = EnvConfig()
    randomization: RandomizationConfig = RandomizationConfig()
    network: NetworkConfig = NetworkConfig()
    agent: AgentConfig = AgentConfig()
    train: TrainConfig = TrainConfig()
    pretrain: PretrainConfig = PretrainConfig()
    distributed: DistributedConfig = DistributedConfig()
    seed: int = 0
    num_envs: int = 16
    """Parallel environments."""


def _with(cfg: Config, **sections) -> Config:
    """``cfg`` with fields of its sections replaced: ``_with(cfg, agent={"batch_size": 64})``."""
    return dataclasses.replace(
        cfg, **{name: dataclasses.replace(getattr(cfg, name), **fields) for name, fields in sections.items()}
    )


WALL_MIN_DISTANCE_M = 0.8
"""Nearest wall the scene allows behind the arm base (world y of its front face), metres: the table
ends at 0.75 m."""
RANDOMIZATION_LEVELS: dict[str, RandomizationConfig] = {
    "plain": RandomizationConfig(
        cam_rot_deg=0.5,
        recolor_prob=0.0,
        texture_prob=0.0,
        object_prob=0.0,
        poster_prob=0.0,
        person_prob=0.0,
        wall_distance_m=(0.99, 0.99),
    ),
    "lab": RandomizationConfig(),
}
"""Named levels of ``Config.randomization``: ``plain`` jitters the camera (±0.5 deg), lights and
the plain bench's colours (the project's earlier default); ``lab`` (the default) also repaints and
textures the bench, puts distractor objects on the table, posters on the wall and a person behind
it, moves the wall, and jitters the camera ±1 deg (README, "What training randomizes")."""

_DEFAULT = Config()
PRESETS: dict[str, Config] = {
    "default": _DEFAULT,
    "best": _DEFAULT,
    "plain-bench": dataclasses.replace(_DEFAULT, randomization=RANDOMIZATION_LEVELS["plain"]),
    "no-bottleneck": _with(
        _DEFAULT, agent={"bottleneck_weight": 0.0, "encoder_lr": 1e-3}, train={"pretrain_encoder": False}
    ),
    "depth": _with(_DEFAULT, env={"depth": True}, agent={"bottleneck_weight": 0.0}),
    "two-cameras": _with(_DEFAULT, env={"second_camera": True}, train={"total_env_steps": 32_000}),
    "uncalibrated": _with(_DEFAULT, randomization={"cam_pos_m": 0.02, "cam_rot_deg": 2.0, "cam_fovy_deg": 1.0}),
    "quick": _with(
        _DEFAULT,
        agent={"batch_size": 32},
        train={"total_env_steps": 24_000, "replay_capacity": 24_000, "eval_envs": 32, "video_envs": 1},
        pretrain={"updates": 1_200, "dataset_images": 6_000, "eval_images": 256},
    ),
    "smoke": _with(
        _DEFAULT,
        agent={"batch_size": 32},
        train={"total_env_steps": 800, "replay_capacity": 800, "learning_starts": 400, "eval_envs": 8, "video_envs": 1},
        pretrain={"updates": 50, "dataset_images": 256, "eval_images": 32},
    ),
}
"""The seed's experiments: ``best`` (= ``default``: RL + bottleneck + pretrained encoder, RGB),
``no-bottleneck`` (RL alone from a random encoder), ``depth`` (RGB-D + pretrained encoder, no
bottleneck). ``two-cameras``: ``default`` with the second policy camera ``env.camera2``, which sees
the first camera's depth axis side-on (docs/results.md), each camera through its own 16-channel conv
trunk; an update costs about twice ``default``'s, so it runs 32,000 env steps (it passes 0.9
held-out success at 2 cm by then) to stay near the CPU default's time. ``uncalibrated``: the seed's camera
randomization (±2 cm, ±2 deg, ±1 deg fovy) for a camera whose pose is measured by hand rather than
with ``python -m deploy calibrate``. All are sized for a 2-core CPU (16 envs; ``default`` < 30 min); scale up with
``--num-envs`` and the ``train.*`` flags on a GPU (docs/scaling.md). ``quick``: a few-minute CPU run (the
learning test and the tests that need a trained policy use it). ``smoke``: every stage in about
a minute, too short to learn (the notebooks' small size)."""


REPLAY_BUDGET_BYTES = 16 * 10**9
"""Replay memory ``scale_to_num_envs`` sizes for, bytes (16 GB: with the render buffers and the
networks it keeps a 4096-world run well inside 30 GB of an 80 GB GPU)."""
PRETRAIN_BUDGET_BYTES = 2 * 10**9
"""Memory of the pretraining image set ``scale_to_num_envs`` sizes for, bytes."""
STATE_DIM = 20
"""Width of the critic's privileged state (``env.State.obs['state']``): ee position (3), goal (3),
joint angles (7), joint velocities (7)."""
TRANSITION_FLOAT_BYTES = 128
"""Upper bound on a replay transition's non-image bytes (goal, state, action, reward, done:
109 B at ``STATE_DIM`` 20; ``memory.replay_bytes`` has the exact figure)."""
GPU_SIZED_WORLDS = 256
"""From this many worlds on a run is taken to be on a GPU: rolled update scans, long chunks."""
SAMPLES_PER_ENV_STEP = 4
"""Scaled replay ratio: transitions sampled by updates (updates x batch) per env step collected."""
LEARNING_STARTS_STEPS_PER_WORLD = 10
"""Random-action env steps of every world before the updates begin (scaled)."""
CHUNK_ENV_STEPS = 32_768
"""Env steps (summed over worlds) per jitted chunk at GPU sizes."""
GPU_EVALUATIONS = 4
"""Held-out evaluations of a run at GPU sizes (every quarter of its chunks: the time to the target
success is read from them)."""
PRETRAIN_STEPS_PER_WORLD = 16
"""Rendered steps of every world in the scaled pretraining image set."""


def scale_to_num_envs(cfg: Config, num_envs: int) -> Config:
    """``cfg`` (a preset, sized for ``cfg.num_envs`` worlds) resized for ``num_envs`` worlds.

    At or below the preset's world count only ``num_envs`` changes, so ``python train.py`` is the
    preset itself. Above it, with N = ``num_envs``, h x w x c the policy image, s = the preset's
    steps per world (``total_env_steps / num_envs``; 3,000 for ``default``), every field below is
    the larger of the preset's value and:

    - ``train.total_env_steps`` = N · s: every world runs as many steps (episodes) as in the preset.
    - ``agent.batch_size`` = 64 · 2^⌊log2(N/16)/2⌋, at most 1024: doubles per 4x the worlds
      (64 at 16 worlds, 512 at 1024, 1024 at 4096).
    - ``train.updates_per_iteration`` = ⌈4 · N / batch⌉ (``SAMPLES_PER_ENV_STEP``): updates sample 4
      transitions per env step collected (the 16-world preset samples 16: 4 updates x 64 / 16).
    - ``train.replay_capacity`` = whole env steps of N worlds within ``REPLAY_BUDGET_BYTES``
      (16 GB at h·w·c + 128 B per transition: 21.3 KB at 84x84x3, so 751k transitions, 183 steps
      of 4096 worlds), and no more than the run's steps.
    - ``train.learning_starts`` = 10 · N: a few random steps of every world.
    - ``train.eval_envs`` = N: held-out evaluation on as many worlds as training.
    - From ``GPU_SIZED_WORLDS`` (256) worlds on: ``train.unroll_updates`` = False (rolled scans
      compile in constant time; only XLA:CPU needs them unrolled) and
      ``train.iterations_per_chunk`` = ⌈32,768 / N⌉ (8 at 4096 worlds), at most the run's iterations;
      ``train.eval_every_chunks`` = a quarter of the run's chunks (``GPU_EVALUATIONS``);
      ``train.robustness`` = ``every`` (unless ``off``): every held-out evaluation reports the
      held-out benches.
    - ``pretrain.dataset_images`` = 16 · N (16 rendered steps of every world) within
      ``PRETRAIN_BUDGET_BYTES`` (2 GB: 94k images at 84x84x3), at least the preset's, in whole
      steps of the N worlds; ``pretrain.updates`` keeps the
      preset's passes over the data set (updates · batch / images: 24 for ``default``).
    """
    if num_envs <= cfg.num_envs:
        return dataclasses.replace(cfg, num_envs=num_envs)
    n, train, agent, pre = num_envs, cfg.train, cfg.agent, cfg.pretrain
    h, w, c = image_shape(cfg.env)
    total = max(train.total_env_steps, n * (train.total_env_steps // cfg.num_envs))
    batch = max(agent.batch_size, min(1024, 64 << (max(0, (n // 16).bit_length() - 1) // 2)))
    replay_rows = min(REPLAY_BUDGET_BYTES // (n * (h * w * c + TRANSITION_FLOAT_BYTES)), -(-total // n))
    train_fields = {
        "total_env_steps": total,
        "replay_capacity": max(train.replay_capacity, max(2, replay_rows) * n),
        "updates_per_iteration": max(train.updates_per_iteration, -(-SAMPLES_PER_ENV_STEP * n // batch)),
        "learning_starts": max(train.learning_starts, LEARNING_STARTS_STEPS_PER_WORLD * n),
        "eval_envs": max(train.eval_envs, n),
    }
    if n >= GPU_SIZED_WORLDS:
        iterations = max(train.iterations_per_chunk, min(-(-CHUNK_ENV_STEPS // n), -(-total // n)))
        chunks = -(-total // (iterations * n))
        train_fields |= {
            "unroll_updates": False,
            "iterations_per_chunk": iterations,
            "eval_every_chunks": min(train.eval_every_chunks, -(-chunks // GPU_EVALUATIONS)),
            "robustness": "every" if train.robustness == "final" else train.robustness,
        }
    images = (
        max(-(-pre.dataset_images // n), min(PRETRAIN_STEPS_PER_WORLD, PRETRAIN_BUDGET_BYTES // (h * w * c) // n)) * n
    )
    passes = pre.updates * pre.batch_size / pre.dataset_images
    updates = max(
        pre.updates, math.ceil(passes * images / pre.batch_size / pre.updates_per_call) * pre.updates_per_call
    )
    scaled = _with(
        cfg, agent={"batch_size": batch}, train=train_fields, pretrain={"dataset_images": images, "updates": updates}
    )
    return dataclasses.replace(scaled, num_envs=n)


def preset(name: str) -> Config:
    """The named preset, or a ``ConfigError`` listing the known names."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name]


def override(
    cfg: Config,
    total_env_steps: int | None = None,
    num_envs: int | None = None,
    seed: int | None = None,
    init_encoder: str | None = None,
    processes: int | None = None,
    hosts: int | None = None,
) -> Config:
    """``cfg`` with the command lines' shorthand settings (``--total-steps``, ``--num-envs``,
    ``--seed``, ``--init-encoder``, ``--processes``, ``--num-hosts``) applied; None keeps ``cfg``'s
    value."""
    given = lambda **fields: {k: v for k, v in fields.items() if v is not None}
    sections = {
        "train": given(total_env_steps=total_env_steps, init_encoder=init_encoder),
        "distributed": given(processes=processes, hosts=hosts),
    }
    return dataclasses.replace(_with(cfg, **sections), **given(num_envs=num_envs, seed=seed))


def with_bench_camera(cfg: Config, bench_path: str | os.PathLike) -> Config:
    """``cfg`` with its policy camera(s) from the bench file at ``bench_path`` (``contract.load_bench``,
    e.g. written by ``python -m deploy calibrate``): position, look-at point, roll and, when the bench
    has one, the field of view; camera jitter from the calibration's standard deviations
    (``bench_camera_jitter``); the green-screen backgrounds when every camera has one; a bench with two cameras sets ``env.camera2`` too and turns
    ``env.second_camera`` on. Validated (the workspace box must stay in view of each camera). Any
    problem, or a one-camera bench for a two-camera config, is a one-line ``ConfigError`` naming the
    bench."""
    try:
        bench = contract.load_bench(bench_path)
    except contract.PolicyError as e:
        raise ConfigError(f"--bench: {e}") from None
    count = len(bench.cameras)
    if count > 2:
        raise ConfigError(f"--bench {bench_path}: the bench has {count} cameras, training takes at most 2")
    if count == 1 and cfg.env.second_camera:
        raise ConfigError(
            f"--bench {bench_path}: the bench has 1 camera but env.second_camera is set: calibrate the second camera into it (python -m deploy calibrate --camera-index 2)"
        )
    cameras = [
        CameraConfig(
            pos=cam.pos,
            lookat=cam.lookat,
            fovy_deg=default.fovy_deg if cam.fovy_deg is None else cam.fovy_deg,
            roll_deg=cam.roll_deg,
        )
        for cam, default in zip(bench.cameras, (cfg.env.camera, cfg.env.camera2))
    ]
    env = {"camera": cameras[0]} | ({"camera2": cameras[1], "second_camera": True} if count == 2 else {})
    backgrounds = [cam.background for cam in bench.cameras]
    if all(backgrounds):
        env["backgrounds"] = tuple(backgrounds)
    try:
        return validate(_with(cfg, env=env, randomization=bench_camera_jitter(cfg.randomization, bench)))
    except ConfigError as e:
        raise ConfigError(f"--bench {bench_path}: {e}") from None


BENCH_POSE_SIGMAS = 3.0
"""Camera jitter for a calibrated bench covers this many standard deviations of its pose."""
CAMERA_BUMP_MARGIN_DEG = 1.0
"""Orientation jitter added on top for a camera bumped or calibrated off by up to this much, degrees."""


def bench_camera_jitter(dr: RandomizationConfig, bench: contract.Bench) -> dict:
    """``randomization`` fields for a bench whose cameras carry their calibration's standard
    deviations (worst camera): position jitter ``BENCH_POSE_SIGMAS`` σ (at least ``dr.cam_pos_m``),
    orientation jitter ``BENCH_POSE_SIGMAS`` σ + ``CAMERA_BUMP_MARGIN_DEG``, and the held-out benches'
    calibrated camera ``BENCH_POSE_SIGMAS`` σ. Nothing for a bench without them (measured by hand)."""
    pos = [c.position_std_m for c in bench.cameras if c.position_std_m is not None]
    rot = [c.rotation_std_deg for c in bench.cameras if c.rotation_std_deg is not None]
    fields = {}
    if pos:
        fields["cam_pos_m"] = max(dr.cam_pos_m, BENCH_POSE_SIGMAS * max(pos))
    if rot:
        fields["cam_rot_deg"] = BENCH_POSE_SIGMAS * max(rot) + CAMERA_BUMP_MARGIN_DEG
        fields["cam_rot_eval_deg"] = BENCH_POSE_SIGMAS * max(rot)
    return fields


def validate(cfg: Config) -> Config:
    """Check ``cfg``; raise ``ConfigError`` (one line, naming the field) on the first problem."""
    env, dr = cfg.env, cfg.randomization
    _require(
        len(tuple(env.image_size)) == 2 and all(isinstance(v, int) for v in env.image_size),
        "env.image_size",
        f"must be (height, width) in pixels, got {env.image_size}",
    )
    h, w = env.image_size
    _require(h >= 16 and w >= 16, "env.image_size", f"must be at least 16x16 pixels, got {env.image_size}")
    _require(cfg.num_envs >= 1, "num_envs", f"must be >= 1, got {cfg.num_envs}")
    _require(
        env.control_mode in ("kinematic", "dynamic"),
        "env.control_mode",
        f"must be 'kinematic' or 'dynamic', got {env.control_mode!r}",
    )
    _require(
        env.reward in ("progress", "dense", "sparse"),
        "env.reward",
        f"must be 'progress', 'dense' or 'sparse', got {env.reward!r}",
    )
    _require(env.control_dt_s > 0, "env.control_dt_s", f"must be > 0, got {env.control_dt_s}")
    _require(env.physics_dt_s > 0, "env.physics_dt_s", f"must be > 0, got {env.physics_dt_s}")
    substeps = env.control_dt_s / env.physics_dt_s
    _require(
        abs(substeps - round(substeps)) < 1e-6,
        "env.physics_dt_s",
        f"must divide env.control_dt_s={env.control_dt_s}, got {env.physics_dt_s}",
    )
    _require(0 < env.max_step_m <= 0.1, "env.max_step_m", f"must be in (0, 0.1] metres, got {env.max_step_m}")
    _require(env.episode_steps >= 1, "env.episode_steps", f"must be >= 1, got {env.episode_steps}")
    _require(env.ik_iterations >= 1, "env.ik_iterations", f"must be >= 1, got {env.ik_iterations}")
    _require(env.ik_damping > 0, "env.ik_damping", f"must be > 0, got {env.ik_damping}")
    _require(
        0 < env.success_threshold_m <= env.report_threshold_m,
        "env.success_threshold_m",
        f"must be in (0, report_threshold_m={env.report_threshold_m}], got {env.success_threshold_m}",
    )
    _require(env.init_joint_noise_rad >= 0, "env.init_joint_noise_rad", f"must be >= 0, got {env.init_joint_noise_rad}")
    _require(
        len(env.backgrounds) in (0, num_cameras(env)),
        "env.backgrounds",
        f"needs one image per policy camera ({num_cameras(env)}), got {len(env.backgrounds)}",
    )
    near, far = env.depth_range_m
    _require(0 < near < far, "env.depth_range_m", f"must be 0 < near < far metres, got {env.depth_range_m}")
    low, high = np.asarray(env.workspace_low), np.asarray(env.workspace_high)
    _require(
        bool(np.all(high - low >= 0.02)),
        "env.workspace_high",
        f"must exceed env.workspace_low by >= 2 cm per axis, got low={env.workspace_low} high={env.workspace_high}",
    )
    _require(
        bool(low[2] - env.gripper_half_width_m >= 0.0),
        "env.workspace_low",
        f"z={low[2]} puts the gripper into the table (needs >= gripper_half_width_m={env.gripper_half_width_m})",
    )
    for name, cam in [("env.camera", env.camera)] + ([("env.camera2", env.camera2)] if env.second_camera else []):
        _require(0 < cam.fovy_deg < 150, f"{name}.fovy_deg", f"must be in (0, 150) degrees, got {cam.fovy_deg}")
        _require(-180 <= cam.roll_deg <= 180, f"{name}.roll_deg", f"must be in [-180, 180] degrees, got {cam.roll_deg}")
        try:
            hull, uv, inside = gripper_visibility(env, cam, camera_model.box_corners(low, high))
        except ValueError as e:
            raise ConfigError(f"{name}.lookat: {e}") from None
        if not inside.all():
            worst = hull[np.argmin(inside)]
            raise ConfigError(
                f"env.workspace_high: the workspace box [{env.workspace_low}, {env.workspace_high}] plus the gripper "
                f"leaves the {name} image (e.g. gripper point {np.round(worst, 3).tolist()} m projects to pixel "
                f"{np.round(uv[np.argmin(inside)], 1).tolist()} of {w}x{h}); shrink the box or move the camera"
            )
    for field in (
        "cam_pos_m",
        "cam_rot_deg",
        "cam_rot_eval_deg",
        "cam_fovy_deg",
        "light_dir",
        "light_color",
        "color",
        "pixel_noise",
        "background_gain",
        "background_bias",
        "background_shift_px",
    ):
        value = getattr(dr, field)
        _require(value >= 0, f"randomization.{field}", f"must be >= 0, got {value}")
    for field in ("recolor_prob", "texture_prob", "object_prob", "poster_prob", "person_prob"):
        value = getattr(dr, field)
        _require(0 <= value <= 1, f"randomization.{field}", f"must be in [0, 1], got {value}")
    near_wall, far_wall = dr.wall_distance_m
    _require(
        WALL_MIN_DISTANCE_M <= near_wall <= far_wall,
        "randomization.wall_distance_m",
        f"must satisfy {WALL_MIN_DISTANCE_M} <= near <= far metres (the table ends at 0.75 m), got {dr.wall_distance_m}",
    )
    for field in ("light_diffuse", "light_ambient"):
        lo, hi = getattr(dr, field)
        _require(0 <= lo <= hi <= 1, f"randomization.{field}", f"must satisfy 0 <= low <= high <= 1, got {(lo, hi)}")
    _require(0 <= dr.shadow_prob <= 1, "randomization.shadow_prob", f"must be in [0, 1], got {dr.shadow_prob}")
    net, agent, train = cfg.network, cfg.agent, cfg.train
    _require(
        len(net.conv_channels) == len(net.conv_strides) >= 1,
        "network.conv_strides",
        f"needs one stride per conv layer, got {len(net.conv_strides)} for {len(net.conv_channels)}",
    )
    _require(
        net.encoder in ("flatten", "keypoints"),
        "network.encoder",
        f"must be 'flatten' or 'keypoints', got {net.encoder!r}",
    )
    _require(
        min(feature_map_hw((h, w), net.conv_strides)) >= 1, "network.conv_strides", f"shrink a {h}x{w} image to nothing"
    )
    _require(0 < agent.gamma < 1, "agent.gamma", f"must be in (0, 1), got {agent.gamma}")
    _require(0 < agent.tau <= 1, "agent.tau", f"must be in (0, 1], got {agent.tau}")
    for field in ("critic_lr", "actor_lr", "encoder_lr"):
        _require(getattr(agent, field) >= 0, f"agent.{field}", f"must be >= 0, got {getattr(agent, field)}")
    _require(agent.batch_size >= 1, "agent.batch_size", f"must be >= 1, got {agent.batch_size}")
    _require(agent.bottleneck_weight >= 0, "agent.bottleneck_weight", f"must be >= 0, got {agent.bottleneck_weight}")
    _require(train.total_env_steps >= 1, "train.total_env_steps", f"must be >= 1, got {train.total_env_steps}")
    _require(
        train.replay_capacity >= 2 * cfg.num_envs,
        "train.replay_capacity",
        f"must hold >= 2 env steps of all {cfg.num_envs} envs, got {train.replay_capacity}",
    )
    _require(
        train.updates_per_iteration >= 0,
        "train.updates_per_iteration",
        f"must be >= 0, got {train.updates_per_iteration}",
    )
    _require(
        train.iterations_per_chunk >= 1, "train.iterations_per_chunk", f"must be >= 1, got {train.iterations_per_chunk}"
    )
    _require(train.eval_envs >= 1, "train.eval_envs", f"must be >= 1, got {train.eval_envs}")
    _require(train.eval_every_chunks >= 1, "train.eval_every_chunks", f"must be >= 1, got {train.eval_every_chunks}")
    _require(0 < train.target_success <= 1, "train.target_success", f"must be in (0, 1], got {train.target_success}")
    _require(
        train.robustness in ("every", "final", "off"),
        "train.robustness",
        f"must be 'every', 'final' or 'off', got {train.robustness!r}",
    )
    pre = cfg.pretrain
    for field in ("updates", "dataset_images", "eval_images", "batch_size", "updates_per_call", "episode_steps"):
        _require(getattr(pre, field) >= 1, f"pretrain.{field}", f"must be >= 1, got {getattr(pre, field)}")
    _require(pre.learning_rate > 0, "pretrain.learning_rate", f"must be > 0, got {pre.learning_rate}")
    _require(pre.action_noise >= 0, "pretrain.action_noise", f"must be >= 0, got {pre.action_noise}")
    _require(0 < pre.max_step_m <= 0.1, "pretrain.max_step_m", f"must be in (0, 0.1] metres, got {pre.max_step_m}")
    dist = cfg.distributed
    for field in ("processes", "hosts", "heartbeat_timeout_s", "barrier_timeout_s"):
        _require(getattr(dist, field) >= 1, f"distributed.{field}", f"must be >= 1, got {getattr(dist, field)}")
    _require(dist.stop_grace_s > 0, "distributed.stop_grace_s", f"must be > 0 seconds, got {dist.stop_grace_s}")
    count = process_count(cfg)
    for field, value in (
        ("num_envs", cfg.num_envs),
        ("train.eval_envs", train.eval_envs),
        ("agent.batch_size", agent.batch_size),
        ("pretrain.batch_size", pre.batch_size),
    ):
        _require(
            value % count == 0,
            field,
            f"{value} does not split evenly over {count} processes (distributed.processes x distributed.hosts)",
        )
    return cfg


def process_count(cfg: Config) -> int:
    """Processes of all hosts that train ``cfg`` together."""
    return cfg.distributed.processes * cfg.distributed.hosts


def feature_map_hw(image_hw: tuple[int, int], strides: tuple[int, ...]) -> tuple[int, int]:
    """(height, width) in cells of the last feature map of 3x3 VALID convs with ``strides`` over an
    image of ``image_hw`` pixels (the encoder's trunk)."""
    h, w = image_hw
    for stride in strides:
        h, w = (h - 3) // stride + 1, (w - 3) // stride + 1
    return h, w


def num_cameras(env: EnvConfig) -> int:
    """Policy cameras: 1, or 2 with ``env.second_camera``."""
    return 2 if env.second_camera else 1


def image_shape(env: EnvConfig) -> tuple[int, int, int]:
    """Policy image (height, width, channels): 3 colour channels (+1 depth) per policy camera,
    stacked in camera order."""
    return (*env.image_size, num_cameras(env) * (3 + env.depth))


def gripper_visibility(env: EnvConfig, cam: CameraConfig, tcp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``camera.gripper_visibility`` for camera ``cam`` and the gripper/image settings of ``env``."""
    return camera_model.gripper_visibility(
        tcp,
        cam.pos,
        cam.lookat,
        cam.fovy_deg,
        env.image_size,
        env.gripper_half_width_m,
        env.gripper_height_m,
        env.frame_margin_px,
        cam.roll_deg,
    )


def _require(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{field}: {message}")


def to_dict(cfg: object) -> dict:
    """The config as plain JSON-able data."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def changed_fields(saved: dict, wanted: dict, prefix: str = "") -> dict[str, object]:
    """{dotted field name: wanted value} of the fields whose values differ between two ``to_dict``
    configs (``train.init_encoder`` is ignored: a run that pretrains its encoder records its path)."""
    changed = {}
    for key, value in wanted.items():
        name = prefix + key
        if isinstance(value, dict):
            changed |= changed_fields(saved.get(key, {}), value, name + ".")
        elif name != "train.init_encoder" and saved.get(key) != value:
            changed[name] = value
    return changed


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild a (nested) config dataclass from ``to_dict`` output; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_hash(cfg: object) -> str:
    """A short stable hash of the resolved config (first 12 hex digits of SHA-256)."""
    return hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()[:12]
