"""Scoring (engine/scoring.py): answers 0-10, the interview 0-100, strong and weak topics."""

from __future__ import annotations

import re

import pytest

from engine.scoring import final_result, topic_scores


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([7, 8], 75),
        ([10, 10, 10], 100),
        ([0, 0], 0),
        ([6.66], 67),  # 66.6 rounds up
        ([6.64], 66),  # 66.4 rounds down
        ([8, 6, 3], 57),  # 56.67
        ([9, 0, 0], 30),
        ([7, 0, 0], 23),  # 23.33
    ],
)
def test_score_is_the_mean_times_ten_rounded(scores: list[float], expected: int) -> None:
    result = final_result([(["t"], s) for s in scores], len(scores), 50, "en")
    assert result.score == expected
    assert isinstance(result.score, int)


@pytest.mark.parametrize(
    ("scores", "threshold", "passed"),
    [
        ([6, 6, 6], 60, True),  # exactly the threshold passes
        ([5.9], 60, False),  # 59
        ([6.04], 60, True),  # 60.4 -> 60
        ([5.96], 60, True),  # 59.6 -> 60: the rounded score is compared
        ([5.94], 60, False),  # 59.4 -> 59
        ([10], 100, True),
    ],
)
def test_pass_threshold_boundary(scores: list[float], threshold: int, passed: bool) -> None:
    result = final_result([(["t"], s) for s in scores], len(scores), threshold, "en")
    assert result.passed is passed


def test_strong_and_weak_topics_by_first_tag() -> None:
    items = [
        (["python", "sql"], 9.0),
        (["python"], 5.0),  # python: 7.0 exactly -> strong
        (["sql", "python"], 4.0),  # sql: 4.0 -> weak (only the first tag counts)
        (["git"], 5.0),  # git: 5.0 exactly -> neither
        (["docker"], 6.99),  # neither
        (["http"], 4.99),  # weak
    ]
    result = final_result(items, len(items), 50, "en")
    assert result.strong_topics == ["python"]
    assert result.weak_topics == ["http", "sql"]


def test_topic_scores_are_means_per_first_tag_and_general_without_tags() -> None:
    scores = topic_scores([(["python", "x"], 9.0), (["python"], 4.0), ([], 3.0), ([], 6.0)])
    assert scores == {"python": 6.5, "general": 4.5}


def test_untagged_answers_count_as_general() -> None:
    result = final_result([([], 2.0), (["python"], 9.0)], 2, 50, "en")
    assert result.weak_topics == ["general"]
    assert result.strong_topics == ["python"]
    assert "general" in result.feedback


def test_topics_are_sorted() -> None:
    items = [(["zeta"], 9.0), (["alpha"], 8.0), (["mid"], 1.0), (["beta"], 0.0)]
    result = final_result(items, 4, 50, "en")
    assert result.strong_topics == ["alpha", "zeta"]
    assert result.weak_topics == ["beta", "mid"]


def test_ru_and_en_texts_differ_and_mention_the_score() -> None:
    items = [(["python"], 8.0), (["sql"], 6.0), ([], 3.0)]
    ru = final_result(items, 2, 60, "ru")
    en = final_result(items, 2, 60, "en")
    assert ru.score == en.score == 57
    assert ru.feedback != en.feedback
    for text in (ru.feedback, en.feedback):
        assert re.search(r"\b57\b", text)
        assert re.search(r"\b60\b", text)  # the threshold
    assert re.search("[а-яА-Я]", ru.feedback)
    assert not re.search("[а-яА-Я]", en.feedback)
    assert "Questions answered: 2 of 3" in en.feedback
    assert "Отвечено вопросов: 2 из 3" in ru.feedback
    assert "python" in en.feedback and "general" in en.feedback


def test_verdict_text_follows_passed() -> None:
    passed = final_result([(["t"], 9.0)], 1, 60, "en")
    failed = final_result([(["t"], 1.0)], 1, 60, "en")
    assert passed.passed and not failed.passed
    assert "not passed" in failed.feedback
    assert "not passed" not in passed.feedback
    assert "interview passed" in passed.feedback


def test_no_weak_topics_is_said_so() -> None:
    result = final_result([(["t"], 9.0)], 1, 60, "en")
    assert result.weak_topics == []
    assert "No clearly weak topics" in result.feedback


def test_empty_items_score_zero() -> None:
    result = final_result([], 0, 60, "en")
    assert result.score == 0
    assert result.passed is False
    assert result.strong_topics == []
    assert result.weak_topics == []
    assert "0" in result.feedback
    assert topic_scores([]) == {}
