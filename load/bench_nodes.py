"""Benchmark (`make bench-nodes`): sessions across nodes, measured on two real nodes sharing one
Redis (or, with `--cluster`, a Redis Cluster of 3 masters) and one MongoDB-protocol server, all
started here on 127.0.0.1:

1. cross-node delivery latency beside same-node, the baseline (two sockets per interview, one
   per node, held by the same client);
2. resume after `kill -9` of a node: disconnect -> welcome and -> first new event, seq checks;
3. a reconnect storm to the surviving node: every socket says hello at once;
4. Redis commands and round trips per engine message (MONITOR + INFO commandstats).

    .venv/bin/python -m load.bench_nodes            # full run, about 8 minutes on 2 cores
    .venv/bin/python -m load.bench_nodes --quick    # a small run, under a minute
    .venv/bin/python -m load.bench_nodes --cluster  # either of them on a Redis Cluster

It prints a table (medians over repetitions, the baseline and the target beside each figure)
and writes the raw numbers to load/results/nodes.json (nodes-cluster.json with `--cluster`).
Figures are reported, never asserted: on a small shared machine the clients, both nodes, Redis
and the database compete for the same cores.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import time
from dataclasses import asdict, dataclass
from queue import Empty
from typing import Any

from load import nodes_clients
from load.harness import HOST, Process, ProductNode, inherited_env, raise_nofile, wait_until
from load.measure import RESULTS as RESULTS_DIR
from load.measure import log, machine, summary, write_results
from load.nodes_cluster import Cluster, Pool, build_pool, count_diff, heads, log_counts
from load.nodes_report import print_report
from load.redis_monitor import count_commands

RESULTS = RESULTS_DIR / "nodes.json"
RESULTS_CLUSTER = RESULTS_DIR / "nodes-cluster.json"
CTX = multiprocessing.get_context("spawn")
LATENCY_WORKERS = 2


@dataclass(frozen=True)
class Plan:
    name: str
    reps: int
    users: int
    pool: int  # interviews started up front, shared by the scenarios
    light_interviews: int  # scenario 1 at a light load...
    light_answers: int
    light_think: tuple[float, float]  # seconds before each answer
    latency_interviews: int  # ...and at a few hundred interviews
    latency_answers: int
    think: tuple[float, float]
    commands_interviews: int
    commands_answers: int
    kill_clients: int
    kill_answer_within: float  # each client answers at a random moment in this window...
    kill_after: float  # ...and the node dies this long after the window opened
    storm_sockets: int  # the storm with the product's pool
    storm_workers: int
    storm_ladder: tuple[int, ...]  # storms with the larger pool, to find what fits in 10 s
    loaded_with_product_pool: bool  # the loaded latency run once as configured, too


QUICK = Plan(
    name="quick",
    reps=1,
    users=10,
    pool=12,
    light_interviews=0,
    light_answers=0,
    light_think=(0.0, 0.0),
    latency_interviews=8,
    latency_answers=1,
    think=(0.1, 0.3),
    commands_interviews=3,
    commands_answers=1,
    kill_clients=8,
    kill_answer_within=0.5,
    kill_after=0.6,
    storm_sockets=150,
    storm_workers=2,
    storm_ladder=(150,),
    loaded_with_product_pool=False,
)
FULL = Plan(
    name="full",
    reps=3,
    users=250,
    pool=500,
    light_interviews=20,
    light_answers=2,
    light_think=(0.3, 1.0),
    latency_interviews=300,
    latency_answers=1,
    think=(0.5, 10.0),  # 300 answers spread over ~10 s: ~1,000 events/s offered
    commands_interviews=20,
    commands_answers=3,
    kill_clients=200,
    kill_answer_within=0.5,
    kill_after=0.6,
    storm_sockets=5000,
    storm_workers=4,
    storm_ladder=(500, 1000, 2000, 5000),
    loaded_with_product_pool=True,
)
# The product's Redis pool refuses a 101st concurrent command (redis-py's default ConnectionPool:
# max_connections=100, raises instead of waiting); the storm is run once as configured and then
# with a larger pool, set through REDIS_URL so that no product code changes.
STORM_POOL = "max_connections=10000"
BURST_THINK = (0.5, 1.5)  # the product-pool run: 300 answers within a second

# EVAL_LEASE_TTL_SEC and ORPHAN_SWEEP_SEC keep the product's defaults (10 s, 2 s): shorter leases
# expire under load on 2 cores (the event loop lags past a third of the TTL) and evaluations that
# are still running get restarted.
NODE_SETTINGS = {
    "QUESTIONS_PER_INTERVIEW": "20",  # long interviews: every scenario continues the same ones
    "LOCAL_EVALUATOR_DELAY_SEC": "0.02",  # a feedback.delta every 20 ms while evaluating
}


def _take(queue: Any, count: int, timeout: float, processes: list[Any]) -> list[Any]:
    """`count` items from a worker queue; fails early when every worker has died."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(items) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers gave {len(items)} of {count} reports in {timeout} s")
        try:
            items.append(queue.get(timeout=0.5))
        except Empty:
            if all(p.exitcode not in (None, 0) for p in processes):
                codes = [p.exitcode for p in processes]
                raise RuntimeError(f"every worker died (exit codes {codes})") from None
    return items


def _join(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


def _cpu(nodes: list[ProductNode]) -> dict[str, float]:
    return {node.name: node.tree.cpu_seconds() if node.alive() else 0.0 for node in nodes}


# --- 1. cross-node delivery latency --------------------------------------------------------------


def run_latency(
    cluster: Cluster,
    pool: Pool,
    plan: Plan,
    answers: int | None = None,
    size: int | None = None,
    offset: int = 0,
    budget: float | None = None,
    think: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Two sockets per interview, one on each node, held by the same client process (so the
    client's own scheduling delays both alike); even interviews answer on A, odd ones on B.
    Each socket resumes just before the interview's current question (no long replays).
    """
    assert cluster.a is not None and cluster.b is not None
    size = size or plan.latency_interviews
    answers = answers or plan.latency_answers
    nodes = [cluster.a, cluster.b]
    chosen = pool[offset : offset + size]
    starts = [max(0, head - 1) for head in heads(cluster.b, chosen)]
    specs: list[list[Any]] = [[] for _ in range(LATENCY_WORKERS)]
    for key, ((token, interview_id), start) in enumerate(zip(chosen, starts, strict=True)):
        for side, node in enumerate(nodes):
            specs[(key // 2) % LATENCY_WORKERS].append(
                (key, token, interview_id, node.address, key % 2 == side, start)
            )
    ready, results, go = CTX.Queue(), CTX.Queue(), CTX.Event()
    done = CTX.Value("i", 0)
    budget = budget or 60 + answers * 30 + (think or plan.think)[1] * answers
    processes = [
        CTX.Process(
            target=nodes_clients.latency_worker,
            args=(spec, answers, think or plan.think, ready, go, done, size, results, budget),
        )
        for spec in specs
    ]
    for process in processes:
        process.start()
    try:
        sum(_take(ready, len(processes), 120, processes))
        cpu_before, started, go_wall = _cpu(nodes), time.monotonic(), time.time()
        go.set()
        outs = _take(results, len(processes), budget + 30, processes)
        elapsed = time.monotonic() - started
        cpu_after = _cpu(nodes)
    finally:
        go.set()
        _join(processes)
    sockets = [s for out in outs for s in out["sockets"]]
    report = latency_figures(sockets)
    report["elapsed_sec"] = round(elapsed, 2)
    report["events_per_sec"] = round(report["events"] / elapsed, 1) if elapsed else None
    report["node_cpu_sec"] = {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after}
    report["wall"] = [go_wall, min(out["closing_at"] for out in outs)]
    return report


def latency_figures(sockets: list[dict[str, Any]]) -> dict[str, Any]:
    by_key: dict[int, dict[bool, dict[str, Any]]] = {}
    for sock in sockets:
        by_key.setdefault(sock["key"], {})[sock["drives"]] = sock
    same_accept, cross_accept, gap_all, gap_delta = [], [], [], []
    events = 0
    errors: list[str] = []
    for pair in by_key.values():
        same, cross = pair.get(True), pair.get(False)
        if same is None or cross is None:
            continue
        errors += same["errors"] + cross["errors"]
        live_same = {f[0]: f for f in same["frames"] if f[3] and f[0] is not None}
        live_cross = {f[0]: f for f in cross["frames"] if f[3] and f[0] is not None}
        events += len(live_same)
        for seq, frame in live_same.items():
            other = live_cross.get(seq)
            if other is None:
                continue
            gap_all.append(other[2] - frame[2])
            if frame[1] == "feedback.delta":
                gap_delta.append(other[2] - frame[2])
            if frame[1] == "answer.accepted" and frame[4] in same["sends"]:
                sent = same["sends"][frame[4]]
                same_accept.append(frame[2] - sent)
                cross_accept.append(other[2] - sent)
    missing = 0
    for pair in by_key.values():
        if True in pair and False in pair:
            seen = {g[0] for g in pair[False]["frames"]}
            missing += sum(
                1 for f in pair[True]["frames"] if f[3] and f[0] is not None and f[0] not in seen
            )
    resets = doubled = sent = scored = 0
    for pair in by_key.values():
        if True in pair:
            kinds = [(f[1], f[4]) for f in pair[True]["frames"] if f[3]]
            resets += sum(1 for kind, _ in kinds if kind == "feedback.reset")
            dones = [q for kind, q in kinds if kind == "feedback.done"]
            doubled += len(dones) - len(set(dones))
            sent += len(pair[True]["sends"])
            scored += len(set(pair[True]["sends"]) & set(dones))
    return {
        "interviews": len(by_key),
        "events": events,
        "answers_sent": sent,
        "answers_scored": scored,  # feedback.done seen before the run's budget ran out
        "feedback_resets": resets,  # none expected: no node dies here
        "questions_scored_twice": doubled,
        "same_node_accept_ms": summary(same_accept),
        "cross_node_accept_ms": summary(cross_accept),
        "cross_minus_same_ms": summary(gap_all),
        "cross_minus_same_delta_ms": summary(gap_delta),
        "events_missing_on_cross_socket": missing,
        "setup_hello_retries": sum(sock["join_retries"] for sock in sockets),
        "errors": sorted(set(errors)),
    }


# --- 2. resume after kill -9 -----------------------------------------------------------------


def run_kill(cluster: Cluster, pool: Pool, plan: Plan) -> dict[str, Any]:
    if cluster.a is None or not cluster.a.alive():
        log("restarting node A")
        cluster.restart("a")
    assert cluster.a is not None and cluster.b is not None
    chosen = pool[len(pool) - plan.kill_clients :]
    starts = [max(0, head - 1) for head in heads(cluster.b, chosen)]
    specs = [
        (k, token, iv, start)
        for k, ((token, iv), start) in enumerate(zip(chosen, starts, strict=True))
    ]
    halves = [[spec for spec in specs if spec[0] % 2 == side] for side in (0, 1)]
    ready, results, go = CTX.Queue(), CTX.Queue(), CTX.Event()
    budget = 90.0
    processes = [
        CTX.Process(
            target=nodes_clients.kill_worker,
            args=(
                half,
                cluster.a.address,
                cluster.b.address,
                plan.kill_answer_within,
                ready,
                go,
                results,
                budget,
            ),
        )
        for half in halves
    ]
    for process in processes:
        process.start()
    try:
        sum(_take(ready, len(processes), 120, processes))
        go.set()
        time.sleep(plan.kill_after)
        killed_at = time.monotonic()
        cluster.a.kill()
        outs = _take(results, len(processes), budget + 30, processes)
    finally:
        go.set()
        _join(processes)
    clients = [c for out in outs for c in out["clients"]]
    return kill_figures(clients, killed_at)


MID_STREAM = ("answer.accepted", "feedback.delta", "feedback.reset")


def kill_figures(clients: list[dict[str, Any]], killed_at: float) -> dict[str, Any]:
    welcome: list[float] = []
    first_new: list[float] = []
    first_mid: list[float] = []
    first_waiting: list[float] = []
    kill_welcome: list[float] = []
    problems: list[dict[str, Any]] = []
    snapshots = 0
    for c in clients:
        seqs = [f[0] for f in c["frames"] if f[0] is not None]
        kinds = [f[1] for f in c["frames"]]
        snapshots += kinds.count("snapshot")
        duplicates = len(seqs) - len(set(seqs))
        expected = set(range(min(seqs), max(seqs) + 1)) if seqs else set()
        gaps = sorted(expected - set(seqs))
        out_of_order = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a)
        if duplicates or gaps or out_of_order or c.get("error") or not c.get("finished"):
            problems.append(
                {
                    "key": c["key"],
                    "duplicates": duplicates,
                    "gaps": gaps[:20],
                    "out_of_order": out_of_order,
                    "error": c.get("error"),
                    "finished": c.get("finished"),
                    "errors": c["errors"][:5],
                }
            )
        if c.get("disconnect") is None or c.get("welcome") is None:
            continue
        welcome.append(c["welcome"] - c["disconnect"])
        kill_welcome.append(c["welcome"] - killed_at)
        if c.get("first_new") is not None:
            value = c["first_new"] - c["disconnect"]
            first_new.append(value)
            (first_mid if c.get("at_kill") in MID_STREAM else first_waiting).append(value)
    retried = [c for c in clients if (c.get("attempts") or 1) > 1 or c["join_retries"]]
    refused_after = [x for c in clients for x in c.get("refused_after_sec", [])]
    reasons: dict[str, int] = {}
    for c in retried:
        for error in c["errors"]:
            reasons[error] = reasons.get(error, 0) + 1
    return {
        "clients": len(clients),
        "resumed": len(welcome),
        "clients_that_retried": len(retried),
        "retry_reasons": reasons,
        "refused_after_ms": summary(refused_after),
        "disconnect_to_welcome_ms": summary(welcome),
        "kill_to_welcome_ms": summary(kill_welcome),
        "disconnect_to_first_new_ms": summary(first_new),
        "first_new_mid_stream_ms": summary(first_mid),
        "first_new_awaiting_ms": summary(first_waiting),
        "snapshots": snapshots,
        "clients_with_problems": len(problems),
        "problems": problems[:20],
    }


# --- 3. reconnect storm -------------------------------------------------------------------------


def run_storm(cluster: Cluster, pool: Pool, plan: Plan, sockets: int) -> dict[str, Any]:
    node = cluster.b
    assert node is not None
    last = heads(node, pool)
    specs: list[list[tuple[str, str, int]]] = [[] for _ in range(plan.storm_workers)]
    for j in range(sockets):
        token, interview_id = pool[j % len(pool)]
        specs[j % plan.storm_workers].append((token, interview_id, last[j % len(pool)]))
    ready, results, release = CTX.Queue(), CTX.Queue(), CTX.Event()
    go_at = CTX.Value("d", 0.0)
    budget = 240.0
    processes = [
        CTX.Process(
            target=nodes_clients.storm_worker,
            args=(spec, node.address, ready, go_at, release, results, budget),
        )
        for spec in specs
    ]
    for process in processes:
        process.start()
    try:
        sum(_take(ready, len(processes), 120, processes))
        rss_before, cpu_before = node.tree.rss_bytes() / 2**20, node.tree.cpu_seconds()
        go_at.value = time.monotonic() + 1.0
        welcomed_count = sum(_take(ready, len(processes), budget, processes))
        cpu = node.tree.cpu_seconds() - cpu_before
        rss_after = node.tree.rss_bytes() / 2**20
        release.set()
        outs = _take(results, len(processes), 60, processes)
    finally:
        release.set()
        _join(processes)
    start = go_at.value
    welcomed = [w - start for out in outs for w in out["welcomed"] if w is not None]
    opened = [o - start for out in outs for o in out["opened"] if o is not None]
    failures: dict[str, int] = {}
    for out in outs:
        for name, count in out["failures"].items():
            failures[name] = failures.get(name, 0) + count
    return {
        "sockets": sockets,
        "interviews": min(len(pool), sockets),
        "welcomed": welcomed_count,
        "all_welcomed": len(welcomed) == sockets,
        "last_welcome_sec": round(max(welcomed), 3) if welcomed else None,
        "welcome_ms": summary(welcomed),
        "connected_ms": summary(opened),
        "failures": failures,
        "still_open_at_end": sum(out["open_at_end"] for out in outs),
        "node_cpu_sec": round(cpu, 2),
        "node_rss_mb": {"before": round(rss_before), "after": round(rss_after)},
    }


def settle(node: ProductNode, timeout: float = 30.0) -> None:
    """Wait until the node is idle again (closed sockets unsubscribed)."""
    deadline = time.monotonic() + timeout
    last = node.tree.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = node.tree.cpu_seconds()
        if now - last < 0.05:
            return
        last = now


# --- 4. Redis commands per engine message ----------------------------------------------------


def run_commands(cluster: Cluster, pool: Pool, plan: Plan) -> dict[str, Any]:
    """A small latency run under MONITOR (on every master of a cluster): every command, and
    which ones ran inside Lua."""
    offset = min(plan.latency_interviews, len(pool) - plan.commands_interviews)
    ids = {iv for _, iv in pool[offset : offset + plan.commands_interviews]}
    servers = cluster.redis_servers
    monitors = [
        Process(
            f"redis-cli monitor {server.port}",
            ["redis-cli", "-h", HOST, "-p", str(server.port), "monitor"],
            env=inherited_env(),
            log=cluster.tmp / f"monitor-{server.port}.txt",
        )
        for server in servers
    ]
    stats: dict[str, int] = {}
    commandstats: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(server.client()) for server in servers]
        for monitor in monitors:
            stack.enter_context(monitor).launch()

        def monitoring() -> bool:
            return all(
                any("O" in str(c.get("flags", "")) for c in redis.client_list())
                for redis in clients
            )

        def check() -> None:
            for monitor in monitors:
                monitor.check()

        wait_until(monitoring, 10, "MONITOR attached", check=check)
        for redis in clients:
            redis.config_resetstat()
        started = time.monotonic()
        latency = run_latency(
            cluster, pool, plan, plan.commands_answers, plan.commands_interviews, offset
        )
        elapsed = time.monotonic() - started
        for redis in clients:
            processed = int(redis.info("stats").get("total_commands_processed", 0))
            stats["total_commands_processed"] = stats.get("total_commands_processed", 0) + processed
            for name, value in redis.info("commandstats").items():
                name = name.removeprefix("cmdstat_")
                commandstats[name] = commandstats.get(name, 0) + int(value["calls"])
    texts = [monitor.log.read_text(errors="replace") for monitor in monitors]
    counted = count_commands(texts, cluster.prefix, ids, *latency["wall"])
    counted["per_socket_hello_and_close_round_trips"] = round(
        counted["per_socket_hello_and_close_round_trips"] / (2 * len(ids)), 2
    )
    counted["elapsed_sec"] = round(elapsed, 2)
    counted["events_seen_by_clients"] = latency["events"]
    counted["total_commands_processed"] = stats.get("total_commands_processed", 0)
    counted["commandstats"] = commandstats
    return counted


# --- the run -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (about a minute)")
    parser.add_argument(
        "--cluster", action="store_true", help="on a Redis Cluster of 3 masters, not one Redis"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    nofile = raise_nofile()
    need = plan.storm_sockets // plan.storm_workers + 2000
    if nofile < need:
        log(f"open-files limit {nofile} is low for this plan (want {need})")
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine(),
        "plan": asdict(plan),
        "redis_cluster": args.cluster,
        "node_settings": NODE_SETTINGS,
        "storm_pool": STORM_POOL,
        "latency_light": [],
        "latency_product_pool": [],
        "latency": [],
        "kill": [],
        "storm_product_pool": [],
        "storm": [],
        "commands": {},
        "failed_phases": {},
        "node_log_warnings": {},
    }
    try:
        with Cluster(dict(NODE_SETTINGS), STORM_POOL, redis_cluster=args.cluster) as cluster:
            log(f"nodes up in {time.monotonic() - started:.1f} s")
            results["redis"] = cluster.redis_version()
            pool = build_pool(cluster, plan.users, plan.pool)
            log(f"{len(pool)} interviews started ({time.monotonic() - started:.1f} s)")
            run_phases(cluster, pool, plan, results)
    finally:
        results["elapsed_sec"] = round(time.monotonic() - started, 1)
        written = write_results(results, RESULTS_CLUSTER if args.cluster else RESULTS)
    print_report(results)
    print(f"raw numbers: {written}; elapsed: {results['elapsed_sec']} s")
    return 0


def run_phases(cluster: Cluster, pool: Pool, plan: Plan, results: dict[str, Any]) -> None:
    """Every scenario in turn; one that fails is recorded and the next one still runs."""

    def phase(name: str, run: Any) -> dict[str, Any] | None:
        for node in (cluster.a, cluster.b):
            if node is not None and node.alive():
                settle(node)  # no leftover work of the previous scenario
        before = log_counts(cluster)
        try:
            result: dict[str, Any] = run()
        except Exception as exc:  # a broken scenario must not hide the others' figures
            log(f"{name} failed: {exc!r}")
            results["failed_phases"].setdefault(name, []).append(repr(exc))
            return None
        finally:
            results["node_log_warnings"][name] = count_diff(log_counts(cluster), before)
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        if isinstance(results.get(name), list):
            results[name].append(result)
        else:
            results[name] = result
        return result

    # With a Redis pool that does not refuse (REDIS_URL option, no code change).
    for rep in range(plan.reps if plan.light_interviews else 0):
        got = phase(
            "latency_light",
            lambda: run_latency(
                cluster,
                pool,
                plan,
                plan.light_answers,
                plan.light_interviews,
                think=plan.light_think,
            ),
        )
        log(f"light latency rep {rep + 1}: {got and got['cross_minus_same_ms']}")
    for rep in range(plan.reps):
        got = phase("latency", lambda: run_latency(cluster, pool, plan))
        log(f"latency rep {rep + 1}: {got and got['cross_minus_same_ms']}")
    got = phase("commands", lambda: run_commands(cluster, pool, plan))
    log(f"commands: {got and got['round_trips_per_message']} round trips/message")
    for rep in range(plan.reps):
        got = phase("kill", lambda: run_kill(cluster, pool, plan))
        log(f"kill rep {rep + 1}: {got and got['disconnect_to_welcome_ms']}")
    for size in plan.storm_ladder:  # to the surviving node
        got = phase("storm", lambda n=size: run_storm(cluster, pool, plan, n))
        log(f"storm of {size}: {got and (got['welcomed'], got['last_welcome_sec'])}")

    # The same, briefly, with the product's Redis pool as configured.
    cluster.redis_options = ""
    cluster.restart("a")
    cluster.restart("b")
    if plan.loaded_with_product_pool:
        got = phase(
            "latency_product_pool",
            lambda: run_latency(cluster, pool, plan, 1, budget=45.0, think=BURST_THINK),
        )
        log(f"loaded, product pool: {got and (got['answers_scored'], got['answers_sent'])}")
    got = phase("storm_product_pool", lambda: run_storm(cluster, pool, plan, plan.storm_sockets))
    log(f"storm, product pool: {got and (got['welcomed'], got['failures'])}")


if __name__ == "__main__":
    sys.exit(main())
