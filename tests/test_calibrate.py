"""Eye-to-hand camera calibration (``deploy.calibrate``): the solver on synthetic corners, its
refusals, the stops, the printable marker, and the whole procedure on the calibration twin
(``mjx_reach.standins.calibration_twin``: the camera at random poses unknown to the calibrator, the marker
rendered at 640x480 with pixel noise, detection noise on the corners).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import TINY_RUN

from deploy import arm as arm_lib
from deploy import calibrate as cal
from deploy import policy as policy_lib
from deploy import safety
from mjx_reach import camera as cm
from mjx_reach import contract
from mjx_reach import summary as summary_lib
from mjx_reach.config import CameraConfig, EnvConfig
from mjx_reach.contract import CameraError

POSITION_BOUND_M = 0.005
ROTATION_BOUND_DEG = 0.5
TRUE_POSES = 5
LIMITS = safety.Limits(np.asarray(cal.DEFAULT_BOX[0]), np.asarray(cal.DEFAULT_BOX[1]), 0.1)
DOWN = np.diag([-1.0, 1.0, -1.0])
MOUNT_POS, MOUNT_XMAT = np.array([0.0, -0.1, -0.12]), np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]])
"""A marker mount in the tool frame (facing the default camera when the gripper points down)."""


def synthetic(
    settings: cal.Settings, rng, noise_px: float, poses=None
) -> tuple[cal.Observations, np.ndarray, np.ndarray]:
    """Corners of the marker seen by a camera near the default one, with Gaussian noise."""
    cam_pos = np.asarray(CameraConfig().pos) + rng.uniform(-0.05, 0.05, 3)
    cam_xmat = cm.camera_xmat(cam_pos, CameraConfig().lookat, rng.uniform(-4, 4))
    poses = cal.pose_set(LIMITS.low, LIMITS.high, DOWN, settings) if poses is None else poses
    pos, xmat = np.array([p for p, _ in poses]), np.array([r for _, r in poses])
    intr = cm.intrinsics_for_fovy(42.5, 480, 640)
    clean = cal.Observations(np.zeros((len(poses), 4, 2)), pos, xmat, intr, settings.marker)
    corners = cal._residuals(cam_pos, cam_xmat, MOUNT_POS, MOUNT_XMAT, clean)
    return (
        cal.Observations(corners + rng.normal(0.0, noise_px, corners.shape), pos, xmat, intr, settings.marker),
        cam_pos,
        cam_xmat,
    )


def test_solver_recovers_camera_and_marker_from_noisy_corners():
    settings, rng = cal.Settings(), np.random.default_rng(0)
    obs, cam_pos, cam_xmat = synthetic(settings, rng, 0.3)
    sol = cal.solve(obs, settings)
    assert np.linalg.norm(sol.cam_pos - cam_pos) < POSITION_BOUND_M
    assert cm.rotation_angle_deg(sol.cam_xmat, cam_xmat) < ROTATION_BOUND_DEG
    assert np.linalg.norm(sol.marker_pos - MOUNT_POS) < POSITION_BOUND_M
    assert 0.15 < sol.rms_px < 0.45  # the residual reflects the 0.3 px noise
    # the LM standard deviations are of the size of the actual errors, not wildly off
    assert np.all(sol.pos_std_m < 0.005) and sol.rot_std_deg < 0.5
    assert np.linalg.norm(sol.cam_pos - cam_pos) < 5 * np.linalg.norm(sol.pos_std_m)


def test_too_few_detections_degenerate_sets_and_large_residuals_are_refused():
    settings, rng = cal.Settings(), np.random.default_rng(1)
    obs, _, _ = synthetic(settings, rng, 0.3)
    few = cal.Observations(obs.corners_px[:5], obs.tool_pos[:5], obs.tool_xmat[:5], obs.intrinsics, obs.marker)
    flat = cal.Settings(tilt_deg=0.0, yaw_deg=0.0)
    line = [
        (np.array([0.3 + 0.015 * i, 0.0, 0.2]), r)
        for i, (_, r) in enumerate(cal.pose_set(LIMITS.low, LIMITS.high, DOWN, settings))
    ]
    cases = [
        (few, "too few detections"),
        (synthetic(flat, rng, 0.3)[0], "degenerate pose set: the tool turned"),  # translations only
        (synthetic(settings, rng, 0.3, line)[0], "degenerate pose set: the tool positions"),  # positions on a line
        (synthetic(settings, rng, 3.0)[0], "residual too large"),
    ]
    for obs, message in cases:
        with pytest.raises(cal.CalibrationError, match=message) as err:
            cal.solve(obs, settings)
        assert "\n" not in str(err.value)


def test_pose_set_spreads_over_the_box_and_turns_the_gripper():
    settings = cal.Settings()
    poses = cal.pose_set(LIMITS.low, LIMITS.high, DOWN, settings)
    pos = np.array([p for p, _ in poses])
    assert len(poses) == settings.poses and all(LIMITS.contains(p) for p in pos)
    assert np.all(np.ptp(pos, axis=0) > 0.6 * (LIMITS.high - LIMITS.low - 2 * settings.box_margin_m))
    angles = [cm.rotation_angle_deg(r, DOWN) for _, r in poses]
    assert (
        max(angles) > 0.5 * settings.yaw_deg
        and max(angles) < np.hypot(np.hypot(settings.tilt_deg, settings.tilt_deg), settings.yaw_deg) + 1e-6
    )


def test_rpy_round_trip():
    for rpy in ([180.0, 0.0, 0.0], [170.0, -12.0, 25.0], [-5.0, 30.0, -80.0]):
        np.testing.assert_allclose(
            arm_lib.rpy_deg(arm_lib.xmat_from_rpy_deg(rpy)) % 360, np.asarray(rpy) % 360, atol=1e-9
        )


class FakeArm:
    """A ``CalibrationArm`` whose tool goes exactly where it is sent; records stops."""

    def __init__(self):
        self.pos, self.xmat, self.stops, self.moves = np.zeros(3), DOWN, 0, []

    def connect(self):
        pass

    def check(self):
        pass

    def close(self):
        pass

    def stop(self):
        self.stops += 1

    def pose(self):
        return self.pos.copy(), self.xmat.copy()

    def position(self):
        return self.pos.copy()

    def joint_angles(self):
        return np.zeros(7)

    def move_to(self, target, rotation=None):
        self.moves.append(np.asarray(target))
        self.pos, self.xmat = np.asarray(target, np.float64), DOWN if rotation is None else np.asarray(rotation)


class FakeCamera:
    """Blank frames; raises ``fault`` on read number ``fail_at`` (two reads per pose: one settle frame)."""

    def __init__(self, fail_at=None, fault=None):
        self.reads, self.fail_at, self.fault = 0, fail_at, fault

    def read(self):
        self.reads += 1
        if self.reads == self.fail_at:
            raise self.fault
        return np.full((480, 640, 3), 200, np.uint8), cm.intrinsics_for_fovy(42.5, 480, 640)

    def close(self):
        pass


@pytest.mark.parametrize(
    "fault, cause", [(KeyboardInterrupt(), "Ctrl-C"), (CameraError("no colour frame within 1.00 s"), "no colour frame")]
)
def test_ctrl_c_and_camera_faults_stop_the_arm_and_keep_the_log(tmp_path, fault, cause):
    arm = FakeArm()
    sol, bench, got = cal.run(arm, FakeCamera(5, fault), LIMITS, cal.Settings(), tmp_path, say=lambda _: None)
    assert sol is None and cause in got and arm.stops == 1
    log = cal.load_log(tmp_path / "calibration_log.npz")
    assert log["frames"].shape == (2, 480, 640, 3) and not log["detected"].any()
    assert all(LIMITS.contains(m) for m in arm.moves) and not (tmp_path / "bench.json").exists()


def test_printed_marker_is_detected_at_its_size(tmp_path):
    marker = cal.MarkerSpec()
    img = cal.marker_image(marker, dpi=100)
    frame = np.repeat(np.pad(img, 40, constant_values=255)[..., None], 3, axis=2)
    corners = cal.detect(frame, marker)
    cell = img.shape[0] / (marker.bits().shape[0] + 2)
    assert corners is not None and np.linalg.norm(corners[1] - corners[0]) == pytest.approx(
        marker.bits().shape[0] * cell, abs=1.0
    )
    assert cal.detect(frame, cal.MarkerSpec(marker_id=1)) is None
    assert cal.main(["--print-marker", str(tmp_path / "m.png")]) == 0 and (tmp_path / "m.png").stat().st_size > 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--marker-dict", "DICT_9X9_1"], "unknown ArUco dictionary"),
        (["--marker-id", "50"], "id 50 is not in DICT_4X4_50"),
        (["--marker-size-m", "2"], "--marker-size-m must be"),
        ([], "the real arm needs --ip"),
    ],
)
def test_cli_refuses_bad_markers_and_a_missing_arm_in_one_line(tmp_path, capsys, flags, message):
    assert cal.main(flags + (["--print-marker", str(tmp_path / "m.png")] if flags else [])) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_calibration_defaults_match_the_training_scene():
    """The gripper-down flange, TCP offset and box the calibration commands are training's."""
    from mjx_reach import export
    from mjx_reach.config import Config

    meta = export.metadata(Config())
    np.testing.assert_allclose(meta["tcp"]["flange_xmat"], cal.GRIPPER_DOWN_XMAT, atol=1e-3)
    np.testing.assert_allclose(meta["tcp"]["offset_m"], cal.DEFAULT_TCP_OFFSET_M, atol=1e-9)
    assert cal.DEFAULT_BOX == (EnvConfig().workspace_low, EnvConfig().workspace_high)


# --- the calibration twin ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def twin():
    from mjx_reach.standins import calibration_twin

    env = EnvConfig()
    return calibration_twin, calibration_twin.CalibrationTwin(
        env,
        np.asarray(env.camera.pos),
        cm.camera_xmat(env.camera.pos, env.camera.lookat),
        cal.MarkerSpec().bits(),
        cal.MarkerSpec().size_m,
    )


def test_twin_calibration_meets_5mm_and_half_a_degree(twin, tmp_path):
    """Over ``TRUE_POSES`` random true camera poses (±5 cm, ±4 deg about each camera axis, roll
    included), with 3-level pixel noise and 0.2 px corner noise: camera position error ≤ 5 mm and
    orientation error ≤ 0.5 deg, each pose; median and worst in the message."""
    module, tw = twin
    rng, settings = np.random.default_rng(7), cal.Settings(settle_frames=0)  # the twin renders the settled pose
    pos_err, rot_err = [], []
    for i in range(TRUE_POSES):
        tw.cam_pos, tw.cam_xmat = module.random_true_camera(rng, EnvConfig().camera)
        sol, bench, cause = cal.run(
            tw, tw, LIMITS, settings, tmp_path / str(i), cal.TWIN_CORNER_NOISE_PX, say=lambda _: None
        )
        assert cause is None, cause
        pos_err.append(np.linalg.norm(sol.cam_pos - tw.cam_pos))
        rot_err.append(cm.rotation_angle_deg(sol.cam_xmat, tw.cam_xmat))
    summary = (
        f"position error median {np.median(pos_err) * 1000:.2f} mm, worst {max(pos_err) * 1000:.2f} mm; "
        f"rotation error median {np.median(rot_err):.3f} deg, worst {max(rot_err):.3f} deg"
    )
    print(summary)
    assert max(pos_err) <= POSITION_BOUND_M and max(rot_err) <= ROTATION_BOUND_DEG, summary
    # the outputs: a bench deploy reads (with the roll), and the log of every pose
    (loaded,) = contract.load_bench(tmp_path / "0" / "bench.json").cameras
    data = json.loads((tmp_path / "0" / "bench.json").read_text())
    np.testing.assert_allclose(
        cm.camera_xmat(loaded.pos, loaded.lookat, loaded.roll_deg),
        data["camera"]["xmat"],
        atol=1e-9,
    )
    assert data["intrinsics"]["fy"] == pytest.approx(tw.intrinsics.fy) and data["camera"][
        "fovy_deg"
    ] <= cm.fovy_deg_from_intrinsics(tw.intrinsics.fy, 480)
    log = cal.load_log(tmp_path / "0" / "calibration_log.npz")
    assert log["frames"].shape == (settings.poses, 480, 640, 3) and log["joint_angles"].shape == (settings.poses, 7)
    assert (
        log["detected"].all()
        and log["corners_px"].shape == (settings.poses, 4, 2)
        and log["tool_xmat"].shape == (settings.poses, 3, 3)
    )


def test_twin_refuses_without_the_marker_and_stops_on_an_arm_fault(twin, tmp_path):
    module, tw = twin
    sol, _, cause = cal.run(
        tw, tw, LIMITS, cal.Settings(marker=cal.MarkerSpec(marker_id=3), poses=10), tmp_path, say=lambda _: None
    )
    assert sol is None and cause.startswith("too few detections: the marker was found in 0 frames")
    assert cal.load_log(tmp_path / "calibration_log.npz")["frames"].shape[0] == 10

    class Faulty(FakeCamera):
        def read(self):
            tw.error = "collision"  # the controller reports an error during the run
            return tw.read()

    sol, _, cause = cal.run(tw, Faulty(), LIMITS, cal.Settings(poses=10), tmp_path / "fault", say=lambda _: None)
    assert sol is None and "controller error: collision" in cause and tw.stopped


@pytest.mark.slow  # the whole workflow; its steps have fast tests of their own
def test_calibrate_train_export_deploy_on_the_twin(tmp_path, capsys):
    """The workflow on the twin at tiny sizes: ``python -m deploy calibrate --twin --json``, then
    ``train.py --bench`` (preset smoke, 2 worlds, no pretraining; it ends with the summary and the
    export command), ``export.py`` and ``python -m deploy --twin --bench`` on that bench; a bench
    whose camera loses the workspace is refused."""
    import export
    import train
    from deploy.__main__ import main as deploy_main

    cal_dir, run = tmp_path / "cal", tmp_path / "run"
    assert (
        deploy_main(
            ["calibrate", "--twin", "--twin-seed", "3", "--out", str(cal_dir), "--json", str(tmp_path / "out.json")]
        )
        == 0
    )
    out = json.loads((tmp_path / "out.json").read_text())
    assert {"true", "estimated", "position_error_m", "rotation_error_deg", "reprojection_px"} <= set(out)
    assert out["position_error_m"] <= POSITION_BOUND_M and out["rotation_error_deg"] <= ROTATION_BOUND_DEG
    bench = cal_dir / "bench.json"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"camera": {"pos": [0.4, -0.6, 0.46], "lookat": [0.4, 0.0, 0.3], "roll_deg": 60.0}}))
    capsys.readouterr()
    assert train.cli.run_main(train.train, ["--bench", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --bench {bad}: env.workspace_high") and "\n" not in err

    assert train.train([*TINY_RUN, "--bench", str(bench), "--out", str(run)]) == 0
    printed = capsys.readouterr().out.splitlines()  # the end-of-run summary, not the eval.json dump
    assert printed[0].startswith("held-out success@2 cm") and printed[1].startswith("misses: oracle ")
    line = {text.split(":")[0]: text for text in printed}
    assert f"run folder: {run}" in line["run folder"] and line["next"].endswith(f"python export.py {run}")
    assert line["held-out benches (7, eval.json 'robustness')"].split(": ")[1].startswith("worst ")
    table = summary_lib.phases_lines(json.loads((run / "phases.json").read_text()))
    start = printed.index(table[0])
    assert printed[start : start + len(table)] == table  # where the time went, as phases.json holds it
    assert len(printed) - len(table) <= 8 and "{" not in "".join(printed)
    camera = json.loads((run / "config.json").read_text())["env"]["camera"]
    assert camera["roll_deg"] == pytest.approx(out["estimated"]["roll_deg"]) and camera["pos"] == pytest.approx(
        out["estimated"]["pos"]
    )
    assert export.main([str(run), "--check-envs", "1"]) == 0
    meta = policy_lib.Policy(run / "actor.onnx").meta
    assert meta.cameras[0].roll_deg == pytest.approx(out["estimated"]["roll_deg"])
    rc = deploy_main(
        [
            str(run / "actor.onnx"),
            "--twin",
            "--bench",
            str(bench),
            "--random-goals",
            "1",
            "--max-steps",
            "2",
            "--drift-warn-m",
            "1",
            "--drift-stop-m",
            "2",
            "--log-dir",
            str(tmp_path / "logs"),
            "--summary-json",
            str(tmp_path / "deploy.json"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "deploy.json").read_text())["deploy"]["episodes"] == 1


def test_alignment_overlay_scores_a_3_degree_error_lower(twin, tmp_path):
    """``python -m mjx_reach.align`` on a twin calibration log: with the true camera the arm's sim
    outline lies on the frame's edges; with the camera turned 3 deg every frame scores lower."""
    from mjx_reach import align

    module, tw = twin
    tw.cam_pos, tw.cam_xmat = module.random_true_camera(np.random.default_rng(11), EnvConfig().camera)
    assert (
        cal.run(tw, tw, LIMITS, cal.Settings(poses=10), tmp_path, cal.TWIN_CORNER_NOISE_PX, say=lambda _: None)[2]
        is None
    )
    benches = {}
    for name, xmat in [("true", tw.cam_xmat), ("off", tw.cam_xmat @ cm.rotvec_to_xmat(np.deg2rad([3.0, 0.0, 0.0])))]:
        lookat, roll = cm.lookat_roll_from_xmat(tw.cam_pos, xmat)
        benches[name] = tmp_path / f"{name}.json"
        benches[name].write_text(
            json.dumps({"camera": {"pos": tw.cam_pos.tolist(), "lookat": lookat.tolist(), "roll_deg": roll}})
        )
    log_path = tmp_path / "calibration_log.npz"
    assert align.main([str(benches["true"]), str(log_path), "--out", str(tmp_path / "align")]) == 0
    good = json.loads((tmp_path / "align" / "scores.json").read_text())["edge_overlap"]
    assert len(good) == 10 and len(list((tmp_path / "align").glob("frame_*.png"))) == 10
    log = cal.load_log(log_path)
    images, bad = align.align(benches["off"], log)
    assert images[0].shape == (480, 640, 3) and np.all(np.asarray(good) > np.asarray(bad)), (good, bad)
    assert np.mean(good) > 0.9 and np.mean(bad) < np.mean(good) - 0.2, (np.mean(good), np.mean(bad))


def test_calibration_through_the_xarm_sdk_and_a_software_realsense(twin, tmp_path):
    """The real drivers: ``deploy.arm.XArm`` (xArm SDK) commands the simulated controller
    (``mjx_reach.standins.xarm_sim``), and ``deploy.camera.RealSenseCamera`` streams from a pyrealsense2
    software device whose frames the twin renders at the pose the controller reports (the twin's
    tool frame is the SDK's turned half a turn about the tool axis)."""
    import math

    from deploy.arm import XArm
    from deploy.camera import RealSenseCamera
    from mjx_reach.standins import xarm_sim
    from mjx_reach.standins.realsense_sim import SoftwareCamera

    module, tw = twin
    tw.cam_pos, tw.cam_xmat = module.random_true_camera(np.random.default_rng(5), EnvConfig().camera)
    tw.connect()
    half_turn = np.diag([-1.0, -1.0, 1.0])

    frames = [tw.read()[0]]

    def render():
        """The twin at the controller's pose once a move is done (the simulated controller blends
        roll/pitch/yaw linearly, through orientations the arm cannot take); while moving, the last frame."""
        sample = controller.sample()
        if sample.queued == 0:
            pose = sample.pose  # mm and rad in the base frame (= world here)
            tw.move_to(pose[:3] / 1000.0, arm_lib.xmat_from_rpy_deg(np.rad2deg(pose[3:6])) @ half_turn)
            frames.append(tw.read()[0])
        return frames[-1]

    start = xarm_sim.CartesianArm(pose=(425.0, 0.0, 220.0, math.pi, 0.0, 0.0))
    with xarm_sim.serve(arm=start, tcp_offset=(0.0, 0.0, 172.0, 0.0, 0.0, 0.0)) as controller:
        sim_camera = SoftwareCamera(tw.intrinsics)
        with sim_camera.streaming(render):
            camera = RealSenseCamera(device=sim_camera.device, timeout_s=10.0)
            arm = XArm(controller.host, np.eye(4), cal.DEFAULT_TCP_OFFSET_M, cal.GRIPPER_DOWN_XMAT, speed_m_s=1.0)
            sol, _, cause = cal.run(arm, camera, LIMITS, cal.Settings(poses=12), tmp_path, say=lambda _: None)
        moves = controller.moves()
    assert cause is None, cause
    assert (
        np.linalg.norm(sol.cam_pos - tw.cam_pos) <= POSITION_BOUND_M
        and cm.rotation_angle_deg(sol.cam_xmat, tw.cam_xmat) <= ROTATION_BOUND_DEG
    )
    assert len(moves) == 12 + 2 and all(
        LIMITS.contains(m[:3] / 1000.0) for m in moves
    )  # home, the poses, home; mm in the box
    log = cal.load_log(tmp_path / "calibration_log.npz")
    assert log["joint_angles"].shape == (12, 7) and np.all(np.isfinite(log["joint_angles"]))


ONE_CAMERA_BENCH = {
    "camera": {"pos": [0.4, -1.3, 0.46], "lookat": [0.4, 0.0, 0.3], "roll_deg": 0.5, "serial": "S1"},
    "intrinsics": {"width": 640, "height": 480, "fx": 615.0, "fy": 615.0, "ppx": 320.0, "ppy": 240.0},
    "calibration": {"reprojection_rms_px": 0.4},
    "image": {"height": 84, "width": 84},
}
"""A bench as ``python -m deploy calibrate`` writes it for one camera (abridged)."""


def test_bench_with_camera_replaces_or_appends_camera_k():
    second = {"camera": {"pos": [1.25, -0.55, 0.75], "lookat": [0.4, 0.0, 0.2], "serial": "S2"}} | {
        k: {"of": "camera 2"} for k in ("intrinsics", "calibration")
    }
    first = {k: v for k, v in ONE_CAMERA_BENCH.items() if k != "image"}  # what calibrating camera 1 gives
    assert cal.bench_with_camera(None, first, 1) == first  # a one-camera bench, as before
    two = cal.bench_with_camera(ONE_CAMERA_BENCH, second, 2)
    assert set(two) == {"cameras", "image"} and two["image"] == ONE_CAMERA_BENCH["image"]
    assert two["cameras"][0] == ONE_CAMERA_BENCH["camera"] | {
        k: ONE_CAMERA_BENCH[k] for k in ("intrinsics", "calibration")
    }
    assert two["cameras"][1] == second["camera"] | {"intrinsics": {"of": "camera 2"}, "calibration": {"of": "camera 2"}}
    again = cal.bench_with_camera(two, second, 1)  # camera 1 replaced, camera 2 kept
    assert again["cameras"][0]["serial"] == "S2" and again["cameras"][1] == two["cameras"][1]
    assert cal.bench_with_camera(ONE_CAMERA_BENCH, second, 1) == second | {"image": ONE_CAMERA_BENCH["image"]}
    for bench, index in ((None, 2), (ONE_CAMERA_BENCH, 3), (two, 0)):
        with pytest.raises(cal.CalibrationError, match=f"--camera-index {index}") as err:
            cal.bench_with_camera(bench, second, index)
        assert "\n" not in str(err.value)


def test_second_camera_calibrated_into_the_bench_trains_two_cameras(tmp_path, capsys):
    """``python -m deploy calibrate --twin --camera-index 2`` next to a one-camera bench: the twin's
    second camera (placed near ``env.camera2``) is solved and appended as bench camera 2 (camera 1
    kept, serial included) with its log ``calibration_log_2.npz``; ``train.py --bench`` then trains
    both cameras. A camera index past the bench's end, or a one-camera bench for a two-camera
    config, is refused in one line."""
    from deploy.__main__ import main as deploy_main
    from mjx_reach import config as config_lib

    cal_dir = tmp_path / "cal"
    cal_dir.mkdir()
    (cal_dir / "bench.json").write_text(json.dumps(ONE_CAMERA_BENCH))
    assert deploy_main(["calibrate", "--twin", "--camera-index", "4", "--out", str(cal_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --camera-index 4: the bench in the output folder has 1 camera") and "\n" not in err
    assert json.loads((cal_dir / "bench.json").read_text()) == ONE_CAMERA_BENCH and not list(cal_dir.glob("*.npz"))

    out = tmp_path / "out.json"
    args = ["calibrate", "--twin", "--twin-seed", "4", "--camera-index", "2", "--out", str(cal_dir), "--json", str(out)]
    assert deploy_main(args) == 0
    result = json.loads(out.read_text())
    assert result["position_error_m"] <= POSITION_BOUND_M and result["rotation_error_deg"] <= ROTATION_BOUND_DEG
    bench = contract.load_bench(cal_dir / "bench.json")
    assert len(bench.cameras) == 2 and bench.cameras[0].serial == "S1" and bench.image_hw == (84, 84)
    assert bench.cameras[0].pos == tuple(ONE_CAMERA_BENCH["camera"]["pos"])
    assert np.max(np.abs(np.subtract(bench.cameras[1].pos, EnvConfig().camera2.pos))) <= 0.05 + POSITION_BOUND_M
    assert (cal_dir / "calibration_log_2.npz").is_file() and not (cal_dir / "calibration_log.npz").exists()

    cfg = config_lib.with_bench_camera(config_lib.preset("smoke"), cal_dir / "bench.json")
    assert cfg.env.second_camera and cfg.env.camera2.pos == pytest.approx(result["estimated"]["pos"])
    assert cfg.env.camera2.roll_deg == pytest.approx(result["estimated"]["roll_deg"])
    assert cfg.env.camera.pos == tuple(ONE_CAMERA_BENCH["camera"]["pos"]) and cfg.env.camera.roll_deg == 0.5
    rot_std = bench.cameras[1].rotation_std_deg  # camera 1 was measured by hand: no calibration
    assert bench.cameras[0].rotation_std_deg is None and 0 < rot_std < 0.5
    assert cfg.randomization.cam_rot_deg == pytest.approx(config_lib.BENCH_POSE_SIGMAS * rot_std + 1.0)
    assert cfg.randomization.cam_rot_eval_deg == pytest.approx(config_lib.BENCH_POSE_SIGMAS * rot_std)
    one = tmp_path / "one.json"
    one.write_text(json.dumps(ONE_CAMERA_BENCH))
    smoke = config_lib.preset("smoke")
    two_camera_cfg = dataclasses.replace(smoke, env=dataclasses.replace(smoke.env, second_camera=True))
    with pytest.raises(config_lib.ConfigError, match="bench has 1 camera but env.second_camera is set") as err:
        config_lib.with_bench_camera(two_camera_cfg, one)
    assert "\n" not in str(err.value)
