"""Scores: each answer 0-10, the interview 0-100, strong and weak topics by tag."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

STRONG_AT = 7.0
WEAK_BELOW = 5.0


@dataclass(frozen=True, slots=True)
class FinalResult:
    score: int
    passed: bool
    feedback: str
    strong_topics: list[str]
    weak_topics: list[str]


_TEXT = {
    "ru": {
        "summary": "Итог: {score} из 100 — {verdict} (порог {threshold}).",
        "passed": "собеседование пройдено",
        "failed": "пока не пройдено",
        "strong": "Сильные темы: {topics}.",
        "weak": "Стоит подтянуть: {topics}.",
        "none_weak": "Явно слабых тем нет — так держать.",
        "answered": "Отвечено вопросов: {answered} из {total}.",
    },
    "en": {
        "summary": "Result: {score} out of 100: {verdict} (threshold {threshold}).",
        "passed": "interview passed",
        "failed": "not passed yet",
        "strong": "Strong topics: {topics}.",
        "weak": "Worth revising: {topics}.",
        "none_weak": "No clearly weak topics: keep it up.",
        "answered": "Questions answered: {answered} of {total}.",
    },
}


def topic_scores(items: list[tuple[list[str], float]]) -> dict[str, float]:
    """Mean score per primary topic (the first tag)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for tags, score in items:
        sums[tags[0] if tags else "general"].append(score)
    return {topic: sum(v) / len(v) for topic, v in sums.items()}


def final_result(
    items: list[tuple[list[str], float]], answered: int, threshold: int, language: str
) -> FinalResult:
    """Overall 0-100 is the mean answer score times ten; `passed` compares with the threshold."""
    text = _TEXT.get(language, _TEXT["ru"])
    mean = sum(score for _, score in items) / len(items) if items else 0.0
    score = math.floor(mean * 10 + 0.5)  # half up: 62.5 is 63, as people expect
    passed = score >= threshold
    by_topic = topic_scores(items)
    strong = sorted(t for t, s in by_topic.items() if s >= STRONG_AT)
    weak = sorted(t for t, s in by_topic.items() if s < WEAK_BELOW)
    lines = [
        text["summary"].format(
            score=score, verdict=text["passed" if passed else "failed"], threshold=threshold
        ),
        text["answered"].format(answered=answered, total=len(items)),
    ]
    if strong:
        lines.append(text["strong"].format(topics=", ".join(strong)))
    lines.append(text["weak"].format(topics=", ".join(weak)) if weak else text["none_weak"])
    return FinalResult(score, passed, " ".join(lines), strong, weak)
