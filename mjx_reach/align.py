"""See whether the calibrated sim camera lines up with the real one.

    python -m mjx_reach.align calibration/bench.json calibration/calibration_log.npz --out calibration/align

For every frame of a calibration log (``python -m deploy calibrate``), renders the simulated arm at
the logged joint angles from the bench's camera (its pose, roll and the frame's own intrinsics) and
writes ``frame_NNN.png``: the real frame with the simulated arm's outline drawn over it (green), and
``scores.json``: per frame the **edge overlap**, the fraction of the outline's pixels within
``TOLERANCE_PX`` pixels of an edge of the real frame (Canny), and their mean. A good calibration
puts the outline on the arm's edges (score near 1); a camera a few degrees off moves it by tens of
pixels, onto plain table or wall (a much lower score). The outline comes from a depth render of the
arm alone (table, floor and background in a geom group no render context draws), so it is the arm's exact silhouette.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import numpy as np

from mjx_reach import camera as camera_model
from mjx_reach import scene as scene_lib
from mjx_reach.config import CameraConfig, EnvConfig

TOLERANCE_PX = 3
OUTLINE_RGB = (0, 255, 0)


class SilhouetteRenderer:
    """The arm's silhouette (H, W) bool at joint angles ``qpos`` (7,) rad from a camera pose, for
    frames of ``intr``'s size and vertical field of view (principal point shift applied after)."""

    def __init__(self, intr: camera_model.Intrinsics):
        from mjx_reach.standins.calibration_twin import ArmRenderer

        fovy = camera_model.fovy_deg_from_intrinsics(intr.fy, intr.height)
        spec = scene_lib.build_spec(EnvConfig(camera=CameraConfig(fovy_deg=fovy)))
        for name in scene_lib.COLOURED_GEOMS:
            spec.geom(name).group = scene_lib.UNRENDERED_GROUP
        mjm = spec.compile()
        self.intr = intr
        self._renderer = ArmRenderer(
            mjm, mjm.camera("policy").id, (intr.height, intr.width), depth_range_m=(0.01, 10.0)
        )

    def __call__(self, qpos, cam_pos, cam_xmat) -> np.ndarray:
        mask = self._renderer.render(qpos, cam_pos, cam_xmat)[..., 3] > 0
        du, dv = round(self.intr.ppx - self.intr.width / 2.0), round(self.intr.ppy - self.intr.height / 2.0)
        return np.roll(mask, (dv, du), axis=(0, 1))


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels (H, W) bool of a silhouette: inside it, with a 4-neighbour outside."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def edge_overlap(frame: np.ndarray, edge_mask: np.ndarray, tolerance_px: int = TOLERANCE_PX) -> float:
    """Fraction of the pixels of ``edge_mask`` (H, W) within ``tolerance_px`` of a Canny edge of
    the RGB ``frame`` (H, W, 3) uint8 (0 when the mask is empty)."""
    import cv2

    edges = cv2.Canny(cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (5, 5), 1.0), 30, 90) > 0
    distance = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 3)
    n = int(edge_mask.sum())
    return float(np.mean(distance[edge_mask] <= tolerance_px)) if n else 0.0


def overlay(frame: np.ndarray, edge_mask: np.ndarray) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 with ``edge_mask`` drawn over it, 2 px wide, in ``OUTLINE_RGB``."""
    thick = edge_mask.copy()
    thick[1:] |= edge_mask[:-1]
    thick[:, 1:] |= edge_mask[:, :-1]
    out = frame.copy()
    out[thick] = OUTLINE_RGB
    return out


def load_log(path: str | os.PathLike) -> dict:
    """A ``calibration_log.npz`` (``python -m deploy calibrate``) as a dict of arrays by name."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def bench_camera(path: str | os.PathLike, index: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The position (3,) m and rotation (3, 3) of camera ``index`` (1-based) of a bench JSON (pos,
    lookat, roll_deg)."""
    from mjx_reach.contract import PolicyError, load_bench

    cameras = load_bench(path).cameras
    if not 1 <= index <= len(cameras):
        raise PolicyError(f"bench file {path} has {len(cameras)} camera(s), no camera {index}")
    cam = cameras[index - 1]
    return np.asarray(cam.pos), camera_model.camera_xmat(cam.pos, cam.lookat, cam.roll_deg)


def align(
    bench_path: str | os.PathLike, log: dict, renderer: SilhouetteRenderer | None = None, camera_index: int = 1
) -> tuple[list[np.ndarray], list[float]]:
    """Overlays (N, H, W, 3) and edge-overlap scores of each frame of a calibration ``log``
    (``deploy.calibrate.load_log``) with the bench's camera ``camera_index`` (1-based)."""
    intr = camera_model.Intrinsics.from_array(log["intrinsics"])
    renderer = renderer or SilhouetteRenderer(intr)
    cam_pos, cam_xmat = bench_camera(bench_path, camera_index)
    images, scores = [], []
    for frame, qpos in zip(log["frames"], log["joint_angles"]):
        edge = outline(renderer(qpos, cam_pos, cam_xmat))
        images.append(overlay(frame, edge))
        scores.append(edge_overlap(frame, edge))
    return images, scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mjx_reach.align", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bench", help="bench.json (python -m deploy calibrate)")
    parser.add_argument("log", help="calibration_log.npz (python -m deploy calibrate)")
    parser.add_argument("--out", default="align", help="folder for frame_NNN.png and scores.json")
    parser.add_argument(
        "--camera-index", type=int, default=1, help="the bench camera the log was taken with (1-based, as calibrated)"
    )
    args = parser.parse_args(argv)
    import imageio.v3 as iio

    from mjx_reach.contract import DeployError
    from mjx_reach.runs import atomic_write

    try:
        images, scores = align(args.bench, load_log(args.log), camera_index=args.camera_index)
    except (OSError, KeyError, ValueError, DeployError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        tmp = out / f".frame_{i:03d}.tmp.png"
        iio.imwrite(tmp, image)
        os.replace(tmp, out / f"frame_{i:03d}.png")
    result = {
        "bench": args.bench,
        "log": args.log,
        "tolerance_px": TOLERANCE_PX,
        "edge_overlap": scores,
        "mean_edge_overlap": float(np.mean(scores)),
    }
    atomic_write(out / "scores.json", json.dumps(result, indent=2))
    print(
        json.dumps(
            {k: result[k] for k in ("mean_edge_overlap", "tolerance_px")} | {"frames": len(images), "out": str(out)}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
