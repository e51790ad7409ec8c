"""Choosing questions: unseen first, spread across topics, weak topics sooner."""

from __future__ import annotations

import random

from engine.questions.bank import LEVELS, TOPICS, load_bank
from engine.questions.selection import Candidate, History, select


def bank(per_topic: int = 4, topics: tuple[str, ...] = ("a", "b", "c", "d")) -> list[Candidate]:
    return [Candidate(f"{t}{i}", t, 1) for t in topics for i in range(per_topic)]


def test_spreads_across_topics() -> None:
    picked = select(bank(), History({}, {}), 4, random.Random(1))
    assert len(picked) == 4
    assert {p[0] for p in picked} == {"a", "b", "c", "d"}


def test_never_repeats_while_unseen_remain() -> None:
    candidates = bank(per_topic=2)
    asked = {c.question_id: 0 for c in candidates[:5]}
    picked = select(candidates, History(asked, {}), 3, random.Random(2))
    assert not set(picked) & set(asked)


def test_fills_with_the_oldest_seen_questions_when_unseen_run_out() -> None:
    candidates = bank(per_topic=1)
    asked = {"a0": 0, "b0": 3, "c0": 1}
    picked = select(candidates, History(asked, {}), 3, random.Random(3))
    assert picked[0] == "d0", "the unseen one first"
    assert picked[1] == "b0", "then the one asked longest ago"


def test_weak_topics_come_first() -> None:
    scores = {"a": 9.0, "b": 1.0, "c": 8.5, "d": 9.5}
    for seed in range(20):
        picked = select(bank(), History({}, scores), 1, random.Random(seed))
        assert picked == [p for p in picked if p.startswith("b")], picked


def test_shipped_bank_is_valid_and_large_enough() -> None:
    questions = load_bank()
    for level in LEVELS:
        at_level = [q for q in questions if q.level == level]
        assert len(at_level) >= 30
        assert {q.tags[0] for q in at_level} <= set(TOPICS)
        assert len({q.tags[0] for q in at_level}) >= 8
    middle_topics = {q.tags[0] for q in questions if q.level == "middle"}
    assert "system-design" in middle_topics
