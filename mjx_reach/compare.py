"""Train several presets and draw their learning curves in one figure.

    python -m mjx_reach.compare --presets best no-bottleneck depth --total-steps 200000 --out runs/compare

Each preset trains into ``OUT/<preset>/`` with ``training.run``; a folder that already holds
``eval.json`` is finished and is reused as it is (re-running only redraws), one with checkpoints but
no ``eval.json`` is resumed. Then ``OUT/compare.png`` (``plot_runs``) and ``OUT/compare.json`` /
``OUT/compare.md`` (``eval_table``: each run's final ``eval.json``) are written, and one line per
preset with the table's and the figure's paths is printed (``summary.compare_summary``).

The figure: success@5 cm (``success_loose``, solid) and success@2 cm (``success``, dashed) of the
training episodes that ended in each chunk, against env steps and against wall-clock seconds, and
the encoder's end-effector error (``ee_error``, metres) of the sampled replay batches below them.
Per-chunk success is noisy, so every curve is a rolling mean over ``smooth`` chunks (stated in the
figure's title).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import sys
from collections.abc import Sequence

from mjx_reach import preallocation

preallocation.disable()

import numpy as np

from mjx_reach import cli, runs, summary, training
from mjx_reach import config as config_lib

FIG_SIZE_IN = (12.0, 8.0)
"""Figure (width, height), inches."""
DPI = 100
"""PNG pixels per inch: the PNG is ``FIG_SIZE_IN * DPI`` pixels."""
SMOOTH_CHUNKS = 10
"""Default rolling-mean window, chunks."""
SUCCESS_COLUMNS = (("success_loose", "success@5 cm", "-"), ("success", "success@2 cm", "--"))
"""(metrics.csv column, label, line style) of the success curves."""
X_AXES = (("env_steps", "env steps"), ("wall_s", "wall-clock s"))
"""(metrics.csv column, axis label) of the figure's two columns."""
TABLE_FIELDS = (
    "success_2cm",
    "success_5cm",
    "mean_final_distance_m",
    "encoder_ee_error_m",
    "encoder_error_image_x_median_m",
    "encoder_error_image_y_median_m",
    "encoder_error_depth_median_m",
    "oracle_success_2cm",
    "episodes",
)
"""``eval.json`` fields in the markdown table, in order."""


def rolling_mean(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, mean of the last ``window`` finite ``y`` values) at each point where both are finite;
    the first points average over what exists so far."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    sums = np.cumsum(np.concatenate([[0.0], y]))
    idx = np.arange(1, len(y) + 1)
    start = np.maximum(idx - window, 0)
    return x, (sums[idx] - sums[start]) / (idx - start)


def plot_runs(
    run_dirs: Sequence[str | os.PathLike],
    out_png: str | os.PathLike,
    smooth: int = SMOOTH_CHUNKS,
    labels: Sequence[str] | None = None,
) -> pathlib.Path:
    """Draw the runs' curves (module docstring) into ``out_png`` (written atomically), labelled with
    ``labels`` (default: the folder names). Runs or columns without data are left out of a panel
    (a panel with none says so). Reads only ``metrics.csv``; returns ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if smooth < 1:
        raise config_lib.ConfigError(f"smooth: must be >= 1 chunk, got {smooth}")
    run_dirs = [pathlib.Path(d) for d in run_dirs]
    labels = list(labels) if labels is not None else [d.name for d in run_dirs]
    fig, axes = plt.subplots(2, len(X_AXES), figsize=FIG_SIZE_IN, dpi=DPI, sharex="col")
    drawn = np.zeros(axes.shape, bool)
    for i, (run_dir, label) in enumerate(zip(run_dirs, labels)):
        metrics, color = runs.read_metrics(run_dir), f"C{i}"
        for col, (x_key, _) in enumerate(X_AXES):
            if x_key not in metrics:
                continue
            for key, name, style in SUCCESS_COLUMNS:
                if key in metrics:
                    axes[0, col].plot(
                        *rolling_mean(metrics[x_key], metrics[key], smooth), style, color=color, label=f"{label} {name}"
                    )
                    drawn[0, col] = True
            if "ee_error" in metrics:
                axes[1, col].plot(*rolling_mean(metrics[x_key], metrics["ee_error"], smooth), color=color, label=label)
                drawn[1, col] = True
    for col, (_, x_label) in enumerate(X_AXES):
        axes[0, col].set_ylabel("training success rate")
        axes[0, col].set_ylim(-0.02, 1.02)
        axes[1, col].set_ylabel("encoder ee error (m, log scale)")
        axes[1, col].set_xlabel(x_label)
        if drawn[1, col]:
            axes[1, col].set_yscale("log")  # runs without the bottleneck err by metres, the others by cm
        for row in range(2):
            ax = axes[row, col]
            ax.grid(alpha=0.3)
            if drawn[row, col]:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(
        f"Training curves: rolling mean over {smooth} chunks (episodes ending in each chunk; ee error of sampled batches)"
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    out_png = pathlib.Path(out_png)
    runs.atomic_write(out_png, buf.getvalue())
    return out_png


def eval_table(run_dirs: Sequence[str | os.PathLike]) -> tuple[dict, str]:
    """({folder name: its eval.json, or None when missing}, the same as a markdown table)."""
    results = {}
    for d in map(pathlib.Path, run_dirs):
        path = d / "eval.json"
        results[d.name] = json.loads(path.read_text()) if path.exists() else None
    lines = ["| run | " + " | ".join(TABLE_FIELDS) + " |", "|---|" + "---:|" * len(TABLE_FIELDS)]
    for name, result in results.items():
        cells = ["—" if result is None or k not in result else f"{result[k]:.4g}" for k in TABLE_FIELDS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return results, "\n".join(lines) + "\n" + robustness_table(results)


def robustness_table(results: dict) -> str:
    """The runs' held-out benches (``eval.json``'s ``robustness`` block) as a markdown table: one row
    per run, per bench ``success@2 cm / @5 cm (encoder ee error median, mm)``; empty when no run has
    the block."""
    blocks = {name: (r or {}).get("robustness") for name, r in results.items()}
    benches = list(dict.fromkeys(bench for block in blocks.values() if block for bench in block))
    if not benches:
        return ""
    lines = [
        "",
        "Held-out benches: success@2 cm / @5 cm (encoder ee error median, mm)",
        "",
        "| run | plain | " + " | ".join(benches) + " |",
        "|---|" + "---:|" * (len(benches) + 1),
    ]
    cell = lambda r: (
        "—"
        if r is None
        else f"{r['success_2cm']:.2f} / {r['success_5cm']:.2f} ({r['encoder_ee_error_median_m'] * 1e3:.0f})"
    )
    for name, block in blocks.items():
        if block:
            plain = results[name]
            lines.append(f"| {name} | {cell(plain)} | " + " | ".join(cell(block.get(b)) for b in benches) + " |")
    return "\n".join(lines) + "\n"


def preset_config(name: str, total_steps: int | None, num_envs: int | None, seed: int | None) -> config_lib.Config:
    """Preset ``name`` scaled to ``num_envs`` worlds (``config.scale_to_num_envs``) with the given
    overrides (None keeps the preset's value); ``ConfigError`` for an unknown preset or an invalid result."""
    cfg = config_lib.preset(name)
    if num_envs is not None:
        cfg = config_lib.scale_to_num_envs(cfg, num_envs)
    return config_lib.validate(config_lib.override(cfg, total_env_steps=total_steps, seed=seed))


def train_presets(
    configs: dict[str, config_lib.Config], out: pathlib.Path, progress: bool = True
) -> list[pathlib.Path]:
    """Train each ``{name: config}`` into ``out/name`` unless finished (``eval.json`` exists);
    a folder with checkpoints but no ``eval.json`` is resumed. Returns the run folders."""
    run_dirs = []
    for name, cfg in configs.items():
        run_dir = out / name
        if (run_dir / "eval.json").exists():
            changed = config_lib.changed_fields(
                json.loads((run_dir / "config.json").read_text()), config_lib.to_dict(cfg)
            )
            note = f" (trained with other {', '.join(changed)}: delete it to retrain)" if changed else ""
            print(f"{name}: reusing the finished run {run_dir}{note}", file=sys.stderr)
        else:
            resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
            print(f"{name}: {'resuming' if resume else 'training'} into {run_dir}", file=sys.stderr)
            training.run(cfg, run_dir, resume=resume, progress=progress)
        run_dirs.append(run_dir)
    return run_dirs


def write_report(run_dirs: Sequence[pathlib.Path], out: pathlib.Path, smooth: int = SMOOTH_CHUNKS) -> pathlib.Path:
    """``out/compare.png``, ``out/compare.json`` and ``out/compare.md`` for ``run_dirs``; returns the PNG."""
    results, table = eval_table(run_dirs)
    runs.atomic_write(out / "compare.json", json.dumps(results, indent=2))
    runs.atomic_write(out / "compare.md", table)
    return plot_runs(run_dirs, out / "compare.png", smooth=smooth)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["best", "no-bottleneck", "depth"],
        help=f"presets to train ({', '.join(config_lib.PRESETS)})",
    )
    parser.add_argument("--total-steps", type=int, help="env steps per run (default: the preset's)")
    parser.add_argument("--num-envs", type=int, help="parallel environments per run (default: the preset's)")
    parser.add_argument("--seed", type=int, help="seed of every run (default: the preset's)")
    parser.add_argument("--out", default="runs/compare", help="folder of the run folders and the figure")
    parser.add_argument("--smooth", type=int, default=SMOOTH_CHUNKS, help="rolling-mean window of the curves, chunks")
    args = parser.parse_args(argv)
    configs = {name: preset_config(name, args.total_steps, args.num_envs, args.seed) for name in args.presets}
    out = pathlib.Path(args.out)
    run_dirs = train_presets(configs, out)
    png = write_report(run_dirs, out, smooth=args.smooth)
    print(summary.compare_summary(eval_table(run_dirs)[0], run_dirs, out / "compare.md", png))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
