"""``benchmarks/gpu_suite.py --quick`` at tiny sizes (so the script cannot rot): every measurement
runs in its subprocess and the JSON record has the documented structure with positive, finite
figures. No timing is asserted."""

import json
import math
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 900
NUM_ENVS = 4


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def optional_positive(value) -> bool:
    """Memory figures that a backend or machine may not report (None) are positive when present."""
    return value is None or positive(value)


@pytest.mark.slow
def test_quick_suite_writes_record(tmp_path):
    out = tmp_path / "suite.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "gpu_suite.py"),
        "--quick",
        "--env-worlds",
        str(NUM_ENVS),
        "--env-steps",
        "2",
        "--repeats",
        "1",
        "--update-batches",
        "8",
        "--updates",
        "2",
        "--train-envs",
        str(NUM_ENVS),
        "--train-steps",
        "8",
        "--train-args",
        "--train.updates-per-iteration 1",
        "--json",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
    ]
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert {"date", "command", "quick", "device", "versions", "env", "update", "train"} <= set(record)
    assert record["quick"] is True and record["device"] and record["versions"]["jax"]

    assert sorted((r["num_envs"], r["mode"]) for r in record["env"]) == [
        (NUM_ENVS, "physics"),
        (NUM_ENVS, "physics+render+dr"),
    ]
    for row in record["env"]:
        assert positive(row["env_steps_per_s"]) and row["compile_s"] >= 0 and positive(row["host_peak_rss_bytes"])
        assert optional_positive(row["peak_device_bytes"]) and optional_positive(row["gpu_used_peak_bytes"])
    [update] = record["update"]
    assert update["batch_size"] == 8 and positive(update["ms_per_update"]) and positive(update["host_peak_rss_bytes"])

    train = record["train"]
    assert train["num_envs"] == NUM_ENVS and train["stopped"] in {"target", "total_steps", "time_cap"}
    for field in (
        "env_steps",
        "wall_s",
        "train_loop_s",
        "env_steps_per_s",
        "train_loop_env_steps_per_s",
        "host_peak_rss_bytes",
    ):
        assert positive(train[field]), field
    assert train["time_to_success_2cm_s"] is None or positive(train["time_to_success_2cm_s"])
    assert train["eval_curve"] and train["eval_curve"][-1]["env_steps"] == train["env_steps"]
    assert 0 <= train["eval_curve"][-1]["eval_success_2cm"] <= 1
    assert train["final_eval"]["episodes"] == NUM_ENVS and "time_to_success_2cm_s" in train["final_eval"]
    assert "| physics+render+dr |" in proc.stdout and str(out) in proc.stdout
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["suite.json"], "no temporary file is left"
