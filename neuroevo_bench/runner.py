"""The budget loop shared by every algorithm: eval schedule, wall-clock, records, checkpoints, progress.

    eval at 0 frames -> train until the next eval point -> eval -> ... -> budget spent -> final eval

Training wall time and test-evaluation wall time are measured separately around those two calls. The
runner, not the algorithm, writes every record, so all algorithms produce the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from neuroevo_bench import records
from neuroevo_bench.algorithms import ActFn, Algorithm, RunContext
from neuroevo_bench.config import ConfigError, validate
from neuroevo_bench.envs import Ledger
from neuroevo_bench.evaluation import TestEvaluator, TestResult

# Keys that may differ between a run and its resumption without making the two incomparable.
RESUME_IGNORED_KEYS = ("resume", "overwrite", "progress_every_s", "checkpoint_every_s", "logger")
# curve columns shown on the eval line when the algorithm reports them, with their short labels
PROGRESS_KEYS = {
    "generation": "gen",
    "fitness_max": "fit max",
    "elite_score": "elite",
    "train_return": "train return",
}
OWNED_DIRS = ("model", "tensorboard")
OWNED_FILES = (
    records.RUN_JSON,
    records.CURVE_CSV,
    records.CHECKPOINT,
    "champion.json",
    "policy.npz",
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)  # SIGUSR2: submitit's time-limit warning
CHECKPOINT_FORMAT = 2  # bumped when a checkpoint's contents change; an older one is refused, not misread


@contextmanager
def stop_on_signals(stop: threading.Event, received: list[int]) -> Iterator[dict[int, Any]]:
    """SIGINT, SIGTERM and SIGUSR2 ask the run to stop: a generation stops at its next env step, SB3 at its
    next vector step, then the runner checkpoints at once. A second SIGINT aborts. Yields the handlers this
    replaced (submitit's SIGUSR2 handler requeues a SLURM job: the runner calls it once the checkpoint is
    written)."""
    if threading.current_thread() is not threading.main_thread():
        yield {}
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        # os.write, not print: a print in a handler can collide with the print it interrupted
        os.write(2, f"\nsignal {signal.Signals(signum).name}: checkpointing now, then stopping\n".encode())
        received.append(signum)
        stop.set()

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield old
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint, or a ConfigError naming the file when it is truncated or from another format."""
    try:
        ckpt = records.load_pickle(path)
    except Exception as exc:  # truncated or corrupted: pickle raises many kinds
        raise ConfigError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it is damaged. Start the run "
            "again with overwrite=true, or under a new name=..."
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format", 1) if isinstance(ckpt, dict) else "unknown"
        raise ConfigError(
            f"checkpoint {path} has format {found}, but this version of neuroevo_bench reads format "
            f"{CHECKPOINT_FORMAT}; resume it with the version that wrote it (run.json: git_commit), or start "
            "again with overwrite=true"
        )
    return ckpt


def requeued() -> bool:
    """True when SLURM restarted this job (submitit requeues a preempted or timed-out job): it then resumes
    its run without `resume=true`."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def clear_run(run_dir: Path) -> None:
    """Remove what a run writes into its directory (overwrite=true, or a restart)."""
    for name in OWNED_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in OWNED_DIRS:
        shutil.rmtree(run_dir / name, ignore_errors=True)


def prepare_run_dir(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """Refuse to overwrite an existing run unless asked; return its checkpoint when resuming.

    Read-only until it returns: a refused command changes nothing in the run directory.
    """
    run_json = run_dir / records.RUN_JSON
    ckpt_path = run_dir / records.CHECKPOINT
    resume = bool(cfg.resume) or requeued()
    if cfg.overwrite and not (requeued() and ckpt_path.exists()):  # a requeued job continues, never restarts
        clear_run(run_dir)
        return None
    if not run_json.exists() and not ckpt_path.exists():
        return None
    if not resume:
        try:
            status = records.read_json(run_json).get("status") if run_json.exists() else "checkpoint only"
        except (OSError, ValueError):
            status = "unreadable"
        raise ConfigError(
            f"run directory {run_dir} already holds a run (status: {status}). Pass resume=true to continue it, "
            "overwrite=true to replace it, or name=<new name> to start a separate run."
        )
    if not ckpt_path.exists():
        status = records.read_json(run_json).get("status") if run_json.exists() else None
        if status == "ok":  # finished, its checkpoint since deleted (as in results/reference)
            return {"finished": True}
        clear_run(run_dir)  # stopped before its first checkpoint (the test at 0 frames): nothing was trained
        return None
    ckpt = read_checkpoint(ckpt_path)
    if ckpt["fingerprint"] != config_fingerprint(cfg):
        raise ConfigError(
            f"resume=true but the config differs from the one that started {run_dir}; resuming would make the "
            "run incomparable. Use the original overrides (see .hydra/overrides.yaml there), or name=<new name>."
        )
    return ckpt


def write_hydra_record(run_dir: Path, cfg: DictConfig) -> None:
    """`<run dir>/.hydra/` (config, hydra, overrides), as Hydra writes it, but only once the run is accepted:
    the app sets `hydra.output_subdir: null`, so a refused command never rewrites an existing run's record."""
    if not HydraConfig.initialized():  # run() called directly (tests, notebooks): no Hydra record
        return
    hydra_cfg = HydraConfig.get()
    out = run_dir / ".hydra"
    out.mkdir(exist_ok=True)
    records.atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg))
    records.atomic_write_text(out / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
    records.atomic_write_text(out / "overrides.yaml", OmegaConf.to_yaml(list(hydra_cfg.overrides.task)))


class ScalarLog:
    """`logger=tensorboard`: every test evaluation and every generation / rollout as TensorBoard scalars against
    training frames, in `<run dir>/tensorboard`, so `tensorboard --logdir results/<name>` shows a sweep's runs
    side by side while they run. The records (run.json, curve.csv) stay the source of every reported number."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def __call__(self, frames: int, scalars: dict[str, Any]) -> None:
        for name, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                self.writer.add_scalar(name, float(value), int(frames))

    def close(self) -> None:
        self.writer.close()


class Run:
    """One (algo, env, seed) trained to its frame budget, its records written into `run_dir`.

        eval at 0 frames -> train until the next eval point -> eval -> ... -> budget spent -> final eval

    with a checkpoint after every eval point, every `checkpoint_every_s` of training (inside a long generation
    too) and at once on SIGINT / SIGTERM / SIGUSR2. Training and test-evaluation wall time are measured
    separately. The run, not the algorithm, writes every record, so all algorithms produce the same files.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        validate(cfg)
        torch.set_num_threads(int(cfg.resources.threads))
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.budget, self.every = int(cfg.budget.frames), int(cfg.eval.every_frames)
        self.checkpoint_every_s = float(cfg.checkpoint_every_s)
        self.train_ledger, self.eval_ledger = Ledger(cap=self.budget), Ledger()
        self.label = f"{cfg.algo.name} {cfg.env.id} seed{cfg.seed}"
        self.progress = Progress(self.label, self.budget, float(cfg.progress_every_s))
        self.ctx = RunContext(
            env_cfg=cfg.env,
            ledger=self.train_ledger,
            seed=int(cfg.seed),
            resources=cfg.resources,
            evaluator_cfg=cfg.evaluator,
            progress=self.progress,
            checkpoint_if_due=self.checkpoint_if_due,
        )
        self.curve: list[dict[str, Any]] = []
        self.train_wall = self.eval_wall = 0.0
        self.train_started: float | None = None  # perf_counter at the start of the current training stretch
        self.next_eval = 0
        self.last_checkpoint = time.perf_counter()
        self.signals: list[int] = []
        self.info = self._initial_info()
        # Build the algorithm before touching the run directory: a network that cannot handle the env's
        # spaces (or any other bad input found while building) fails here, with nothing written.
        self.algo: Algorithm = instantiate(cfg.algo, _partial_=True)(ctx=self.ctx)
        self.tester: TestEvaluator | None = None
        self.scalars: ScalarLog | None = None

    def _initial_info(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "algo": cfg.algo.name,
            "env": cfg.env.name,
            "env_id": cfg.env.id,
            "seed": int(cfg.seed),
            "status": "running",
            "budget_frames": self.budget,
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
            "config": OmegaConf.to_container(cfg, resolve=True),
            "machine": records.machine_info(int(cfg.resources.threads)),
            "versions": records.versions(),
            "git_commit": records.git_commit(),
            "started_at": records.now_iso(),
            "finished_at": None,
            "error": None,
        }

    # --- the loop ---------------------------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt = prepare_run_dir(self.cfg, self.run_dir)
            if ckpt is not None and not ckpt.get("finished"):
                self.resume(ckpt)  # a checkpoint that does not fit is refused here, with nothing written
        except BaseException:
            self.algo.close()
            raise
        if ckpt is not None and ckpt.get("finished"):  # resume=true on a complete run: nothing changes
            self.algo.close()
            done = records.read_json(self.run_dir / records.RUN_JSON)
            print(f"[{self.label}] already complete; nothing to resume", flush=True)
            print_summary(done, self.run_dir)
            return done
        write_hydra_record(self.run_dir, self.cfg)
        if self.cfg.logger == "tensorboard":
            self.scalars = ScalarLog(self.run_dir / "tensorboard")
            self.ctx.log = self.scalars
        self.info["network"] = self.algo.network
        self.info["env_settings"] = self.ctx.env_info.settings  # what the built env does, read back
        if hasattr(self.algo, "record_extra"):  # e.g. SB3: hyperparameter source and the effective values
            self.info.update(self.algo.record_extra())
        replaced: dict[int, Any] = {}
        try:
            self.tester = TestEvaluator(
                self.cfg.env, int(self.cfg.eval.episodes), int(self.cfg.eval.seed), self.eval_ledger
            )
            self.save("running")
            with stop_on_signals(self.ctx.stop, self.signals) as replaced:
                self.train()
                if self.ctx.stop.is_set():  # still under our handlers: a second signal cannot cut this short
                    self.checkpoint()
                    self.save("interrupted")
                    print(
                        f"[{self.label}] interrupted; resume with the same command plus resume=true",
                        flush=True,
                    )
            if not self.ctx.stop.is_set():
                self.algo.save_policy(self.run_dir)
                self.checkpoint(finished=True)
                self.save("ok")
                print_summary(self.info, self.run_dir)
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            if self.tester is not None:
                self.tester.close()
            if self.scalars is not None:
                self.scalars.close()
            self.algo.close()
        self._chain_signal(replaced)  # after the records are complete: submitit may requeue and exit here
        return self.info

    def train(self) -> None:
        """Evaluate at 0 frames, then alternate training stretches and test evaluations until the budget is
        spent or a stop is requested. A test evaluation a stop cut off is simply done again after a resume."""
        more = not self.train_ledger.exhausted()
        if not self.curve:
            if not self.evaluate():
                return
            self.next_eval = self.every
            self.checkpoint()
        while not self.ctx.stop.is_set():
            if more:
                self.train_started = time.perf_counter()
                more = self.algo.train_until(min(self.next_eval, self.budget))
                self.train_wall += time.perf_counter() - self.train_started
                self.train_started = None
                more = more and not self.train_ledger.exhausted()
                if self.ctx.stop.is_set():
                    break
            tested_here = self.curve[-1]["frames"] == self.train_ledger.frames
            if (self.train_ledger.frames >= self.next_eval or not more) and not tested_here:
                if not self.evaluate():
                    break
                while self.next_eval <= self.train_ledger.frames:
                    self.next_eval += self.every
                self.checkpoint()
                self.save("running")
            if not more:
                break

    def evaluate(self) -> bool:
        """One test evaluation of the current policy: a row of the curve and a progress line. False (and no
        row) when a stop request cut it off."""
        assert self.tester is not None
        result: TestResult | None = self.tester(self.algo.policy(), stop=self.ctx.stop.is_set)
        if result is None:
            return False
        self.eval_wall += result.wall_s
        r = result.returns
        self.curve.append(
            {
                "frames": self.train_ledger.frames,
                "agent_steps": self.train_ledger.agent_steps,
                "train_wall_s": self.train_wall,
                "eval_wall_s": self.eval_wall,
                "eval_frames": self.eval_ledger.frames,
                "score_mean": float(r.mean()),
                "score_std": float(r.std()),
                "score_min": float(r.min()),
                "score_max": float(r.max()),
                "episodes": len(r),
                **self.algo.curve_stats(),
            }
        )
        fps = self.train_ledger.frames / self.train_wall if self.train_wall > 0 else 0.0
        self.ctx.log(
            self.train_ledger.frames, {f"test/{k}": v for k, v in self.curve[-1].items()} | {"train/fps": fps}
        )
        shown = {PROGRESS_KEYS[k]: v for k, v in self.curve[-1].items() if k in PROGRESS_KEYS}
        self.progress.last_test = None
        test = f"{r.mean():.1f} ± {r.std():.1f}"
        self.progress(self.train_ledger.frames, force=True, fps=fps, **shown, test=test)  # type: ignore[arg-type]
        self.progress.last_test = float(r.mean())
        return True

    # --- checkpoints and records ----------------------------------------------------------------------------
    def checkpoint_if_due(self) -> None:
        """Called from inside training (a long generation, a rollout's start): checkpoint every
        `checkpoint_every_s`, so a run killed at any moment (SIGKILL included) loses at most that much work,
        and bring run.json up to date, so `analyze status` shows the run's progress."""
        if time.perf_counter() - self.last_checkpoint >= self.checkpoint_every_s:
            self.checkpoint()
            self.save("running")

    def spent(self) -> tuple[int, int, float]:
        """Training (frames, agent steps, wall-clock s) as a checkpoint holds them. Within a GA generation only
        its finished episodes count (an episode cut off by an interruption is played again after a resume:
        `frames_done`); the wall-clock includes the training stretch under way."""
        frames_done = getattr(self.algo, "frames_done", None)
        frames, steps = (
            frames_done() if frames_done else (self.train_ledger.frames, self.train_ledger.agent_steps)
        )
        running = 0.0 if self.train_started is None else time.perf_counter() - self.train_started
        return frames, steps, self.train_wall + running

    def checkpoint(self, finished: bool = False) -> None:
        """Write everything `resume` needs, atomically."""
        frames, steps, wall = self.spent()
        records.save_pickle(
            self.run_dir / records.CHECKPOINT,
            {
                "format": CHECKPOINT_FORMAT,
                "finished": finished,
                "fingerprint": config_fingerprint(self.cfg),
                "algo": self.algo.state_dict(),
                "train_frames": frames,
                "agent_steps": steps,
                "eval_frames": self.eval_ledger.frames,
                "train_wall_s": wall,
                "eval_wall_s": self.eval_wall,
                "next_eval": self.next_eval,
                "curve": self.curve,
                "started_at": self.info["started_at"],
            },
        )
        self.last_checkpoint = time.perf_counter()

    def resume(self, ckpt: dict[str, Any]) -> None:
        try:
            self.algo.load_state_dict(ckpt["algo"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"checkpoint {self.run_dir / records.CHECKPOINT} does not fit {self.cfg.algo.name} "
                f"({type(exc).__name__}: {exc}); start the run again with overwrite=true"
            ) from exc
        self.train_ledger.frames, self.train_ledger.agent_steps = ckpt["train_frames"], ckpt["agent_steps"]
        self.eval_ledger.frames = ckpt["eval_frames"]
        self.train_wall, self.eval_wall = ckpt["train_wall_s"], ckpt["eval_wall_s"]
        self.next_eval, self.curve = ckpt["next_eval"], ckpt["curve"]
        self.info["started_at"] = ckpt.get("started_at", self.info["started_at"])
        print(
            f"[{self.label}] resuming at {_si(self.train_ledger.frames)} frames from {self.run_dir}",
            flush=True,
        )

    def save(self, status: str) -> None:
        """run.json and curve.csv, atomically; their frames and wall-clock are the checkpoint's (:meth:`spent`)."""
        frames, steps, wall = self.spent()
        self.info.update(
            status=status,
            train_frames=frames,
            agent_steps=steps,
            eval_frames=self.eval_ledger.frames,
            train_wall_s=wall,
            eval_wall_s=self.eval_wall,
            final_score=self.curve[-1]["score_mean"] if self.curve else None,
            final_score_std=self.curve[-1]["score_std"] if self.curve else None,
            finished_at=records.now_iso() if status != "running" else None,
            algo_stats=self.algo.curve_stats(),
            # GA/RS: no generation completed, so the test policy is an untrained network
            untrained=bool(getattr(self.algo, "untrained", False)),
        )
        records.write_curve(self.run_dir / records.CURVE_CSV, self.curve)
        records.write_json(self.run_dir / records.RUN_JSON, self.info)

    def fail(self, exc: BaseException) -> None:
        """Record a run that raised: `failed`, or `interrupted` for a second Ctrl-C (KeyboardInterrupt) and a
        SystemExit (e.g. submitit requeueing the job)."""
        self.info["error"] = "".join(traceback.format_exception(exc))
        self.info["status"] = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
        self.info["finished_at"] = records.now_iso()
        records.atomic_write_text(self.run_dir / "error.txt", self.info["error"])
        records.write_json(self.run_dir / records.RUN_JSON, self.info)

    def _chain_signal(self, replaced: dict[int, Any]) -> None:
        """Once the records are complete, hand SIGUSR2 to the handler it replaced: under submitit that requeues
        the SLURM job (and exits), and the requeued job resumes this run by itself (:func:`requeued`)."""
        previous = replaced.get(signal.SIGUSR2)
        if signal.SIGUSR2 in self.signals and callable(previous):
            previous(signal.SIGUSR2, None)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run one (algo, env, seed) to its frame budget and write its records into `run_dir`."""
    return Run(cfg, run_dir).execute()


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
