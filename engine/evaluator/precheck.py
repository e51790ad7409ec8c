"""Answers graded before the model is called: empty, "I don't know", or in another language.

They score 0 and cost nothing. The language check only flags clear cases: a Russian answer full of
English terms (list, HashMap, Big-O) or a code-only answer is not off-language. Code is set aside
first; what prose remains must be long enough and plainly in the other script.
"""

from __future__ import annotations

import re

from engine.evaluator.base import Evaluation, EvaluationRequest
from engine.evaluator.local import grade, is_non_answer

SOURCE = "precheck"
MIN_LETTERS = 30

_FENCED = re.compile(r"```.*?(?:```|$)", re.S)
_INLINE = re.compile(r"`[^`\n]*`")
_CODE_LINE = re.compile(
    r"[{}\[\];=]|^\s*(?:def|class|import|from|return|for|while|if|elif|else|try|except|"
    r"select|insert|update|delete|create|public|private|func|fn|let|const|var|#include)\b",
    re.I,
)
# Words that English prose is made of and code rarely is.
_ENGLISH = frozenset(
    "the a an of to are was were that this these those with which because it its you your we "
    "our they their there has have will would should can could when what how".split()
)
_WORD = re.compile(r"[^\W\d_]+")

_TEXT = {
    "ru": (
        "Ответ написан не на языке собеседования (русском), поэтому он не оценивается: 0 баллов. "
        "Отвечайте, пожалуйста, по-русски; технические термины можно писать по-английски. "
    ),
    "en": (
        "The answer is not in the interview's language (English), so it is not graded: "
        "the score is 0. Please answer in English. "
    ),
}
_MISSING = {"ru": "Ключевые пункты: ", "en": "Key points: "}


def _prose(answer: str) -> str:
    text = _INLINE.sub(" ", _FENCED.sub(" ", answer))
    return "\n".join(line for line in text.splitlines() if not _CODE_LINE.search(line))


def is_off_language(answer: str, language: str) -> bool:
    """True only when the answer's prose is clearly not in the interview's language."""
    prose = _prose(answer)
    letters = [ch for ch in prose if ch.isalpha()]
    if len(letters) < MIN_LETTERS:
        return False
    cyrillic = sum(1 for ch in letters if "\u0400" <= ch <= "\u04ff")
    if language == "en":
        return cyrillic / len(letters) > 0.5
    if language == "ru":
        words = {w.lower() for w in _WORD.findall(prose)}
        return cyrillic / len(letters) < 0.05 and len(words & _ENGLISH) >= 3
    return False


def precheck(request: EvaluationRequest) -> tuple[Evaluation, str] | None:
    """The zero-score evaluation and its feedback, or None when the model should grade."""
    if is_non_answer(request.answer):
        evaluation, feedback = grade(request)
        return _zero(feedback), feedback
    if is_off_language(request.answer, request.language):
        lang = request.language if request.language in _TEXT else "ru"
        feedback = _TEXT[lang]
        if request.key_points:
            feedback += _MISSING[lang] + "; ".join(request.key_points) + "."
        return _zero(feedback.strip()), feedback.strip()
    return None


def _zero(feedback: str) -> Evaluation:
    return Evaluation(0, 0, 0, 0, feedback, SOURCE)
