"""Champion replay: play a finished run's final policy and write the episodes as an animation (GIF or MP4).

``python -m neuroevo_bench.replay RUN_DIR [--out FILE.gif|.mp4] [--episodes 1] [--fps 30] [--seed S]``.

Replay plays envs and policies, so it lives beside the training stack, not in :mod:`neuroevo_bench.analysis`,
which reads records only and stays importable without torch, gymnasium or SB3.

Episode ``i`` is seeded ``eval.seed + i``, which is how the shared test evaluator's vector env seeds its
sub-env ``i``; so where that vector env is a Sync/Async vector env or ale_py's AtariVectorEnv, replayed
episode ``i`` *is* the run's final test episode ``i`` (same start, same return). Gymnasium's batched
CartPole implementation (``CartPoleVectorEnv``, the default for ``env=CartPole``) draws the start states of all
its episodes from one generator, so there the replayed episodes are other episodes of the same policy and
env; the result says so in ``note``.

Atari: the protocol env is ale_py's ``AtariVectorEnv``, which has no ``render()``. Instead of rebuilding the
protocol with gymnasium wrappers (a second implementation of it, which could differ from the one that
scored the run), the policy plays the very protocol env the run used, and a second AtariVectorEnv with
the same game, seed and protocol settings, differing only in its observation (full 210x160 RGB, no
stack), is stepped in lockstep with the same actions and supplies the pictures. Observation processing
draws no randomness, so both emulators stay identical; rewards and episode ends are checked every step
and a divergence is an error rather than a misleading video.

The training stack (torch, gymnasium, ale_py, the runner) is imported inside :func:`replay`, once the run
and the request have been checked, so a refused request answers at once.

Exit status of the command line: 0 written, 1 the run cannot be replayed or the request is refused (an
unfinished run, an unknown file type, ...), 2 bad command-line syntax.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMATS", "Replay", "ReplayError", "build_parser", "main", "replay"]

RUN_FILE = "run.json"
FORMATS = (".gif", ".mp4")
DEFAULT_NAME = "replay.gif"
# GIF frame delays are whole hundredths of a second and browsers slow delays under 2/100 s to 1/10 s.
MAX_GIF_FPS = 50


class ReplayError(ValueError):
    """The run cannot be replayed (unfinished run, unknown format, env that cannot be drawn)."""


@dataclass(frozen=True)
class Replay:
    """What a replay played and wrote.

    ``returns`` and ``lengths`` (agent steps) per episode, ``seeds`` the reset seed of each, ``n_frames``
    the pictures written, ``test_score`` the run's final test score (run.json) for comparison, ``note`` a
    caveat worth printing (e.g. episodes that are not the test evaluator's), or None.
    """

    out: Path
    algo: str
    env_id: str
    run_seed: int
    seeds: list[int]
    returns: list[float]
    lengths: list[int]
    n_frames: int
    test_score: float | None
    note: str | None


def replay(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    episodes: int = 1,
    fps: float = 30.0,
    seed: int | None = None,
) -> Replay:
    """Play ``episodes`` episodes of the run's final policy (greedy, as the test evaluator plays it) and
    write them, one after the other, to ``out`` (default ``RUN_DIR/replay.gif``).

    ``seed``: reset seed of the first episode (default: the run's ``eval.seed``, i.e. its first test
    episode); episode ``i`` uses ``seed + i``. Raises :class:`ReplayError` for an unfinished run, an
    unsupported file type or an MP4 without an ffmpeg writer, before any episode is played.
    """
    run_dir = Path(run_dir)
    meta = _read_finished_run(run_dir)
    out = Path(out) if out is not None else run_dir / DEFAULT_NAME
    write = _writer(out, fps)
    if episodes < 1:
        raise ReplayError(f"episodes={episodes} is invalid; valid: a positive integer")

    # The training stack, only now that there is something to play.
    import torch

    from neuroevo_bench.runner import load_policy

    act, cfg = load_policy(run_dir)
    torch.set_num_threads(int(cfg.resources.threads))  # the run's arithmetic, hence its actions
    first_seed = int(cfg.eval.seed) if seed is None else int(seed)
    seeds = [first_seed + i for i in range(episodes)]
    if cfg.env.kind == "atari":
        play, note = _play_atari, None
    else:
        play, note = _play_gym, _seeding_note(cfg)

    frames: list[np.ndarray] = []
    returns: list[float] = []
    lengths: list[int] = []
    for episode_seed in seeds:
        episode_return, length = play(cfg, act, episode_seed, frames.append)
        returns.append(episode_return)
        lengths.append(length)
    out.parent.mkdir(parents=True, exist_ok=True)
    write(frames)
    score = meta.get("final_score")
    return Replay(
        out=out,
        algo=str(meta.get("algo")),
        env_id=str(cfg.env.id),
        run_seed=int(meta.get("seed", cfg.seed)),
        seeds=seeds,
        returns=returns,
        lengths=lengths,
        n_frames=len(frames),
        test_score=None if score is None else float(score),
        note=note,
    )


def _read_finished_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReplayError(f"{run_dir} is not a run directory (no {RUN_FILE})") from None
    except (OSError, ValueError) as error:
        raise ReplayError(f"cannot read {path}: {error}") from error
    status = meta.get("status")
    if status != "ok":
        raise ReplayError(
            f"run {run_dir} has status {status!r}: only a finished run (status 'ok') has a final policy to "
            "replay; resume it first (python -m neuroevo_bench <its overrides> resume=true)"
        )
    return meta


# --- playing ------------------------------------------------------------------------------------------------

ActFn = Callable[[np.ndarray], np.ndarray]
Sink = Callable[[np.ndarray], None]


def _play_gym(cfg: Any, act: ActFn, seed: int, emit: Sink) -> tuple[float, int]:
    """One episode on a one-env vector env from the project's env factory, drawn after every step."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off-screen: no display, no warnings
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from neuroevo_bench.envs import make_vector_env

    try:
        env = make_vector_env(cfg.env, 1, render_mode="rgb_array")
    except Exception as error:
        raise ReplayError(f"{cfg.env.id} cannot be built with render_mode='rgb_array': {error}") from error
    try:
        obs, _ = env.reset(seed=seed)
        emit(_first_frame(env.render(), cfg.env.id))
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward[0])
            steps += 1
            done = bool(terminated[0] or truncated[0])
            emit(_first_frame(env.render(), cfg.env.id))
        return total, steps
    finally:
        env.close()


def _first_frame(rendered: Any, env_id: str) -> np.ndarray:
    """Sub-env 0's picture: vector envs render a tuple/list of frames (or one stacked array)."""
    if isinstance(rendered, list | tuple):
        rendered = rendered[0] if rendered else None
    elif isinstance(rendered, np.ndarray) and rendered.ndim == 4:
        rendered = rendered[0]
    if not isinstance(rendered, np.ndarray) or rendered.ndim != 3:
        raise ReplayError(
            f"{env_id} rendered {type(rendered).__name__}, not an RGB picture: it cannot be replayed"
        )
    return np.ascontiguousarray(rendered, dtype=np.uint8)


def _seeding_note(cfg: Any) -> str | None:
    """Say so when the test evaluator's env seeds its episodes differently from a one-env replay."""
    import gymnasium as gym

    from neuroevo_bench.envs import make_vector_env

    probe = make_vector_env(cfg.env, 1)
    try:
        if isinstance(probe, gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv):
            return None
        kind = type(probe).__name__
    finally:
        probe.close()
    return (
        f"the test evaluator plays {cfg.env.id} on gymnasium's batched {kind}, which draws the start states "
        "of all its episodes from one generator, so these are other episodes of the same policy than the "
        "run's test episodes (env.vectorization=sync makes them the same)"
    )


def _play_atari(cfg: Any, act: ActFn, seed: int, emit: Sink) -> tuple[float, int]:
    """One episode on the protocol env, drawn by a lockstep twin that differs only in its observation."""
    from ale_py.vector_env import AtariVectorEnv

    from neuroevo_bench.envs import ale_seeds, atari_game, atari_kwargs, make_vector_env

    env = make_vector_env(cfg.env, 1)
    display_kwargs = {**atari_kwargs(cfg.env), "img_height": 210, "img_width": 160, "grayscale": False}
    display_kwargs["stack_num"] = 1
    display = AtariVectorEnv(game=atari_game(cfg.env.id), num_envs=1, num_threads=0, **display_kwargs)
    try:
        obs, _ = env.reset(seed=seed)
        # the protocol env maps harness seeds into ALE's range; the twin must get the very same ALE seed
        picture, _ = display.reset(seed=ale_seeds(np.array([seed])))
        emit(picture[0, -1])
        total, steps, done = 0.0, 0, False
        while not done:
            action = act(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            picture, shown_reward, shown_terminated, shown_truncated, _ = display.step(action)
            if (reward[0], terminated[0], truncated[0]) != (
                shown_reward[0],
                shown_terminated[0],
                shown_truncated[0],
            ):
                raise ReplayError(
                    f"the display emulator diverged from the protocol env at step {steps + 1} of the episode "
                    f"with seed {seed}: the video would not show the scored episode"
                )
            total += float(reward[0])
            steps += 1
            done = bool(terminated[0] or truncated[0])
            emit(picture[0, -1])
        return total, steps
    finally:
        env.close()
        display.close()


# --- writing ------------------------------------------------------------------------------------------------


def _writer(out: Path, fps: float) -> Callable[[list[np.ndarray]], None]:
    """A function writing the frames to ``out``; every check that can fail is made now, before playing."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ReplayError(
            f"cannot write {out}: unknown file type {out.suffix!r}; use one of {', '.join(FORMATS)}"
        )
    if not fps > 0:
        raise ReplayError(f"fps={fps:g} is invalid; valid: a positive number")
    if suffix == ".gif":
        if fps > MAX_GIF_FPS:
            raise ReplayError(
                f"fps={fps:g} is too fast for a GIF (delays are whole 1/100 s; browsers slow anything above "
                f"{MAX_GIF_FPS} fps down to 10 fps); use --fps {MAX_GIF_FPS} or less, or an .mp4"
            )
        return lambda frames: _write_gif(out, frames, fps)
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ReplayError(
            f"cannot write {out}: MP4 needs imageio's ffmpeg writer (pip install imageio-ffmpeg), which is not "
            "installed; write a .gif instead"
        )
    return lambda frames: _write_mp4(out, frames, fps)


def _write_gif(out: Path, frames: list[np.ndarray], fps: float) -> None:
    """An animated GIF with one palette for all frames.

    Pillow's per-frame adaptive quantisation took 11 s for 500 CartPole frames; one palette taken from a
    few frames spread over the replay takes under 1 s, and the same colour never flickers between frames.
    """
    from PIL import Image

    sample = np.concatenate([frames[i] for i in _spread(len(frames), 16)], axis=0)
    palette = Image.fromarray(sample).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    images = (Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames)
    first = next(images)
    # optimize=False: with one palette for all frames, Pillow's per-frame palette pruning made saving 15x
    # slower (3 s for 1,000 CartPole frames) for a file half the size (0.5 instead of 1 MB).
    first.save(
        out, save_all=True, append_images=list(images), duration=round(1000 / fps), loop=0, optimize=False
    )


def _write_mp4(out: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v2 as imageio

    # macro_block_size=2: H.264 needs even sides (CartPole 600x400, Atari 160x210 are); no silent rescaling.
    with imageio.get_writer(out, format="FFMPEG", fps=fps, macro_block_size=2) as writer:
        for frame in frames:
            writer.append_data(frame)


def _spread(n: int, k: int) -> Iterator[int]:
    """Up to ``k`` indices spread evenly over ``range(n)``, first and last included."""
    yield from sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist()))


# --- command line -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m neuroevo_bench.replay",
        description="Play the final policy of RUN_DIR greedily, as the test evaluator does, and write the "
        "episodes as an animation. Episode i is seeded eval.seed + i: the run's test episode i where the "
        "test env seeds its episodes that way (a note says when it does not).",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, help=f"FILE.gif or FILE.mp4 (default: RUN_DIR/{DEFAULT_NAME})")
    parser.add_argument("--episodes", type=int, default=1, help="episodes, one after the other (%(default)s)")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second (%(default)g)")
    parser.add_argument(
        "--seed", type=int, help="reset seed of the first episode (default: the run's eval.seed)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 written, 1 cannot replay, 2 bad syntax)."""
    args = build_parser().parse_args(argv)
    try:
        result = replay(args.run_dir, args.out, episodes=args.episodes, fps=args.fps, seed=args.seed)
    except ReplayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for seed, ret, length in zip(result.seeds, result.returns, result.lengths, strict=True):
        print(f"episode seed {seed}: return {ret:g} in {length:,} agent steps")
    if result.test_score is not None:
        print(f"(the run's final test score, mean over its test episodes: {result.test_score:g})")
    if result.note:
        print(f"note: {result.note}")
    print(f"wrote {result.n_frames:,} frames of {result.algo} on {result.env_id} to {result.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
