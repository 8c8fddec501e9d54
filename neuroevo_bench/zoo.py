"""The rl-baselines3-zoo's tuned hyperparameters for A2C, PPO and DQN, read from the `rl_zoo3` package's own files.

Reading order: :func:`zoo_entry` finds the entry the zoo itself would use for an env id (the id, else `atari` for
any ALE game, else `default`); :func:`convert_entry` turns its notation into the harness's config keys, honouring
or refusing every key (never dropping one); :func:`resolve` merges config > zoo > default per key and says where
each value came from. No Stable-Baselines3 import here: `config.validate` checks the resolved values before any
work, and `algorithms/sb3.py` builds SB3 from them.

The package is located through its installed metadata, never imported: importing `rl_zoo3` patches gymnasium
(`rl_zoo3.gym_patches`) and pulls in optuna, huggingface_hub and more.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neuroevo_bench.config import ConfigError

ZOO_PACKAGE = "rl_zoo3"
ATARI_ENTRY = "atari"
DEFAULT_ENTRY = "default"
ATARI_WRAPPER = "stable_baselines3.common.atari_wrappers.AtariWrapper"

# SB3 2.x constructor defaults for the keys the harness passes (a test checks them against SB3's signatures).
# DQN's `n_steps` is SB3's n-step return, not a rollout length.
SB3_DEFAULTS: dict[str, dict[str, Any]] = {
    "a2c": {
        "learning_rate": 7e-4,
        "n_steps": 5,
        "gamma": 0.99,
        "gae_lambda": 1.0,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "rms_prop_eps": 1e-5,
        "use_rms_prop": True,
        "use_sde": False,
        "sde_sample_freq": -1,
        "normalize_advantage": False,
    },
    "ppo": {
        "learning_rate": 3e-4,
        "n_steps": 2048,
        "batch_size": 64,
        "n_epochs": 10,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "clip_range_vf": None,
        "normalize_advantage": True,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "use_sde": False,
        "sde_sample_freq": -1,
        "target_kl": None,
    },
    "dqn": {
        "learning_rate": 1e-4,
        "buffer_size": 1_000_000,
        "learning_starts": 100,
        "batch_size": 32,
        "tau": 1.0,
        "gamma": 0.99,
        "train_freq": 4,
        "gradient_steps": 1,
        "optimize_memory_usage": False,
        "n_steps": 1,
        "target_update_interval": 10_000,
        "exploration_fraction": 0.1,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.05,
        "max_grad_norm": 10.0,
    },
}
# The harness's own keys (every algorithm): how SB3 is wrapped rather than what it is given. `policy` has no SB3
# default; the harness picks by env kind (resolve).
HARNESS_DEFAULTS: dict[str, Any] = {
    "n_envs": 1,  # the zoo's default too
    "clip_reward": False,  # sign(reward) as the training signal (the zoo's AtariWrapper)
    "normalize": False,  # VecNormalize, as the zoo's `normalize`
    "policy_kwargs": {},
}
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
SB3_POLICIES = ("MlpPolicy", "CnnPolicy")
NORMALIZE_KEYS = ("norm_obs", "norm_reward")

# policy_kwargs strings are parsed, never evaluated: literals, dict(...), and these names only.
POLICY_KWARGS_NAMES = {
    "nn.ReLU": "torch.nn.ReLU",
    "nn.Tanh": "torch.nn.Tanh",
    "nn.ELU": "torch.nn.ELU",
    "nn.LeakyReLU": "torch.nn.LeakyReLU",
    "nn.GELU": "torch.nn.GELU",
    "nn.SiLU": "torch.nn.SiLU",
    "RMSpropTFLike": "stable_baselines3.common.sb2_compat.rmsprop_tf_like.RMSpropTFLike",
}
# Class-valued policy_kwargs (by dotted name in configs and records; sb3.py turns them into classes).
POLICY_KWARGS_CLASSES = frozenset(
    [
        *POLICY_KWARGS_NAMES.values(),
        "torch.optim.Adam",
        "torch.optim.AdamW",
        "torch.optim.RMSprop",
        "torch.optim.SGD",
        "neuroevo_bench.algorithms.sb3.MinAtarCNNExtractor",
    ]
)


@dataclass
class ZooEntry:
    """One entry of a zoo hyperparameter file, as the file has it."""

    algo: str
    env_id: str
    key: str  # the entry used: the env id, `atari` or `default`
    values: dict[str, Any]
    version: str
    file: str  # the file inside the package, e.g. rl_zoo3/hyperparams/ppo.yml
    path: str  # where it was read on this machine

    @property
    def label(self) -> str:
        return f"rl-baselines3-zoo {self.version} {Path(self.file).name} {self.key}"


@dataclass
class Resolved:
    """Every hyperparameter the harness uses, with its source: `config`, `zoo` or `default` (SB3's / harness's)."""

    algo: str
    values: dict[str, Any]
    sources: dict[str, str]
    entry: ZooEntry | None  # None with algo.zoo=false
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.entry is None:
            return f"stable-baselines3 {self.algo.upper()} defaults (algo.zoo=false)"
        if self.entry.key == DEFAULT_ENTRY:
            return f"{self.entry.label} (the zoo has no tuned {self.algo} set for {self.entry.env_id})"
        return self.entry.label

    def record(self) -> dict[str, Any]:
        """The `hyperparams` field of run.json."""
        zoo = None
        if self.entry is not None:
            e = self.entry
            zoo = {
                "package": ZOO_PACKAGE,
                "version": e.version,
                "file": e.file,
                "entry": e.key,
                "n_timesteps": e.values.get("n_timesteps"),
                "entry_values": e.values,
            }
        return {
            "source": self.label,
            "zoo": zoo,
            "values": self.values,
            "sources": self.sources,
            "notes": self.notes,
        }


# --- 1. the zoo's file and entry -------------------------------------------------------------------------------
@functools.cache
def zoo_file(algo: str) -> tuple[dict[str, Any], str, str, str]:
    """(the parsed file, rl_zoo3's version, the file's path in the package, its path here)."""
    try:
        dist = importlib.metadata.distribution(ZOO_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"algo={algo} takes its tuned hyperparameters from the rl_zoo3 package, which is not installed: "
            f"pip install rl_zoo3==2.9.2 (a dependency of this project), or algo.zoo=false for SB3's defaults"
        ) from exc
    rel = f"{ZOO_PACKAGE}/hyperparams/{algo}.yml"
    path = Path(str(dist.locate_file(rel)))
    with open(path) as f:
        data = yaml.safe_load(f)  # the zoo's own loader (plain YAML with !!float and << merges)
    return data, dist.version, rel, str(path)


def zoo_entry(algo: str, env_id: str, env_kind: str) -> ZooEntry:
    """The entry the zoo's `ExperimentManager.read_hyperparameters` picks: the id, else `atari`, else `default`.

    MinAtar games (which the zoo does not tune) take the zoo's `atari` entry, the harness's choice: they are
    miniature Atari games, and that is the zoo's one tuned set for image observations and discrete actions.
    """
    data, version, rel, path = zoo_file(algo)
    if env_id in data:
        key = env_id
    elif env_kind in ("atari", "minatar"):
        key = ATARI_ENTRY
    else:
        key = DEFAULT_ENTRY
    return ZooEntry(algo, env_id, key, dict(data[key]), version, rel, path)


# --- 2. the zoo's notation -> the harness's config keys ------------------------------------------------------------
def convert_entry(entry: ZooEntry, env_kind: str, frame_stack: int) -> tuple[dict[str, Any], list[str]]:
    """The entry as harness config keys, and notes on what was converted; a key it cannot honour is refused.

    `lin_<x>` / `linear_<x>` -> `{schedule: linear, initial: x}` (decays over the run's budget, which is what the
    zoo's decay over its `n_timesteps` is for a run of that length); `policy_kwargs` strings -> a dict, parsed
    (:func:`parse_policy_kwargs`); `normalize` -> VecNormalize settings; `train_freq: [n, step]` -> n; the Atari
    entry's AtariWrapper and `frame_stack` -> the protocol env (which stacks frames itself) plus `clip_reward`.
    """
    where = entry.label
    allowed = set(SB3_DEFAULTS[entry.algo]) | set(HARNESS_DEFAULTS) | {"policy"}
    out: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in entry.values.items():
        if key == "n_timesteps":
            notes.append(
                f"n_timesteps={int(value)} (the zoo's budget in agent steps) is recorded only: budget.frames governs"
            )
        elif key == "env_wrapper":
            wrappers = value if isinstance(value, list) else [value]
            if env_kind not in ("atari", "minatar") or wrappers != [ATARI_WRAPPER]:
                _refuse(
                    where, key, value, "the harness plays its own env; only the Atari entry's AtariWrapper"
                )
            if env_kind == "minatar":
                notes.append(
                    "env=minatar takes the zoo's atari entry (the zoo has no MinAtar set); its AtariWrapper is "
                    "replaced by MinAtar's own env, and rewards stay unclipped (MinAtar's rewards are small "
                    "integers, and its own examples train on them unclipped)"
                )
                continue
            out["clip_reward"] = True
            notes.append(
                "env_wrapper AtariWrapper is replaced by the protocol env (sticky actions 0.25, frame skip 4 with "
                "max-pool, 84x84 grayscale, no life-loss terminal, no no-op starts); its reward clipping is kept "
                "as the training signal only (clip_reward=true)"
            )
        elif key == "frame_stack" and env_kind == "minatar":
            notes.append(
                f"frame_stack={value} is not applied: MinAtar is played unstacked, as its own examples do"
            )
        elif key == "frame_stack":
            if env_kind != "atari" or value != frame_stack:
                _refuse(where, key, value, f"only on Atari, equal to env.atari.frame_stack={frame_stack}")
            notes.append(f"frame_stack={value}: the protocol env stacks {frame_stack} frames itself")
        elif key == "policy":
            if value not in SB3_POLICIES:
                _refuse(where, key, value, f"one of {', '.join(SB3_POLICIES)}")
            out[key] = value
        elif key in SCHEDULE_KEYS:
            out[key] = _schedule(where, key, value)
        elif key == "policy_kwargs":
            out[key] = parse_policy_kwargs(value, where) if isinstance(value, str) else value
        elif key == "normalize":
            out[key] = _normalize(where, value)
        elif key == "train_freq":
            out[key] = _train_freq(where, value)
        elif key in allowed:
            out[key] = value
        else:
            _refuse(where, key, value, "no harness equivalent")
    return out, notes


def _refuse(where: str, key: str, value: Any, valid: str) -> None:
    raise ConfigError(
        f"{where} sets {key}={value!r}, which the harness cannot honour ({valid}); pass algo.zoo=false to use "
        "SB3's defaults instead, with your own values as algo.<key>=..."
    )


def _schedule(where: str, key: str, value: Any) -> Any:
    if isinstance(value, str):
        kind, _, initial = value.partition("_")
        try:
            x = float(initial)
        except ValueError:
            x = None
        if kind not in ("lin", "linear") or x is None:
            _refuse(where, key, value, "a number or lin_<x>")
        return {"schedule": "linear", "initial": x}
    return value


def _normalize(where: str, value: Any) -> Any:
    if isinstance(value, str):
        value = parse_policy_kwargs(value, where)
    if isinstance(value, bool):
        return value
    if not isinstance(value, dict) or set(value) - set(NORMALIZE_KEYS):
        _refuse(where, "normalize", value, f"true/false or a dict of {', '.join(NORMALIZE_KEYS)}")
    return {k: bool(value.get(k, True)) for k in NORMALIZE_KEYS}


def _train_freq(where: str, value: Any) -> int:
    if isinstance(value, list) and len(value) == 2 and value[1] == "step":
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool):
        _refuse(where, "train_freq", value, "a number of steps; [n, 'episode'] is not supported")
    return value


def parse_policy_kwargs(text: str, where: str) -> Any:
    """A zoo `policy_kwargs` string such as `dict(net_arch=[256, 256], activation_fn=nn.ReLU)` as plain data.

    Parsed with `ast`, never evaluated: numbers, strings, booleans, None, lists, `{...}` and `dict(k=v, ...)`,
    and the names in POLICY_KWARGS_NAMES, which become dotted class names (e.g. `torch.nn.ReLU`).
    """
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ConfigError(f"{where}: policy_kwargs={text!r} does not parse ({exc.msg})") from exc
    return _literal(tree, text, where)


def _literal(node: ast.AST, text: str, where: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _literal(node.operand, text, where)
        if isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return -inner
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, text, where) for e in node.elts]
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {
            _literal(k, text, where): _literal(v, text, where)
            for k, v in zip(node.keys, node.values, strict=True)
        }  # type: ignore[arg-type]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(k.arg is not None for k in node.keywords)
    ):
        return {k.arg: _literal(k.value, text, where) for k in node.keywords}
    name = ast.unparse(node)
    if name in POLICY_KWARGS_NAMES:
        return POLICY_KWARGS_NAMES[name]
    raise ConfigError(
        f"{where}: policy_kwargs={' '.join(text.split())!r} uses {name!r}, which the harness does not read "
        f"(valid: literals, dict(...), {', '.join(POLICY_KWARGS_NAMES)}); pass algo.zoo=false or "
        "algo.policy_kwargs={...}"
    )


# --- 3. config > zoo > default --------------------------------------------------------------------------------------
def resolve(algo: str, given: dict[str, Any], env_id: str, env_kind: str, frame_stack: int) -> Resolved:
    """Every hyperparameter of `algo` for this env: a non-null config value wins, then the zoo's, then the default.

    `given` is the algo config (`_target_`, `name`, `zoo` and the hyperparameter keys; null = not set).
    """
    entry = zoo_entry(algo, env_id, env_kind) if given.get("zoo", True) else None
    zoo_values, notes = convert_entry(entry, env_kind, frame_stack) if entry else ({}, [])
    defaults = {
        **SB3_DEFAULTS[algo],
        **HARNESS_DEFAULTS,
        "policy": "CnnPolicy" if env_kind in ("atari", "minatar") else "MlpPolicy",
    }
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, default in defaults.items():
        if given.get(key) is not None:
            values[key], sources[key] = given[key], "config"
        elif key in zoo_values:
            values[key], sources[key] = zoo_values[key], "zoo"
        else:
            values[key], sources[key] = default, "default"
    if values["normalize"] is True:
        values["normalize"] = dict.fromkeys(NORMALIZE_KEYS, True)
    if values["normalize"] and sources["normalize"] == "zoo":
        notes.append(
            "normalize: VecNormalize with the run's gamma (as the zoo); obs stats also apply at test time"
        )
    return Resolved(algo, values, sources, entry, notes)
