"""Encoder, actor and critic (Flax NNX).

Shapes for a batch of B: image (B, H, W, C) uint8; goal (B, 3) m; privileged state (B, 20);
action (B, 3) in [-1, 1]. Positions are normalised with the workspace box (``centre``, ``scale``,
metres) so every network sees inputs of order one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mjx_reach.config import NetworkConfig


class Encoder(nnx.Module):
    """3 conv layers (ReLU) → MLP → predicted end-effector position (B, 3), metres."""

    def __init__(self, cfg: NetworkConfig, image_shape, centre, scale, *, rngs: nnx.Rngs):
        h, w, c = image_shape
        self.convs = nnx.List()
        for channels, stride in zip(cfg.conv_channels, cfg.conv_strides):
            self.convs.append(
                nnx.Conv(c, channels, kernel_size=(3, 3), strides=(stride, stride), padding="VALID", rngs=rngs)
            )
            c = channels
            h, w = (h - 3) // stride + 1, (w - 3) // stride + 1
        self.hidden = nnx.Linear(h * w * c, cfg.encoder_hidden, rngs=rngs)
        self.out = nnx.Linear(cfg.encoder_hidden, 3, rngs=rngs)
        self.centre = nnx.Variable(jnp.asarray(centre, jnp.float32))
        self.scale = nnx.Variable(jnp.asarray(scale, jnp.float32))

    def __call__(self, image: jax.Array) -> jax.Array:
        x = image.astype(jnp.float32) / 255.0 - 0.5
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        x = jax.nn.relu(self.hidden(x.reshape(x.shape[0], -1)))
        return self.centre[...] + self.scale[...] * self.out(x)


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
