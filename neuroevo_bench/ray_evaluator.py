"""GA / random-search population evaluation on a Ray cluster (`evaluator=ray`); the only module importing Ray.

Why it gives the same numbers as the local evaluator: every (individual, episode) task starts its episode
from its own seed (:func:`~neuroevo_bench.evaluation.task_seeds`), whichever slot, shard or worker plays
it, so a task's return does not depend on the layout. Shards are contiguous parts of the population
(:func:`~neuroevo_bench.evaluation.shard_bounds`), each played by the same code
(:meth:`LocalEvaluator.evaluate_shard`) on an env of `algo.slots` sub-envs and capped at its share of the
remaining budget; locally the shards run one after another, here each goes to a Ray actor. Same config and
seed: bit-identical fitness, curves and champions for any `algo.slots`, `algo.shards` and number of workers
(except where a budget cap cuts the last generation short: how far each layout got into it differs).

What travels: a worker is built once from the env config, the network description and the noise table's
seed (it rebuilds the table and keeps its own parameter cache). Per shard it receives compact genomes (seed
chains, their shared prefixes sent once; a few bytes per individual, never weights) and returns returns,
episode lengths and the frames its CountedVecEnv counted, which the driver charges to the training ledger.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import pickle
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

try:
    import ray
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(f"evaluator=ray needs Ray: pip install -e '.[ray]' ({exc})") from exc

from neuroevo_bench.config import ConfigError
from neuroevo_bench.envs import Ledger
from neuroevo_bench.evaluation import (
    LocalEvaluator,
    PopulationResult,
    ShardResult,
    check_shards,
    merge_shards,
    resumed_caps,
    shard_bounds,
    shard_seed,
    unfinished,
)
from neuroevo_bench.genome import CentredStore, Genome, NoiseTable, ParamStore, Store
from neuroevo_bench.policies import Network, build_network, searched_mask

log = logging.getLogger(__name__)

ADDRESS_HELP = (
    "evaluator.address: auto (join the running cluster, else start a local one), local/null (start a local "
    "one), or a cluster address such as 10.0.0.1:6379 or ray://10.0.0.1:10001"
)


# --- what travels --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompactGenomes:
    """A shard's genomes as seed chains with shared prefixes sent once.

    Genome i is `(*prefix[base[i]], last[i])`. The children of one parent share its chain, so a shard of n
    individuals with T distinct parents costs about 12 n bytes plus the T parent chains, whatever the
    generation.
    """

    prefixes: np.ndarray  # (sum of prefix lengths,) int64: the distinct prefixes, concatenated
    prefix_ends: np.ndarray  # (n_prefixes,) int64: end of each prefix in `prefixes`
    base: np.ndarray  # (n,) int32: prefix of each genome
    last: np.ndarray  # (n,) int64: last offset of each genome

    @classmethod
    def encode(cls, genomes: Sequence[Genome]) -> CompactGenomes:
        index: dict[Genome, int] = {}
        base = np.empty(len(genomes), dtype=np.int32)
        last = np.empty(len(genomes), dtype=np.int64)
        for i, g in enumerate(genomes):
            base[i] = index.setdefault(g[:-1], len(index))
            last[i] = g[-1]
        chains = list(index)
        flat = [o for chain in chains for o in chain]
        ends = np.cumsum([len(c) for c in chains], dtype=np.int64)
        return cls(np.asarray(flat, dtype=np.int64), ends, base, last)

    def decode(self) -> list[Genome]:
        starts = np.concatenate([[0], self.prefix_ends[:-1]]).astype(np.int64)
        flat = self.prefixes.tolist()
        chains = [tuple(flat[s:e]) for s, e in zip(starts.tolist(), self.prefix_ends.tolist(), strict=True)]
        return [(*chains[b], o) for b, o in zip(self.base.tolist(), self.last.tolist(), strict=True)]


@dataclass(frozen=True)
class ShardTask:
    """One shard, as sent to a worker."""

    genomes: CompactGenomes
    episodes: int
    seed: int
    cap: int | None
    obs_dim: int | None = None  # sum each episode's observations (ES's normaliser)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to rebuild the driver's evaluator; sent once, when the worker starts."""

    env_cfg: dict[str, Any]  # resolved plain container (rebuilt into a DictConfig on the worker)
    net: Network
    noise_seed: int
    noise_size: int
    init_scale: torch.Tensor  # (P,), the driver's own, so rebuilt parameters match bit for bit
    sigma: float
    centred: bool  # ES: individuals are the centre +- sigma * noise (the centre comes once per generation)
    slots: int
    max_episode_frames: int | None
    env_threads: int
    torch_threads: int


class ShardWorker:
    """Runs inside a Ray actor: its own env, noise table and parameter cache; plays one shard per call."""

    def __init__(self, spec: WorkerSpec) -> None:
        torch.set_num_threads(spec.torch_threads)
        noise = NoiseTable(spec.noise_seed, spec.noise_size, spec.net.n_params)
        self.store: Store = (
            CentredStore(noise, spec.sigma, searched_mask(spec.net))
            if spec.centred
            else ParamStore(noise, spec.init_scale, spec.sigma)
        )
        store = self.store
        self.local = LocalEvaluator(
            OmegaConf.create(spec.env_cfg),
            spec.net,
            store,
            spec.slots,
            spec.max_episode_frames,
            spec.env_threads,
        )

    def info(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "torch_threads": torch.get_num_threads()}

    def set_center(self, theta: torch.Tensor) -> None:
        """ES: the centre of this generation's perturbations (sent once per generation, not per individual)."""
        assert isinstance(self.store, CentredStore)
        self.store.set_center(theta)

    def evaluate(self, message: bytes) -> ShardResult:
        """Play one shard; `message` is a pickled :class:`ShardTask` (pickled by the driver so that the
        bytes it counts are the bytes that travel)."""
        task: ShardTask = pickle.loads(message)
        return self.local.evaluate_shard(
            task.genomes.decode(), task.episodes, task.seed, task.cap, task.obs_dim
        )

    def close(self) -> None:
        self.local.close()


# --- the cluster ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RaySettings:
    """The `evaluator` config group for `kind: ray`, checked: bad values are bad input (ConfigError, exit 2);
    conf/evaluator/ray.yaml documents each key."""

    address: str | None = "auto"
    num_workers: int = 2
    cpus_per_worker: float = 1.0
    worker_threads: int = 1
    num_cpus: int | None = None
    object_store_memory: int | None = None
    ready_timeout_s: float = 300.0
    runtime_env: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> RaySettings:
        d = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg or {})
        assert isinstance(d, dict)
        d.pop("kind", None)
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            valid = ["kind", *cls.__dataclass_fields__]
            raise ConfigError(f"evaluator: unknown key(s) {unknown} for evaluator=ray; valid: {valid}")
        s = cls(**d)
        for key in ("num_workers", "worker_threads"):
            v = getattr(s, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"evaluator.{key}={v!r} is invalid; valid: a positive integer")
        if not (isinstance(s.cpus_per_worker, (int, float)) and s.cpus_per_worker > 0):
            raise ConfigError(
                f"evaluator.cpus_per_worker={s.cpus_per_worker!r} is invalid; valid: a number > 0"
            )
        if s.num_cpus is not None and (not isinstance(s.num_cpus, int) or s.num_cpus < 1):
            raise ConfigError(
                f"evaluator.num_cpus={s.num_cpus!r} is invalid; valid: null or a positive integer"
            )
        if s.address is not None and (not isinstance(s.address, str) or not s.address.strip()):
            raise ConfigError(f"evaluator.address={s.address!r} is invalid; {ADDRESS_HELP}")
        if not (isinstance(s.ready_timeout_s, (int, float)) and s.ready_timeout_s > 0):
            raise ConfigError(
                f"evaluator.ready_timeout_s={s.ready_timeout_s!r} is invalid; valid: a number of seconds > 0"
            )
        return s

    @property
    def local_cpus(self) -> int:
        """CPUs of a local cluster started here: `num_cpus`, else just enough for the workers."""
        return self.num_cpus or max(1, int(np.ceil(self.num_workers * self.cpus_per_worker)))


LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """While Ray starts a local instance, let it take the loopback address as this node's IP.

    Ray 2.60 binds every server of a node to a loopback node IP; with any other node IP its gRPC servers
    (GCS, raylet, core workers, dashboard agent) listen on all interfaces, its metrics exporters on 0.0.0.0
    and its agents' HTTP servers on the node IP. But on Linux it replaces a loopback `_node_ip_address` with
    the machine's outward IP (`services.resolve_ip_for_localhost`) unless its cluster mode is off, as it is
    by default on macOS and Windows only (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, read once, when Ray is
    imported, into `ray_constants.ENABLE_RAY_CLUSTER`). The processes Ray starts get the node IP on their
    command lines, so the flag is needed only here and only for the call.
    """
    import ray._private.ray_constants as ray_constants

    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def start_local(num_cpus: int, object_store_memory: int | None = None, **init_kwargs: Any) -> None:
    """Start a Ray instance on this machine that listens on the loopback interface only.

    With token authentication on and the dashboard off, a local Ray 2.60 still opens about a dozen TCP
    ports (GCS, raylet node and object managers, each worker's and the driver's core worker, the dashboard
    and runtime-env agents, metrics exporters); started this way every one is bound to 127.0.0.1, so nothing
    is reachable from other machines. Joining an existing cluster does not come here.
    """
    with _loopback_node():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            object_store_memory=object_store_memory,
            _node_ip_address=LOOPBACK,
            **init_kwargs,
        )
    node_ip = ray.util.get_node_ip_address()
    try:
        loopback = ipaddress.ip_address(node_ip).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log.warning(
            "Ray %s started its local instance on %s, not on the loopback interface: its ports may be "
            "reachable from other machines",
            ray.__version__,
            node_ip,
        )


def _address_to_join() -> str | None:
    """The cluster `evaluator.address=auto` joins, found as Ray's own `ray.init()` finds it: RAY_ADDRESS, else
    the cluster `ray start` began on this machine; None if there is neither.

    Ray's `address="auto"` would also pick any other Ray instance running here, such as the private local
    instance of another run (a multirun's parallel job): that one disappears when its run ends, and its
    servers listen on the loopback interface, which Ray's join would replace by the outward IP and then wait
    for forever.
    """
    try:
        from ray._private import services

        return services.get_ray_address_from_environment(None, None)
    except (ImportError, AttributeError, TypeError):  # another Ray: let its address="auto" look
        return "auto"


def connect(s: RaySettings) -> bool:
    """Make sure this process is connected to Ray; True if this call connected it (so close() disconnects).

    A process that already called `ray.init` (a test session, a notebook) is used as it is. A local instance
    started here listens on the loopback interface only (:func:`start_local`); joining a cluster is left to
    Ray, its addresses and its own authentication.
    """
    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"include_dashboard": False, "runtime_env": s.runtime_env}
    address = s.address
    if address == "auto":
        if _address_to_join() is None:
            log.info(
                "Ray: no running cluster (RAY_ADDRESS or `ray start`); starting a local one with %d CPUs",
                s.local_cpus,
            )
            address = "local"
        else:
            try:
                ray.init(address="auto", **common)
                log.info("Ray: joined the running cluster (%s CPUs)", ray.cluster_resources().get("CPU"))
                return True
            except ConnectionError:
                log.info("Ray: no running cluster found; starting a local one with %d CPUs", s.local_cpus)
                address = "local"
    if address in (None, "local"):
        start_local(s.local_cpus, s.object_store_memory, **common)
        return True
    try:
        ray.init(address=address, **common)
    except ConnectionError as exc:
        raise ConnectionError(
            f"evaluator.address={address!r}: cannot connect ({exc}); {ADDRESS_HELP}"
        ) from exc
    return True


class RayEvaluator:
    """The population evaluator of `evaluator=ray` (satisfies :class:`evaluation.PopulationEvaluator`).

    Shard i goes to worker i % num_workers, always the same one, so a worker's parameter cache keeps the
    parents its shard's children extend. With fewer shards than workers some workers stay idle.
    """

    def __init__(
        self,
        evaluator_cfg: Any,
        env_cfg: Any,
        net: Network,
        store: Store,
        slots: int,
        max_episode_frames: int | None = None,
        shards: int = 1,
    ) -> None:
        check_shards(shards)
        self.settings = s = RaySettings.from_config(evaluator_cfg)
        self.shards = shards
        self.frame_skip = int(env_cfg.frame_skip)
        if shards < s.num_workers:
            log.warning(
                "algo.shards=%d < evaluator.num_workers=%d: only %d Ray worker(s) will be busy. Set "
                "algo.shards to at least the number of workers (a multiple balances best); evaluator=local "
                "with the same algo.shards gives identical results.",
                shards,
                s.num_workers,
                shards,
            )
        env_container = (
            OmegaConf.to_container(env_cfg, resolve=True) if OmegaConf.is_config(env_cfg) else env_cfg
        )
        spec = WorkerSpec(
            env_cfg=dict(env_container),  # type: ignore[arg-type]
            net=net,
            noise_seed=store.noise.seed,
            noise_size=store.noise.size,
            init_scale=store.mult[-1].clone(),  # ParamStore: the initialisation scale (unused by ES)
            sigma=store.sigma,
            centred=isinstance(store, CentredStore),
            slots=int(slots),
            max_episode_frames=max_episode_frames,
            env_threads=max(1, int(s.cpus_per_worker)),
            torch_threads=s.worker_threads,
        )
        self.store = store
        self.center_sent = -1  # ES: the centre version the workers hold
        self.bytes_sent = (
            0  # pickled shard tasks and ES centres, as sent (the benchmark: bytes per individual)
        )
        self.individuals_sent = 0
        self.workers: list[Any] = []
        self._owns_connection = connect(s)
        try:
            actor = ray.remote(ShardWorker).options(num_cpus=s.cpus_per_worker)
            self.workers = [actor.remote(spec) for _ in range(s.num_workers)]
            self.worker_info = self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> list[dict[str, Any]]:
        """Block until every worker is built; fail clearly if the cluster cannot place them."""
        s = self.settings
        pending = [w.info.remote() for w in self.workers]
        ready, not_ready = ray.wait(pending, num_returns=len(pending), timeout=s.ready_timeout_s)
        if not_ready:
            raise TimeoutError(
                f"only {len(ready)} of evaluator.num_workers={s.num_workers} Ray workers started within "
                f"{s.ready_timeout_s:g} s; each needs evaluator.cpus_per_worker={s.cpus_per_worker:g} CPUs and "
                f"the cluster has {ray.cluster_resources().get('CPU', 0):g} CPUs "
                f"({ray.available_resources().get('CPU', 0):g} free). Lower num_workers or add nodes."
            )
        return ray.get(pending)

    def evaluate(
        self,
        genomes: Sequence[Genome],
        episodes: int,
        seed: int,
        ledger: Ledger,
        partial: PopulationResult | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> PopulationResult:
        """As :meth:`LocalEvaluator.evaluate`, one shard per remote task. A shard is the unit of progress here:
        a shard already finished in `partial` is not sent again, and an interruption (`stop`, polled while the
        workers run) keeps the shards that came back and stops waiting for the others."""
        result = unfinished(len(genomes), episodes) if partial is None else partial
        obs_dim = None if result.obs_moments is None else int(result.obs_moments.shape[-1])
        bounds = shard_bounds(len(genomes), self.shards)
        caps = resumed_caps(ledger, result, bounds, self.frame_skip)
        self._send_center()
        parts: list[ShardResult | None] = [None] * len(bounds)
        running: dict[Any, int] = {}
        for i, (lo, hi) in enumerate(bounds):
            if not np.isnan(result.returns[lo:hi]).any():  # empty, or finished before a checkpoint
                parts[i] = ShardResult(result.returns[lo:hi], result.lengths[lo:hi], 0, 0, True)
                continue
            task = ShardTask(
                CompactGenomes.encode(genomes[lo:hi]),
                int(episodes),
                shard_seed(seed, lo * episodes),
                caps[i],
                obs_dim,
            )
            message = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
            self.bytes_sent += len(message)
            self.individuals_sent += hi - lo
            running[self.workers[i % len(self.workers)].evaluate.remote(message)] = i
        while running:
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in done:
                i = running.pop(ref)
                parts[i] = part = ray.get(ref)
                if part.complete:  # into the result at once: a checkpoint taken meanwhile keeps this shard
                    lo, hi = bounds[i]
                    result.returns[lo:hi], result.lengths[lo:hi] = part.returns, part.lengths
                    if result.obs_moments is not None:
                        result.obs_moments[lo:hi] = part.obs_moments
            if running and stop():  # leave the running shards to their workers (closed with the run)
                break
        finished = [(part, b) for part, b in zip(parts, bounds, strict=True) if part is not None]
        merged = merge_shards([part for part, _ in finished], [b for _, b in finished], result, ledger)
        merged.complete = merged.complete and len(finished) == len(bounds)
        return merged

    def _send_center(self) -> None:
        """ES: put a new centre in the object store once and have every worker take it."""
        store = self.store
        if not isinstance(store, CentredStore) or store.version == self.center_sent:
            return
        ref = ray.put(store.center)
        ray.get([w.set_center.remote(ref) for w in self.workers])
        self.bytes_sent += store.center.numel() * store.center.element_size()
        self.center_sent = store.version

    def close(self) -> None:
        for w in self.workers:
            ray.kill(w)
        self.workers = []
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
            self._owns_connection = False


# --- benchmark (wired into `python -m neuroevo_bench.bench` as the `ray` section) ------------------------------
def _bench_config() -> DictConfig:
    """The project's own CartPole + GA config (conf/), composed as the app composes it."""
    from hydra import compose, initialize_config_dir

    from neuroevo_bench.__main__ import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return compose(config_name="config", overrides=["algo=ga", "env=CartPole"])


def _bench_population(
    env_cfg: Any, net: Network, store: ParamStore, n: int, generations: int, slots: int, seed: int = 0
) -> list[Genome]:
    """A population after a few truncation-selection generations: a realistic mix of short and long episodes."""
    rng = np.random.default_rng(seed)
    pop: list[Genome] = [(int(o),) for o in store.noise.sample_offsets(rng, n)]
    ev = LocalEvaluator(env_cfg, net, store, slots)
    try:
        for g in range(generations):
            order = np.argsort(-ev.evaluate(pop, 3, 1000 + g, Ledger()).fitness, kind="stable")
            parents = [pop[i] for i in order[:20]]
            offsets = store.noise.sample_offsets(rng, n - 1)
            pop = [pop[order[0]]] + [(*parents[rng.integers(20)], int(o)) for o in offsets]
    finally:
        ev.close()
    return pop


def benchmark(quick: bool = False) -> list[dict[str, Any]]:
    """Ray evaluator (2 local workers, 2 shards) vs the local evaluator on the same generation, and bytes sent.

    CartPole-v1, N=500, 3 episodes per individual, 4-64-64-2 MLP, the GA's slots, torch threads 1 everywhere.
    Rounds are interleaved (local, local with 2 shards, ray) so machine load hits all alike; the best round
    of each is compared. Goals: Ray frames/s >= 0.8 x local (despite the messaging) and <= 1 KB sent per
    individual (genomes, not weights), also for genomes 1000 generations deep.
    """
    torch.set_num_threads(1)
    cfg = _bench_config()
    env_cfg, a = cfg.env, cfg.algo
    net = build_network(env_cfg, a.network)
    store = ParamStore(NoiseTable(0, a.noise_table_size, net.n_params), net.init_scale(), a.mutation_power)
    slots = min(int(a.slots), 500 * 3)  # the project default (conf/algo/ga.yaml)
    pop = _bench_population(env_cfg, net, store, 500, 2 if quick else 4, slots)
    started = not ray.is_initialized()
    if started:
        start_local(2, include_dashboard=False)  # as evaluator=ray starts one: loopback only
    local1 = LocalEvaluator(env_cfg, net, store, slots)
    local2 = LocalEvaluator(env_cfg, net, store, slots, shards=2)
    remote = RayEvaluator({"kind": "ray", "num_workers": 2}, env_cfg, net, store, slots, shards=2)
    fps: dict[str, list[float]] = {"local": [], "local_2_shards": [], "ray": []}
    results: dict[str, PopulationResult] = {}
    try:
        for rnd in range(1 + (2 if quick else 5)):  # round 0 warms caches and is not timed
            for name, ev in (("local", local1), ("local_2_shards", local2), ("ray", remote)):
                ledger = Ledger()
                t0 = time.perf_counter()
                results[name] = ev.evaluate(pop, 3, 7, ledger)
                if rnd:
                    fps[name].append(ledger.frames / (time.perf_counter() - t0))
        sent = remote.bytes_sent / remote.individuals_sent
        received = len(pickle.dumps(results["ray"].returns)) + len(pickle.dumps(results["ray"].lengths))
    finally:
        remote.close()
        local1.close()
        local2.close()
        if started:
            ray.shutdown()
    identical = np.array_equal(results["ray"].returns, results["local_2_shards"].returns, equal_nan=True)
    best = {k: max(v) for k, v in fps.items()}
    # Genomes deep into a long run: 20 parents with 1000-offset chains and their 500 children.
    rng = np.random.default_rng(0)
    parents = [tuple(int(o) for o in store.noise.sample_offsets(rng, 1000)) for _ in range(20)]
    deep = [(*parents[i % 20], int(o)) for i, o in enumerate(store.noise.sample_offsets(rng, 500))]
    deep_bytes = len(
        pickle.dumps(ShardTask(CompactGenomes.encode(deep), 3, 0, None), pickle.HIGHEST_PROTOCOL)
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    chain = max(len(g) for g in pop)
    return [
        {
            "name": "ray_vs_local",
            "project_fps": best["ray"],
            "reference_fps": best["local"],
            "ratio": best["ray"] / best["local"],
            "goal": 0.8,
            "detail": (
                f"frames/s ray (2 workers, 2 shards) {best['ray']:,.0f}, local {best['local']:,.0f}, local 2 shards "
                f"{best['local_2_shards']:,.0f} (ray/local-2-shards {best['ray'] / best['local_2_shards']:.2f}); "
                f"ray == local-2-shards: {identical}; load avg {load:.1f}"
            ),
        },
        {
            "name": "ray_bytes_per_individual",
            "bytes_sent": sent,
            "bytes_sent_deep": deep_bytes / len(deep),
            "ratio": 1024 / max(sent, deep_bytes / len(deep)),
            "goal": 1.0,
            "detail": (
                f"sent {sent:.1f} B/individual (genomes up to {chain} offsets), {deep_bytes / len(deep):.1f} B for "
                f"1000-generation genomes, vs {4 * net.n_params:,} B of float32 weights; received "
                f"{received / len(pop):.1f} B/individual. ratio = 1024 B / worst case"
            ),
        },
    ]
