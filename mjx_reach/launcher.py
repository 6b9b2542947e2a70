"""Start a run's processes on this host and end them together (no JAX here).

``python train.py --processes P`` runs this launcher: it starts P copies of the same command, each
told its process index and the coordinator (``--process-id``, ``--coordinator``), and then only
watches them. Each process sees one device: on a GPU host its own GPU (``CUDA_VISIBLE_DEVICES``),
on a CPU its own group of cores (CPU affinity; XLA and Warp size their thread pools to it).
Process 0 prints the progress and the summary; the others' output follows.

Failure is loud and quick: when a process exits with an error or is killed, the others get
SIGTERM and, ``distributed.stop_grace_s`` later, SIGKILL, and the launcher prints one line naming
the process that ended first (the others' errors are then the lost connection to it) and its error
(its own ``error:`` line, or the last line it wrote), on a line of its own, and exits 1.
Ctrl-C reaches every process: they stop after the same chunk, checkpoint and exit; the launcher
waits for them. On several hosts each host runs its own launcher; a host that dies stops sending
heartbeats and JAX's coordination service ends the others' processes after
``distributed.heartbeat_timeout_s``, which their launchers then report.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time

ERROR_PREFIX = b"error: "
POLL_S = 0.2
"""How often the launcher looks at its processes, seconds."""


def free_port() -> int:
    """A TCP port free on this host now (for a single-host run's coordinator)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def core_groups(count: int, cores: list[int] | None = None) -> list[list[int]]:
    """``cores`` (default: the cores this process may run on) split into ``count`` contiguous
    groups as even as can be; every group gets at least one core (groups share cores when there
    are fewer cores than groups)."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else cores
    if count > len(cores):
        return [[cores[i % len(cores)]] for i in range(count)]
    bounds = [round(i * len(cores) / count) for i in range(count + 1)]
    return [cores[bounds[i] : bounds[i + 1]] for i in range(count)]


def gpu_for(local_index: int, environ: dict[str, str]) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` of local process ``local_index``: its entry of this host's list
    (``environ``'s, else GPUs 0, 1, ...)."""
    visible = [v for v in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[local_index % len(visible)] if visible else str(local_index)


@dataclasses.dataclass
class _Child:
    """One started process and what the launcher relays and remembers of its output."""

    index: int
    popen: subprocess.Popen
    error: str = ""
    last_line: str = ""
    threads: list[threading.Thread] = dataclasses.field(default_factory=list)
    ended_at: float | None = None
    """``time.monotonic()`` when it exited (set by ``reap``): which of several failed first."""

    def reap(self) -> None:
        """Wait for the process to exit and note when (run in a thread of its own)."""
        self.popen.wait()
        self.ended_at = time.monotonic()

    @property
    def failed(self) -> bool:
        return self.ended_at is not None and self.popen.returncode != 0


class _Stream:
    """One of the launcher's output streams, shared by the relays that copy into it: writes whole
    chunks under a lock and remembers whether the last one left a line open (a progress bar), so
    that the launcher's own report starts on a line of its own."""

    def __init__(self, buffer):
        self.buffer, self.line_open, self.lock = buffer, False, threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.buffer.write(data)
            self.buffer.flush()
            self.line_open = not data.endswith(b"\n")

    def report(self, text: str) -> None:
        """``text`` as a line of its own."""
        self.write(b"\n" * self.line_open + text.encode() + b"\n")


class _Relay:
    """Copies a child's stream to ours as it comes (progress bars included), except its ``error:``
    lines, which the launcher reports itself; stops copying once the run is failing."""

    def __init__(self, child: _Child, source, sink, failing: threading.Event):
        self.child, self.source, self.sink, self.failing = child, source, sink, failing
        self.line = b""
        self.held = True

    def run(self) -> None:
        for chunk in iter(lambda: os.read(self.source.fileno(), 65536), b""):
            self._feed(chunk)
        self._end_line()

    def _feed(self, chunk: bytes) -> None:
        while chunk:
            cut = chunk.find(b"\n")
            part, chunk = (chunk, b"") if cut < 0 else (chunk[: cut + 1], chunk[cut + 1 :])
            self.line += part
            if not self.held:
                self._write(part)
            elif not (ERROR_PREFIX.startswith(self.line) or self.line.startswith(ERROR_PREFIX)):
                self.held = False
                self._write(self.line)
            if cut >= 0:
                self._end_line()

    def _end_line(self) -> None:
        text = self.line.decode(errors="replace").strip().split("\r")[-1].strip()
        if text:
            self.child.last_line = text
            if self.line.startswith(ERROR_PREFIX):
                self.child.error = text[len(ERROR_PREFIX) :]
        self.line, self.held = b"", True

    def _write(self, data: bytes) -> None:
        if not self.failing.is_set():
            self.sink.write(data)


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """``--processes`` (and the flags the launcher gives each process) for a benchmark script."""
    parser.add_argument("--processes", type=int, default=1, help="processes on this host (one device each)")
    parser.add_argument("--process-id", type=int, help="this process's index: set by the launcher")
    parser.add_argument("--coordinator", default="", help="process 0's HOST:PORT: set by the launcher")


def start_script_processes(args: argparse.Namespace, argv: list[str]) -> int | None:
    """For a script parsed with ``add_process_arguments``: with ``--processes`` P > 1, start its P
    processes (``launch``) and return their exit status, or join this process to them
    (``distributed.initialize``, default timeouts) and return None; with one process, None."""
    if args.processes <= 1:
        return None
    from mjx_reach.config import DistributedConfig

    dist = DistributedConfig()
    if args.process_id is None:
        return launch(argv, args.processes, 1, 0, None, dist.stop_grace_s)
    from mjx_reach import distributed

    distributed.initialize(args.coordinator, args.processes, args.process_id, dist)
    return None


def child_command(argv: list[str], process_id: int, coordinator: str) -> list[str]:
    """The command of one process: this script with ``argv`` and its place in the run."""
    return [sys.executable, sys.argv[0], *argv, "--process-id", str(process_id), "--coordinator", coordinator]


def launch(
    argv: list[str], processes: int, hosts: int, host_rank: int, coordinator: str | None, stop_grace_s: float
) -> int:
    """Run ``processes`` copies of this script with ``argv`` on this host (host ``host_rank`` of
    ``hosts``; process ids ``host_rank · processes + i``), process 0 serving the coordinator at
    ``coordinator`` (default: a free port of this host); returns the exit status (module docstring)."""
    coordinator = coordinator or f"127.0.0.1:{free_port()}"
    groups = core_groups(processes)
    failing = threading.Event()
    children: list[_Child] = []
    out, err = _Stream(sys.stdout.buffer), _Stream(sys.stderr.buffer)
    for local in range(processes):
        index = host_rank * processes + local
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu_for(local, os.environ), PYTHONUNBUFFERED="1")
        popen = subprocess.Popen(
            child_command(argv, index, coordinator), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        os.sched_setaffinity(popen.pid, groups[local])  # before the child starts its thread pools
        child = _Child(index, popen)
        for source, sink in ((popen.stdout, out), (popen.stderr, err)):
            thread = threading.Thread(target=_Relay(child, source, sink, failing).run, daemon=True)
            thread.start()
            child.threads.append(thread)
        threading.Thread(target=child.reap, daemon=True).start()
        children.append(child)

    interrupted = {"signal": None}

    def forward(signum, _frame):
        interrupted["signal"] = signum
        for child in children:
            if child.popen.poll() is None:
                child.popen.send_signal(signum)

    handlers = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        failed = _watch(children, failing, stop_grace_s, interrupted)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    for child in children:
        for thread in child.threads:
            thread.join(timeout=1.0)
    if failed is None:
        return 0
    if interrupted["signal"] is not None:  # every process stopped after the same chunk and said so
        err.report(f"error: {failed.error or failed.last_line}")
        return 1
    others = len(children) - 1
    err.report(
        f"error: process {failed.index} {_how(failed)}: {failed.error or failed.last_line or 'no output'}"
        + (f"; stopped the other {others} process{'es' * (others > 1)} on this host" if others else "")
    )
    return 1


def _watch(children: list[_Child], failing: threading.Event, stop_grace_s: float, interrupted: dict) -> _Child | None:
    """Wait for every child; on the first failure stop the rest, unless we were interrupted (then
    they are all stopping and checkpointing: wait for them). Returns the failed child (the one that
    exited first: the others' errors are then usually the lost connection to it; the first process
    after an interruption) or None."""
    while True:
        ended = all(child.ended_at is not None for child in children)
        failed = [child for child in children if child.failed]
        if interrupted["signal"] is not None:
            if ended:
                return failed[0] if failed else None
        elif failed:
            failed = min(failed, key=lambda child: child.ended_at)
            break
        elif ended:
            return None
        time.sleep(POLL_S)
    for thread in failed.threads:
        thread.join(timeout=1.0)  # its last words
    failing.set()
    running = [c for c in children if c.ended_at is None]
    for child in running:
        child.popen.terminate()
    deadline = time.monotonic() + stop_grace_s
    for child in running:
        try:
            child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.popen.kill()
            child.popen.wait()
    return failed


def _how(child: _Child) -> str:
    code = child.popen.returncode
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"
