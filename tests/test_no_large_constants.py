"""No compiled training or pretraining program carries a large array as a constant: data sets,
replay buffers and parameters must be arguments (a closed-over array is copied into the program,
costs host memory and compile time, and is a second device copy)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.extend.mlir import ir

from mjx_reach import config as config_lib
from mjx_reach import ddpg, distributed, memory, pretrain, training

LIMIT_BYTES = 1 << 20


def constant_bytes(lowered: jax.stages.Lowered) -> list[int]:
    """Sizes in bytes of every constant of a lowered program (its StableHLO module)."""
    sizes = []

    def visit(op):
        if op.name == "stablehlo.constant":
            tensor = ir.RankedTensorType(op.results[0].type)
            bits = getattr(tensor.element_type, "width", 32)
            sizes.append(math.prod(tensor.shape) * max(1, bits // 8))
        return ir.WalkResult.ADVANCE

    lowered.compiler_ir("stablehlo").operation.walk(visit)
    return sizes


def test_the_check_sees_a_closed_over_array():
    data = jnp.zeros((LIMIT_BYTES // 2,), jnp.float32) + 1.0  # 2 MB
    closed = jax.jit(lambda x: x + data.sum()).lower(jnp.ones(3))
    passed = jax.jit(lambda x, d: x + d.sum()).lower(jnp.ones(3), data)
    assert max(constant_bytes(closed)) >= 2 * LIMIT_BYTES
    assert max(constant_bytes(passed)) < LIMIT_BYTES


def test_pretraining_program_takes_its_data_set_as_an_argument():
    cfg = config_lib.Config(pretrain=config_lib.PretrainConfig(updates_per_call=2, batch_size=4))
    shape = config_lib.image_shape(cfg.env)
    images = np.zeros((64, *shape), np.uint8)  # 1.35 MB
    ee = np.zeros((64, 3), np.float32)
    encoder = ddpg.Networks(cfg, shape, rngs=nnx.Rngs(0)).encoder
    graphdef, params, consts = nnx.split(encoder, nnx.Param, ...)
    optimizer = optax.adam(1e-3)
    chunk = pretrain.make_fit_chunk(graphdef, consts, optimizer, cfg.pretrain, True, distributed.current())
    lowered = chunk.lower(params, optimizer.init(params), jax.random.PRNGKey(0), images, ee)
    assert images.nbytes > LIMIT_BYTES
    assert max(constant_bytes(lowered)) < LIMIT_BYTES


def test_training_programs_take_replay_and_state_as_arguments():
    cfg = config_lib.Config(num_envs=2)
    cfg = dataclasses.replace(
        cfg,
        agent=dataclasses.replace(cfg.agent, batch_size=4),
        train=dataclasses.replace(cfg.train, replay_capacity=64, iterations_per_chunk=1, updates_per_iteration=1),
    )
    trainer = training.Trainer(cfg)
    ts = jax.eval_shape(trainer.init)
    assert memory.replay_bytes(trainer.rows, cfg.num_envs, trainer.env.image_shape, 20) > LIMIT_BYTES
    for lowered in (trainer._collect.lower(ts), trainer._learn.lower(ts.agent, ts.replay, jax.random.PRNGKey(0))):
        assert max(constant_bytes(lowered)) < LIMIT_BYTES
