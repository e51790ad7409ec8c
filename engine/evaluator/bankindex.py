"""Every shipped question's rubric, indexed to find which questions an answer is closest to.

An answer whose claims match another question's rubric much better than its own question's is
off-topic (a good answer to a different question). Comparing with all 108 rubrics in full would
cost too much per answer, so an inverted index of rubric stems (weighted by rarity) picks the
few closest questions and only those are matched claim by claim.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from engine.evaluator.base import EvaluationRequest, Texts
from engine.evaluator.rubric import (
    CompiledRubric,
    Phrase,
    Subjects,
    compile_rubric,
    rubric_from_key_points,
    subjects_of,
)
from engine.evaluator.text import Analysis, analyse, normalize, tokens

CANDIDATES = 3
GENERIC = 10  # a word in this many questions' texts is too common to mark another topic
SPREAD_HEAD = 4  # words are counted by their first letters: no stemming needed


@dataclass(frozen=True, slots=True)
class Entry:
    slug: str
    text: Texts
    tags: tuple[str, ...]
    rubric: CompiledRubric


@dataclass(frozen=True, slots=True)
class BankIndex:
    entries: tuple[Entry, ...]
    postings: dict[str, tuple[tuple[int, float], ...]]
    subjects: tuple[Phrase, ...]  # every subject any rubric names
    spread: dict[str, int]  # in how many questions' texts a word (its first letters) occurs

    def closest(self, analysis: Analysis, exclude: frozenset[str]) -> list[Entry]:
        """The questions whose rubric vocabulary the answer uses most, best first."""
        scores: dict[int, float] = defaultdict(float)
        for word in analysis.stems:
            for index, weight in self.postings.get(word, ()):
                scores[index] += weight
        ranked = sorted(scores.items(), key=lambda item: -item[1])
        return [self.entries[i] for i, _ in ranked if self.entries[i].slug not in exclude][
            :CANDIDATES
        ]


_BUILT: list[BankIndex] = []
_BUILD_LOCK = threading.Lock()


def bank_index() -> BankIndex:
    """Built once per process from the shipped bank (a second or so, mostly stemming)."""
    if _BUILT:
        return _BUILT[0]
    with _BUILD_LOCK:
        if not _BUILT:
            _BUILT.append(_build())
    return _BUILT[0]


def warm_up() -> None:
    """Build the index in a background thread, so the first answer does not wait for it."""
    if not _BUILT:
        threading.Thread(target=bank_index, name="bank-index", daemon=True).start()


def _build() -> BankIndex:
    from engine.questions.bank import load_bank

    entries = tuple(
        Entry(
            slug=q.slug,
            text=(q.text.ru, q.text.en),
            tags=tuple(q.tags),
            rubric=compile_rubric(rubric_from_key_points(k.model_dump() for k in q.keyPoints)),
        )
        for q in load_bank()
    )
    frequency: dict[str, int] = defaultdict(int)
    for entry in entries:
        for word in entry.rubric.vocabulary:
            frequency[word] += 1
    total = len(entries)
    postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for i, entry in enumerate(entries):
        for word in entry.rubric.vocabulary:
            postings[word].append((i, math.log(1 + total / frequency[word])))
    spread: dict[str, int] = defaultdict(int)
    for q in load_bank():
        texts = (q.text.ru, q.text.en, q.exampleAnswer.ru, q.exampleAnswer.en)
        heads = {w[:SPREAD_HEAD] for text in texts for w in tokens(normalize(text))}
        for head in heads:
            spread[head] += 1
    subjects: dict[tuple[tuple[str, ...], tuple[bool, ...]], Phrase] = {}
    for entry in entries:
        for phrase in entry.rubric.subjects:
            subjects.setdefault((phrase.atoms, phrase.prefix), phrase)
    return BankIndex(
        entries,
        {w: tuple(p) for w, p in postings.items()},
        tuple(subjects.values()),
        dict(spread),
    )


@lru_cache(maxsize=512)
def foreign_subjects(rubric: CompiledRubric, context: str) -> Subjects:
    """Subjects of other questions that this question (its rubric and `context`) never names."""
    words = analyse(context)
    own = set(words.stems) | set(words.raws) | set(rubric.vocabulary)

    def known(phrase: Phrase) -> bool:
        if not phrase.exact <= own:
            return False
        return all(any(w.startswith(p) for w in own) for p in phrase.prefixes)

    index = bank_index()

    def specific(phrase: Phrase) -> bool:
        """Names a particular thing ("merge sort"), not a word every topic uses ("both")."""
        return any(
            len(a) >= 4
            and a.isalpha()
            and (len(a) >= 5 if p else index.spread.get(a[:SPREAD_HEAD], 0) < GENERIC)
            for a, p in zip(phrase.atoms, phrase.prefix, strict=True)
        )

    return subjects_of([p for p in index.subjects if specific(p) and not known(p)])


def bank_request(slug: str, answer: str, language: str) -> EvaluationRequest:
    """A request for a shipped question, built as the service builds it from a stored one."""
    from engine.questions.bank import load_bank

    found = [q for q in load_bank() if q.slug == slug]
    if not found:
        raise KeyError(f"no question {slug!r} in the shipped bank")
    q = found[0]
    points = [k.model_dump() for k in q.keyPoints]
    return EvaluationRequest(
        question_id=q.slug,
        question=q.text.get(language),
        answer=answer,
        level=q.level,
        language=language,
        example_answer=q.exampleAnswer.get(language),
        key_points=[p[language] for p in points],
        keywords=[list(p["keywords"]) for p in points],
        tags=list(q.tags),
        rubric=rubric_from_key_points(points),
        slug=q.slug,
    )
