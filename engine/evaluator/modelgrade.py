"""Scores from the model's judgement, computed in code on the local evaluator's scale.

The model lists the candidate's claims, each judged against the rubric. A claim counts only when
its quote is really in the answer (a model cannot credit words the candidate never wrote); the
shape of the answer (statements or a bare list, its length, "I don't know", orders to the grader)
is read locally, exactly as the local evaluator reads it. `grading.score` then turns the same
`Judgement` into the same 0-10 scale.
"""

from __future__ import annotations

import re

from engine.evaluator.base import EvaluationRequest
from engine.evaluator.grading import (
    HEDGED,
    STATEMENT,
    Judgement,
    Myth,
    PointResult,
    Scores,
    score,
    shape_of,
)
from engine.evaluator.prompting import ModelOutput, point_ids
from engine.evaluator.text import normalize

MIN_QUOTED_SHARE = 0.7  # of a quote's words that must be in the answer
_WORD = re.compile(r"\w+")


def quoted(quote: str, answer_words: set[str]) -> bool:
    """Whether the model's quote is the candidate's own words (up to case and punctuation)."""
    words = _WORD.findall(normalize(quote))
    if not words:
        return False
    return sum(w in answer_words for w in words) >= MIN_QUOTED_SHARE * len(words)


def judgement_of(
    request: EvaluationRequest, output: ModelOutput, other_language: bool = False
) -> Judgement:
    """The judgement the model's claims make, with the answer's shape read locally."""
    judgement = shape_of(request, other_language)
    points, myths = point_ids(request.rubric)
    answer_words = set(_WORD.findall(normalize(request.answer)))
    for claim in output.claims:
        if not quoted(claim.quote, answer_words):
            continue
        match = claim.match.upper()
        if claim.verdict == "right" and match.startswith("P") and match in points:
            point = judgement.points[points.index(match)]
            credit = STATEMENT * (HEDGED if claim.hedged else 1.0)
            if credit > point.credit:
                point.credit, point.quote = credit, claim.quote
        elif claim.verdict == "wrong":
            index = int(match[1:]) - 1 if match.startswith("M") else -1
            if 0 <= index < len(myths):
                p, m = myths[index]
                judgement.myths.append(Myth(p, m, claim.quote))
            else:
                judgement.unlisted_errors.append(claim.quote)
    judgement.elsewhere = output.off_topic
    if judgement.dont_know and any(p.credit for p in judgement.points):
        judgement.dont_know = False  # "not sure, but ..." followed by a right claim
    return judgement


def scores_of(
    request: EvaluationRequest, output: ModelOutput, other_language: bool = False
) -> Scores:
    judgement = judgement_of(request, output, other_language)
    return score(judgement, request.level)


__all__ = ["PointResult", "judgement_of", "quoted", "scores_of"]
