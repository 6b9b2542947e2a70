"""Encoder pretraining: regress the end-effector position on rendered, randomized images.

The seed's best model started RL from such an "initialized" encoder. A scripted arm reaches the
episode's random goal with noisy actions (so the visited poses cover the workspace box like a
trained policy's), every frame is rendered with the training domain randomization, and the encoder
is fitted to the true ee position with the bottleneck loss of ``ddpg``. The held-out ee error is
measured on images from held-out randomization seeds.

    python -m mjx_reach.pretrain --out runs/encoder --pretrain.updates 3000
    python train.py --init-encoder runs/encoder/encoder

Output folder: ``encoder/`` (orbax; what ``--init-encoder`` takes), ``pretrain.json`` (held-out
error and the loss curve), and from the CLI ``config.json`` and a short summary on stdout
(``summary.pretrain_summary``). ``train.py`` runs the same pretraining
into its run folder when ``train.pretrain_encoder`` is set (the default; not preset ``no-bottleneck``).
With several processes (``distributed``) each renders its share of both image sets in its own
worlds, the updates average their gradients over the processes' shares of each batch, and the
held-out errors are gathered.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
from collections.abc import Callable
from typing import Annotated

from mjx_reach import preallocation

preallocation.disable()

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro
from flax import nnx

from mjx_reach import cli, ddpg, distributed, memory, runs, summary
from mjx_reach import config as config_lib
from mjx_reach import phases as phases_lib
from mjx_reach.env import ReachEnv, State
from mjx_reach.evaluate import HELD_OUT_OFFSET, error_per_camera_axis


def scripted_action(state: State, max_step_m: float, noise: float, key: jax.Array) -> jax.Array:
    """(N, 3) action in [-1, 1] moving each world's commanded target towards its goal, plus noise."""
    towards = (state.goal - state.target) / max_step_m
    return jnp.clip(towards + noise * jax.random.normal(key, towards.shape), -1.0, 1.0)


def collect(
    env: ReachEnv, key: jax.Array, steps: int, noise: float, domain_per_image: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Images (steps·N, H, W, C) uint8 and true ee positions (steps·N, 3) m from ``steps``
    vectorised steps of the scripted arm in ``env.num_envs`` freshly reset worlds; with
    ``domain_per_image`` every step renders in a freshly sampled domain (else one per episode)."""
    k_reset, k_steps = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(k_reset, env.num_envs))

    def body(s, k):
        obs = (s.obs["image"], s.obs["state"][:, :3])
        k_action, k_domain = jax.random.split(k)
        if domain_per_image:
            s = jax.vmap(env.redraw_domain)(s, jax.random.split(k_domain, env.num_envs))
        return jax.vmap(env.step)(s, scripted_action(s, env.env_cfg.max_step_m, noise, k_action)), obs

    _, (images, ee) = jax.lax.scan(body, state, jax.random.split(k_steps, steps))
    return images.reshape(-1, *images.shape[2:]), ee.reshape(-1, 3)


def ee_errors(
    encoder_fn: Callable[[nnx.State, jax.Array], jax.Array],
    params: nnx.State,
    images: jax.Array,
    ee: jax.Array,
    batch: int = 256,
) -> np.ndarray:
    """Per-image ee error vectors (M, 3) in world metres (prediction minus truth) of
    ``encoder_fn(params, images)``, in batches."""
    errors = [
        np.asarray(encoder_fn(params, images[i : i + batch])) - np.asarray(ee[i : i + batch])
        for i in range(0, images.shape[0], batch)
    ]
    return np.concatenate(errors)


def make_fit_chunk(
    graphdef: nnx.GraphDef,
    consts: nnx.State,
    optimizer: optax.GradientTransformation,
    pcfg: config_lib.PretrainConfig,
    unroll: bool,
    group: distributed.Group,
) -> Callable:
    """Jitted ``chunk(params, opt_state, key, images, ee) -> (params, opt_state, mean loss)``:
    ``pcfg.updates_per_call`` updates of the encoder ``nnx.merge(graphdef, params, consts)`` on
    batches drawn from ``images`` (M, H, W, C) uint8 and ``ee`` (M, 3) metres. The data set is an
    argument, so it is never compiled into the program as a constant. Over ``group``: each process
    draws its share of a batch from its own images (``key`` is its own), the gradients and losses
    are averaged; all arguments are ``group.replicated``/``group.sharded`` global arrays."""

    def update(carry, key, images, ee):
        params, opt_state = carry
        idx = jax.random.randint(key, (group.share(pcfg.batch_size),), 0, images.shape[0])

        def loss_fn(p):
            encoder = nnx.merge(graphdef, p, consts)
            return jnp.mean(ddpg.bottleneck_error(encoder, encoder(images[idx]), ee[idx]))

        loss, grads = group.mean(jax.value_and_grad(loss_fn)(params))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def chunk(params, opt_state, key, images, ee):
        keys = jax.random.split(key, pcfg.updates_per_call)
        step = lambda carry, k: update(carry, k, images, ee)
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys, unroll=unroll)
        return params, opt_state, jnp.mean(losses)

    R, S = distributed.REPLICATED, distributed.SHARDED
    return group.spmd(chunk, (R, R, S, S, S), (R, R, R))


def pretrain(
    cfg: config_lib.Config, out: pathlib.Path, progress: bool = True, phases: phases_lib.Phases | None = None
) -> dict:
    """Fit an encoder for ``cfg`` (``cfg.pretrain``; ``cfg.num_envs`` worlds render the data) and
    save it under ``out/encoder``; returns the held-out ee error summary (metres). Its phases
    (``pretraining: rendering images``, ``... updates``, ``... held-out error``) are counted in
    ``phases`` when given."""
    from tqdm import tqdm

    phases = phases or phases_lib.Phases()
    cfg = config_lib.validate(cfg)
    memory.check_pretrain(cfg)
    pcfg, group = cfg.pretrain, distributed.current()
    out = pathlib.Path(out)
    target = (out / "encoder").resolve()
    if target.exists():
        raise config_lib.ConfigError(f"--out: {out} already holds an encoder; choose another folder")
    out.mkdir(parents=True, exist_ok=True)

    data_env = dataclasses.replace(cfg.env, episode_steps=pcfg.episode_steps, max_step_m=pcfg.max_step_m)
    env = ReachEnv(dataclasses.replace(cfg, env=data_env), group.share(cfg.num_envs))
    collect_fn = jax.jit(
        lambda k, steps, per_image: collect(env, k, steps, pcfg.action_noise, per_image), static_argnums=(1, 2)
    )
    with phases("pretraining: rendering images"):
        images, ee = collect_fn(
            group.key(jax.random.PRNGKey(cfg.seed)),
            math.ceil(pcfg.dataset_images / cfg.num_envs),
            pcfg.domain_per_image,
        )
        held_images, held_ee = jax.block_until_ready(
            collect_fn(
                group.key(jax.random.PRNGKey(cfg.seed + HELD_OUT_OFFSET)),
                math.ceil(pcfg.eval_images / cfg.num_envs),
                True,
            )
        )

    encoder = ddpg.Networks(cfg, env.image_shape, rngs=nnx.Rngs(cfg.seed)).encoder
    graphdef, params, consts = nnx.split(encoder, nnx.Param, ...)
    encode = jax.jit(lambda p, x: nnx.merge(graphdef, p, consts)(x))
    optimizer = optax.adam(pcfg.learning_rate)
    chunk = make_fit_chunk(graphdef, consts, optimizer, pcfg, cfg.train.unroll_updates, group)
    opt_state, key, curve = optimizer.init(params), group.key(jax.random.PRNGKey(cfg.seed + 1)), []
    data = group.sharded((images, ee))
    calls = math.ceil(pcfg.updates / pcfg.updates_per_call)
    with phases("pretraining: updates"):
        for i in tqdm(range(calls), desc="pretrain", unit="call", disable=not progress):
            key, k = jax.random.split(key)
            params, opt_state, loss = group.local(
                chunk(*group.replicated((params, opt_state)), group.sharded(k), *data)
            )
            curve.append({"updates": (i + 1) * pcfg.updates_per_call, "bottleneck_loss": float(loss)})
            if not math.isfinite(curve[-1]["bottleneck_loss"]):
                raise runs.TrainingError(f"pretrain: non-finite loss after {curve[-1]['updates']} updates")

    with phases("pretraining: held-out error"):
        error_vectors = np.asarray(group.gather(jnp.asarray(ee_errors(encode, params, held_images, held_ee))))
    errors = np.linalg.norm(error_vectors, axis=-1)
    result = {
        "train_images": int(images.shape[0]) * group.count,
        "held_out_images": int(errors.size),
        "updates": calls * pcfg.updates_per_call,
        "held_out_ee_error_median_m": float(np.median(errors)),
        "held_out_ee_error_mean_m": float(np.mean(errors)),
        "held_out_ee_error_p90_m": float(np.percentile(errors, 90)),
        **{
            f"held_out_error_{axis}_median_m": float(np.median(values))
            for axis, values in error_per_camera_axis(error_vectors, cfg.env.camera).items()
        },
        "curve": curve,
    }
    with phases("checkpoints"):
        runs.save_params(target, group.replicated(params))
    if group.is_main:
        runs.atomic_write(out / "pretrain.json", json.dumps(result, indent=2))
    return result


@dataclasses.dataclass
class PretrainArgs:
    config: Annotated[config_lib.Config, tyro.conf.arg(name="")]
    preset: str = "default"
    """Named starting config (mjx_reach.config.PRESETS)."""
    out: str = "runs/encoder"
    """Output folder (must not hold an encoder yet)."""


def main(argv: list[str]) -> int:
    args = cli.parse(PretrainArgs, argv, __doc__)
    out = pathlib.Path(args.out)
    phases = phases_lib.Phases()
    result = pretrain(args.config, out, phases=phases)
    runs.write_config(out, args.config)
    table = phases_lib.write(out, phases.table())
    print(summary.pretrain_summary(result, out, table["total_s"], summary.python_command(), phases=table))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
