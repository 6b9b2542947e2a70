"""Export a run's encoder + actor to ONNX with the deploy contract in its metadata.

``export(run_dir)`` reads the latest checkpoint (``runs.load_params``), converts
``networks.Policy`` with jax2onnx (inputs ``image`` (B, H, W, C) uint8 and ``goal`` (B, 3) float32
metres; outputs ``action`` (B, 3) in [-1, 1] and ``ee_pred`` (B, 3) metres), checks onnxruntime
against JAX on held-out rendered images (``contract.PARITY_ATOL``), and only then writes
``RUN_DIR/actor.onnx`` atomically. The metadata is one JSON string under ``contract.METADATA_KEY``
(``metadata`` builds it; docs/export.md lists the fields); deploy reads it and guesses nothing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from mjx_reach import camera as camera_model
from mjx_reach import config as config_lib
from mjx_reach import evaluate, networks, runs
from mjx_reach import scene as scene_lib
from mjx_reach.contract import INPUT_NAMES, METADATA_KEY, OUTPUT_NAMES, PARITY_ATOL, SCHEMA_VERSION

if TYPE_CHECKING:
    import onnx

_VERSIONED = ("mjx-reach", "jax", "flax", "jax2onnx", "onnx", "onnxruntime", "mujoco", "numpy")


class ExportError(RuntimeError):
    """Export cannot proceed; the message is one line."""


def world_to_base(mjm: mujoco.MjModel) -> np.ndarray:
    """(4, 4) homogeneous transform from the sim world frame to the arm's base frame (``link_base``)."""
    data = mujoco.MjData(mjm)
    mujoco.mj_kinematics(mjm, data)
    body = mjm.body("link_base").id
    rot, pos = data.xmat[body].reshape(3, 3), data.xpos[body]
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot.T, -rot.T @ pos
    return out


def tcp_geometry(mjm: mujoco.MjModel) -> dict:
    """The tool centre point in the flange (``link7``) frame, metres, and the flange's world rotation
    (3, 3) at home, which IK holds throughout (gripper pointing down)."""
    data = mujoco.MjData(mjm)
    data.qpos[:] = scene_lib.HOME_QPOS
    mujoco.mj_kinematics(mjm, data)
    flange = mjm.body("link7").id
    rot = data.xmat[flange].reshape(3, 3)
    tcp = rot.T @ (data.site_xpos[mjm.site(scene_lib.TCP_SITE).id] - data.xpos[flange])
    return {"offset_m": tcp.tolist(), "flange_xmat": rot.tolist()}


def versions(names: tuple[str, ...] = _VERSIONED) -> dict:
    """Installed versions of packages ``names`` (default: those the exported model depends on;
    None for one not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def metadata(cfg: config_lib.Config, eval_result: dict | None = None) -> dict:
    """The deploy contract for a policy trained with ``cfg`` (JSON-able; see docs/export.md)."""
    env, dr = cfg.env, cfg.randomization
    if env.depth:
        raise ExportError("deploy feeds RGB images only: runs with env.depth cannot be exported")
    mjm = scene_lib.build_scene(env).mj_model
    height, width, channels = config_lib.image_shape(env)
    home, _ = scene_lib.tcp_pose(mjm, scene_lib.HOME_QPOS)
    jitter = (
        {"pos_m": dr.cam_pos_m, "rot_deg": dr.cam_rot_deg, "fovy_deg": dr.cam_fovy_deg}
        if dr.enabled
        else {"pos_m": 0.0, "rot_deg": 0.0, "fovy_deg": 0.0}
    )
    cameras = [
        {
            "pos": list(cam.pos),
            "lookat": list(cam.lookat),
            "roll_deg": cam.roll_deg,
            "fovy_deg": cam.fovy_deg,
            "trained_jitter": jitter,
        }
        for cam in ([env.camera, env.camera2] if env.second_camera else [env.camera])
    ]
    return {
        "schema": SCHEMA_VERSION,
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "image": {"height": height, "width": width, "channels": channels},
        "cameras": cameras,
        "camera": cameras[0],
        "preprocessing": camera_model.PREPROCESSING,
        "max_step_m": env.max_step_m,
        "workspace": {"low": list(env.workspace_low), "high": list(env.workspace_high)},
        "world_to_base": world_to_base(mjm).tolist(),
        "home_m": home.tolist(),
        "home_joints_rad": list(scene_lib.HOME_QPOS),
        "tcp": tcp_geometry(mjm),
        "gripper": {
            "half_width_m": env.gripper_half_width_m,
            "height_m": env.gripper_height_m,
            "frame_margin_px": env.frame_margin_px,
        },
        "success_threshold_m": env.success_threshold_m,
        "report_threshold_m": env.report_threshold_m,
        "episode_steps": env.episode_steps,
        "control_dt_s": env.control_dt_s,
        "config_hash": config_lib.config_hash(cfg),
        "config": config_lib.to_dict(cfg),
        "eval": eval_result,
        "versions": versions(),
    }


def to_onnx(policy: networks.Policy, image_shape: tuple[int, int, int]) -> onnx.ModelProto:
    """ONNX ``ModelProto`` of ``policy`` with a symbolic batch axis ``B``."""
    from jax2onnx import to_onnx as convert

    h, w, c = image_shape
    inputs = [jax.ShapeDtypeStruct(("B", h, w, c), jnp.uint8), jax.ShapeDtypeStruct(("B", 3), jnp.float32)]
    return convert(
        policy, inputs, model_name="mjx_reach_policy", input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES)
    )


def held_out_inputs(cfg: config_lib.Config, num_envs: int) -> dict:
    """Rendered policy images (N, H, W, C) uint8 and goals (N, 3) m of held-out reset states (one
    reset and one random step per world, so start poses and moved poses are both checked)."""
    from mjx_reach.env import ReachEnv

    env = ReachEnv(cfg, num_envs)
    key = jax.random.PRNGKey(cfg.seed + evaluate.HELD_OUT_OFFSET + 1)
    k_reset, k_action = jax.random.split(key)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(k_reset, num_envs))
    moved = jax.jit(jax.vmap(env.step))(state, jax.random.uniform(k_action, (num_envs, 3), minval=-1.0, maxval=1.0))
    images = np.concatenate([np.asarray(state.obs["image"]), np.asarray(moved.obs["image"])])
    goals = np.concatenate([np.asarray(state.obs["goal"]), np.asarray(moved.obs["goal"])]).astype(np.float32)
    return {"image": images, "goal": goals}


def parity(model_bytes: bytes, policy: networks.Policy, inputs: dict) -> dict:
    """Max |onnxruntime - JAX| of each output on ``inputs`` (``image``, ``goal`` batches)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), inputs)))
    want = dict(zip(OUTPUT_NAMES, jax.device_get(policy(jnp.asarray(inputs["image"]), jnp.asarray(inputs["goal"])))))
    return {name: float(np.max(np.abs(got[name] - want[name]))) for name in OUTPUT_NAMES}


def export(
    run_dir: str | os.PathLike, out: str | os.PathLike | None = None, check_envs: int = 4
) -> tuple[pathlib.Path, dict]:
    """Write ``run_dir/actor.onnx`` (or ``out``) after a parity check on ``2 * check_envs`` held-out
    images; returns (path, metadata). Raises ``ExportError``/``runs.TrainingError`` (one line)."""
    import onnx

    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder")
    cfg, agent, params = runs.load_params(run_dir)
    eval_path = run_dir / "eval.json"
    eval_result = json.loads(eval_path.read_text()) if eval_path.exists() else None
    meta = metadata(cfg, eval_result)
    nets = agent.nets(params)
    policy = networks.Policy(nets.encoder, nets.actor)
    model = to_onnx(policy, config_lib.image_shape(cfg.env))
    errors = parity(model.SerializeToString(), policy, held_out_inputs(cfg, check_envs))
    bad = {k: v for k, v in errors.items() if not v <= PARITY_ATOL}
    if bad:
        worst = ", ".join(f"{k} {v:.2e}" for k, v in bad.items())
        raise ExportError(
            f"onnxruntime disagrees with JAX on held-out images ({worst} > {PARITY_ATOL:g} abs): {run_dir / 'actor.onnx'} not written"
        )
    meta["parity"] = {"max_abs": errors, "atol": PARITY_ATOL, "images": 2 * check_envs}
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    onnx.checker.check_model(model)
    path = pathlib.Path(out) if out is not None else run_dir / "actor.onnx"
    runs.atomic_write(path, model.SerializeToString())
    return path, meta
