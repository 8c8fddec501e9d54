"""The seam between the runner and an algorithm: a small Protocol and the context the runner hands over.

An algorithm learns from env steps charged to `ctx.ledger` (it never counts frames itself), exposes its
current test policy, and can save/restore its state. It never writes records: the runner does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from neuroevo_bench.envs import EnvSpecInfo, Ledger, env_info

ActFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class RunContext:
    """What the runner gives an algorithm: env config, the training ledger (budget cap), seed, resources."""

    env_cfg: Any
    ledger: Ledger
    seed: int
    resources: Any
    evaluator_cfg: Any = None
    progress: Callable[..., None] = lambda *_, **__: None
    stop: threading.Event = field(default_factory=threading.Event)
    # called by a long generation / at a rollout's start: writes a checkpoint when `checkpoint_every_s` is due
    checkpoint_if_due: Callable[[], None] = lambda: None
    # live metrics (logger=tensorboard): scalars by name against training frames, e.g. at a generation's end
    log: Callable[[int, dict[str, float]], None] = lambda *_: None

    @cached_property
    def env_info(self) -> EnvSpecInfo:
        """The env's spaces and settings, read back from a built env once per run (runner and algorithm share it)."""
        return env_info(self.env_cfg)


class Algorithm(Protocol):
    network: str  # the policy network, as stated in the records

    def train_until(self, frames: int) -> bool:
        """Train until `ctx.ledger.frames >= frames`; False once no more training is possible (budget spent)."""
        ...

    def policy(self) -> ActFn:
        """The current test policy (GA: elite; RS: best so far; SB3: current model, deterministic)."""
        ...

    def curve_stats(self) -> dict[str, Any]:
        """Extra columns for the eval-curve row (e.g. generation, population fitness)."""
        ...

    def save_policy(self, run_dir: Path) -> None:
        """Write the final policy so that `load_policy` rebuilds it exactly."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs. (An algorithm whose training frames, mid-training, are not simply the ledger's
        also has `frames_done() -> (frames, agent_steps)`: GA/RS within a generation.)"""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...
