"""MinAtar (env=minatar): MinAtar's own games and settings through the one env factory, episodes that depend on
their seed alone, MinAtar's reference network for every algorithm, exact frames and raw scores, layout
independence, and bad input refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("minatar")

from neuroevo_bench.config import ConfigError, validate
from neuroevo_bench.envs import MINATAR_GAMES, CountedVecEnv, Ledger, env_info, make_vector_env
from neuroevo_bench.evaluation import LocalEvaluator, task_seeds
from neuroevo_bench.genome import NoiseTable, ParamStore
from neuroevo_bench.policies import (
    MinAtarCNN,
    PolicyError,
    build_network,
    make_network,
    network_from_spec,
    network_spec,
)
from neuroevo_bench.runner import load_policy, run
from tests.conftest import ROOT
from tests.test_layout import outcome
from tests.test_sb3 import _assert_same_trace, _first_episodes

GAMES = list(MINATAR_GAMES)
ALGOS = ["ga", "random", "es", "a2c", "ppo", "dqn"]
# (channels, actions) of each game's -v1 (minimal action set)
SHAPES = {
    "Asterix": (4, 5),
    "Breakout": (4, 3),
    "Freeway": (7, 3),
    "Seaquest": (10, 6),
    "SpaceInvaders": (6, 4),
}
QUIET = ("progress_every_s=1000",)
TINY = {
    "ga": ("algo.population=6", "algo.truncation=3", "algo.episodes_per_fitness=2", "algo.elite_candidates=2",
           "algo.elite_episodes=2", "algo.slots=8"),
    "random": ("algo.population=6", "algo.episodes_per_fitness=2", "algo.elite_candidates=2",
               "algo.elite_episodes=2", "algo.slots=8"),
    "es": ("algo.population=6", "algo.episodes_per_fitness=2", "algo.slots=8"),
    "a2c": ("algo.n_envs=4",),
    "dqn": ("algo.buffer_size=2000", "algo.learning_starts=500", "algo.train_freq=4"),
    "ppo": ("algo.n_envs=2", "algo.n_steps=64", "algo.batch_size=64", "algo.n_epochs=2"),
}  # fmt: skip
BUDGET = 1500


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: as the runner sets resources.threads


def minatar(make_cfg, game: str = "Breakout", *overrides: str):
    return make_cfg("env=minatar", f"env.id=MinAtar/{game}-v1", *overrides)


def own_env(game: str, max_episode_steps: int | None = None) -> gym.Env:
    """MinAtar's own gym env, as `gym.make` builds it, with no harness wrapper."""
    return gym.make(f"MinAtar/{game}-v1", sticky_action_prob=0.1, max_episode_steps=max_episode_steps)


# --- the env ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("game", GAMES)
def test_settings_are_minatars_and_read_back_from_the_env(make_cfg, game):
    cfg = minatar(make_cfg, game)
    validate(cfg)
    assert cfg.env.name == f"MinAtar-{game}-v1" and cfg.env.frame_skip == 1
    channels, n_actions = SHAPES[game]
    info = env_info(cfg.env)
    assert info.observation_space.shape == (10, 10, channels) and info.observation_space.dtype == np.bool_
    assert info.action_space == gym.spaces.Discrete(n_actions)
    s = info.settings
    assert s["vector_env"] == "SyncVectorEnv" and s["minatar"]  # the installed version
    assert s["sticky_action_prob"] == 0.1 and s["frames_per_step"] == 1 and s["max_episode_steps"] == 10_000
    assert s["observation_shape"] == [10, 10, channels] and len(s["channels"]) == channels
    assert len(s["actions"]) == n_actions and s["actions"][0] == "n"
    ramps = game in ("Asterix", "Seaquest", "SpaceInvaders")
    assert s["difficulty_ramping"] is True if ramps else isinstance(s["difficulty_ramping"], str)
    off = env_info(minatar(make_cfg, game, "env.minatar.sticky_action_prob=0.0").env).settings
    assert off["sticky_action_prob"] == 0.0  # what the env was built with, not what the config says


@pytest.mark.parametrize("game", GAMES)
def test_a_seeded_episode_is_minatars_own_and_depends_on_its_seed_alone(make_cfg, game):
    """A sub-env that has played other episodes, reset with seed s, plays exactly the episode that MinAtar's own
    env (fresh, reset with s) plays for the same actions: the in-place reseeding gives MinAtar's random stream,
    and the sticky action of the first step cannot repeat the previous episode's last action."""
    cfg = minatar(make_cfg, game)
    env = CountedVecEnv(make_vector_env(cfg.env, 2), 1, Ledger())
    n_actions = SHAPES[game][1]
    rng = np.random.default_rng(0)
    env.reset(seed=100)
    for _ in range(60):  # the sub-envs play (and finish) other episodes first
        env.step(rng.integers(0, n_actions, 2))
    for seed in range(12):
        actions = rng.integers(0, n_actions, 80)
        env.step(np.full(2, n_actions - 1))  # the last action before the reset: not a no-op
        obs = env.reset_slots(np.array([False, True]), np.array([0, seed]))[1]
        ref = own_env(game)
        ref_obs, _ = ref.reset(seed=seed)
        np.testing.assert_array_equal(obs, ref_obs)
        for a in actions:
            obs, reward, term, trunc, _, _ = env.step(np.array([0, a]))
            ref_obs, ref_reward, ref_term, _, _ = ref.step(a)
            if ref_term:
                assert term[1] and reward[1] == ref_reward
                break
            np.testing.assert_array_equal(obs[1], ref_obs)
            assert (reward[1], term[1], trunc[1]) == (ref_reward, False, False)
        ref.close()
        env.reset_slots(np.array([False, True]), np.array([0, 1000 + seed]))
    env.close()


def test_without_the_harness_the_previous_episode_leaks_into_the_next():
    """Why envs.MinAtarEpisodeStart exists: MinAtar's own env keeps its last action across resets, and with
    sticky actions the first step of an episode seeded s then depends on what the env played before."""
    differs = 0
    for seed in range(30):
        traces = []
        for last in (0, 2):  # Breakout-v1: no-op, right
            env = own_env("Breakout")
            env.reset(seed=999)
            env.step(last)
            env.reset(seed=seed)
            traces.append([env.step(1)[0] for _ in range(3)])  # left
            env.close()
        differs += any(not np.array_equal(a, b) for a, b in zip(*traces, strict=True))
    assert differs > 0


def test_episodes_that_never_end_by_minatars_rules_are_capped(make_cfg):
    """A Seaquest sub that never dives is never hit and uses no oxygen: by MinAtar's rules alone its episode
    never ends (a greedy test policy can do this). The env's cap truncates it at 10,000 steps."""
    ref = own_env("Seaquest")
    ref.reset(seed=0)
    assert not any(ref.step(0)[2] for _ in range(12_000))
    ref.close()
    env = CountedVecEnv(make_vector_env(minatar(make_cfg, "Seaquest").env, 1), 1, Ledger())
    env.reset(seed=0)
    ends = [env.step(np.zeros(1, dtype=np.int64))[2:4] for _ in range(10_000)]
    assert not any(term[0] or trunc[0] for term, trunc in ends[:-1])
    assert ends[-1] == (False, True) and env.ledger.frames == 10_000
    env.close()


def test_ga_and_sb3_env_paths_are_identical_on_minatar(make_cfg):
    """The GA's env (next-step auto-reset) and SB3's (same-step auto-reset) play the same episodes."""
    ga, sb3 = _first_episodes(minatar(make_cfg, "SpaceInvaders"), n_episodes=3)
    assert len(ga) > 30
    _assert_same_trace(ga, sb3)


# --- the network -------------------------------------------------------------------------------------------------
def test_minatar_network_is_minatars_reference_and_sb3s_extractor(make_cfg):
    """132,179 parameters for Breakout (conv 16x4x3x3 + 16, fc 1024x128 + 128, head 128x3 + 3), laid out as
    PyTorch's modules: the flat vector copied into SB3's MinAtar extractor + a linear head gives the same
    logits; batched rows (grouped convolution) and the single-network path agree with it."""
    from neuroevo_bench.algorithms.sb3 import MinAtarCNNExtractor

    net = build_network(minatar(make_cfg).env, make_cfg("algo=ga").algo.network)
    assert isinstance(net, MinAtarCNN) and net.in_shape == (4, 10, 10) and net.n_actions == 3
    assert net.n_params == 16 * 4 * 9 + 16 + 1024 * 128 + 128 + 128 * 3 + 3 == 132_179
    assert "conv 16x3x3/1 (1024 features) -> fc 128 -> 3" in net.describe()
    space = gym.spaces.Box(0, 1, (10, 10, 4), bool)
    sb3, head = MinAtarCNNExtractor(space), torch.nn.Linear(128, 3)
    modules = [*sb3.parameters(), *head.parameters()]
    assert sum(p.numel() for p in modules) == net.n_params
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(3, net.n_params, generator=g) * net.init_scale() * 3
    x = (torch.rand(3, 2, 10, 10, 4, generator=g) < 0.2).float()
    with torch.no_grad():
        rows = net.forward_rows(net.split(flat), x)  # (3, 2, 3)
        lane0 = net.forward_rows(net.split(flat), x[:, :1])  # one lane a row: the matrix-vector path
        alone = net.forward_rows(net.split(flat[1:2]), x[1:2])  # the same network as the only row
        torch.testing.assert_close(alone[0], rows[1], rtol=0, atol=0)
        for r in range(3):
            for p, part in zip(modules, net.split(flat[r : r + 1]), strict=True):
                p.copy_(part[0].reshape(p.shape))
            ref = head(sb3(x[r]))
            torch.testing.assert_close(rows[r], ref, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(lane0[r, 0], ref[0], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(net.forward_one(flat[r], x[r]), ref, rtol=1e-5, atol=1e-6)
            assert ref.abs().max() > 1e-3  # not a trivial zero network


def test_minatar_network_init_and_spec(make_cfg):
    net = MinAtarCNN((7, 10, 10), 3)
    scale = net.init_scale()
    assert float(scale[0]) == pytest.approx(1 / np.sqrt(7 * 9))
    assert float(scale[-4]) == pytest.approx(0.1 / np.sqrt(128))  # last weight of the head
    assert float(scale[-3:].abs().sum()) == 0.0
    assert network_from_spec(json.loads(json.dumps(network_spec(net)))) == net


@pytest.mark.parametrize(
    ("overrides", "space", "message"),
    [
        (("algo.network.kind=nature_cnn",), None, "algo.network.kind=nature_cnn cannot take observations Box("),
        (("algo.network.kind=mlp",), None, "algo.network.kind=mlp cannot take observations Box("),
        (("algo.network.activation=tanh",), None, "algo.network.activation='tanh' is invalid for the MinAtar CNN"),
        (("algo.network.kind=minatar_cnn",), gym.spaces.Box(-1, 1, (4,)), "algo.network.kind=minatar_cnn cannot take"),
        (("algo.network.kind=minatar_cnn",), gym.spaces.Box(0, 1, (2, 2, 3), bool), "algo.network.kind=minatar_cnn cannot take observations Box(False, True, (2, 2, 3)"),
    ],
)  # fmt: skip
def test_a_network_that_cannot_take_the_observations_is_refused(make_cfg, overrides, space, message):
    cfg = minatar(make_cfg, "Breakout", "algo=ga", *overrides)
    space = space or env_info(cfg.env).observation_space
    with pytest.raises(PolicyError) as error:
        make_network(cfg.algo.network, space, gym.spaces.Discrete(3))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_sb3_cnn_policy_gets_minatars_extractor_and_natures_is_refused_for_small_grids():
    """On env=minatar the harness gives CnnPolicy MinAtar's network; SB3's NatureCNN is refused for 10x10."""
    from neuroevo_bench.algorithms.sb3 import check_policy_input

    space = gym.spaces.Box(0, 1, (10, 10, 4), bool)
    with pytest.raises(
        ConfigError, match=r"^algo.policy=CnnPolicy \(SB3's NatureCNN\) cannot take observations"
    ):
        check_policy_input("CnnPolicy", {}, space)
    check_policy_input(
        "CnnPolicy", {"features_extractor_class": object}, space
    )  # an extractor is given: fine


# --- exact frames and raw scores -----------------------------------------------------------------------------------
def test_population_evaluation_counts_every_frame_and_plays_minatars_own_episodes(make_cfg):
    """Every fitness episode, replayed independently on MinAtar's own env (fresh, seeded with the task's seed,
    the individual's lanes in lockstep as in the evaluator), has the evaluator's return and length; the ledger
    holds exactly the sum of the lengths; returns are the games' raw points."""
    cfg = minatar(make_cfg, "SpaceInvaders", "algo=ga")
    net = build_network(cfg.env, cfg.algo.network)
    store = ParamStore(NoiseTable(0, 2**20, net.n_params), net.init_scale(), 0.02)
    genomes = [(int(o),) for o in store.noise.sample_offsets(np.random.default_rng(1), 5)]
    ledger, episodes, seed = Ledger(), 2, 123
    ev = LocalEvaluator(cfg.env, net, store, slots=3)
    result = ev.evaluate(genomes, episodes, seed, ledger)
    ev.close()
    assert result.complete and ledger.frames == ledger.agent_steps == int(result.lengths.sum()) > 0
    assert result.returns.max() > 0  # points were scored: the comparison below covers rewards
    flat = store.build(store.plan(genomes), np.arange(len(genomes)))
    for i in range(len(genomes)):
        layers = net.split(flat[i : i + 1])
        envs = [own_env("SpaceInvaders") for _ in range(episodes)]
        seeds = task_seeds(seed, i * episodes + np.arange(episodes))
        obs = np.stack([e.reset(seed=int(s))[0] for e, s in zip(envs, seeds, strict=True)])
        ret, length, running = (
            np.zeros(episodes),
            np.zeros(episodes, dtype=int),
            np.ones(episodes, dtype=bool),
        )
        while running.any():
            with torch.no_grad():
                actions = net.forward_rows(layers, torch.as_tensor(obs[None], dtype=torch.float32))[0].argmax(
                    -1
                )
            for k in np.flatnonzero(running):
                o, r, term, _, _ = envs[k].step(int(actions[k]))
                obs[k], ret[k], length[k], running[k] = o, ret[k] + r, length[k] + 1, not term
        np.testing.assert_array_equal(result.returns[i], ret)
        np.testing.assert_array_equal(result.lengths[i], length)


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_runs_every_game_with_exact_frames_and_raw_scores(make_cfg, tmp_path, algo, game):
    """A tiny run: the cap holds, one frame per agent step, test frames and scores are those of the final policy
    replayed on MinAtar's own env with the test seeds (the raw sum of the game's points), the network is
    MinAtar's."""
    cfg = minatar(
        make_cfg, game, f"algo={algo}", *TINY[algo], *QUIET, f"budget.frames={BUDGET}",
        f"eval.every_frames={BUDGET}", "eval.episodes=3",
    )  # fmt: skip
    info = run(cfg, tmp_path)
    assert info["status"] == "ok" and info["env_id"] == f"MinAtar/{game}-v1"
    assert 0 < info["train_frames"] <= BUDGET and info["train_frames"] == info["agent_steps"]
    assert info["env_settings"]["sticky_action_prob"] == 0.1
    assert ("MinAtar CNN" in info["network"]) and ("conv 16x3x3/1" in info["network"])
    if algo in ("a2c", "ppo"):
        hp = info["hyperparams"]
        assert hp["zoo"]["entry"] == "atari" and hp["values"]["clip_reward"] is False  # MinAtar: unclipped
        n_envs, n_steps = int(hp["values"]["n_envs"]), int(hp["values"]["n_steps"])
        assert info["train_frames"] == BUDGET // n_envs * n_envs  # the last vector step under the cap
        curve = (tmp_path / "curve.csv").read_text().splitlines()
        last = dict(zip(curve[0].split(","), curve[-1].split(","), strict=True))
        assert int(last["rollouts"]) * n_steps * n_envs + int(last["unused_frames"]) == info["train_frames"]
    act, _ = load_policy(tmp_path)
    cap = int(cfg.env.kwargs.max_episode_steps)
    returns, lengths = _replay_test_episodes(act, game, int(cfg.eval.seed), 3, cap)
    assert info["final_score"] == pytest.approx(returns.mean())
    final_eval_frames = info["eval_frames"] - _eval_frames_before_last(tmp_path)
    assert final_eval_frames == lengths.sum()


def _eval_frames_before_last(run_dir) -> int:
    rows = (run_dir / "curve.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("eval_frames")
    return int(rows[-2].split(",")[col]) if len(rows) > 2 else 0


def _replay_test_episodes(
    act, game: str, seed: int, episodes: int, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """The test episodes on MinAtar's own env (with the env's cap), all in one batch as the test evaluator
    plays them."""
    envs = [own_env(game, cap) for _ in range(episodes)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)])
    ret, length, running = np.zeros(episodes), np.zeros(episodes, dtype=int), np.ones(episodes, dtype=bool)
    while running.any():
        actions = act(obs)
        for k in np.flatnonzero(running):
            o, r, term, trunc, _ = envs[k].step(int(actions[k]))
            obs[k], ret[k], length[k], running[k] = o, ret[k] + r, length[k] + 1, not (term or trunc)
    return ret, length


# --- layout independence ---------------------------------------------------------------------------------------------
def test_slots_and_shards_change_nothing_on_minatar(make_cfg, tmp_path):
    """As tests/test_layout.py for CartPole: the same curve and champion for any slots x shards."""
    base = (
        "algo=ga", "algo.population=24", "algo.episodes_per_fitness=2", "algo.elite_candidates=3",
        "algo.elite_episodes=2", "algo.noise_table_size=1048576", "budget.frames=5000",
        "eval.every_frames=1500", "eval.episodes=3", *QUIET,
    )  # fmt: skip
    results = {}
    for slots, shards in ((64, 1), (5, 1), (16, 2), (7, 3)):
        run_dir = tmp_path / f"{slots}x{shards}"
        info = run(
            minatar(make_cfg, "Breakout", *base, f"algo.slots={slots}", f"algo.shards={shards}"), run_dir
        )
        assert info["status"] == "ok" and info["untrained"] is False
        results[slots, shards] = outcome(run_dir)
    reference = results.pop((64, 1))
    assert len(reference[0]) >= 3  # several eval points: a real comparison
    for layout, result in results.items():
        assert result == reference, layout


# --- bad input -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("env.id=MinAtar/Breakot-v1",), "env.id='MinAtar/Breakot-v1' is not a MinAtar game; close matches: "
         "MinAtar/Breakout-v0, MinAtar/Breakout-v1; valid: MinAtar/<Game>-v1"),
        (("env.id=SpaceInvaders",), "close matches: MinAtar/SpaceInvaders-v0, MinAtar/SpaceInvaders-v1"),
        (("env.id=CartPole-v1",), "env.id='CartPole-v1' is not a MinAtar game; valid: "),
        (("env=gym", "env.id=MinAtar/Breakout-v1"), "env.id='MinAtar/Breakout-v1' is a MinAtar game: use env=minatar"),
        (("env.frame_skip=4",), "env.frame_skip=4 is invalid for env.id='MinAtar/Breakout-v1'; valid: env.frame_skip=1"),
        (("env.minatar.sticky_action_prob=1.5",), "env.minatar.sticky_action_prob=1.5 is invalid"),
        (("+env.kwargs.sticky_action_prob=0",), "env.kwargs.sticky_action_prob is invalid for env=minatar"),
        (("env.max_episode_frames=1000",), "env.max_episode_frames=1000 is invalid for env=minatar"),
        (("env.vectorization=vector_entry_point",), "env.vectorization='vector_entry_point' is invalid for env=minatar"),
        (("algo.network.kind=cnn",), "algo.network.kind='cnn' is invalid; valid: auto, mlp, nature_cnn, minatar_cnn"),
    ],
)  # fmt: skip
def test_bad_minatar_config_is_refused_with_the_key(make_cfg, overrides, message):
    cfg = make_cfg("env=minatar", *overrides)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert message in str(error.value) and "\n" not in str(error.value)


def _app(tmp_path, *args: str, block_minatar: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m neuroevo_bench <args>`, optionally as if the MinAtar extra were not installed."""
    block = "import sys; sys.modules['minatar'] = None; " if block_minatar else ""
    code = f"{block}import runpy, sys; sys.argv[0] = 'neuroevo_bench'; runpy.run_module('neuroevo_bench', run_name='__main__')"
    return subprocess.run(
        [sys.executable, "-c", code, *args, f"hydra.run.dir={tmp_path}/run"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "block", "message"),
    [
        (("env=minatar", "env.id=MinAtar/Pong-v1"), False, "error: env.id='MinAtar/Pong-v1' is not a MinAtar game;"),
        (("env=minatar",), True, "error: env.id='MinAtar/Breakout-v1' (env=minatar) needs the MinAtar extra, which "
         "is not installed: pip install -e '.[minatar]'"),
        (("env=minatar", "algo.network.kind=nature_cnn"), False, "error: algo.network.kind=nature_cnn cannot take"),
    ],
    ids=["unknown-id", "not-installed", "network"],
)  # fmt: skip
def test_the_app_refuses_in_one_line_and_writes_no_record(tmp_path, args, block, message):
    proc = _app(tmp_path, *args, block_minatar=block)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(message)
    assert not (tmp_path / "run" / "run.json").exists()


def test_the_speed_benchmark_section_runs_and_accounts_for_the_time():
    """`python -m neuroevo_bench.bench --only minatar` on one game at a tiny size: a ratio, and the GA's CPU time
    split into its parts (the forward pass, the env, resets, building networks), each measured."""
    from neuroevo_bench import bench_minatar

    row = bench_minatar.bench_game("Breakout", quick=True, reps=1, slots=16)
    assert row["name"] == "minatar_eval_vs_raw_Breakout" and row["ratio"] > 0
    parts = row["us_per_frame"]
    assert {"network forward", "env step", "episode resets", "network build"} <= set(parts)
    assert all(v > 0 for v in parts.values())
