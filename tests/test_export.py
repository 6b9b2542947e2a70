"""``python export.py``: the ONNX of a tiny run (``tiny_run``), its metadata contract, onnxruntime/JAX parity,
refusal to write on a parity failure, and one-line errors for missing or damaged runs."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from flax import nnx

from deploy.policy import Policy
from export import main as export_main
from mjx_reach import camera as camera_model
from mjx_reach import config as config_lib
from mjx_reach import contract, export, networks, runs
from mjx_reach import scene as scene_lib


@pytest.fixture(scope="module")
def exported(tiny_run):
    """(run folder, onnx path, metadata) after exporting ``tiny_run`` through the CLI."""
    assert export_main([str(tiny_run), "--check-envs", "2"]) == 0
    path = tiny_run / "actor.onnx"
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    return tiny_run, path, json.loads(props[contract.METADATA_KEY])


def test_metadata_records_the_deploy_contract(exported):
    run, path, meta = exported
    cfg, _, _ = runs.load_params(run)
    env = cfg.env
    assert meta["image"] == {"height": 84, "width": 84, "channels": 3}
    assert meta["camera"]["pos"] == list(env.camera.pos) and meta["camera"]["lookat"] == list(env.camera.lookat)
    assert meta["camera"]["fovy_deg"] == env.camera.fovy_deg and meta["camera"]["roll_deg"] == env.camera.roll_deg
    assert meta["camera"]["trained_jitter"] == {
        "pos_m": cfg.randomization.cam_pos_m,
        "rot_deg": cfg.randomization.cam_rot_deg,
        "fovy_deg": cfg.randomization.cam_fovy_deg,
    }
    assert meta["preprocessing"] == camera_model.PREPROCESSING
    assert meta["max_step_m"] == env.max_step_m and meta["success_threshold_m"] == env.success_threshold_m
    assert meta["workspace"] == {"low": list(env.workspace_low), "high": list(env.workspace_high)}
    np.testing.assert_allclose(meta["world_to_base"], np.eye(4), atol=1e-12)  # scene.py puts link_base at the origin
    home, _ = scene_lib.tcp_pose(scene_lib.build_scene(env).mj_model, scene_lib.HOME_QPOS)
    np.testing.assert_allclose(meta["home_m"], home)
    assert meta["home_joints_rad"] == list(scene_lib.HOME_QPOS)  # where training starts; deploy homes there
    np.testing.assert_allclose(meta["tcp"]["offset_m"], [0.0, 0.0, 0.172], atol=1e-9)  # Menagerie's link_tcp
    assert meta["config_hash"] == config_lib.config_hash(cfg) and meta["config"] == config_lib.to_dict(cfg)
    assert meta["eval"] == json.loads((run / "eval.json").read_text())
    assert all(meta["versions"][k] for k in ("jax", "jax2onnx", "onnx", "onnxruntime", "mujoco", "numpy"))
    assert (
        meta["parity"]["atol"] == contract.PARITY_ATOL
        and max(meta["parity"]["max_abs"].values()) <= contract.PARITY_ATOL
    )
    parsed = Policy(path).meta  # the deploy side accepts it
    assert parsed.image_hw == (84, 84) and parsed.config_hash == meta["config_hash"]


def test_onnx_matches_jax_for_any_batch_size(exported):
    run, path, _ = exported
    _, agent, params = runs.load_params(run)
    nets = agent.nets(params)
    policy = networks.Policy(nets.encoder, nets.actor)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch in (1, 5):
        image = rng.integers(0, 256, (batch, 84, 84, 3), dtype=np.uint8)
        goal = rng.uniform(-0.3, 0.7, (batch, 3)).astype(np.float32)
        got = session.run(["action", "ee_pred"], {"image": image, "goal": goal})
        want = policy(jnp.asarray(image), jnp.asarray(goal))
        for g, w in zip(got, want):
            assert g.shape == (batch, 3)
            np.testing.assert_allclose(g, np.asarray(w), atol=contract.PARITY_ATOL, rtol=0)


def test_parity_failure_refuses_to_write(tiny_run, tmp_path, monkeypatch):
    """An ONNX that disagrees with the checkpoint (a perturbed actor bias) is never written."""
    convert = export.to_onnx

    def perturbed(policy, image_shape):
        bad = nnx.clone(policy)
        bias = bad.actor.layers[-1].bias
        bias[...] = bias[...] + 0.5
        return convert(bad, image_shape)

    monkeypatch.setattr(export, "to_onnx", perturbed)
    out = tmp_path / "actor.onnx"
    with pytest.raises(export.ExportError, match="onnxruntime disagrees with JAX") as err:
        export.export(tiny_run, out, check_envs=1)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def damaged_run(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    """A copy of ``src``'s config and latest parameter checkpoint with garbage in its array data."""
    step = max(int(p.name) for p in (src / "checkpoints").iterdir() if p.name.isdigit())
    ckpt = dst / "checkpoints" / str(step)
    ckpt.mkdir(parents=True)
    shutil.copy(src / "config.json", dst / "config.json")
    shutil.copy(src / "checkpoints" / str(step) / "_CHECKPOINT_METADATA", ckpt)
    shutil.copytree(src / "checkpoints" / str(step) / "params", ckpt / "params")
    data = [f for f in (ckpt / "params").rglob("*") if f.is_file() and f.parent.name == "d"]
    assert data
    for file in data:
        file.write_bytes(os.urandom(file.stat().st_size))
    return dst


def test_missing_or_damaged_runs_fail_in_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [str(tmp_path / "no_such_run"), str(empty), str(damaged_run(tiny_run, tmp_path / "damaged"))]
    bad_config = tmp_path / "bad_config"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{not json")
    cases.append(str(bad_config))
    for case in cases:
        assert export_main([case]) == 1
    monkeypatch.chdir(tmp_path)  # no runs/ here: the default run folder cannot be found
    assert export_main([]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == len(cases) + 1 and all(line.startswith("error: ") for line in errors)
    assert "no such run folder" in errors[0] and "no config.json" in errors[1] and "cannot read checkpoint" in errors[2]
    assert "unreadable config" in errors[3] and "no run folder in runs" in errors[4]
    assert not any(p.name.endswith((".onnx", ".tmp")) for p in tmp_path.rglob("*"))


def test_default_run_is_the_latest_in_runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    (root / "older").mkdir(parents=True)
    (root / "newer").mkdir()
    os.utime(root / "older", (1, 1))
    monkeypatch.chdir(tmp_path)
    assert runs.latest_run() == pathlib.Path("runs") / "newer"
