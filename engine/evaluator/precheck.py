"""Answers graded before the model is called: empty, "I don't know", or only orders to the grader.

They score 0 and cost nothing; the local evaluator writes their feedback. An answer in the other
language than the interview's is not one of them: it goes to the model and is graded on its
content (see `language.py` for how the language is told, code set aside).
"""

from __future__ import annotations

import dataclasses
import re

from engine.evaluator.base import Evaluation, EvaluationRequest
from engine.evaluator.language import is_off_language
from engine.evaluator.local import grade, is_non_answer
from engine.evaluator.signals import neutralize

SOURCE = "precheck"
_LETTER = re.compile(r"[^\W\d_]")

__all__ = ["SOURCE", "is_off_language", "precheck"]


def precheck(request: EvaluationRequest) -> tuple[Evaluation, str] | None:
    """The zero-score evaluation and its feedback, or None when the model should grade."""
    cleaned = neutralize(request.answer)
    if is_non_answer(request.answer) or not _LETTER.search(cleaned.text):
        evaluation, feedback = grade(request)
        zero = dataclasses.replace(
            evaluation, score=0, correctness=0, completeness=0, clarity=0, source=SOURCE
        )
        return zero, feedback
    return None
