"""The rl-baselines3-zoo's hyperparameters: read from the rl_zoo3 package's own files, converted key by key, every
zoo key honoured or refused; config > zoo > SB3 default; the zoo's `normalize` honoured at training and test time."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import re

import pytest
import yaml
from stable_baselines3 import A2C, DQN, PPO

from neuroevo_bench.config import ConfigError, validate_sb3
from neuroevo_bench.runner import replay_score, run
from neuroevo_bench.zoo import SB3_DEFAULTS, ZooEntry, convert_entry, parse_policy_kwargs, zoo_entry

QUIET = ("progress_every_s=1000",)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: as the runner sets resources.threads


def zoo_yaml(algo: str) -> dict:
    """The zoo's file for `algo`, read here independently of neuroevo_bench.zoo."""
    path = importlib.metadata.distribution("rl_zoo3").locate_file(f"rl_zoo3/hyperparams/{algo}.yml")
    with open(str(path)) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize(("algo", "cls"), [("a2c", A2C), ("ppo", PPO), ("dqn", DQN)])
def test_sb3_defaults_table_matches_sb3(algo, cls):
    """A key the zoo does not set gets SB3's own constructor default: the table must not drift from SB3."""
    params = inspect.signature(cls.__init__).parameters
    assert {k: params[k].default for k in SB3_DEFAULTS[algo]} == SB3_DEFAULTS[algo]


@pytest.mark.parametrize(
    ("algo", "env_overrides"),
    [
        ("ppo", ("env=gym", "env.id=Acrobot-v1")),
        ("ppo", ("env=gym", "env.id=Pendulum-v1")),
        ("a2c", ("env=gym", "env.id=Pendulum-v1")),
        ("a2c", ("env=gym", "env.id=LunarLander-v3")),
        ("dqn", ("env=gym", "env.id=MountainCar-v0")),
        ("dqn", ("env=CartPole",)),
    ],
)
def test_converted_values_equal_the_zoo_file(make_cfg, algo, env_overrides):
    """Every key of the env's entry reaches the resolved hyperparameters (source `zoo`), converted only in
    notation; every other key is SB3's default (source `default`)."""
    r = validate_sb3(
        make_cfg(f"algo={algo}", *env_overrides, "budget.frames=2000000", "eval.every_frames=1000")
    )
    env_id = r.entry.env_id
    entry = zoo_yaml(algo)[env_id]
    assert r.entry.key == env_id and r.entry.version == importlib.metadata.version("rl_zoo3") == "2.9.2"
    for key, value in entry.items():
        if key == "n_timesteps":
            assert r.record()["zoo"]["n_timesteps"] == value
            continue
        assert r.sources[key] == "zoo", key
        got = r.values[key]
        if isinstance(value, str) and value.startswith("lin_"):
            assert got == {"schedule": "linear", "initial": float(value[4:])}
        elif key == "policy_kwargs":
            assert got == eval(value, {"dict": dict})  # the zoo's own reading of it (safe: no names needed)
        elif key == "normalize":
            assert value is True and got == {"norm_obs": True, "norm_reward": True}
        else:
            assert got == value, key
    for key in set(r.values) - set(entry):
        assert r.sources[key] == "default", key


def test_policy_kwargs_with_classes_are_parsed_not_evaluated():
    text = "dict(log_std_init=-2,\n ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256]))"
    assert parse_policy_kwargs(text, "zoo") == {
        "log_std_init": -2,
        "ortho_init": False,
        "activation_fn": "torch.nn.ReLU",
        "net_arch": {"pi": [256, 256], "vf": [256]},
    }
    with pytest.raises(
        ConfigError, match=r"uses \"__import__\('os'\).system\('true'\)\", which the harness does not read"
    ):
        parse_policy_kwargs("dict(a=__import__('os').system('true'))", "zoo")
    with pytest.raises(ConfigError, match=r"uses 'th\.optim\.Adam'"):
        parse_policy_kwargs("dict(optimizer_class=th.optim.Adam)", "zoo")


@pytest.mark.parametrize(
    ("values", "kind", "message"),
    [
        ({"callback": "rl_zoo3.callbacks.ParallelTrainCallback"}, "gym", "sets callback='rl_zoo3.callbacks"),
        ({"env_wrapper": "minigrid.wrappers.FlatObsWrapper"}, "gym", "sets env_wrapper='minigrid.wrappers"),
        (
            {"frame_stack": 2},
            "atari",
            "sets frame_stack=2, which the harness cannot honour (only on Atari, equal",
        ),
        ({"policy": "rl_zoo3.policies.Custom"}, "gym", "sets policy='rl_zoo3.policies.Custom'"),
        ({"train_freq": [1, "episode"]}, "gym", "sets train_freq=[1, 'episode']"),
        (
            {"normalize": "dict(norm_obs=False, clip_obs=5)"},
            "gym",
            "sets normalize={'norm_obs': False, 'clip",
        ),
        ({"learning_rate": "cosine_1e-3"}, "gym", "sets learning_rate='cosine_1e-3'"),
        (
            {"replay_buffer_kwargs": "dict(handle_timeout_termination=False)"},
            "gym",
            "sets replay_buffer_kwargs=",
        ),
    ],
)
def test_a_zoo_key_the_harness_cannot_honour_is_refused_not_dropped(values, kind, message):
    entry = ZooEntry("dqn", "X-v0", "X-v0", values, "2.9.2", "rl_zoo3/hyperparams/dqn.yml", "/x")
    with pytest.raises(ConfigError, match=re.escape("rl-baselines3-zoo 2.9.2 dqn.yml X-v0 " + message)):
        convert_entry(entry, kind, 4)


def test_every_entry_of_the_zoo_files_converts_or_is_refused_by_name():
    """All A2C/PPO/DQN entries: either converted, or refused by a ConfigError naming the entry (no other error)."""
    refused = {}
    for algo in ("a2c", "ppo", "dqn"):
        for key, values in zoo_yaml(algo).items():
            entry = ZooEntry(algo, key, key, dict(values), "2.9.2", f"rl_zoo3/hyperparams/{algo}.yml", "/x")
            try:
                convert_entry(entry, "atari" if key == "atari" else "gym", 4)
            except ConfigError as exc:
                assert f"{algo}.yml {key} sets " in str(exc)
                refused[(algo, key)] = str(exc)
    assert ("ppo", "CarRacing-v3") in refused and ("ppo", "MiniGrid-Unlock-v0") in refused
    assert not [k for k in refused if k[1] in ("CartPole-v1", "atari", "Acrobot-v1", "Pendulum-v1")]


def test_unlisted_env_uses_the_zoo_default_entry_and_ale_ids_the_atari_entry():
    assert zoo_entry("ppo", "FrozenLake-v1", "gym").key == "default"
    assert zoo_entry("dqn", "ALE/Breakout-v5", "atari").key == "atari"
    assert zoo_entry("dqn", "CartPole-v1", "gym").key == "CartPole-v1"
    assert zoo_entry("a2c", "MinAtar/Breakout-v1", "minatar").key == "atari"  # the harness's choice


def test_config_beats_zoo_beats_default_and_zoo_can_be_switched_off(make_cfg):
    r = validate_sb3(make_cfg("algo=dqn", "env=CartPole", "algo.learning_rate=1e-3", "algo.policy_kwargs={}"))
    assert (r.values["learning_rate"], r.sources["learning_rate"]) == (1e-3, "config")
    assert (r.values["policy_kwargs"], r.sources["policy_kwargs"]) == (
        {},
        "config",
    )  # replaces the zoo's whole
    assert (r.values["train_freq"], r.sources["train_freq"]) == (256, "zoo")
    assert (r.values["tau"], r.sources["tau"]) == (1.0, "default")
    off = validate_sb3(make_cfg("algo=dqn", "env=CartPole", "algo.zoo=false", "budget.frames=100000"))
    assert off.values["train_freq"] == 4 and off.values["buffer_size"] == 1_000_000 and off.entry is None


def test_zoo_normalize_is_honoured_in_training_test_policy_and_saved_model(make_cfg, tmp_path):
    """A2C on Pendulum-v1 (the zoo: normalize, 8 envs, gSDE): VecNormalize's statistics are used by the test
    policy and saved beside the model, so the saved policy replays the final score exactly."""
    cfg = make_cfg(
        "algo=a2c", "env=gym", "env.id=Pendulum-v1", "budget.frames=1600", "eval.every_frames=1600",
        "eval.episodes=2", *QUIET,
    )  # fmt: skip
    info = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "ok" and info["train_frames"] == 1600
    hp = saved["hyperparams"]
    assert hp["values"]["normalize"] == {"norm_obs": True, "norm_reward": True}
    assert hp["sources"]["normalize"] == "zoo" and hp["values"]["use_sde"] is True
    assert any(note.startswith("normalize: VecNormalize") for note in hp["notes"])
    assert (tmp_path / "vecnormalize.pkl").exists()
    assert replay_score(tmp_path).mean() == info["final_score"]


def test_normalize_can_be_overridden_off(make_cfg):
    r = validate_sb3(make_cfg("algo=ppo", "env=gym", "env.id=Acrobot-v1", "algo.normalize=false"))
    assert (r.values["normalize"], r.sources["normalize"]) == (False, "config")
