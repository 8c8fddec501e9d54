"""Typed config schema (registered in Hydra's ConfigStore) and the checks that run before any work.

Hydra validates types against these dataclasses (a string where an int belongs fails at compose time);
:func:`validate` checks values and cross-field rules and names the key, the bad value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

EVAL_SEED_MIN = 2**31  # training env seeds are drawn below this, so test episodes never repeat training ones


class ConfigError(ValueError):
    """A config value that would make the run fail or be incomparable; raised before any work starts."""


@dataclass
class NetworkConfig:
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "relu"


@dataclass
class NeuroevolutionConfig:
    """GA (Such et al. 2017) and random search (`truncation: 0`): one schema, one machinery."""

    _target_: str = "neuroevo_bench.algorithms.ga.GeneticAlgorithm"
    name: str = "ga"
    population: int = 500
    truncation: int = 20
    mutation_power: float = 0.02
    episodes_per_fitness: int = 3
    elite_candidates: int = 10
    elite_episodes: int = 5
    fitness_max_frames: int | None = None
    slots: int = 256
    noise_table_size: int = 2**22
    noise_seed: int | None = None
    network: NetworkConfig = field(default_factory=NetworkConfig)


@dataclass
class AtariConfig:
    sticky_actions: float = 0.25
    maxpool: bool = True
    screen_size: int = 84
    grayscale: bool = True
    frame_stack: int = 4
    noop_max: int = 0
    terminal_on_life_loss: bool = False
    fire_reset: bool = False
    full_action_space: bool = False


@dataclass
class EnvConfig:
    name: str = MISSING
    id: str = MISSING
    kind: str = "gym"  # gym | atari
    vectorization: str = "auto"  # auto | vector_entry_point | sync | async
    frame_skip: int = 1
    max_episode_frames: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    budget_frames: int = 1_000_000
    eval_every_frames: int = 100_000
    threshold: float | None = None
    score_random: float | None = None
    score_max: float | None = None
    atari: AtariConfig = field(default_factory=AtariConfig)


@dataclass
class BudgetConfig:
    frames: int = MISSING


@dataclass
class EvalConfig:
    every_frames: int = MISSING
    episodes: int = 10
    seed: int = EVAL_SEED_MIN + 12_345


@dataclass
class ResourcesConfig:
    threads: int = 1
    device: str = "cpu"
    env_threads: int = 1


@dataclass
class Config:
    algo: Any = MISSING
    env: EnvConfig = MISSING
    evaluator: Any = MISSING
    seed: int = 0
    name: str = "default"
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    resume: bool = False
    overwrite: bool = False
    checkpoint_every_s: float = 300.0
    progress_every_s: float = 2.0


def _sanitize(name: str) -> str:
    """An env id as a directory name: `ALE/Pong-v5` -> `Pong-v5`."""
    return str(name).split("/")[-1].replace(" ", "_")


def register_configs() -> None:
    if not OmegaConf.has_resolver("sanitize"):
        OmegaConf.register_new_resolver("sanitize", _sanitize)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="algo", name="base_neuroevolution", node=NeuroevolutionConfig)
    cs.store(group="env", name="base_env", node=EnvConfig)


def _positive(cfg: DictConfig, key: str, allow_zero: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        need = "a non-negative integer" if allow_zero else "a positive integer"
        raise ConfigError(f"{key}={value!r} is invalid: it must be {need}")


def validate(cfg: DictConfig) -> None:
    """Check values and cross-field rules; raise ConfigError naming the key, the value and what is allowed."""
    _positive(cfg, "budget.frames")
    _positive(cfg, "eval.every_frames")
    _positive(cfg, "eval.episodes")
    _positive(cfg, "resources.threads")
    _positive(cfg, "seed", allow_zero=True)
    if cfg.eval.every_frames > cfg.budget.frames:
        raise ConfigError(
            f"eval.every_frames={cfg.eval.every_frames} is larger than budget.frames={cfg.budget.frames}: "
            "there would be no test evaluation during training; choose a value <= budget.frames"
        )
    if cfg.eval.seed < EVAL_SEED_MIN:
        raise ConfigError(
            f"eval.seed={cfg.eval.seed} must be >= {EVAL_SEED_MIN} so that test episodes are disjoint from "
            f"training episodes (training seeds are drawn below {EVAL_SEED_MIN})"
        )
    if cfg.resources.device not in ("cpu", "cuda") and not str(cfg.resources.device).startswith("cuda:"):
        raise ConfigError(f"resources.device={cfg.resources.device!r}; valid: cpu, cuda, cuda:N")
    if cfg.env.kind not in ("gym", "atari"):
        raise ConfigError(f"env.kind={cfg.env.kind!r}; valid: gym, atari")
    _positive(cfg, "env.frame_skip")
    if "population" in cfg.algo:
        validate_neuroevolution(cfg.algo)


def validate_neuroevolution(a: DictConfig) -> None:
    for key in ("population", "episodes_per_fitness", "elite_episodes", "slots", "noise_table_size"):
        _positive(a, key)
    _positive(a, "truncation", allow_zero=True)
    _positive(a, "elite_candidates")
    if a.truncation > a.population:
        raise ConfigError(
            f"algo.truncation={a.truncation} is larger than algo.population={a.population}: "
            "the parents are the top `truncation` individuals, so 0 <= truncation <= population"
        )
    if a.elite_candidates > a.population:
        raise ConfigError(
            f"algo.elite_candidates={a.elite_candidates} is larger than algo.population={a.population}; "
            "valid: 1 <= elite_candidates <= population"
        )
    if not a.mutation_power > 0:
        raise ConfigError(f"algo.mutation_power={a.mutation_power} is invalid: sigma must be > 0")
    if a.fitness_max_frames is not None and a.fitness_max_frames <= 0:
        raise ConfigError(f"algo.fitness_max_frames={a.fitness_max_frames}; valid: null or a positive integer")
