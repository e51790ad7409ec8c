"""The benchmark's table and plot, from its results dictionary."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str, str, str]


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f} ms"


def _ratio(engine: float, echo: float) -> str:
    if not echo or math.isnan(echo) or math.isnan(engine):
        return "-"
    return f"{engine / echo:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def rows(r: dict[str, Any]) -> list[Row]:
    cfg = r["config"]
    out: list[Row] = []
    fixed = str(cfg["fixed"])
    if "ping" in r:
        echo = r["ping"]["echo"][fixed]["median"]
        eng = r["ping"]["engine"][fixed]["median"]
        ratio = eng["round_trips_per_s"] / echo["round_trips_per_s"]
        out.append(
            (
                f"(a) round trips/s, {fixed} sockets",
                f"{echo['round_trips_per_s']:.0f}",
                f"{eng['round_trips_per_s']:.0f}",
                f"{ratio:.3f}x",
                "engine >= 0.5x echo",
                _verdict(ratio >= 0.5),
            )
        )
        out.append(
            (
                "(a) round trip p50",
                _ms(echo["p50_ms"]),
                _ms(eng["p50_ms"]),
                _ratio(eng["p50_ms"], echo["p50_ms"]),
                "",
                "",
            )
        )
        limit = max(3 * echo["p99_ms"], echo["p99_ms"] + 5)
        out.append(
            (
                "(a) round trip p99",
                _ms(echo["p99_ms"]),
                _ms(eng["p99_ms"]),
                _ratio(eng["p99_ms"], echo["p99_ms"]),
                f"<= max(3x, +5 ms) = {limit:.1f} ms",
                _verdict(eng["p99_ms"] <= limit),
            )
        )
        cap_echo = 1e6 / echo["server_cpu_us_per_round_trip"]
        cap_eng = 1e6 / eng["server_cpu_us_per_round_trip"]
        out.append(
            (
                "(a) round trips per server CPU-second",
                f"{cap_echo:.0f}",
                f"{cap_eng:.0f}",
                f"{cap_eng / cap_echo:.3f}x",
                "engine >= 0.5x echo",
                _verdict(cap_eng / cap_echo >= 0.5),
            )
        )
        out.append(
            (
                "(a) server CPU per round trip",
                f"{echo['server_cpu_us_per_round_trip']:.0f} us",
                f"{eng['server_cpu_us_per_round_trip']:.0f} us",
                _ratio(eng["server_cpu_us_per_round_trip"], echo["server_cpu_us_per_round_trip"]),
                "",
                "",
            )
        )
    if "memory" in r:
        echo_m, eng_m = r["memory"]["echo"], r["memory"]["engine"]
        per_echo = echo_m["bytes_per_socket"] / 1024
        per_eng = eng_m["bytes_per_socket"] / 1024
        reached = min(echo_m["sockets"], eng_m["sockets"])
        note = "" if reached >= echo_m["target_sockets"] else f" (only {reached} reached)"
        out.append(
            (
                f"(b) RSS per idle socket, {reached} sockets{note}",
                f"{per_echo:.1f} KiB",
                f"{per_eng:.1f} KiB",
                _ratio(per_eng, per_echo),
                "<= 2x echo",
                _verdict(per_eng <= 2 * per_echo),
            )
        )
    if "interviews" in r:
        iv = r["interviews"]
        title = f"{iv['interviews']} interviews, {iv['answers_per_s']:.0f} answers/s"
        out.append(
            (
                f"(c) answer -> first delta p99 ({title})",
                "",
                _ms(iv["first_delta"]["p99_ms"]),
                "",
                "<= 50 ms",
                _verdict(iv["first_delta"]["p99_ms"] <= 50),
            )
        )
        for key, name in (("first_delta", "first delta"), ("accepted", "answer.accepted")):
            s = iv[key]
            out.append(
                (
                    f"    answer -> {name} p50 / p95",
                    "",
                    f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} ms",
                    "",
                    "",
                    "",
                )
            )
        s = iv["done"]
        out.append(
            (
                "    answer -> feedback.done p50 / p99",
                "",
                f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms",
                "",
                "",
                "",
            )
        )
        cpu = iv.get("cpu_ms_per_answer", {})
        out.append(
            (
                "    CPU per answer: engine / embedded MongoDB",
                "",
                f"{cpu.get('engine', math.nan):.1f} / {cpu.get('engine_mongo', math.nan):.1f} ms",
                "",
                "",
                "",
            )
        )
        out.append(
            (
                "    seq gaps or repeats / failed sessions",
                "",
                f"{iv['seq_errors']} / {iv['failed']}",
                "",
                "0 / 0",
                _verdict(iv["seq_errors"] == 0 and iv["failed"] == 0),
            )
        )
    if "rest" in r:
        rest = r["rest"]
        out.append(
            (
                f"(d) REST, {rest['users']} users, {rest['requests_per_s']:.0f} req/s",
                "",
                "p50 / p95 / p99",
                "",
                "",
                "",
            )
        )
        for name, s in rest["latency"].items():
            target = "(bcrypt cost 4 here)" if name == "login" else "p95 <= 30 ms"
            ok = None if name == "login" else s["p95_ms"] <= 30
            out.append(
                (
                    f"    {name}",
                    "",
                    f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} / {s['p99_ms']:.1f} ms",
                    "",
                    target,
                    _verdict(ok),
                )
            )
        cpu = rest.get("cpu_ms_per_request", {})
        out.append(
            (
                "    CPU per request: engine / embedded MongoDB",
                "",
                f"{cpu.get('engine', math.nan):.1f} / {cpu.get('engine_mongo', math.nan):.1f} ms",
                "",
                "",
                "",
            )
        )
    if "login_cost12" in r:
        lg = r["login_cost12"]
        s = lg["latency"]["login"]
        out.append(
            (
                f"(d) login at bcrypt cost 12, {lg['concurrency']} in flight",
                "",
                f"{lg['logins_per_s']:.1f}/s = {lg['logins_per_core_s']:.1f}/s per core",
                "",
                "reported (bcrypt-bound)",
                "",
            )
        )
        out.append(
            (
                "    login p50 / p99 at cost 12",
                "",
                f"{s['p50_ms']:.0f} / {s['p99_ms']:.0f} ms",
                "",
                "",
                "",
            )
        )
    return out


def generator_lines(r: dict[str, Any]) -> list[str]:
    """How busy the load generator and everything else on the machine were."""
    lines = []
    if "ping" in r:
        fixed = str(r["config"]["fixed"])
        for name in ("echo", "engine"):
            m = r["ping"][name][fixed]["median"]
            server = statistics.median(run["cores"][name] for run in r["ping"][name][fixed]["runs"])
            lines.append(
                f"(a) {name}, {fixed} sockets: server {server:.2f} cores, generator "
                f"{m['generator_cores']:.2f} cores (busiest worker "
                f"{m['max_generator_worker_cpu']:.0%} of a core), others {m['others_cores']:.2f}"
            )
    for key, server in (("interviews", "engine"), ("rest", "engine"), ("login_cost12", "engine12")):
        if key in r:
            c = r[key]["cores"]
            lines.append(
                f"({'c' if key == 'interviews' else 'd'}) {key}: server {c.get(server, 0):.2f} "
                f"cores + embedded MongoDB {c.get('engine_mongo', 0):.2f}, generator "
                f"{c['generator']:.2f} (busiest worker {max(r[key]['generator_worker_cpu']):.0%}), "
                f"others {c['others']:.2f}"
            )
    return lines


def render_table(r: dict[str, Any]) -> str:
    m = r["machine"]
    end = m.get("loadavg_at_end", [math.nan])[0]
    head = (
        f"{r['label']}: {m['cpus']} x {m['cpu_model']}, Python {m['python']}, load average "
        f"{m['loadavg_at_start'][0]:.1f} at start and {end:.1f} at the end, "
        f"{r['config']['procs']} generator processes, {r.get('seconds', math.nan):.0f} s"
    )
    header: Row = ("figure", "echo", "engine", "ratio", "target", "")
    table = [header, *rows(r)]
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    lines = [head]
    if m["loadavg_at_start"][0] > (m["cpus"] or 1):
        lines.append(
            f"NOTE: the machine was busy before the run (load average "
            f"{m['loadavg_at_start'][0]:.1f} on {m['cpus']} CPUs): latencies include waiting for "
            "a CPU; compare the CPU-per-operation figures."
        )
    lines.append("")
    for i, row in enumerate(table):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.extend(generator_lines(r))
    return "\n".join(lines)


def markdown_table(r: dict[str, Any]) -> str:
    """The same table in Markdown, for load/README.md."""
    header: Row = ("figure", "echo", "engine", "ratio", "target", "")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 6]
    for row in rows(r):
        lines.append("| " + " | ".join(cell.strip() for cell in row) + " |")
    return "\n".join(lines)


def write_plot(r: dict[str, Any], path: Path) -> bool:
    """Round-trip latency (p50, p99) and throughput against concurrency, echo and engine."""
    if "ping" not in r:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat_ax, rate_ax, cpu_ax) = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, color in (("echo", "tab:blue"), ("engine", "tab:red")):
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
    lat_ax.set_title("ping -> pong (engine) vs echo: latency")
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
