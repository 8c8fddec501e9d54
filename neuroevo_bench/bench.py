"""Speed benchmark: `python -m neuroevo_bench.bench [--quick] [--only NAME ...] [--json PATH]`.

Each section measures the project side by side with a reference, in one process, on the same work, and
prints the ratio: on a shared machine only ratios measured together mean anything. Sections:

- ga_vs_naive: a GA generation (CartPole-v1, N=500, 3 episodes, 4-64-64-2 MLP) against a reference written
  the way Chopra's notebook does it: one agent at a time, one env step at a time, a Python loop over the
  parameter tensors for mutation and a deepcopy per child. Goal >= 200x env frames/s.
- eval_vs_ideal: the slot evaluator against ideal loops on the same vector env with no bookkeeping: (a) the
  same slots, every slot always busy; (b) N x E envs where each individual's E episodes share one network.
  Goal >= 60 % of (a).
- es_vs_ga: an ES generation's frames/s against a GA generation's (CartPole, N=500 x 3 episodes, same slots
  and network); after 3 GA generations, ES is centred on the GA's elite, so both play episodes of the same
  lengths. Goal >= 0.9.
- sb3_overhead (A2C), dqn_overhead, sb3_atari (A2C on Pong: the harness's C++ vector env vs SB3's
  `make_atari_env` + `VecFrameStack`), atari, minatar, ray: the sections of the SB3, Atari, MinAtar and Ray
  modules (skipped when unavailable).

`--long` adds the long measurement: the Atari section's run of the real app at its defaults for 1M frames
against the raw env (5-10 minutes); the default run fits in 15 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf

from neuroevo_bench.algorithms import RunContext
from neuroevo_bench.algorithms.es import EvolutionStrategies
from neuroevo_bench.algorithms.ga import GeneticAlgorithm
from neuroevo_bench.algorithms.population import PopulationMethod
from neuroevo_bench.envs import Ledger, make_vector_env
from neuroevo_bench.evaluation import LocalEvaluator
from neuroevo_bench.genome import Genome, NoiseTable, ParamStore
from neuroevo_bench.policies import make_network
from neuroevo_bench.records import atomic_write_text, git_commit, machine_info, now_iso

CARTPOLE = OmegaConf.create(
    {
        "name": "CartPole",
        "id": "CartPole-v1",
        "kind": "gym",
        "vectorization": "auto",
        "frame_skip": 1,
        "kwargs": {},
    }
)
MLP = OmegaConf.create({"hidden": [64, 64], "activation": "relu"})
SLOTS = 512  # conf/algo/ga.yaml's default


def cartpole_setup(seed: int = 0):
    net = make_network(MLP, gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(2))
    store = ParamStore(NoiseTable(seed, 2**22, net.n_params), net.init_scale(), 0.02)
    return net, store


def cartpole_ctx() -> RunContext:
    resources = OmegaConf.create({"env_threads": 1, "device": "cpu"})
    return RunContext(env_cfg=CARTPOLE, ledger=Ledger(), seed=0, resources=resources)


def cartpole_ga(population: int, slots: int = SLOTS) -> GeneticAlgorithm:
    """The project's GA on CartPole-v1 with the given population, outside the runner (no budget cap)."""
    return GeneticAlgorithm(
        cartpole_ctx(), population=population, slots=slots, noise_table_size=2**22, network=MLP
    )


def evolved_population(store: ParamStore, n: int, generations: int) -> list[Genome]:
    """A population after a few GA generations: a realistic mix of short and full-length episodes.

    `store` must be :func:`cartpole_setup`'s (the GA below builds the same noise table from seed 0).
    """
    ga = cartpole_ga(n)
    assert ga.noise.seed == store.noise.seed and ga.noise.size == store.noise.size
    for _ in range(generations):
        ga.step_generation()
    ga.close()
    return ga.population


# --- ga_vs_naive ---------------------------------------------------------------------------------------------
class NaiveAgent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Sequential(
            torch.nn.Linear(4, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def naive_generation(n_agents: int, episodes: int, seed: int) -> tuple[int, float]:
    """The notebook's style: deepcopy + per-tensor mutation loop, then one agent, one env step at a time."""
    torch.manual_seed(seed)
    env = gym.make("CartPole-v1")
    parent = NaiveAgent()
    frames = 0
    t0 = time.perf_counter()
    for i in range(n_agents):
        child = copy.deepcopy(parent)
        for param in child.parameters():
            param.data += 0.02 * torch.randn_like(param)
        for e in range(episodes):
            obs, _ = env.reset(seed=seed + i * episodes + e)
            done = False
            while not done:
                with torch.no_grad():
                    action = int(child(torch.tensor(obs, dtype=torch.float32)).argmax())
                obs, _, terminated, truncated, _ = env.step(action)
                frames += 1
                done = terminated or truncated
    return frames, time.perf_counter() - t0


def project_generation(pop: list[Genome], slots: int) -> tuple[int, float]:
    """One complete generation of the project's GA (population evaluation, elite validation, mutation)."""
    ga = cartpole_ga(len(pop), slots)
    ga.population = list(pop)
    t0 = time.perf_counter()
    ga.step_generation()
    dt = time.perf_counter() - t0
    ga.close()
    return ga.ctx.ledger.frames, dt


def bench_ga_vs_naive(quick: bool) -> dict[str, Any]:
    _, store = cartpole_setup()
    pop = evolved_population(store, 500, 3)  # a mid-training mix of short and full-length episodes
    naive_frames, naive_s = naive_generation(20 if quick else 60, 3, 0)
    proj_frames, proj_s = project_generation(pop, SLOTS)
    naive_fps, proj_fps = naive_frames / naive_s, proj_frames / proj_s
    return {
        "name": "ga_vs_naive",
        "project_fps": proj_fps,
        "reference_fps": naive_fps,
        "ratio": proj_fps / naive_fps,
        "goal": 200.0,
        "detail": f"project gen: {proj_frames} frames in {proj_s:.2f}s; naive: {naive_frames} frames in {naive_s:.2f}s",
    }


# --- eval_vs_ideal -------------------------------------------------------------------------------------------
def ideal_slots(store: ParamStore, pop: list[Genome], slots: int, steps: int) -> float:
    """Every slot always busy (auto-reset keeps episodes coming), one batched forward per step, no bookkeeping."""
    net, _ = cartpole_setup()
    env = make_vector_env(CARTPOLE, slots)
    who = np.arange(slots) % len(pop)  # slot i runs individual i (mod N)
    layers = [t.numpy() for t in net.split(store.build(store.plan(pop), who))]
    obs, _ = env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        out = net.forward_rows(layers, obs[:, None, :])
        obs, *_ = env.step(out.argmax(-1).reshape(-1))
    dt = time.perf_counter() - t0
    env.close()
    return slots * steps / dt


def ideal_shared(store: ParamStore, pop: list[Genome], episodes: int, steps: int) -> float:
    """N x E envs, the E episodes of an individual sharing its weights in one (N, E) batched matmul."""
    net, _ = cartpole_setup()
    n = len(pop)
    env = make_vector_env(CARTPOLE, n * episodes)
    layers = [t.numpy() for t in net.split(store.build(store.plan(pop), np.arange(n)))]
    obs, _ = env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        out = net.forward_rows(layers, obs.reshape(n, episodes, -1))
        obs, *_ = env.step(out.argmax(-1).reshape(-1))
    dt = time.perf_counter() - t0
    env.close()
    return n * episodes * steps / dt


def bench_eval_vs_ideal(quick: bool) -> dict[str, Any]:
    net, store = cartpole_setup()
    pop = evolved_population(store, 500, 3)  # a mid-training mix of short and full-length episodes
    reps = 1 if quick else 3
    proj, ideal, shared = [], [], []
    for _ in range(reps):  # interleaved, so load changes hit all three alike
        ev = LocalEvaluator(CARTPOLE, net, store, SLOTS)
        ledger = Ledger()
        t0 = time.perf_counter()
        ev.evaluate(pop, 3, 7, ledger)
        proj.append(ledger.frames / (time.perf_counter() - t0))
        ev.close()
        ideal.append(ideal_slots(store, pop, SLOTS, 1000))
        shared.append(ideal_shared(store, pop, 3, 300))
    p, i, s = max(proj), max(ideal), max(shared)
    return {
        "name": "eval_vs_ideal",
        "project_fps": p,
        "reference_fps": i,
        "ratio": p / i,
        "goal": 0.60,
        "detail": f"ideal with shared weights (N x E envs): {s / 1e6:.2f}M fps; project / shared = {p / s:.2f}",
    }


# --- es_vs_ga ------------------------------------------------------------------------------------------------
def generation_fps(algo: PopulationMethod) -> float:
    """Training frames/s of one complete generation."""
    frames0, t0 = algo.ctx.ledger.frames, time.perf_counter()
    algo.step_generation()
    return (algo.ctx.ledger.frames - frames0) / (time.perf_counter() - t0)


def bench_es_vs_ga(quick: bool) -> dict[str, Any]:
    """The same work for both: after 3 GA generations, the GA's next generation against an ES generation
    centred on the GA's elite (same sigma, so its pairs play episodes as long as the GA's children); each
    repetition replays that same generation from the same state."""
    kwargs = {"population": 500, "episodes_per_fitness": 3, "slots": SLOTS, "network": MLP}
    ga = GeneticAlgorithm(cartpole_ctx(), **kwargs)
    es = EvolutionStrategies(cartpole_ctx(), obs_norm=True, **kwargs)  # the normaliser's bookkeeping included
    for _ in range(3):
        ga.step_generation()
    ga_state, es_state = copy.deepcopy(ga.state_dict()), copy.deepcopy(es.state_dict())
    k = es.k  # the normaliser's entries: its prior statistics (mean 0, std 1) leave observations unchanged
    es_state["center"][k:] = ga.store.rebuild(ga.champion())
    ga_fps, es_fps, lengths = [], [], []
    for _ in range(1 if quick else 3):  # interleaved, so load changes hit both alike
        ga.load_state_dict(copy.deepcopy(ga_state))
        es.load_state_dict(copy.deepcopy(es_state))
        ga_fps.append(generation_fps(ga))
        es_fps.append(generation_fps(es))
        lengths.append((ga.last["generation_frames"], es.last["generation_frames"]))
    ga.close()
    es.close()
    g, e = max(ga_fps), max(es_fps)
    (ga_frames, es_frames) = lengths[-1]
    return {
        "name": "es_vs_ga",
        "project_fps": e,
        "reference_fps": g,
        "ratio": e / g,
        "goal": 0.9,
        "detail": f"ES generation {e / 1e3:.0f}k fps ({es_frames:,} frames) vs GA generation {g / 1e3:.0f}k fps "
        f"({ga_frames:,} frames; CartPole, N=500 x 3 episodes, {SLOTS} slots, 4-64-64-2 MLP, ES centred on "
        "the GA's elite, with its observation normaliser)",
    }


SECTIONS: dict[str, Callable[[bool], dict[str, Any] | list[dict[str, Any]]]] = {
    "ga_vs_naive": bench_ga_vs_naive,
    "eval_vs_ideal": bench_eval_vs_ideal,
    "es_vs_ga": bench_es_vs_ga,
}
OPTIONAL_SECTIONS = {
    "sb3_overhead": "neuroevo_bench.algorithms.sb3:benchmark",
    "dqn_overhead": "neuroevo_bench.algorithms.sb3:benchmark_dqn",
    "sb3_atari": "neuroevo_bench.algorithms.sb3:benchmark_atari",
    "atari": "neuroevo_bench.bench_atari:benchmark",
    "minatar": "neuroevo_bench.bench_minatar:benchmark",
    "ray": "neuroevo_bench.ray_evaluator:benchmark",
}


def _optional(path: str) -> Callable[[bool], Any] | None:
    import importlib

    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuroevo_bench.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller measurements (a smoke test, noisier)")
    parser.add_argument(
        "--long",
        action="store_true",
        help="also the long measurement (Atari: the app at its defaults for 1M frames vs the raw env)",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        help=f"sections to run (default all): {', '.join([*SECTIONS, *OPTIONAL_SECTIONS])}",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON (for regression tracking)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, as resources.threads)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.only or [*SECTIONS, *OPTIONAL_SECTIONS]
    unknown = sorted(set(names) - set(SECTIONS) - set(OPTIONAL_SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; valid: {', '.join([*SECTIONS, *OPTIONAL_SECTIONS])}")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(
        f"device: CPU ({machine_info(args.threads)['cpu']}), {args.threads} torch thread(s); GPU: "
        + (f"{gpu} (not used: every section runs on the CPU, the default)" if gpu else "none on this machine")
        + f"; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name in names:
        fn = SECTIONS.get(name) or _optional(OPTIONAL_SECTIONS[name])
        if fn is None:
            print(f"{name}: skipped (module not available)")
            continue
        print(f"{name}: running ...", flush=True)
        t_section = time.perf_counter()
        out = (
            fn(args.quick, long=True)
            if args.long and "long" in inspect.signature(fn).parameters
            else fn(args.quick)
        )
        for row in out if isinstance(out, list) else [out]:
            rows.append(row)
            ok = "ok" if row.get("goal") is None or row["ratio"] >= row["goal"] else "BELOW GOAL"
            goal = f" (goal >= {row['goal']:g}: {ok})" if row.get("goal") is not None else ""
            print(f"  {row['name']}: ratio {row['ratio']:.3g}{goal}  | {row.get('detail', '')}", flush=True)
        print(f"  ({name}: {time.perf_counter() - t_section:.0f} s)", flush=True)
    print(f"benchmark: {(time.perf_counter() - t_start) / 60:.1f} min", flush=True)
    if args.json:
        meta = {
            "date": now_iso(),
            "git_commit": git_commit(),
            "machine": machine_info(args.threads),
            "long": args.long,
        }
        atomic_write_text(args.json, json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
