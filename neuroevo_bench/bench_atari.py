"""Pong speed and memory benchmark (the `atari` section of `python -m neuroevo_bench.bench`).

Two numbers, each measured side by side with its reference:

- `atari_eval_vs_raw`: GA population evaluation on Pong (the project's slot evaluator, Nature CNN with one
  grouped convolution per layer over all slots) against the same `AtariVectorEnv` stepping random actions
  at the same number of envs. Neither counts the opening seeded reset (ALE reloads the ROM to reseed, ~0.1 s
  per env: under 1 % of a paper-sized generation, but a large share of a short benchmark). Goal >= 50 %.
- `atari_ga_rss`: peak resident memory of GA generations at N = 1000 on Pong, in a fresh subprocess
  (`ru_maxrss`), with the Atari defaults (conf/algo_env/ga_atari.yaml). Episodes are capped short because
  memory does not depend on their length (slots, weight rows, parent cache and noise table do not grow with
  it); two generations, so the second builds children from the cached parents. Goal <= 3 GB.

Run alone: `python -m neuroevo_bench.bench --only atari [--quick]`, or `python -m neuroevo_bench.bench_atari`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from neuroevo_bench.config import register_configs
from neuroevo_bench.envs import Ledger, env_info, make_vector_env
from neuroevo_bench.evaluation import LocalEvaluator
from neuroevo_bench.genome import NoiseTable, ParamStore
from neuroevo_bench.policies import linear_rows, make_network

CONF = Path(__file__).resolve().parent.parent / "conf"
RSS_GOAL_BYTES = 3 * 2**30


def pong_config(*overrides: str) -> DictConfig:
    """The app's composed config for GA on Pong (the very settings a run would use)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["env=Pong", "algo=ga", *overrides])


def pong_network(cfg: DictConfig) -> Any:
    info = env_info(cfg.env)
    return make_network(cfg.algo.network, info.observation_space, info.action_space)


def raw_fps(env_cfg: Any, slots: int, max_frames: int, frames: int, env_threads: int, seed: int = 0) -> float:
    """Frames/s of the bare AtariVectorEnv stepping uniform random actions on every env, after a reset."""
    env = make_vector_env(env_cfg, slots, max_episode_frames=max_frames, num_threads=env_threads)
    rng = np.random.default_rng(seed)
    n_actions = int(env.single_action_space.n)
    env.reset(seed=seed)
    steps = max(1, frames // (slots * int(env_cfg.frame_skip)))
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, n_actions, slots))
    dt = time.perf_counter() - t0
    env.close()
    return steps * slots * int(env_cfg.frame_skip) / dt


def ga_eval_fps(cfg: DictConfig, frames: int, env_threads: int, seed: int = 0) -> tuple[float, str]:
    """Frames/s of the project's population evaluation of a fresh population, capped at `frames` by the
    budget, not counting its opening seeded reset (timed on the same env just before and subtracted)."""
    a = cfg.algo
    net = pong_network(cfg)
    store = ParamStore(
        NoiseTable(seed, int(a.noise_table_size), net.n_params), net.init_scale(), a.mutation_power
    )
    rng = np.random.default_rng(seed)
    pop = [(int(o),) for o in store.noise.sample_offsets(rng, int(a.population))]
    ev = LocalEvaluator(cfg.env, net, store, int(a.slots), a.fitness_max_frames, env_threads)
    t0 = time.perf_counter()
    for env in ev.envs:
        env.reset(seed=seed)
    t_reset = time.perf_counter() - t0
    ledger = Ledger(cap=frames)
    t0 = time.perf_counter()
    ev.evaluate(pop, int(a.episodes_per_fitness), seed, ledger)
    dt = time.perf_counter() - t0 - t_reset
    ev.close()
    return ledger.frames / dt, net.describe()


def fc_ceiling_fps(net: Any, slots: int, seconds: float = 1.0) -> float:
    """Frames/s that the first fc layer alone would allow: its (512 x 3136) float32 weight is 6.4 MB per
    network and is read from memory once per agent step, so memory bandwidth caps the GA's evaluation below
    this however fast the env and the convolutions are."""
    shape = net.layer_shapes[-4]
    weight, bias = torch.randn(slots, *shape), torch.zeros(slots, shape[0])
    h = torch.rand(slots, 1, shape[1])
    with torch.no_grad():
        linear_rows(h, weight, bias)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            linear_rows(h, weight, bias)
            n += 1
    return n * slots * 4 / (time.perf_counter() - t0)


def bench_eval_vs_raw(quick: bool, slots: int | None = None, env_threads: int = 1) -> dict[str, Any]:
    """Median over repetitions of GA-eval frames/s / raw frames/s, each GA measurement bracketed by a raw one
    before and after it (the machine is shared: its load drifts, and only ratios measured together count)."""
    cfg = pong_config(*([f"algo.slots={slots}"] if slots else []))
    s, cap = int(cfg.algo.slots), int(cfg.algo.fitness_max_frames)
    frames = 20_000 if quick else 60_000
    pairs = []
    described = ""
    for rep in range(1 if quick else 3):
        before = raw_fps(cfg.env, s, cap, frames // 2, env_threads, seed=rep)
        fps, described = ga_eval_fps(cfg, frames, env_threads, seed=rep)
        after = raw_fps(cfg.env, s, cap, frames // 2, env_threads, seed=rep)
        pairs.append((fps / ((before + after) / 2), fps, (before + after) / 2))
    ratio, p, r = sorted(pairs)[len(pairs) // 2]
    fc = fc_ceiling_fps(pong_network(cfg), s)
    return {
        "name": "atari_eval_vs_raw",
        "project_fps": p,
        "reference_fps": r,
        "ratio": ratio,
        "goal": 0.50,
        "detail": (
            f"Pong, {s} envs, env threads {env_threads}, torch threads {torch.get_num_threads()}: GA eval "
            f"{p:,.0f} frames/s vs raw AtariVectorEnv random actions {r:,.0f} frames/s (median of "
            f"{len(pairs)}: {', '.join(f'{q[0]:.2f}' for q in pairs)}); the fc layer's weight reads alone cap "
            f"the GA at {fc:,.0f} frames/s here (memory-bound); {described}"
        ),
    }


def generation_rss(population: int, generations: int, fitness_frames: int, *overrides: str) -> dict[str, Any]:
    """Run GA generations on Pong in this process and report peak RSS (called in a fresh subprocess)."""
    from neuroevo_bench.algorithms import RunContext
    from neuroevo_bench.algorithms.ga import GeneticAlgorithm

    torch.set_num_threads(1)
    cfg = pong_config(
        f"algo.population={population}", f"algo.fitness_max_frames={fitness_frames}", *overrides
    )
    kwargs = {k: v for k, v in cfg.algo.items() if k != "_target_"}
    ctx = RunContext(env_cfg=cfg.env, ledger=Ledger(), seed=0, resources=cfg.resources)
    t0 = time.perf_counter()
    ga = GeneticAlgorithm(ctx, **kwargs)
    setup_rss = _maxrss_bytes()
    for _ in range(generations):
        ga.step_generation()
    return {
        "population": population,
        "generations": ga.generation,
        "slots": int(cfg.algo.slots),
        "noise_table_size": int(cfg.algo.noise_table_size),
        "n_params": ga.net.n_params,
        "frames": ctx.ledger.frames,
        "wall_s": time.perf_counter() - t0,
        "setup_rss_bytes": setup_rss,
        "peak_rss_bytes": _maxrss_bytes(),
        "slow_rebuilds": ga.store.slow_rebuilds,
    }


def _maxrss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def bench_rss(quick: bool, population: int = 1000) -> dict[str, Any]:
    fitness_frames = 100 if quick else 400
    cmd = [
        sys.executable,
        "-m",
        "neuroevo_bench.bench_atari",
        "--rss",
        str(population),
        "2",
        str(fitness_frames),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = r["peak_rss_bytes"]
    return {
        "name": "atari_ga_rss",
        "project_fps": r["frames"] / r["wall_s"],
        "reference_fps": None,
        "ratio": RSS_GOAL_BYTES / peak,
        "goal": 1.0,
        "detail": (
            f"peak RSS {peak / 2**30:.2f} GB (after setup {r['setup_rss_bytes'] / 2**30:.2f} GB; goal <= 3 GB, "
            f"ratio = 3 GB / peak) for {r['generations']} GA generations at N={r['population']} on Pong, "
            f"{r['slots']} slots, noise table {r['noise_table_size'] * 4 / 2**20:.0f} MB, "
            f"{r['n_params']:,} params ({r['population'] * r['n_params'] * 4 / 2**30:.1f} GB if all materialised); "
            f"fitness episodes capped at {fitness_frames} frames; {r['frames']:,} frames in {r['wall_s']:.0f} s"
        ),
    }


def benchmark(quick: bool = False) -> list[dict[str, Any]]:
    return [bench_eval_vs_raw(quick), bench_rss(quick)]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--rss"]:
        population, generations, fitness_frames = (int(x) for x in argv[1:4])
        print(json.dumps(generation_rss(population, generations, fitness_frames, *argv[4:])))
        return 0
    for row in benchmark("--quick" in argv):
        print(f"{row['name']}: ratio {row['ratio']:.3g} (goal {row['goal']}) | {row['detail']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
