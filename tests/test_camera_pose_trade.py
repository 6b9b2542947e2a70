"""``benchmarks/camera_pose_trade.py`` on the session's trained run (so the script cannot rot): the
cases it claims, the record it writes, and a camera turned off its pose costing the encoder."""

import json
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # needs the trained run: what a camera off its pose costs a trained encoder

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_trade_evaluates_the_camera_at_and_off_its_pose(trained_run, tmp_path):
    record_path = tmp_path / "trade.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "camera_pose_trade.py"), str(trained_run)]
    done = subprocess.run(
        [*cmd, "--offsets-deg", "2", "--json", str(record_path)], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(record_path.read_text())
    config = json.loads((trained_run / "config.json").read_text())
    assert record["offsets_deg"] == [0.0, 2.0] and record["episodes"] == config["train"]["eval_envs"]
    (run,) = record["runs"]
    assert run["train_cam_rot_deg"] == config["randomization"]["cam_rot_deg"]
    cases = run["cases"]
    assert list(cases) == ["0deg", "tilt_2deg", "pan_2deg"]
    for case in cases.values():
        assert 0 <= case["success_2cm"] <= case["success_5cm"] <= 1
    assert cases["tilt_2deg"]["encoder_ee_error_median_m"] > cases["0deg"]["encoder_ee_error_median_m"]
    assert cases["pan_2deg"]["encoder_ee_error_median_m"] > cases["0deg"]["encoder_ee_error_median_m"]
    assert "| ±" in done.stdout and "tilt_2deg @2 / @5 cm" in done.stdout
