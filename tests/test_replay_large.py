"""The replay indexes correctly past 2^31 elements: a 1M-transition replay at 84x84x3 holds
2.1e10 uint8 image elements. A buffer of just over 2^31 bytes (2.15 GB of host memory) gets
patterned frames in its last two rows, which ``sample`` must read back (frame and next frame)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mjx_reach import replay

ROWS, NUM_ENVS, FRAME = 2049, 2, (512, 512, 2)  # 2049 x 2 x 2^19 B = 2^31 + 2^20 B


def _frames(row: int) -> np.ndarray:
    """(NUM_ENVS, *FRAME) uint8 frames that differ per row, env and pixel."""
    pixels = np.arange(np.prod(FRAME), dtype=np.int64).reshape(FRAME)
    return np.stack([((pixels * 7 + row * 3 + e * 5) % 251).astype(np.uint8) for e in range(NUM_ENVS)])


def test_add_and_sample_past_two_to_the_31_elements():
    buf = replay.create(ROWS, NUM_ENVS, FRAME, state_dim=2)
    assert buf.image.size > 2**31
    add = jax.jit(replay.add, donate_argnums=0)
    buf = buf.replace(cursor=jnp.asarray(ROWS - 2, jnp.int32))
    for row in (ROWS - 2, ROWS - 1):  # the last row's frames start past byte 2^31
        ids = np.array([[row, e] for e in range(NUM_ENVS)], np.float32)
        obs = {"image": _frames(row), "goal": np.zeros((NUM_ENVS, 3), np.float32), "state": ids}
        buf = add(
            buf, obs, np.zeros((NUM_ENVS, 3), np.float32), np.zeros(NUM_ENVS, np.float32), np.zeros(NUM_ENVS, bool)
        )
    assert int(buf.cursor) == 0 and int(buf.size) == 2

    batch = jax.device_get(jax.jit(replay.sample, static_argnums=2)(buf, jax.random.PRNGKey(0), 16))
    del buf
    assert batch["valid"].all()
    assert set(batch["state"][:, 1].astype(int)) == set(range(NUM_ENVS)), "the sample should cover both envs"
    for i, (row, env) in enumerate(batch["state"].astype(int)):
        next_row, next_env = batch["next_state"][i].astype(int)
        assert (row, next_row, next_env) == (ROWS - 2, ROWS - 1, env)
        np.testing.assert_array_equal(batch["image"][i], _frames(ROWS - 2)[env])
        np.testing.assert_array_equal(batch["next_image"][i], _frames(ROWS - 1)[env])
