"""Encoder, actor and critic (Flax NNX).

Shapes for a batch of B: image (B, H, W, C) uint8; goal (B, 3) m; privileged state (B, 20);
action (B, 3) in [-1, 1]. Positions are normalised with the workspace box (``centre``, ``scale``,
metres) so every network sees inputs of order one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mjx_reach.config import NetworkConfig, feature_map_hw


class Encoder(nnx.Module):
    """Per policy camera a trunk of conv layers (ReLU) and a readout, the cameras' readouts
    concatenated → MLP → predicted end-effector position (B, 3), metres.

    The image (B, H, W, C) stacks ``cameras`` views along channels (C / cameras each); every view
    has its own trunk, so no filter mixes pixels of two viewpoints. Readout (``cfg.encoder``):
    ``flatten`` the last feature map, or ``keypoints``: a spatial soft-argmax per feature channel,
    i.e. the expected image position (x, y in [-1, 1]) of each channel's activation, which
    localizes features to sub-pixel precision and keeps no other spatial detail.
    """

    def __init__(self, cfg: NetworkConfig, image_shape, centre, scale, *, rngs: nnx.Rngs, cameras: int = 1):
        h, w, c = image_shape
        self.readout = cfg.encoder
        self.cameras = cameras
        self.trunks = nnx.List()
        for _ in range(cameras):
            convs, channels_in = nnx.List(), c // cameras
            for channels, stride in zip(cfg.conv_channels, cfg.conv_strides):
                convs.append(
                    nnx.Conv(
                        channels_in, channels, kernel_size=(3, 3), strides=(stride, stride), padding="VALID", rngs=rngs
                    )
                )
                channels_in = channels
            self.trunks.append(convs)
        fh, fw = feature_map_hw((h, w), cfg.conv_strides)
        per_camera = 2 * cfg.conv_channels[-1] if cfg.encoder == "keypoints" else fh * fw * cfg.conv_channels[-1]
        self.hidden = nnx.Linear(cameras * per_camera, cfg.encoder_hidden, rngs=rngs)
        self.out = nnx.Linear(cfg.encoder_hidden, 3, rngs=rngs)
        self.centre = nnx.Variable(jnp.asarray(centre, jnp.float32))
        self.scale = nnx.Variable(jnp.asarray(scale, jnp.float32))

    def __call__(self, image: jax.Array) -> jax.Array:
        views = jnp.split(image.astype(jnp.float32) / 255.0 - 0.5, self.cameras, axis=-1)
        features = []
        for convs, x in zip(self.trunks, views):
            for conv in convs:
                x = jax.nn.relu(conv(x))
            features.append(spatial_soft_argmax(x) if self.readout == "keypoints" else x.reshape(x.shape[0], -1))
        x = jax.nn.relu(self.hidden(jnp.concatenate(features, axis=-1)))
        return self.centre[...] + self.scale[...] * self.out(x)


def spatial_soft_argmax(features: jax.Array) -> jax.Array:
    """Feature maps (B, h, w, c) → (B, 2c): per channel the softmax-weighted mean position over the
    map, x then y, each in [-1, 1] (left/top edge -1, right/bottom edge +1)."""
    b, h, w, c = features.shape
    weights = jax.nn.softmax(features.reshape(b, h * w, c), axis=1).reshape(b, h, w, c)
    xs, ys = jnp.linspace(-1.0, 1.0, w), jnp.linspace(-1.0, 1.0, h)
    x = jnp.einsum("bhwc,w->bc", weights, xs)
    y = jnp.einsum("bhwc,h->bc", weights, ys)
    return jnp.concatenate([x, y], axis=-1)


def _mlp(sizes, rngs):
    return nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])


def _run_mlp(layers, x):
    for layer in layers[:-1]:
        x = jax.nn.relu(layer(x))
    return layers[-1](x)


class Actor(nnx.Module):
    """(ee position, goal) → tanh displacement (B, 3) in [-1, 1]."""

    def __init__(self, cfg: NetworkConfig, centre, scale, *, rngs: nnx.Rngs):
        self.layers = _mlp((6, *cfg.hidden, 3), rngs)
        self.centre = nnx.Variable(jnp.asarray(centre, jnp.float32))
        self.scale = nnx.Variable(jnp.asarray(scale, jnp.float32))

    def __call__(self, ee: jax.Array, goal: jax.Array) -> jax.Array:
        norm = lambda p: (p - self.centre[...]) / self.scale[...]
        return jnp.tanh(_run_mlp(self.layers, jnp.concatenate([norm(ee), norm(goal)], axis=-1)))


class Critic(nnx.Module):
    """(privileged state, action) → Q (B,); ``num_q`` independent heads (2 for TD3) → (num_q, B)."""

    def __init__(self, cfg: NetworkConfig, state_dim: int, num_q: int, *, rngs: nnx.Rngs):
        self.heads = nnx.List([_mlp((state_dim + 3, *cfg.hidden, 1), rngs) for _ in range(num_q)])

    def __call__(self, state: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([state, action], axis=-1)
        return jnp.stack([_run_mlp(head, x)[..., 0] for head in self.heads])


class Policy(nnx.Module):
    """Encoder + actor: what is exported and deployed. image (B,H,W,C) u8, goal (B,3) → (action, ee_pred)."""

    def __init__(self, encoder: Encoder, actor: Actor):
        self.encoder = encoder
        self.actor = actor

    def __call__(self, image: jax.Array, goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        ee_pred = self.encoder(image)
        return self.actor(ee_pred, goal), ee_pred
