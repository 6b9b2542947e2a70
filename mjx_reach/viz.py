"""PNGs of what the policy sees: a grid of randomized policy-camera frames beside a larger
third-person view (goal marker in red) of the first world; or, with ``--benches``, one episode's
first frame on the plain bench and on each held-out bench (``robustness``), labelled.

    python -m mjx_reach.viz --out dr_grid.png --num-envs 16
    python -m mjx_reach.viz --benches --out held_out_benches.png
"""

from __future__ import annotations

import argparse

import imageio.v3 as iio

from mjx_reach import preallocation

preallocation.disable()

import jax
import numpy as np

from mjx_reach import config as config_lib
from mjx_reach import robustness
from mjx_reach.env import ReachEnv


def frames(cfg: config_lib.Config, num_envs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Policy RGB frames (N, H, W, 3) of ``num_envs`` freshly reset worlds and their overview (N, 240, 320, 3)."""
    env = ReachEnv(cfg, num_envs, overview=True)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(seed), num_envs))
    overview = jax.jit(jax.vmap(env.overview_image))(state)
    return np.asarray(state.obs["image"][..., :3]), np.asarray(overview)


def tile(images: np.ndarray, cols: int) -> np.ndarray:
    """Tile images (N, H, W, 3) into one grid image, ``cols`` per row, padding with black."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, c), images.dtype)
    for i, img in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = img
    return grid


def grid_figure(policy: np.ndarray, overview: np.ndarray, scale: int = 2) -> np.ndarray:
    """Policy frames tiled (upscaled by ``scale``) to the left of the first world's overview."""
    cols = int(np.ceil(np.sqrt(len(policy))))
    grid = tile(np.repeat(np.repeat(policy, scale, axis=1), scale, axis=2), cols)
    view = overview[0]
    height = max(grid.shape[0], view.shape[0])
    canvas = np.full((height, grid.shape[1] + 8 + view.shape[1], 3), 255, np.uint8)
    canvas[: grid.shape[0], : grid.shape[1]] = grid
    canvas[: view.shape[0], grid.shape[1] + 8 :] = view
    return canvas


def bench_frames(cfg: config_lib.Config, seed: int) -> dict[str, np.ndarray]:
    """The first policy frame (H, W, 3) of one episode (the same start everywhere) on the plain bench
    and on each held-out bench, by name."""
    env = ReachEnv(cfg, 1)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(seed), 1)
    return {
        name: np.asarray(reset(keys, spec).obs["image"][0, ..., :3])
        for name, spec in robustness.benches(cfg.randomization).items()
    }


def bench_figure(frames: dict[str, np.ndarray], path: str, cols: int = 4) -> None:
    """``frames`` in a grid, each titled with its bench's name, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(frames) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, image) in zip(axes.ravel(), frames.items()):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(name, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="dr_grid.png", help="output PNG path")
    parser.add_argument("--num-envs", type=int, default=16, help="randomized worlds in the grid")
    parser.add_argument("--preset", default="default", help=f"config preset ({', '.join(config_lib.PRESETS)})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benches", action="store_true", help="draw the plain and held-out benches instead")
    args = parser.parse_args()
    cfg = config_lib.preset(args.preset)
    if args.benches:
        bench_figure(bench_frames(cfg, args.seed), args.out)
    else:
        policy, overview = frames(cfg, args.num_envs, args.seed)
        iio.imwrite(args.out, grid_figure(policy, overview))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
