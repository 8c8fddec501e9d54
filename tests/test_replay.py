"""Champion replay: a real (tiny) GA run on CartPole replayed to a GIF; the Atari lockstep display twin.

The run uses ``env.vectorization=sync``, so its test evaluator seeds episode i with ``eval.seed + i`` and
the replay must reproduce the run's test episodes return for return.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig
from PIL import Image, ImageSequence

from neuroevo_bench.replay import ReplayError, main, replay
from tests.conftest import ROOT

EPISODES = 3
SMALL_GA = (
    "algo=ga",
    "env=CartPole",
    "env.vectorization=sync",
    "budget.frames=20000",
    "eval.every_frames=20000",
    f"eval.episodes={EPISODES}",
    "algo.population=50",
    "algo.truncation=5",
    "algo.episodes_per_fitness=2",
    "algo.elite_candidates=3",
    "algo.elite_episodes=2",
    "algo.slots=16",
    "algo.noise_table_size=100000",
    "algo.network.hidden=[16]",
    "progress_every_s=1000",
)


@pytest.fixture(scope="module")
def ga_run(make_cfg: Callable[..., DictConfig], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from neuroevo_bench.runner import run

    run_dir = tmp_path_factory.mktemp("replay") / "CartPole" / "ga" / "seed3"
    info = run(make_cfg(*SMALL_GA, "seed=3"), run_dir)
    assert info["status"] == "ok"
    return run_dir


def gif_frames(path: Path) -> int:
    with Image.open(path) as image:
        return int(image.n_frames)


def test_replay_reproduces_the_test_episodes(ga_run: Path, tmp_path: Path) -> None:
    from neuroevo_bench.runner import replay_score

    out = tmp_path / "champion.gif"
    result = replay(ga_run, out, episodes=EPISODES)

    assert out.exists() and gif_frames(out) > 1
    assert result.note is None  # a SyncVectorEnv evaluator seeds episode i with eval.seed + i
    assert result.seeds == [2**31 + 12_345 + i for i in range(EPISODES)]
    # one picture after reset plus one per step
    assert result.n_frames == sum(result.lengths) + EPISODES
    # the shared test evaluator, replayed on the saved policy, and the run's own record agree with the replay
    np.testing.assert_array_equal(result.returns, replay_score(ga_run, EPISODES))
    recorded = json.loads((ga_run / "run.json").read_text())["final_score"]
    assert np.mean(result.returns) == pytest.approx(recorded)
    assert result.test_score == pytest.approx(recorded)


def test_replay_cli(ga_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "one.gif"
    assert main([str(ga_run), "--out", str(out), "--fps", "25"]) == 0
    printed = capsys.readouterr().out
    assert f"episode seed {2**31 + 12_345}: return" in printed and str(out) in printed
    with Image.open(out) as image:
        assert image.info["loop"] == 0
        # 25 fps: 40 ms a picture (Pillow merges identical consecutive pictures, adding their durations)
        durations = [frame.info["duration"] for frame in ImageSequence.Iterator(image)]
    lengths = [int(line.split(" in ")[1].split()[0]) for line in printed.splitlines() if " in " in line]
    assert sum(durations) == 40 * (lengths[0] + 1)


def test_replay_mp4(ga_run: Path, tmp_path: Path) -> None:
    """MP4 needs imageio's ffmpeg plugin (pip install imageio-ffmpeg); without it, the refusal is tested below."""
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    result = replay(ga_run, tmp_path / "champion.mp4", fps=50)
    with imageio.get_reader(result.out, format="FFMPEG") as reader:
        assert reader.get_meta_data()["fps"] == 50
        assert sum(1 for _ in reader) == result.n_frames


def test_replay_refuses_bad_requests(
    ga_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ReplayError, match=r"unknown file type '\.avi'; use one of \.gif, \.mp4"):
        replay(ga_run, tmp_path / "x.avi")
    with pytest.raises(ReplayError, match="too fast for a GIF"):
        replay(ga_run, tmp_path / "x.gif", fps=60)
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        with pytest.raises(ReplayError, match="MP4 needs imageio's ffmpeg writer"):
            replay(ga_run, tmp_path / "x.mp4")
    assert not list(tmp_path.iterdir())  # every refusal comes before anything is played or written

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({"status": "running", "algo": "ga", "seed": 0}))
    assert main([str(unfinished)]) == 1
    assert "status 'running'" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 1
    assert "not a run directory" in capsys.readouterr().err
    assert main([str(ga_run), "--episodes", "0", "--out", str(tmp_path / "none.gif")]) == 1
    assert "episodes=0 is invalid" in capsys.readouterr().err
    assert not (tmp_path / "none.gif").exists()


def test_replay_entry_point_and_the_old_subcommand(tmp_path: Path) -> None:
    """`python -m neuroevo_bench.replay` is the command; the analysis CLI, which reads records only, points to it."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
        )

    missing = cli("neuroevo_bench.replay", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'} is not a run directory (no run.json)"
    ]
    old = cli("neuroevo_bench.analyze", "replay", str(tmp_path))
    assert old.returncode == 2 and "use python -m neuroevo_bench.replay RUN_DIR" in old.stderr
    assert not list(tmp_path.iterdir())


def test_atari_display_twin_stays_in_lockstep(make_cfg: Callable[..., DictConfig]) -> None:
    """Pong frames come from a full-size RGB twin of the protocol env; it must show the scored episode,
    which for the first test seed is the test evaluator's first episode."""
    pytest.importorskip("ale_py")
    from neuroevo_bench.envs import Ledger
    from neuroevo_bench.evaluation import TestEvaluator
    from neuroevo_bench.replay import _play_atari

    cfg = make_cfg("env=Pong")
    seed = int(cfg.eval.seed)  # >= 2**31: mapped into ALE's seed range by the env factory

    def act(obs: np.ndarray) -> np.ndarray:
        """A deterministic function of the observation, so both plays take the same actions."""
        assert obs.shape[1:] == (4, 84, 84)  # the policy sees the protocol's observation
        return (obs.reshape(len(obs), -1).sum(axis=1) // 7 % 6).astype(np.int64)

    frames: list[np.ndarray] = []
    episode_return, length = _play_atari(cfg, act, seed, frames.append)
    assert len(frames) == length + 1 and frames[0].shape == (210, 160, 3) and frames[0].dtype == np.uint8
    assert len({f.tobytes() for f in frames[::50]}) > 1  # the picture moves

    tester = TestEvaluator(cfg.env, 1, seed, Ledger())
    try:
        result = tester(act)
    finally:
        tester.close()
    assert (result.returns[0], result.lengths[0]) == (episode_return, length)
