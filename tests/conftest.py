"""Shared test fixtures: Hydra compose() configs and a toy env of known episode length."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from neuroevo_bench.config import register_configs

torch.set_num_threads(1)  # as resources.threads; more threads only fight over 2 shared cores (and slow tests)

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
TOY_LENGTH = 10


class FixedLengthEnv(gym.Env):
    """Every episode lasts exactly `length` steps whatever the actions, reward 1 per step.

    With it, the frames a run must charge are known by hand.
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, length: int = TOY_LENGTH) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        obs = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return obs, 1.0, self.t >= self.length, False, {}


class FrameSkipToyEnv(FixedLengthEnv):
    """The toy env as an emulator that skips frames itself: each step is 3 frames, and it says so (the harness
    skips frames only for Atari; any other env must declare its own frames per step)."""

    metadata: ClassVar[dict] = {**FixedLengthEnv.metadata, "frames_per_step": 3}


if "FixedLength-v0" not in gym.registry:
    gym.register("FixedLength-v0", entry_point=FixedLengthEnv)
if "FixedLengthSkip3-v0" not in gym.registry:
    gym.register("FixedLengthSkip3-v0", entry_point=FrameSkipToyEnv)


@pytest.fixture
def one_torch_thread():
    """As the runner sets resources.threads (1): tests that drive an algorithm directly must do the same."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def make_cfg() -> Callable[..., DictConfig]:
    """compose() the app's config with overrides, as `python -m neuroevo_bench <overrides>` would."""
    register_configs()

    def _make(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("config", overrides=list(overrides))

    return _make


TOY = ("env=gym", "env.id=FixedLength-v0", "env.name=Toy")
TOY_SKIP3 = ("env=gym", "env.id=FixedLengthSkip3-v0", "env.name=Toy", "env.frame_skip=3")
TINY_GA = (
    "algo.population=4",
    "algo.truncation=2",
    "algo.episodes_per_fitness=2",
    "algo.elite_candidates=2",
    "algo.elite_episodes=2",
    "algo.slots=8",
    "algo.noise_table_size=4096",
    "algo.network.hidden=[8]",
    "eval.episodes=3",
    "progress_every_s=1000",
)


def process_tree(root: int) -> dict[int, str]:
    """pid -> name (/proc/<pid>/comm) of `root` and of all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])  # "pid (comm) state ppid ..."
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/comm") as f:
                tree[pid] = f.read().strip()
        except OSError:
            continue
        todo.extend(children.get(pid, []))
    return tree
