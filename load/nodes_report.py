"""`load.bench_nodes`'s table, from its results: medians over the repetitions, with the
same-node figure as the baseline of the cross-node one."""

from __future__ import annotations

import math
from typing import Any

from load.measure import Row, Table, describe_machine, median, verdict

LEASE_TTL_SEC = 10


def reps_median(reps: list[dict[str, Any]], *path: str) -> float:
    values: list[float | None] = []
    for rep in reps:
        value: Any = rep
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        values.append(float(value) if isinstance(value, int | float) else None)
    return median(values)


def _fmt(value: float | None, unit: str = "ms") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f} {unit}"


def _pair(reps: list[dict[str, Any]], name: str) -> str:
    p50, p99 = reps_median(reps, name, "p50_ms"), reps_median(reps, name, "p99_ms")
    return f"{_fmt(p50)} / {_fmt(p99)}"


def latency_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    for label, reps in (("light", results["latency_light"]), ("loaded", results["latency"])):
        if not reps:
            continue
        same99 = reps_median(reps, "same_node_accept_ms", "p99_ms")
        cross99 = reps_median(reps, "cross_node_accept_ms", "p99_ms")
        gap99 = reps_median(reps, "cross_minus_same_ms", "p99_ms")
        limit = same99 + 5
        rows += [
            Row(
                f"1. {label} ({reps[0]['interviews']} interviews): answer->accepted p50/p99",
                (_pair(reps, "same_node_accept_ms"),),
                _pair(reps, "cross_node_accept_ms"),
                f"{cross99 / same99:.2f}x" if same99 else "-",
                f"p99 <= same p99 + 5 ms = {_fmt(limit)}",
                verdict(None if math.isnan(cross99) else cross99 <= limit),
            ),
            Row(
                f"1. {label}: per event, cross arrival - same arrival p50/p99",
                product=_pair(reps, "cross_minus_same_ms"),
                target="p99 <= 5 ms",
                verdict=verdict(None if math.isnan(gap99) else gap99 <= 5),
            ),
        ]
    for got in results["latency_product_pool"]:
        rows.append(
            Row(
                f"1. {got['interviews']} answers in ~1 s, product Redis pool: scored in 45 s",
                product=f"{got['answers_scored']} of {got['answers_sent']}",
                target="all",
                verdict=verdict(got["answers_scored"] == got["answers_sent"]),
            )
        )
    return rows


def kill_rows(kill: list[dict[str, Any]]) -> list[Row]:
    if not kill:
        return []
    welcome99 = reps_median(kill, "disconnect_to_welcome_ms", "p99_ms")
    problems = sum(k["clients_with_problems"] for k in kill)
    return [
        Row(
            "2. resume after kill -9: disconnect->welcome p50/p99",
            product=_pair(kill, "disconnect_to_welcome_ms"),
            target="p99 <= 1000 ms",
            verdict=verdict(None if math.isnan(welcome99) else welcome99 <= 1000),
        ),
        Row(
            "2. disconnect->first new event p50/p99 (answer not yet acknowledged)",
            product=_pair(kill, "first_new_awaiting_ms"),
        ),
        Row(
            "2. disconnect->first new event p50/p99 (mid evaluation)",
            product=_pair(kill, "first_new_mid_stream_ms"),
            target=f"(waits for the {LEASE_TTL_SEC} s lease)",
        ),
        Row(
            "2. clients with seq gaps / duplicates / unfinished",
            product=f"{problems} of {sum(k['clients'] for k in kill)}",
            target="0",
            verdict=verdict(problems == 0),
        ),
    ]


def storm_rows(results: dict[str, Any], storm_pool: str) -> list[Row]:
    rows = []
    for got in results["storm_product_pool"]:
        rows.append(
            Row(
                f"3. storm of {got['sockets']} sockets, product Redis pool: welcomed",
                product=f"{got['welcomed']}, last after {_fmt(got['last_welcome_sec'], 's')}",
                target=f"all {got['sockets']} within 10 s",
                verdict=verdict(_storm_ok(got)),
            )
        )
    for got in results["storm"]:
        rows += [
            Row(
                f"3. storm of {got['sockets']} sockets ({storm_pool}): welcomed, last after",
                product=f"{got['welcomed']}, {_fmt(got['last_welcome_sec'], 's')}",
                target=f"all {got['sockets']} within 10 s",
                verdict=verdict(_storm_ok(got)),
            ),
            Row("3.   welcome latency p50/p99", product=_pair([got], "welcome_ms")),
        ]
    return rows


def _storm_ok(got: dict[str, Any]) -> bool:
    last = got["last_welcome_sec"]
    return bool(got["all_welcomed"]) and last is not None and last <= 10


def command_rows(cmd: dict[str, Any]) -> list[Row]:
    if not cmd:
        return []
    per_message = cmd["round_trips_per_message"]
    return [
        Row(
            "4. Redis round trips per engine message (with timers)",
            product=f"{per_message} ({cmd['with_background_per_message']})",
            target="<= 2",
            verdict=verdict(None if per_message is None else per_message <= 2),
        ),
        Row(
            "4. round trips per feedback.delta / per answer",
            product=f"{cmd['per_delta']['round_trips']} / {cmd['per_answer']['round_trips']}",
        ),
        Row(
            "4. Redis commands incl. Lua per message / delta / answer",
            product=f"{cmd['commands_per_message']} / {cmd['per_delta']['commands']} / "
            f"{cmd['per_answer']['commands']}",
        ),
    ]


def table(results: dict[str, Any]) -> Table:
    t = Table(("same node",), "measured")
    t.add(*latency_rows(results))
    t.add(*kill_rows(results["kill"]))
    t.add(*storm_rows(results, results["storm_pool"]))
    t.add(*command_rows(results["commands"]))
    for name, errors in results["failed_phases"].items():
        t.add(Row(f"(failed: {name})", product=errors[0][:60]))
    return t


def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"bench-nodes: {describe_machine(m)}; Redis {results['redis']}")
    plan = results["plan"]
    print(
        f"plan {plan['name']}: {plan['reps']} repetition(s); latency {plan['latency_interviews']} "
        f"interviews; kill {plan['kill_clients']} clients; storm {plan['storm_sockets']} sockets "
        f"over {min(plan['pool'], plan['storm_sockets'])} interviews; node settings "
        + " ".join(f"{k}={v}" for k, v in results["node_settings"].items())
    )
    print()
    print(table(results).render())
