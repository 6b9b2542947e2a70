"""Your own bench behind the arm (green screen): the real camera's view of the bench with the arm
masked out, and the rendered arm composited over it inside the jitted step.

Building the view (numpy + the MuJoCo silhouette renderer, once, on the training machine): for every
frame of a calibration log (``python -m deploy calibrate`` moves the arm through 20 poses and keeps
each frame with its joint angles), the calibrated sim camera renders the arm's exact silhouette
(``align.SilhouetteRenderer``), grown by ``MASK_MARGIN_PX`` for calibration error; each pixel's
background is the median of the frames where the arm does not cover it (pixels the arm covers in
every pose, such as its base, take the median of all frames: the rendered arm covers them again).
The view is then cropped and resized to the policy image exactly as deploy preprocesses a frame
(``camera.preprocess``).

    python -m mjx_reach.background calibration/bench.json

writes ``background.png`` (the policy image) and ``background_full.png`` (the camera's frame) beside
the bench file, one per camera (``background_K.png`` for camera K > 1), and records each in the
bench's camera entry (``"background"``); ``train.py --bench`` runs it when a calibrated bench has
none yet, and trains with ``env.backgrounds`` set.

Training with backgrounds (``env.backgrounds``): the table, floor and wall render in
``randomize.KEY_RGB`` (no texture), which no other geom can produce (the arm's colours keep every
channel above ``randomize.ARM_MIN_RGB``), and ``render.composite_background`` replaces those pixels
by the background, jittered per episode in gain per channel, offset and a shift of a few pixels
(``RandomizationConfig.background_*``). Distractor objects, posters and a person still render in
front of it when the randomization draws them.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np

from mjx_reach import camera as camera_model
from mjx_reach import contract

MASK_MARGIN_PX = 8
"""The arm's silhouette grows by this many pixels of the camera's frame before masking."""
MIN_COVERAGE = 0.5
"""Building refuses a view where less than this fraction of the pixels was ever free of the arm."""


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` (H, W) bool grown by ``px`` pixels (square neighbourhood)."""
    out = mask.copy()
    for _ in range(px):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def bench_view(frames: np.ndarray, arm_masks: np.ndarray, margin_px: int = MASK_MARGIN_PX) -> tuple[np.ndarray, float]:
    """The bench without the arm, (H, W, 3) uint8, from ``frames`` (N, H, W, 3) uint8 and the arm's
    silhouettes in them ``arm_masks`` (N, H, W) bool, and the fraction of pixels free of the arm in
    at least one frame."""
    free = ~np.stack([_grow(m, margin_px) for m in arm_masks])
    ever_free = free.any(axis=0)
    view = np.median(frames, axis=0)  # where the arm always stands: it covers these pixels again
    values = np.where(free[:, ever_free, None], frames[:, ever_free].astype(np.float32), np.nan)
    view[ever_free] = np.nanmedian(values, axis=0)
    return np.round(view).astype(np.uint8), float(ever_free.mean())


def from_log(log: dict, bench_path: str | os.PathLike, camera_index: int = 1) -> tuple[np.ndarray, float]:
    """``bench_view`` of a calibration log (``deploy.calibrate.load_log``) with the arm's silhouettes
    rendered from camera ``camera_index`` (1-based) of the bench file."""
    from mjx_reach import align

    intr = camera_model.Intrinsics.from_array(log["intrinsics"])
    renderer = align.SilhouetteRenderer(intr)
    cam_pos, cam_xmat = align.bench_camera(bench_path, camera_index)
    masks = np.stack([renderer(q, cam_pos, cam_xmat) for q in log["joint_angles"]])
    return bench_view(np.asarray(log["frames"]), masks)


def image_names(camera_index: int) -> tuple[str, str]:
    """(policy image, full frame) file names of camera ``camera_index``'s background."""
    suffix = "" if camera_index == 1 else f"_{camera_index}"
    return f"background{suffix}.png", f"background{suffix}_full.png"


def build(bench_path: str | os.PathLike, image_hw: tuple[int, int]) -> list[pathlib.Path]:
    """For every camera of the bench file whose calibration log lies beside it: build its background
    (``from_log``), write it (policy image of ``image_hw`` and full frame) beside the bench and record
    it as the camera's ``"background"`` (the bench JSON rewritten atomically). Returns the policy
    images' paths, one per camera. Raises ``ValueError`` (one line) for a camera without a log, a log
    that does not load, or a view the arm hid too much of."""
    import imageio.v3 as iio

    from mjx_reach import align
    from mjx_reach.runs import atomic_write

    bench_path = pathlib.Path(bench_path)
    data = json.loads(bench_path.read_text())
    entries = [data["camera"]] if "camera" in data else data["cameras"]
    paths = []
    for index, entry in enumerate(entries, start=1):
        log_path = bench_path.parent / contract.calibration_log_name(index)
        if not log_path.exists():
            raise ValueError(f"{bench_path}: camera {index} has no calibration log {log_path.name} beside it")
        try:
            log = align.load_log(log_path)
            view, coverage = from_log(log, bench_path, index)
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{log_path}: cannot build the background ({type(e).__name__}: {e})") from None
        if coverage < MIN_COVERAGE:
            raise ValueError(
                f"{log_path}: the arm hid {1 - coverage:.0%} of the view in every pose; calibrate with wider moves"
            )
        intr = camera_model.Intrinsics.from_array(log["intrinsics"])
        fovy = entry.get("fovy_deg") or camera_model.fovy_deg_from_intrinsics(intr.fy, intr.height)
        policy = camera_model.preprocess(view, intr, fovy, image_hw)
        policy_name, full_name = image_names(index)
        for name, image in ((policy_name, policy), (full_name, view)):
            tmp = bench_path.parent / f".{name}.tmp.png"
            iio.imwrite(tmp, image)
            os.replace(tmp, bench_path.parent / name)
        entry["background"] = policy_name
        paths.append(bench_path.parent / policy_name)
    atomic_write(bench_path, json.dumps(data, indent=2))
    return paths


def ensure(bench_path: str | os.PathLike, image_hw: tuple[int, int]) -> bool:
    """``build`` the backgrounds of a calibrated bench (every camera's calibration log beside it)
    that lacks one (or whose file is gone); True when it built them. A bench without logs (measured
    by hand) is left as it is."""
    bench_path = pathlib.Path(bench_path)
    cameras = contract.load_bench(bench_path).cameras
    logs = [bench_path.parent / contract.calibration_log_name(i) for i in range(1, len(cameras) + 1)]
    if not all(log.exists() for log in logs):
        return False
    if all(cam.background and pathlib.Path(cam.background).exists() for cam in cameras):
        return False
    build(bench_path, image_hw)
    return True


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mjx_reach.background", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bench", help="bench.json with its calibration_log*.npz beside it (python -m deploy calibrate)")
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=(84, 84), metavar=("H", "W"), help="policy image, pixels"
    )
    args = parser.parse_args(argv)
    try:
        paths = build(args.bench, tuple(args.image_size))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in paths) + f" and recorded them in {args.bench}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
