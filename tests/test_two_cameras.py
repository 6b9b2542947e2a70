"""Two policy cameras end to end at smoke size: ``train.py --env.second-camera`` → ``export.py``
(the ONNX takes one stacked (B, H, W, 6) image; its metadata lists both cameras; parity holds) →
``python -m deploy --twin`` episodes, and the same model through two pyrealsense2 software devices
opened by serial (``deploy.camera.open_cameras``) against the twin's arm."""

from __future__ import annotations

import json
import threading

import numpy as np
import onnx
import pytest
from conftest import TINY_RUN

from deploy import camera as realsense
from deploy import loop, safety
from deploy import policy as policy_lib
from deploy.__main__ import main as deploy_main
from mjx_reach import contract, runs
from mjx_reach.contract import CameraError

pytestmark = pytest.mark.slow  # a second run, export and twin of their own; one camera's are in the fast tier


@pytest.fixture(scope="module")
def two_camera_model(tmp_path_factory):
    """(run folder, actor.onnx) of a smoke-sized run with ``env.second_camera``."""
    import export
    import train

    run = tmp_path_factory.mktemp("two_cameras") / "run"
    assert train.train([*TINY_RUN, "--env.second-camera", "--out", str(run)]) == 0
    assert export.main([str(run), "--check-envs", "1"]) == 0
    return run, run / "actor.onnx"


@pytest.fixture(scope="module")
def twin_world(two_camera_model):
    from mjx_reach.standins import twin

    return twin.TwinWorld.from_metadata(policy_lib.Policy(two_camera_model[1]).meta.raw)


def test_export_records_both_cameras_and_keeps_parity(two_camera_model):
    run, path = two_camera_model
    cfg, _, _ = runs.load_params(run)
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    meta = json.loads(props[contract.METADATA_KEY])
    assert cfg.env.second_camera and meta["image"]["channels"] == 6
    for cam, want in zip(meta["cameras"], (cfg.env.camera, cfg.env.camera2), strict=True):
        assert cam["pos"] == list(want.pos) and cam["lookat"] == list(want.lookat)
        assert cam["roll_deg"] == want.roll_deg and cam["fovy_deg"] == want.fovy_deg
    assert meta["camera"] == meta["cameras"][0]
    assert max(meta["parity"]["max_abs"].values()) <= contract.PARITY_ATOL
    parsed = policy_lib.Policy(path).meta
    assert parsed.channels == 6 and len(parsed.cameras) == 2


def test_twin_renders_each_camera_from_its_own_pose(twin_world):
    from mjx_reach import camera as camera_model
    from mjx_reach.standins import twin

    cams = twin.cameras(twin_world)
    assert len(cams) == 2
    (frame1, intr1), (frame2, intr2) = (cam.read() for cam in cams)
    assert frame1.shape == frame2.shape == (480, 640, 3) and frame1.std() > 10 and frame2.std() > 10
    assert np.mean(np.abs(frame1.astype(int) - frame2.astype(int))) > 10  # two different viewpoints
    env = twin_world.env.env_cfg
    assert intr1 == camera_model.intrinsics_for_fovy(env.camera.fovy_deg, 480, 640)
    assert intr2 == camera_model.intrinsics_for_fovy(env.camera2.fovy_deg, 480, 640)


def test_deploy_twin_runs_two_camera_episodes(two_camera_model, tmp_path):
    """``python -m deploy --twin --bench`` with a two-camera bench (camera 2 off its training pose by
    0.6 of the trained position jitter): the twin renders both bench cameras and the episodes run."""
    run, path = two_camera_model
    cfg, _, _ = runs.load_params(run)
    bench = tmp_path / "bench.json"
    cams = [
        {"pos": list(np.add(cam.pos, offset)), "lookat": list(cam.lookat), "roll_deg": cam.roll_deg}
        for cam, offset in ((cfg.env.camera, 0.0), (cfg.env.camera2, [0.6 * cfg.randomization.cam_pos_m, 0.0, 0.0]))
    ]
    bench.write_text(json.dumps({"cameras": cams}))
    summary = tmp_path / "summary.json"
    code = deploy_main(
        [
            str(path),
            "--twin",
            "--bench",
            str(bench),
            "--random-goals",
            "2",
            "--max-steps",
            "3",
            "--full-episode",
            "--drift-warn-m",
            "10",
            "--drift-stop-m",
            "10",
            "--log-dir",
            str(tmp_path / "logs"),
            "--summary-json",
            str(summary),
        ]
    )
    assert code == 0
    assert json.loads(summary.read_text())["deploy"]["episodes"] == 2
    log = np.load(tmp_path / "logs" / "episode_000.npz")
    assert log["image"].shape == (4, 84, 84, 6)
    assert log["raw_frames"].shape == log["raw_frames_2"].shape == (1, 480, 640, 3)


def test_two_software_realsense_cameras_opened_by_serial(two_camera_model, twin_world, tmp_path, monkeypatch):
    """Two ``rs.software_device`` cameras with serials stream the twin's two views; deploy opens them
    by serial in the model's camera order (whatever order the bus lists them in), each frame is
    preprocessed with its own stream's intrinsics, and episodes run against the twin's arm."""
    from mjx_reach.standins import twin
    from mjx_reach.standins.realsense_sim import SoftwareCamera

    _, path = two_camera_model
    pol = policy_lib.Policy(path)
    lock = threading.Lock()
    sims = {
        serial: SoftwareCamera(intr, serial=serial) for serial, intr in zip(("cam-A", "cam-B"), twin_world.intrinsics)
    }
    monkeypatch.setattr(realsense, "connected_devices", lambda: [sims["cam-B"].device, sims["cam-A"].device])

    def view(k):
        def render():
            with lock:
                return twin_world.render(k)

        return render

    class LockedArm(twin.TwinArm):
        def move_to(self, target):
            with lock:
                super().move_to(target)

        def move_joints(self, angles_rad):
            with lock:
                super().move_joints(angles_rad)

    arm = LockedArm(twin_world)
    arm.connect()
    arm.move_joints(pol.meta.home_joints_rad)
    at_home = [twin_world.render(k).astype(np.int16) for k in range(2)]  # the episode's first views

    with pytest.raises(CameraError, match="serial cam-C") as err:
        realsense.open_cameras(["cam-A", "cam-C"])
    assert "\n" not in str(err.value)
    with sims["cam-A"].streaming(view(0)), sims["cam-B"].streaming(view(1)):
        cameras = realsense.open_cameras(["cam-A", "cam-B"], timeout_s=10.0)
        assert [c.serial for c in cameras] == ["cam-A", "cam-B"]
        limits = safety.Limits(pol.meta.workspace_low, pol.meta.workspace_high, pol.meta.max_step_m)
        options = loop.Options(max_steps=2, policy_stop=None, drift=safety.DriftLimits(10.0, 10.0, 1))
        results, cause = loop.run(
            pol,
            cameras,
            arm,
            [[0.45, 0.05, 0.2]],
            limits,
            loop.view_guard(pol.meta),
            options,
            tmp_path,
            say=lambda _: None,
        )
    assert cause is None and len(results) == 1
    log = np.load(tmp_path / "episode_000.npz")
    assert log["image"].shape == (3, 84, 84, 6)
    first = [log["raw_frames"][0].astype(np.int16), log["raw_frames_2"][0].astype(np.int16)]
    for k in range(2):  # camera k's stream carried view k: close to it, far from the other view
        assert np.mean(np.abs(first[k] - at_home[k])) < 1.0 < 10.0 < np.mean(np.abs(first[k] - at_home[1 - k]))
