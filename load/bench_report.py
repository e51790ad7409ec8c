"""`load.bench`'s table and plot, from its results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from load.measure import Row, Table, describe_machine, ms, ratio, verdict

BASELINES = ("echo", "starlette")


def _medians(r: dict[str, Any], key: str) -> list[float]:
    """`key` at the headline concurrency: echo, Starlette, product."""
    fixed = str(r["config"]["fixed"])
    return [r["ping"][name][fixed]["median"][key] for name in (*BASELINES, "product")]


def _row(
    figure: str,
    values: list[float],
    fmt: str,
    digits: int = 2,
    target: str = "",
    ok: bool | None = None,
) -> Row:
    cells = [fmt.format(v) for v in values]
    return Row(
        figure,
        (cells[0], cells[1]),
        cells[2],
        ratio(values[2], values[0], digits),
        target,
        verdict(ok) if target else "",
    )


def ping_rows(r: dict[str, Any]) -> list[Row]:
    fixed = r["config"]["fixed"]
    rate = _medians(r, "round_trips_per_s")
    p50 = _medians(r, "p50_ms")
    p99 = _medians(r, "p99_ms")
    cpu_us = _medians(r, "server_cpu_us_per_round_trip")
    per_cpu_second = [1e6 / v for v in cpu_us]
    limit = max(3 * p99[0], p99[0] + 5)
    return [
        _row(
            f"(a) round trips/s, {fixed} sockets",
            rate,
            "{:.0f}",
            3,
            "product >= 0.5x echo",
            rate[2] >= 0.5 * rate[0],
        ),
        _row("(a) round trip p50", p50, "{:.1f} ms"),
        _row(
            "(a) round trip p99",
            p99,
            "{:.1f} ms",
            target=f"<= max(3x, +5 ms) = {limit:.1f} ms",
            ok=p99[2] <= limit,
        ),
        _row(
            "(a) round trips per server CPU-second",
            per_cpu_second,
            "{:.0f}",
            3,
            "product >= 0.5x echo",
            per_cpu_second[2] >= 0.5 * per_cpu_second[0],
        ),
        _row("(a) server CPU per round trip", cpu_us, "{:.0f} us"),
    ]


def memory_rows(r: dict[str, Any]) -> list[Row]:
    m = r["memory"]
    per = [m[name]["bytes_per_socket"] / 1024 for name in (*BASELINES, "product")]
    reached = min(m[name]["sockets"] for name in m)
    target = m["echo"]["target_sockets"]
    note = "" if reached >= target else f" (only {reached} reached)"
    return [
        Row(
            f"(b) RSS per idle socket, {reached} sockets{note}",
            tuple(f"{v:.1f} KiB" for v in per[:2]),
            f"{per[2]:.1f} KiB",
            ratio(per[2], per[0]),
            "<= 2x echo",
            verdict(per[2] <= 2 * per[0]),
        )
    ]


def interview_rows(r: dict[str, Any]) -> list[Row]:
    iv = r["interviews"]
    title = f"{iv['interviews']} interviews, {iv['answers_per_s']:.0f} answers/s"
    p99 = iv["first_delta"]["p99_ms"]
    rows = [
        Row(
            f"(c) answer -> first delta p99 ({title})",
            product=ms(p99),
            target="<= 50 ms",
            verdict=verdict(p99 <= 50),
        )
    ]
    for key, name in (("first_delta", "first delta"), ("accepted", "answer.accepted")):
        s = iv[key]
        rows.append(
            Row(
                f"    answer -> {name} p50 / p95",
                product=f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} ms",
            )
        )
    s = iv["done"]
    rows.append(
        Row(
            "    answer -> feedback.done p50 / p99",
            product=f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms",
        )
    )
    cpu = iv["cpu_ms_per_answer"]
    rows.append(
        Row(
            "    CPU per answer: product / SecantusDB",
            product=f"{cpu['product']:.1f} / {cpu['mongo']:.1f} ms",
        )
    )
    ok = iv["seq_errors"] == 0 and iv["failed"] == 0
    rows.append(
        Row(
            "    seq gaps or repeats / failed sessions",
            product=f"{iv['seq_errors']} / {iv['failed']}",
            target="0 / 0",
            verdict=verdict(ok),
        )
    )
    return rows


def _triple(s: dict[str, float]) -> str:
    return f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} / {s['p99_ms']:.1f} ms"


def rest_rows(r: dict[str, Any]) -> list[Row]:
    base, prod = r["rest"]["starlette"], r["rest"]["product"]
    rows = [
        Row(
            f"(d) REST, {prod['users']} users: requests/s",
            ("", f"{base['requests_per_s']:.0f}"),
            f"{prod['requests_per_s']:.0f}",
        ),
        Row("    p50 / p95 / p99", ("", "")),
    ]
    for name, s in prod["latency"].items():
        login = name == "login"
        rows.append(
            Row(
                f"    {name}",
                ("", _triple(base["latency"][name])),
                _triple(s),
                ratio(s["p95_ms"], base["latency"][name]["p95_ms"]),
                "(bcrypt cost 4 here)" if login else "p95 <= 30 ms",
                verdict(None if login else s["p95_ms"] <= 30),
            )
        )
    base_cpu = base["cpu_ms_per_request"]["starlette"]
    cpu = prod["cpu_ms_per_request"]
    rows.append(
        Row(
            "    CPU per request: server / SecantusDB",
            ("", f"{base_cpu:.2f} ms"),
            f"{cpu['product']:.2f} / {cpu['mongo']:.2f} ms",
            ratio(cpu["product"], base_cpu),
        )
    )
    return rows


def login_rows(r: dict[str, Any]) -> list[Row]:
    lg = r["login_cost12"]
    s = lg["latency"]["login"]
    bcrypt_rate = lg["bcrypt_checks_per_core_s"]
    return [
        Row(
            f"(d) logins/s per core at bcrypt cost 12, {lg['concurrency']} in flight",
            ("", f"{bcrypt_rate:.1f} (bcrypt alone)"),
            f"{lg['logins_per_core_s']:.1f} ({lg['logins_per_s']:.1f}/s in all)",
            ratio(lg["logins_per_core_s"], bcrypt_rate),
            "reported (bcrypt-bound)",
        ),
        Row("    login p50 / p99 at cost 12", product=f"{s['p50_ms']:.0f} / {s['p99_ms']:.0f} ms"),
    ]


def table(r: dict[str, Any]) -> Table:
    t = Table(("echo", "Starlette"), "product")
    if "ping" in r:
        t.add(*ping_rows(r))
    if "memory" in r:
        t.add(*memory_rows(r))
    if "interviews" in r:
        t.add(*interview_rows(r))
    if "rest" in r:
        t.add(*rest_rows(r))
    if "login_cost12" in r:
        t.add(*login_rows(r))
    return t


def core_lines(r: dict[str, Any]) -> list[str]:
    """How busy the clients and everything else on the machine were, per phase."""
    lines = []
    if "ping" in r:
        fixed = str(r["config"]["fixed"])
        for name in (*BASELINES, "product"):
            m = r["ping"][name][fixed]["median"]
            lines.append(
                f"(a) {name}, {fixed} sockets: server {m['server_cores']:.2f} cores, clients "
                f"{m['client_cores']:.2f} cores (busiest worker {m['max_client_worker_cpu']:.0%} "
                f"of a core), others {m['others_cores']:.2f}"
            )
    phases: list[tuple[str, str, dict[str, Any]]] = []
    if "interviews" in r:
        phases.append(("(c) interviews", "product", r["interviews"]))
    for name in ("starlette", "product"):
        if name in r.get("rest", {}):
            phases.append((f"(d) REST on {name}", name, r["rest"][name]))
    if "login_cost12" in r:
        phases.append(("(d) login at cost 12", "product", r["login_cost12"]))
    for title, server, got in phases:
        c = got["cores"]
        busiest = got.get("client_worker_cpu") or got.get("client_process_cpu") or [0.0]
        lines.append(
            f"{title}: server {c.get(server, 0):.2f} cores + SecantusDB {c.get('mongo', 0):.2f}, "
            f"clients {c.get('clients', 0):.2f} (busiest {max(busiest):.0%}), "
            f"others {c['others']:.2f}"
        )
    return lines


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    end = m.get("loadavg_at_end", [math.nan])[0]
    lines = [
        f"{r['label']}: {describe_machine(m)}, {end:.1f} at the end; "
        f"{r['config']['procs']} client processes; {r.get('seconds', math.nan):.0f} s",
    ]
    if m["loadavg_at_start"][0] > (m["cpus"] or 1):
        lines.append(
            f"NOTE: the machine was busy before the run (load average "
            f"{m['loadavg_at_start'][0]:.1f} on {m['cpus']} CPUs): latencies include waiting for "
            "a CPU; compare the CPU-per-operation figures."
        )
    lines += ["", table(r).render(), "", *core_lines(r)]
    return "\n".join(lines)


def write_plot(r: dict[str, Any], path: Path) -> bool:
    """Round-trip latency (p50, p99), throughput and server CPU against concurrency."""
    if "ping" not in r:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat_ax, rate_ax, cpu_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = {"echo": "tab:blue", "starlette": "tab:green", "product": "tab:red"}
    for name, color in colors.items():
        by_level = r["ping"][name]
        levels = sorted(int(k) for k in by_level)
        med = [by_level[str(k)]["median"] for k in levels]
        lat_ax.plot(levels, [m["p50_ms"] for m in med], "o-", color=color, label=f"{name} p50")
        lat_ax.plot(levels, [m["p99_ms"] for m in med], "s--", color=color, label=f"{name} p99")
        rate_ax.plot(levels, [m["round_trips_per_s"] for m in med], "o-", color=color, label=name)
        cpu = [m["server_cpu_us_per_round_trip"] for m in med]
        cpu_ax.plot(levels, cpu, "o-", color=color, label=name)
    for ax in (lat_ax, rate_ax, cpu_ax):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent sockets (closed loop)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("round trip (ms)")
    lat_ax.set_title("ping -> pong (product) vs the echo baselines: latency")
    rate_ax.set_ylabel("round trips / s")
    rate_ax.set_title("throughput")
    cpu_ax.set_ylabel("server CPU per round trip (us)")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.set_title("server CPU per round trip")
    m = r["machine"]
    fig.suptitle(
        f"{m['cpus']} x {m['cpu_model']}, Python {m['python']}; median of "
        f"{r['config']['repeats']} runs per point",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
