"""The training loop: collect + update under one jit, host work only between chunks.

One *iteration* steps all ``num_envs`` worlds once with the exploring actor, writes the step to
the replay ring and runs ``updates_per_iteration`` DDPG updates; ``lax.scan`` runs
``iterations_per_chunk`` of them per jitted call. Between chunks the host logs (CSV +
TensorBoard), checkpoints (orbax, atomic), checks for NaN/inf and for Ctrl-C/SIGTERM, and every
``train.eval_every_chunks`` chunks (and after the last) evaluates the policy on held-out episodes
(``evaluate.Evaluator``: one jitted rollout taking the parameters as an argument).

Run folder: ``config.json`` (resolved config), ``checkpoints/`` (orbax), ``metrics.csv``, ``tb/``,
``eval.json``, ``eval.mp4``, ``phases.json`` (``phases``: the seconds of collection, updates, each
evaluation, the video and the checkpoints, and of pretraining when the run pretrains).

With several processes (``distributed``) every process runs this loop on its share of the worlds
and its replay shard; the updates average their gradients across processes, the chunk's figures
and the decision to stop are summed across them, the held-out episodes are split and gathered, and
process 0 alone writes the run folder (orbax writes each process's shard of a checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mjx_reach import config as config_lib
from mjx_reach import ddpg, distributed, memory, replay, runs
from mjx_reach import phases as phases_lib
from mjx_reach.config import STATE_DIM
from mjx_reach.distributed import REPLICATED, SHARDED
from mjx_reach.env import ReachEnv
from mjx_reach.runs import TrainingError


@struct.dataclass
class TrainState:
    agent: ddpg.AgentState
    env: object
    replay: replay.Replay
    key: jax.Array
    """This process's key (``distributed.Group.key``)."""
    env_steps: jax.Array
    """() int32 env steps so far, summed over envs (of all processes)."""


class Trainer:
    """Builds env, agent and replay for this process's share of ``cfg`` and runs the jitted chunks."""

    def __init__(self, cfg: config_lib.Config):
        self.cfg = config_lib.validate(cfg)
        self.group = distributed.current()
        self.num_envs = self.group.share(cfg.num_envs)
        """Worlds of this process."""
        self.env = ReachEnv(cfg, self.num_envs)
        self.agent = ddpg.Agent(cfg, self.env.image_shape)
        self.rows = memory.replay_rows(cfg.train.replay_capacity, cfg.num_envs)
        self._collect = jax.jit(self._collect_scan, donate_argnums=0)
        self._learn = self.group.spmd(
            self._learn_scan, (REPLICATED, SHARDED, SHARDED), (REPLICATED, REPLICATED), donate_argnums=(0,)
        )

    def init(self) -> TrainState:
        cfg = self.cfg
        key = self.group.key(jax.random.PRNGKey(cfg.seed))
        key, k_env = jax.random.split(key)
        env_state = jax.jit(jax.vmap(self.env.reset))(jax.random.split(k_env, self.num_envs))
        agent_state = self.agent.init()  # parameters from the run seed: the same in every process
        if cfg.train.init_encoder:
            self.group.barrier()  # orbax reads across processes: enter together (distributed's docstring)
            agent_state = self.agent.init(runs.load_encoder(cfg.train.init_encoder, agent_state.params))
        buf = replay.create(self.rows, self.num_envs, self.env.image_shape, STATE_DIM)
        return TrainState(agent_state, env_state, buf, key, jnp.zeros((), jnp.int32))

    def global_view(self, ts: TrainState) -> TrainState:
        """``ts`` as global arrays (``distributed.Group``): the agent replicated, the rest (worlds,
        replay, key) sharded by process; what checkpoints save."""
        return self.group.sharded(ts.replace(agent=None)).replace(agent=self.group.replicated(ts.agent))

    def _collect_step(self, ts: TrainState, _):
        """One vectorised env step with the exploring actor, written to the replay ring."""
        cfg = self.cfg
        key, k_noise, k_random = jax.random.split(ts.key, 3)
        obs = ts.env.obs
        action, _ = self.agent.act(ts.agent.params, obs)
        action = jnp.clip(action + cfg.agent.exploration_std * jax.random.normal(k_noise, action.shape), -1.0, 1.0)
        random_action = jax.random.uniform(k_random, action.shape, minval=-1.0, maxval=1.0)
        action = jnp.where(ts.env_steps < cfg.train.learning_starts, random_action, action)
        env_state = ts.env
        if cfg.train.domain_per_step:
            key, k_domain = jax.random.split(key)
            env_state = jax.vmap(self.env.redraw_domain)(env_state, jax.random.split(k_domain, self.num_envs))
        env_state = jax.vmap(self.env.step)(env_state, action)
        buf = replay.add(ts.replay, obs, action, env_state.reward, env_state.done)
        done = env_state.done
        metrics = {
            "episodes": jnp.sum(done),
            "success_sum": jnp.sum(done & env_state.metrics["success"]),
            "success_loose_sum": jnp.sum(done & env_state.metrics["success_loose"]),
            "final_distance_sum": jnp.sum(jnp.where(done, env_state.metrics["distance"], 0.0)),
        }
        return ts.replace(env=env_state, replay=buf, key=key, env_steps=ts.env_steps + cfg.num_envs), metrics

    def _update_step(self, carry, key):
        """One update on this process's share of the batch, drawn from its replay shard, with the
        gradients averaged over all processes; with several, the parameters' fingerprint after it."""
        agent_state, buf = carry
        batch = replay.sample(buf, key, self.group.share(self.cfg.agent.batch_size))
        agent_state, info = self.agent.update(agent_state, batch, key, average=self.group.mean)
        if self.group.count > 1:
            info["fingerprint"] = distributed.fingerprint(agent_state.params)
        return (agent_state, buf), info

    def _run_chunk(self, ts: TrainState, phases: phases_lib.Phases) -> tuple[TrainState, dict]:
        """``iterations_per_chunk`` env steps, then ``updates_per_iteration`` updates for each of
        them once the replay holds ``learning_starts`` transitions. Collection and learning are two
        scans: XLA:CPU runs convolutions far slower in a computation that also calls the Warp
        renderer, or inside a rolled loop (BENCHMARKS.md), so learning is its own unrolled scan.
        The collection figures are summed over all processes; the chunk's figures are read back
        (``summarize``), each scan's time counted in ``phases`` (``collection``, ``updates``)."""
        train = self.cfg.train
        with phases("collection"):
            ts, metrics = self._collect(ts)
            metrics = self.group.sum(metrics)
            learning = bool(ts.replay.size * self.cfg.num_envs >= train.learning_starts)
        if train.updates_per_iteration and learning:
            with phases("updates"):
                key, k_update = jax.random.split(ts.key)
                agent_state, infos = self._learn(
                    self.group.replicated(ts.agent), self.group.sharded(ts.replay), self.group.sharded(k_update)
                )
                ts = ts.replace(agent=self.group.local(agent_state), key=key)
                metrics |= self.group.local(infos)
                jax.block_until_ready(ts.agent)
        return ts, summarize(metrics)

    def _collect_scan(self, ts: TrainState):
        return jax.lax.scan(self._collect_step, ts, None, length=self.cfg.train.iterations_per_chunk)

    def _learn_scan(self, agent_state, buf, key):
        """The chunk's updates (inside ``Group.spmd``: ``buf`` and ``key`` are this process's);
        with several processes ``infos['replica_mismatches']`` counts the updates after which the
        processes' parameters differed."""
        train = self.cfg.train
        keys = jax.random.split(key, train.iterations_per_chunk * train.updates_per_iteration)
        (agent_state, _), infos = jax.lax.scan(self._update_step, (agent_state, buf), keys, unroll=train.unroll_updates)
        if "fingerprint" in infos:
            infos["replica_mismatches"] = distributed.mismatches(infos.pop("fingerprint"))
        return agent_state, infos


def summarize(metrics: dict) -> dict:
    """Host-side summary of one chunk's stacked per-iteration metrics."""
    m = jax.device_get(metrics)
    episodes = float(np.sum(m["episodes"]))
    out = {"episodes": episodes}
    if episodes > 0:
        out |= {
            "success": float(np.sum(m["success_sum"])) / episodes,
            "success_loose": float(np.sum(m["success_loose_sum"])) / episodes,
            "final_distance": float(np.sum(m["final_distance_sum"])) / episodes,
        }
    for k in ("critic_loss", "actor_loss", "bottleneck_loss", "q", "ee_error"):
        if k in m:
            out[k] = float(np.mean(m[k]))
    if "replica_mismatches" in m:
        out["replica_mismatches"] = float(m["replica_mismatches"])
    return out


EVAL_COLUMNS = {
    "eval_success_2cm": "success_2cm",
    "eval_success_5cm": "success_5cm",
    "eval_final_distance_m": "mean_final_distance_m",
    "eval_ee_error_m": "encoder_ee_error_m",
    "eval_ee_error_depth_median_m": "encoder_error_depth_median_m",
    "eval_oracle_success_2cm": "oracle_success_2cm",
    "eval_robustness_min_success_2cm": "robustness_min_success_2cm",
    "eval_robustness_min_success_5cm": "robustness_min_success_5cm",
}
"""``metrics.csv`` column → ``evaluate.Evaluator`` field, on the rows of chunks after which the
held-out evaluation ran."""


def time_to_success(rows: list[dict], target: float) -> float | None:
    """``wall_s`` of the first ``metrics.csv`` row (dicts of strings) whose held-out success@2 cm
    (``eval_success_2cm``) is at least ``target``; None when none is."""
    return next(
        (float(r["wall_s"]) for r in rows if r.get("eval_success_2cm") and float(r["eval_success_2cm"]) >= target), None
    )


def progress_postfix(summary: dict, last_eval: dict | None) -> dict[str, str]:
    """The progress bar's figures after a chunk: env-steps/s, the training episodes' success rate
    and, once a held-out evaluation has run, its success@2 cm (``eval@2cm``)."""
    postfix = {
        "steps/s": f"{summary['env_steps_per_s']:.0f}",
        "success": f"{summary.get('success', float('nan')):.2f}",
    }
    if last_eval is not None:
        postfix["eval@2cm"] = f"{last_eval['success_2cm']:.2f}"
    return postfix


def wants_robustness(cfg: config_lib.Config, final: bool) -> bool:
    """Whether a held-out evaluation (the last one when ``final``) reports the held-out benches
    (``train.robustness``)."""
    return cfg.train.robustness == "every" or (final and cfg.train.robustness == "final")


def _replay_in_checkpoint(trainer: Trainer) -> bool:
    """Whether checkpoints hold the replay: only up to ``train.replay_in_checkpoint_max_gb`` (a
    bigger one is refilled with fresh env steps after a resume)."""
    cfg = trainer.cfg
    size_gb = memory.replay_bytes(trainer.rows, cfg.num_envs, trainer.env.image_shape) / 1e9
    return size_gb <= cfg.train.replay_in_checkpoint_max_gb


def run(
    cfg: config_lib.Config,
    out: pathlib.Path,
    resume: bool = False,
    progress: bool = True,
    phases: phases_lib.Phases | None = None,
) -> dict:
    """Train ``cfg`` into run folder ``out``; returns the final evaluation (``eval.json``: the last
    held-out evaluation, ``target_success`` and ``time_to_success_2cm_s``). Where the time went,
    phase by phase (``phases``: a clock started by the caller, else here), goes to ``phases.json``
    and to the result's ``phases`` (not written to ``eval.json``). With ``resume`` the run
    continues from its last checkpoint under its saved config, except ``train.total_env_steps``,
    which ``cfg`` sets (so a resume can extend a run). Stops early once held-out success reaches
    ``train.target_success`` when ``train.stop_at_target``. Raises ``TrainingError`` with a one-line
    message on failure. Every process of a run (``distributed``) calls it; process 0 writes."""
    from tqdm import tqdm  # host-only dependency

    from mjx_reach import evaluate

    out = pathlib.Path(out)
    group = distributed.current()
    phases = phases or phases_lib.Phases()
    if resume:
        total = cfg.train.total_env_steps
        cfg = runs.read_config(out, "--resume: ")
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, total_env_steps=total))
    elif (out / "checkpoints").exists() and any((out / "checkpoints").iterdir()):
        raise TrainingError(f"{out} already holds checkpoints: pass --resume to continue it or choose another --out")
    memory.check_training(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.train.pretrain_encoder and not cfg.train.init_encoder and not resume:
        from mjx_reach import pretrain

        if not (out / "encoder").exists():  # else: a pretraining that finished before an interruption
            pretrain.pretrain(cfg, out, progress=progress and group.is_main, phases=phases)
        cfg = dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, init_encoder=str((out / "encoder").resolve()))
        )
    if group.is_main:
        runs.write_config(out, cfg)

    with phases("set-up: worlds, agent, replay"):
        trainer = Trainer(cfg)
        ts = jax.block_until_ready(trainer.init())
        checkpoints = runs.Checkpoints(out)
        keep_replay = _replay_in_checkpoint(trainer)

    def saved(ts: TrainState) -> TrainState:
        return trainer.global_view(ts if keep_replay else ts.replace(replay=None))

    if resume:
        with phases("checkpoints"):
            group.barrier()
            restored = group.local(checkpoints.restore_latest(saved(ts)))
            ts = restored if keep_replay else restored.replace(replay=ts.replay)

    evaluator = evaluate.Evaluator(
        cfg, evaluate.agent_policy(trainer.agent), oracle=evaluate.oracle_policy(trainer.agent), phases=phases
    )
    log = _RunLog(out, resume_from_step=int(ts.env_steps) if resume else None) if group.is_main else None
    stop = {"signal": None}
    handlers = {sig: signal.signal(sig, lambda s, _f: stop.update(signal=s)) for sig in (signal.SIGINT, signal.SIGTERM)}

    def save(ts):
        with phases("checkpoints"):
            checkpoints.save(int(ts.env_steps), saved(ts), group.replicated(ts.agent.params))

    total = cfg.train.total_env_steps
    per_chunk = cfg.num_envs * cfg.train.iterations_per_chunk
    bar = tqdm(
        total=total,
        initial=int(ts.env_steps),
        unit="step",
        disable=not (progress and group.is_main),
        dynamic_ncols=True,
    )
    chunk, run_start, last_eval, reached, stopping = 0, time.perf_counter(), None, False, False
    try:
        while int(ts.env_steps) < total and not stopping and not reached:
            start = time.perf_counter()
            ts, summary = trainer._run_chunk(ts, phases)
            elapsed = time.perf_counter() - start
            env_steps = int(ts.env_steps)
            bad = [k for k, v in summary.items() if not math.isfinite(v)]
            if bad:
                raise TrainingError(
                    f"non-finite {', '.join(bad)} at env step {env_steps}: stopped; the last good checkpoint is kept in {checkpoints.directory}"
                )
            if summary.get("replica_mismatches"):
                raise TrainingError(
                    f"the processes' parameters differ after an update of the chunk ending at env step {env_steps}: stopped; "
                    f"the last good checkpoint is kept in {checkpoints.directory}"
                )
            summary |= {"env_steps": env_steps, "env_steps_per_s": per_chunk / elapsed}
            final = env_steps >= total
            if final or (env_steps // per_chunk) % cfg.train.eval_every_chunks == 0:
                last_eval = evaluator(ts.agent.params, robustness=wants_robustness(cfg, final)) | {
                    "env_steps": env_steps
                }
                summary |= {column: last_eval[field] for column, field in EVAL_COLUMNS.items() if field in last_eval}
                reached = cfg.train.stop_at_target and last_eval["success_2cm"] >= cfg.train.target_success
            if log is not None:
                summary["wall_s"] = log.wall_offset + time.perf_counter() - run_start
                log.append(summary, env_steps)
            bar.update(per_chunk)
            bar.set_postfix(progress_postfix(summary, last_eval))
            chunk += 1
            stopping = group.agree(stop["signal"] is not None)  # every process stops after the same chunk
            if chunk % cfg.train.checkpoint_every_chunks == 0:
                save(ts)
        save(ts)
    finally:
        bar.close()
        if log is not None:
            log.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if stopping:
        raise TrainingError(
            f"interrupted by signal {stop['signal'] or 'in another process'}: checkpoint saved at env step {int(ts.env_steps)}; "
            "continue with --resume"
        )
    if last_eval is None or last_eval["env_steps"] != int(ts.env_steps):  # a resume of a finished run
        last_eval = evaluator(ts.agent.params, robustness=wants_robustness(cfg, True)) | {
            "env_steps": int(ts.env_steps)
        }
    result = last_eval | {
        "target_success": cfg.train.target_success,
        "time_to_success_2cm_s": time_to_success(log.metrics.rows, cfg.train.target_success) if log else None,
    }
    if group.is_main:
        if cfg.train.video_envs > 0:
            with phases("video"):
                evaluate.write_video(cfg, evaluator.act, ts.agent.params, out / "eval.mp4")
        runs.atomic_write(out / "eval.json", json.dumps(result, indent=2))
        result = result | {"phases": phases_lib.write(out, phases.table(), resumed=resume)}
    return result


class _RunLog:
    """Process 0's logs of a run: ``metrics.csv`` and TensorBoard's ``tb/``."""

    def __init__(self, out: pathlib.Path, resume_from_step: int | None):
        from tensorboardX import SummaryWriter

        self.metrics = runs.MetricsLog(out, resume_from_step=resume_from_step)
        self.wall_offset = self.metrics.wall_s
        self.writer = SummaryWriter(str(out / "tb"))

    def append(self, summary: dict, env_steps: int) -> None:
        self.metrics.append(summary)
        for k, v in summary.items():
            self.writer.add_scalar(k, v, env_steps)

    def close(self) -> None:
        self.writer.close()
