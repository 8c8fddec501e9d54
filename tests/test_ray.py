"""evaluator=ray: identical to the local evaluator for the same shards, budget cap exact, genomes tiny on the wire.

One local Ray instance (2 CPUs) and one pair of workers serve the whole session: starting them takes 10-20 s
on two shared cores (so the tests that need them are marked slow: `pytest -m slow tests/test_ray.py`),
evaluating a small CartPole population then takes milliseconds. The sharding they rely on is tested fast.
"""

from __future__ import annotations

import csv
import ipaddress
import itertools
import logging
import os
import pickle
import re
from collections.abc import Iterator

import numpy as np
import pytest
from omegaconf import DictConfig

ray = pytest.importorskip("ray")

from neuroevo_bench import ray_evaluator, records  # noqa: E402
from neuroevo_bench.config import ConfigError  # noqa: E402
from neuroevo_bench.envs import Ledger  # noqa: E402
from neuroevo_bench.evaluation import (  # noqa: E402
    LocalEvaluator,
    PopulationResult,
    shard_bounds,
    shard_caps,
    shard_seed,
)
from neuroevo_bench.genome import Genome, NoiseTable, ParamStore  # noqa: E402
from neuroevo_bench.policies import build_network  # noqa: E402
from neuroevo_bench.ray_evaluator import (  # noqa: E402
    CompactGenomes,
    RayEvaluator,
    RaySettings,
    ShardTask,
    connect,
    start_local,
)
from neuroevo_bench.runner import run  # noqa: E402
from tests.conftest import process_tree  # noqa: E402

SLOTS = 16
SHARDS = 3
SEED = 123
# Half a CPU each: these workers and those of a whole run (below) fit the 2-CPU test cluster together.
WORKERS = {"kind": "ray", "num_workers": 2, "cpus_per_worker": 0.5}


@pytest.fixture(scope="session")
def ray_session() -> Iterator[bool]:
    """A local Ray instance for the test session, started as `evaluator=ray` starts one (on the loopback
    interface only); True if this fixture started it, False if the process already had one (used as it is)."""
    started = not ray.is_initialized()
    if started:
        start_local(2, include_dashboard=False, log_to_driver=False)
    yield started
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def cartpole(make_cfg) -> tuple[DictConfig, object, ParamStore]:
    cfg = make_cfg("algo=ga", "env=CartPole", "algo.network.hidden=[16]")
    net = build_network(cfg.env, cfg.algo.network)
    store = ParamStore(NoiseTable(0, 2**16, net.n_params), net.init_scale(), 0.02)
    return cfg.env, net, store


@pytest.fixture(scope="module")
def population(cartpole) -> list[Genome]:
    """Fresh networks, children and grandchildren: every kind of genome a GA generation holds."""
    _, _, store = cartpole
    rng = np.random.default_rng(0)
    fresh = [(int(o),) for o in store.noise.sample_offsets(rng, 10)]
    children = [(*fresh[i % 4], int(o)) for i, o in enumerate(store.noise.sample_offsets(rng, 16))]
    grand = [(*children[i % 3], int(o)) for i, o in enumerate(store.noise.sample_offsets(rng, 11))]
    return fresh + children + grand


@pytest.fixture(scope="module")
def evaluators(ray_session, cartpole) -> Iterator[tuple[LocalEvaluator, RayEvaluator]]:
    env_cfg, net, store = cartpole
    # The Ray workers rebuild the noise table and parameters themselves: give the local evaluator its own
    # store too, so that nothing is shared between the two paths but the seed.
    local_store = ParamStore(NoiseTable(0, 2**16, net.n_params), net.init_scale(), 0.02)
    local = LocalEvaluator(env_cfg, net, local_store, SLOTS, shards=SHARDS)
    remote = RayEvaluator(WORKERS, env_cfg, net, store, SLOTS, shards=SHARDS)
    yield local, remote
    remote.close()
    local.close()


def assert_same(a: PopulationResult, b: PopulationResult) -> None:
    np.testing.assert_array_equal(a.returns, b.returns)  # NaN == NaN here: unfinished episodes match too
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert (a.frames, a.agent_steps, a.complete) == (b.frames, b.agent_steps, b.complete)


@pytest.mark.slow
def test_ray_matches_local_evaluator(evaluators, population):
    local, remote = evaluators
    l_ledger, r_ledger = Ledger(), Ledger()
    a = local.evaluate(population, 2, SEED, l_ledger)
    b = remote.evaluate(population, 2, SEED, r_ledger)
    assert_same(a, b)
    assert a.complete and not np.isnan(a.returns).any()
    assert a.returns.shape == (len(population), 2)
    assert l_ledger.frames == r_ledger.frames == a.frames == int(a.lengths.sum())
    assert len({w["pid"] for w in remote.worker_info}) == 2  # really two remote workers
    # A different seed gives different episodes (the comparison above is not trivially true).
    c = remote.evaluate(population, 2, SEED + 1, Ledger())
    assert not np.array_equal(a.returns, c.returns)


@pytest.mark.slow
@pytest.mark.parametrize("spent", [0, 500])
def test_budget_cap_holds_and_cuts_identically(evaluators, population, spent):
    local, remote = evaluators
    full = local.evaluate(population, 2, SEED, Ledger()).frames
    cap = spent + full // 2
    l_ledger, r_ledger = Ledger(cap=cap, frames=spent), Ledger(cap=cap, frames=spent)
    a = local.evaluate(population, 2, SEED, l_ledger)
    b = remote.evaluate(population, 2, SEED, r_ledger)
    assert_same(a, b)
    assert not a.complete and np.isnan(a.returns).any()
    assert l_ledger.frames == r_ledger.frames <= cap
    # Each shard stayed inside its share of the remaining budget, so at most one step of each shard's
    # active slots was left unused.
    assert cap - l_ledger.frames < SHARDS * SLOTS


@pytest.mark.slow
def test_an_exhausted_budget_steps_nothing(evaluators, population):
    _, remote = evaluators
    ledger = Ledger(cap=1000, frames=1000)
    res = remote.evaluate(population, 2, SEED, ledger)
    assert not res.complete and res.frames == 0 and ledger.frames == 1000


@pytest.mark.slow
def test_fewer_individuals_than_shards(evaluators, population):
    local, remote = evaluators
    few = population[:2]  # shard 2 is empty, as for a small set of elite candidates
    assert_same(local.evaluate(few, 3, SEED, Ledger()), remote.evaluate(few, 3, SEED, Ledger()))


def test_shards_are_independent_plain_evaluations(cartpole, population):
    """Shard [lo, hi) of a sharded evaluation is the unsharded evaluation of its part from the seed of its first
    task, `shard_seed(seed, lo * episodes)`: every task keeps its seed."""
    env_cfg, net, store = cartpole
    sharded = LocalEvaluator(env_cfg, net, store, SLOTS, shards=SHARDS)
    plain = LocalEvaluator(env_cfg, net, store, SLOTS)
    try:
        whole = sharded.evaluate(population, 2, SEED, Ledger())
        for lo, hi in shard_bounds(len(population), SHARDS):
            part = plain.evaluate(population[lo:hi], 2, shard_seed(SEED, lo * 2), Ledger())
            np.testing.assert_array_equal(whole.returns[lo:hi], part.returns)
    finally:
        sharded.close()
        plain.close()


@pytest.mark.parametrize("shards", [1, 3])
def test_sharded_local_evaluation_never_passes_the_cap(cartpole, population, shards):
    env_cfg, net, store = cartpole
    ev = LocalEvaluator(env_cfg, net, store, SLOTS, shards=shards)
    try:
        full = ev.evaluate(population, 2, SEED, Ledger()).frames
        for cap in (full - 1, full // 3, 5):
            ledger = Ledger(cap=cap)
            res = ev.evaluate(population, 2, SEED, ledger)
            assert not res.complete and res.frames == ledger.frames <= cap
    finally:
        ev.close()


@pytest.mark.parametrize(("n", "shards"), [(10, 3), (2, 3), (500, 2), (0, 4)])
def test_shard_bounds_cover_the_population_in_order(n, shards):
    bounds = shard_bounds(n, shards)
    assert len(bounds) == shards and bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize(("remaining", "shards"), [(1000, 3), (2, 3), (0, 2), (None, 2)])
def test_shard_caps_share_the_remaining_budget(remaining, shards):
    caps = shard_caps(remaining, shards)
    assert len(caps) == shards
    if remaining is None:
        assert caps == [None] * shards
    else:
        assert sum(caps) == remaining and max(caps) - min(caps) <= 1


def test_shard_seeds_stay_below_test_seeds():
    assert shard_seed(7, 0) == 7 and shard_seed(7, 2) == 9
    assert shard_seed(2**31 - 1, 1) < 2**31


def test_compact_genomes_round_trip_and_stay_small(population):
    assert CompactGenomes.encode(population).decode() == population
    # 1000 generations deep: 20 parents, 500 children. Still far below 1 KB per individual.
    rng = np.random.default_rng(0)
    parents = [tuple(rng.integers(0, 2**22, 1000).tolist()) for _ in range(20)]
    deep = [(*parents[i % 20], int(o)) for i, o in enumerate(rng.integers(0, 2**22, 500))]
    compact = CompactGenomes.encode(deep)
    assert compact.decode() == deep
    per_individual = len(pickle.dumps(ShardTask(compact, 3, 0, None), pickle.HIGHEST_PROTOCOL)) / len(deep)
    assert per_individual <= 1024
    assert per_individual < len(pickle.dumps(deep)) / len(deep) / 10  # the shared prefixes are what saves


@pytest.mark.slow
def test_bytes_sent_per_individual_are_counted(evaluators, population):
    _, remote = evaluators
    before_b, before_n = remote.bytes_sent, remote.individuals_sent
    remote.evaluate(population, 2, SEED, Ledger())
    sent = (remote.bytes_sent - before_b) / (remote.individuals_sent - before_n)
    assert 8 < sent < 200  # a few offsets per genome plus per-shard framing; weights would be ~0.5 KB


@pytest.mark.slow
def test_workers_the_cluster_cannot_place_fail_clearly(ray_session, cartpole):
    env_cfg, net, store = cartpole
    too_big = {"kind": "ray", "num_workers": 1, "cpus_per_worker": 64, "ready_timeout_s": 1}
    with pytest.raises(TimeoutError, match=r"evaluator.cpus_per_worker=64 CPUs and the cluster has 2 CPUs"):
        RayEvaluator(too_big, env_cfg, net, store, SLOTS)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"kind": "ray", "num_workers": 0}, "evaluator.num_workers=0"),
        ({"kind": "ray", "num_wrokers": 2}, "unknown key(s) ['num_wrokers']"),
        ({"kind": "ray", "cpus_per_worker": -1}, "evaluator.cpus_per_worker=-1"),
        ({"kind": "ray", "address": 5}, "evaluator.address=5"),
        ({"kind": "ray", "address": ""}, "evaluator.address=''"),
        ({"kind": "ray", "ready_timeout_s": -1}, "evaluator.ready_timeout_s=-1 is invalid"),
    ],
)
def test_bad_ray_settings_fail_clearly(cfg, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RaySettings.from_config(cfg)


def test_ray_config_group_composes(make_cfg):
    cfg = make_cfg("evaluator=ray", "evaluator.num_workers=4", "algo.shards=8")
    s = RaySettings.from_config(cfg.evaluator)
    assert (s.address, s.num_workers, s.local_cpus, cfg.algo.shards) == ("auto", 4, 4, 8)


@pytest.mark.slow
def test_ga_run_on_ray_is_identical_to_local(ray_session, make_cfg, tmp_path):
    """Whole runs: same config and seed, evaluator=ray vs local -> the same curve and the same champion."""
    common = (
        "algo=ga",
        "env=CartPole",
        "seed=3",
        "algo.population=24",
        "algo.truncation=4",
        "algo.episodes_per_fitness=2",
        "algo.elite_candidates=3",
        "algo.elite_episodes=2",
        "algo.slots=16",
        "algo.shards=2",
        "algo.noise_table_size=65536",
        "algo.network.hidden=[16]",
        "budget.frames=8000",
        "eval.every_frames=2000",
        "eval.episodes=2",
        "progress_every_s=1000",
    )
    infos = {}
    for kind in ("local", "ray"):
        extra = ("evaluator.num_workers=2", "evaluator.cpus_per_worker=0.5") if kind == "ray" else ()
        cfg = make_cfg(*common, f"evaluator={kind}", *extra)
        infos[kind] = run(cfg, tmp_path / kind)
    for key in ("status", "train_frames", "agent_steps", "final_score"):
        assert infos["local"][key] == infos["ray"][key], key
    assert infos["ray"]["status"] == "ok" and infos["ray"]["train_frames"] <= 8000
    curves = {}
    for kind in infos:
        with open(tmp_path / kind / records.CURVE_CSV, newline="") as f:
            rows = list(csv.DictReader(f))
        curves[kind] = [{k: v for k, v in r.items() if "wall" not in k} for r in rows]  # all but timings
    assert len(curves["local"]) >= 3 and curves["local"] == curves["ray"]
    champions = {k: records.read_json(tmp_path / k / "champion.json")["genome"] for k in infos}
    assert champions["local"] == champions["ray"]


# --- what listens: a local instance on the loopback interface only, a cluster joined as Ray joins it -----------
def listening_tcp(pids: set[int]) -> list[tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(pid, address, port) of every listening TCP socket the processes `pids` hold: their socket inodes
    (/proc/<pid>/fd) looked up in /proc/net/tcp and tcp6 (state 0A = LISTEN)."""
    owner: dict[int, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                owner[int(link[8:-1])] = pid
    found = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/net/{table}") as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], int(fields[9])
                if state != "0A" or inode not in owner:
                    continue
                host, port = local.split(":")
                raw = bytes.fromhex(host)  # 32-bit words in host (little-endian) order
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append((owner[inode], ipaddress.ip_address(raw), int(port, 16)))
    return found


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1, as gRPC binds an IPv4 address
    return (mapped or address).is_loopback


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux /proc")
def test_a_local_ray_listens_on_the_loopback_interface_only(ray_session, evaluators):
    """Every TCP port the local Ray opens (GCS, raylet, agents, metrics, the workers' and this driver's core
    workers) is bound to the loopback interface; before, about a dozen listened on all interfaces."""
    if not ray_session:
        pytest.skip("this process had its own Ray before the test session")
    _, remote = evaluators
    tree = process_tree(os.getpid())
    sockets = listening_tcp(set(tree))
    listing = "\n".join(f"{tree[pid]} (pid {pid}) {addr}:{port}" for pid, addr, port in sockets)
    exposed = [(tree[pid], str(addr), port) for pid, addr, port in sockets if not is_loopback(addr)]
    assert not exposed, f"listening beyond this machine: {exposed}\n{listing}"
    # Not vacuous: the core processes, both workers and the driver are among the listeners.
    holders = {pid for pid, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= {tree[pid] for pid in holders}, listing
    assert {w["pid"] for w in remote.worker_info} | {os.getpid()} <= holders, listing
    assert len(sockets) >= 10, listing
    assert ray.util.get_node_ip_address() == ray_evaluator.LOOPBACK


@pytest.mark.slow
def test_auto_never_joins_another_runs_local_instance(ray_session, monkeypatch):
    """`evaluator.address=auto` joins RAY_ADDRESS or the cluster `ray start` began, as Ray's own ray.init() does;
    another run's private instance (here: the session's) is not joined. Ray's address="auto" would pick it,
    resolve its loopback address to the outward IP and wait forever."""
    from ray._common.utils import get_ray_address_file
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if os.path.exists(get_ray_address_file(None)):
        pytest.skip("a `ray start` cluster is registered on this machine")
    services.find_gcs_addresses.cache_clear()
    assert services.find_gcs_addresses()  # Ray sees the session's instance...
    assert ray_evaluator._address_to_join() is None  # ...and auto starts its own instead


class FakeInit:
    """Stands in for ray.init: records (address, kwargs, Ray's cluster-mode flag during the call)."""

    def __init__(self, joinable: bool) -> None:
        self.joinable = joinable
        self.calls: list[tuple[str | None, dict, bool]] = []

    def __call__(self, address: str | None = None, **kwargs) -> None:
        import ray._private.ray_constants as ray_constants

        self.calls.append((address, kwargs, ray_constants.ENABLE_RAY_CLUSTER))
        if address != "local" and not self.joinable:
            raise ConnectionError("nothing there")


@pytest.mark.parametrize(
    ("address", "cluster", "joinable", "expected"),
    [
        ("local", None, True, ["local"]),
        (None, None, True, ["local"]),
        ("auto", None, True, ["local"]),  # no RAY_ADDRESS, no `ray start`: a local instance
        ("auto", "10.0.0.1:6379", True, ["auto"]),  # a cluster: joined as before
        ("auto", "10.0.0.1:6379", False, ["auto", "local"]),  # it does not answer: a local instance
        ("10.0.0.1:6379", None, True, ["10.0.0.1:6379"]),
        ("ray://10.0.0.1:10001", None, True, ["ray://10.0.0.1:10001"]),
    ],
)
def test_only_a_local_start_is_pinned_to_loopback(monkeypatch, address, cluster, joinable, expected):
    import ray._private.ray_constants as ray_constants

    fake = FakeInit(joinable)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "127.0.0.1")
    monkeypatch.setattr(ray_evaluator, "_address_to_join", lambda: cluster)
    flag = ray_constants.ENABLE_RAY_CLUSTER
    s = RaySettings(address=address, num_workers=3, object_store_memory=10**8)
    assert connect(s) is True
    assert [a for a, _, _ in fake.calls] == expected
    for a, kwargs, during in fake.calls:
        assert kwargs["include_dashboard"] is False
        if a == "local":
            assert kwargs["_node_ip_address"] == "127.0.0.1" and during is False
            assert (kwargs["num_cpus"], kwargs["object_store_memory"]) == (3, 10**8)
        else:  # joining: Ray's own addresses, node IP and authentication, nothing of ours
            assert "_node_ip_address" not in kwargs and "num_cpus" not in kwargs and during is flag
    assert ray_constants.ENABLE_RAY_CLUSTER is flag  # restored


def test_a_local_start_off_loopback_is_reported(monkeypatch, caplog):
    monkeypatch.setattr(ray, "init", FakeInit(True))
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "192.0.2.2")
    with caplog.at_level(logging.WARNING, logger="neuroevo_bench.ray_evaluator"):
        start_local(1)
    assert "192.0.2.2, not on the loopback interface" in caplog.text
