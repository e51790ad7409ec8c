"""The local evaluator: grades against the question's key points and example answer, no network.

It is the product's evaluator when no LLM is configured and its fallback when the LLM fails.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from engine.evaluator.base import Delta, Done, Evaluation, EvaluationRequest, StreamItem

NON_ANSWERS = {
    "не знаю",
    "незнаю",
    "не помню",
    "без понятия",
    "понятия не имею",
    "хз",
    "пас",
    "пропуск",
    "затрудняюсь ответить",
    "i don't know",
    "i dont know",
    "dont know",
    "don't know",
    "idk",
    "no idea",
    "not sure",
    "pass",
    "skip",
    "no",
    "нет",
    "-",
    "?",
    "...",
}

_WORD = re.compile(r"[\w+#()]+", re.UNICODE)
_SENTENCE = re.compile(r"[.!?;\n]+")

_TEXT = {
    "ru": {
        "empty": "Ответа нет, поэтому 0 баллов. ",
        "good": "Сильный ответ. ",
        "fair": "Ответ частично верный. ",
        "weak": "Ответ слабый. ",
        "covered": "Раскрыто: ",
        "missing": "Не хватает: ",
        "example": "Пример хорошего ответа: ",
        "short": "Ответ слишком короткий: поясните мысль подробнее. ",
    },
    "en": {
        "empty": "There is no answer, so the score is 0. ",
        "good": "A strong answer. ",
        "fair": "The answer is partly right. ",
        "weak": "The answer is weak. ",
        "covered": "Covered: ",
        "missing": "Missing: ",
        "example": "A good answer: ",
        "short": "The answer is too short: explain your reasoning in more detail. ",
    },
}


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("ё", "е")).strip()


def is_non_answer(answer: str) -> bool:
    """Empty, punctuation only, or a plain "I don't know" in Russian or English."""
    text = normalize(answer).strip(" .!,")
    return not re.search(r"\w", text) or text in NON_ANSWERS


def _first_sentences(text: str, count: int = 2) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return " ".join(parts[:count])


def grade(request: EvaluationRequest) -> tuple[Evaluation, str]:
    """Score 0-10 on correctness, completeness and clarity; return it with the feedback."""
    text = _TEXT.get(request.language, _TEXT["ru"])
    if is_non_answer(request.answer):
        feedback = text["empty"] + text["missing"] + "; ".join(request.key_points) + ". "
        feedback += text["example"] + _first_sentences(request.example_answer)
        return Evaluation(0, 0, 0, 0, feedback.strip(), "local"), feedback.strip()

    answer = normalize(request.answer)
    covered: list[str] = []
    missing: list[str] = []
    for point, keywords in zip(request.key_points, request.keywords, strict=False):
        hit = any(normalize(k) in answer for k in keywords if k.strip())
        (covered if hit else missing).append(point)
    total = max(1, len(request.key_points))
    coverage = len(covered) / total

    words = _WORD.findall(answer)
    example_words = max(1, len(_WORD.findall(normalize(request.example_answer))))
    length_ratio = min(1.0, len(words) / (0.5 * example_words))
    sentences = [s for s in _SENTENCE.split(request.answer) if _WORD.search(s)]
    avg_len = len(words) / max(1, len(sentences))

    correctness = 10 * coverage
    completeness = 10 * (0.75 * coverage + 0.25 * length_ratio)
    clarity = 6.0 + (1.5 if len(sentences) >= 2 else 0) + (1.5 if 5 <= avg_len <= 30 else 0)
    if len(words) < 8:
        clarity -= 3
    clarity = max(0.0, min(10.0, clarity))
    score = 0.5 * correctness + 0.3 * completeness + 0.2 * clarity
    if coverage == 0:
        score = min(score, 2.0)

    verdict = text["good"] if score >= 7 else text["fair"] if score >= 4 else text["weak"]
    parts = [verdict]
    if len(words) < 8:
        parts.append(text["short"])
    if covered:
        parts.append(text["covered"] + "; ".join(covered) + ". ")
    if missing:
        parts.append(text["missing"] + "; ".join(missing) + ". ")
        parts.append(text["example"] + _first_sentences(request.example_answer))
    feedback = "".join(parts).strip()
    evaluation = Evaluation(
        score=round(score, 1),
        correctness=round(correctness, 1),
        completeness=round(completeness, 1),
        clarity=round(clarity, 1),
        feedback=feedback,
        source="local",
    )
    return evaluation, feedback


def chunks(text: str, words_per_chunk: int = 3) -> list[str]:
    """Split text into small deltas that concatenate back to exactly `text`."""
    pieces = re.findall(r"\S+\s*", text)
    return [
        "".join(pieces[i : i + words_per_chunk]) for i in range(0, len(pieces), words_per_chunk)
    ]


class LocalEvaluator:
    name = "local"

    def __init__(self, delay_sec: float = 0.0) -> None:
        self._delay = delay_sec

    async def evaluate(self, request: EvaluationRequest) -> AsyncGenerator[StreamItem]:
        evaluation, feedback = grade(request)
        for piece in chunks(feedback):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield Delta(piece)
        yield Done(evaluation)

    async def close(self) -> None:
        return None
