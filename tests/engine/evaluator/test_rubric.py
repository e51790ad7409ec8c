"""The bank's rubrics and how claims are found in an answer."""

from __future__ import annotations

import pytest

from engine.evaluator.base import ClaimSpec, MisconceptionSpec, RubricPoint
from engine.evaluator.rubric import compile_phrase, compile_rubric, match
from engine.evaluator.text import analyse, canonical, normalize
from engine.questions.bank import BankQuestion, load_bank, rubric_problems


def test_every_bank_question_has_a_complete_rubric_in_both_languages() -> None:
    for q in load_bank():
        assert rubric_problems(q) == [], q.slug
        for point in q.keyPoints:
            assert point.claim is not None and point.followUp is not None
            for side in (point.claim.ru, point.claim.en):
                assert side.says and all(compile_phrase(p) for p in side.says), q.slug
            assert point.followUp.ru.strip() and point.followUp.en.strip()
            for wrong in point.misconceptions:
                for side in (wrong.claim.ru, wrong.claim.en):
                    assert side.says and all(compile_phrase(p) for p in side.says), q.slug
                assert wrong.text.ru and wrong.text.en
                assert wrong.correction.ru and wrong.correction.en


def test_a_question_without_a_rubric_is_refused_by_the_bank_check() -> None:
    q = load_bank()[0]
    bare = BankQuestion.model_validate(
        {
            **q.model_dump(),
            "keyPoints": [{"ru": "пункт", "en": "point", "keywords": ["x"]}],
        }
    )
    problems = rubric_problems(bare)
    assert "key point 0: no claim" in problems and "key point 0: no followUp" in problems
    assert any("misconceptions" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("O(n log n)", "o(nlogn)"),
        ("O(N^2)", "o(n2)"),
        ("n²", "o(n2)"),
        ("за логарифм", "o(logn)"),
        ("constant time", "o(1)"),
        ("линейное время", "o(n)"),
        ("О(1)", "o(1)"),  # a Cyrillic "О"
    ],
)
def test_complexity_is_one_token_however_it_is_written(text: str, token: str) -> None:
    assert token in canonical(normalize(text)).split()


STACK = RubricPoint(
    text=("Стек — LIFO", "A stack is LIFO"),
    claims=(ClaimSpec(("stack", "стек"), ("lifo", "last in first out")),),
    misconceptions=(
        MisconceptionSpec(
            (ClaimSpec(("стек",), ("fifo",)), ClaimSpec(("stack",), ("fifo",))),
            ("Стек — FIFO", "A stack is FIFO"),
            ("Стек — LIFO.", "A stack is LIFO."),
        ),
    ),
)
QUEUE = RubricPoint(
    text=("Очередь — FIFO", "A queue is FIFO"),
    claims=(ClaimSpec(("queue", "очередь"), ("fifo", "first in first out")),),
    misconceptions=(
        MisconceptionSpec(
            (ClaimSpec(("очередь",), ("lifo",)), ClaimSpec(("queue",), ("lifo",))),
            ("Очередь — LIFO", "A queue is LIFO"),
            ("Очередь — FIFO.", "A queue is FIFO."),
        ),
    ),
)


def claims(answer: str) -> list[tuple[int, int, bool]]:
    """(point, misconception, negated) of every claim found."""
    hits = match(compile_rubric((STACK, QUEUE)), analyse(answer))
    return sorted({(h.claim.point, h.claim.misconception, h.negated) for h in hits})


def test_a_claim_counts_about_its_own_subject_only() -> None:
    assert claims("A stack is LIFO and a queue is FIFO.") == [(0, -1, False), (1, -1, False)]
    assert claims("A stack is FIFO, a queue is LIFO.") == [(0, 0, False), (1, 0, False)]
    assert claims("FIFO is a queue.") == [(1, -1, False)]


def test_negation_before_between_and_after_is_seen() -> None:
    assert claims("A stack is not FIFO.") == [(0, 0, True)]
    assert claims("Стек не работает по FIFO.") == [(0, 0, True)]
    assert claims("Стек работает по LIFO.") == [(0, -1, False)]


def test_a_pronoun_or_a_dropped_subject_refers_back() -> None:
    assert (0, -1, False) in claims("Stack. It is LIFO.")
    assert claims("Стек — LIFO, то есть last in, first out.") == [(0, -1, False)]


def test_a_subject_named_for_comparison_is_not_the_subject() -> None:
    found = claims("Unlike a queue, the stack is LIFO.")
    assert (0, -1, False) in found and (1, 0, False) not in found


def test_lists_and_statements_are_told_apart() -> None:
    listed = analyse("line coverage, branch coverage, coverage.py, pytest-cov, mutation testing")
    stated = analyse("Branch coverage checks that both outcomes of every condition ran.")
    assert listed.sentences[0].listlike and not listed.sentences[0].statement
    assert stated.sentences[0].statement and not stated.sentences[0].listlike
