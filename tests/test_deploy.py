"""The deploy package: metadata contract, SDK unit conversions, safety limits and guards, the loop's
stops (camera, controller, connection, Ctrl-C), stopping on the policy's own estimate and the
summary's episode definition, the CLI, the deploy-only install, and the digital twin against the
in-sim evaluation of the same checkpoint.

Fast tests use a hand-built ONNX with the real export metadata and duck-typed fakes for the arm,
camera and policy; the twin tests use the session's ``trained_run``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from deploy import arm as arm_lib
from deploy import bench as bench_lib
from deploy import loop, safety
from deploy import policy as policy_lib
from deploy.__main__ import main as deploy_main
from mjx_reach import camera as camera_model
from mjx_reach import contract, export
from mjx_reach.config import Config, EnvConfig
from mjx_reach.contract import ArmError, CameraError, PolicyError, SafetyError

REPO = pathlib.Path(__file__).resolve().parents[1]
D435 = camera_model.D435_COLOUR


@pytest.fixture(scope="module")
def meta_dict() -> dict:
    """The export metadata of the default config (what ``python export.py`` records)."""
    return export.metadata(Config())


@pytest.fixture(scope="module")
def meta(meta_dict) -> policy_lib.Metadata:
    return policy_lib.parse_metadata(json.dumps(meta_dict))


def tiny_onnx(path: pathlib.Path, meta: dict | None, image_shape=(84, 84, 3)) -> pathlib.Path:
    """A small ONNX with the policy's signature: action = tanh(goal - mean pixel / 255), ee_pred = goal."""
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["B", *image_shape])
    goal = helper.make_tensor_value_info("goal", TensorProto.FLOAT, ["B", 3])
    nodes = [
        helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["image_f"], ["mean"], keepdims=0),
        helper.make_node("Div", ["mean", "scale"], ["level"]),
        helper.make_node("Sub", ["goal", "level"], ["shifted"]),
        helper.make_node("Tanh", ["shifted"], ["action"]),
        helper.make_node("Identity", ["goal"], ["ee_pred"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [image, goal],
        [
            helper.make_tensor_value_info("action", TensorProto.FLOAT, ["B", 3]),
            helper.make_tensor_value_info("ee_pred", TensorProto.FLOAT, ["B", 3]),
        ],
        initializer=[helper.make_tensor("scale", TensorProto.FLOAT, [], [255.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if meta is not None:
        helper.set_model_props(model, {contract.METADATA_KEY: json.dumps(meta)})
    path.write_bytes(model.SerializeToString())
    return path


def changed(meta: dict, dotted: str, value) -> dict:
    """A deep copy of ``meta`` with field ``dotted`` (list items by index) set to ``value`` (or removed
    when ``value`` is ...)."""
    out = json.loads(json.dumps(meta))
    *parents, last = [int(part) if part.isdigit() else part for part in dotted.split(".")]
    node = out
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


# --- metadata contract ------------------------------------------------------------------------------
def test_policy_loads_tiny_onnx_and_runs(tmp_path, meta_dict):
    pol = policy_lib.Policy(tiny_onnx(tmp_path / "a.onnx", meta_dict))
    assert pol.meta.image_hw == (84, 84) and pol.meta.channels == 3
    frame = np.full((480, 640, 3), 51, np.uint8)
    image = pol.preprocess(frame, D435)
    assert image.shape == (84, 84, 3) and image.dtype == np.uint8 and np.all(image == 51)
    action, ee = pol(image, [0.4, 0.0, 0.2])
    np.testing.assert_allclose(action, np.tanh(np.array([0.4, 0.0, 0.2]) - 0.2), atol=1e-6)
    np.testing.assert_allclose(ee, [0.4, 0.0, 0.2], atol=1e-7)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("image.height", 96, "input 'image'"),
        ("image.channels", 4, "channels"),
        ("preprocessing.version", 99, "preprocessing"),
        ("cameras.0.fovy_deg", "wide", r"cameras\[0\]\.fovy_deg"),
        ("cameras", [], "cameras"),
        ("workspace.low", [0.25, -0.2], "workspace.low"),
        ("workspace.high", [0.2, 0.2, 0.36], "empty"),
        ("world_to_base", np.diag([1.0, 1.0, 1.0, 2.0]).tolist(), "rigid"),
        ("max_step_m", ..., "max_step_m"),
        ("schema", 2, "schema"),
        ("home_joints_rad", ..., r"no 'home_joints_rad'.*re-export it with `python export\.py RUN_DIR`"),
        ("home_joints_rad", [0.0] * 6, "home_joints_rad"),
    ],
)
def test_mismatching_or_broken_metadata_is_refused(tmp_path, meta_dict, field, value, message):
    path = tiny_onnx(tmp_path / "bad.onnx", changed(meta_dict, field, value))
    with pytest.raises(PolicyError, match=message) as err:
        policy_lib.Policy(path)
    assert "\n" not in str(err.value)


def test_model_without_metadata_or_damaged_is_refused(tmp_path, meta_dict):
    with pytest.raises(PolicyError, match="no 'mjx_reach' metadata"):
        policy_lib.Policy(tiny_onnx(tmp_path / "plain.onnx", None))
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(tiny_onnx(tmp_path / "ok.onnx", meta_dict).read_bytes()[:200])
    with pytest.raises(PolicyError, match="not a loadable ONNX"):
        policy_lib.Policy(damaged)
    with pytest.raises(PolicyError, match="no such ONNX"):
        policy_lib.Policy(tmp_path / "missing.onnx")


def one_camera(pos, lookat, roll_deg: float = 0.0, image_hw=None) -> contract.Bench:
    """A bench with one camera at ``pos`` looking at ``lookat`` (m), rolled ``roll_deg``."""
    return contract.Bench((contract.BenchCamera(tuple(pos), tuple(lookat), roll_deg),), image_hw)


def test_bench_must_match_the_trained_camera_and_image(meta):
    """Position within the trained jitter per axis, orientation (optical axis and roll) within its
    rotation jitter; tolerances read from the model, so this holds for any trained ranges."""
    cam = Config().env.camera
    jitter = meta.cameras[0].jitter
    pos_tol = max(jitter["pos_m"], contract.MIN_POS_TOLERANCE_M)
    rot_tol = max(jitter["rot_deg"], contract.MIN_ROT_TOLERANCE_DEG)
    bench_lib.check_bench(meta, one_camera(cam.pos, cam.lookat, image_hw=(84, 84)))
    bench_lib.check_bench(meta, one_camera(tuple(np.add(cam.pos, 0.75 * pos_tol)), cam.lookat))
    with pytest.raises(PolicyError, match="image size"):
        bench_lib.check_bench(meta, one_camera(cam.pos, cam.lookat, image_hw=(96, 96)))
    with pytest.raises(PolicyError, match="camera position"):
        bench_lib.check_bench(meta, one_camera(tuple(np.add(cam.pos, [1.5 * pos_tol, 0, 0])), cam.lookat))
    turned = np.add(cam.lookat, [0.2, 0.0, 0.0])  # ~8 deg about the vertical axis
    with pytest.raises(PolicyError, match="camera orientation"):
        bench_lib.check_bench(meta, one_camera(cam.pos, tuple(turned)))
    bench_lib.check_bench(meta, one_camera(cam.pos, cam.lookat, roll_deg=0.75 * rot_tol))
    with pytest.raises(PolicyError, match="camera orientation.*roll"):
        bench_lib.check_bench(meta, one_camera(cam.pos, cam.lookat, roll_deg=1.5 * rot_tol))


def test_roll_in_contract_and_bench_and_old_files_without_it(tmp_path, meta_dict):
    """The contract and the bench carry the camera roll; a model or bench without it reads as level."""
    rolled = policy_lib.parse_metadata(json.dumps(changed(meta_dict, "cameras.0.roll_deg", 3.0)))
    assert rolled.cameras[0].roll_deg == 3.0 and meta_dict["camera"]["roll_deg"] == 0.0
    old = policy_lib.parse_metadata(json.dumps(changed(changed(meta_dict, "cameras", ...), "camera.roll_deg", ...)))
    assert old.cameras[0].roll_deg == 0.0 and len(old.cameras) == 1
    cam = Config().env.camera
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"camera": {"pos": list(cam.pos), "lookat": list(cam.lookat)}}))
    assert contract.load_bench(bench).cameras[0].roll_deg == 0.0
    bench_lib.check_bench(old, contract.load_bench(bench))
    bench.write_text(
        json.dumps({"camera": {"pos": list(cam.pos), "lookat": list(cam.lookat), "roll_deg": 3.0, "fovy_deg": 42.0}})
    )
    loaded = contract.load_bench(bench)
    assert (loaded.cameras[0].roll_deg, loaded.cameras[0].fovy_deg) == (3.0, 42.0)
    bench_lib.check_bench(rolled, loaded)
    with pytest.raises(PolicyError, match="camera orientation"):
        bench_lib.check_bench(old, loaded)
    assert loop.view_guard(rolled).guards[0].roll_deg == 3.0
    assert loop.view_guard(rolled, one_camera(cam.pos, cam.lookat, -1.0)).guards[0].roll_deg == -1.0


def test_bench_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "bench.json"
    bad.write_text('{"camera": {"pos": [1, 2]}}')
    with pytest.raises(PolicyError) as err:
        contract.load_bench(bad)
    assert "bench file" in str(err.value) and "\n" not in str(err.value)


# --- two cameras ------------------------------------------------------------------------------------
TWO_CAMERAS = Config(env=EnvConfig(second_camera=True))


@pytest.fixture(scope="module")
def meta2_dict() -> dict:
    """The export metadata of the default config with a second policy camera."""
    return export.metadata(TWO_CAMERAS)


@pytest.fixture(scope="module")
def meta2(meta2_dict) -> policy_lib.Metadata:
    return policy_lib.parse_metadata(json.dumps(meta2_dict))


def two_camera_bench(env: EnvConfig = TWO_CAMERAS.env, serials=(None, None)) -> contract.Bench:
    """A bench with ``env``'s two policy cameras (optionally with serials)."""
    return contract.Bench(
        tuple(
            contract.BenchCamera(cam.pos, cam.lookat, cam.roll_deg, serial=serial)
            for cam, serial in zip((env.camera, env.camera2), serials)
        )
    )


def test_two_camera_contract_lists_the_cameras_in_channel_order(tmp_path, meta2_dict, meta2):
    env = TWO_CAMERAS.env
    assert meta2_dict["image"]["channels"] == 6 and len(meta2_dict["cameras"]) == 2
    assert meta2_dict["camera"] == meta2_dict["cameras"][0]  # one-camera readers see camera 1
    for cam, want in zip(meta2.cameras, (env.camera, env.camera2)):
        np.testing.assert_allclose(cam.pos, want.pos)
        np.testing.assert_allclose(cam.lookat, want.lookat)
        assert (cam.fovy_deg, cam.roll_deg) == (want.fovy_deg, want.roll_deg)
    pol = policy_lib.Policy(tiny_onnx(tmp_path / "two.onnx", meta2_dict, (84, 84, 6)))
    assert pol.meta.channels == 6 and len(pol.meta.cameras) == 2
    for channels in (3, 4):
        with pytest.raises(PolicyError, match="image channels.*2 camera") as err:
            policy_lib.parse_metadata(json.dumps(changed(meta2_dict, "image.channels", channels)))
        assert "\n" not in str(err.value)


def test_camera_count_of_model_and_bench_must_agree(meta, meta2):
    cam = Config().env.camera
    bench_lib.check_bench(meta2, two_camera_bench())
    for model, bench, counts in (
        (meta, two_camera_bench(), "trained with 1 camera(s), the bench has 2"),
        (meta2, one_camera(cam.pos, cam.lookat), "trained with 2 camera(s), the bench has 1"),
    ):
        with pytest.raises(PolicyError, match=re.escape(counts)) as err:
            bench_lib.check_bench(model, bench)
        assert "\n" not in str(err.value)
    moved = dataclasses.replace(TWO_CAMERAS.env.camera2, pos=tuple(np.add(TWO_CAMERAS.env.camera2.pos, [0.05, 0, 0])))
    with pytest.raises(PolicyError, match="bench camera 2: camera position"):
        bench_lib.check_bench(meta2, two_camera_bench(dataclasses.replace(TWO_CAMERAS.env, camera2=moved)))


def test_two_camera_bench_file_with_serials(tmp_path):
    env = TWO_CAMERAS.env
    path = tmp_path / "bench.json"
    cams = [
        {"pos": list(c.pos), "lookat": list(c.lookat), "serial": s}
        for c, s in ((env.camera, "A1"), (env.camera2, "B2"))
    ]
    path.write_text(json.dumps({"cameras": cams, "image": {"height": 84, "width": 84}}))
    bench = contract.load_bench(path)
    assert [c.serial for c in bench.cameras] == ["A1", "B2"] and bench.image_hw == (84, 84)
    assert bench.cameras[1].pos == env.camera2.pos and bench.cameras[1].roll_deg == 0.0
    for bad in ({"cameras": []}, {"camera": cams[0], "cameras": cams}, {"cameras": [{"pos": [1, 2, 3]}]}):
        path.write_text(json.dumps(bad))
        with pytest.raises(PolicyError, match="bench file") as err:
            contract.load_bench(path)
        assert "\n" not in str(err.value)


def test_camera_serials_come_from_the_flag_or_the_bench():
    from deploy.__main__ import camera_serials

    assert camera_serials(None, 1, None) == [None]  # the only connected camera, as before
    assert camera_serials(["S1"], 1, None) == ["S1"]
    assert camera_serials(["S1", "S2"], 2, None) == ["S1", "S2"]
    assert camera_serials(None, 2, two_camera_bench(serials=("B1", "B2"))) == ["B1", "B2"]
    assert camera_serials(["S2", "S1"], 2, two_camera_bench(serials=("B1", "B2"))) == ["S2", "S1"]  # the flag wins
    for given, count, bench, message in (
        (["S1"], 2, None, "given 1 time.* 2 camera"),
        (["S1", "S2"], 1, None, "given 2 time.* 1 camera"),
        (None, 2, None, r"no serial for camera\(s\) \[1, 2\]"),
        (None, 2, two_camera_bench(serials=("B1", None)), r"no serial for camera\(s\) \[2\]"),
        (["S1", "S1"], 2, None, "S1 is given for more than one camera"),
    ):
        with pytest.raises(contract.DeployError, match=message) as err:
            camera_serials(given, count, bench)
        assert "\n" not in str(err.value)


def test_cli_refuses_a_camera_count_mismatch_in_one_line(tmp_path, meta_dict, meta2_dict, capsys):
    one, two = tiny_onnx(tmp_path / "one.onnx", meta_dict), tiny_onnx(tmp_path / "two.onnx", meta2_dict, (84, 84, 6))
    env = TWO_CAMERAS.env
    bench1, bench2 = tmp_path / "bench1.json", tmp_path / "bench2.json"
    bench1.write_text(json.dumps({"camera": {"pos": env.camera.pos, "lookat": env.camera.lookat}}))
    bench2.write_text(json.dumps({"cameras": [{"pos": c.pos, "lookat": c.lookat} for c in (env.camera, env.camera2)]}))
    real = ["--ip", "10.0.0.1", "--goal", "0.4", "0.0", "0.2", "--dry-run"]
    assert deploy_main([str(two), *real, "--bench", str(bench2), "--camera-serial", "S1", "--camera-serial", "S2"]) == 0
    assert json.loads(capsys.readouterr().out)["camera_serials"] == ["S1", "S2"]
    assert deploy_main([str(one), *real, "--bench", str(bench2)]) == 1
    assert deploy_main([str(two), *real, "--bench", str(bench1)]) == 1
    assert deploy_main([str(two), *real, "--bench", str(bench2), "--camera-serial", "S1"]) == 1
    assert deploy_main([str(one), *real, "--bench", str(bench1), "--camera-serial", "S1", "--camera-serial", "S2"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors)
    assert "1 camera(s), the bench has 2" in errors[0] and "2 camera(s), the bench has 1" in errors[1]
    assert "given 1 time(s) but the model has 2" in errors[2] and "given 2 time(s) but the model has 1" in errors[3]


# --- the SDK edge: units ------------------------------------------------------------------------------
def test_world_sdk_conversion_is_metres_to_millimetres_through_world_to_base():
    w2b = np.eye(4)
    w2b[:3, :3] = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
    w2b[:3, 3] = [0.1, -0.2, 0.05]
    p = np.array([0.4, 0.1, 0.2])
    mm = arm_lib.world_to_sdk_mm(p, w2b)
    np.testing.assert_allclose(mm, [(-0.1 + 0.1) * 1000, (0.4 - 0.2) * 1000, (0.2 + 0.05) * 1000], atol=1e-9)
    np.testing.assert_allclose(arm_lib.sdk_mm_to_world(mm, w2b), p, atol=1e-12)
    np.testing.assert_allclose(arm_lib.world_to_sdk_mm(p, np.eye(4)), p * 1000)


def test_rpy_degrees_of_known_rotations():
    np.testing.assert_allclose(arm_lib.rpy_deg(np.diag([1.0, -1.0, -1.0])), [180.0, 0.0, 0.0], atol=1e-9)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    ry = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    np.testing.assert_allclose(arm_lib.rpy_deg(rz @ ry), [0.0, 30.0, 30.0], atol=1e-9)


class FakeSDK:
    """The parts of ``xarm.wrapper.XArmAPI`` that ``XArm`` uses, recording every call (mm, deg)."""

    def __init__(self, ip, tcp_offset=(0.0, 0.0, 172.0, 0.0, 0.0, 0.0)):
        self.ip, self.connected, self.error_code, self.warn_code = ip, True, 0, 0
        self.tcp_offset = list(tcp_offset)
        self.pose = [400.0, 0.0, 228.0, 180.0, 0.0, 0.0]
        self.calls: list[tuple] = []
        self.codes: dict[str, int] = {}

    def _record(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        return self.codes.get(name, 0)

    def clean_error(self):
        return self._record("clean_error")

    def clean_warn(self):
        return self._record("clean_warn")

    def motion_enable(self, enable=True, servo_id=None):
        return self._record("motion_enable", enable=enable)

    def set_mode(self, mode=0):
        return self._record("set_mode", mode)

    def set_state(self, state=0):
        return self._record("set_state", state)

    def set_position(self, **kwargs):
        code = self._record("set_position", **kwargs)
        if code == 0:
            self.pose = [kwargs["x"], kwargs["y"], kwargs["z"], kwargs["roll"], kwargs["pitch"], kwargs["yaw"]]
        return code

    def set_servo_angle(self, **kwargs):
        return self._record("set_servo_angle", **kwargs)

    def get_position(self, is_radian=None):
        assert is_radian is False
        return self.codes.get("get_position", 0), list(self.pose)

    def emergency_stop(self):
        self._record("emergency_stop")

    def disconnect(self):
        self.connected = False
        self._record("disconnect")


def make_xarm(meta, sdk: FakeSDK) -> arm_lib.XArm:
    return arm_lib.XArm(
        "10.0.0.1", meta.world_to_base, meta.tcp_offset_m, meta.flange_xmat, speed_m_s=0.05, make_api=lambda ip: sdk
    )


def test_xarm_connect_sequence_and_units(meta):
    sdk = FakeSDK("10.0.0.1")
    arm = make_xarm(meta, sdk)
    arm.connect()
    assert [c[0] for c in sdk.calls] == ["clean_error", "clean_warn", "motion_enable", "set_mode", "set_state"]
    assert sdk.calls[2][2] == {"enable": True} and sdk.calls[3][1] == (0,) and sdk.calls[4][1] == (0,)
    arm.move_to([0.45, -0.05, 0.2])
    name, _, kw = sdk.calls[-1]
    assert name == "set_position" and kw["wait"] is True and kw["is_radian"] is False
    np.testing.assert_allclose([kw["x"], kw["y"], kw["z"]], [450.0, -50.0, 200.0], atol=1e-9)
    assert abs(abs(kw["roll"]) - 180.0) < 0.1 and abs(kw["pitch"]) < 0.1 and abs(kw["yaw"]) < 0.1  # pointing down
    assert kw["speed"] == pytest.approx(50.0)  # 0.05 m/s → mm/s
    np.testing.assert_allclose(arm.position(), [0.45, -0.05, 0.2], atol=1e-12)
    arm.move_joints(meta.home_joints_rad)
    name, _, kw = sdk.calls[-1]
    assert name == "set_servo_angle" and kw["wait"] is True and kw["is_radian"] is True
    np.testing.assert_allclose(kw["angle"], meta.home_joints_rad)
    assert kw["speed"] == pytest.approx(math.radians(20)) and kw["mvacc"] > 0  # rad/s, rad/s²
    arm.stop()
    assert sdk.calls[-1][0] == "emergency_stop"


@pytest.mark.parametrize(
    "fault, message",
    [
        (lambda sdk: setattr(sdk, "error_code", 31), "error code 31"),
        (lambda sdk: setattr(sdk, "warn_code", 11), "warning code 11"),
        (lambda sdk: setattr(sdk, "connected", False), "lost the connection"),
        (lambda sdk: sdk.codes.update(set_position=9), "set_position returned code 9"),
        (lambda sdk: sdk.codes.update(get_position=-1), "get_position returned code -1"),
        (lambda sdk: sdk.codes.update(set_servo_angle=9), "set_servo_angle returned code 9"),
    ],
)
def test_xarm_faults_raise_arm_error(meta, fault, message):
    sdk = FakeSDK("10.0.0.1")
    arm = make_xarm(meta, sdk)
    arm.connect()
    fault(sdk)
    with pytest.raises(ArmError, match=message):
        arm.move_joints(meta.home_joints_rad)
        arm.move_to([0.45, 0.0, 0.2])
        arm.position()


def test_xarm_refuses_a_wrong_tcp_offset_and_an_unreachable_controller(meta):
    with pytest.raises(ArmError, match="TCP offset"):
        make_xarm(meta, FakeSDK("10.0.0.1", tcp_offset=(0, 0, 0, 0, 0, 0))).connect()

    def unreachable(ip):
        raise Exception(f"can not connect to port/ip {ip}")

    with pytest.raises(ArmError, match="cannot connect"):
        arm_lib.XArm(
            "10.0.0.9", meta.world_to_base, meta.tcp_offset_m, meta.flange_xmat, make_api=unreachable
        ).connect()


# --- safety limits -----------------------------------------------------------------------------------
@pytest.fixture
def limits(meta) -> safety.Limits:
    return safety.Limits(meta.workspace_low, meta.workspace_high, meta.max_step_m)


def test_limits_only_tighten(limits):
    tight = safety.tighten(limits, low=[0.3, -0.1, 0.1], high=[0.5, 0.1, 0.3], max_step_m=0.01)
    assert tight.max_step_m == 0.01 and np.all(tight.low >= limits.low) and np.all(tight.high <= limits.high)
    for kwargs, message in [
        ({"low": [0.2, -0.2, 0.08]}, "widen"),
        ({"high": [0.6, 0.3, 0.36]}, "widen"),
        ({"max_step_m": 0.05}, "only tighten"),
        ({"max_step_m": float("nan")}, "only tighten"),
        ({"low": [0.5, 0.0, 0.2], "high": [0.4, 0.1, 0.3]}, "empty"),
        ({"low": [0.3, float("inf"), 0.1]}, "finite"),
    ]:
        with pytest.raises(SafetyError, match=message) as err:
            safety.tighten(limits, **kwargs)
        assert "\n" not in str(err.value)


def test_ten_thousand_random_and_adversarial_outputs_never_leave_the_box(limits):
    """Random, huge, non-finite and corner actions from targets inside, on and outside the box:
    every accepted command is inside the box and within the max step of the (clipped) last target;
    non-finite ones are refused."""
    rng = np.random.default_rng(0)
    tight = safety.tighten(limits, max_step_m=0.01)
    specials = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 1.0, -1.0, 0.0, 1e-30])
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    accepted = refused = 0
    target = (tight.low + tight.high) / 2
    for i in range(10_000):
        kind = i % 4
        if kind == 0:
            action = rng.normal(0, 10 ** rng.uniform(-2, 6), 3)
        elif kind == 1:
            action = rng.choice(specials, 3)
        elif kind == 2:
            action = corners[i % 8] * rng.choice([1.0, 1e9])
        else:  # targets pushed to or beyond the box's faces
            target = rng.uniform(tight.low - 0.5, tight.high + 0.5)
            action = np.sign(target - (tight.low + tight.high) / 2)
        try:
            new = safety.next_target(target, action, 0.02, tight)
        except SafetyError:
            assert not np.all(np.isfinite(action)) or not np.all(np.isfinite(target))
            refused += 1
            continue
        accepted += 1
        assert tight.contains(new), (target, action, new)
        assert np.all(
            np.abs(new - np.clip(target, tight.low, tight.high)) <= tight.max_step_m + 1e-12
        ) or not tight.contains(target)
        target = new
    assert accepted > 7_000 and refused > 500


def test_view_guard_refuses_a_gripper_outside_the_image(meta):
    view = loop.view_guard(meta)
    view.check(meta.home_m, "home")
    view.check((meta.workspace_low + meta.workspace_high) / 2, "target")
    with pytest.raises(SafetyError, match="leave the camera image"):
        view.check([0.4, 0.0, 0.9], "target")  # far above the image's top edge
    with pytest.raises(SafetyError, match="measured ee"):
        view.check([1.3, 0.0, 0.2], "measured ee")


def test_drift_guard_warns_then_stops():
    guard = safety.DriftGuard(safety.DriftLimits(warn_m=0.03, stop_m=0.08, patience=3))
    ee = np.array([0.4, 0.0, 0.2])
    assert guard.update(ee + [0.01, 0, 0], ee) == (pytest.approx(0.01), False)
    assert guard.update(ee + [0.05, 0, 0], ee)[1] is True
    assert guard.update(ee + [0.05, 0, 0], ee)[1] is True
    assert guard.update(ee, ee)[1] is False  # a good step resets the count
    guard.update(ee + [0.05, 0, 0], ee)
    guard.update(ee + [0.05, 0, 0], ee)
    with pytest.raises(SafetyError, match="3 steps in a row"):
        guard.update(ee + [0.05, 0, 0], ee)
    with pytest.raises(SafetyError, match="limit 8.0 cm"):
        safety.DriftGuard(safety.DriftLimits(0.03, 0.08, 3)).update(ee + [0.1, 0, 0], ee)
    with pytest.raises(SafetyError, match="not finite"):
        safety.DriftGuard(safety.DriftLimits()).update([np.nan, 0, 0], ee)
    with pytest.raises(SafetyError, match="drift guard"):
        safety.DriftLimits(warn_m=0.1, stop_m=0.05)


# --- the loop with fakes -----------------------------------------------------------------------------
class FakeArm:
    """A perfect position-mode arm (``deploy.arm.Arm``) with scripted faults after ``fault_after``
    Cartesian moves; a joint move puts the TCP at ``home`` (default: where it starts)."""

    def __init__(self, start, fault_after: int | None = None, fault=None, home=None):
        self.pos = np.asarray(start, np.float64)
        self.home = self.pos.copy() if home is None else np.asarray(home, np.float64)
        self.moves: list[np.ndarray] = []
        self.joint_moves: list[np.ndarray] = []
        self.stops = 0
        self.closed = False
        self.fault_after, self.fault = fault_after, fault
        self.error = None

    def connect(self):
        pass

    def check(self):
        if self.error:
            raise ArmError(self.error)

    def position(self):
        self.check()
        return self.pos.copy()

    def move_to(self, target):
        self.check()
        self.moves.append(np.asarray(target, np.float64))
        self.pos = np.asarray(target, np.float64)
        if len(self.moves) == self.fault_after:
            self.fault(self)

    def move_joints(self, angles_rad):
        self.check()
        self.joint_moves.append(np.asarray(angles_rad, np.float64))
        self.pos = self.home.copy()

    def stop(self):
        self.stops += 1

    def close(self):
        self.closed = True


class FakeCamera:
    """Uniform D435 frames of grey ``level``; raises ``CameraError`` from read number ``fail_at`` on."""

    def __init__(self, fail_at: int | None = None, level: int = 128):
        self.reads, self.fail_at, self.level, self.closed = 0, fail_at, level, False

    def read(self):
        if self.fail_at is not None and self.reads >= self.fail_at:
            raise CameraError(
                "no colour frame from the RealSense camera within 1.00 s (stream stopped or camera disconnected)"
            )
        self.reads += 1
        return np.full((480, 640, 3), self.level, np.uint8), D435

    def close(self):
        self.closed = True


class ScriptedPolicy:
    """A policy that heads for the goal and 'sees' the arm ``ee_offset`` m away from where it is."""

    def __init__(self, meta, arm: FakeArm, ee_offset=(0.0, 0.0, 0.0), action=None):
        self.meta, self.arm = meta, arm
        self.ee_offset, self.action = np.asarray(ee_offset), action

    def preprocess(self, frame, intr, camera=0):
        return camera_model.preprocess(frame, intr, self.meta.cameras[camera].fovy_deg, self.meta.image_hw)

    def __call__(self, image, goal):
        assert image.shape == (84, 84, self.meta.channels)
        ee = self.arm.pos + self.ee_offset
        action = (
            np.clip((np.asarray(goal) - ee) / self.meta.max_step_m, -1, 1)
            if self.action is None
            else np.asarray(self.action, np.float64)
        )
        return action, ee


def run_fake(meta, tmp_path, arm, cameras=None, pol=None, goals=None, options=None, limits=None):
    lim = limits or safety.Limits(meta.workspace_low, meta.workspace_high, meta.max_step_m)
    said = []
    results, cause = loop.run(
        pol or ScriptedPolicy(meta, arm),
        cameras or [FakeCamera() for _ in meta.cameras],
        arm,
        np.array([[0.5, 0.1, 0.15]]) if goals is None else goals,
        lim,
        loop.view_guard(meta),
        options or loop.Options(max_steps=40),
        tmp_path / "logs",
        say=said.append,
    )
    return results, cause, said


def test_loop_reaches_goal_within_limits_and_logs(meta, tmp_path):
    arm = FakeArm(meta.home_m)
    lim = safety.tighten(safety.Limits(meta.workspace_low, meta.workspace_high, meta.max_step_m), max_step_m=0.01)
    results, cause, _ = run_fake(meta, tmp_path, arm, limits=lim)
    assert cause is None and len(results) == 1 and results[0].ended_by == loop.POLICY_STOP
    assert results[0].final_distance_m < meta.success_threshold_m
    np.testing.assert_allclose(arm.joint_moves, [meta.home_joints_rad])  # homes first, in joint space
    steps = np.diff(np.stack([meta.home_m, *arm.moves]), axis=0)
    assert np.all(np.abs(steps) <= 0.01 + 1e-12) and all(lim.contains(m) for m in arm.moves)
    log = np.load(tmp_path / "logs" / "episode_000.npz")
    n = results[0].steps + 1
    assert log["image"].shape == (n, 84, 84, 3) and log["ee_sdk"].shape == (n, 3) and log["ee_pred"].shape == (n, 3)
    assert log["raw_frames"].shape == (1, 480, 640, 3) and str(log["ended_by"]) == loop.POLICY_STOP
    np.testing.assert_allclose(log["target"][:-1], np.stack(arm.moves))
    assert arm.closed


@pytest.mark.parametrize(
    "case", ["camera timeout", "controller error", "lost connection", "ctrl-c", "nan action", "drift"]
)
def test_loop_stops_motion_and_names_the_cause(meta, tmp_path, case):
    arm = FakeArm(meta.home_m)
    camera, pol = FakeCamera(), None
    if case == "camera timeout":
        camera = FakeCamera(fail_at=3)
    elif case == "controller error":
        arm = FakeArm(
            meta.home_m,
            fault_after=3,
            fault=lambda a: setattr(
                a, "error", "xArm controller error code 22 (see the xArm controller error code table)"
            ),
        )
    elif case == "lost connection":
        arm = FakeArm(
            meta.home_m,
            fault_after=2,
            fault=lambda a: setattr(a, "error", "lost the connection to the xArm at 10.0.0.1"),
        )
    elif case == "ctrl-c":

        def interrupt(_):
            raise KeyboardInterrupt

        arm = FakeArm(meta.home_m, fault_after=2, fault=interrupt)
    elif case == "nan action":
        pol = ScriptedPolicy(meta, arm, action=[np.nan, 0.0, 0.0])
    elif case == "drift":
        pol = ScriptedPolicy(meta, arm, ee_offset=[0.05, 0.0, 0.0])
    results, cause, said = run_fake(meta, tmp_path, arm, [camera], pol)
    expected = {
        "camera timeout": "no colour frame",
        "controller error": "error code 22",
        "lost connection": "lost the connection",
        "ctrl-c": "Ctrl-C",
        "nan action": "not 3 finite numbers",
        "drift": "steps in a row",
    }[case]
    assert cause is not None and expected in cause and "\n" not in cause
    assert arm.stops >= 1 and arm.closed and camera.closed and results == []
    if case == "drift":
        assert sum("warning" in s for s in said) == safety.DriftLimits().patience - 1
    log = np.load(tmp_path / "logs" / "episode_000.npz")
    assert expected.lower() in str(log["ended_by"]).lower()


def test_goal_outside_the_box_moves_nothing(meta, tmp_path):
    arm = FakeArm(meta.home_m)
    results, cause, _ = run_fake(meta, tmp_path, arm, goals=np.array([[0.7, 0.0, 0.2]]))
    assert "outside the workspace box" in cause and arm.moves == arm.joint_moves == [] and results == []


def test_loop_refuses_a_tcp_away_from_the_models_home_after_the_joint_move(meta, tmp_path):
    """The joint-space home move lands the TCP 8 mm from the model's home (a different TCP offset or
    base transform): the episode stops before any Cartesian move, naming the distance."""
    arm = FakeArm(meta.home_m, home=meta.home_m + [0.0, 0.0, 0.008])
    results, cause, _ = run_fake(meta, tmp_path, arm)
    assert results == [] and arm.moves == [] and arm.stops >= 1 and "\n" not in cause
    assert cause.startswith("after the joint-space home move the TCP is 8.0 mm from the model's home")
    within = FakeArm(meta.home_m, home=meta.home_m + [0.0, 0.0, 0.8 * loop.HOME_TOLERANCE_M])
    assert run_fake(meta, tmp_path, within)[1] is None


def test_a_box_without_the_models_home_is_refused_before_moving(meta, tmp_path, limits):
    """The joint-space home move goes to the model's home whatever the box: a box tightened to
    exclude it is refused before the arm moves."""
    arm = FakeArm(meta.home_m)
    tight = safety.tighten(limits, low=meta.home_m + [0.01, -0.05, -0.05])
    results, cause, _ = run_fake(meta, tmp_path, arm, goals=np.array([meta.home_m + 0.02]), limits=tight)
    assert results == [] and "home" in cause and "outside the workspace box" in cause
    assert arm.moves == arm.joint_moves == []


def test_view_guard_stops_the_loop_when_the_arm_is_out_of_view(meta, tmp_path):
    arm = FakeArm(meta.home_m, fault_after=2, fault=lambda a: setattr(a, "pos", np.array([0.4, 0.0, 0.9])))
    _, cause, _ = run_fake(meta, tmp_path, arm)
    assert "measured ee" in cause and "leave the camera image" in cause and arm.stops >= 1


# --- stopping: the policy's own estimate, never the measured distance --------------------------------
IN_SIM_EVAL = {"episodes": 128, "success_2cm": 0.44, "success_5cm": 0.94, "mean_final_distance_m": 0.025}
"""A stand-in for the ``eval.json`` that export records in the model's metadata."""


def test_policy_stop_ends_where_the_policy_believes_the_goal_is(meta, tmp_path):
    """A policy that sees the arm 2.5 cm above where it is (inside the drift guard) settles where it
    believes the goal is: the episode ends by policy stop after ``steps`` settled steps, and the
    measured 2.5 cm (a miss at 2 cm) is reported, not acted on."""
    arm = FakeArm(meta.home_m)
    goal = np.array([0.5, 0.1, 0.15])
    pol = ScriptedPolicy(meta, arm, ee_offset=[0.0, 0.0, 0.025])
    results, cause, said = run_fake(meta, tmp_path, arm, pol=pol, goals=goal[None])
    assert cause is None and results[0].ended_by == loop.POLICY_STOP and not any("warning" in s for s in said)
    assert results[0].final_distance_m == pytest.approx(0.025, abs=1e-9)  # a miss at the 2 cm threshold
    assert np.linalg.norm(results[0].final_ee_pred - goal) < 1e-9
    log, stop = np.load(tmp_path / "logs" / "episode_000.npz"), loop.PolicyStop()
    settled = [stop.settled(a, e, goal, meta) for a, e in zip(log["action"], log["ee_pred"], strict=True)]
    assert settled[-stop.steps :] == [True] * stop.steps and not settled[-stop.steps - 1]
    assert results[0].steps == len(settled) - 1 < 40


@pytest.mark.parametrize(
    "ee_offset, action, goal_from_home",
    [
        ([0.0, 0.0, 0.025], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),  # at the goal, still; it sees itself 2.5 cm off
        ([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.1, 0.0, 0.0]),  # sees itself right, sweeps through at full speed
    ],
    ids=["estimate off", "not holding still"],
)
def test_the_measured_distance_never_ends_an_episode(meta, tmp_path, ee_offset, action, goal_from_home):
    """The arm is measured within the success threshold of the goal, but the policy does not say it
    has arrived: the episode runs to the step limit."""
    arm = FakeArm(meta.home_m)
    goal = meta.home_m + goal_from_home
    pol = ScriptedPolicy(meta, arm, ee_offset=ee_offset, action=action)
    results, cause, _ = run_fake(meta, tmp_path, arm, pol=pol, goals=goal[None], options=loop.Options(max_steps=10))
    log = np.load(tmp_path / "logs" / "episode_000.npz")
    assert np.min(np.linalg.norm(log["ee_sdk"] - goal, axis=1)) < meta.success_threshold_m  # the arm was there
    assert cause is None and results[0].ended_by == loop.STEP_LIMIT and results[0].steps == 10


def test_full_episode_runs_exactly_the_training_episode_length(meta, tmp_path):
    """``policy_stop=None`` with the training ``episode_steps``: exactly that many moves after home, the
    in-sim definition; the same policy with the default stop ends earlier, by its own decision."""
    options = loop.Options(max_steps=meta.episode_steps, policy_stop=None)
    assert loop.episode_definition(options, meta.episode_steps) == loop.FULL_EPISODE
    arm = FakeArm(meta.home_m)
    results, cause, _ = run_fake(meta, tmp_path, arm, options=options)
    assert cause is None and results[0].ended_by == loop.STEP_LIMIT and results[0].steps == meta.episode_steps
    assert len(arm.joint_moves) == 1 and len(arm.moves) == meta.episode_steps  # home, then one move per step
    assert results[0].final_distance_m < meta.success_threshold_m
    stopping = FakeArm(meta.home_m)
    early, _, _ = run_fake(meta, tmp_path, stopping, options=loop.Options(max_steps=meta.episode_steps))
    assert early[0].ended_by == loop.POLICY_STOP and early[0].steps < meta.episode_steps


def test_policy_stop_rule_is_validated():
    for move_m, steps in ((0.0, 3), (float("nan"), 3), (0.003, 0)):
        with pytest.raises(contract.DeployError, match="policy stop") as err:
            loop.PolicyStop(move_m, steps)
        assert "\n" not in str(err.value)


def test_summary_names_the_episode_definition_and_compares_with_the_in_sim_eval(meta_dict, meta):
    with_eval = policy_lib.parse_metadata(json.dumps(changed(meta_dict, "eval", IN_SIM_EVAL)))
    goal = np.zeros(3)
    results = [
        loop.EpisodeResult(goal, goal + [d, 0.0, 0.0], d, goal, meta.episode_steps, loop.STEP_LIMIT)
        for d in (0.01, 0.03, 0.06, 0.015)
    ]
    full = loop.summary(results, with_eval, loop.Options(max_steps=meta.episode_steps, policy_stop=None))
    assert full["episode_definition"] == loop.FULL_EPISODE and full["like_with_like"] is True
    assert full["deploy"] == {
        "episodes": 4,
        "success_2cm": 0.5,
        "success_5cm": 0.75,
        "mean_final_distance_m": pytest.approx(0.02875),
        "ended_by": {loop.STEP_LIMIT: 4},
    }
    assert full["in_sim"] == {"episode_definition": loop.FULL_EPISODE, **IN_SIM_EVAL}
    text = loop.format_summary(full)
    assert text.startswith("episodes: full episode") and "like with like" in text
    assert [line.split()[:4] for line in text.splitlines()[2:4]] == [
        ["deploy", "4", "0.50", "0.75"],
        ["in-sim", "128", "0.44", "0.94"],
    ]
    stopped_early = [*results[:-1], dataclasses.replace(results[-1], steps=7, ended_by=loop.POLICY_STOP)]
    for runs, options, definition in (
        (stopped_early, loop.Options(max_steps=meta.episode_steps), loop.POLICY_STOP),
        (results, loop.Options(max_steps=10, policy_stop=None), "10 steps"),
    ):
        other = loop.summary(runs, with_eval, options)
        assert other["episode_definition"] == definition and other["like_with_like"] is False
        assert "not the in-sim definition" in other["note"] and other["note"] in loop.format_summary(other)
    never_stopped = loop.summary(results, with_eval, loop.Options(max_steps=meta.episode_steps))
    assert never_stopped["episode_definition"] == loop.POLICY_STOP and never_stopped["like_with_like"] is True
    assert never_stopped["note"].endswith("(no episode stopped early)")
    assert meta.raw["eval"] is None
    bare = loop.summary([], meta, loop.Options(max_steps=meta.episode_steps, policy_stop=None))
    assert bare["deploy"] == {"episodes": 0} and bare["in_sim"] is None and not bare["like_with_like"]
    assert "no in-sim evaluation" in loop.format_summary(bare)


def test_loop_stacks_two_cameras_in_order_and_logs_both(meta2, tmp_path):
    arm = FakeArm(meta2.home_m)
    results, cause, _ = run_fake(meta2, tmp_path, arm, [FakeCamera(level=40), FakeCamera(level=200)])
    assert cause is None and results[0].ended_by == loop.POLICY_STOP
    log = np.load(tmp_path / "logs" / "episode_000.npz")
    assert log["image"].shape[1:] == (84, 84, 6)
    assert np.all(log["image"][..., :3] == 40) and np.all(log["image"][..., 3:] == 200)
    assert np.all(log["raw_frames"] == 40) and np.all(log["raw_frames_2"] == 200)
    assert log["raw_frames_2"].shape == (1, 480, 640, 3)
    np.testing.assert_allclose(log["intrinsics_2"], D435.to_array())
    assert loop.side_by_side(log["image"]).shape[1:] == (84, 168, 3)


def test_two_camera_loop_guards_each_view_and_closes_every_camera(meta2, tmp_path):
    out_of_view_2 = np.array([0.4, -0.8, 0.3])  # in camera 1's view, outside camera 2's
    view = loop.view_guard(meta2)
    view.guards[0].check(out_of_view_2, "ee")
    arm = FakeArm(meta2.home_m, fault_after=2, fault=lambda a: setattr(a, "pos", out_of_view_2))
    cameras = [FakeCamera(level=40), FakeCamera(level=200)]
    _, cause, _ = run_fake(meta2, tmp_path, arm, cameras)
    assert "measured ee" in cause and "leave the camera 2 image" in cause and arm.stops >= 1
    assert all(c.closed for c in cameras) and arm.closed
    arm, cameras = FakeArm(meta2.home_m), [FakeCamera(level=40), FakeCamera(fail_at=2, level=200)]
    _, cause, _ = run_fake(meta2, tmp_path, arm, cameras)
    assert "no colour frame" in cause and cameras[1].reads == 2 and arm.stops >= 1 and all(c.closed for c in cameras)
    arm, cameras = FakeArm(meta2.home_m), [FakeCamera(level=40)]
    _, cause, _ = run_fake(meta2, tmp_path, arm, cameras)
    assert "takes 2 camera(s), 1 were opened" in cause and arm.moves == [] and cameras[0].closed


# --- CLI --------------------------------------------------------------------------------------------
def test_cli_refuses_widening_and_bad_models_in_one_line(tmp_path, meta_dict, capsys):
    model = tiny_onnx(tmp_path / "a.onnx", meta_dict)
    bench = tmp_path / "bench.json"
    cam = Config().env.camera
    bench.write_text(json.dumps({"camera": {"pos": cam.pos, "lookat": cam.lookat}}))
    real = ["--ip", "10.0.0.1", "--bench", str(bench), "--goal", "0.4", "0.0", "0.2"]
    assert deploy_main([str(model), *real, "--box-high", "0.7", "0.2", "0.36", "--dry-run"]) == 1
    assert deploy_main([str(model), *real, "--max-step-m", "0.05", "--dry-run"]) == 1
    assert (
        deploy_main([str(tiny_onnx(tmp_path / "b.onnx", changed(meta_dict, "image.width", 64))), *real, "--dry-run"])
        == 1
    )
    assert deploy_main([str(model), "--goal", "0.4", "0.0", "0.2", "--dry-run"]) == 1  # real arm without --ip/--bench
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors)
    assert "widen" in errors[0] and "max step" in errors[1] and "input 'image'" in errors[2] and "--ip" in errors[3]


def test_cli_dry_run_prints_the_plan_and_moves_nothing(tmp_path, meta_dict, capsys):
    model = tiny_onnx(tmp_path / "a.onnx", meta_dict)
    bench = tmp_path / "bench.json"
    cam = Config().env.camera
    bench.write_text(
        json.dumps({"camera": {"pos": cam.pos, "lookat": cam.lookat}, "image": {"height": 84, "width": 84}})
    )
    goals = tmp_path / "goals.txt"
    goals.write_text("0.45 0.05 0.20\n0.30 -0.10 0.30\n")
    code = deploy_main(
        [
            str(model),
            "--ip",
            "10.0.0.1",
            "--bench",
            str(bench),
            "--goals-file",
            str(goals),
            "--random-goals",
            "2",
            "--box-low",
            "0.3",
            "-0.15",
            "0.1",
            "--dry-run",
        ]
    )
    plan = json.loads(capsys.readouterr().out)
    assert code == 0 and len(plan["goals"]) == 4 and plan["box_low"] == [0.3, -0.15, 0.1]
    assert all(
        np.all(np.array(g) >= plan["box_low"]) and np.all(np.array(g) <= plan["box_high"]) for g in plan["goals"]
    )


def test_cli_prints_the_cause_of_a_stop(tmp_path, meta_dict, meta, capsys, monkeypatch):
    """A camera that stops streaming mid-episode: the CLI stops the arm, prints the cause on one
    line and exits 1, and the summary records it."""
    arm, camera = FakeArm(meta.home_m), FakeCamera(fail_at=2)
    monkeypatch.setattr("deploy.__main__.open_devices", lambda args, pol, serials: ([camera], arm))
    summary = tmp_path / "summary.json"
    code = deploy_main(
        [
            str(tiny_onnx(tmp_path / "a.onnx", meta_dict)),
            "--twin",
            "--goal",
            "0.45",
            "0.0",
            "0.2",
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
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and arm.stops >= 1 and len(arm.joint_moves) == 1 and len(arm.moves) == 2  # home, two steps
    assert err[-1].startswith("stopped: no colour frame from the RealSense")
    assert json.loads(summary.read_text())["stopped"] == err[-1].removeprefix("stopped: ")


def test_cli_summary_states_the_episode_definition_next_to_the_in_sim_eval(
    tmp_path, meta_dict, meta, capsys, monkeypatch
):
    """By default episodes may end by policy stop (the tiny policy never holds still, so none does and
    the summary says its figures are the full episode's); ``--full-episode`` runs the model's
    ``episode_steps``; a shorter ``--max-steps`` is not the in-sim definition. Each prints the model's
    in-sim figures next to its own and writes them to ``--summary-json``."""
    model = tiny_onnx(tmp_path / "a.onnx", changed(changed(meta_dict, "episode_steps", 3), "eval", IN_SIM_EVAL))
    path = tmp_path / "summary.json"
    common = ["--twin", "--goal", "0.45", "0.0", "0.2", "--drift-warn-m", "10", "--drift-stop-m", "10"]
    for flags, definition, like in (
        ([], loop.POLICY_STOP, True),
        (["--max-steps", "2"], loop.POLICY_STOP, False),
        (["--full-episode"], loop.FULL_EPISODE, True),
    ):
        arm = FakeArm(meta.home_m)
        monkeypatch.setattr("deploy.__main__.open_devices", lambda args, pol, serials, arm=arm: ([FakeCamera()], arm))
        logs = ["--log-dir", str(tmp_path / "logs"), "--summary-json", str(path)]
        assert deploy_main([str(model), *common, *logs, *flags]) == 0
        out = capsys.readouterr().out
        summary = json.loads(path.read_text())
        assert summary["episode_definition"] == definition and summary["like_with_like"] is like
        assert summary["in_sim"]["success_2cm"] == IN_SIM_EVAL["success_2cm"] and summary["in_sim_eval"] == IN_SIM_EVAL
        assert f"episodes: {definition}" in out and summary["note"] in out
    assert len(arm.joint_moves) == 1 and len(arm.moves) == 3  # the full episode: home, then episode_steps moves
    assert deploy_main([str(model), *common, "--stop-steps", "0", "--dry-run"]) == 1
    assert capsys.readouterr().err.strip().startswith("error: policy stop")


def test_deploy_imports_no_jax_mujoco_or_flax():
    code = (
        "import sys, deploy.__main__, deploy.loop, deploy.policy, deploy.safety, deploy.arm, deploy.bench, deploy.camera, deploy.calibrate; "
        "heavy = [m for m in ('jax', 'mujoco', 'flax', 'mjx_reach.config', 'mjx_reach.env') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_fresh_deploy_only_venv(tmp_path, meta_dict):
    """``pip install -e ".[deploy]"`` into a fresh venv: the CLI works, the policy runs, and JAX /
    MuJoCo are absent. Needs PyPI (or a warm pip cache); fails loudly without it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", f"{REPO}[deploy]"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert pip.returncode == 0, f"pip install -e .[deploy] failed (network/PyPI needed):\n{pip.stderr[-3000:]}"
    help_ = subprocess.run(
        [str(py), "-m", "deploy", "--help"], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert help_.returncode == 0 and "--twin" in help_.stdout and "--box-low" in help_.stdout
    marker = subprocess.run(
        [str(py), "-m", "deploy", "calibrate", "--print-marker", "m.png"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert marker.returncode == 0 and (tmp_path / "m.png").is_file(), marker.stderr[-2000:]
    for heavy in ("jax", "mujoco", "flax"):
        probe = subprocess.run(
            [str(py), "-c", f"import {heavy}"], capture_output=True, text=True, cwd=tmp_path, check=False
        )
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr
    model = tiny_onnx(tmp_path / "a.onnx", meta_dict)
    step = (
        "import numpy as np; from deploy.policy import Policy; from deploy.camera import RealSenseCamera; "
        f"from mjx_reach.camera import Intrinsics; p = Policy({str(model)!r}); "
        "img = p.preprocess(np.zeros((480, 640, 3), np.uint8), Intrinsics(640, 480, 615.0, 615.0, 320.0, 240.0)); "
        "a, e = p(img, [0.4, 0.0, 0.2]); print(a.shape, e.shape)"
    )
    run = subprocess.run([str(py), "-c", step], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "(3,) (3,)", run.stderr[-2000:]


# --- the digital twin ---------------------------------------------------------------------------------
TWIN_GOALS = 8
TWIN_SLACK = 0.10
"""Allowed systematic twin-vs-sim difference in success rate (the twin renders the nominal scene at
640x480 through the camera model and starts at home; the in-sim eval renders 84x84 under domain
randomization from home plus joint noise), on top of the binomial sampling margin."""


def agreement_margin(p_a: float, n_a: int, p_b: float, n_b: int) -> float:
    """``TWIN_SLACK`` + 3 standard errors of the difference of two success rates (pooled)."""
    pooled = (p_a * n_a + p_b * n_b) / (n_a + n_b)
    return TWIN_SLACK + 3.0 * math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))


def exported_model(run: pathlib.Path, tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("twin") / "actor.onnx"
    export.export(run, path, check_envs=1)
    return path


@pytest.fixture(scope="module")
def twin_model(tiny_run, tmp_path_factory) -> pathlib.Path:
    """The ONNX of a tiny run: the twin's interfaces, guards and benches need no trained policy."""
    return exported_model(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def trained_model(trained_run, tmp_path_factory) -> pathlib.Path:
    return exported_model(trained_run, tmp_path_factory)


@pytest.fixture(scope="module")
def twin_world(twin_model):
    from mjx_reach.standins import twin

    return twin.TwinWorld.from_metadata(policy_lib.Policy(twin_model).meta.raw)


def test_twin_arm_and_camera_interfaces(twin_world):
    from mjx_reach.standins import twin

    arm, cam = twin.TwinArm(twin_world), twin.TwinCamera(twin_world)
    with pytest.raises(ArmError, match="not connected"):
        arm.position()
    arm.connect()
    for target in ([0.45, 0.10, 0.15], [0.30, -0.12, 0.30]):
        arm.move_to(target)
        assert np.linalg.norm(arm.position() - target) < twin.SETTLE_TOLERANCE_M
    frame, intr = cam.read()
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8 and frame.std() > 10
    assert intr == camera_model.intrinsics_for_fovy(Config().env.camera.fovy_deg, 480, 640)
    cam.close()
    with pytest.raises(CameraError):
        cam.read()


def test_twin_episodes_all_start_from_the_home_joints(twin_world, twin_model, tmp_path):
    """Every episode's first step sees the arm at the model's home joints (``scene.HOME_QPOS``, where
    training starts), however far the previous episode moved them: the joint-space home move leaves
    no drift in the redundant arm's null space."""
    from mjx_reach import scene as scene_lib
    from mjx_reach.standins import twin

    pol = policy_lib.Policy(twin_model)
    meta = pol.meta
    seen: list[np.ndarray] = []

    class JointRecordingCamera(twin.TwinCamera):
        def read(self):
            seen.append(self.world.joints())
            return super().read()

    class TowardsTheGoal:
        """Full steps towards the goal (so every episode leaves home), seeing the ee exactly."""

        def __init__(self):
            self.meta, self.preprocess = meta, pol.preprocess

        def __call__(self, image, goal):
            return np.sign(goal - twin_world.tcp()), twin_world.tcp()

    steps, goals = 3, [[0.30, -0.15, 0.12], [0.52, 0.15, 0.30], [0.35, 0.12, 0.15]]
    lim = safety.Limits(meta.workspace_low, meta.workspace_high, meta.max_step_m)
    options = loop.Options(max_steps=steps, policy_stop=None)
    results, cause = loop.run(
        TowardsTheGoal(),
        [JointRecordingCamera(twin_world)],
        twin.TwinArm(twin_world),
        goals,
        lim,
        loop.view_guard(meta),
        options,
        tmp_path,
        say=lambda _: None,
    )
    assert cause is None and len(results) == len(goals) and len(seen) == len(goals) * (steps + 1)
    home = np.asarray(scene_lib.HOME_QPOS)
    np.testing.assert_allclose(meta.home_joints_rad, home)
    np.testing.assert_allclose(seen[:: steps + 1], np.tile(home, (len(goals), 1)), atol=1e-6)
    assert all(np.max(np.abs(joints - home)) > 0.02 for joints in seen[steps :: steps + 1])  # each left home


def test_twin_runs_on_the_cluttered_bench(twin_model, tmp_path):
    """``python -m deploy ... --twin --twin-bench clutter``: the episodes run on the cluttered twin
    bench (held-out objects, poster, wall pattern and figure: ``robustness.twin_bench``), whose
    frames differ from the plain twin's around the arm; an unknown bench is refused by the parser."""
    for bench in ("plain", "clutter"):
        args = [str(twin_model), "--twin", "--twin-bench", bench, "--random-goals", "1", "--seed", "3"]
        args += ["--drift-warn-m", "10", "--drift-stop-m", "10", "--log-dir", str(tmp_path / bench)]
        assert deploy_main(args + ["--summary-json", str(tmp_path / f"{bench}.json")]) == 0
        assert json.loads((tmp_path / f"{bench}.json").read_text())["deploy"]["episodes"] == 1
    first = {b: np.load(next((tmp_path / b).glob("episode_*.npz")))["raw_frames"][0] for b in ("plain", "clutter")}
    assert np.mean(np.abs(first["plain"].astype(int) - first["clutter"]).max(axis=-1) > 40) > 0.2
    with pytest.raises(SystemExit):
        deploy_main([str(twin_model), "--twin", "--twin-bench", "kitchen", "--random-goals", "1"])


def test_twin_controller_error_stops_the_loop(twin_world, twin_model, tmp_path):
    from mjx_reach.standins import twin

    class FaultyTwinArm(twin.TwinArm):
        moves = 0

        def move_to(self, target):
            super().move_to(target)
            self.moves += 1
            if self.moves == 3:
                self.error = "C31 collision detected"

    pol = policy_lib.Policy(twin_model)
    arm = FaultyTwinArm(twin_world)
    lim = safety.Limits(pol.meta.workspace_low, pol.meta.workspace_high, pol.meta.max_step_m)
    options = loop.Options(max_steps=10, policy_stop=None, drift=safety.DriftLimits(10.0, 10.0, 1))
    results, cause = loop.run(
        pol,
        twin.cameras(twin_world),
        arm,
        [[0.45, 0.05, 0.2]],
        lim,
        loop.view_guard(pol.meta),
        options,
        tmp_path,
        say=lambda _: None,
    )
    assert results == [] and "controller error: C31 collision detected" in cause and arm.stopped


@pytest.mark.slow  # the trained run
def test_twin_success_agrees_with_in_sim_eval(trained_run, trained_model, tmp_path, capsys):
    """The trained policy through the full deploy loop on the twin (``python -m deploy --twin``)
    reaches as often as the in-sim evaluation of the same checkpoint says (eval.json), within
    ``agreement_margin``. Episodes run the training episode length (no early stop, like the eval),
    and the drift guard is opened wide: this compares the policy, not the guard."""
    summary_path = tmp_path / "summary.json"
    code = deploy_main(
        [
            str(trained_model),
            "--twin",
            "--random-goals",
            str(TWIN_GOALS),
            "--seed",
            "7",
            "--full-episode",
            "--drift-warn-m",
            "10",
            "--drift-stop-m",
            "10",
            "--log-dir",
            str(tmp_path / "logs"),
            "--summary-json",
            str(summary_path),
        ]
    )
    assert code == 0
    summary = json.loads(summary_path.read_text())
    twin, sim = summary["deploy"], json.loads((trained_run / "eval.json").read_text())
    assert twin["episodes"] == TWIN_GOALS and summary["in_sim_eval"] == sim
    assert summary["episode_definition"] == loop.FULL_EPISODE and summary["like_with_like"] is True
    assert (
        twin["ended_by"] == {loop.STEP_LIMIT: TWIN_GOALS}
        and summary["max_steps"] == policy_lib.Policy(trained_model).meta.episode_steps
    )
    assert len(list((tmp_path / "logs").glob("episode_*.npz"))) == TWIN_GOALS
    with capsys.disabled():
        print(
            f"\ntwin ({TWIN_GOALS} goals) vs in-sim eval ({sim['episodes']} episodes): "
            f"success@2cm {twin['success_2cm']:.2f} vs {sim['success_2cm']:.2f}, success@5cm {twin['success_5cm']:.2f} vs "
            f"{sim['success_5cm']:.2f}, mean final distance {twin['mean_final_distance_m']:.3f} vs {sim['mean_final_distance_m']:.3f} m"
        )
    for key in ("success_2cm", "success_5cm"):
        margin = agreement_margin(twin[key], TWIN_GOALS, sim[key], sim["episodes"])
        assert abs(twin[key] - sim[key]) <= margin, (
            f"{key}: twin {twin[key]:.2f} vs in-sim {sim[key]:.2f} (margin {margin:.2f})"
        )


def test_deploy_step_benchmark_writes_json(tmp_path, meta_dict):
    """``benchmarks/deploy_step.py`` runs on an exported model and writes its JSON (timings > 0)."""
    out = tmp_path / "bench.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "deploy_step.py"),
            "--onnx",
            str(tiny_onnx(tmp_path / "a.onnx", meta_dict)),
            "--iterations",
            "20",
            "--warmup",
            "2",
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert result["frame"] == [480, 640, 3] and result["image"] == [84, 84, 3]
    assert all(result["results"][k]["median"] > 0 for k in ("preprocess_ms", "policy_ms", "step_ms"))
