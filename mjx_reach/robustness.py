"""The held-out benches every evaluation reports: how a policy does off the plain sim bench.

Each bench is a ``randomize.DomainSpec`` (an argument of the one jitted evaluation rollout, so all
benches share one compiled program) built on the ``plain`` bench: the plain table, floor and wall at
the plain bench's distance, lights and colours jittered as in training, the camera jittered as a
calibrated one (``randomization.cam_rot_eval_deg``). Each then changes one thing, with something
training never draws, not new draws of what it does:

- ``objects``: everyday-sized capsules and ellipsoids on the table away from the arm (training's
  objects are boxes, cylinders, spheres and panels);
- ``poster``: a large poster right behind the arm in a held-out pattern family (rings or waves);
- ``wall_colour``: the wall in a strongly saturated colour (training's whole-range colours stay
  below ``randomize.TRAIN_SATURATION``);
- ``wall_pattern``: the wall in a held-out pattern family;
- ``person``: a dark figure of a capsule and a sphere standing behind the table (training's figure
  is made of boxes);
- ``tilt_1deg`` / ``pan_1deg``: the (first) policy camera 1 degree off its calibrated pose about its
  horizontal / vertical axis, either way, and not jittered otherwise.

The held-out patterns are drawn from their own seed (``patterns.HELD_OUT_SEED``).

The digital twins (``standins``) can stand on one fixed held-out bench too, ``TWIN_BENCHES``:
``clutter`` puts the held-out objects, a held-out poster, a held-out wall pattern and the dark figure
together, with the plain bench's camera, lights and arm colours (``twin_bench``), so deploy and
calibration are rehearsed off the plain bench.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from mjx_reach import randomize
from mjx_reach.config import RANDOMIZATION_LEVELS, RandomizationConfig
from mjx_reach.contract import TWIN_BENCHES
from mjx_reach.scene import Scene

PLAIN = "plain"
CAMERA_OFF_DEG = 1.0
"""How far the camera-off benches turn the camera, degrees."""
_LAB_FIELDS = ("recolor_prob", "texture_prob", "object_prob", "poster_prob", "person_prob", "wall_distance_m")


def plain_bench(cfg: RandomizationConfig) -> randomize.DomainSpec:
    """The plain bench of a run randomized by ``cfg``: the lab's surfaces, distractors and wall as in
    the ``plain`` level, the camera jittered by ``cam_rot_eval_deg``."""
    level = RANDOMIZATION_LEVELS["plain"]
    return randomize.spec(
        dataclasses.replace(
            cfg, cam_rot_deg=cfg.cam_rot_eval_deg, **{field: getattr(level, field) for field in _LAB_FIELDS}
        )
    )


TILT, PAN = 0, 1
"""Camera axes of ``camera_off``: about the image's horizontal axis (tilt), its vertical one (pan)."""


def camera_off(plain: randomize.DomainSpec, axis: int, degrees: float) -> randomize.DomainSpec:
    """The ``plain`` bench (``plain_bench``) with the (first) policy camera turned ``degrees`` about
    its ``axis`` (``TILT``, ``PAN``, 2: roll) off its calibrated pose, either way, and not jittered
    otherwise (0: exactly the calibrated pose)."""
    return plain.replace(
        cam_rot_deg=jnp.zeros((), jnp.float32),
        cam_rot_offset_deg=jnp.zeros(3, jnp.float32).at[axis].set(degrees),
    )


def benches(cfg: RandomizationConfig) -> dict[str, randomize.DomainSpec]:
    """``plain`` and the held-out benches (module docstring) for a run randomized by ``cfg``."""
    base = plain_bench(cfg)
    on = jnp.ones((), bool)
    return {
        PLAIN: base,
        "objects": base.replace(held_out_objects=on),
        "poster": base.replace(held_out_poster=on),
        "wall_colour": base.replace(held_out_wall_colour=on),
        "wall_pattern": base.replace(held_out_wall_pattern=on),
        "person": base.replace(held_out_person=on),
        "tilt_1deg": camera_off(base, TILT, CAMERA_OFF_DEG),
        "pan_1deg": camera_off(base, PAN, CAMERA_OFF_DEG),
    }


TWIN_BENCH_SEED = 20261205
"""Seed of the ``clutter`` twin bench's draw: one fixed bench, the same for every twin."""


def twin_bench(scene: Scene, name: str) -> randomize.DomainParams:
    """The fixed bench ``name`` (``TWIN_BENCHES``) of the digital twins: ``plain`` is the nominal
    scene; ``clutter`` the held-out objects, poster, wall pattern and figure at once, the camera, the
    lights and every colour but theirs nominal."""
    nominal = randomize.nominal(scene)
    if name == "plain":
        return nominal
    if name != "clutter":
        raise ValueError(f"unknown twin bench {name!r} (known: {', '.join(TWIN_BENCHES)})")
    still = RandomizationConfig(
        cam_pos_m=0.0,
        cam_rot_deg=0.0,
        cam_fovy_deg=0.0,
        light_dir=0.0,
        light_color=0.0,
        light_diffuse=(float(scene.mj_model.light_diffuse[scene.key_light][0]),) * 2,
        light_ambient=(float(scene.mj_model.light_ambient[scene.key_light][0]),) * 2,
        color=0.0,
    )
    on = jnp.ones((), bool)
    spec = plain_bench(still).replace(
        cam_rot_deg=jnp.zeros((), jnp.float32),
        held_out_objects=on,
        held_out_poster=on,
        held_out_wall_pattern=on,
        held_out_person=on,
    )
    return randomize.sample(jax.random.key(TWIN_BENCH_SEED), nominal, scene, still, spec)
