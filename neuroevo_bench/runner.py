"""The budget loop shared by every algorithm: eval schedule, wall-clock, records, checkpoints, progress.

    eval at 0 frames -> train until the next eval point -> eval -> ... -> budget spent -> final eval

Training wall time and test-evaluation wall time are measured separately around those two calls. The
runner, not the algorithm, writes every record, so all algorithms produce the same files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from neuroevo_bench import records
from neuroevo_bench.algorithms import ActFn, Algorithm, RunContext
from neuroevo_bench.config import ConfigError, validate
from neuroevo_bench.envs import Ledger
from neuroevo_bench.evaluation import TestEvaluator, TestResult

# Keys that may differ between a run and its resumption without making the two incomparable.
RESUME_IGNORED_KEYS = ("resume", "overwrite", "progress_every_s", "checkpoint_every_s")
# curve columns shown on the eval line when the algorithm reports them, with their short labels
PROGRESS_KEYS = {
    "generation": "gen",
    "fitness_max": "fit max",
    "elite_score": "elite",
    "train_return": "train return",
}
OWNED_FILES = (
    records.RUN_JSON,
    records.CURVE_CSV,
    records.CHECKPOINT,
    "champion.json",
    "model.zip",
    "error.txt",
)


class Progress:
    """A periodic one-line status: frames, frames/s, and whatever the algorithm reports (throttled)."""

    def __init__(self, label: str, budget: int, every_s: float) -> None:
        self.label, self.budget, self.every_s = label, budget, every_s
        self.t_start = time.perf_counter()
        self.t_last = -float("inf")
        self.last_test: float | None = None

    def __call__(self, frames: int, force: bool = False, **fields: Any) -> None:
        now = time.perf_counter()
        if not force and now - self.t_last < self.every_s:
            return
        self.t_last = now
        parts = [
            f"[{self.label}]",
            f"frames {_si(frames)}/{_si(self.budget)} ({100 * frames / self.budget:.0f}%)",
        ]
        for k, v in fields.items():
            if k == "fps":
                parts.append(f"{_si(v)} fps")
            elif isinstance(v, float):
                parts.append(f"{k} {v:.1f}")
            else:
                parts.append(f"{k} {v}")
        if self.last_test is not None:
            parts.append(f"test {self.last_test:.1f}")
        parts.append(f"{now - self.t_start:.0f}s")
        print(" | ".join(parts), flush=True)


def _si(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}"


def config_fingerprint(cfg: DictConfig) -> str:
    d = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(d, dict)
    for k in RESUME_IGNORED_KEYS:
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop after the current generation / rollout; a second SIGINT aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        print(f"\nsignal {signal.Signals(signum).name}: finishing the current step, then saving", flush=True)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def prepare_run_dir(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """Refuse to overwrite an existing run unless asked; return its checkpoint when resuming."""
    run_json = run_dir / records.RUN_JSON
    if not run_json.exists():
        if cfg.resume and (run_dir / records.CHECKPOINT).exists():
            return records.load_pickle(run_dir / records.CHECKPOINT)
        return None
    try:
        status = records.read_json(run_json).get("status")
    except (OSError, ValueError):
        status = "unreadable"
    if cfg.overwrite:
        for name in OWNED_FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "model", ignore_errors=True)
        return None
    if not cfg.resume:
        raise ConfigError(
            f"run directory {run_dir} already holds a run (status: {status}). Pass resume=true to continue it, "
            "overwrite=true to replace it, or name=<new name> to start a separate run."
        )
    ckpt_path = run_dir / records.CHECKPOINT
    if not ckpt_path.exists():
        raise ConfigError(f"resume=true but {ckpt_path} does not exist; nothing to resume from")
    ckpt = records.load_pickle(ckpt_path)
    if ckpt["fingerprint"] != config_fingerprint(cfg):
        raise ConfigError(
            f"resume=true but the config differs from the one that started {run_dir}; resuming would make the "
            "run incomparable. Use the original overrides (see .hydra/overrides.yaml there), or name=<new name>."
        )
    return ckpt


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run one (algo, env, seed) to its frame budget and write its records into `run_dir`."""
    validate(cfg)
    torch.set_num_threads(int(cfg.resources.threads))

    budget = int(cfg.budget.frames)
    every = int(cfg.eval.every_frames)
    train_ledger = Ledger(cap=budget)
    eval_ledger = Ledger()
    label = f"{cfg.algo.name} {cfg.env.id} seed{cfg.seed}"
    progress = Progress(label, budget, float(cfg.progress_every_s))
    ctx = RunContext(
        env_cfg=cfg.env,
        ledger=train_ledger,
        seed=int(cfg.seed),
        resources=cfg.resources,
        evaluator_cfg=cfg.evaluator,
        progress=progress,
    )
    resolved = OmegaConf.to_container(cfg, resolve=True)
    info: dict[str, Any] = {
        "algo": cfg.algo.name,
        "env": cfg.env.name,
        "env_id": cfg.env.id,
        "seed": int(cfg.seed),
        "status": "running",
        "budget_frames": budget,
        "train_frames": 0,
        "eval_frames": 0,
        "agent_steps": 0,
        "frame_skip": int(cfg.env.frame_skip),
        "train_wall_s": 0.0,
        "eval_wall_s": 0.0,
        "final_score": None,
        "final_score_std": None,
        "untrained": None,
        "score_threshold": cfg.env.threshold,
        "score_random": cfg.env.score_random,
        "score_max": cfg.env.score_max,
        "network": None,
        "config": resolved,
        "machine": records.machine_info(int(cfg.resources.threads)),
        "versions": records.versions(),
        "git_commit": records.git_commit(),
        "started_at": records.now_iso(),
        "finished_at": None,
        "error": None,
    }
    curve: list[dict[str, Any]] = []
    train_wall = eval_wall = 0.0
    next_eval = 0
    # Build the algorithm before touching the run directory: a network that cannot handle the env's spaces
    # (or any other bad input found while building) fails here, with nothing written.
    algo: Algorithm = instantiate(cfg.algo, _partial_=True)(ctx=ctx)
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt = prepare_run_dir(cfg, run_dir)
    except BaseException:
        algo.close()
        raise
    if ckpt is not None and ckpt.get(
        "finished"
    ):  # resume=true on a complete run: nothing to do, nothing changed
        algo.close()
        done = records.read_json(run_dir / records.RUN_JSON)
        print(f"[{label}] already complete; nothing to resume", flush=True)
        print_summary(done, run_dir)
        return done
    info["network"] = algo.network
    info["env_settings"] = ctx.env_info.settings  # what the built env does, read back (Atari: protocol)
    if hasattr(algo, "record_extra"):  # e.g. SB3: hyperparameter source and the effective values
        info.update(algo.record_extra())
    tester: TestEvaluator | None = None
    try:
        tester = TestEvaluator(cfg.env, int(cfg.eval.episodes), int(cfg.eval.seed), eval_ledger)
        if ckpt is not None:
            algo.load_state_dict(ckpt["algo"])
            train_ledger.frames, train_ledger.agent_steps = ckpt["train_frames"], ckpt["agent_steps"]
            eval_ledger.frames = ckpt["eval_frames"]
            train_wall, eval_wall, next_eval, curve = (
                ckpt["train_wall_s"],
                ckpt["eval_wall_s"],
                ckpt["next_eval"],
                ckpt["curve"],
            )
            info["started_at"] = ckpt.get("started_at", info["started_at"])
            print(f"[{label}] resuming at {_si(train_ledger.frames)} frames from {run_dir}", flush=True)

        def save(status: str) -> None:
            info.update(
                status=status,
                train_frames=train_ledger.frames,
                agent_steps=train_ledger.agent_steps,
                eval_frames=eval_ledger.frames,
                train_wall_s=train_wall,
                eval_wall_s=eval_wall,
                final_score=curve[-1]["score_mean"] if curve else None,
                final_score_std=curve[-1]["score_std"] if curve else None,
                finished_at=records.now_iso() if status != "running" else None,
                algo_stats=algo.curve_stats(),
                # GA/RS: no generation completed, so the test policy is an untrained network
                untrained=bool(getattr(algo, "untrained", False)),
            )
            records.write_curve(run_dir / records.CURVE_CSV, curve)
            records.write_json(run_dir / records.RUN_JSON, info)

        def checkpoint(finished: bool = False) -> None:
            records.save_pickle(
                run_dir / records.CHECKPOINT,
                {
                    "finished": finished,
                    "fingerprint": config_fingerprint(cfg),
                    "algo": algo.state_dict(),
                    "train_frames": train_ledger.frames,
                    "agent_steps": train_ledger.agent_steps,
                    "eval_frames": eval_ledger.frames,
                    "train_wall_s": train_wall,
                    "eval_wall_s": eval_wall,
                    "next_eval": next_eval,
                    "curve": curve,
                    "started_at": info["started_at"],
                },
            )

        def evaluate() -> None:
            nonlocal eval_wall
            assert tester is not None
            result: TestResult = tester(algo.policy())
            eval_wall += result.wall_s
            r = result.returns
            curve.append(
                {
                    "frames": train_ledger.frames,
                    "agent_steps": train_ledger.agent_steps,
                    "train_wall_s": train_wall,
                    "eval_wall_s": eval_wall,
                    "eval_frames": eval_ledger.frames,
                    "score_mean": float(r.mean()),
                    "score_std": float(r.std()),
                    "score_min": float(r.min()),
                    "score_max": float(r.max()),
                    "episodes": len(r),
                    **algo.curve_stats(),
                }
            )
            fps = train_ledger.frames / train_wall if train_wall > 0 else 0.0
            shown = {PROGRESS_KEYS[k]: v for k, v in curve[-1].items() if k in PROGRESS_KEYS}
            progress.last_test = None
            progress(
                train_ledger.frames, force=True, fps=fps, **shown, test=f"{r.mean():.1f} ± {r.std():.1f}"
            )  # type: ignore[arg-type]
            progress.last_test = float(r.mean())

        save("running")
        with stop_on_signals(ctx.stop):
            more = not train_ledger.exhausted()
            if ckpt is None or not curve:
                evaluate()
                next_eval = every
                checkpoint()
            while more and not ctx.stop.is_set():
                t0 = time.perf_counter()
                more = algo.train_until(min(next_eval, budget))
                train_wall += time.perf_counter() - t0
                more = more and not train_ledger.exhausted()
                if ctx.stop.is_set():
                    break
                if train_ledger.frames >= next_eval or not more:
                    evaluate()
                    while next_eval <= train_ledger.frames:
                        next_eval += every
                    checkpoint()
                    save("running")
        if ctx.stop.is_set():
            checkpoint()
            save("interrupted")
            print(f"[{label}] interrupted; resume with the same command plus resume=true", flush=True)
            return info
        algo.save_policy(run_dir)
        checkpoint(finished=True)
        save("ok")
        print_summary(info, run_dir)
        return info
    except BaseException as exc:
        info["error"] = "".join(traceback.format_exception(exc))
        # KeyboardInterrupt: a second Ctrl-C; SystemExit: e.g. submitit requeueing a run at its time limit.
        status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
        info["status"] = status
        info["finished_at"] = records.now_iso()
        records.atomic_write_text(run_dir / "error.txt", info["error"])
        records.write_json(run_dir / records.RUN_JSON, info)
        raise
    finally:
        if tester is not None:
            tester.close()
        algo.close()


def print_summary(info: dict[str, Any], run_dir: Path) -> None:
    fps = info["train_frames"] / info["train_wall_s"] if info["train_wall_s"] > 0 else float("nan")
    print(
        f"\n{info['algo']} on {info['env_id']} (seed {info['seed']}) used {info['train_frames']:,} of "
        f"{info['budget_frames']:,} budget frames ({info['agent_steps']:,} agent steps) in "
        f"{info['train_wall_s']:.1f} s of training ({_si(fps)} frames/s) plus {info['eval_wall_s']:.1f} s of "
        f"test evaluation ({info['eval_frames']:,} frames, not charged). Final test score: "
        f"{info['final_score']:.2f} ± {info['final_score_std']:.2f} over the evaluation episodes. "
        f"Results: {run_dir}",
        flush=True,
    )
    if info.get("untrained"):
        print(
            f"warning: no {info['algo']} generation completed within budget.frames={info['budget_frames']:,}: "
            "the score is an untrained network's (run.json: untrained=true). Raise budget.frames or lower "
            "algo.population / algo.episodes_per_fitness.",
            flush=True,
        )


def load_policy(run_dir: Path) -> tuple[ActFn, DictConfig]:
    """The saved final policy of a finished run and its config (for replay and reload checks)."""
    run_dir = Path(run_dir)
    cfg = OmegaConf.create(records.read_json(run_dir / records.RUN_JSON)["config"])
    module = sys.modules.get(get_class(cfg.algo._target_).__module__)
    assert module is not None
    return module.load_policy(run_dir), cfg


def replay_score(run_dir: Path, episodes: int | None = None) -> np.ndarray:
    """Re-score a saved final policy with the shared test evaluator (same seed as the run's final eval)."""
    act, cfg = load_policy(run_dir)
    tester = TestEvaluator(cfg.env, int(episodes or cfg.eval.episodes), int(cfg.eval.seed), Ledger())
    try:
        return tester(act).returns
    finally:
        tester.close()
