"""Count Redis round trips and commands per engine message from `redis-cli monitor` captures
(one per server: a Redis Cluster's masters are monitored one by one and merged by time).

MONITOR prints every command a client sent, and after an EVAL/EVALSHA the commands its script
ran (source `lua`). A round trip is one top-level command, except that a MULTI ... EXEC block
(a transactional pipeline) is one. Top-level commands are attributed to an interview by the
keys they touch (`iv:{id}:...`, `lease:eval:{id}:...`, the member of a deadlines set); each
interview's commands are then cut into windows that end at an append (the script that gives
events their seq), so a window's cost belongs to the events of that append.

Scripts are named by what the capture shows them doing (the commands they run inside Lua),
never by the product's source: the one that XADDs to a stream appends events, the one that
starts with ZRANGEBYSCORE claims due deadlines, and so on.

MONITOR does not show pipelining. A Redis Cluster's deadline claims (one script per deadline
shard) go out as one pipeline per master four times a second; claims that one connection sent
within `PIPELINE_GAP_SEC` of each other are counted as one round trip.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

LINE = re.compile(r"^(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$")
ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
INTERVIEW = re.compile(r"iv:\{([0-9a-f]{24})\}|lease:eval:\{?([0-9a-f]{24})\}?:")
EVENT_TYPE = re.compile(r'\\"type\\":\\"([a-z.]+)\\"')
BURST_GAP_SEC = 1.0
PIPELINE_GAP_SEC = 0.01


@dataclass
class Entry:
    at: float
    source: str
    name: str  # the command, or "EVALSHA <script>"
    args: list[str]
    lua: list[str] = field(default_factory=list)
    queued: bool = False  # inside MULTI ... EXEC or a pipeline: not a round trip of its own
    interview: str | None = None
    category: str = "other"
    events: list[str] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        return 0 if self.queued else 1

    @property
    def commands(self) -> int:
        return 1 + len(self.lua)


def parse(texts: str | list[str]) -> list[Entry]:
    """The entries of one capture, or of several (one per server) merged by time."""
    if isinstance(texts, str):
        texts = [texts]
    entries = sorted((e for text in texts for e in _parse_one(text)), key=lambda e: e.at)
    _name_scripts(entries)
    return entries


def _parse_one(text: str) -> list[Entry]:
    entries: list[Entry] = []
    in_multi: set[str] = set()
    for line in text.splitlines():
        found = LINE.match(line)
        if found is None:
            continue
        at, source, rest = float(found.group(1)), found.group(2), found.group(3)
        args = ARG.findall(rest)
        if not args:
            continue
        command = args[0].upper()
        if source == "lua":
            if entries:
                entries[-1].lua.append(command)
            continue
        entry = Entry(at, source, command, args)
        if source in in_multi:
            entry.queued = True
            if command in ("EXEC", "DISCARD"):
                in_multi.discard(source)
        elif command == "MULTI":
            in_multi.add(source)
        entries.append(entry)
    return entries


def _script_id(entry: Entry) -> str | None:
    if entry.name == "EVALSHA" and len(entry.args) > 1:
        return entry.args[1]
    if entry.name == "EVAL" and len(entry.args) > 1:
        return hashlib.sha1(entry.args[1].encode()).hexdigest()
    return None


def script_name(first: str, ran: set[str]) -> str | None:
    """A script's name from the first command it runs and every command it was seen running."""
    if "XADD" in ran:
        return "append"
    by_first = {"ZRANGEBYSCORE": "claim_due", "INCR": "rate_limit", "HGET": "save"}
    if first in by_first:
        return by_first[first]
    if first == "GET":  # the lease scripts read the owner first
        for command, name in (("SET", "acquire"), ("PEXPIRE", "renew"), ("DEL", "release")):
            if command in ran:
                return f"lease.{name}"
        return "lease"
    return None


def _name_scripts(entries: list[Entry]) -> None:
    """`EVALSHA <name>` for every script call, named by what its calls ran."""
    first: dict[str, str] = {}
    ran: dict[str, set[str]] = {}
    for entry in entries:
        script = _script_id(entry)
        if script is not None and entry.lua:
            first.setdefault(script, entry.lua[0])
            ran.setdefault(script, set()).update(entry.lua)
    for entry in entries:
        script = _script_id(entry)
        if script is not None:
            name = script_name(first.get(script, ""), ran.get(script, set()))
            entry.name = f"EVALSHA {name or script[:8]}"
    last_claim: dict[str, float] = {}
    for entry in entries:
        if entry.name == "EVALSHA claim_due":
            if entry.at - last_claim.get(entry.source, -1.0) <= PIPELINE_GAP_SEC:
                entry.queued = True  # in the same pipeline as the claim before it
            last_claim[entry.source] = entry.at


def _is_deadlines(key: str, deadlines_key: str) -> bool:
    """The deadlines set, or one of its shards on a cluster (`deadlines:{d<n>}`)."""
    return key == deadlines_key or key.startswith(deadlines_key + ":")


def _interview_of(entry: Entry, deadlines_key: str) -> str | None:
    if (
        entry.name in ("ZADD", "ZREM")
        and len(entry.args) > 2
        and _is_deadlines(entry.args[1], deadlines_key)
    ):
        return entry.args[-1]
    for arg in entry.args[1:6]:
        found = INTERVIEW.search(arg)
        if found:
            return found.group(1) or found.group(2)
    return None


def classify(entries: list[Entry], prefix: str, ids: set[str]) -> None:
    deadlines_key = f"{prefix}deadlines"
    for entry in entries:
        entry.interview = _interview_of(entry, deadlines_key)
        key = entry.args[1] if len(entry.args) > 1 else ""
        if entry.name == "EVALSHA append":
            entry.events = EVENT_TYPE.findall(" ".join(entry.args[9:]))
        if entry.interview in ids:
            entry.category = "interview"
        elif entry.interview is not None:
            entry.category = "other interviews"
        elif entry.name == "GET" and "cache:questions:" in key:
            entry.category = "question bank cache"
        elif entry.name == "GET" and "cache:tva:" in key:
            entry.category = "token check"
        elif entry.name == "EVALSHA claim_due":
            entry.category = "deadline timer"
        elif entry.name in ("PING", "HELLO", "CLIENT", "SELECT", "SCRIPT", "CLUSTER", "COMMAND"):
            entry.category = "connection"
    _mark_rearm(entries, deadlines_key)


def _mark_rearm(entries: list[Entry], deadlines_key: str) -> None:
    """`rearm_deadlines` ZADDs every in-progress interview in one burst from one connection;
    the idle interviews in it show where the burst is, and the busy ones inside it belong to it.
    """
    bursts: dict[str, list[list[float]]] = {}
    for entry in entries:
        if entry.name == "ZADD" and entry.category == "other interviews":
            spans = bursts.setdefault(entry.source, [])
            if spans and entry.at - spans[-1][1] <= BURST_GAP_SEC:
                spans[-1][1] = entry.at
            else:
                spans.append([entry.at, entry.at])
    for entry in entries:
        if entry.name == "ZADD" and _is_deadlines(
            entry.args[1] if entry.args[1:] else "", deadlines_key
        ):
            for start, end in bursts.get(entry.source, []):
                if start <= entry.at <= end:
                    entry.category = "deadline re-arm"


def _share(entries: list[Entry]) -> tuple[int, int]:
    return sum(e.round_trips for e in entries), sum(e.commands for e in entries)


def count_commands(
    text: str | list[str], prefix: str, ids: set[str], start: float, end: float
) -> dict[str, Any]:
    """Round trips and commands per engine message of the interviews `ids`, between `start` and
    `end` (wall clock); the interviews' commands outside it are their sockets' hello and close.

    Each interview's commands are cut into windows, each ending at an append. A feedback.delta
    costs what a window between two delta appends holds (the steady state of a feedback stream,
    lease renewals included); everything else an interview sends is charged to its answers.
    """
    entries = parse(text)
    classify(entries, prefix, ids)
    for entry in entries:
        if entry.category == "interview" and not start <= entry.at <= end:
            entry.category = "socket hello/close"
    per_interview: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.category == "interview" and entry.interview is not None:
            per_interview.setdefault(entry.interview, []).append(entry)
    for own in per_interview.values():
        # A question's deadline is scheduled right after the append that asks it; any other ZADD
        # of the interview is `rearm_deadlines` passing by.
        asked = False
        for entry in own:
            if entry.name == "ZADD" and not asked:
                entry.category = "deadline re-arm"
            asked = entry.name == "EVALSHA append" and "question" in entry.events
        own[:] = [e for e in own if e.category == "interview"]
    delta_cost: list[Entry] = []
    answer_cost: list[Entry] = []
    messages = deltas = answers = 0
    for own in per_interview.values():
        window: list[Entry] = []
        previous: list[str] = []
        for entry in own:
            window.append(entry)
            if entry.name != "EVALSHA append":
                continue
            messages += len(entry.events)
            answers += entry.events.count("answer.accepted")
            deltas += entry.events.count("feedback.delta")
            steady = entry.events == ["feedback.delta"] and previous == ["feedback.delta"]
            (delta_cost if steady else answer_cost).extend(window)
            previous, window = entry.events, []
        answer_cost += window
    steady_rt, steady_cmd = _share(delta_cost)
    steady_windows = sum(1 for e in delta_cost if e.name == "EVALSHA append")
    per_delta_rt = steady_rt / steady_windows if steady_windows else 0.0
    per_delta_cmd = steady_cmd / steady_windows if steady_windows else 0.0
    bank = [e for e in entries if e.category == "question bank cache" and start <= e.at <= end]
    answer_cost += bank  # the evaluation reads the question from the cached bank
    answer_trips, answer_commands = _share(answer_cost)
    # The first delta of each stream shares its window with the evaluation's start: charge it
    # the steady cost and the rest of that window to the answer.
    first_deltas = deltas - steady_windows
    answer_rt = answer_trips - first_deltas * per_delta_rt
    answer_cmd = answer_commands - first_deltas * per_delta_cmd
    delta_rt, delta_cmd = per_delta_rt * deltas, per_delta_cmd * deltas
    mix = Counter(
        e.name
        for e in answer_cost
        if not e.queued and not (e.name == "EVALSHA append" and e.events == ["feedback.delta"])
    )
    # Timers and the like: what the nodes send meanwhile that no interview of the run caused.
    background = [
        e
        for e in entries
        if start <= e.at <= end
        and e.category not in ("interview", "other interviews", "question bank cache")
    ]
    background_rt, _ = _share(background)
    hello = [e for e in entries if e.category in ("socket hello/close", "token check")]
    categories: Counter[str] = Counter()
    for entry in entries:
        categories[entry.category] += entry.round_trips

    def per(value: float, count: int) -> float | None:
        return round(value / count, 3) if count else None

    return {
        "interviews": len(per_interview),
        "messages": messages,
        "answers": answers,
        "deltas": deltas,
        "round_trips_per_message": per(delta_rt + answer_rt, messages),
        "with_background_per_message": per(delta_rt + answer_rt + background_rt, messages),
        "background_round_trips_per_sec": round(background_rt / (end - start), 1)
        if end > start
        else None,
        "background_by_category": dict(
            Counter(e.category for e in background if not e.queued).most_common()
        ),
        "commands_per_message": per(delta_cmd + answer_cmd, messages),
        "per_delta": {
            "round_trips": round(per_delta_rt, 3),
            "commands": round(per_delta_cmd, 3),
            "steady_windows": steady_windows,
        },
        "per_answer": {
            "round_trips": per(answer_rt, answers),
            "commands": per(answer_cmd, answers),
            "messages": per(messages - deltas, answers),
            "round_trips_by_command": {k: per(v, answers) for k, v in mix.most_common()},
        },
        "per_socket_hello_and_close_round_trips": _share(hello)[0],
        "round_trips_by_category": dict(categories.most_common()),
        "run_sec": round(end - start, 2),
        "monitor_round_trips": sum(e.round_trips for e in entries),
        "monitor_commands": sum(e.commands for e in entries),
    }
