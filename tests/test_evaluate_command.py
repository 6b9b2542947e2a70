"""``python evaluate.py``: a finished run evaluated again, without training. As trained it must
reproduce the run's own ``eval.json`` (same checkpoint, same held-out episodes, same benches) and
leave that file alone; changes are limited to what an evaluation varies and recorded; bad input is
one line."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys

import pytest

from mjx_reach import cli
from mjx_reach import config as config_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import evaluate  # noqa: E402  (the script at the repository root)


def _close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-9)


def test_a_finished_run_evaluated_as_trained_reproduces_its_eval_json(tiny_run, tmp_path, capsys):
    trained_eval = (tiny_run / "eval.json").read_bytes()
    out = tmp_path / "again.json"
    assert cli.run_main(evaluate.evaluate, [str(tiny_run), "--out", str(out)]) == 0
    again, trained = json.loads(out.read_text()), json.loads(trained_eval)
    assert (tiny_run / "eval.json").read_bytes() == trained_eval
    assert again["config_changes"] == {} and again["env_steps"] == trained["env_steps"]
    assert again["episodes"] == trained["episodes"]
    for field in ("success_2cm", "success_5cm", "oracle_success_2cm", "encoder_ee_error_median_m"):
        assert _close(again[field], trained[field]), field
    assert set(again["robustness"]) == set(trained["robustness"])
    for bench, outcome in trained["robustness"].items():
        for field, value in outcome.items():
            assert _close(again["robustness"][bench][field], value), (bench, field)
    printed = capsys.readouterr().out
    assert "config as trained" in printed and str(out) in printed and "again.json 'robustness'" in printed


def test_evaluation_settings_may_change_and_are_recorded():
    saved = config_lib.preset("quick")
    cfg = dataclasses.replace(
        saved,
        seed=saved.seed + 1,
        train=dataclasses.replace(saved.train, eval_envs=64),
        randomization=dataclasses.replace(saved.randomization, cam_rot_eval_deg=1.0),
    )
    assert evaluate.evaluation_changes(saved, cfg) == {
        "seed": saved.seed + 1,
        "randomization.cam_rot_eval_deg": 1.0,
        "train.eval_envs": 64,
    }


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("agent", "batch_size", 7, "--agent.batch-size: not an evaluation setting"),
        ("train", "total_env_steps", 7, "--train.total-env-steps: not an evaluation setting"),
        ("env", "image_size", (64, 64), "the policy takes (84, 84, 3) images"),
        ("env", "depth", True, "the policy takes (84, 84, 3) images"),
    ],
)
def test_what_shapes_or_trains_the_policy_cannot_change(section, field, value, message):
    saved = config_lib.preset("quick")
    cfg = dataclasses.replace(saved, **{section: dataclasses.replace(getattr(saved, section), **{field: value})})
    with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate.evaluation_changes(saved, cfg)


def test_bad_input_is_one_line_and_writes_nothing(tiny_run, tmp_path, capsys):
    trained_eval = (tiny_run / "eval.json").read_bytes()
    cases = [
        ([str(tmp_path / "missing")], "is not a run folder", 1),
        ([str(tiny_run), "--out", str(tiny_run / "eval.json")], "the run's own eval.json", 2),
        ([str(tiny_run), "--agent.batch-size", "7"], "not an evaluation setting", 2),
    ]
    for argv, message, status in cases:
        assert cli.run_main(evaluate.evaluate, argv) == status
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert (tiny_run / "eval.json").read_bytes() == trained_eval
    assert not (tiny_run / "evaluate.json").exists()
