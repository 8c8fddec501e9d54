"""Bad input fails before any work, through the real command line: one line naming the full key, the bad value
and what is valid, exit status 2, and a refused command changes nothing on disk.

Hydra's own config errors (an unknown group option, a value of the wrong type) exit with status 1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# (overrides, part of the one-line message): refused by the harness's checks before Hydra creates the run dir
REFUSED = [
    (["env=atari"], "env.id is missing: env=atari needs an ALE/<Game>-v5 id, e.g. env.id=ALE/Breakout-v5"),
    (
        ["env=gym"],
        "env.id is missing: env=gym needs the id of a registered gymnasium environment, e.g. env.id=",
    ),
    (
        ["env=gym", "env.id=ALE/Pong-v5"],
        "env.id='ALE/Pong-v5' is an Atari game: use env=atari env.id=ALE/Pong-v5,",
    ),
    (
        ["env=atari", "env.id=ALE/Pongg-v5"],
        "env.id='ALE/Pongg-v5' is not an Atari game in ale_py's registry; close matches: ALE/Pong-v5; valid: ",
    ),
    (
        ["env=atari", "env.id=Pong"],
        "env.id='Pong' is not an Atari game in ale_py's registry; close matches: ALE/Pong-v5;",
    ),
    (
        ["env=gym", "env.id=NoSuchEnv-v0"],
        "env.id='NoSuchEnv-v0' is not a registered gymnasium environment; valid: ",
    ),
    (["env=gym", "env.id=CartPol-v1"], "close matches: CartPole-v0, CartPole-v1"),
    (
        ["env=gym", "env.id=Acrobot-v1", "env.frame_skip=4"],
        "env.frame_skip=4 is invalid for env.id='Acrobot-v1'; valid: env.frame_skip=1.",
    ),
    (["env.frame_skip=2"], "env.frame_skip=2 is invalid for env.id='CartPole-v1'; valid: env.frame_skip=1."),
    (["env.kind=mujoco"], "env.kind='mujoco' is invalid; valid: gym, atari"),
    (
        ["env.vectorization=fast"],
        "env.vectorization='fast' is invalid; valid: auto, vector_entry_point, sync, async",
    ),
    (
        ["env=Pong", "env.max_episode_frames=3"],
        "an Atari episode cap of 3 frames (env.max_episode_frames, or",
    ),
    (["budget.frames=0"], "budget.frames=0 is invalid; valid: a positive integer"),
    (["checkpoint_every_s=0"], "checkpoint_every_s=0.0 is invalid; valid: a number of seconds > 0"),
    (["budget.frames=-5"], "budget.frames=-5 is invalid"),
    (["algo=a2c", "algo.n_steps=0"], "algo.n_steps=0 is invalid; valid: a positive integer"),
    (
        ["algo=dqn", "algo.learning_rate=0"],
        "algo.learning_rate=0 is invalid; valid: a number > 0, or {schedule:",
    ),
    (["algo=ppo", "algo.learning_rate=-0.001"], "algo.learning_rate=-0.001 is invalid; valid: a number > 0"),
    (
        ["algo=a2c", "algo.learning_rate={schedule:linear,initial:0}"],
        "algo.learning_rate={'schedule': 'linear', 'initial': 0} is invalid (need initial > 0, final >= 0)",
    ),
    (
        ["algo=dqn", "env=gym", "env.id=Pendulum-v1"],
        "algo=dqn needs discrete actions, but env.id='Pendulum-v1' has action space Box(-2.0, 2.0, (1,), float32);"
        " valid: an env with a Discrete action space (or algo=a2c / algo=ppo for continuous actions)",
    ),
    (["algo=dqn", "algo.train_freq=0"], "algo.train_freq=0 is invalid; valid: a positive integer"),
    (
        ["algo=dqn", "algo.exploration_final_eps=1.5"],
        "algo.exploration_final_eps=1.5 is invalid; valid: a number in",
    ),
    (
        ["algo=ppo", "algo.normalize=maybe"],
        "algo.normalize='maybe' is invalid; valid: false, true, or {norm_obs:",
    ),
    (["algo.population=1"], "algo.population=1 is invalid; valid: an integer >= 2 (such2017: the elite"),
    (["algo=es", "algo.sigma=0"], "algo.sigma=0.0 is invalid; valid: a noise standard deviation > 0"),
    (
        ["algo=es", "algo.population=7"],
        "algo.population=7 is invalid; valid: an even integer >= 2 (population / 2",
    ),
    (["algo=es", "algo.population=0"], "algo.population=0 is invalid; valid: an even integer >= 2"),
    (
        ["algo=es", "algo.learning_rate=-0.01"],
        "algo.learning_rate=-0.01 is invalid; valid: an Adam step size > 0",
    ),
    (["algo.variant=chopra", "algo.population=0"], "algo.population=0 is invalid; valid: a positive integer"),
    (["algo.truncation=600"], "algo.truncation=600 is invalid; valid: 0 <= algo.truncation <= 500"),
    (["algo.variant=paper"], "algo.variant='paper' is invalid; valid: such2017, chopra"),
    (
        ["algo=ppo", "evaluator=ray"],
        "evaluator=ray evaluates GA / random-search / ES populations; algo=ppo does not",
    ),
    (
        ["algo.elite_candidates=1"],  # the previous elite alone: it could never be replaced
        "algo.elite_candidates=1 is invalid; valid: 2 <= algo.elite_candidates <= 499 (such2017:",
    ),
    (["algo.variant=chopra", "algo.elite_candidates=501"], "valid: 1 <= algo.elite_candidates <= 500"),
    (["algo.mutation_power=0"], "algo.mutation_power=0.0 is invalid"),
    (["algo.mutation_power=-0.1"], "algo.mutation_power=-0.1 is invalid"),
    (["algo.slots=65537"], "algo.slots=65537 is invalid; valid: 1 <= algo.slots <= 65536"),
    (["eval.every_frames=600000"], "eval.every_frames=600000 is larger than budget.frames=500000"),
    (
        ["eval.seed=2147483647"],
        "eval.seed=2147483647 is invalid; valid: 2147483648 <= eval.seed <= 4294967286",
    ),
    (["seed=-1"], "seed=-1 is invalid; valid: 0 <= seed <= 2147418111"),
    (["resources.device=tpu"], "resources.device='tpu'; valid: cpu, cuda, cuda:N"),
]
HYDRA_ERRORS = [
    (["algo=nope"], "Could not find 'algo/nope'"),
    (["env=Nope"], "Could not find 'env/Nope'"),
    (["budget.frames=abc"], "budget.frames"),
]


def app(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`python -m neuroevo_bench <overrides>` with its run directory under `tmp_path`."""
    return subprocess.run(
        [sys.executable, "-m", "neuroevo_bench", *overrides, f"hydra.run.dir={tmp_path}/run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(("overrides", "message"), REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(tmp_path, overrides, message):
    proc = app(tmp_path, *overrides)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in one_error_line(proc)
    assert not list(tmp_path.iterdir())  # no run dir, no .hydra/, no log


def test_unknown_atari_ids_suggest_atari_games_only(tmp_path):
    line = one_error_line(app(tmp_path, "env=atari", "env.id=ALE/Cartpole-v5"))
    assert "ALE/" in line and "CartPole-v1" not in line and "close matches" not in line


@pytest.mark.parametrize(("overrides", "message"), HYDRA_ERRORS, ids=[" ".join(o) for o, _ in HYDRA_ERRORS])
def test_hydra_config_errors_exit_1_and_change_nothing(tmp_path, overrides, message):
    proc = app(tmp_path, *overrides)
    assert proc.returncode == 1
    assert message in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert not list(tmp_path.iterdir())


def test_a_network_that_cannot_handle_the_env_is_refused_before_any_record(tmp_path):
    """Found when the algorithm is built, after Hydra made the run directory: no record is written there."""
    proc = app(tmp_path, "env=gym", "env.id=FrozenLake-v1")
    assert proc.returncode == 2
    assert "observation space Discrete(16) is not supported by the GA/RS policies" in one_error_line(proc)
    assert not (tmp_path / "run" / "run.json").exists()
