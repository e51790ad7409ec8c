"""SessionBus and LiveStore: the in-process adapters and the Redis ones keep the same promises."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from redis.asyncio import Redis

from engine.bus.base import LiveStore, SessionBus
from engine.bus.memory import MemoryBus, MemoryLiveStore
from engine.bus.redis import RedisBus, RedisLiveStore
from protocol.v1.messages import UNSEQUENCED, FeedbackDelta, server_adapter
from tests.contracts.conftest import ADAPTERS

IV = "64f1c0de00000000000000aa"


def deltas(*texts: str) -> list[FeedbackDelta]:
    return [FeedbackDelta(seq=UNSEQUENCED, questionId="q", delta=t) for t in texts]


@pytest.fixture(params=ADAPTERS)
async def bus(request: pytest.FixtureRequest, redis: Redis, prefix: str):  # type: ignore[no-untyped-def]
    adapter: SessionBus = MemoryBus() if request.param == "embedded" else RedisBus(redis, prefix)
    yield adapter
    await adapter.close()


@pytest.fixture(params=ADAPTERS)
def live(request: pytest.FixtureRequest, redis: Redis, prefix: str) -> LiveStore:
    return MemoryLiveStore() if request.param == "embedded" else RedisLiveStore(redis, prefix)


async def test_appended_events_are_numbered_and_sent_as_wire_frames(bus: SessionBus) -> None:
    first = await bus.append(IV, deltas("a", "b"))
    second = await bus.append(IV, deltas("c"))
    assert [e.seq for e in first + second] == [1, 2, 3]
    for event, text in zip(first + second, "abc", strict=True):
        frame = server_adapter.validate_json(event.frame)
        assert frame.seq == event.seq and frame.delta == text  # type: ignore[attr-defined]


async def test_a_replay_returns_the_history_after_a_position(bus: SessionBus) -> None:
    await bus.append(IV, deltas("a", "b", "c"))
    replay = await bus.replay(IV, 1)
    assert replay.complete and replay.head == 3
    assert [json.loads(e.frame)["delta"] for e in replay.events] == ["b", "c"]
    assert (await bus.replay(IV, 0)).epoch == replay.epoch, "one history, one epoch"
    assert not (await bus.replay(IV, 7)).complete, "a position beyond the head is not covered"


async def test_a_subscriber_gets_what_is_appended_after_it_subscribed(bus: SessionBus) -> None:
    await bus.append(IV, deltas("before"))
    subscription = await bus.subscribe(IV)
    await bus.append(IV, deltas("x", "y"))
    received = []
    async with asyncio.timeout(5):
        async for event in subscription:
            received.append(event.seq)
            if len(received) == 2:
                break
    assert received == [2, 3]
    await subscription.close()


async def test_a_save_only_succeeds_on_the_version_it_read(live: LiveStore) -> None:
    assert await live.load(IV) is None
    assert await live.save(IV, {"version": 1, "x": "a"}, 0)
    assert await live.load(IV) == {"version": 1, "x": "a"}
    assert not await live.save(IV, {"version": 2, "x": "late"}, 0), "someone saved first"
    assert await live.save(IV, {"version": 2, "x": "b"}, 1)
    assert (await live.load(IV) or {})["x"] == "b"


async def test_a_due_deadline_is_claimed_once(live: LiveStore) -> None:
    now = time.time()
    await live.schedule("due", now - 1)
    await live.schedule("later", now + 3600)
    await live.schedule("cancelled", now - 1)
    await live.cancel("cancelled")
    claims = await asyncio.gather(*(live.claim_due(now) for _ in range(5)))
    assert sorted(i for claim in claims for i in claim) == ["due"]


async def test_a_lease_has_one_owner_until_it_lapses(live: LiveStore) -> None:
    assert await live.acquire_lease("eval", "a", 0.2)
    assert not await live.acquire_lease("eval", "b", 5)
    assert not await live.renew_lease("eval", "b", 5)
    assert await live.renew_lease("eval", "a", 0.2)
    await live.release_lease("eval", "b")  # not the owner: nothing happens
    assert not await live.acquire_lease("eval", "b", 5)
    async with asyncio.timeout(5):
        while not await live.acquire_lease("eval", "b", 5):  # until a's lease lapses
            await asyncio.sleep(0.05)
    assert not await live.renew_lease("eval", "a", 5)
