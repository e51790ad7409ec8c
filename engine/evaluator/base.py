"""The evaluator port: grades one answer and streams its feedback as it is written."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A graded answer: 0-10 overall, 0-10 per dimension, the feedback text, who graded it."""

    score: float
    correctness: float
    completeness: float
    clarity: float
    feedback: str
    source: str
    tokens_in: int = 0
    tokens_out: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "score": self.score,
            "scores": {
                "correctness": self.correctness,
                "completeness": self.completeness,
                "clarity": self.clarity,
            },
            "feedback": self.feedback,
            "source": self.source,
            "tokensIn": self.tokens_in,
            "tokensOut": self.tokens_out,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Evaluation:
        scores = data.get("scores") or {}
        assert isinstance(scores, dict)
        return cls(
            score=float(data["score"]),  # type: ignore[arg-type]
            correctness=float(scores.get("correctness", 0)),
            completeness=float(scores.get("completeness", 0)),
            clarity=float(scores.get("clarity", 0)),
            feedback=str(data.get("feedback", "")),
            source=str(data.get("source", "")),
            tokens_in=int(data.get("tokensIn", 0)),  # type: ignore[call-overload]
            tokens_out=int(data.get("tokensOut", 0)),  # type: ignore[call-overload]
        )


Texts = tuple[str, str]  # (Russian, English)


def pick(texts: Texts, language: str) -> str:
    return texts[1] if language == "en" else texts[0]


@dataclass(frozen=True, slots=True)
class ClaimSpec:
    """Phrases for what must be said (`says`) about `subject`; no subject: the question's own."""

    subject: tuple[str, ...]
    says: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MisconceptionSpec:
    claims: tuple[ClaimSpec, ClaimSpec]  # Russian, English
    text: Texts
    correction: Texts


@dataclass(frozen=True, slots=True)
class RubricPoint:
    """One key point of a question's rubric (see `engine/questions/bank.py`)."""

    text: Texts
    claims: tuple[ClaimSpec, ...]
    follow_up: Texts | None = None
    misconceptions: tuple[MisconceptionSpec, ...] = ()


Rubric = tuple[RubricPoint, ...]


@dataclass(frozen=True, slots=True)
class EvaluationRequest:
    """Everything an evaluator needs; the candidate's answer is data, never instructions."""

    question_id: str
    question: str
    answer: str
    level: str
    language: str
    example_answer: str
    key_points: list[str] = field(default_factory=list)
    keywords: list[list[str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    rubric: Rubric = ()
    slug: str = ""


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class Reset:
    """Discard the text streamed so far: the stream broke and starts again."""

    reason: str


@dataclass(frozen=True, slots=True)
class Done:
    evaluation: Evaluation


StreamItem = Delta | Reset | Done


class Evaluator(Protocol):
    name: str

    def evaluate(self, request: EvaluationRequest) -> AsyncGenerator[StreamItem]:
        """Yield deltas (and resets) as the feedback is written, then exactly one Done."""
        ...

    async def close(self) -> None: ...
