"""Sessions across nodes (issue 5), measured on two real nodes sharing one Redis and one
MongoDB-protocol server, all started here on 127.0.0.1:

1. cross-node delivery latency beside same-node (two sockets per interview, one per node);
2. resume after `kill -9` of a node: disconnect -> welcome and -> first new event, seq checks;
3. a reconnect storm to the surviving node: every socket says hello at once;
4. Redis commands and round trips per engine message (MONITOR + INFO commandstats).

    .venv/bin/python -m load.bench_nodes            # full run, about 8 minutes on 2 cores
    .venv/bin/python -m load.bench_nodes --quick    # a small run, under a minute

It prints a table (medians over repetitions, the target beside each figure) and writes the raw
numbers to load/results/nodes.json. Figures are reported, never asserted: on a small shared
machine the clients, both nodes, Redis and the database compete for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from queue import Empty
from typing import Any

from redis import Redis

from core.security import TokenService
from core.settings import Settings
from load import nodes_clients
from load.nodes_commands import count_commands
from load.nodes_support import (
    ROOT,
    Cluster,
    Node,
    count_diff,
    create_users,
    log_counts,
    machine,
    median,
    raise_nofile,
    start_interviews,
    summary,
)

RESULTS = ROOT / "load" / "results" / "nodes.json"
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
LEASE_TTL_SEC = 10

Pool = list[tuple[str, str]]  # (access token, interview id)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


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


def _cpu(nodes: list[Node]) -> dict[str, float]:
    return {node.name: node.cpu_seconds() for node in nodes}


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
    starts = [max(0, head - 1) for head in heads(cluster, chosen)]
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
            gap_all.append(ms(other[2] - frame[2]))
            if frame[1] == "feedback.delta":
                gap_delta.append(ms(other[2] - frame[2]))
            if frame[1] == "answer.accepted" and frame[4] in same["sends"]:
                sent = same["sends"][frame[4]]
                same_accept.append(ms(frame[2] - sent))
                cross_accept.append(ms(other[2] - sent))
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
    starts = [max(0, head - 1) for head in heads(cluster, chosen)]
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
    welcome, first_new, first_mid, first_waiting, kill_welcome = [], [], [], [], []
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
        welcome.append(ms(c["welcome"] - c["disconnect"]))
        kill_welcome.append(ms(c["welcome"] - killed_at))
        if c.get("first_new") is not None:
            value = ms(c["first_new"] - c["disconnect"])
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
        "refused_after_sec": summary(refused_after),
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


def heads(cluster: Cluster, pool: Pool) -> list[int]:
    redis = Redis.from_url(cluster.redis.url)
    try:
        pipe = redis.pipeline(transaction=False)
        for _, interview_id in pool:
            pipe.hget(f"{cluster.prefix}iv:{{{interview_id}}}:meta", "head")
        return [int(h or 0) for h in pipe.execute()]
    finally:
        redis.close()


def run_storm(cluster: Cluster, pool: Pool, plan: Plan, sockets: int) -> dict[str, Any]:
    node = cluster.b
    assert node is not None
    last = heads(cluster, pool)
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
        rss_before, cpu_before = node.rss_mb(), node.cpu_seconds()
        go_at.value = time.monotonic() + 1.0
        welcomed_count = sum(_take(ready, len(processes), budget, processes))
        cpu = node.cpu_seconds() - cpu_before
        rss_after = node.rss_mb()
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
        "welcome_ms": summary([ms(w) for w in welcomed]),
        "connected_ms": summary([ms(o) for o in opened]),
        "failures": failures,
        "still_open_at_end": sum(out["open_at_end"] for out in outs),
        "node_cpu_sec": round(cpu, 2),
        "node_rss_mb": {"before": round(rss_before), "after": round(rss_after)},
    }


def settle(node: Node, timeout: float = 30.0) -> None:
    """Wait until the node is idle again (closed sockets unsubscribed)."""
    deadline = time.monotonic() + timeout
    last = node.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = node.cpu_seconds()
        if now - last < 0.05:
            return
        last = now


# --- 4. Redis commands per engine message ----------------------------------------------------


def run_commands(cluster: Cluster, pool: Pool, plan: Plan) -> dict[str, Any]:
    """A small latency run under MONITOR: every command, and which ones ran inside Lua."""
    monitor_file = cluster.tmp / "monitor.txt"
    offset = min(plan.latency_interviews, len(pool) - plan.commands_interviews)
    ids = {iv for _, iv in pool[offset : offset + plan.commands_interviews]}
    with monitor_file.open("wb") as sink:
        monitor = subprocess.Popen(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(cluster.redis.port), "monitor"],
            stdout=sink,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            cluster.redis.cli("config", "resetstat")
            started = time.monotonic()
            latency = run_latency(
                cluster, pool, plan, plan.commands_answers, plan.commands_interviews, offset
            )
            elapsed = time.monotonic() - started
            stats = cluster.redis.info("stats")
            commandstats = cluster.redis.info("commandstats")
        finally:
            monitor.terminate()
            monitor.wait(timeout=10)
    text = monitor_file.read_text(errors="replace")
    counted = count_commands(text, cluster.prefix, ids, *latency["wall"])
    counted["per_socket_hello_and_close_round_trips"] = round(
        counted["per_socket_hello_and_close_round_trips"] / (2 * len(ids)), 2
    )
    counted["elapsed_sec"] = round(elapsed, 2)
    counted["events_seen_by_clients"] = latency["events"]
    counted["total_commands_processed"] = int(stats.get("total_commands_processed", 0))
    counted["commandstats"] = {
        k.removeprefix("cmdstat_"): int(v.split(",")[0].split("=")[1])
        for k, v in commandstats.items()
    }
    return counted


# --- the run -----------------------------------------------------------------------------------


def build_pool(cluster: Cluster, plan: Plan) -> Pool:
    assert cluster.a is not None and cluster.b is not None
    create_users(cluster.mongo.url, cluster.db_name, plan.users)
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(cluster.mongo.url)
    try:
        ids = [str(d["_id"]) for d in client[cluster.db_name]["users"].find({}, {"_id": 1})]
    finally:
        client.close()
    # Tokens as the login endpoint issues them (same settings as the nodes); logging in hundreds
    # of users through bcrypt and the database would only lengthen the setup.
    tokens_service = TokenService(Settings(access_token_ttl_sec=7200))
    tokens = [tokens_service.issue(user_id, "user") for user_id in ids]
    addresses = [cluster.a.address, cluster.b.address]
    pool = asyncio.run(start_interviews(addresses, tokens, plan.pool))
    random.Random(7).shuffle(pool)
    return pool


def reps_median(reps: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for rep in reps:
        value: Any = rep
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        values.append(value if isinstance(value, int | float) else None)
    return median(values)


def _pair(reps: list[dict[str, Any]], name: str, unit: str = "ms") -> str:
    p50, p99 = reps_median(reps, name, "p50"), reps_median(reps, name, "p99")
    return f"{_fmt(p50, unit)} / {_fmt(p99, unit)}"


def _fmt(value: float | None, unit: str = "ms") -> str:
    return "n/a" if value is None else f"{value:.1f} {unit}"


def table(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The printed rows: measure, figure (median over repetitions), target."""
    rows: list[tuple[str, str, str]] = []
    for label, reps in (("light", results["latency_light"]), ("loaded", results["latency"])):
        if not reps:
            continue
        size = reps[0]["interviews"]
        same99 = reps_median(reps, "same_node_accept_ms", "p99")
        limit = _fmt(same99 + 5 if same99 is not None else None)
        rows += [
            (
                f"1. {label} ({size} interviews): same-node answer->accepted p50/p99",
                _pair(reps, "same_node_accept_ms"),
                "(reference)",
            ),
            (
                f"1. {label}: cross-node answer->accepted p50/p99",
                _pair(reps, "cross_node_accept_ms"),
                f"p99 <= same p99 + 5 ms = {limit}",
            ),
            (
                f"1. {label}: per event, cross arrival - same arrival p50/p99",
                _pair(reps, "cross_minus_same_ms"),
                "p99 <= 5 ms",
            ),
        ]
    for got in results["latency_product_pool"]:
        rows.append(
            (
                f"1. {got['interviews']} answers in ~1 s, product Redis pool: scored in 45 s",
                f"{got['answers_scored']} of {got['answers_sent']}",
                "all",
            )
        )
    kill = results["kill"]
    if kill:
        rows += [
            (
                "2. resume after kill -9: disconnect->welcome p50/p99",
                _pair(kill, "disconnect_to_welcome_ms"),
                "p99 <= 1000 ms",
            ),
            (
                "2. disconnect->first new event p50/p99 (answer not yet acknowledged)",
                _pair(kill, "first_new_awaiting_ms"),
                "",
            ),
            (
                "2. disconnect->first new event p50/p99 (mid evaluation)",
                _pair(kill, "first_new_mid_stream_ms"),
                f"(waits for the {LEASE_TTL_SEC} s lease)",
            ),
            (
                "2. clients with seq gaps / duplicates / unfinished",
                f"{sum(k['clients_with_problems'] for k in kill)} of "
                f"{sum(k['clients'] for k in kill)}",
                "0",
            ),
        ]
    for got in results["storm_product_pool"]:
        rows += [
            (
                f"3. storm of {got['sockets']} sockets, product Redis pool: welcomed",
                f"{got['welcomed']}, last after {_fmt(got['last_welcome_sec'], 's')}",
                f"all {got['sockets']} within 10 s",
            ),
        ]
    for got in results["storm"]:
        rows += [
            (
                f"3. storm of {got['sockets']} sockets ({STORM_POOL}): welcomed, last after",
                f"{got['welcomed']}, {_fmt(got['last_welcome_sec'], 's')}",
                f"all {got['sockets']} within 10 s",
            ),
            ("3.   welcome latency p50/p99", _pair([got], "welcome_ms"), ""),
        ]
    cmd = results["commands"]
    if cmd:
        rows += [
            (
                "4. Redis round trips per engine message (with timers)",
                f"{cmd['round_trips_per_message']} ({cmd['with_background_per_message']})",
                "<= 2",
            ),
            (
                "4. round trips per feedback.delta / per answer",
                f"{cmd['per_delta']['round_trips']} / {cmd['per_answer']['round_trips']}",
                "",
            ),
            (
                "4. Redis commands incl. Lua per message / delta / answer",
                f"{cmd['commands_per_message']} / {cmd['per_delta']['commands']} / "
                f"{cmd['per_answer']['commands']}",
                "",
            ),
        ]
    for name, errors in results["failed_phases"].items():
        rows.append((f"(failed: {name})", errors[0][:60], ""))
    return rows


def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"machine: {m['cores']} cores, {m['cpu']}, Python {m['python']}, Redis {m['redis']}, "
        f"{m['memory_gb']} GB, load average at start {results['load_average']}"
    )
    plan = results["plan"]
    print(
        f"plan {plan['name']}: {plan['reps']} repetition(s); latency {plan['latency_interviews']} "
        f"interviews; kill {plan['kill_clients']} clients; storm {plan['storm_sockets']} sockets "
        f"over {min(plan['pool'], plan['storm_sockets'])} interviews; node settings "
        + " ".join(f"{k}={v}" for k, v in NODE_SETTINGS.items())
    )
    code = results["code"]
    print(f"code: {code['commit'][:12]}" + (" + uncommitted changes" if code["changed"] else ""))
    rows = table(results)
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    head = ("measure", "figure (median of reps)", "target")
    width = [max(w, len(h)) for w, h in zip(width, head, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(head, width, strict=True)))
    print("  ".join("-" * w for w in width))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)))
    print(f"raw numbers: {RESULTS.relative_to(ROOT)}")


def code_version() -> dict[str, Any]:
    """The commit measured, and the product files that differed from it (the tree is shared)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {
        "commit": git("rev-parse", "HEAD"),
        "changed": [p for p in changed if p.startswith(("engine/", "core/", "http_api/"))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (about a minute)")
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
        "node_settings": NODE_SETTINGS,
        "storm_pool": STORM_POOL,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "code": code_version(),
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
        with Cluster(dict(NODE_SETTINGS), STORM_POOL) as cluster:
            log(f"cluster up in {time.monotonic() - started:.1f} s")
            pool = build_pool(cluster, plan)
            log(f"{len(pool)} interviews started ({time.monotonic() - started:.1f} s)")
            run_phases(cluster, pool, plan, results)
    finally:
        results["elapsed_sec"] = round(time.monotonic() - started, 1)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print_report(results)
    print(f"elapsed: {results['elapsed_sec']} s")
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
