"""Pong speed and memory benchmark (the `atari` section of `python -m neuroevo_bench.bench`).

Each number is measured side by side with its reference, in this process:

- `atari_eval_vs_raw`: GA population evaluation on Pong (the project's slot evaluator, Nature CNN with one
  grouped convolution per layer over a group's slots) against the same `AtariVectorEnv` stepping random
  actions at the same number of envs and env threads. Measured for the evaluator as it was before the
  overlap (one group: emulators and network take turns, `resources.overlap=false`) and as it runs now (two
  groups in flight), interleaved with the raw env. Neither counts the opening seeded reset (ALE reloads the
  ROM to reseed: a large share of a short benchmark, under 1 % of a paper-sized generation). Goal >= 0.6.
- `atari_ga_rss`: peak resident memory of GA generations at N = 1000 on Pong, in a fresh subprocess
  (`ru_maxrss`), with the Atari defaults (conf/algo_env/ga_atari.yaml). Episodes are capped short because
  memory does not depend on their length (slots, weight rows, parent cache and noise table do not grow with
  it); two generations, so the second builds children from the cached parents. Goal <= 3 GB. Its time is
  the 2 x 1300 seeded resets (ALE reloads the ROM to reseed, ~75 ms each), not the frames.
- `atari_app_vs_raw` (`--long`): the real app, `algo=ga env=Pong` at its defaults with seed 0 and 1M training
  frames, run in this process (`runner.run`, as `python -m neuroevo_bench` does); its training frames/s
  (run.json: train_frames / train_wall_s) over the raw env's at the same envs and env threads, measured just
  before and just after it. Goal >= 0.6.

No GPU is lent to this project's benchmark machine: everything here runs on the CPU (`resources.device=cpu`,
the default); `resources.device=cuda` runs the batched forward pass on a GPU where there is one.

Run alone: `python -m neuroevo_bench.bench --only atari [--quick] [--long]`, or `python -m neuroevo_bench.bench_atari
[--quick] [--long]`; `python -m neuroevo_bench.bench_atari --app` runs the app section only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
from neuroevo_bench.policies import RowWeights, linear_rows, make_network

CONF = Path(__file__).resolve().parent.parent / "conf"
RSS_GOAL_BYTES = 3 * 2**30
GOAL = 0.6
APP_FRAMES = 1_000_000


def pong_config(*overrides: str) -> DictConfig:
    """The app's composed config for GA on Pong (the very settings a run would use)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["env=Pong", "algo=ga", *overrides])


def pong_network(cfg: DictConfig) -> Any:
    info = env_info(cfg.env)
    return make_network(cfg.algo.network, info.observation_space, info.action_space)


def load_average() -> str:
    """The 1-minute load average (`uptime`), stated with every figure: on a shared machine it says how much
    of the CPU the measurement had."""
    return f"{os.getloadavg()[0]:.2f}"


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


def ga_eval_fps(
    cfg: DictConfig, frames: int, env_threads: int, seed: int = 0, overlap: bool = True
) -> tuple[float, str]:
    """Frames/s of the project's population evaluation of a fresh population, capped at `frames` by the
    budget, not counting its opening seeded reset (timed on the same envs just before and subtracted)."""
    a = cfg.algo
    net = pong_network(cfg)
    store = ParamStore(
        NoiseTable(seed, int(a.noise_table_size), net.n_params), net.init_scale(), a.mutation_power
    )
    rng = np.random.default_rng(seed)
    pop = [(int(o),) for o in store.noise.sample_offsets(rng, int(a.population))]
    ev = LocalEvaluator(cfg.env, net, store, int(a.slots), a.fitness_max_frames, env_threads, overlap=overlap)
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


def fc_ceiling_fps(net: Any, slots: int, dtype: torch.dtype = torch.float32, seconds: float = 1.0) -> float:
    """Frames/s that the first fc layer alone would allow: its (512 x 3136) weight (6.4 MB per network in
    float32, 3.2 MB in float16) is read from memory once per agent step, so memory bandwidth caps the GA's
    evaluation below this however fast the env and the convolutions are."""
    shape = net.layer_shapes[-4]
    weight, bias = torch.randn(slots, *shape).to(dtype), torch.zeros(slots, shape[0])
    h = torch.rand(slots, 1, shape[1])
    return fc_calls_per_s(h, weight, bias, seconds, time.perf_counter) * slots * 4


def fc_calls_per_s(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, seconds: float, clock: Callable[[], float]
) -> float:
    """How many times a second `linear_rows(h, weight, bias)` runs (after one warm-up call), timed by `clock`:
    the fc layer's cost on its own, which the Atari and MinAtar sections turn into a frames/s ceiling."""
    with torch.no_grad():
        linear_rows(h, weight, bias)
        n, t0 = 0, clock()
        while clock() - t0 < seconds:
            linear_rows(h, weight, bias)
            n += 1
    return n / (clock() - t0)


def bench_eval_vs_raw(quick: bool, slots: int | None = None, env_threads: int = 1) -> list[dict[str, Any]]:
    """GA-eval frames/s / raw frames/s, the evaluator before (one group) and after (two groups in flight) the
    overlap, each GA measurement bracketed by raw ones and the two orders alternated (the machine is shared:
    its load drifts, and only ratios measured together count); the median over repetitions."""
    cfg = pong_config(*([f"algo.slots={slots}"] if slots else []))
    # before: one group (env and network taking turns) with the float32 fc layer, as the evaluator was
    cfg_before = pong_config(*([f"algo.slots={slots}"] if slots else []), "algo.network.fc_dtype=float32")
    s, cap = int(cfg.algo.slots), int(cfg.algo.fitness_max_frames)
    frames = 20_000 if quick else 60_000
    ratios: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    described = ""
    loads = [load_average()]
    for rep in range(1 if quick else 3):
        for overlap in (False, True) if rep % 2 == 0 else (True, False):
            before = raw_fps(cfg.env, s, cap, frames // 2, env_threads, seed=rep)
            fps, net_described = ga_eval_fps(
                cfg if overlap else cfg_before, frames, env_threads, seed=rep, overlap=overlap
            )
            described = net_described if overlap else described
            after = raw_fps(cfg.env, s, cap, frames // 2, env_threads, seed=rep)
            raw = (before + after) / 2
            ratios[overlap].append((fps / raw, fps, raw))
        loads.append(load_average())
    net = pong_network(cfg)
    fc = {
        name: fc_ceiling_fps(net, s, dtype)
        for name, dtype in (("float32", torch.float32), ("float16", torch.float16))
    }
    rows = []
    for overlap in (True, False):
        pairs = ratios[overlap]
        ratio, p, r = sorted(pairs)[len(pairs) // 2]
        how = (
            f"now: two groups of slots in flight, fc {cfg.algo.network.fc_dtype}"
            if overlap
            else "before: one group, env and network taking turns, fc float32 (today's bit-identical speed-ups in)"
        )
        rows.append(
            {
                "name": "atari_eval_vs_raw" if overlap else "atari_eval_vs_raw_before",
                "project_fps": p,
                "reference_fps": r,
                "ratio": ratio,
                "goal": GOAL if overlap else None,
                "detail": (
                    f"Pong, {s} slots, {how}, env threads {env_threads} (per group), torch threads "
                    f"{torch.get_num_threads()}: GA eval {p:,.0f} frames/s vs raw AtariVectorEnv random actions "
                    f"{s} envs {r:,.0f} frames/s (median of {len(pairs)}: {', '.join(f'{q[0]:.2f}' for q in pairs)});"
                    f" load average {' -> '.join(loads)}; the fc layer's weight reads alone cap the GA at "
                    f"{fc['float32']:,.0f} frames/s here in float32, {fc['float16']:,.0f} in float16 "
                    f"(memory-bound); CPU only (no GPU on this machine); {described}"
                ),
            }
        )
    return rows


def fc_dtype_agreement(quick: bool, n_genomes: int = 32, seed: int = 0) -> dict[str, Any]:
    """How often the float16-fc network (`algo.network.fc_dtype=float16`) picks the float32 network's
    action, on the float32 network's own Pong trajectories: `n_genomes` fixed genomes (half fresh
    initialisations, half a child of each at the GA's sigma), one episode each from fixed seeds, both
    networks acting on every observation. The option would be exact enough to be the default at >= 99.9 %."""
    cfg = pong_config()
    a = cfg.algo
    net32 = dataclasses.replace(pong_network(cfg), fc_dtype="float32")
    net16 = dataclasses.replace(net32, fc_dtype="float16")
    store = ParamStore(
        NoiseTable(seed, int(a.noise_table_size), net32.n_params), net32.init_scale(), a.mutation_power
    )
    rng = np.random.default_rng(seed)
    parents = [(int(o),) for o in store.noise.sample_offsets(rng, n_genomes // 2)]
    children = [
        (*p, int(o)) for p, o in zip(parents, store.noise.sample_offsets(rng, len(parents)), strict=True)
    ]
    genomes = parents + children
    n = len(genomes)
    flat = store.build(store.plan(genomes), np.arange(n))
    rows = []
    for net in (net32, net16):
        weights = RowWeights(net, n)
        weights.load(np.arange(n), flat)
        rows.append(weights)
    env = make_vector_env(cfg.env, n, max_episode_frames=int(a.fitness_max_frames), num_threads=1)
    obs, _ = env.reset(seed=seed)
    row, lane = np.arange(n), np.zeros(n, dtype=np.int64)
    steps = 200 if quick else 1000
    same = 0
    with torch.no_grad():
        for _ in range(steps):
            x = obs[:, None]
            exact = rows[0].act(x, n, row, lane)
            same += int((rows[1].act(x, n, row, lane) == exact).sum())
            obs, *_ = env.step(exact)
    env.close()
    agreement = same / (steps * n)
    return {
        "name": "atari_fc_float16_agreement",
        "ratio": agreement,
        "goal": None,
        "detail": (
            f"algo.network.fc_dtype=float16 picks the float32 network's action on {agreement:.4%} of "
            f"{steps * n:,} steps ({n} fixed genomes: {len(parents)} initialisations + a child of each at sigma "
            f"{a.mutation_power}; Pong, the float32 networks' own trajectories; {steps} agent steps each); "
            ">= 99.9 % would let it be the default; below, it stays an explicit option"
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
    fitness_frames = 40 if quick else 100
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
        "peak_rss_bytes": peak,
        "detail": (
            f"peak RSS {peak / 2**30:.2f} GB (after setup {r['setup_rss_bytes'] / 2**30:.2f} GB; goal <= 3 GB, "
            f"ratio = 3 GB / peak) for {r['generations']} GA generations at N={r['population']} on Pong, "
            f"{r['slots']} slots, noise table {r['noise_table_size'] * 4 / 2**20:.0f} MB, "
            f"{r['n_params']:,} params ({r['population'] * r['n_params'] * 4 / 2**30:.1f} GB if all materialised); "
            f"fitness episodes capped at {fitness_frames} frames (memory does not grow with episode length; "
            f"the time goes into the {r['generations']} x 1300 seeded resets); {r['frames']:,} frames in "
            f"{r['wall_s']:.0f} s"
        ),
    }


def bench_app_vs_raw(frames: int = APP_FRAMES, seed: int = 0) -> dict[str, Any]:
    """The real app at its defaults (`algo=ga env=Pong seed=0 budget.frames=1000000`) in this process, against
    the raw env at the same slots and env threads measured just before and just after it."""
    from neuroevo_bench.runner import run

    cfg = pong_config(f"seed={seed}", f"budget.frames={frames}", f"eval.every_frames={frames}")
    s, cap, threads = int(cfg.algo.slots), int(cfg.algo.fitness_max_frames), int(cfg.resources.env_threads)
    loads = [load_average()]
    before = raw_fps(cfg.env, s, cap, 200_000, threads, seed=seed)
    with tempfile.TemporaryDirectory(prefix="bench_app_") as tmp:
        info = run(cfg, Path(tmp) / "run")
    loads.append(load_average())
    after = raw_fps(cfg.env, s, cap, 200_000, threads, seed=seed)
    loads.append(load_average())
    raw = (before + after) / 2
    fps = info["train_frames"] / info["train_wall_s"]
    return {
        "name": "atari_app_vs_raw",
        "project_fps": fps,
        "reference_fps": raw,
        "ratio": fps / raw,
        "goal": GOAL,
        "detail": (
            f"python -m neuroevo_bench algo=ga env=Pong seed={seed} budget.frames={frames} (all else at its "
            f"defaults: N={cfg.algo.population}, {s} slots, env threads {threads}, overlap "
            f"{cfg.resources.overlap}, fc {cfg.algo.network.fc_dtype}), run in this process: "
            f"{info['train_frames']:,} training frames in {info['train_wall_s']:.1f} s = {fps:,.0f} frames/s "
            f"(run.json), status {info['status']}; raw AtariVectorEnv random actions {s} envs "
            f"{before:,.0f} before, {after:,.0f} after; load average {' -> '.join(loads)}; CPU only"
        ),
    }


def benchmark(quick: bool = False, long: bool = False) -> list[dict[str, Any]]:
    rows = [*bench_eval_vs_raw(quick), fc_dtype_agreement(quick), bench_rss(quick)]
    if long:
        rows.append(bench_app_vs_raw())
    return rows


def main(argv: list[str]) -> int:
    if argv[:1] == ["--rss"]:
        population, generations, fitness_frames = (int(x) for x in argv[1:4])
        print(json.dumps(generation_rss(population, generations, fitness_frames, *argv[4:])))
        return 0
    torch.set_num_threads(1)
    rows = [bench_app_vs_raw()] if "--app" in argv else benchmark("--quick" in argv, "--long" in argv)
    for row in rows:
        print(f"{row['name']}: ratio {row['ratio']:.3g} (goal {row['goal']}) | {row['detail']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
