"""MinAtar speed benchmark (the `minatar` section of `python -m neuroevo_bench.bench`).

`minatar_eval_vs_raw_<Game>`: GA population evaluation (the project's slot evaluator with MinAtar's network, one
grouped convolution and one batched matrix product per layer over all slots) against the same vector env
stepping uniform random actions at the same number of sub-envs, in the same process. The GA evaluates fresh
populations (generation 1, the GA's defaults for MinAtar: conf/algo_env/ga_minatar.yaml), one after another
until the frame target, so its number includes what a generation really costs: building each network,
seeding every episode, the tail of a generation when slots run out of work. Both sides are timed in CPU time
(`time.process_time`: the process's own work; torch and the env run in this one thread), which a loaded
machine disturbs less than wall-clock; wall-clock is given beside it. Goal >= 50 %.

Where the GA's time goes is measured in the same run (CPU microseconds per charged frame): the network's
forward pass, the env's steps, episode resets, building and loading networks; and the ceiling that the fc
layer's weight reads alone put on it (MinAtar's network keeps 98 % of its 132k parameters, 512 kB, in the fc
layer, read once per weight row and env step).

Run alone: `python -m neuroevo_bench.bench --only minatar [--quick]`, or `python -m neuroevo_bench.bench_minatar`.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import minatar  # noqa: F401  (the section is skipped where the MinAtar extra is not installed)
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from neuroevo_bench.bench_atari import fc_calls_per_s
from neuroevo_bench.config import register_configs
from neuroevo_bench.envs import MINATAR_GAMES, CountedVecEnv, Ledger, make_vector_env
from neuroevo_bench.evaluation import LocalEvaluator
from neuroevo_bench.genome import NoiseTable, ParamStore
from neuroevo_bench.policies import RowWeights, build_network

CONF = Path(__file__).resolve().parent.parent / "conf"
GOAL = 0.50


def minatar_config(game: str, *overrides: str) -> DictConfig:
    """The app's composed config for GA on a MinAtar game (the very settings a run would use)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "config", overrides=["env=minatar", f"env.id=MinAtar/{game}-v1", "algo=ga", *overrides]
        )


def raw_fps(env_cfg: Any, slots: int, frames: int, seed: int = 0) -> tuple[float, float]:
    """(CPU, wall) frames/s of the bare vector env stepping uniform random actions on every sub-env."""
    env = make_vector_env(env_cfg, slots)
    rng = np.random.default_rng(seed)
    n_actions = int(env.single_action_space.n)
    env.reset(seed=seed)
    steps = max(1, frames // slots)
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, n_actions, slots))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    env.close()
    return steps * slots / cpu, steps * slots / wall


class Timers:
    """CPU time spent in chosen methods (patched on their classes while in use; one thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        method = getattr(owner, name)
        seconds = self.seconds

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                seconds[label] += time.process_time() - t0

        self._undo.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, timed)

    def undo(self) -> None:
        for owner, name, method in reversed(self._undo):
            if method is None:  # an instance's method: drop the instance attribute that shadowed it
                delattr(owner, name)
            else:
                setattr(owner, name, method)
        self._undo.clear()


def ga_eval_fps(
    cfg: DictConfig, frames: int, seed: int = 0, timers: Timers | None = None
) -> tuple[float, float, float]:
    """(CPU, wall) frames/s and the mean episode length of the project's evaluation of fresh populations of the
    configured size, one after another (a new one whenever the last is done), capped at `frames` in all."""
    a = cfg.algo
    net = build_network(cfg.env, a.network)
    store = ParamStore(
        NoiseTable(seed, int(a.noise_table_size), net.n_params), net.init_scale(), a.mutation_power
    )
    rng = np.random.default_rng(seed)
    ev = LocalEvaluator(cfg.env, net, store, int(a.slots), a.fitness_max_frames)
    if timers is not None:
        timers.wrap(RowWeights, "act", "network forward")
        timers.wrap(RowWeights, "load", "network load")
        timers.wrap(store, "build", "network build")
        timers.wrap(CountedVecEnv, "recv", "env step")  # a sync vector env steps in recv
        timers.wrap(CountedVecEnv, "reset_slots", "episode resets")
    ledger = Ledger(cap=frames)
    lengths = []
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        while not ledger.exhausted():
            pop = [(int(o),) for o in store.noise.sample_offsets(rng, int(a.population))]
            result = ev.evaluate(pop, int(a.episodes_per_fitness), seed + len(lengths), ledger)
            lengths.append(result.lengths[result.lengths > 0])
            if not result.complete:
                break
    finally:
        if timers is not None:
            timers.undo()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    ev.close()
    finished = np.concatenate(lengths)
    return (
        ledger.frames / cpu,
        ledger.frames / wall,
        float(finished.mean()) if len(finished) else float("nan"),
    )


def fc_ceiling_fps(cfg: DictConfig, lanes: float, seconds: float = 0.5) -> float:
    """Frames/s that the fc layer alone would allow at the evaluator's rows: each row's (128 x 1024) weight,
    512 kB, is read once per env step and serves the `lanes` episodes of one individual running in it."""
    net = build_network(cfg.env, cfg.algo.network)
    slots, e = int(cfg.algo.slots), int(cfg.algo.episodes_per_fitness)
    rows = max(1, round(slots / lanes))
    weights = RowWeights(net, rows)
    weight, bias = weights.layers[-4], weights.layers[-3]
    h = torch.rand(rows, e, weight.shape[-1])
    return fc_calls_per_s(h, weight, bias, seconds, time.process_time) * rows * lanes


def bench_game(game: str, quick: bool, reps: int | None = None, slots: int | None = None) -> dict[str, Any]:
    """Median over repetitions of GA-eval / raw frames/s, each GA measurement bracketed by a raw one before and
    after it (the machine is shared: its load drifts, and only ratios measured together count)."""
    cfg = minatar_config(game, *([f"algo.slots={slots}"] if slots else []))
    s = int(cfg.algo.slots)
    frames = 20_000 if quick else 100_000
    reps = reps or (1 if quick else 3)
    pairs = []
    timers = Timers()
    ga_frames = 0.0
    for rep in range(reps):
        before = raw_fps(cfg.env, s, frames // 2, seed=rep)
        cpu, wall, mean_length = ga_eval_fps(cfg, frames, seed=rep, timers=timers)
        after = raw_fps(cfg.env, s, frames // 2, seed=rep)
        raw_cpu, raw_wall = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        pairs.append((cpu / raw_cpu, cpu, raw_cpu, wall / raw_wall))
        ga_frames += frames
    ratio, p, r, wall_ratio = sorted(pairs)[len(pairs) // 2]
    per_frame = {k: 1e6 * v / ga_frames for k, v in timers.seconds.items()}
    e = int(cfg.algo.episodes_per_fitness)
    fc = fc_ceiling_fps(cfg, lanes=e)
    parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_frame.items(), key=lambda kv: -kv[1]))
    return {
        "name": f"minatar_eval_vs_raw_{game}",
        "project_fps": p,
        "reference_fps": r,
        "ratio": ratio,
        "goal": GOAL,
        "wall_ratio": wall_ratio,
        "us_per_frame": per_frame,
        "detail": (
            f"MinAtar/{game}-v1, {s} sub-envs, torch threads {torch.get_num_threads()}, CPU time: GA eval "
            f"{p:,.0f} frames/s vs raw SyncVectorEnv random actions {r:,.0f} frames/s (median of {len(pairs)}: "
            f"{', '.join(f'{q[0]:.2f}' for q in pairs)}; wall-clock ratio {wall_ratio:.2f}). Fresh populations "
            f"(N={cfg.algo.population}, {e} episodes each, mean episode "
            f"{'longer than the measurement' if np.isnan(mean_length) else f'{mean_length:.0f} frames'}). GA CPU us per "
            f"frame: {parts}; raw env {1e6 / r:.1f}. The fc layer's weight reads alone (512 kB per row and step, "
            f"{e} lanes a row) cap the GA at {fc:,.0f} frames/s here"
        ),
    }


def benchmark(quick: bool = False, games: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    return [bench_game(g, quick) for g in games or (("Breakout",) if quick else MINATAR_GAMES)]


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    games = tuple(a for a in argv if not a.startswith("--")) or None
    for row in benchmark("--quick" in argv, games):
        print(f"{row['name']}: ratio {row['ratio']:.3g} (goal {row['goal']}) | {row['detail']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
