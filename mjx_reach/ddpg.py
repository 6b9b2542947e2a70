"""Asymmetric DDPG: losses and one pure update step.

The actor sees only pixels (through the encoder's predicted ee position) and the goal; the critic
sees the privileged state. Losses, as the seed states them:

* critic: ``(Q(s, a) - r - γ Q_T(s', π_T(o')))²`` with target networks (min over twin critics and
  clipped target-action noise when TD3 is on);
* actor: ``-Q(s, π(o))``;
* encoder: the actor's gradient plus ``w · MSE(ee_true, ee_pred)`` (the bottleneck loss, in units of
  the workspace half extent);
* targets: Polyak averaging ``θ_T ← (1 - τ) θ_T + τ θ``.

Parameters live in plain pytrees (``nnx.split``) so the update jits and scans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from mjx_reach import networks
from mjx_reach.config import STATE_DIM, Config, num_cameras


def bottleneck_error(encoder: networks.Encoder, ee_pred: jax.Array, ee_true: jax.Array) -> jax.Array:
    """(B,) squared error between predicted and true ee positions (B, 3) [m], per axis in units of
    the workspace box's half extent (``encoder.scale``): the bottleneck loss. Normalised so that its
    gradient is of the same order as the actor's (in m² it is ~100x smaller and the actor's
    gradient would dominate the encoder)."""
    return jnp.sum(((ee_pred - ee_true) / encoder.scale[...]) ** 2, axis=-1)


class Networks(nnx.Module):
    """Encoder, actor and critic in one module so they split into one parameter tree."""

    def __init__(self, cfg: Config, image_shape, *, rngs: nnx.Rngs):
        low, high = jnp.asarray(cfg.env.workspace_low), jnp.asarray(cfg.env.workspace_high)
        centre, scale = (low + high) / 2, (high - low) / 2
        self.encoder = networks.Encoder(
            cfg.network, image_shape, centre, scale, rngs=rngs, cameras=num_cameras(cfg.env)
        )
        self.actor = networks.Actor(cfg.network, centre, scale, rngs=rngs)
        self.critic = networks.Critic(cfg.network, STATE_DIM, 2 if cfg.agent.twin_critics else 1, rngs=rngs)


@struct.dataclass
class AgentState:
    params: nnx.State
    target_params: nnx.State
    opt_state: optax.OptState
    updates: jax.Array
    """() int32 gradient updates done."""


class Agent:
    """Holds the static parts (graph, optimizer, config); all state is in ``AgentState``."""

    def __init__(self, cfg: Config, image_shape):
        self.cfg = cfg.agent
        self.image_shape = tuple(image_shape)
        nets = Networks(cfg, image_shape, rngs=nnx.Rngs(cfg.seed))
        self.graphdef, params, self.consts = nnx.split(nets, nnx.Param, ...)
        self._params0 = params
        lrs = {"encoder": cfg.agent.encoder_lr, "actor": cfg.agent.actor_lr, "critic": cfg.agent.critic_lr}
        self.optimizer = optax.multi_transform(
            {name: optax.adam(lr) for name, lr in lrs.items()},
            lambda p: jax.tree_util.tree_map_with_path(lambda path, _: path[0].key, p),
        )

    def init(self, params: nnx.State | None = None) -> AgentState:
        """Fresh optimizer and targets for ``params`` (default: the random initialisation)."""
        params = self._params0 if params is None else params
        targets = jax.tree.map(jnp.copy, params)  # separate buffers: the train step donates both
        return AgentState(params, targets, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def nets(self, params: nnx.State) -> Networks:
        return nnx.merge(self.graphdef, params, self.consts)

    def act(self, params: nnx.State, obs: dict) -> tuple[jax.Array, jax.Array]:
        """Deterministic action (B, 3) and predicted ee (B, 3) for a batch of observations."""
        nets = self.nets(params)
        ee_pred = nets.encoder(obs["image"])
        return nets.actor(ee_pred, obs["goal"]), ee_pred

    def losses(
        self, params: nnx.State, target_params: nnx.State, batch: dict, key: jax.Array
    ) -> tuple[jax.Array, jax.Array, dict]:
        """(critic_loss, policy_loss, info) on a batch from ``replay.sample``. ``policy_loss`` is the
        actor loss plus the weighted bottleneck loss; masked means over ``batch['valid']``."""
        cfg = self.cfg
        mask = batch["valid"].astype(jnp.float32)
        mean = lambda x: jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)
        nets, target = self.nets(params), self.nets(target_params)

        next_action = target.actor(target.encoder(batch["next_image"]), batch["next_goal"])
        noise = jnp.clip(
            cfg.target_noise * jax.random.normal(key, next_action.shape), -cfg.target_noise_clip, cfg.target_noise_clip
        )
        next_action = jnp.clip(next_action + noise, -1.0, 1.0)
        next_q = jnp.min(target.critic(batch["next_state"], next_action), axis=0)
        td_target = jax.lax.stop_gradient(batch["reward"] + cfg.gamma * next_q)
        q = nets.critic(batch["state"], batch["action"])
        critic_loss = mean(jnp.mean((q - td_target) ** 2, axis=0))

        ee_pred = nets.encoder(batch["image"])
        ee_true = batch["state"][:, :3]
        action = nets.actor(ee_pred, batch["goal"])
        actor_loss = mean(-nets.critic(batch["state"], action)[0])
        ee_error = jnp.linalg.norm(ee_pred - ee_true, axis=-1)
        bottleneck_loss = mean(bottleneck_error(nets.encoder, ee_pred, ee_true))
        policy_loss = actor_loss + cfg.bottleneck_weight * bottleneck_loss
        info = {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "bottleneck_loss": bottleneck_loss,
            "q": mean(q[0]),
            "ee_error": mean(ee_error),
        }
        return critic_loss, policy_loss, info

    def update(
        self, state: AgentState, batch: dict, key: jax.Array, average: Callable[[Any], Any] = lambda tree: tree
    ) -> tuple[AgentState, dict]:
        """One gradient step on critic, actor and encoder, then Polyak-average the targets.
        ``average`` combines the gradients and the info of the processes that share the update
        (``distributed.Group.mean``; by default this process alone)."""
        critic_grad = jax.grad(lambda p: self.losses(p, state.target_params, batch, key)[0])(state.params)
        policy_grad, info = jax.grad(lambda p: self.losses(p, state.target_params, batch, key)[1:], has_aux=True)(
            state.params
        )
        grads = jax.tree_util.tree_map_with_path(
            lambda path, c, p: c if path[0].key == "critic" else p, critic_grad, policy_grad
        )
        grads, info = average((grads, info))
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        target_params = optax.incremental_update(params, state.target_params, self.cfg.tau)
        return AgentState(params, target_params, opt_state, state.updates + 1), info
