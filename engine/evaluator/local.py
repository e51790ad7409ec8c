"""The local evaluator: grades claims against the question's rubric, no network.

It is the product's evaluator when no LLM is configured and its fallback when the LLM fails. How
it reads an answer is in `grading.py` and `rubric.py`; what it writes back is in `feedback.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncGenerator

from engine.evaluator.bankindex import warm_up
from engine.evaluator.base import Delta, Done, Evaluation, EvaluationRequest, StreamItem
from engine.evaluator.feedback import write
from engine.evaluator.grading import Judgement, PointResult, Scores, judge, score
from engine.evaluator.language import is_off_language
from engine.evaluator.rubric import rubric_from_key_points

SOURCE = "local"

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


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("ё", "е")).strip()


def is_non_answer(answer: str) -> bool:
    """Empty, punctuation only, or a plain "I don't know" in Russian or English."""
    text = normalize(answer).strip(" .!,")
    return not re.search(r"\w", text) or text in NON_ANSWERS


def with_rubric(request: EvaluationRequest) -> EvaluationRequest:
    """The request with a rubric: key points and keywords stand in when it has none."""
    if request.rubric or not request.key_points:
        return request
    points = [
        {"ru": text, "en": text, "keywords": keywords}
        for text, keywords in zip(
            request.key_points,
            request.keywords or [[] for _ in request.key_points],
            strict=False,
        )
    ]
    return dataclasses.replace(request, rubric=rubric_from_key_points(points))


def assess(request: EvaluationRequest) -> tuple[Judgement, Scores]:
    """The judgement and scores of an answer (what the feedback is written from)."""
    request = with_rubric(request)
    if is_non_answer(request.answer):
        empty = Judgement([PointResult() for _ in request.rubric])
        empty.dont_know = bool(request.answer.strip())
        return empty, Scores(0.0, 0.0, 0.0, 0.0)
    judgement = judge(request, other_language=is_off_language(request.answer, request.language))
    return judgement, score(judgement, request.level)


def grade(request: EvaluationRequest) -> tuple[Evaluation, str]:
    """Score 0-10 on correctness, completeness and clarity; return it with the feedback."""
    request = with_rubric(request)
    judgement, scores = assess(request)
    feedback = write(request, judgement, scores)
    evaluation = Evaluation(
        score=scores.score,
        correctness=scores.correctness,
        completeness=scores.completeness,
        clarity=scores.clarity,
        feedback=feedback,
        source=SOURCE,
    )
    return evaluation, feedback


def chunks(text: str, words_per_chunk: int = 3) -> list[str]:
    """Split text into small deltas that concatenate back to exactly `text`."""
    pieces = re.findall(r"\s*\S+\s*", text) if text[:1].isspace() else re.findall(r"\S+\s*", text)
    return [
        "".join(pieces[i : i + words_per_chunk]) for i in range(0, len(pieces), words_per_chunk)
    ]


class LocalEvaluator:
    name = "local"

    def __init__(self, delay_sec: float = 0.0) -> None:
        self._delay = delay_sec
        warm_up()

    async def evaluate(self, request: EvaluationRequest) -> AsyncGenerator[StreamItem]:
        evaluation, feedback = grade(request)
        for piece in chunks(feedback):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield Delta(piece)
        yield Done(evaluation)

    async def close(self) -> None:
        return None
