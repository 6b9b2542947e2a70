"""The encoder's readouts and its per-camera trunks (no env, no rendering: fast)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mjx_reach import config as config_lib
from mjx_reach import networks

IMAGE_HW = (32, 32)


def _encoder(readout: str, cameras: int) -> networks.Encoder:
    cfg = config_lib.NetworkConfig(conv_channels=(8, 8, 8), conv_strides=(2, 1, 1), encoder=readout, encoder_hidden=16)
    return networks.Encoder(cfg, (*IMAGE_HW, 3 * cameras), jnp.zeros(3), jnp.ones(3), rngs=nnx.Rngs(0), cameras=cameras)


def test_spatial_soft_argmax_finds_peaks():
    """A sharp peak in a channel gives that cell's position in [-1, 1] (x from the column, y from the
    row); a flat map gives the centre."""
    h, w = 5, 7
    features = np.zeros((1, h, w, 3), np.float32)
    features[0, 1, 6, 0] = 100.0  # row 1, last column
    features[0, 4, 0, 1] = 100.0  # last row, first column
    keypoints = np.asarray(networks.spatial_soft_argmax(jnp.asarray(features)))
    x, y = keypoints[0, :3], keypoints[0, 3:]
    np.testing.assert_allclose(x, [1.0, -1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(y, [np.linspace(-1, 1, h)[1], 1.0, 0.0], atol=1e-5)


@pytest.mark.parametrize("readout", ["flatten", "keypoints"])
def test_each_camera_has_its_own_trunk(readout):
    """With two cameras the encoder has a conv trunk per view; changing either view's pixels changes
    the prediction, and its output is a (B, 3) position."""
    encoder = _encoder(readout, cameras=2)
    assert len(encoder.trunks) == 2
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, *IMAGE_HW, 6), dtype=np.uint8)
    base = np.asarray(encoder(jnp.asarray(image)))
    assert base.shape == (2, 3)
    for view in (slice(0, 3), slice(3, 6)):
        changed = image.copy()
        changed[..., view] = rng.integers(0, 256, changed[..., view].shape, dtype=np.uint8)
        assert not np.allclose(np.asarray(encoder(jnp.asarray(changed))), base)


def test_config_refuses_unknown_readout():
    cfg = config_lib.Config()
    bad = config_lib._with(cfg, network={"encoder": "pooling"})
    with pytest.raises(config_lib.ConfigError, match="network.encoder"):
        config_lib.validate(bad)
