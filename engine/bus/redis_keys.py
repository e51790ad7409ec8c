"""Where the Redis adapters of the session ports keep things (docs/redis.md has the slot plan).

All keys are under the prefix (`REDIS_KEY_PREFIX`). `{id}` is a hash tag: on a Redis Cluster
every key and the channel of one interview hash to one slot, so each script runs on one node.
  iv:{id}:meta          hash: `head` (the last seq given) and `epoch` (names this history); kept
                        in one key so a lost counter always comes with a new epoch; `batch`/`first`
                        name the last append, so that a command retried after a lost reply does
                        not append twice
  iv:{id}:stream        the history: entry id `<seq>-0`, the event's wire text in field `e`
  iv:{id}:state         hash: `v` (the state's version) and `s` (the state JSON)
  iv:{id}:events        the channel (PUBLISH; SPUBLISH on a cluster): each appended batch as lines,
                        the first seq, the epoch, then one event's wire text per line (JSON text
                        never holds a raw newline), so subscribers hand frames on unparsed
  lease:<key>           the lease's owner, expiring with the lease; an interview's lease keys
                        name it as `{id}` (`lease:eval:{id}:<question>`), so they share its slot
  deadlines             sorted set of interview ids scored by their deadline (epoch seconds); on a
                        cluster `deadlines:{d<n>}`, n in 0..DEADLINE_SHARDS-1, an interview in
                        shard crc32(id) mod DEADLINE_SHARDS
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator

from core.redis_client import UNREACHABLE
from engine.bus.base import BusUnavailable

# Sorted sets the deadlines are spread over on a cluster: enough that they land on every master
# of a small cluster and no single set is hot, few enough that a claim round stays cheap.
DEADLINE_SHARDS = 16


def interview_key(prefix: str, interview_id: str, part: str) -> str:
    return f"{prefix}iv:{{{interview_id}}}:{part}"


def lease_key(prefix: str, key: str) -> str:
    return f"{prefix}lease:{key}"


def deadline_keys(prefix: str, sharded: bool) -> list[str]:
    """The deadline sets: one on a single Redis, DEADLINE_SHARDS tagged ones on a cluster."""
    if not sharded:
        return [f"{prefix}deadlines"]
    return [f"{prefix}deadlines:{{d{n}}}" for n in range(DEADLINE_SHARDS)]


def deadline_shard(interview_id: str, shards: int) -> int:
    """The shard of an interview's deadline: the same on every node and every run."""
    return zlib.crc32(interview_id.encode()) % shards


@contextlib.contextmanager
def reachable() -> Iterator[None]:
    """Turn "Redis cannot serve this now" into `BusUnavailable` (the client is told to retry)."""
    try:
        yield
    except UNREACHABLE as exc:
        raise BusUnavailable("Redis is unreachable") from exc


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
