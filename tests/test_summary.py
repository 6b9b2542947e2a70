"""The end-of-run summaries (``mjx_reach.summary``): the figures of the run's dicts appear, the
misses are attributed to perception or control by the oracle, missing fields read as n/a, and the
next commands name the run folder with flags the CLIs accept."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from mjx_reach import summary

EVAL = {
    "episodes": 256,
    "success_2cm": 0.8125,
    "success_5cm": 1.0,
    "mean_final_distance_m": 0.0138,
    "encoder_ee_error_median_m": 0.0047,
    "encoder_error_depth_median_m": 0.0091,
    "oracle_success_2cm": 1.0,
    "env_steps": 48000,
    "target_success": 0.95,
    "time_to_success_2cm_s": None,
}


def test_train_summary_shows_the_figures_the_target_and_the_run_folder():
    text = summary.train_summary(EVAL, "runs/default-1", wall_s=1518.0)
    assert len(text.splitlines()) <= 8
    for figure in ("0.81", "1.00", "256 episodes", "0.95", "1.4 cm", "4.7 mm", "9.1 mm", "25.3 min", "48,000"):
        assert figure in text, figure
    assert "not reached" in text
    assert "runs/default-1" in text.splitlines()[3]


def test_time_to_target_is_reported_when_reached():
    text = summary.train_summary(EVAL | {"success_2cm": 0.96, "time_to_success_2cm_s": 754.0}, "r")
    assert "target 0.95 reached after 12.6 min" in text


@pytest.mark.parametrize(
    ("success", "oracle", "source"),
    [
        (0.81, 1.00, "perception"),  # the true position reaches what the encoder misses
        (0.40, 0.45, "control"),  # the actor misses with the true position too
        (0.00, 0.00, "control"),  # an untrained actor
        (0.60, 0.90, "perception"),
        (1.00, 1.00, None),  # no misses
        (0.80, None, None),  # no oracle
    ],
)
def test_misses_are_perception_when_the_oracle_reaches_them(success, oracle, source):
    assert summary.misses_source(success, oracle) == source
    line = summary.misses_line({"success_2cm": success, "oracle_success_2cm": oracle})
    assert "\n" not in line
    if source is not None:
        assert f"oracle {oracle:.2f} @2 cm: misses are {source}" in line


def test_missing_fields_read_as_not_available():
    text = summary.train_summary({"success_2cm": 0.5}, "runs/x")
    assert "no oracle" in text and "n/a" in text and "runs/x" in text
    assert summary.train_summary({}, "runs/x", wall_s=None).count("n/a") >= 4
    assert "NaN" not in summary.train_summary({"success_2cm": float("nan"), "episodes": None}, "runs/x")


def test_next_commands_name_the_run_folder_and_parse():
    """The printed export and deploy commands take the run folder (quoted when it has a space) and
    are accepted by the real parsers."""
    from deploy.__main__ import parser as deploy_parser

    run = "/tmp/my runs/default-1"
    lines = summary.train_summary(EVAL, run, python=".venv/bin/python").splitlines()
    export_cmd = shlex.split(lines[-2].removeprefix("next:"))
    deploy_cmd = shlex.split(lines[-1])
    assert export_cmd[:3] == [".venv/bin/python", "export.py", run]
    assert deploy_cmd[:4] == [".venv/bin/python", "-m", "deploy", f"{run}/actor.onnx"]
    args = deploy_parser().parse_args(deploy_cmd[3:])
    assert args.twin and args.random_goals == summary.DEPLOY_TWIN_GOALS


def test_pretrain_summary_shows_the_held_out_error_and_the_train_command():
    result = {
        "train_images": 8000,
        "held_out_images": 512,
        "updates": 3000,
        "held_out_ee_error_median_m": 0.0129,
        "held_out_ee_error_p90_m": 0.031,
        "held_out_error_image_x_median_m": 0.0034,
        "held_out_error_image_y_median_m": 0.0038,
        "held_out_error_depth_median_m": 0.0100,
    }
    text = summary.pretrain_summary(result, "runs/encoder", wall_s=300.0)
    for figure in ("12.9 mm", "3.4 mm / 3.8 mm / 10.0 mm", "31.0 mm", "512", "8,000", "3,000", "5.0 min"):
        assert figure in text, figure
    assert text.splitlines()[-1] == "next: python train.py --init-encoder runs/encoder/encoder"


def test_compare_summary_has_one_line_per_preset_and_the_paths():
    text = summary.compare_summary(
        {"best": EVAL, "depth": None}, ["runs/c/best", "runs/c/depth"], "runs/c/compare.md", "runs/c/compare.png"
    )
    lines = text.splitlines()
    assert lines[0].startswith("best: success@2 cm 0.81") and "runs/c/best" in lines[0]
    assert lines[1] == "depth: no eval.json (runs/c/depth)"
    assert lines[2:] == ["table: runs/c/compare.md", "figure: runs/c/compare.png"]


def test_python_command_is_relative_inside_the_working_directory(tmp_path):
    assert summary.python_command(str(tmp_path / ".venv/bin/python"), tmp_path) == ".venv/bin/python"
    assert summary.python_command("/usr/bin/python3", tmp_path) == "python"


def test_summary_imports_no_jax():
    code = "import sys, mjx_reach.summary; assert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_progress_bar_shows_the_last_held_out_success():
    from mjx_reach import training

    chunk = {"env_steps_per_s": 31.0, "success": 0.25}
    assert "eval@2cm" not in training.progress_postfix(chunk, None)
    assert training.progress_postfix(chunk, {"success_2cm": 0.8125})["eval@2cm"] == "0.81"


def test_robustness_line_names_the_worst_held_out_bench():
    result = dict(
        EVAL,
        robustness={
            "objects": {"success_2cm": 0.81, "success_5cm": 1.0},
            "poster": {"success_2cm": 0.62, "success_5cm": 0.97},
            "tilt_1deg": {"success_2cm": 0.70, "success_5cm": 0.99},
        },
    )
    text = summary.train_summary(result, "runs/x")
    line = next(line for line in text.splitlines() if line.startswith("held-out benches"))
    assert "(3," in line and "worst poster 0.62 @2 cm, 0.97 @5 cm" in line
    assert summary.robustness_line(EVAL) is None
