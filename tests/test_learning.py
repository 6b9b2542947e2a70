"""The CPU learning test and the pretrained-encoder test, on the ``quick`` preset's run (the
session fixture ``trained_run``: encoder pretraining, then RL + bottleneck, a few CPU minutes)."""

import json

import jax
import numpy as np
import pytest

from mjx_reach import config as config_lib
from mjx_reach import evaluate, runs

pytestmark = pytest.mark.slow  # learning to a threshold

PRETRAINED_MEDIAN_BOUND_M = 0.04
"""The pretrained encoder's median ee error on held-out randomized images must be below this."""


def test_learns_to_reach_well_above_random_policy(trained_run):
    """success@5 cm of the trained policy on held-out randomization vs a uniform random policy on
    the same held-out episodes, both measured here."""
    cfg = config_lib.from_dict(config_lib.Config, json.loads((trained_run / "config.json").read_text()))
    trained = json.loads((trained_run / "eval.json").read_text())
    random = evaluate.evaluate(cfg, evaluate.random_policy)
    print(
        f"\nsuccess@5cm: trained {trained['success_5cm']:.2f} vs random {random['success_5cm']:.2f}; "
        f"mean final distance {trained['mean_final_distance_m']:.3f} m vs {random['mean_final_distance_m']:.3f} m"
    )
    assert trained["success_5cm"] >= random["success_5cm"] + 0.25
    assert trained["mean_final_distance_m"] < 0.6 * random["mean_final_distance_m"]


def test_pretrained_encoder_error_on_held_out_images(trained_run):
    result = json.loads((trained_run / "pretrain.json").read_text())
    print(
        f"\npretrained encoder: held-out median ee error {result['held_out_ee_error_median_m'] * 100:.1f} cm "
        f"on {result['held_out_images']} images"
    )
    assert result["held_out_images"] >= 128
    assert result["held_out_ee_error_median_m"] < PRETRAINED_MEDIAN_BOUND_M


def test_init_encoder_starts_training_from_the_pretrained_encoder(trained_run):
    """The run's config points at its pretrained encoder, and loading it replaces exactly the
    encoder's parameters."""
    cfg, agent, _ = runs.load_params(trained_run)
    assert cfg.train.init_encoder.endswith("encoder")
    fresh = agent.init().params
    loaded = runs.load_encoder(cfg.train.init_encoder, fresh)
    assert not all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded["encoder"]), jax.tree.leaves(fresh["encoder"]))
    )
    for part in ("actor", "critic"):
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(loaded[part]), jax.tree.leaves(fresh[part])))
