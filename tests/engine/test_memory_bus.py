"""The in-process session bus: a finished interview's history does not stay for ever."""

from __future__ import annotations

import asyncio

from engine.bus.memory import MemoryBus
from protocol.v1.messages import UNSEQUENCED, FeedbackDelta, InterviewAbandoned


async def wait_until(check: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_finished_interview_is_forgotten_after_its_retention() -> None:
    bus = MemoryBus(finished_retention_sec=0.05)
    delta = FeedbackDelta(seq=UNSEQUENCED, questionId="q", delta="x")
    await bus.append("running", [delta])
    await bus.append("finished", [delta, InterviewAbandoned(seq=UNSEQUENCED, reason="inactive")])
    assert bus.histories == 2
    await wait_until(lambda: bus.histories == 1)
    assert (await bus.replay("running", 0)).head == 1
    replay = await bus.replay("finished", 0)  # a client that comes back gets a snapshot
    assert replay.head == 0 and replay.events == []
    await bus.close()


async def test_a_history_someone_still_follows_is_kept_until_they_leave() -> None:
    bus = MemoryBus(finished_retention_sec=0.05)
    subscription = await bus.subscribe("finished")
    await bus.append("finished", [InterviewAbandoned(seq=UNSEQUENCED, reason="inactive")])
    await asyncio.sleep(0.2)  # several retention periods pass while the subscriber stays
    assert bus.histories == 1
    await subscription.close()
    await wait_until(lambda: bus.histories == 0)
    await bus.close()
