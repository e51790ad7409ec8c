"""Choosing a new interview's questions: unseen first, spread across topics, weak ones sooner."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    question_id: str
    topic: str
    difficulty: int


@dataclass(frozen=True, slots=True)
class History:
    """What the user has been asked at this level: when (order) and how they did per topic."""

    asked: dict[str, int]  # question id -> how many interviews ago it was last asked (0 = latest)
    topic_scores: dict[str, float]  # topic -> mean score 0-10


def _topic_priority(topic: str, history: History, rng: random.Random) -> float:
    """Lower comes first: weak topics, then untried ones, then strong ones; jitter breaks ties."""
    score = history.topic_scores.get(topic)
    base = 5.5 if score is None else score
    return base + rng.uniform(0, 1.5)


def select(
    candidates: list[Candidate], history: History, n: int, rng: random.Random | None = None
) -> list[str]:
    """Pick up to `n` question ids.

    No question the user has seen while unseen ones remain; round-robin across topics ordered by
    weakness, so a spread of topics is asked and low-scoring topics come back first.
    """
    rng = rng or random.Random()
    unseen = [c for c in candidates if c.question_id not in history.asked]
    seen = [c for c in candidates if c.question_id in history.asked]
    picked: list[str] = []
    for pool in (unseen, seen):
        if len(picked) >= n:
            break
        picked.extend(_round_robin(pool, history, n - len(picked), rng))
    return picked


def _round_robin(pool: list[Candidate], history: History, n: int, rng: random.Random) -> list[str]:
    by_topic: dict[str, list[Candidate]] = defaultdict(list)
    for c in pool:
        by_topic[c.topic].append(c)
    for items in by_topic.values():
        rng.shuffle(items)
        # Among seen questions, the ones asked longest ago come back first.
        items.sort(key=lambda c: -history.asked.get(c.question_id, 10**6))
    order = sorted(by_topic, key=lambda t: _topic_priority(t, history, rng))
    picked: list[str] = []
    while len(picked) < n and any(by_topic[t] for t in order):
        for topic in order:
            if by_topic[topic] and len(picked) < n:
                picked.append(by_topic[topic].pop(0).question_id)
    return picked
