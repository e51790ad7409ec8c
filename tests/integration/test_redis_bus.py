"""The Redis session bus and live store over a real Redis; two clients stand for two nodes.

Every test runs twice: on this machine's Redis (`REDIS_URL`) and on a private 3-master Redis
Cluster, where the bus fans out with sharded pub/sub and the deadlines are sharded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.redis_client import ClusterClient, RedisClient
from engine.bus.base import BusUnavailable, Stamped
from engine.bus.redis import RedisBus, RedisLiveStore
from load.harness import HOST, RedisClusterServers
from protocol.v1.messages import UNSEQUENCED, FeedbackDelta, server_adapter
from protocol.v1.wire import encode, number

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
UNREACHABLE_URL = "redis://127.0.0.1:1"
IV = "64f1c0de0000000000000001"

Connect = Callable[..., RedisClient]
Node = Callable[..., RedisBus]


@dataclass
class Backend:
    """Where a test's Redis lives: this machine's Redis, or the private cluster."""

    url: str
    servers: RedisClusterServers | None = None

    def client(self, url: str | None = None, **options: Any) -> RedisClient:
        if self.servers is None:
            return Redis.from_url(url or self.url, **options)
        return ClusterClient.from_url(url or self.url, **options)

    def primaries(self, redis: RedisClient) -> list[Any]:
        assert isinstance(redis, RedisCluster)
        return list(redis.get_primaries())

    async def channels(self, redis: RedisClient, pattern: str) -> list[bytes]:
        """The channels with subscribers (on a cluster: the shard channels of every master)."""
        if not isinstance(redis, RedisCluster):
            names = list(await redis.pubsub_channels(pattern))
        else:
            await redis.initialize()
            names = []
            for node in self.primaries(redis):
                names += await redis.execute_command(
                    "PUBSUB", "SHARDCHANNELS", pattern, target_nodes=node
                )
        return [name if isinstance(name, bytes) else name.encode() for name in names]

    async def subscribers(self, redis: RedisClient, channel: bytes) -> int:
        if not isinstance(redis, RedisCluster):
            return int((await redis.pubsub_numsub(channel))[0][1])
        node = redis.get_node_from_key(channel.decode())
        reply = await redis.execute_command("PUBSUB", "SHARDNUMSUB", channel, target_nodes=node)
        return int(reply[1])

    async def pubsub_clients(self, redis: RedisClient, name: str) -> int:
        """Pub/sub connections named `name`, over every server."""
        if not isinstance(redis, RedisCluster):
            clients = await redis.client_list(_type="pubsub")
            return sum(1 for client in clients if client.get("name") == name)
        await redis.initialize()
        count = 0
        for node in self.primaries(redis):
            clients = await redis.client_list(_type="pubsub", target_nodes=node)
            count += sum(1 for client in clients if client.get("name") == name)
        return count

    def masters_of(self, redis: RedisClient, channels: list[bytes]) -> int:
        """How many servers hold these channels: one without a cluster."""
        if not isinstance(redis, RedisCluster):
            return 1
        return len({str(redis.get_node_from_key(channel.decode())) for channel in channels})


@pytest.fixture(params=["redis", "redis-cluster"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "redis":
        return Backend(REDIS_URL)
    servers: RedisClusterServers = request.getfixturevalue("redis_cluster")
    return Backend(f"redis://{HOST}:{servers.ports[0]}/0", servers)


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
async def connect(backend: Backend, prefix: str) -> AsyncIterator[Connect]:
    """Opens clients (one per node); afterwards deletes the test's keys and closes them all."""
    clients: list[RedisClient] = []

    def open_client(url: str | None = None, **options: Any) -> RedisClient:
        client = backend.client(url, **options)
        clients.append(client)
        return client

    yield open_client
    cleaner = backend.client()
    keys = [key async for key in cleaner.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await cleaner.delete(*keys)
    for client in [cleaner, *clients]:
        await client.aclose()


@pytest.fixture
def redis(connect: Connect) -> RedisClient:
    return connect()


@pytest.fixture
async def nodes(connect: Connect, prefix: str) -> AsyncIterator[Node]:
    """Builds a RedisBus per node, each on its own client, and closes them after the test."""
    buses: list[RedisBus] = []

    def node(client: RedisClient | None = None, **options: Any) -> RedisBus:
        bus = RedisBus(client or connect(), prefix, **options)
        buses.append(bus)
        return bus

    yield node
    for bus in buses:
        await bus.close()


def batch(*marks: int) -> list[FeedbackDelta]:
    return [
        FeedbackDelta(seq=UNSEQUENCED, questionId=f"q{mark}", delta=f"слово {mark}\n«{mark}»")
        for mark in marks
    ]


def seqs(events: list[Stamped]) -> list[int]:
    """The numbers of stamped events, checked against the seq their wire text carries."""
    for event in events:
        assert server_adapter.validate_json(event.frame).seq == event.seq  # type: ignore[attr-defined]
    return [event.seq for event in events]


def by_seq(event: Stamped) -> int:
    return event.seq


async def take(stream: AsyncIterator[Stamped], count: int) -> list[Stamped]:
    async with asyncio.timeout(5):
        return [await anext(stream) for _ in range(count)]


async def drain(stream: AsyncIterator[Stamped]) -> list[Stamped]:
    """Everything left in a subscription; returns only if the subscription ends."""
    async with asyncio.timeout(5):
        return [event async for event in stream]


async def eventually(check: Callable[[], Any]) -> None:
    async with asyncio.timeout(5):
        while not await check():
            await asyncio.sleep(0.02)


# --- append and replay ---------------------------------------------------------------------------


async def test_appends_number_events_one_by_one(nodes: Node) -> None:
    bus = nodes()

    first = await bus.append(IV, batch(1, 2))
    second = await bus.append(IV, batch(3))

    assert first == [
        Stamped(seq, number(encode(event), seq))
        for event, seq in zip(batch(1, 2), [1, 2], strict=True)
    ]
    assert seqs(second) == [3]
    assert await bus.append(IV, []) == []


async def test_concurrent_appends_on_two_nodes_leave_no_gap_and_no_duplicate(nodes: Node) -> None:
    a, b = nodes(), nodes()
    batches = [batch(*range(i * 10, i * 10 + 1 + i % 3)) for i in range(60)]

    results = await asyncio.gather(
        *((a if i % 2 else b).append(IV, events) for i, events in enumerate(batches))
    )

    total = sum(len(events) for events in batches)
    assert sorted(seq for stamped in results for seq in seqs(stamped)) == list(range(1, total + 1))
    for stamped in results:  # a batch gets consecutive seqs
        assert seqs(stamped) == list(range(stamped[0].seq, stamped[0].seq + len(stamped)))
    replay = await b.replay(IV, 0)
    assert replay.complete and replay.head == total
    assert replay.events == sorted((e for stamped in results for e in stamped), key=by_seq)


async def test_replay_after_a_position_returns_the_rest_in_order(nodes: Node) -> None:
    a, b = nodes(), nodes()
    stamped = await a.append(IV, batch(*range(10)))

    replay = await b.replay(IV, 4)

    assert replay.events == stamped[4:]
    assert replay.head == 10 and replay.complete and replay.epoch
    assert (await b.replay(IV, 10)).events == []
    assert (await b.replay(IV, 10)).complete
    assert not (await b.replay(IV, 11)).complete
    assert (await a.replay(IV, 0)).epoch == replay.epoch


async def test_a_new_interview_keeps_the_epoch_its_first_replay_announced(nodes: Node) -> None:
    bus = nodes()

    before = await bus.replay(IV, 0)
    await bus.append(IV, batch(1))

    assert (before.head, before.events, before.complete) == (0, [], True)
    assert not (await bus.replay(IV, 3)).complete
    assert (await bus.replay(IV, 0)).epoch == before.epoch


async def test_trimmed_history_makes_an_old_position_incomplete(nodes: Node) -> None:
    bus = nodes(history_limit=10)
    for start in range(0, 300, 100):
        await bus.append(IV, batch(*range(start, start + 100)))

    oldest = (await bus.replay(IV, 0)).events[0].seq
    from_start = await bus.replay(IV, 0)
    from_oldest = await bus.replay(IV, oldest - 1)

    assert oldest > 1
    assert not from_start.complete
    assert from_oldest.complete and seqs(from_oldest.events) == list(range(oldest, 301))
    assert (await bus.replay(IV, 295)).complete


async def test_a_lost_counter_starts_a_new_epoch(
    nodes: Node, redis: RedisClient, prefix: str
) -> None:
    bus = nodes()
    await bus.append(IV, batch(1, 2, 3, 4, 5))
    old = await bus.replay(IV, 0)
    [meta] = [key async for key in redis.scan_iter(match=f"{prefix}*:meta")]
    await redis.delete(meta)

    stamped = await bus.append(IV, batch(6))
    new = await bus.replay(IV, 0)

    assert seqs(stamped) == [1]
    assert new.epoch != old.epoch
    assert new.events == stamped and new.head == 1  # the old history's entries are gone
    assert not (await bus.replay(IV, 5)).complete  # a client at 5 gets a snapshot


async def test_a_lost_stream_changes_the_epoch(
    nodes: Node, redis: RedisClient, prefix: str
) -> None:
    bus = nodes()
    await bus.append(IV, batch(1, 2, 3, 4, 5))
    old = await bus.replay(IV, 0)
    [stream] = [key async for key in redis.scan_iter(match=f"{prefix}*:stream")]
    await redis.delete(stream)

    stamped = await bus.append(IV, batch(6))

    assert seqs(stamped) == [6]
    assert (await bus.replay(IV, 0)).epoch != old.epoch
    assert not (await bus.replay(IV, 3)).complete
    assert (await bus.replay(IV, 5)).events == stamped


async def test_append_and_replay_are_one_round_trip_each(
    nodes: Node, monkeypatch: pytest.MonkeyPatch, backend: Backend
) -> None:
    bus = nodes()
    await bus.append(IV, batch(0))  # the first calls on a server may have to load the scripts
    await bus.replay(IV, 0)
    sent: list[bytes] = []
    original = Connection.send_packed_command

    async def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | str) else command
        sent.append(b"".join(c if isinstance(c, bytes) else str(c).encode() for c in chunks))
        await original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)

    for mark in range(5):
        await bus.append(IV, batch(mark, mark + 100))
    appended = list(sent)
    sent.clear()
    await bus.replay(IV, 3)

    assert len(appended) == 5 and all(b"EVALSHA" in command for command in appended)
    assert len(sent) == 1
    if backend.servers is None:  # a MULTI/EXEC transaction
        assert b"XRANGE" in sent[0] and b"HMGET" in sent[0]
    else:  # a script: redis-py's cluster transactions cost several times its CPU
        assert b"EVALSHA" in sent[0]


# --- fan-out -------------------------------------------------------------------------------------


async def test_a_subscriber_on_one_node_gets_appends_from_another_in_order(nodes: Node) -> None:
    a, b = nodes(), nodes()
    subscription = await a.subscribe(IV)
    stream = aiter(subscription)

    appended = [*await b.append(IV, batch(1, 2)), *await b.append(IV, batch(3))]

    assert await take(stream, 3) == appended
    await subscription.close()
    assert await drain(stream) == []


async def test_every_subscriber_of_an_interview_gets_every_event(nodes: Node) -> None:
    a, b = nodes(), nodes()
    first, second = await a.subscribe(IV), await a.subscribe(IV)
    remote = await b.subscribe(IV)

    appended = await a.append(IV, batch(1, 2, 3))

    for subscription in (first, second, remote):
        assert await take(aiter(subscription), 3) == appended
    other = await a.append("another-interview", batch(9))
    assert seqs(other) == [1]
    await a.append(IV, batch(4))
    assert seqs(await take(aiter(first), 1)) == [4]  # nothing of the other interview


async def test_one_pubsub_connection_per_node_and_the_last_close_unsubscribes(
    nodes: Node, connect: Connect, redis: RedisClient, prefix: str, backend: Backend
) -> None:
    name = f"node-{uuid.uuid4().hex[:8]}"
    bus = nodes(connect(client_name=name))
    first, second = await bus.subscribe(IV), await bus.subscribe(IV)
    others = [await bus.subscribe(f"other-{i}") for i in range(3)]

    async def channels() -> list[bytes]:
        return await backend.channels(redis, f"{prefix}*")

    [channel] = [c for c in await channels() if IV.encode() in c]
    assert len(await channels()) == 4
    # One per node and Redis server: on a cluster, one per master that serves these channels.
    assert await backend.pubsub_clients(redis, name) == backend.masters_of(redis, await channels())
    assert await backend.subscribers(redis, channel) == 1

    await first.close()
    assert channel in await channels()
    assert await drain(aiter(first)) == []
    await second.close()
    await eventually(lambda: _absent(channel, channels))
    for subscription in others:
        await subscription.close()
    await eventually(lambda: _empty(channels))


async def _absent(channel: bytes, channels: Callable[[], Any]) -> bool:
    return channel not in await channels()


async def _empty(channels: Callable[[], Any]) -> bool:
    return not await channels()


async def test_a_restarted_history_ends_live_subscriptions(
    nodes: Node, redis: RedisClient, prefix: str
) -> None:
    a, b = nodes(), nodes()
    subscription = await a.subscribe(IV)
    stream = aiter(subscription)
    await b.append(IV, batch(1, 2))
    assert seqs(await take(stream, 2)) == [1, 2]
    [meta] = [key async for key in redis.scan_iter(match=f"{prefix}*:meta")]
    await redis.delete(meta)

    await b.append(IV, batch(3))

    assert await drain(stream) == []  # the client reconnects and resumes from a snapshot


async def test_close_ends_every_subscription(nodes: Node) -> None:
    bus = nodes()
    subscriptions = [await bus.subscribe(IV), await bus.subscribe("another-interview")]

    await bus.close()

    for subscription in subscriptions:
        assert await drain(aiter(subscription)) == []
    with pytest.raises(BusUnavailable):
        await bus.subscribe(IV)


# --- losing Redis --------------------------------------------------------------------------------


class RedisProxy:
    """A TCP proxy in front of Redis that can be cut, to take Redis away from one node only."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._parts = parts
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        auth = self._parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        return urlunsplit(self._parts._replace(netloc=netloc))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()


class Proxies:
    """A proxy in front of every server of the backend; the node that connects through them
    (on a cluster, with its addresses remapped to the proxies) loses Redis when they are cut."""

    def __init__(self, backend: Backend) -> None:
        if backend.servers is None:
            self._proxies = [RedisProxy(REDIS_URL)]
        else:
            self._proxies = [RedisProxy(f"redis://{HOST}:{p}/0") for p in backend.servers.ports]
        self.cluster = backend.servers is not None

    @property
    def url(self) -> str:
        return self._proxies[0].url

    def options(self) -> dict[str, Any]:
        """Client options besides the URL: a lost connection is tried again only once."""
        options: dict[str, Any] = {"retry": Retry(NoBackoff(), 1)}
        if self.cluster:
            options["address_remap"] = self._remap
        return options

    def _remap(self, address: tuple[str, int]) -> tuple[str, int]:
        for proxy in self._proxies:
            if proxy.target == address:
                return HOST, proxy.port
        return address

    async def start(self) -> None:
        for proxy in self._proxies:
            await proxy.start()

    async def cut(self) -> None:
        for proxy in self._proxies:
            await proxy.cut()


@pytest.fixture
async def proxy(backend: Backend) -> AsyncIterator[Proxies]:
    proxies = Proxies(backend)
    await proxies.start()
    yield proxies
    await proxies.cut()


async def test_subscribers_outlive_a_lost_connection_and_catch_up(
    nodes: Node, connect: Connect, proxy: Proxies
) -> None:
    a = nodes(connect(proxy.url, **proxy.options()))
    b = nodes()
    subscription = await a.subscribe(IV)
    stream = aiter(subscription)
    await b.append(IV, batch(1))
    assert seqs(await take(stream, 1)) == [1]

    await proxy.cut()
    with pytest.raises(BusUnavailable):
        await a.append(IV, batch(0))
    with pytest.raises(BusUnavailable):
        await a.replay(IV, 0)
    with pytest.raises(BusUnavailable):
        await a.subscribe("another-interview")
    missed = await b.append(IV, batch(2, 3))  # published while node A cannot hear it
    await proxy.start()
    later = await b.append(IV, batch(4))

    assert await take(stream, 3) == [*missed, *later]
    own = await a.append(IV, batch(5))
    assert await take(stream, 1) == own


async def test_subscriptions_end_when_the_history_was_lost_meanwhile(
    nodes: Node, connect: Connect, proxy: Proxies, redis: RedisClient, prefix: str
) -> None:
    a = nodes(connect(proxy.url, **proxy.options()))
    b = nodes()
    subscription = await a.subscribe(IV)
    stream = aiter(subscription)
    await b.append(IV, batch(1, 2))
    assert seqs(await take(stream, 2)) == [1, 2]

    await proxy.cut()
    [meta] = [key async for key in redis.scan_iter(match=f"{prefix}*:meta")]
    await redis.delete(meta)
    await b.append(IV, batch(3))
    await proxy.start()

    assert await drain(stream) == []


async def test_unreachable_redis_raises_bus_unavailable(connect: Connect, prefix: str) -> None:
    client = connect(UNREACHABLE_URL, retry=Retry(NoBackoff(), 0))
    bus, store = RedisBus(client, prefix), RedisLiveStore(client, prefix)
    calls = [
        bus.append(IV, batch(1)),
        bus.replay(IV, 0),
        bus.subscribe(IV),
        store.load(IV),
        store.save(IV, {"version": 1}, 0),
        store.schedule(IV, 1.0),
        store.cancel(IV),
        store.claim_due(2.0),
        store.acquire_lease("lease", "node-a", 1.0),
        store.renew_lease("lease", "node-a", 1.0),
        store.release_lease("lease", "node-a"),
    ]
    try:
        for call in calls:
            with pytest.raises(BusUnavailable):
                await call
    finally:
        await bus.close()


# --- live store ----------------------------------------------------------------------------------


async def test_save_is_a_compare_and_set_on_version(connect: Connect, prefix: str) -> None:
    a, b = RedisLiveStore(connect(), prefix), RedisLiveStore(connect(), prefix)
    assert await a.load(IV) is None

    assert await a.save(IV, {"version": 1, "status": "asking", "answers": ["да"]}, 0)
    assert await b.load(IV) == {"version": 1, "status": "asking", "answers": ["да"]}
    assert await b.save(IV, {"version": 2, "status": "evaluating"}, 1)
    assert not await a.save(IV, {"version": 2, "status": "stale"}, 1)
    assert await a.load(IV) == {"version": 2, "status": "evaluating"}

    outcomes = await asyncio.gather(
        a.save(IV, {"version": 3, "by": "a"}, 2), b.save(IV, {"version": 3, "by": "b"}, 2)
    )
    assert sorted(outcomes) == [False, True]
    assert (await a.load(IV) or {})["by"] == ("a" if outcomes[0] else "b")


async def test_each_due_interview_is_claimed_by_exactly_one_node(
    connect: Connect, prefix: str
) -> None:
    a, b = RedisLiveStore(connect(), prefix), RedisLiveStore(connect(), prefix)
    for round_ in range(20):
        due = {f"due-{round_}-{i}" for i in range(30)}
        for i, interview_id in enumerate(sorted(due)):
            await (a if i % 2 else b).schedule(interview_id, 1000.0 + i)
        await a.schedule(f"later-{round_}", 5000.0)

        claims = await asyncio.gather(
            a.claim_due(2000.0, 7), b.claim_due(2000.0, 7), a.claim_due(2000.0), b.claim_due(2000.0)
        )

        claimed = [interview_id for claim in claims for interview_id in claim]
        assert sorted(claimed) == sorted(due)  # every one, none twice
        assert await a.claim_due(2000.0) == []
    assert sorted(await b.claim_due(9000.0)) == sorted(f"later-{r}" for r in range(20))


async def test_schedule_overwrites_and_cancel_removes(redis: RedisClient, prefix: str) -> None:
    store = RedisLiveStore(redis, prefix)
    await store.schedule("moved", 10.0)
    await store.schedule("moved", 30.0)
    await store.schedule("cancelled", 10.0)
    await store.cancel("cancelled")
    await store.schedule("first", 5.0)

    assert await store.claim_due(20.0) == ["first"]
    assert await store.claim_due(30.0) == ["moved"]


async def test_leases_are_exclusive_and_only_their_owner_renews_or_releases(
    connect: Connect, prefix: str
) -> None:
    a, b = RedisLiveStore(connect(), prefix), RedisLiveStore(connect(), prefix)

    assert await a.acquire_lease("eval:1", "node-a", 5)
    assert not await b.acquire_lease("eval:1", "node-b", 5)
    assert await a.acquire_lease("eval:1", "node-a", 5)  # its owner may take it again
    assert not await b.renew_lease("eval:1", "node-b", 5)
    assert await a.renew_lease("eval:1", "node-a", 5)
    await b.release_lease("eval:1", "node-b")
    assert not await b.acquire_lease("eval:1", "node-b", 5)
    await a.release_lease("eval:1", "node-a")
    assert await b.acquire_lease("eval:1", "node-b", 0.2)

    probe = connect()

    async def expired() -> bool:
        return not await probe.exists(f"{prefix}lease:eval:1")

    await eventually(expired)

    assert not await b.renew_lease("eval:1", "node-b", 5)
    assert await a.acquire_lease("eval:1", "node-a", 5)
    winners = await asyncio.gather(
        *((a if i % 2 else b).acquire_lease("eval:2", f"node-{i}", 5) for i in range(10))
    )
    assert winners.count(True) == 1


async def test_an_append_retried_after_a_lost_reply_is_applied_once(
    nodes: Node, redis: RedisClient, prefix: str
) -> None:
    bus = nodes()
    await bus.append(IV, batch(1))
    # What redis-py sends again when the connection drops after Redis ran the script: the same
    # script with the same arguments, batch id included.
    calls: list[Any] = []
    script = bus._append

    async def twice(*, keys: list[str], args: list[str | int]) -> Any:
        calls.append(await script(keys=keys, args=args))
        return await script(keys=keys, args=args)

    bus._append = twice  # type: ignore[assignment]
    stamped = await bus.append(IV, batch(2, 3))
    assert calls == [2] and seqs(stamped) == [2, 3]
    replay = await bus.replay(IV, 0)
    assert replay.head == 3 and seqs(replay.events) == [1, 2, 3]


# --- only on a cluster ---------------------------------------------------------------------------


@pytest.fixture
def cluster_backend(redis_cluster: RedisClusterServers) -> Backend:
    return Backend(f"redis://{HOST}:{redis_cluster.ports[0]}/0", redis_cluster)


@pytest.fixture
async def on_cluster(cluster_backend: Backend, prefix: str) -> AsyncIterator[Connect]:
    """`connect` on the cluster, for the tests that only a cluster has."""
    async with _clients(cluster_backend, prefix) as open_client:
        yield open_client


@contextlib.asynccontextmanager
async def _clients(backend: Backend, prefix: str) -> AsyncIterator[Connect]:
    clients: list[RedisClient] = []

    def open_client(url: str | None = None, **options: Any) -> RedisClient:
        client = backend.client(url, **options)
        clients.append(client)
        return client

    try:
        yield open_client
    finally:
        cleaner = backend.client()
        keys = [key async for key in cleaner.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await cleaner.delete(*keys)
        for client in [cleaner, *clients]:
            await client.aclose()


def _slot(redis: RedisClient, key: str | bytes) -> int:
    assert isinstance(redis, RedisCluster)
    return redis.keyslot(key)


async def test_an_interviews_keys_and_channel_share_one_slot(
    on_cluster: Connect, prefix: str
) -> None:
    redis = on_cluster()
    bus, store = RedisBus(redis, prefix), RedisLiveStore(redis, prefix)
    subscription = await bus.subscribe(IV)
    await bus.append(IV, batch(1))
    await bus.replay(IV, 0)
    assert await store.save(IV, {"version": 1}, 0)
    assert await store.acquire_lease(f"eval:{{{IV}}}:0", "node-a", 5)

    keys = [key async for key in redis.scan_iter(match=f"{prefix}*{IV}*")]
    channel = f"{prefix}iv:{{{IV}}}:events"
    assert len(keys) == 4  # meta, stream, state, the lease
    assert {_slot(redis, key) for key in [*keys, channel]} == {_slot(redis, IV)}
    await subscription.close()
    await bus.close()


async def test_deadlines_are_spread_over_every_master_and_each_claimed_once(
    on_cluster: Connect, prefix: str, redis_cluster: RedisClusterServers
) -> None:
    a, b = RedisLiveStore(on_cluster(), prefix), RedisLiveStore(on_cluster(), prefix)
    due = {f"{i:024x}" for i in range(200)}
    for i, interview_id in enumerate(sorted(due)):
        await (a if i % 2 else b).schedule(interview_id, 1000.0 + i)

    holders = set()
    for server in redis_cluster.servers:
        with server.client() as redis:
            if redis.keys(f"{prefix}deadlines:*"):
                holders.add(server.port)
    claimed: list[str] = []
    while batch_ := [*await a.claim_due(2000.0, 20), *await b.claim_due(2000.0, 20)]:
        claimed += batch_

    assert len(holders) == redis_cluster.masters
    assert sorted(claimed) == sorted(due)


async def test_subscribers_follow_their_slot_to_another_master(
    on_cluster: Connect, prefix: str, redis_cluster: RedisClusterServers
) -> None:
    a, b = RedisBus(on_cluster(), prefix), RedisBus(on_cluster(), prefix)
    subscription = await a.subscribe(IV)
    stream = aiter(subscription)
    await b.append(IV, batch(1, 2))
    assert seqs(await take(stream, 2)) == [1, 2]
    key = f"{prefix}iv:{{{IV}}}:meta"
    target = next(s for s in redis_cluster.servers if s is not redis_cluster.master_of(key))

    await asyncio.to_thread(redis_cluster.move_slot, key, target)  # the server unsubscribes A
    moved = await b.append(IV, batch(3, 4))

    assert seqs(await take(stream, 2)) == [3, 4]
    assert moved[0].seq == 3
    await a.close()
    await b.close()


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A cluster whose masters have a replica each, to fail one over (a short node timeout)."""
    folder = tmp_path_factory.mktemp("redis-cluster-replicas")
    with RedisClusterServers(folder, replicas=1, node_timeout_ms=2000) as cluster:
        cluster.start()
        yield cluster


async def test_a_failover_loses_no_event_and_no_state(
    replicated: RedisClusterServers, prefix: str
) -> None:
    backend = Backend(f"redis://{HOST}:{replicated.ports[0]}/0", replicated)
    async with _clients(backend, prefix) as connect:
        a, b = RedisBus(connect(), prefix), RedisBus(connect(), prefix)
        store = RedisLiveStore(connect(), prefix)
        subscription = await a.subscribe(IV)
        stream = aiter(subscription)
        await b.append(IV, batch(1, 2))
        assert await store.save(IV, {"version": 1, "status": "asking"}, 0)
        await store.schedule(IV, 1000.0)
        assert seqs(await take(stream, 2)) == [1, 2]
        key = f"{prefix}iv:{{{IV}}}:meta"
        for server in replicated.servers:  # every replica has it all
            with server.client() as redis:
                if redis.info("replication")["role"] == "master":
                    assert redis.execute_command("WAIT", 1, 5000) == 1

        await asyncio.to_thread(replicated.fail_over, key)
        after: list[Stamped] = []

        async def appended() -> bool:
            with contextlib.suppress(BusUnavailable):
                after.extend(await b.append(IV, batch(3)))
            return bool(after)

        async with asyncio.timeout(30):
            while not await appended():
                await asyncio.sleep(0.1)

        assert seqs(after) == [3]  # the history went on where it was
        async with asyncio.timeout(30):  # A's listener found the new master and caught up
            assert seqs([await anext(stream)]) == [3]
        assert await store.load(IV) == {"version": 1, "status": "asking"}
        assert await store.claim_due(2000.0) == [IV]
        assert (await b.replay(IV, 0)).events[:2] == (await a.replay(IV, 0)).events[:2]
        await a.close()
        await b.close()
