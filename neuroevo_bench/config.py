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
    fc_dtype: str = "float32"  # Nature CNN: storage of the 512x3136 fc weight (float32 | float16)


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
class ESConfig:
    """Evolution strategies (Salimans et al. 2017) on the GA's machinery (conf/algo/es.yaml documents each key)."""

    _target_: str = "neuroevo_bench.algorithms.es.EvolutionStrategies"
    name: str = "es"
    population: int = 100  # individuals a generation: population / 2 antithetic pairs
    sigma: float = 0.02
    learning_rate: float = 0.01
    l2_coeff: float = 0.005
    episodes_per_fitness: int = 1
    obs_norm: bool = True
    fitness_max_frames: int | None = None
    slots: int = 512
    shards: int = 1
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
    overlap: bool = True  # Atari: one group of slots steps while the network acts for the other


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
    cs.store(group="schema/algo", name="es", node=ESConfig)
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
            f"evaluator=ray evaluates GA / random-search / ES populations; algo={cfg.algo.name} does not use "
            "it. Drop evaluator=ray (valid with algo=ga, algo=random or algo=es)"
        )
    if "sigma" in cfg.algo:
        validate_es(cfg)
    elif "population" in cfg.algo:
        validate_neuroevolution(cfg)
    from neuroevo_bench.envs import check_env_config  # gymnasium's registry: only once the values are fine

    check_env_config(cfg.env)
    if cfg.algo.name in SB3_ALGOS:  # after the env's checks: DQN reads the env's action space
        validate_sb3(cfg)


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


# --- Stable-Baselines3 A2C / PPO / DQN (neuroevo_bench.algorithms.sb3, neuroevo_bench.zoo) ---------------------
# Every hyperparameter defaults to null: the rl-baselines3-zoo's value for the env when the zoo's file sets it (read
# from the installed rl_zoo3 package), else SB3's default; a value in the config (CLI, experiment) wins. run.json
# records each value and its source. A schedule (`learning_rate`, `clip_range`) is a number or
# `{schedule: linear, initial: <x>}` (optionally `final: <y>`, default 0), decaying over the run's budget of agent
# steps (budget.frames / env.frame_skip): the zoo's `lin_<x>`.

SB3_ALGOS = ("a2c", "ppo", "dqn")
SCHEDULE_KINDS = ("linear",)


@dataclass
class SB3Config:
    """What A2C, PPO and DQN share; null = the zoo's value for this env, else the default."""

    _target_: str = MISSING
    name: str = MISSING
    zoo: bool = True  # false: ignore the zoo (SB3's defaults, and the config's values)
    policy: str | None = None  # MlpPolicy | CnnPolicy (default: CnnPolicy on Atari)
    n_envs: int | None = None
    learning_rate: Any = None
    gamma: float | None = None
    max_grad_norm: float | None = None
    clip_reward: bool | None = None  # sign of the reward as the training signal only (zoo's AtariWrapper)
    normalize: Any = (
        None  # VecNormalize: true, or {norm_obs: bool, norm_reward: bool} (the zoo's `normalize`)
    )
    policy_kwargs: Any = None  # e.g. {net_arch: [256, 256], activation_fn: torch.nn.ReLU}


@dataclass
class OnPolicyConfig(SB3Config):
    n_steps: int | None = None
    gae_lambda: float | None = None
    ent_coef: float | None = None
    vf_coef: float | None = None
    normalize_advantage: bool | None = None
    use_sde: bool | None = None
    sde_sample_freq: int | None = None


@dataclass
class A2CConfig(OnPolicyConfig):
    _target_: str = "neuroevo_bench.algorithms.sb3.A2CBaseline"
    name: str = "a2c"
    use_rms_prop: bool | None = None
    rms_prop_eps: float | None = None


@dataclass
class PPOConfig(OnPolicyConfig):
    _target_: str = "neuroevo_bench.algorithms.sb3.PPOBaseline"
    name: str = "ppo"
    batch_size: int | None = None
    n_epochs: int | None = None
    clip_range: Any = None
    clip_range_vf: Any = None
    target_kl: float | None = None


@dataclass
class DQNConfig(SB3Config):
    _target_: str = "neuroevo_bench.algorithms.sb3.DQNBaseline"
    name: str = "dqn"
    buffer_size: int | None = None
    learning_starts: int | None = None
    batch_size: int | None = None
    tau: float | None = None
    train_freq: Any = None  # agent steps (per sub-env) between updates; the zoo's [n, step] is n
    gradient_steps: int | None = None  # -1: as many as steps collected
    optimize_memory_usage: bool | None = None
    n_steps: int | None = None  # n-step returns
    target_update_interval: int | None = None
    exploration_fraction: float | None = None
    exploration_initial_eps: float | None = None
    exploration_final_eps: float | None = None


ConfigStore.instance().store(group="schema/algo", name="a2c", node=A2CConfig)
ConfigStore.instance().store(group="schema/algo", name="ppo", node=PPOConfig)
ConfigStore.instance().store(group="schema/algo", name="dqn", node=DQNConfig)


def validate_schedule(value: Any, key: str, allow_none: bool = False) -> None:
    """A number > 0 or `{schedule: linear, initial: x > 0, final: y >= 0}`."""
    if value is None and allow_none:
        return
    valid = "a number > 0, or {schedule: linear, initial: <x>} (optionally final: <y>, default 0)"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value > 0:
            return
        raise ConfigError(f"{key}={value!r} is invalid; valid: {valid}")
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


def _in_range(v: dict[str, Any], key: str, low: float, high: float | None, closed_low: bool = True) -> None:
    """algo.<key> must be a number in [low, high] ((low, high] when not closed_low)."""
    x = v[key]
    number = isinstance(x, (int, float)) and not isinstance(x, bool)
    ok = number and (x >= low if closed_low else x > low) and (high is None or x <= high)
    if not ok:
        lo = "[" if closed_low else "("
        valid = (
            f"a number in {lo}{low}, {high}]"
            if high is not None
            else f"a number {'>=' if closed_low else '>'} {low}"
        )
        raise ConfigError(f"algo.{key}={x!r} is invalid; valid: {valid}")


def _positive_int(v: dict[str, Any], key: str, low: int = 1, why: str = "") -> None:
    x = v[key]
    if not (isinstance(x, int) and not isinstance(x, bool) and x >= low):
        valid = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
        raise ConfigError(f"algo.{key}={x!r} is invalid; valid: {valid}{why}")


def validate_sb3(cfg: DictConfig) -> Any:
    """The hyperparameters as resolved (config > zoo > default, :func:`neuroevo_bench.zoo.resolve`), each checked.

    A bad value is named by its key (`algo.learning_rate`), whether the config or the zoo gave it; and the one
    cross-field rule: the budget must hold at least one rollout (A2C/PPO) or one `train_freq` block (DQN).
    Returns the :class:`~neuroevo_bench.zoo.Resolved` hyperparameters.
    """
    from neuroevo_bench.zoo import SB3_POLICIES, resolve

    given = OmegaConf.to_container(cfg.algo, resolve=True)
    assert isinstance(given, dict)
    frame_stack = int(OmegaConf.select(cfg, "env.atari.frame_stack", default=4))
    r = resolve(str(cfg.algo.name), given, str(cfg.env.id), str(cfg.env.kind), frame_stack)
    v = r.values
    n_envs = v["n_envs"]
    if not (isinstance(n_envs, int) and 1 <= n_envs <= MAX_SUB_ENVS):
        raise ConfigError(
            f"algo.n_envs={n_envs!r} is invalid; valid: 1 <= algo.n_envs <= {MAX_SUB_ENVS}{SUB_ENVS_WHY}"
        )
    if v["policy"] not in SB3_POLICIES:
        raise ConfigError(f"algo.policy={v['policy']!r}; valid: {', '.join(SB3_POLICIES)}")
    _in_range(v, "gamma", 0, 1, closed_low=False)
    _in_range(v, "max_grad_norm", 0, None, closed_low=False)
    validate_schedule(v["learning_rate"], "algo.learning_rate")
    normalize = v["normalize"]
    if not (
        normalize is False or (isinstance(normalize, dict) and set(normalize) == {"norm_obs", "norm_reward"})
    ):
        raise ConfigError(
            f"algo.normalize={normalize!r} is invalid; valid: false, true, or {{norm_obs: <bool>, norm_reward: <bool>}}"
        )
    if not isinstance(v["policy_kwargs"], dict):
        raise ConfigError(
            f"algo.policy_kwargs={v['policy_kwargs']!r} is invalid; valid: a mapping, e.g. {{net_arch: [64, 64]}}"
        )
    rollout_steps = _validate_dqn(cfg, v) if r.algo == "dqn" else _validate_on_policy(v)
    rollout_frames = rollout_steps * v["n_envs"] * cfg.env.frame_skip
    if cfg.budget.frames < rollout_frames:
        what = "algo.train_freq" if r.algo == "dqn" else "algo.n_steps"
        raise ConfigError(
            f"budget.frames={cfg.budget.frames} is smaller than one {r.algo} rollout ({what} * "
            f"algo.n_envs * env.frame_skip = {rollout_frames} frames): no update would ever happen; raise "
            f"budget.frames or lower {what} / algo.n_envs"
        )
    return r


def _validate_on_policy(v: dict[str, Any]) -> int:
    _positive_int(v, "n_steps")
    _in_range(v, "gae_lambda", 0, 1)
    for key in ("ent_coef", "vf_coef"):
        _in_range(v, key, 0, None)
    if "clip_range" in v:
        validate_schedule(v["clip_range"], "algo.clip_range")
        validate_schedule(v["clip_range_vf"], "algo.clip_range_vf", allow_none=True)
        _positive_int(v, "batch_size")
        _positive_int(v, "n_epochs")
        if v["batch_size"] > v["n_steps"] * v["n_envs"]:
            raise ConfigError(
                f"algo.batch_size={v['batch_size']} is larger than one rollout (algo.n_steps * algo.n_envs = "
                f"{v['n_steps'] * v['n_envs']}); valid: 1 <= batch_size <= n_steps * n_envs"
            )
    return int(v["n_steps"])


def _validate_dqn(cfg: DictConfig, v: dict[str, Any]) -> int:
    for key in ("buffer_size", "batch_size", "train_freq", "n_steps", "target_update_interval"):
        _positive_int(v, key)
    _positive_int(v, "learning_starts", low=0)
    if v["gradient_steps"] != -1:
        _positive_int(v, "gradient_steps", why=" (or -1: as many as steps collected)")
    _in_range(v, "tau", 0, 1, closed_low=False)
    for key in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"):
        _in_range(v, key, 0, 1)
    if cfg.env.kind == "gym":  # ALE games have discrete actions
        import gymnasium as gym

        env = gym.make(str(cfg.env.id), **OmegaConf.to_container(cfg.env.kwargs, resolve=True))  # type: ignore[arg-type]
        space = env.action_space
        env.close()
        if not isinstance(space, gym.spaces.Discrete):
            raise ConfigError(
                f"algo=dqn needs discrete actions, but env.id={cfg.env.id!r} has action space {space}; valid: an "
                "env with a Discrete action space (or algo=a2c / algo=ppo for continuous actions)"
            )
    return int(v["train_freq"])


def _positive(cfg: DictConfig, key: str, what: str) -> None:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{key}={value!r} is invalid; valid: {what} > 0")


def validate_es(cfg: DictConfig) -> None:
    a = cfg.algo
    population = a.population
    if isinstance(population, bool) or not isinstance(population, int) or population < 2 or population % 2:
        raise ConfigError(
            f"algo.population={population!r} is invalid; valid: an even integer >= 2 (population / 2 "
            "antithetic pairs theta + sigma*eps, theta - sigma*eps)"
        )
    _positive(cfg, "algo.sigma", "a noise standard deviation")
    _positive(cfg, "algo.learning_rate", "an Adam step size")
    if not (isinstance(a.l2_coeff, int | float) and a.l2_coeff >= 0):
        raise ConfigError(f"algo.l2_coeff={a.l2_coeff!r} is invalid; valid: a weight decay >= 0")
    for key in ("episodes_per_fitness", "shards", "noise_table_size"):
        _integer(cfg, f"algo.{key}")
    _integer(cfg, "algo.slots", 1, MAX_SUB_ENVS, SUB_ENVS_WHY)
    if a.fitness_max_frames is not None and a.fitness_max_frames <= 0:
        raise ConfigError(
            f"algo.fitness_max_frames={a.fitness_max_frames}; valid: null or a positive integer"
        )
