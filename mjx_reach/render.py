"""Batch rendering with the MJX-Warp ray tracer: one render context per (camera set, batch size).

A context is created once on the host for a fixed number of worlds (Warp owns its buffers), and
its ``pytree()`` handle goes into jitted code. ``render`` threads the ``Data`` returned by
``refit_bvh``/``render`` through, so JAX cannot reorder the BVH refit after the render (a known
stale-frame bug). Output stays **uint8**: the packed uint32 ABGR pixels are unpacked here, which
is 4x smaller than ``mjx.get_rgb``'s float32.

Call ``render`` inside ``jax.vmap`` over exactly ``num_envs`` worlds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import warp
from mujoco import mjx
from mujoco.mjx.warp import render_context as warp_render_context

from mjx_reach.config import ConfigError

warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)  # no "Module ... load" line per kernel

# Shading terms the reach scene does not need; dropping them is ~25% faster on CPU (BENCHMARKS.md).
_FAST_SHADING = dict(
    enable_specular=False, enable_vertex_normals=False, enable_emission=False, enable_per_light_ambient=False
)


class Camera:
    """Renders a set of the model's cameras for ``num_envs`` worlds.

    Args:
      mj_model: the compiled ``MjModel``.
      num_envs: number of worlds (the ``vmap`` size at call time).
      cameras: camera ids to render; their images are concatenated along channels.
      image_hw: (height, width) in pixels.
      geom_groups: geom groups drawn (the goal marker's group only for the overview).
      depth_range_m: when given, add a uint8 depth channel per camera, linear over (near, far) metres.
      shadows: render shadows for lights whose ``light_castshadow`` is set (slower).
    """

    def __init__(self, mj_model, num_envs: int, cameras, image_hw, geom_groups, depth_range_m=None, shadows=False):
        self.image_hw = tuple(image_hw)
        self.depth_range_m = depth_range_m
        self._context = mjx.create_render_context(
            mj_model,
            num_envs,
            cam_res=(image_hw[1], image_hw[0]),
            cam_active=list(cameras),
            render_rgb=True,
            render_depth=depth_range_m is not None,
            use_textures=True,
            use_shadows=shadows,
            use_precomputed_rays=False,
            enabled_geom_groups=list(geom_groups),
            **_FAST_SHADING,
        )
        self.handle = self._context.pytree()
        warp_rc = warp_render_context.get(self.handle)
        self._rgb_adr = [int(a) for a in warp_rc.rgb_adr.numpy()]
        self._depth_adr = [int(a) for a in warp_rc.depth_adr.numpy()]
        self.channels = len(cameras) * (3 + (depth_range_m is not None))

    def render(self, m: mjx.Model, d: mjx.Data) -> tuple[jax.Array, mjx.Data]:
        """Image (H, W, C) uint8 of one world (call under vmap) and the ``Data`` to carry on with."""
        d = mjx.refit_bvh(m, d, self.handle)
        packed_rgb, packed_depth, d = mjx.render(m, d, self.handle)
        h, w = self.image_hw
        planes = []
        for i, adr in enumerate(self._rgb_adr):
            px = jax.lax.dynamic_slice_in_dim(packed_rgb, adr, h * w, axis=-1).reshape(h, w)
            planes += [(px >> shift) & 0xFF for shift in (16, 8, 0)]
            if self.depth_range_m is not None:
                near, far = self.depth_range_m
                depth = jax.lax.dynamic_slice_in_dim(packed_depth, self._depth_adr[i], h * w, axis=-1).reshape(h, w)
                planes.append(jnp.round(jnp.clip((depth - near) / (far - near), 0.0, 1.0) * 255.0))
        return jnp.stack(planes, axis=-1).astype(jnp.uint8), d


def add_pixel_noise(image: jax.Array, key: jax.Array, std: float) -> jax.Array:
    """Zero-mean uniform noise with standard deviation ``std`` intensity levels on a uint8 image,
    rounded and clipped to 0..255 (uniform rather than Gaussian: ~3x cheaper to draw on CPU)."""
    half_width = std * np.sqrt(3.0)
    noisy = image.astype(jnp.float32) + jax.random.uniform(key, image.shape, minval=-half_width, maxval=half_width)
    return jnp.clip(jnp.round(noisy), 0, 255).astype(jnp.uint8)


def composite_background(
    image: jax.Array,
    backgrounds: jax.Array,
    gain: jax.Array,
    bias: jax.Array,
    shift: jax.Array,
    channels_per_camera: int,
) -> jax.Array:
    """A rendered policy image (H, W, C) uint8 with its key pixels (red and blue exactly 0: the bench
    keyed in ``randomize.KEY_RGB``, or nothing hit) replaced by ``backgrounds`` (ncam, H, W, 3) uint8,
    each camera's RGB at channels ``k * channels_per_camera`` .. +3. The background is jittered:
    rolled by ``shift`` (2,) int pixels (rows, columns), times ``gain`` (3,), plus ``bias`` levels."""
    planes = []
    for k, bg in enumerate(backgrounds):
        first = k * channels_per_camera
        rgb = image[..., first : first + 3]
        shifted = jnp.roll(bg, (shift[0], shift[1]), axis=(0, 1)).astype(jnp.float32)
        jittered = jnp.clip(jnp.round(shifted * gain + bias), 0, 255).astype(jnp.uint8)
        key = (rgb[..., 0] == 0) & (rgb[..., 2] == 0)
        planes += [jnp.where(key[..., None], jittered, rgb), image[..., first + 3 : first + channels_per_camera]]
    return jnp.concatenate(planes, axis=-1)


def load_backgrounds(paths: tuple[str, ...], image_hw: tuple[int, int]) -> np.ndarray:
    """The green-screen backgrounds (ncam, H, W, 3) uint8 of ``env.backgrounds``; a file that does
    not load or has another size than the policy image is a one-line ``ConfigError``."""
    import imageio.v3 as iio

    images = []
    for path in paths:
        try:
            image = np.asarray(iio.imread(path))[..., :3]
        except (OSError, ValueError) as e:
            raise ConfigError(f"env.backgrounds: cannot read {path} ({type(e).__name__}: {e})") from None
        if image.shape[:2] != tuple(image_hw):
            raise ConfigError(
                f"env.backgrounds: {path} is {image.shape[1]}x{image.shape[0]} pixels, the policy image "
                f"{image_hw[1]}x{image_hw[0]}"
            )
        images.append(image.astype(np.uint8))
    return np.stack(images)
