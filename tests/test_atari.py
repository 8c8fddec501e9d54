"""Atari under the Machado et al. (2018) protocol: settings read back from the env, exact frame accounting,
the Nature CNN against torch/SB3 references, GA/RS on Pong, and a tiny four-algorithm Pong sweep."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("ale_py")

from neuroevo_bench.config import EVAL_SEED_MIN
from neuroevo_bench.envs import (
    CountedVecEnv,
    EnvError,
    Ledger,
    ale_seeds,
    atari_game,
    atari_kwargs,
    env_info,
    make_vector_env,
)
from neuroevo_bench.evaluation import LocalEvaluator
from neuroevo_bench.genome import NoiseTable, ParamStore
from neuroevo_bench.policies import (
    NatureCNN,
    PolicyError,
    RowWeights,
    linear_rows,
    make_network,
    network_from_spec,
    network_spec,
)
from neuroevo_bench.runner import replay_score, run
from tests.conftest import ROOT

PONG_PARAMS = 1_687_206  # SB3 NatureCNN (1,684,128) + a 512 x 6 linear head (3,078)
TINY_ATARI_GA = (
    "algo.population=8",
    "algo.truncation=4",
    "algo.elite_candidates=2",
    "algo.elite_episodes=2",
    "algo.slots=8",
    "algo.fitness_max_frames=400",
    "algo.noise_table_size=4194304",
    "eval.episodes=2",
    "env.max_episode_frames=2000",
    "progress_every_s=1000",
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """As a run does (resources.threads=1): on a small shared machine, more torch threads than free cores make
    the convolutions many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_actions(rng: np.random.Generator, env, n: int | None = None) -> np.ndarray:
    return rng.integers(0, env.single_action_space.n, n or env.num_envs)


# --- the env: settings in force, read back from the env -----------------------------------------------------
def test_pong_config_is_the_protocol(make_cfg):
    """The config passes every protocol setting explicitly (ale_py's defaults: sticky 0.0, noop 30, clip on)."""
    env = make_cfg("env=Pong").env
    kw = atari_kwargs(env)
    assert kw["repeat_action_probability"] == 0.25
    assert kw["frameskip"] == 4 and kw["maxpool"] is True
    assert (kw["img_height"], kw["img_width"], kw["grayscale"], kw["stack_num"]) == (84, 84, True, 4)
    assert kw["noop_max"] == 0 and kw["use_fire_reset"] is False
    assert kw["episodic_life"] is False and kw["reward_clipping"] is False
    assert kw["max_num_frames_per_episode"] == 108_000
    assert atari_game(env.id) == "pong"


def test_settings_read_back_from_the_env(make_cfg):
    """Observation format, frame skip, no no-op starts and a frame stack that shifts by one frame per step,
    all observed on the built env; the read-back is what env_info records."""
    cfg = make_cfg("env=Pong")
    observed = env_info(cfg.env).settings["observed"]
    assert observed == {
        "observation_shape": [4, 84, 84],
        "observation_dtype": "uint8",
        "n_actions": 6,
        "frames_per_step": 4,
        "frames_at_reset": 0,
    }
    env = make_vector_env(cfg.env, 2)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=1)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    assert (info["episode_frame_number"] == 0).all()  # no no-op starts, no FIRE on reset
    for t in range(1, 21):
        prev = obs
        obs, _, _, _, info = env.step(random_actions(rng, env))
        assert (info["episode_frame_number"] == 4 * t).all()
        np.testing.assert_array_equal(obs[:, :3], prev[:, 1:])  # the stack drops the oldest frame
    env.close()


def _lockstep_diverges(env_cfg, steps: int = 100) -> bool:
    """Two sub-envs (reset seeds 0 and 1) fed the same actions: do their observations ever differ?"""
    env = make_vector_env(env_cfg, 2)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    try:
        for _ in range(steps):
            a = rng.integers(0, env.single_action_space.n)
            obs, *_ = env.step(np.array([a, a]))
            if not np.array_equal(obs[0], obs[1]):
                return True
        return False
    finally:
        env.close()


def test_sticky_actions_are_in_force(make_cfg):
    """Pong with no-op starts off is deterministic given the actions, so only sticky actions can make two
    differently seeded envs fed the same actions diverge; with sticky actions switched off they never do."""
    assert _lockstep_diverges(make_cfg("env=Pong").env)
    assert not _lockstep_diverges(make_cfg("env=Pong", "env.atari.sticky_actions=0.0").env)


def test_maxpool_is_in_force(make_cfg):
    """The max over the last two frames is never darker than the last frame alone, and brighter somewhere
    (the moving ball shows twice): compared in lockstep with max-pooling off, sticky actions off."""
    on = make_vector_env(make_cfg("env=Pong", "env.atari.sticky_actions=0.0").env, 1)
    off = make_vector_env(
        make_cfg("env=Pong", "env.atari.sticky_actions=0.0", "env.atari.maxpool=false").env, 1
    )
    on.reset(seed=0)
    off.reset(seed=0)
    rng = np.random.default_rng(0)
    brighter = 0
    for _ in range(100):
        a = random_actions(rng, on)
        o1, *_ = on.step(a)
        o2, *_ = off.step(a)
        diff = o1[0, -1].astype(int) - o2[0, -1].astype(int)
        assert diff.min() >= 0
        brighter += int((diff > 0).sum())
    assert brighter > 0
    on.close()
    off.close()


def test_any_game_by_config_unclipped_rewards_and_no_life_loss_terminal(make_cfg):
    """`env=atari env.id=ALE/SpaceInvaders-v5`: the same protocol on another ROM. Its aliens are worth 5 to 30
    points (unclipped), and losing one of its 3 lives does not end the episode."""
    cfg = make_cfg("env=atari", "env.id=ALE/SpaceInvaders-v5")
    assert cfg.env.name == "SpaceInvaders-v5"
    assert atari_game(cfg.env.id) == "space_invaders"
    env = make_vector_env(cfg.env, 8)
    _, info = env.reset(seed=0)
    lives0 = info["lives"].copy()
    assert (lives0 == 3).all()
    rng = np.random.default_rng(0)
    best, life_lost = 0.0, False
    for _ in range(1000):
        _, reward, terminated, _, info = env.step(random_actions(rng, env))
        best = max(best, float(reward.max()))
        lost = info["lives"] < lives0
        assert not (terminated & lost & (info["lives"] > 0)).any()
        life_lost |= bool(lost.any())
        if best > 1 and life_lost:
            break
    env.close()
    assert best > 1, "rewards look clipped to [-1, 1]"
    assert life_lost


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        (
            "CartPole-v1",
            r"not an Atari game, but env.kind=atari .* \(for CartPole-v1: env=gym env.id=CartPole-v1\)",
        ),
        ("ALE/Pongg-v5", "not an Atari game in ale_py's registry; close matches: ALE/Pong-v5;"),
        ("BreakoutNoFrameskip", "close matches: ALE/Breakout-v5;"),
    ],
)
def test_bad_atari_id_fails_early(make_cfg, env_id, message):
    cfg = make_cfg("env=atari", f"env.id={env_id}")
    with pytest.raises(EnvError, match=message):
        make_vector_env(cfg.env, 1)


def test_test_seeds_work_on_ale_and_never_replay_training_seeds(make_cfg):
    """ALE takes seeds below 2**31, the harness's test seeds are >= 2**31: they map to the upper half of
    ALE's range and training seeds to the lower half. A test-seeded reset works and is repeatable."""
    train = np.array([0, 5, 2**30 - 1, 2**30, 2**31 - 1])
    test = np.array([EVAL_SEED_MIN, EVAL_SEED_MIN + 12_345, 2**32 - 1])
    assert (ale_seeds(train) < 2**30).all() and (ale_seeds(test) >= 2**30).all()
    assert (ale_seeds(np.concatenate([train, test])) < 2**31).all()
    env = make_vector_env(make_cfg("env=Pong").env, 2)
    rng = np.random.default_rng(0)
    actions = [random_actions(rng, env) for _ in range(30)]
    runs = []
    for seed in (EVAL_SEED_MIN + 12_345, EVAL_SEED_MIN + 12_345, 12_345):
        env.reset(seed=seed)
        runs.append(np.stack([env.step(a)[0] for a in actions]))
    env.close()
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


# --- frame accounting ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cap", [400, 402, 403])
def test_frames_are_four_per_agent_step_and_the_cap_is_in_frames(make_cfg, cap):
    """A cap of 400 frames ends every episode after exactly 100 agent steps (400 frames, as the emulator's own
    frame counter confirms); a cap between multiples of 4 is rounded down so every step is 4 whole frames. The
    next-step auto-reset is not charged."""
    cfg = make_cfg("env=Pong")
    ledger = Ledger()
    venv = CountedVecEnv(make_vector_env(cfg.env, 3, max_episode_frames=cap), 4, ledger)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(1, 101):
        _, _, terminated, truncated, info, charged = venv.step(random_actions(rng, venv.env))
        assert charged.all()
        assert not terminated.any()
        assert truncated.all() == (t == 100)
    assert (info["episode_frame_number"] == 400).all()
    assert ledger.frames == 3 * 400 == 4 * ledger.agent_steps
    _, _, _, _, info, charged = venv.step(random_actions(rng, venv.env))  # the auto-reset step
    assert not charged.any() and ledger.frames == 1200
    assert (info["episode_frame_number"] == 0).all()
    venv.close()


def _pong_population(make_cfg, n: int, rng_seed: int):
    """(config, network, parameter store, n fresh genomes) of the GA on Pong at its defaults."""
    cfg = make_cfg("env=Pong", "algo=ga")
    info = env_info(cfg.env)
    net = make_network(cfg.algo.network, info.observation_space, info.action_space)
    store = ParamStore(NoiseTable(0, 2**22, net.n_params), net.init_scale(), 0.002)
    return (
        cfg,
        net,
        store,
        [(int(o),) for o in store.noise.sample_offsets(np.random.default_rng(rng_seed), n)],
    )


def test_ga_fitness_cap_and_frames_on_pong(make_cfg):
    """The GA's slot evaluator on Pong with a 400-frame fitness cap: 6 individuals x 1 episode on 4 slots,
    every episode exactly 100 agent steps (no random Pong game ends that soon), 6 x 400 frames charged."""
    cfg, net, store, genomes = _pong_population(make_cfg, 6, rng_seed=0)
    ev = LocalEvaluator(cfg.env, net, store, slots=4, max_episode_frames=400)
    ledger = Ledger()
    res = ev.evaluate(genomes, 1, 7, ledger)
    ev.close()
    assert res.complete
    assert (res.lengths == 100).all()
    assert res.frames == ledger.frames == 6 * 400 == 4 * ledger.agent_steps
    assert np.isfinite(res.returns).all() and (res.returns <= 0).all()  # a random Pong player never scores 2+


def test_pong_evaluation_is_the_same_on_any_number_of_slots(make_cfg):
    """Each (individual, episode) task starts from its own seed, sticky-action stream included: 6 individuals x
    2 episodes (1200-frame cap) give the same returns on 3 or 8 slots and in 2 shards."""
    cfg, net, store, genomes = _pong_population(make_cfg, 6, rng_seed=1)
    results = []
    for slots, shards in ((3, 1), (8, 1), (4, 2)):
        ev = LocalEvaluator(cfg.env, net, store, slots=slots, max_episode_frames=1200, shards=shards)
        results.append(ev.evaluate(genomes, 2, 11, Ledger()))
        ev.close()
    assert all(r.complete for r in results)
    for r in results[1:]:
        np.testing.assert_array_equal(r.returns, results[0].returns)
        assert r.frames == results[0].frames
    assert (results[0].returns != 0).any()  # points were scored: the episodes themselves are compared


def _record_actions(monkeypatch) -> list[dict[int, list[int]]]:
    """Every action the slot evaluator takes, per task (individual * episodes + episode) in step order, into
    the last dict of the returned list (append one per evaluation)."""
    from neuroevo_bench import evaluation

    log: list[dict[int, list[int]]] = []
    act = evaluation.SlotGroup.act

    def recording(group):
        actions = act(group)
        for slot in np.flatnonzero(group.slot_task >= 0):
            log[-1].setdefault(int(group.slot_task[slot]), []).append(int(actions[slot]))
        return actions

    monkeypatch.setattr(evaluation.SlotGroup, "act", recording)
    return log


@pytest.mark.parametrize("cap", [None, 3_500])
def test_overlapped_groups_play_exactly_what_one_group_plays(make_cfg, monkeypatch, cap):
    """resources.overlap: two groups of slots, one stepping in ale_py's threads while the network acts for
    the other. Every task takes the same actions at every step and ends with the same return and length as
    on one group (the plain loop); frames are charged identically. With a budget cap, neither passes it
    (steps in flight counted) and every episode that finished is the uncapped run's episode."""
    cfg, net, store, genomes = _pong_population(make_cfg, 5, rng_seed=2)
    runs = []
    log = _record_actions(monkeypatch)
    for overlap in (False, True):
        taken: dict[int, list[int]] = {}
        log.append(taken)
        ev = LocalEvaluator(cfg.env, net, store, slots=4, max_episode_frames=400, overlap=overlap)
        assert len(ev.envs) == (2 if overlap else 1)
        ledger = Ledger(cap=cap)
        res = ev.evaluate(genomes, 2, 5, ledger)
        ev.close()
        runs.append((res, ledger, taken))
    (plain, plain_ledger, plain_taken), (over, over_ledger, over_taken) = runs
    if cap is None:
        assert plain.complete and over.complete
        np.testing.assert_array_equal(over.returns, plain.returns)
        np.testing.assert_array_equal(over.lengths, plain.lengths)
        assert over_taken == plain_taken and len(plain_taken) == 10
        assert over_ledger.frames == plain_ledger.frames == 4 * int(plain.lengths.sum())
        assert (plain.lengths == 100).all()  # every episode ran to the 400-frame cap: 100 actions each
    else:
        for res, ledger in ((plain, plain_ledger), (over, over_ledger)):
            assert not res.complete and ledger.frames <= cap
            assert cap - ledger.frames < 4 * 4  # stopped less than one step of the 4 slots short
        log.append({})
        full = LocalEvaluator(cfg.env, net, store, slots=4, max_episode_frames=400)
        whole = full.evaluate(genomes, 2, 5, Ledger())
        full.close()
        for res, taken in ((plain, plain_taken), (over, over_taken)):
            done = np.isfinite(res.returns)
            assert done.sum() >= 8
            np.testing.assert_array_equal(res.returns[done], whole.returns[done])
            for task, actions in taken.items():  # cut-off episodes too: a prefix of the same actions
                assert actions == log[-1][task][: len(actions)]


# --- the network --------------------------------------------------------------------------------------------
def _pong_cnn(make_cfg) -> NatureCNN:
    """The GA's Pong network with exact float32 arithmetic (the Atari default keeps its fc weight in float16)."""
    net = make_network(
        make_cfg("env=Pong", "algo.network.fc_dtype=float32").algo.network,
        gym.spaces.Box(0, 255, (4, 84, 84), np.uint8),
        gym.spaces.Discrete(6),
    )
    assert isinstance(net, NatureCNN)
    return net


def test_nature_cnn_is_sb3_cnnpolicy_architecture(make_cfg):
    """Same parameters, same layout, same outputs as SB3's NatureCNN + linear head (CnnPolicy's actor): our flat
    vector copied parameter by parameter into SB3's modules gives identical logits; batched rows (grouped
    convolution, E = 1 and E > 1 lanes) and the single-network path agree with it."""
    from stable_baselines3.common.torch_layers import NatureCNN as SB3NatureCNN

    net = _pong_cnn(make_cfg)
    assert net.n_params == PONG_PARAMS
    assert "Nature" in net.describe() and "1,687,206" in net.describe()
    sb3 = SB3NatureCNN(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), features_dim=512)
    head = torch.nn.Linear(512, 6)
    modules = [*sb3.parameters(), *head.parameters()]
    assert sum(p.numel() for p in modules) == PONG_PARAMS
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(3, net.n_params, generator=g) * 0.05
    x = torch.randint(0, 256, (3, 2, 4, 84, 84), generator=g).float()
    with torch.no_grad():
        out_rows = net.forward_rows(net.split(flat), x)  # (3, 2, 6)
        out_lane0 = net.forward_rows(net.split(flat), x[:, :1])  # E = 1 path
        for r in range(3):
            for p, part in zip(modules, net.split(flat[r : r + 1]), strict=True):
                p.copy_(part[0].reshape(p.shape))
            ref = head(sb3(x[r] / 255.0))
            torch.testing.assert_close(out_rows[r], ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out_lane0[r, 0], ref[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(net.forward_one(flat[r], x[r]), ref, rtol=1e-5, atol=1e-5)


def test_nature_cnn_rows_compute_exactly_the_plain_grouped_convolution(make_cfg):
    """forward_rows reads the first convolution's input channels-last (faster on a CPU): its outputs must be
    bit-identical to the plain (contiguous) grouped convolution for any number of rows and lanes, or results
    would depend on the code version and the layout."""
    net = _pong_cnn(make_cfg)
    g = torch.Generator().manual_seed(1)
    for r, e in ((1, 1), (3, 2), (16, 1), (17, 1), (2, 30)):
        flat = torch.randn(r, net.n_params, generator=g) * 0.05
        layers = net.split(flat)
        x = torch.randint(0, 256, (r, e, 4, 84, 84), generator=g).float()
        with torch.no_grad():
            h = x.transpose(0, 1).reshape(e, r * 4, 84, 84) / 255.0
            for i, (out, c, k, stride) in enumerate(net.conv_shapes):
                weight = layers[2 * i].reshape(r * out, c, k, k)
                h = torch.relu_(
                    F.conv2d(h, weight, layers[2 * i + 1].reshape(r * out), stride=stride, groups=r)
                )
            h = torch.relu_(linear_rows(h.reshape(e, r, -1).transpose(0, 1), layers[-4], layers[-3]))
            plain = linear_rows(h, layers[-2], layers[-1])
            assert torch.equal(net.forward_rows(layers, x), plain), (r, e)


def test_nature_cnn_init_and_spec(make_cfg):
    """Such et al.'s initialisation (N(0, 1/fan_in), output layer x 0.1, zero biases), and a spec that the
    saved champion rebuilds the network from."""
    net = _pong_cnn(make_cfg)
    scale = net.init_scale()
    assert scale.shape == (net.n_params,)
    assert math.isclose(float(scale[0]), 1 / math.sqrt(4 * 8 * 8), rel_tol=1e-6)
    assert math.isclose(float(scale[-7]), 0.1 / math.sqrt(512), rel_tol=1e-6)  # last weight of the head
    assert float(scale[-6:].abs().sum()) == 0.0  # head biases
    assert network_from_spec(json.loads(json.dumps(network_spec(net)))) == net


def test_float16_fc_weight_is_an_explicit_option(make_cfg):
    """algo.network.fc_dtype=float16 (the Atari default of GA, random search and ES) keeps the 512 x 3136 fc
    weight in float16 in the weight rows (half the bytes read per step), says so in the records and the saved
    spec, and the rows and the single-network path (the champion's test episodes) compute the same;
    float32 gives the exact network; MLPs refuse float16."""
    box = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert _pong_cnn(make_cfg).fc_dtype == "float32"
    for algo in ("ga", "random", "es"):  # the Atari default of the population methods
        assert make_cfg("env=Pong", f"algo={algo}").algo.network.fc_dtype == "float16"
    assert make_cfg("env=CartPole", "algo=ga").algo.network.fc_dtype == "float32"
    net = make_network(make_cfg("env=Pong").algo.network, box, gym.spaces.Discrete(6))
    assert net.fc_dtype == "float16" and "float16 weight, float32 accumulation" in net.describe()
    assert network_from_spec(json.loads(json.dumps(network_spec(net)))) == net
    weights = RowWeights(net, 3)
    assert weights.layers[-4].dtype == torch.float16
    assert [b.dtype for i, b in enumerate(weights.layers) if i != len(weights.layers) - 4] == [
        torch.float32
    ] * 9
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(2, net.n_params, generator=g) * 0.05
    weights.load(np.arange(2), flat)
    x = torch.randint(0, 256, (2, 3, 4, 84, 84), generator=g).float()
    with torch.no_grad():
        rows = net.forward_rows([b[:2] for b in weights.layers], x)
        for r in range(2):
            torch.testing.assert_close(net.forward_one(flat[r], x[r]), rows[r], rtol=1e-5, atol=1e-5)
        exact = _pong_cnn(make_cfg).forward_one(flat[0], x[0])
    assert not torch.equal(rows[0], exact)  # the arithmetic does change: hence an explicit option
    with pytest.raises(PolicyError, match="fc_dtype"):
        make_network(
            make_cfg("env=Pong", "algo.network.fc_dtype=bfloat16").algo.network, box, gym.spaces.Discrete(6)
        )
    with pytest.raises(PolicyError, match="convolutional networks"):
        make_network(
            make_cfg("algo.network.fc_dtype=float16").algo.network,
            gym.spaces.Box(-1, 1, (4,), np.float32),
            gym.spaces.Discrete(2),
        )


def test_nature_cnn_refuses_what_it_cannot_do(make_cfg):
    box = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    with pytest.raises(PolicyError, match="relu"):
        make_network(
            make_cfg("env=Pong", "algo.network.activation=tanh").algo.network, box, gym.spaces.Discrete(6)
        )
    with pytest.raises(PolicyError, match="discrete"):
        make_network(make_cfg("env=Pong").algo.network, box, gym.spaces.Box(-1, 1, (2,)))


# --- runs ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ga", "random"])
def test_ga_and_random_search_run_on_pong(make_cfg, tmp_path, algo):
    """Two generations at N=8 end to end: exact frames, the network in the records, the env settings in force,
    and a champion that reloads and scores the same on the same test episodes."""
    gen_frames = 8 * 400 + 2 * 2 * 400  # population + validation of the top 2 (first generation)
    cfg = make_cfg(
        f"algo={algo}", "env=Pong", *TINY_ATARI_GA, "budget.frames=12000", "eval.every_frames=6000"
    )
    info = run(cfg, tmp_path)
    assert info["status"] == "ok"
    assert info["train_frames"] <= 12000 and info["train_frames"] >= 2 * gen_frames
    assert info["train_frames"] == 4 * info["agent_steps"]
    assert info["eval_frames"] % 4 == 0 and info["eval_frames"] > 0
    assert "Nature-DQN CNN" in info["network"]
    assert info["config"]["algo"]["fitness_max_frames"] == 400
    champion = json.loads((tmp_path / "champion.json").read_text())
    assert champion["network"]["kind"] == "nature_cnn"
    scores = replay_score(tmp_path)
    assert scores.mean() == pytest.approx(info["final_score"])


SWEEP = (
    "env=Pong",
    "budget.frames=8192",
    "eval.every_frames=8192",
    "eval.episodes=1",
    "env.max_episode_frames=2000",
    "progress_every_s=1000",
)


@pytest.mark.slow
def test_tiny_pong_sweep_of_every_algorithm(tmp_path):
    """`-m algo=ga,random,es,a2c,ppo,dqn env=Pong` at a tiny budget completes and writes valid records."""
    cmd = [
        sys.executable,
        "-m",
        "neuroevo_bench",
        "-m",
        "algo=ga,random,es,a2c,ppo,dqn",
        *SWEEP,
        "name=atari_sweep",
        f"hydra.sweep.dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = sorted(tmp_path.glob("Pong/*/seed0/run.json"))
    assert [p.parent.parent.name for p in runs] == ["a2c", "dqn", "es", "ga", "ppo", "random"]
    for path in runs:
        rec = json.loads(path.read_text())
        assert rec["status"] == "ok", (path, rec.get("error"))
        assert rec["env_id"] == "ALE/Pong-v5"
        assert 0 < rec["train_frames"] <= 8192
        assert rec["train_frames"] == 4 * rec["agent_steps"]
        assert rec["eval_frames"] > 0 and math.isfinite(rec["final_score"])
        assert rec["network"]  # which network the run used
        assert rec["config"]["env"]["atari"]["sticky_actions"] == 0.25
        curve = (path.parent / "curve.csv").read_text().splitlines()
        assert curve[0].startswith("frames,") and len(curve) >= 3  # header + eval at 0 + final eval


def test_pong_results_dir_and_budget_defaults(make_cfg):
    """Defaults a user relies on: results under Pong/, the zoo's 40M-frame budget, the GA at paper values."""
    cfg = make_cfg("env=Pong", "algo=ga")
    assert cfg.env.name == "Pong" and cfg.budget.frames == 40_000_000
    assert (cfg.algo.population, cfg.algo.mutation_power, cfg.algo.fitness_max_frames) == (1001, 0.002, 20000)
    assert cfg.algo.noise_table_size >= 2 * PONG_PARAMS
    such = make_cfg("experiment=such2017")
    assert such.env.name == "Pong" and such.algo.name == "ga" and such.budget.frames == 1_000_000_000
    rs = make_cfg("experiment=such2017_random")
    assert rs.algo.name == "random" and rs.algo.truncation == 0 and rs.algo.population == 1001
    breakout = make_cfg("experiment=such2017", "env=atari", "env.id=ALE/Breakout-v5")
    assert breakout.env.id == "ALE/Breakout-v5" and breakout.algo.elite_episodes == 30
