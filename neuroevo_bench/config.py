"""Typed config schema (registered in Hydra's ConfigStore) and the checks that run before any work.

Hydra validates types against these dataclasses (a string where an int belongs fails at compose time);
:func:`validate` checks values and cross-field rules and names the key, the bad value and what is allowed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, NoReturn

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import MISSING, DictConfig, OmegaConf

# Env seeds. A vector env reset with seed s seeds its sub-env i with s + i. Seeds are uint32 values, the range
# every env library takes (numpy's generators; ALE through envs.ale_seeds); test episodes own the upper half.
EVAL_SEED_MIN = 2**31  # test-episode seeds: eval.seed + i, in [EVAL_SEED_MIN, EVAL_SEED_END)
EVAL_SEED_END = 2**32
MAX_SUB_ENVS = 2**16  # at most this many sub-envs in one training vector env (algo.slots, algo.n_envs) ...
TRAIN_SEED_LIMIT = EVAL_SEED_MIN - MAX_SUB_ENVS  # ... reset with a seed below this: s + i < EVAL_SEED_MIN
# the reasons, as the error messages give them
SUB_ENVS_WHY = (
    f" (sub-env i of a vector env is seeded s + i, and training seeds s stay below {TRAIN_SEED_LIMIT} so "
    f"that s + i never reaches the test seeds >= {EVAL_SEED_MIN})"
)
SEED_WHY = (
    f" (SB3 seeds its training envs with it, and training seeds stay below {TRAIN_SEED_LIMIT} so that a "
    f"sub-env's seed never reaches the test seeds >= {EVAL_SEED_MIN})"
)
EVAL_SEED_WHY = (
    f" (test episode i is seeded eval.seed + i; test seeds are >= {EVAL_SEED_MIN}, above every training seed, "
    f"and below {EVAL_SEED_END}, the range every env library takes)"
)

LOGGERS = ("none", "tensorboard")  # live metrics beside the records (logger=tensorboard: an optional extra)
ENV_KINDS = ("gym", "atari", "minatar")
VECTORIZATIONS = ("auto", "vector_entry_point", "sync", "async")
# what `env=<kind> env.id=...` looks like
ENV_ID_EXAMPLES = {"gym": "Acrobot-v1", "atari": "ALE/Breakout-v5", "minatar": "MinAtar/Breakout-v1"}


class ConfigError(ValueError):
    """Bad input: a config value that would make the run fail or be incomparable; raised before any work.

    Its message is one line naming the full key, the bad value and what is valid; the app prints it and exits
    with status 2 (:func:`exit_bad_input`).
    """


def exit_bad_input(error: ConfigError) -> NoReturn:
    """How the app refuses bad input: one line on stderr, exit status 2 (Hydra's own config errors exit 1)."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


class CheckBeforeRun(Callback):
    """Hydra callback (conf/config.yaml): :func:`validate` the composed config before Hydra creates the run
    directory, so a refused command writes nothing (no `.hydra/`, no log file, no directories).

    Only a single run is checked here; in a multirun each job is checked by the runner and a refused job is
    recorded as failed in its own directory, while the other jobs run.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
        except ConfigError as error:
            exit_bad_input(error)


# algo.network.kind: auto = an MLP for vector observations, the Nature CNN for (C, H, W) uint8 image stacks
# (Atari), MinAtar's network for (H, W, C) boolean grids (MinAtar); neuroevo_bench.policies.make_network
NETWORK_KINDS = ("auto", "mlp", "nature_cnn", "minatar_cnn")


@dataclass
class NetworkConfig:
    """The GA/RS policy network. `hidden` and `activation` describe the MLP; the CNNs' layers are fixed."""

    kind: str = "auto"  # NETWORK_KINDS
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "relu"


@dataclass
class NeuroevolutionConfig:
    """GA (Such et al. 2017) and random search (`truncation: 0`): one schema, one machinery."""

    _target_: str = "neuroevo_bench.algorithms.ga.GeneticAlgorithm"
    name: str = "ga"
    variant: str = "such2017"  # such2017 (the paper's Algorithm 1) | chopra (Chopra's notebook)
    population: int = 500
    truncation: int = 20
    mutation_power: float = 0.02
    episodes_per_fitness: int = 3
    elite_candidates: int = 10
    elite_episodes: int = 5
    fitness_max_frames: int | None = None
    slots: int = 512
    shards: int = 1  # contiguous population shards, each on its own env (the unit of work of evaluator=ray)
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
class MinAtarConfig:
    """MinAtar's own settings (Young & Tian 2019), passed explicitly to `minatar.Environment`."""

    sticky_action_prob: float = 0.1
    difficulty_ramping: bool = True


@dataclass
class EnvConfig:
    name: str = MISSING
    id: str = MISSING
    kind: str = "gym"  # ENV_KINDS
    vectorization: str = "auto"  # VECTORIZATIONS
    frame_skip: int = 1
    max_episode_frames: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    budget_frames: int = 1_000_000
    eval_every_frames: int = 100_000
    threshold: float | None = None
    score_random: float | None = None
    score_max: float | None = None
    atari: AtariConfig = field(default_factory=AtariConfig)
    minatar: MinAtarConfig = field(default_factory=MinAtarConfig)


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
    logger: str = "none"  # LOGGERS


def _sanitize(name: str) -> str:
    """An env id as a directory name: `ALE/Pong-v5` -> `Pong-v5`."""
    return str(name).split("/")[-1].replace(" ", "_")


def register_configs() -> None:
    if not OmegaConf.has_resolver("sanitize"):
        OmegaConf.register_new_resolver("sanitize", _sanitize)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="schema/algo", name="neuroevolution", node=NeuroevolutionConfig)
    cs.store(group="schema/env", name="env", node=EnvConfig)


def _integer(cfg: DictConfig, key: str, low: int = 1, high: int | None = None, why: str = "") -> None:
    """`key` (its full path from the config root) must be an integer in [low, high]; `why` explains a bound."""
    value = OmegaConf.select(cfg, key)
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if ok and (high is None or value <= high):
        return
    if high is not None:
        valid = f"{low} <= {key} <= {high}"
    else:
        valid = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
    raise ConfigError(f"{key}={value!r} is invalid; valid: {valid}{why}")


def _choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is invalid; valid: {', '.join(choices)}")


def validate(cfg: DictConfig) -> None:
    """Check values and cross-field rules; raise ConfigError naming the key, the value and what is allowed.

    Then the env config (:func:`neuroevo_bench.envs.check_env_config`: the id, its kind, frames per step),
    which needs gymnasium's registry but builds no env.
    """
    _integer(cfg, "budget.frames")
    _integer(cfg, "eval.every_frames")
    _integer(cfg, "eval.episodes")
    _integer(cfg, "resources.threads")
    _integer(cfg, "seed", 0, TRAIN_SEED_LIMIT - 1, SEED_WHY)
    for key in ("checkpoint_every_s", "progress_every_s"):
        if not cfg[key] > 0:
            raise ConfigError(f"{key}={cfg[key]!r} is invalid; valid: a number of seconds > 0")
    _choice(cfg, "logger", LOGGERS)
    if cfg.logger == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "logger=tensorboard needs TensorBoard: pip install -e '.[tensorboard]' (or drop logger=tensorboard)"
            ) from exc
    if cfg.resume and cfg.overwrite:
        raise ConfigError("resume=true and overwrite=true contradict each other: pass one of them")
    if cfg.eval.every_frames > cfg.budget.frames:
        raise ConfigError(
            f"eval.every_frames={cfg.eval.every_frames} is larger than budget.frames={cfg.budget.frames}: "
            "there would be no test evaluation during training; choose a value <= budget.frames"
        )
    _integer(cfg, "eval.seed", EVAL_SEED_MIN, EVAL_SEED_END - cfg.eval.episodes, EVAL_SEED_WHY)
    if cfg.resources.device not in ("cpu", "cuda") and not str(cfg.resources.device).startswith("cuda:"):
        raise ConfigError(f"resources.device={cfg.resources.device!r}; valid: cpu, cuda, cuda:N")
    if str(cfg.resources.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"resources.device={cfg.resources.device!r} but torch sees no CUDA device "
                "(torch.cuda.is_available() is False); use resources.device=cpu"
            )
    _choice(cfg, "env.kind", ENV_KINDS)
    _choice(cfg, "env.vectorization", VECTORIZATIONS)
    _integer(cfg, "env.frame_skip")
    if OmegaConf.select(cfg, "evaluator.kind") == "ray" and "population" not in cfg.algo:
        raise ConfigError(
            f"evaluator=ray evaluates GA / random-search populations; algo={cfg.algo.name} does not use it. "
            "Drop evaluator=ray (valid with algo=ga or algo=random)"
        )
    if "population" in cfg.algo:
        validate_neuroevolution(cfg)
    if "n_steps" in cfg.algo:
        validate_sb3(cfg)
    from neuroevo_bench.envs import check_env_config  # gymnasium's registry: only once the values are fine

    check_env_config(cfg.env)


GA_VARIANTS = ("such2017", "chopra")


def validate_neuroevolution(cfg: DictConfig) -> None:
    a = cfg.algo
    _choice(cfg, "algo.variant", GA_VARIANTS)
    _choice(cfg, "algo.network.kind", NETWORK_KINDS)
    for key in ("episodes_per_fitness", "elite_episodes", "shards", "noise_table_size"):
        _integer(cfg, f"algo.{key}")
    _integer(cfg, "algo.slots", 1, MAX_SUB_ENVS, SUB_ENVS_WHY)
    if a.variant == "such2017":
        # the elite + N-1 new individuals; candidates: the previous elite + the top C-1 of the new ones (C >= 2,
        # or the elite could never be replaced)
        _integer(cfg, "algo.population", 2, None, " (such2017: the elite + N-1 new individuals)")
        _integer(
            cfg, "algo.elite_candidates", 2, a.population - 1, " (such2017: the previous elite + the top C-1)"
        )
    else:
        _integer(cfg, "algo.population")
        _integer(cfg, "algo.elite_candidates", 1, a.population)
    _integer(cfg, "algo.truncation", 0, a.population, " (the T parents come from the population)")
    if not a.mutation_power > 0:
        raise ConfigError(f"algo.mutation_power={a.mutation_power} is invalid: sigma must be > 0")
    if a.fitness_max_frames is not None and a.fitness_max_frames <= 0:
        raise ConfigError(
            f"algo.fitness_max_frames={a.fitness_max_frames}; valid: null or a positive integer"
        )


# --- Stable-Baselines3 A2C / PPO (neuroevo_bench.algorithms.sb3) --------------------------------------------
# Defaults are SB3's own; conf/algo/{a2c,ppo}.yaml restate them and conf/algo_env/<algo>_<env>.yaml merges the
# rl-baselines3-zoo tuned values for an env on top. A schedule (`learning_rate`, `clip_range`) is a number or
# `{schedule: linear, initial: <x>}` (optionally `final: <y>`, default 0), decaying over the run's budget of
# agent steps (budget.frames / env.frame_skip): the zoo's `lin_<x>`.

SB3_POLICIES = ("MlpPolicy", "CnnPolicy")
SCHEDULE_KINDS = ("linear",)


@dataclass
class SB3Config:
    """What A2C and PPO share. `hyperparams_source` names the tuned set in use; it is stored in run.json."""

    _target_: str = MISSING
    name: str = MISSING
    hyperparams_source: str = "stable-baselines3 defaults (no tuned set for this env)"
    policy: str = "MlpPolicy"
    n_envs: int = 1
    learning_rate: Any = 7e-4
    n_steps: int = 5
    gamma: float = 0.99
    gae_lambda: float = 1.0
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = False
    clip_reward: bool = False  # sign of the reward as the training signal only (zoo's AtariWrapper)
    policy_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class A2CConfig(SB3Config):
    _target_: str = "neuroevo_bench.algorithms.sb3.A2CBaseline"
    name: str = "a2c"
    use_rms_prop: bool = True
    rms_prop_eps: float = 1e-5


@dataclass
class PPOConfig(SB3Config):
    _target_: str = "neuroevo_bench.algorithms.sb3.PPOBaseline"
    name: str = "ppo"
    learning_rate: Any = 3e-4
    n_steps: int = 2048
    gae_lambda: float = 0.95
    normalize_advantage: bool = True
    batch_size: int = 64
    n_epochs: int = 10
    clip_range: Any = 0.2
    clip_range_vf: Any = None
    target_kl: float | None = None


ConfigStore.instance().store(group="schema/algo", name="a2c", node=A2CConfig)
ConfigStore.instance().store(group="schema/algo", name="ppo", node=PPOConfig)


def validate_schedule(value: Any, key: str, allow_none: bool = False) -> None:
    """A number > 0 or `{schedule: linear, initial: x > 0, final: y >= 0}`."""
    if value is None and allow_none:
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value > 0:
            return
        raise ConfigError(f"{key}={value!r} is invalid: it must be > 0")
    valid = "a number > 0, or {schedule: linear, initial: <x>} (optionally final: <y>, default 0)"
    if not isinstance(value, (dict, DictConfig)):
        raise ConfigError(f"{key}={value!r} is invalid; valid: {valid}")
    extra = set(value) - {"schedule", "initial", "final"}
    kind = value.get("schedule")
    initial, final = value.get("initial"), value.get("final", 0.0)
    if extra or kind not in SCHEDULE_KINDS:
        raise ConfigError(f"{key}={dict(value)!r} is invalid (schedule: {SCHEDULE_KINDS}); valid: {valid}")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (initial, final))
    if not numbers or not initial > 0 or not final >= 0:
        raise ConfigError(f"{key}={dict(value)!r} is invalid (need initial > 0, final >= 0); valid: {valid}")


def validate_sb3(cfg: DictConfig) -> None:
    """SB3 values and the one cross-field rule: the budget must hold at least one full rollout."""
    a = cfg.algo
    _integer(cfg, "algo.n_envs", 1, MAX_SUB_ENVS, SUB_ENVS_WHY)
    _integer(cfg, "algo.n_steps")
    if a.policy not in SB3_POLICIES:
        raise ConfigError(f"algo.policy={a.policy!r}; valid: {', '.join(SB3_POLICIES)}")
    if not 0 < a.gamma <= 1:
        raise ConfigError(f"algo.gamma={a.gamma} is invalid: it must be in (0, 1]")
    if not 0 <= a.gae_lambda <= 1:
        raise ConfigError(f"algo.gae_lambda={a.gae_lambda} is invalid: it must be in [0, 1]")
    for key in ("ent_coef", "vf_coef"):
        if not a[key] >= 0:
            raise ConfigError(f"algo.{key}={a[key]} is invalid: it must be >= 0")
    if not a.max_grad_norm > 0:
        raise ConfigError(f"algo.max_grad_norm={a.max_grad_norm} is invalid: it must be > 0")
    validate_schedule(a.learning_rate, "algo.learning_rate")
    if "clip_range" in a:
        validate_schedule(a.clip_range, "algo.clip_range")
        validate_schedule(a.clip_range_vf, "algo.clip_range_vf", allow_none=True)
        _integer(cfg, "algo.batch_size")
        _integer(cfg, "algo.n_epochs")
        if a.batch_size > a.n_steps * a.n_envs:
            raise ConfigError(
                f"algo.batch_size={a.batch_size} is larger than one rollout (algo.n_steps * algo.n_envs = "
                f"{a.n_steps * a.n_envs}); valid: 1 <= batch_size <= n_steps * n_envs"
            )
    rollout_frames = a.n_steps * a.n_envs * cfg.env.frame_skip
    if cfg.budget.frames < rollout_frames:
        raise ConfigError(
            f"budget.frames={cfg.budget.frames} is smaller than one {a.name} rollout (algo.n_steps * "
            f"algo.n_envs * env.frame_skip = {rollout_frames} frames): no update would ever happen; raise "
            "budget.frames or lower algo.n_steps / algo.n_envs"
        )
