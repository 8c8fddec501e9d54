"""SB3 A2C/PPO/DQN through the harness: exact frame cap, records, identical envs, reload, schedules, solving
CartPole."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from neuroevo_bench.algorithms import RunContext
from neuroevo_bench.algorithms.sb3 import SB3VecEnv, benchmark
from neuroevo_bench.config import ConfigError, validate_sb3
from neuroevo_bench.envs import CountedVecEnv, Ledger, make_vector_env
from neuroevo_bench.runner import replay_score, run
from tests.conftest import TOY, TOY_LENGTH, TOY_SKIP3

QUIET = ("progress_every_s=1000",)
# Small rollouts on the toy env (every episode exactly TOY_LENGTH steps): A2C 4 envs x 5 steps, PPO 4 x 16,
# DQN 4 x 5 (train_freq) with updates from the first rollout on.
TINY = {
    "a2c": ("algo=a2c", "algo.n_envs=4", "algo.n_steps=5"),
    "ppo": ("algo=ppo", "algo.n_envs=4", "algo.n_steps=16", "algo.batch_size=32", "algo.n_epochs=2"),
    "dqn": (
        "algo=dqn", "algo.n_envs=4", "algo.train_freq=5", "algo.learning_starts=0", "algo.batch_size=8",
        "algo.buffer_size=1000",
    ),
}  # fmt: skip
ROLLOUT_STEPS = {"a2c": 4 * 5, "ppo": 4 * 16, "dqn": 4 * 5}
ZOO = "rl-baselines3-zoo 2.9.2"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: as the runner sets resources.threads


def read_curve(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "curve.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("frame_skip", [1, 3])
@pytest.mark.parametrize("algo", ["a2c", "ppo", "dqn"])
def test_frame_cap_and_records_are_exact_on_toy_env(make_cfg, tmp_path, algo, frame_skip):
    """Budget 1003: the run stops at the last whole vector step under the cap; eval rows and frames by hand."""
    budget, every, episodes = 1003, 500, 3
    cfg = make_cfg(
        *(TOY if frame_skip == 1 else TOY_SKIP3), *TINY[algo], *QUIET, f"budget.frames={budget}",
        f"eval.every_frames={every}", f"eval.episodes={episodes}",
    )  # fmt: skip
    info = run(cfg, tmp_path)
    step_frames = 4 * frame_skip
    rollout_frames = ROLLOUT_STEPS[algo] * frame_skip

    assert info["status"] == "ok"
    assert info["train_frames"] == (budget // step_frames) * step_frames  # the last vector step that fits
    assert budget - step_frames < info["train_frames"] <= budget
    assert info["agent_steps"] * frame_skip == info["train_frames"]
    rows = read_curve(tmp_path)
    frames = [int(r["frames"]) for r in rows]
    first_after_every = math.ceil(every / rollout_frames) * rollout_frames  # eval points at rollout ends
    assert frames == [0, first_after_every, info["train_frames"]]
    # Every test episode of the toy env is TOY_LENGTH steps: eval frames are known exactly, and not charged.
    assert info["eval_frames"] == len(rows) * episodes * TOY_LENGTH * frame_skip
    assert [int(r["eval_frames"]) for r in rows] == [
        (i + 1) * episodes * TOY_LENGTH * frame_skip for i in range(3)
    ]
    assert all(float(r["score_mean"]) == TOY_LENGTH for r in rows)
    # A final rollout cut short by the cap is charged but never learnt from, and the record says how much.
    assert int(rows[-1]["unused_frames"]) == info["train_frames"] % rollout_frames
    assert int(rows[-1]["rollouts"]) == info["train_frames"] // rollout_frames
    assert int(rows[-1]["train_episodes"]) == 4 * (info["agent_steps"] // 4 // TOY_LENGTH)
    assert float(rows[-1]["train_return_mean"]) == TOY_LENGTH


NETWORKS = {
    "a2c": "SB3 MlpPolicy: pi 4-64-64-2, vf 4-64-64-1 (separate), tanh",
    "ppo": "SB3 MlpPolicy: pi 4-64-64-2, vf 4-64-64-1 (separate), tanh",
    "dqn": "SB3 DQN MlpPolicy: q 4-256-256-2 (+ a target copy), relu",
}


@pytest.mark.parametrize("algo", ["a2c", "ppo", "dqn"])
def test_cartpole_records_and_saved_model_reproduces_final_score(make_cfg, tmp_path, algo):
    """Zoo CartPole config: run.json states every hyperparameter with its source, the zoo file and version, and
    the network; model.zip replays the score."""
    cfg = make_cfg(
        f"algo={algo}", "env=CartPole", "budget.frames=1536", "eval.every_frames=768", "algo.n_steps=64"
        if algo != "dqn" else "algo.learning_starts=256", *QUIET,
    )  # fmt: skip
    info = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "run.json").read_text())
    rows = read_curve(tmp_path)

    assert saved["status"] == "ok" and saved["algo"] == algo and saved["env_id"] == "CartPole-v1"
    assert saved["hyperparams_source"] == f"{ZOO} {algo}.yml CartPole-v1"
    hp = saved["hyperparams"]
    assert hp["zoo"]["file"] == f"rl_zoo3/hyperparams/{algo}.yml" and hp["zoo"]["version"] == "2.9.2"
    assert (
        hp["zoo"]["entry"] == "CartPole-v1"
        and hp["zoo"]["n_timesteps"] == {"a2c": 5e5, "ppo": 1e5, "dqn": 5e4}[algo]
    )
    assert hp["sources"]["policy"] == "zoo" and hp["sources"]["gamma"] == (
        "default" if algo == "a2c" else "zoo"
    )
    overridden = "learning_starts" if algo == "dqn" else "n_steps"
    assert hp["sources"][overridden] == "config" and hp["values"][overridden] in (64, 256)
    assert saved["sb3_hyperparams"][overridden] == hp["values"][overridden]
    assert saved["network"] == NETWORKS[algo]
    assert saved["train_frames"] == int(rows[-1]["frames"]) == 1536
    # CartPole pays 1 per step, so the test frames are the sum of the eval points' returns.
    assert saved["eval_frames"] == sum(round(float(r["score_mean"]) * int(r["episodes"])) for r in rows)
    assert saved["final_score"] == float(rows[-1]["score_mean"])
    returns = replay_score(tmp_path)
    assert returns.mean() == info["final_score"]


def resolved(make_cfg, *overrides: str):
    return validate_sb3(make_cfg(*overrides))


def test_zoo_values_follow_env_and_yield_to_overrides(make_cfg):
    ppo = resolved(make_cfg, "algo=ppo", "env=CartPole").values
    assert (ppo["n_envs"], ppo["n_steps"], ppo["batch_size"], ppo["n_epochs"]) == (8, 32, 256, 20)
    assert (ppo["gamma"], ppo["gae_lambda"], ppo["ent_coef"]) == (0.98, 0.8, 0.0)
    assert ppo["learning_rate"] == {"schedule": "linear", "initial": 1e-3}
    assert ppo["clip_range"] == {"schedule": "linear", "initial": 0.2}
    a2c = resolved(make_cfg, "algo=a2c", "env=CartPole", "algo.n_envs=2")
    assert (a2c.values["n_envs"], a2c.values["n_steps"], a2c.values["learning_rate"]) == (2, 5, 7e-4)
    assert (a2c.sources["n_envs"], a2c.sources["ent_coef"], a2c.sources["n_steps"]) == (
        "config",
        "zoo",
        "default",
    )
    pong = resolved(make_cfg, "algo=a2c", "env=Pong")
    assert pong.label == f"{ZOO} a2c.yml atari"
    v = pong.values
    assert (v["policy"], v["n_envs"], v["vf_coef"], v["ent_coef"], v["clip_reward"]) == (
        "CnnPolicy",
        16,
        0.25,
        0.01,
        True,
    )
    assert v["policy_kwargs"] == {
        "optimizer_class": "stable_baselines3.common.sb2_compat.rmsprop_tf_like.RMSpropTFLike",
        "optimizer_kwargs": {"eps": 1e-5},
    }
    breakout = resolved(make_cfg, "algo=ppo", "env=atari", "env.id=ALE/Breakout-v5").values
    assert (breakout["n_envs"], breakout["n_steps"], breakout["n_epochs"], breakout["batch_size"]) == (
        8,
        128,
        4,
        256,
    )
    plain = resolved(make_cfg, "algo=ppo", "env=Pong", "algo.zoo=false")
    assert plain.entry is None and plain.label.startswith("stable-baselines3 PPO defaults")
    assert (plain.values["n_envs"], plain.values["n_steps"], plain.values["policy"]) == (1, 2048, "CnnPolicy")
    assert set(plain.sources.values()) == {"default"}


def test_linear_schedule_decays_over_the_run_budget_across_learn_calls(make_cfg):
    """After two train_until calls (two learn() calls), lr = initial * (1 - steps used / budget steps)."""
    cfg = make_cfg("algo=ppo", "env=CartPole")
    budget = 4096
    ctx = RunContext(env_cfg=cfg.env, ledger=Ledger(cap=budget), seed=0, resources=cfg.resources)
    algo = instantiate(cfg.algo, _partial_=True)(ctx=ctx)
    try:
        assert algo.train_until(512) and algo.train_until(1024)
        steps = ctx.ledger.agent_steps
        assert steps == 1024
        remaining = 1 - steps / budget
        assert algo.model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * remaining)
        assert algo.model.clip_range(algo.model._current_progress_remaining) == pytest.approx(0.2 * remaining)
        extra = algo.record_extra()
        assert extra["hyperparams_source"] == f"{ZOO} ppo.yml CartPole-v1"
        assert extra["sb3_class"] == "PPO" and extra["sb3_hyperparams"]["n_epochs"] == 20
        assert extra["sb3_hyperparams"]["learning_rate"].startswith("LinearSchedule(start=0.001, end=0.0")
    finally:
        algo.close()


def test_stop_at_cap_leaves_sb3_in_step_with_the_env(make_cfg):
    """When the cap stops a rollout midway, SB3's last observation is the env's real state, and no step more."""
    cfg = make_cfg("algo=ppo", "env=CartPole")
    ctx = RunContext(env_cfg=cfg.env, ledger=Ledger(cap=300), seed=0, resources=cfg.resources)
    algo = instantiate(cfg.algo, _partial_=True)(ctx=ctx)
    try:
        assert algo.train_until(300) is False
        assert ctx.ledger.frames == 296 and algo.unused_frames == 296 - 256
        states = np.stack([e.unwrapped.state for e in algo.venv.counted.env.envs]).astype(np.float32)
        np.testing.assert_array_equal(algo.model._last_obs, states)
        assert algo.train_until(300) is False and ctx.ledger.frames == 296
    finally:
        algo.close()


def test_state_dict_resumes_weights_optimizer_and_schedule(make_cfg):
    """A checkpointed SB3 baseline restored into a fresh one has the same weights, optimizer and progress."""
    cfg = make_cfg("algo=ppo", "env=CartPole")
    ledger = Ledger(cap=4096)
    first = instantiate(cfg.algo, _partial_=True)(
        ctx=RunContext(env_cfg=cfg.env, ledger=ledger, seed=0, resources=cfg.resources)
    )
    fresh_ledger = Ledger(cap=4096)
    second = instantiate(cfg.algo, _partial_=True)(
        ctx=RunContext(env_cfg=cfg.env, ledger=fresh_ledger, seed=0, resources=cfg.resources)
    )
    try:
        first.train_until(1024)
        fresh_ledger.frames, fresh_ledger.agent_steps = ledger.frames, ledger.agent_steps  # the runner's job
        second.load_state_dict(first.state_dict())
        for a, b in zip(first.model.policy.parameters(), second.model.policy.parameters(), strict=True):
            assert torch.equal(a, b)
        opt_a, opt_b = first.model.policy.optimizer, second.model.policy.optimizer
        assert opt_a.state_dict()["state"][0]["step"] == opt_b.state_dict()["state"][0]["step"] > 0
        assert second.model.num_timesteps == 1024 and second.rollouts == first.rollouts == 4
        assert second.train_until(2048) and fresh_ledger.frames == 2048
        assert second.model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 2048 / 4096))
    finally:
        first.close()
        second.close()


def _first_episodes(cfg, n_episodes: int, seed: int = 7) -> tuple[list, list]:
    """Observations and rewards of the GA's env path and SB3's for the same seed and action sequence.

    GA: the factory's default vector env (next-step auto-reset: the step after an episode end only resets);
    SB3: the adapter over the factory's same-step auto-reset env (reset observation in the ending step).
    """
    skip = int(cfg.env.frame_skip)
    ga = CountedVecEnv(make_vector_env(cfg.env, 1), skip, Ledger())
    sb3 = SB3VecEnv(CountedVecEnv(make_vector_env(cfg.env, 1, same_step_autoreset=True), skip, Ledger()))
    n_actions = int(sb3.action_space.n)
    rng = np.random.default_rng(0)
    sb3.seed(seed)
    ga_trace = [ga.reset(seed=seed)[0]]
    sb3_trace = [sb3.reset()[0]]
    done = 0
    while done < n_episodes:
        action = rng.integers(0, n_actions, size=1)
        obs, reward, term, trunc, _, charged = ga.step(action)
        s_obs, s_reward, s_done, s_info = sb3.step(action)
        assert charged[0] and bool(term[0] or trunc[0]) == bool(s_done[0])
        ga_trace.append((obs[0], float(reward[0])))
        if s_done[0]:
            sb3_trace += [(s_info[0]["terminal_observation"], float(s_reward[0])), s_obs[0]]
            ga_trace.append(ga.step(action)[0][0])  # GA path: the reset step (action ignored, not charged)
            done += 1
        else:
            sb3_trace.append((s_obs[0], float(s_reward[0])))
    assert ga.ledger.frames == sb3.counted.ledger.frames
    ga.close()
    sb3.close()
    return ga_trace, sb3_trace


def _assert_same_trace(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, tuple):
            np.testing.assert_array_equal(x[0], y[0])
            assert x[1] == y[1]
        else:
            np.testing.assert_array_equal(x, y)


def test_ga_and_sb3_env_paths_are_identical_on_cartpole(make_cfg):
    cfg = make_cfg("env=CartPole")
    ga, sb3 = _first_episodes(cfg, n_episodes=3)
    assert len(ga) > 30
    _assert_same_trace(ga, sb3)


def test_ga_and_sb3_env_paths_are_identical_on_atari(make_cfg):
    """Same protocol settings, sticky actions included; episodes cut at 400 frames (100 agent steps)."""
    cfg = make_cfg(
        "env=Pong", "env.max_episode_frames=400",
    )  # fmt: skip
    ga, sb3 = _first_episodes(cfg, n_episodes=2)
    _assert_same_trace(ga, sb3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("algo=ppo", "algo.learning_rate=lin_1e-3"), "algo.learning_rate='lin_1e-3' is invalid"),
        (("algo=ppo", "algo.clip_range={schedule:cosine,initial:0.2}"), "algo.clip_range="),
        (("algo=ppo", "algo.batch_size=512"), "algo.batch_size=512 is larger than one rollout"),
        (("algo=a2c", "algo.policy=Mlp"), "algo.policy='Mlp'; valid: MlpPolicy, CnnPolicy"),
        (
            ("algo=a2c", "budget.frames=30", "eval.every_frames=30"),
            "budget.frames=30 is smaller than one a2c",
        ),
    ],
)
def test_bad_sb3_values_fail_with_a_clear_message(make_cfg, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        run(make_cfg("env=CartPole", *overrides, *QUIET), tmp_path)


def test_unknown_sb3_key_fails_at_compose(make_cfg):
    with pytest.raises(Exception, match="batch_size"):
        make_cfg("algo=a2c", "algo.batch_size=64")


def test_reward_clipping_is_a_training_signal_only(make_cfg):
    """clip_reward hands SB3 sign(reward); the episode return it reports stays unclipped (Pendulum: -16..0)."""
    cfg = make_cfg("env=gym", "env.id=Pendulum-v1")
    plain, clipped = (
        SB3VecEnv(CountedVecEnv(make_vector_env(cfg.env, 2, same_step_autoreset=True), 1, Ledger()), clip)
        for clip in (False, True)
    )
    actions = np.random.default_rng(0).uniform(-2, 2, size=(200, 2, 1)).astype(np.float32)
    for venv in (plain, clipped):
        venv.seed(3)
        venv.reset()
    total = np.zeros(2)
    for t in range(200):
        _, r, _, _ = plain.step(actions[t])
        _, r_clip, done, info = clipped.step(actions[t])
        np.testing.assert_array_equal(r_clip, np.sign(r))
        total += r
    assert done.all() and all(i["TimeLimit.truncated"] for i in info)  # Pendulum's 200-step time limit
    assert [i["episode"]["l"] for i in info] == [200, 200]
    np.testing.assert_allclose([i["episode"]["r"] for i in info], total, rtol=1e-6)
    assert total.min() < -100
    plain.close()
    clipped.close()


@pytest.mark.slow
def test_atari_cnn_policy_trains_under_the_cap_and_reloads(make_cfg, tmp_path):
    """Pong with the zoo's atari PPO set (small rollouts): Nature CNN on uint8 frames, exact cap, reload."""
    cfg = make_cfg(
        "algo=ppo", "env=Pong", "env.max_episode_frames=2000", "algo.n_envs=2", "algo.n_steps=64",
        "algo.batch_size=64", "budget.frames=1100", "eval.every_frames=1100", "eval.episodes=1", *QUIET,
    )  # fmt: skip
    info = run(cfg, tmp_path)
    rows = read_curve(tmp_path)
    assert info["status"] == "ok"
    assert info["hyperparams_source"] == f"{ZOO} ppo.yml atari"
    assert info["network"].startswith("SB3 CnnPolicy: Nature CNN 4x84x84 -> 512 (ReLU, shared by pi and vf)")
    assert info["train_frames"] == 1096 and info["agent_steps"] == 274  # 1100 // (2 envs x 4 frames) * 8
    assert (int(rows[-1]["rollouts"]), int(rows[-1]["unused_frames"])) == (2, 1096 - 1024)
    assert info["eval_frames"] == 2 * 2000  # eval at 0 and at the end, one episode cut at 2000 frames each
    assert replay_score(tmp_path).mean() == info["final_score"]


@pytest.mark.slow
@pytest.mark.parametrize(("algo", "budget"), [("a2c", 500_000), ("ppo", 100_000)])
def test_solves_cartpole_within_the_zoo_budget(make_cfg, tmp_path, algo, budget):
    """rl-baselines3-zoo CartPole-v1 values reach a test mean >= 475 within the zoo's n_timesteps."""
    cfg = make_cfg(f"algo={algo}", "env=CartPole", f"budget.frames={budget}", *QUIET)
    info = run(cfg, tmp_path)
    scores = [float(r["score_mean"]) for r in read_curve(tmp_path)]
    assert max(scores) >= 475, scores
    assert info["final_score"] >= 475, scores


@pytest.mark.slow
def test_dqn_reaches_475_on_cartpole_within_the_zoo_budget(make_cfg, tmp_path):
    """The zoo's CartPole-v1 DQN set within its 50k agent steps reaches a test mean >= 475, as the zoo's published
    result (500). Seeds 0-4, eval every 5k frames: each reaches 500 at some eval point (first at 30k for seeds
    0-2 and 4, 40k for seed 3); the final model scores 16.9, 500, 500, 119.5, 467.0: DQN on CartPole swings
    between eval points. Seed 1 holds 500 at the end too, and this test pins both."""
    cfg = make_cfg(
        "algo=dqn", "env=CartPole", "seed=1", "budget.frames=50000", "eval.every_frames=5000", *QUIET
    )
    info = run(cfg, tmp_path)
    scores = [float(r["score_mean"]) for r in read_curve(tmp_path)]
    assert max(scores) >= 475, scores
    assert info["final_score"] >= 475, scores


def test_overhead_benchmark_trains_exactly_like_bare_sb3():
    """Through the harness (adapter, counted env, budget callback, chunked learn()) A2C ends with bit-identical
    weights to stock SB3 on its own DummyVecEnv: the harness changes what training costs, not what it does."""
    row = benchmark(quick=True, frames=2000, chunks=2)
    assert row["identical_training"]
    assert row["name"] == "sb3_overhead" and row["goal"] == 0.95
    assert row["totals"]["harness"]["frames"] == 2000  # A2C zoo rollouts are 40 frames: 1000, 2000 exactly
    assert row["totals"]["bare"]["frames"] >= 2000
    assert row["ratio"] == row["project_fps"] / row["reference_fps"] > 0


def test_dqn_on_pong_charges_every_step_and_records_the_atari_set(make_cfg, tmp_path):
    """The zoo's atari DQN set (buffer and learning_starts cut down): Nature CNN Q-network on uint8 frames, every
    step charged (the random-action steps before learning_starts too), exact cap, reload."""
    cfg = make_cfg(
        "algo=dqn", "env=Pong", "env.max_episode_frames=2000", "algo.learning_starts=64", "algo.buffer_size=1000",
        "budget.frames=1100", "eval.every_frames=1100", "eval.episodes=1", *QUIET,
    )  # fmt: skip
    info = run(cfg, tmp_path)
    rows = read_curve(tmp_path)
    assert info["status"] == "ok"
    assert info["hyperparams_source"] == f"{ZOO} dqn.yml atari"
    hp = info["hyperparams"]
    assert hp["sources"]["buffer_size"] == "config" and hp["sources"]["optimize_memory_usage"] == "zoo"
    assert (hp["values"]["train_freq"], hp["values"]["clip_reward"], hp["sources"]["clip_reward"]) == (
        4,
        True,
        "zoo",
    )
    assert any(
        note.startswith("env_wrapper AtariWrapper is replaced by the protocol env") for note in hp["notes"]
    )
    assert info["network"] == "SB3 DQN CnnPolicy: Nature CNN 4x84x84 -> 512 (ReLU), q 512-6 (+ a target copy)"
    # 275 steps of 4 frames = 1100 exactly; train_freq 4: 68 whole rollouts, the 69th cut after 3 steps
    assert info["train_frames"] == 1100 and info["agent_steps"] == 275
    assert (int(rows[-1]["rollouts"]), int(rows[-1]["unused_frames"])) == (68, 12)
    assert info["eval_frames"] == 2 * 2000  # eval at 0 and at the end, one episode cut at 2000 frames each
    assert replay_score(tmp_path).mean() == info["final_score"]


def test_dqn_state_dict_carries_replay_buffer_and_counters(make_cfg):
    """A resumed DQN continues from the same replay buffer, weights (online and target) and target-update count."""
    cfg = make_cfg("algo=dqn", "env=CartPole", "algo.learning_starts=256")
    ledger, fresh_ledger = Ledger(cap=4096), Ledger(cap=4096)
    first, second = (
        instantiate(cfg.algo, _partial_=True)(
            ctx=RunContext(env_cfg=cfg.env, ledger=lg, seed=0, resources=cfg.resources)
        )
        for lg in (ledger, fresh_ledger)
    )
    try:
        first.train_until(1024)
        fresh_ledger.frames, fresh_ledger.agent_steps = ledger.frames, ledger.agent_steps  # the runner's job
        second.load_state_dict(first.state_dict())
        a, b = first.model, second.model
        for p, q in zip(a.q_net_target.parameters(), b.q_net_target.parameters(), strict=True):
            assert torch.equal(p, q)
        assert b.replay_buffer.pos == a.replay_buffer.pos == 1024
        np.testing.assert_array_equal(
            b.replay_buffer.observations[:1024], a.replay_buffer.observations[:1024]
        )
        assert b._n_calls == a._n_calls == 1024 and b._n_updates == a._n_updates > 0
        assert second.train_until(2048) and fresh_ledger.frames == 2048 and b.replay_buffer.pos == 2048
    finally:
        first.close()
        second.close()


def test_dqn_overhead_benchmark_trains_exactly_like_bare_sb3():
    row = benchmark(quick=True, frames=2048, chunks=2, algo="dqn")
    assert row["name"] == "dqn_overhead" and row["identical_training"]
    assert row["totals"]["harness"]["frames"] == row["totals"]["bare"]["frames"] == 2048  # 8 x train_freq 256
