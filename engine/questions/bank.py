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


class KeyPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ru: Text
    en: Text
    keywords: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(min_length=1)


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


@cache
def load_bank() -> tuple[BankQuestion, ...]:
    """Every question of every level file; raises if any file breaks the schema."""
    questions: list[BankQuestion] = []
    for level in LEVELS:
        path = BANK_DIR / f"{level}.json"
        items = bank_adapter.validate_python(json.loads(path.read_text("utf-8")))
        for q in items:
            if q.level != level:
                raise ValueError(f"{q.slug}: level {q.level} in {path.name}")
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
