"""The local evaluator's figures on the labelled set may not fall below these floors.

The floors sit a little below what the grader reaches on the test half (and at or above the
issue's targets), so a change that makes grading worse fails the suite. `make eval` prints the
same figures.
"""

from __future__ import annotations

from collections import Counter

import pytest

from engine.evaluator.bankindex import bank_request
from engine.evaluator.local import grade
from engine.questions.bank import load_bank
from tests.evaluator.labelled import HALVES, KINDS, Figures, Graded, figures, load

FLOORS = {"spearman": 0.90, "auc": 0.98, "mae": 1.0, "false_pass": 0.03, "false_fail": 0.06}


def graded(half: str) -> list[Graded]:
    out = []
    for item in load(half):
        request = bank_request(item.question, item.answer, item.language)
        evaluation, _ = grade(request)
        out.append(Graded(item, evaluation.score, request.level))
    return out


@pytest.fixture(scope="module")
def test_half() -> Figures:
    return figures(graded("test"))


def test_the_labelled_set_is_what_it_claims_to_be() -> None:
    halves = {half: load(half) for half in HALVES}
    items = [item for half in halves.values() for item in half]
    questions = {half: {i.question for i in items_} for half, items_ in halves.items()}
    bank = {q.slug: q.level for q in load_bank()}

    assert len(items) >= 400
    assert len(questions["dev"] | questions["test"]) >= 60
    assert not questions["dev"] & questions["test"], "a question's answers sit in one half"
    assert {bank[i.question] for i in items} == {"intern", "junior", "middle"}
    assert set(KINDS) <= {i.kind for i in items}
    variants = Counter((i.kind, i.variant) for i in items)
    for needed in [
        ("dont_know", "bare"),
        ("dont_know", "hedged"),
        ("injection", "only"),
        ("injection", "wrapped"),
        ("off_topic", "other_question"),
    ]:
        assert variants[needed] >= 10, needed
    russian = sum(1 for i in items if sum("а" <= c <= "я" for c in i.answer.lower()) > 20)
    assert 0.4 <= russian / len(items) <= 0.6, "about half of the answers are in Russian"
    assert len({i.id for i in items}) == len(items)


def test_ranking_matches_the_interviewer(test_half: Figures) -> None:
    assert test_half.spearman >= FLOORS["spearman"]
    assert test_half.auc >= FLOORS["auc"]
    assert test_half.mae <= FLOORS["mae"]


def test_wrong_listed_and_injected_answers_do_not_pass(test_half: Figures) -> None:
    assert test_half.false_pass <= FLOORS["false_pass"]


def test_excellent_answers_pass(test_half: Figures) -> None:
    assert test_half.false_fail <= FLOORS["false_fail"]


def test_dont_know_injection_only_and_filler_score_exactly_zero(test_half: Figures) -> None:
    assert test_half.zero_misses == []


def test_the_development_half_holds_too() -> None:
    dev = figures(graded("dev"))
    assert dev.spearman >= FLOORS["spearman"] and dev.auc >= FLOORS["auc"]
    assert dev.false_pass <= FLOORS["false_pass"] and dev.false_fail <= FLOORS["false_fail"]
    assert dev.zero_misses == []
