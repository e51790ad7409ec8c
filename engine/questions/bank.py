"""The curated question bank shipped with the product, validated on load."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

BANK_DIR = Path(__file__).parent / "bank"
LEVELS = ("intern", "junior", "middle")
TOPICS = (
    "algorithms",
    "data-structures",
    "python",
    "databases",
    "networking",
    "os",
    "concurrency",
    "testing",
    "system-design",
)

Text = Annotated[str, Field(min_length=1, max_length=8000)]


class Localized(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ru: Text
    en: Text

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.ru


Phrase = Annotated[str, Field(min_length=1, max_length=120)]


class Claim(BaseModel):
    """What an answer must say: `says` about `subject` (empty: the question's own subject).

    Each entry is a phrase; words are compared by stem, a word ending in `*` matches any word
    that starts with it, and `O(log n)`-style complexities are one token.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    subject: list[Phrase] = Field(default_factory=list, max_length=40)
    says: list[Phrase] = Field(min_length=1, max_length=60)


class LocalizedClaim(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ru: Claim
    en: Claim


class Misconception(BaseModel):
    """A common wrong version of a key point: the claim that asserts it and its correction."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    claim: LocalizedClaim
    text: Localized
    correction: Localized


class KeyPoint(BaseModel):
    """A point a good answer makes; the rubric (claim, follow-up, misconceptions) grades it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ru: Text
    en: Text
    keywords: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(min_length=1)
    claim: LocalizedClaim | None = None
    followUp: Localized | None = None
    misconceptions: list[Misconception] = Field(default_factory=list, max_length=8)


class BankQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    slug: Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=120)]
    level: Literal["intern", "junior", "middle"]
    type: Literal["technical", "hr", "manager"] = "technical"
    tags: list[Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]] = Field(
        min_length=1, max_length=6
    )
    difficulty: int = Field(ge=1, le=5)
    text: Localized
    exampleAnswer: Localized
    keyPoints: list[KeyPoint] = Field(min_length=1, max_length=10)


bank_adapter: TypeAdapter[list[BankQuestion]] = TypeAdapter(list[BankQuestion])

MIN_MISCONCEPTIONS = 2


def rubric_problems(q: BankQuestion) -> list[str]:
    """What keeps a question's rubric from being complete (empty when it is)."""
    problems = [
        f"key point {i}: no {name}"
        for i, point in enumerate(q.keyPoints)
        for name, value in (("claim", point.claim), ("followUp", point.followUp))
        if value is None
    ]
    if sum(len(p.misconceptions) for p in q.keyPoints) < MIN_MISCONCEPTIONS:
        problems.append(f"fewer than {MIN_MISCONCEPTIONS} misconceptions")
    return problems


@cache
def load_bank() -> tuple[BankQuestion, ...]:
    """Every question of every level file; raises if any breaks the schema or lacks a rubric."""
    questions: list[BankQuestion] = []
    for level in LEVELS:
        path = BANK_DIR / f"{level}.json"
        items = bank_adapter.validate_python(json.loads(path.read_text("utf-8")))
        for q in items:
            if q.level != level:
                raise ValueError(f"{q.slug}: level {q.level} in {path.name}")
            problems = rubric_problems(q)
            if problems:
                raise ValueError(f"{q.slug}: incomplete rubric: {'; '.join(problems)}")
        questions.extend(items)
    slugs = [q.slug for q in questions]
    if len(slugs) != len(set(slugs)):
        raise ValueError("duplicate slugs in the question bank")
    return tuple(questions)


def bank_digest() -> str:
    """A digest of the shipped bank, to tell whether the seeded copy is current."""
    h = hashlib.sha256()
    for level in LEVELS:
        h.update((BANK_DIR / f"{level}.json").read_bytes())
    return h.hexdigest()[:16]
