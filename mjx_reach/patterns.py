"""Procedural texture families for the bench's surfaces, posters and distractors (numpy only).

Each family draws square RGB images (``TEXTURE_PX`` pixels a side) from a ``numpy`` generator. The
scene turns every image into a material (``scene.build_spec``); per episode and world the
randomization picks a material for the table, the floor, the wall and each poster, and tints it
with the geom colour (the renderer multiplies texture and geom colours).

``TRAIN_FAMILIES`` are what training draws; ``HELD_OUT_FAMILIES`` only the held-out evaluation
benches (``robustness``) draw, so a policy is tested on patterns of a kind it never saw, not on new
draws of the same kinds. The two sets are disjoint by construction, and their images come from
different seeds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TEXTURE_PX = 64
"""Side of every texture image, pixels."""
PER_FAMILY = 4
"""Images drawn per family."""


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) random colours in 0..1."""
    return rng.uniform(0.0, 1.0, (n, 3))


def _grid(px: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (px, px) in 0..1, (x, y)."""
    c = (np.arange(px) + 0.5) / px
    return np.meshgrid(c, c)


def checkers(rng: np.random.Generator, px: int) -> np.ndarray:
    """A checkerboard of 2 to 8 cells a side in two colours."""
    x, y = _grid(px)
    cells = rng.integers(2, 9)
    a, b = _colours(rng, 2)
    odd = (np.floor(x * cells) + np.floor(y * cells)) % 2 == 1
    return np.where(odd[..., None], a, b)


def stripes(rng: np.random.Generator, px: int) -> np.ndarray:
    """Straight stripes of 2 or 3 colours at a random angle."""
    x, y = _grid(px)
    angle = rng.choice([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
    count = rng.integers(2, 4)
    period = rng.integers(2, 8)
    t = np.floor((np.cos(angle) * x + np.sin(angle) * y) * period * count) % count
    return _colours(rng, count)[t.astype(int)]


def noise(rng: np.random.Generator, px: int) -> np.ndarray:
    """Smooth value noise: a coarse random grid of colours, bilinearly upsampled."""
    cells = rng.integers(3, 12)
    coarse = rng.uniform(0.0, 1.0, (cells + 1, cells + 1, 3))
    t = np.arange(px) / px * cells
    i = np.floor(t).astype(int)
    f = (t - i)[:, None]
    rows = coarse[i] * (1 - f[..., None]) + coarse[i + 1] * f[..., None]  # (px, cells+1, 3)
    return rows[:, i] * (1 - f.T[..., None]) + rows[:, i + 1] * f.T[..., None]


def gradients(rng: np.random.Generator, px: int) -> np.ndarray:
    """A linear gradient between two colours in a random direction."""
    x, y = _grid(px)
    angle = rng.uniform(0.0, 2 * np.pi)
    t = np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5)
    t = (t - t.min()) / (t.max() - t.min())
    a, b = _colours(rng, 2)
    return a + (b - a) * t[..., None]


def blotches(rng: np.random.Generator, px: int) -> np.ndarray:
    """Random discs of colour over a base colour."""
    x, y = _grid(px)
    image = np.broadcast_to(_colours(rng, 1)[0], (px, px, 3)).copy()
    for _ in range(rng.integers(3, 9)):
        centre, radius = rng.uniform(0.0, 1.0, 2), rng.uniform(0.05, 0.25)
        inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2
        image[inside] = _colours(rng, 1)[0]
    return image


def rings(rng: np.random.Generator, px: int) -> np.ndarray:
    """Concentric rings of two colours around a random centre (held out)."""
    x, y = _grid(px)
    centre = rng.uniform(0.2, 0.8, 2)
    r = np.hypot(x - centre[0], y - centre[1])
    a, b = _colours(rng, 2)
    return np.where((np.floor(r * rng.integers(4, 12)) % 2 == 1)[..., None], a, b)


def waves(rng: np.random.Generator, px: int) -> np.ndarray:
    """Wavy bands: stripes displaced by a sine across them (held out)."""
    x, y = _grid(px)
    bands = rng.integers(3, 8)
    phase = y + 0.08 * np.sin(2 * np.pi * rng.integers(1, 4) * x)
    a, b = _colours(rng, 2)
    return np.where((np.floor(phase * bands * 2) % 2 == 1)[..., None], a, b)


Family = Callable[[np.random.Generator, int], np.ndarray]
TRAIN_FAMILIES: dict[str, Family] = {
    "checkers": checkers,
    "stripes": stripes,
    "noise": noise,
    "gradients": gradients,
    "blotches": blotches,
}
HELD_OUT_FAMILIES: dict[str, Family] = {"rings": rings, "waves": waves}
TRAIN_SEED = 0
HELD_OUT_SEED = 1


def names(families: dict[str, Family], per_family: int = PER_FAMILY) -> list[str]:
    """The names of ``bank``'s images, in its order: ``<family><i>``."""
    return [f"{name}{i}" for name in families for i in range(per_family)]


def bank(families: dict[str, Family], seed: int, per_family: int = PER_FAMILY, px: int = TEXTURE_PX) -> list:
    """``(name, image)`` pairs (``names``): ``per_family`` uint8 images (px, px, 3) of each family,
    drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    images = [family(rng, px) for family in families.values() for _ in range(per_family)]
    return [
        (name, np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8))
        for name, image in zip(names(families, per_family), images)
    ]
