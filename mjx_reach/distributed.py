"""Several processes training one run: JAX's multi-process runtime (``jax.distributed``).

Each process drives one device (a GPU that ``mjx_reach.launcher`` made the only one it sees, or on
a CPU its group of cores) and runs the same programs on its share: ``num_envs / P`` worlds with
their own MJX-Warp model and render context, a replay shard of ``replay_capacity / P``
transitions, ``batch_size / P`` samples of each batch, ``eval_envs / P`` held-out episodes and as
many pretraining images. What crosses processes, all over the mesh axis ``AXIS`` (NCCL between
GPUs, gloo between CPU processes), inside ``jax.shard_map``:

- the gradients of every update, averaged (``Group.mean``: an all-reduce), so the parameters stay
  identical everywhere; ``mismatches`` compares their ``fingerprint`` across processes after
  every update and the loop stops on the first difference;
- once per chunk, the collection figures and whether to stop (``Group.sum``);
- the held-out episodes' outcomes (``Group.gather``);
- checkpoints: orbax writes every process's shard of the env state and the replay, and process 0
  what all share (parameters, optimizer).

A process keeps its arrays on its own device; ``Group.replicated`` and ``Group.sharded`` view them,
without copying, as global arrays of the mesh for the programs that cross processes, and
``Group.local`` takes them back. Every process must run those programs in the same order, or the
others wait: the loop decides together (``Group.sum``) when to stop. A program that crosses
processes is compiled before the processes meet at a barrier of JAX's coordination service and
then run (``Collective``): gloo gives a peer only 30 s to join a collective, less than one process
may spend compiling, evaluating or checkpointing more than another; the barrier waits up to
``distributed.barrier_timeout_s`` and then fails naming the late processes, which also catches a
process that is alive but stuck. Orbax's reads across processes (a pretrained encoder, a checkpoint
on ``--resume``) are entered after a barrier too: they synchronise over the same gloo. With one
process there is no mesh program at all: ``spmd`` is a plain ``jax.jit``, ``Group.mean`` and the
views and collectives return their input, there is no barrier, and a run draws exactly the keys
it drew before there could be several. (JAX's dispatch of a ``shard_map`` program's arguments
costs tens of ms per call for the agent's few hundred arrays, and ``jax.vmap`` over a process
axis of one, which would bind ``AXIS``, slows the update by a third on XLA:CPU: BENCHMARKS.md,
"Several processes".)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.flatten_util
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mjx_reach.config import ConfigError, DistributedConfig

AXIS = "processes"
REPLICATED = P()
"""Every process holds the whole array (the same values)."""
SHARDED = P(AXIS)
"""Process ``i`` holds block ``i`` of the leading axis."""
INITIALIZATION_TIMEOUT_S = 300
"""How long a process waits for all the others to join before it gives up, seconds."""

PyTree = Any


_barrier_timeout_s = {"value": 0}
"""Set by ``initialize`` (``distributed.barrier_timeout_s``) for ``current``'s group."""


def initialize(coordinator: str, count: int, index: int | None, timeouts: DistributedConfig) -> None:
    """Join the process group of ``count`` processes as process ``index`` (before any other JAX
    call), with process 0 serving the coordinator at ``coordinator`` (``HOST:PORT``), under the
    heartbeat and barrier timeouts of ``timeouts``; with ``coordinator`` ``auto``, JAX detects all
    three from the cluster (SLURM, Open MPI). Refuses (``ConfigError``) a group of another size or a
    process that sees more than one device."""
    _barrier_timeout_s["value"] = timeouts.barrier_timeout_s
    options = {
        "initialization_timeout": INITIALIZATION_TIMEOUT_S,
        "heartbeat_timeout_seconds": timeouts.heartbeat_timeout_s,
    }
    if coordinator == "auto":
        jax.distributed.initialize(**options)
    else:
        jax.distributed.initialize(coordinator, count, index, **options)
    if jax.process_count() != count:
        raise ConfigError(
            f"distributed.processes: the cluster started {jax.process_count()} processes, the config expects {count}"
        )
    if len(jax.local_devices()) != 1:
        raise ConfigError(
            f"distributed.processes: process {jax.process_index()} sees {len(jax.local_devices())} devices; each process "
            "drives one (one GPU per process through CUDA_VISIBLE_DEVICES, one CPU device per process)"
        )


@dataclasses.dataclass(frozen=True)
class Group:
    """This process (``index`` of ``count``) and the mesh of one device per process."""

    index: int
    count: int
    mesh: Mesh
    barrier_timeout_s: int = 0
    _barriers: itertools.count = dataclasses.field(default_factory=itertools.count, compare=False)

    @property
    def device(self) -> jax.Device:
        """This process's device: its arrays live there."""
        return self.mesh.devices[self.index]

    @property
    def is_main(self) -> bool:
        """Process 0 writes the run folder."""
        return self.index == 0

    def share(self, n: int) -> int:
        """This process's share of ``n`` (worlds, batch samples, episodes), split evenly."""
        return n // self.count

    def key(self, key: jax.Array) -> jax.Array:
        """This process's own stream of ``key`` (its worlds' and its exploration's keys): ``key``
        folded with the process index; with one process, ``key`` itself."""
        return key if self.count == 1 else jax.random.fold_in(key, self.index)

    def replicated(self, tree: PyTree) -> PyTree:
        """``tree``'s arrays (on ``device``, the same in every process) as global replicated arrays."""
        if self.count == 1:
            return tree
        sharding = NamedSharding(self.mesh, REPLICATED)
        return jax.tree.map(lambda x: jax.make_array_from_single_device_arrays(x.shape, sharding, [x]), tree)

    def sharded(self, tree: PyTree) -> PyTree:
        """``tree``'s arrays (on ``device``; this process's block) as global arrays whose leading
        axis holds every process's block in process order; scalars (counters that all processes
        advance together) as replicated arrays."""
        if self.count == 1:
            return tree
        sharded, replicated = NamedSharding(self.mesh, SHARDED), NamedSharding(self.mesh, REPLICATED)

        def view(x):
            if x.ndim == 0:
                return jax.make_array_from_single_device_arrays(x.shape, replicated, [x])
            return jax.make_array_from_single_device_arrays((self.count * x.shape[0], *x.shape[1:]), sharded, [x])

        return jax.tree.map(view, tree)

    def local(self, tree: PyTree) -> PyTree:
        """The inverse of ``replicated`` and ``sharded``: this process's block of each global array."""
        if self.count == 1:
            return tree
        return jax.tree.map(lambda x: x.addressable_data(0), tree)

    def spmd(
        self,
        fn: Callable,
        in_specs: tuple,
        out_specs: PyTree,
        donate_argnums: tuple[int, ...] = (),
        check_vma: bool = True,
    ) -> Callable:
        """``fn`` jitted over the mesh (a ``Collective``; with one process ``jax.jit(fn)``): every
        process runs it on its block of each argument that ``in_specs`` marks ``SHARDED`` (laid
        out by ``sharded``: its scalars replicated) and on the whole of each ``REPLICATED`` one;
        inside, ``mean``, ``jax.lax.psum`` and the like reduce over ``AXIS``. ``check_vma``: JAX checks that what
        ``out_specs`` calls ``REPLICATED`` is the same in every process (it cannot tell for
        ``all_gather``)."""

        if self.count == 1:
            return jax.jit(fn, donate_argnums=donate_argnums)

        def layout(spec, arg):
            return jax.tree.map(lambda x: REPLICATED if spec == SHARDED and x.ndim == 0 else spec, arg)

        @functools.partial(jax.jit, donate_argnums=donate_argnums)
        def run(*args):
            specs = tuple(layout(spec, arg) for spec, arg in zip(in_specs, args, strict=True))
            return jax.shard_map(fn, mesh=self.mesh, in_specs=specs, out_specs=out_specs, check_vma=check_vma)(*args)

        return Collective(self, run)

    def mean(self, tree: PyTree) -> PyTree:
        """``tree`` (float32 arrays) averaged over all processes (inside ``spmd``), as one all-reduce
        of all its arrays in one vector: gloo runs an all-reduce per array otherwise, and its
        latency, not the bytes, would bound the update (BENCHMARKS.md, "Several processes")."""
        if self.count == 1:
            return tree
        flat, unflatten = jax.flatten_util.ravel_pytree(tree)
        return unflatten(jax.lax.pmean(flat, AXIS))

    def barrier(self) -> None:
        """Wait until every process gets here (at most ``barrier_timeout_s``; then a one-line
        error naming the processes that did not come)."""
        if self.count == 1:
            return
        from jax._src import distributed as jax_distributed

        try:
            jax_distributed.global_state.client.wait_at_barrier(
                f"mjx_reach/{next(self._barriers)}", timeout_in_ms=self.barrier_timeout_s * 1000
            )
        except Exception as e:  # the coordination service's error names the late processes
            raise RuntimeError(
                f"process {self.index}: the other processes did not meet within distributed.barrier_timeout_s="
                f"{self.barrier_timeout_s} s: {str(e).splitlines()[0]}"
            ) from None

    @functools.cached_property
    def _sum(self) -> Callable:
        return self.spmd(lambda tree: jax.tree.map(lambda x: jax.lax.psum(x, AXIS), tree), (SHARDED,), REPLICATED)

    def sum(self, tree: PyTree) -> PyTree:
        """``tree``'s arrays (leading axis of at least one) summed over all processes, on ``device``."""
        if self.count == 1:
            return tree
        return self.local(self._sum(self.sharded(tree)))

    @functools.cached_property
    def _gather(self) -> Callable:
        gather = lambda x: jax.lax.all_gather(x, AXIS, tiled=True)
        return self.spmd(lambda tree: jax.tree.map(gather, tree), (SHARDED,), REPLICATED, check_vma=False)

    def gather(self, tree: PyTree, axis: int = 0) -> PyTree:
        """Every process's ``tree`` concatenated along ``axis`` in process order, on ``device``."""
        if self.count == 1:
            return tree
        gathered = self.local(self._gather(self.sharded(jax.tree.map(lambda x: jnp.moveaxis(x, axis, 0), tree))))
        return jax.tree.map(lambda x: jnp.moveaxis(x, 0, axis), gathered)

    def agree(self, flag: bool) -> bool:
        """Whether ``flag`` is set in any process (all processes get the same answer)."""
        if self.count == 1:
            return flag
        return bool(self.sum(jnp.asarray([int(flag)], jnp.int32))[0])


class Collective:
    """A jitted program that crosses processes. Called, it compiles for its arguments' shapes
    first (once), then waits at ``Group.barrier`` for every process, then runs: the processes
    enter it together however long each took to get there."""

    def __init__(self, group: Group, jitted: Callable):
        self.group, self.jitted = group, jitted
        self._compiled: dict = {}

    def __call__(self, *args: PyTree) -> PyTree:
        leaves, treedef = jax.tree.flatten(args)
        signature = (treedef, tuple((x.shape, x.dtype, x.sharding) for x in leaves))
        if signature not in self._compiled:
            self._compiled[signature] = self.jitted.lower(*args).compile()
        self.group.barrier()
        return self._compiled[signature](*args)


@functools.cache
def current() -> Group:
    """The process group this process belongs to (one process unless ``initialize`` ran)."""
    first = {}
    for device in jax.devices():
        first.setdefault(device.process_index, device)
    devices = [first[p] for p in sorted(first)]
    return Group(jax.process_index(), len(devices), Mesh(devices, (AXIS,)), _barrier_timeout_s["value"])


def fingerprint(tree: PyTree) -> jax.Array:
    """() int32 checksum of the bits of ``tree``'s float32 arrays: equal trees give equal
    fingerprints; one flipped bit anywhere changes it."""
    words = [
        jax.lax.bitcast_convert_type(x, jnp.int32).ravel() for x in jax.tree.leaves(tree) if x.dtype == jnp.float32
    ]
    return sum((jnp.sum(w) for w in words), jnp.zeros((), jnp.int32))  # wraps: the sum mod 2^32


def mismatches(fingerprints: jax.Array) -> jax.Array:
    """() int32 how many of ``fingerprints`` differ between processes (inside ``Group.spmd``)."""
    return jnp.sum(jax.lax.pmax(fingerprints, AXIS) != jax.lax.pmin(fingerprints, AXIS)).astype(jnp.int32)
