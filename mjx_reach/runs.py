"""The run folder: everything a run writes and reads back, in one place.

A run folder holds ``config.json`` (the resolved config), ``encoder/`` + ``pretrain.json`` (when
pretrained), ``checkpoints/`` (orbax), ``metrics.csv``, ``tb/``, ``eval.json``, ``eval.mp4`` and
``phases.json`` (whose format is ``phases``'). This module owns the file formats and their failure
modes: atomic writes, finding the latest run, reading the config, the orbax leaf layer of a
checkpoint (save, restore, damaged checkpoints moved aside), loading the network parameters or a
pretrained encoder, and the metrics CSV. Every failure is a ``TrainingError`` with a one-line
message.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from mjx_reach import config as config_lib
from mjx_reach import ddpg

PyTree = Any
"""A JAX pytree (a training state, network parameters)."""


class TrainingError(RuntimeError):
    """A run cannot continue; the message is one line."""


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename (never
    half-written)."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def write_config(run_dir: str | os.PathLike, cfg: config_lib.Config) -> None:
    """Write the resolved ``cfg`` as ``run_dir/config.json`` (atomically)."""
    atomic_write(pathlib.Path(run_dir) / "config.json", json.dumps(config_lib.to_dict(cfg), indent=2))


def latest_run(root: str | os.PathLike = "runs") -> pathlib.Path:
    """The most recently modified run folder in ``root``."""
    root = pathlib.Path(root)
    runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not runs:
        raise TrainingError(f"no run folder in {root}/ (pass the run folder)")
    return runs[-1]


def read_config(run_dir: str | os.PathLike, what: str = "") -> config_lib.Config:
    """The resolved config saved in run folder ``run_dir``; absent or unreadable: a one-line
    ``TrainingError`` prefixed with ``what``."""
    path = pathlib.Path(run_dir) / "config.json"
    if not path.exists():
        raise TrainingError(f"{what}{run_dir} is not a run folder (no config.json)")
    try:
        return config_lib.from_dict(config_lib.Config, json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise TrainingError(f"{what}{path}: unreadable config: {str(e).splitlines()[0]}") from None


def save_params(path: str | os.PathLike, params: PyTree) -> None:
    """Save a parameter pytree (e.g. a pretrained encoder) at ``path`` with orbax (atomic)."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(pathlib.Path(path).resolve(), params)


def restore_params(path: pathlib.Path, template: PyTree, what: str) -> PyTree:
    """``template``-shaped pytree saved by ``save_params`` (or a checkpoint's ``params`` item) at
    ``path``; a missing or damaged checkpoint is a one-line ``TrainingError`` starting with ``what``."""
    if not path.exists():
        raise TrainingError(f"{what}: no checkpoint at {path}")
    try:
        return ocp.StandardCheckpointer().restore(path, template)
    except Exception as e:  # orbax raises many types for a damaged checkpoint
        raise TrainingError(
            f"{what}: cannot read checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None


def load_encoder(path: str | os.PathLike, params: dict) -> dict:
    """``params`` with the encoder replaced by the one saved at ``path`` (``pretrain`` output)."""
    params = jax.tree.map(lambda x: x, params)
    params["encoder"] = restore_params(pathlib.Path(path).resolve(), params["encoder"], "--init-encoder")
    return params


def load_params(
    run_dir: str | os.PathLike, cfg: config_lib.Config | None = None
) -> tuple[config_lib.Config, ddpg.Agent, dict]:
    """(config, agent, network parameters) of the latest checkpoint in run folder ``run_dir``, without
    building an environment (checkpoints hold the parameters as their own ``params`` item); the
    agent is built from ``cfg`` (default: the run's saved config), which must give the networks the
    run's shapes."""
    cfg = read_config(run_dir) if cfg is None else cfg
    ckpt_dir = (pathlib.Path(run_dir) / "checkpoints").resolve()
    step = ocp.CheckpointManager(ckpt_dir).latest_step() if ckpt_dir.exists() else None
    if step is None:
        raise TrainingError(f"no checkpoint in {ckpt_dir}")
    agent = ddpg.Agent(cfg, config_lib.image_shape(cfg.env))
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct, agent.init().params)
    return cfg, agent, restore_params(ckpt_dir / str(step) / "params", template, f"{run_dir}")


class Checkpoints:
    """The run's ``checkpoints/`` folder: each checkpoint holds a training state (any pytree; the
    caller leaves out what it does not want saved) as its non-empty leaves by position (item
    ``train``; orbax cannot save zero-size arrays, which MJX ``Data`` has) and the network
    parameters as their own item ``params`` (what ``load_params`` reads)."""

    def __init__(self, run_dir: str | os.PathLike, max_to_keep: int = 2):
        self.directory = (pathlib.Path(run_dir) / "checkpoints").resolve()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep)
        )

    def latest_step(self) -> int | None:
        """Env step of the newest checkpoint, or None."""
        return self.manager.latest_step()

    @staticmethod
    def _leaves(state: PyTree) -> dict:
        return {f"leaf_{i:05d}": x for i, x in enumerate(jax.tree.leaves(state)) if x.size}

    def save(self, step: int, state: PyTree, params: PyTree) -> None:
        """Checkpoint ``state`` and ``params`` at env step ``step`` (once per step) and wait for it."""
        if self.manager.latest_step() == step:
            return
        items = ocp.args.Composite(
            train=ocp.args.StandardSave(self._leaves(state)), params=ocp.args.StandardSave(params)
        )
        self.manager.save(step, args=items, force=True)
        self.manager.wait_until_finished()

    def restore_latest(self, template: PyTree) -> PyTree:
        """``template`` restored from the newest readable checkpoint. Newer unreadable ones (damaged
        files) are reported on stderr and moved aside to ``<run>/damaged_checkpoints/`` (kept for
        inspection; the run then writes fresh checkpoints at those steps)."""
        if self.manager.latest_step() is None:
            raise TrainingError(f"--resume: no checkpoint in {self.directory}")
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, self._leaves(template))
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                saved = self.manager.restore(step, args=ocp.args.Composite(train=ocp.args.StandardRestore(target)))
            except Exception as e:  # orbax raises many types for a damaged checkpoint
                aside = self.directory.parent / "damaged_checkpoints" / str(step)
                if jax.process_index() == 0:  # the run's other processes fail on it too
                    aside.parent.mkdir(exist_ok=True)
                    os.replace(self.directory / str(step), aside)
                print(
                    f"warning: checkpoint {step} is unreadable ({type(e).__name__}): moved to {aside}, trying an older one",
                    file=sys.stderr,
                )
                self.manager.reload()
                continue
            return self._unflatten(template, saved["train"])
        raise TrainingError(f"--resume: no readable checkpoint in {self.directory}")

    @staticmethod
    def _unflatten(template: PyTree, saved: dict) -> PyTree:
        """Inverse of ``_leaves``: ``template`` with the saved leaves put back (zero-size leaves stay
        the template's)."""
        leaves, treedef = jax.tree.flatten(template)
        return treedef.unflatten([saved.get(f"leaf_{i:05d}", x) for i, x in enumerate(leaves)])


def read_metrics(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of ``run_dir/metrics.csv`` as float arrays (one entry per chunk; empty cells, i.e.
    values a chunk did not have, are NaN); ``{}`` when the file is missing."""
    rows = read_rows(run_dir)
    fields = rows[0].keys() if rows else ()
    return {k: np.array([float(r[k]) if r.get(k) else np.nan for r in rows]) for k in fields}


def read_rows(run_dir: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of ``run_dir/metrics.csv`` as written (strings; ``[]`` when the file is missing); a
    last line cut short by a kill (no newline yet) is dropped."""
    path = pathlib.Path(run_dir) / "metrics.csv"
    text = path.read_text() if path.exists() else ""
    return list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))


class MetricsLog:
    """``metrics.csv``: one row per chunk, appended; the header is the union of the columns seen
    (a row with a new column rewrites the file once, atomically). On resume, rows after the restored
    checkpoint's env step are dropped (those chunks run again)."""

    def __init__(self, run_dir: str | os.PathLike, resume_from_step: int | None = None):
        self.path = pathlib.Path(run_dir) / "metrics.csv"
        rows = read_rows(run_dir) if resume_from_step is not None else []
        self.rows = [r for r in rows if float(r["env_steps"]) <= resume_from_step]
        self.fields: list[str] = sorted({k for r in self.rows for k in r})
        self._rewrite()

    @property
    def wall_s(self) -> float:
        """``wall_s`` of the last row kept (0 for a new run): wall time counts over all sessions."""
        return float(self.rows[-1]["wall_s"]) if self.rows else 0.0

    def _rewrite(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.fields)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.path, buf.getvalue())

    def append(self, row: dict[str, float]) -> None:
        """Add one row (values formatted to 6 significant digits)."""
        row = {k: f"{v:.6g}" for k, v in row.items()}
        self.rows.append(row)
        if set(row) - set(self.fields):
            self.fields = sorted(set(self.fields) | set(row))
            self._rewrite()
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow(row)
            f.flush()
            os.fsync(f.fileno())
