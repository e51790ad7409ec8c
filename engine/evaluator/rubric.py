"""A question's rubric compiled for matching, and the claims an answer makes against it.

A key point counts when one of its `says` phrases is found in a sentence, about the point's
subject, and not negated. The subject of a phrase is the nearest subject named before it in the
same clause (after the previous claim there), else the next one in the clause, else the last one
named earlier ("it", "он" and omitted subjects refer back); a claim whose subject is the
question's own needs none. A misconception is matched the same way, but only when its subject is
actually named, and in the clause where it is asserted it overrides its point's claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from engine.evaluator.base import ClaimSpec, MisconceptionSpec, Rubric, RubricPoint, Texts
from engine.evaluator.text import (
    NEGATIONS,
    STOP,
    Analysis,
    Sentence,
    canonical,
    is_verb_like,
    normalize,
    register_heads,
    stem,
)
from engine.evaluator.text import tokens as split_tokens

GAP = 3  # content words allowed between two words of a phrase
NEGATION_REACH = 3  # content words before a phrase that a negation governs
_NOT_NEGATING = frozenset({"только", "only", "just", "always", "всегда", "обязательно"})
_NEAR_ONLY = frozenset({"without", "без", "instead", "вместо"})
_SCOPE_ENDS = frozenset({"и", "and", "or", "или", "then", "потом", "затем", "so", "поэтому"})


# --- the rubric as data ------------------------------------------------------------------------


def _texts(value: Any) -> Texts | None:
    if isinstance(value, Mapping) and value.get("ru") and value.get("en"):
        return (str(value["ru"]), str(value["en"]))
    return None


def _claim(value: Mapping[str, Any]) -> ClaimSpec:
    return ClaimSpec(tuple(value.get("subject") or ()), tuple(value.get("says") or ()))


def rubric_from_key_points(points: Iterable[Mapping[str, Any]]) -> Rubric:
    """The rubric of stored key points (bank or database form); keywords stand in for claims."""
    rubric: list[RubricPoint] = []
    for point in points:
        claim = point.get("claim")
        claims: tuple[ClaimSpec, ...]
        if isinstance(claim, Mapping) and claim.get("ru") and claim.get("en"):
            claims = (_claim(claim["ru"]), _claim(claim["en"]))
        else:
            keywords = tuple(f"{k.strip()}*" for k in point.get("keywords") or () if k.strip())
            claims = (ClaimSpec((), keywords),) if keywords else ()
        misconceptions = tuple(
            MisconceptionSpec(
                (_claim(m["claim"]["ru"]), _claim(m["claim"]["en"])),
                _texts(m.get("text")) or ("", ""),
                _texts(m.get("correction")) or ("", ""),
            )
            for m in point.get("misconceptions") or ()
        )
        rubric.append(
            RubricPoint(
                text=(str(point.get("ru", "")), str(point.get("en", ""))),
                claims=claims,
                follow_up=_texts(point.get("followUp")),
                misconceptions=misconceptions,
            )
        )
    return tuple(rubric)


# --- compiled ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    atoms: tuple[str, ...]
    prefix: tuple[bool, ...]
    exact: frozenset[str]
    prefixes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Claim:
    point: int
    misconception: int  # -1 for the point's own claim
    subjects: frozenset[int]  # ids into CompiledRubric.subjects; empty: the question's subject
    says: tuple[Phrase, ...]


@dataclass(frozen=True, slots=True, eq=False)  # cached per rubric: identity is enough
class CompiledRubric:
    spec: Rubric
    claims: tuple[Claim, ...]
    subjects: tuple[Phrase, ...]
    prefixes: frozenset[str]
    vocabulary: frozenset[str]


def compile_phrase(text: str) -> Phrase | None:
    atoms: list[str] = []
    prefix: list[bool] = []
    for word in text.split():
        star = word.endswith("*")
        parts = split_tokens(canonical(normalize(word.rstrip("*"))))
        for i, part in enumerate(parts):
            last = star and i == len(parts) - 1
            atoms.append(part if last else stem(part))
            prefix.append(last)
    if not atoms:
        return None
    keep = [i for i, a in enumerate(atoms) if a not in STOP or prefix[i]]
    if len(keep) >= 2:
        atoms = [atoms[i] for i in keep]
        prefix = [prefix[i] for i in keep]
    exact = frozenset(a for a, p in zip(atoms, prefix, strict=True) if not p)
    prefixes = frozenset(a for a, p in zip(atoms, prefix, strict=True) if p)
    return Phrase(tuple(atoms), tuple(prefix), exact, prefixes)


def _phrases(texts: Iterable[str]) -> tuple[Phrase, ...]:
    seen: dict[tuple[tuple[str, ...], tuple[bool, ...]], Phrase] = {}
    for text in texts:
        phrase = compile_phrase(text)
        if phrase is not None:
            seen.setdefault((phrase.atoms, phrase.prefix), phrase)
    return tuple(seen.values())


@lru_cache(maxsize=1024)
def compile_rubric(spec: Rubric) -> CompiledRubric:
    """Stems and phrases of a rubric, computed once per distinct rubric."""
    subjects: dict[tuple[tuple[str, ...], tuple[bool, ...]], int] = {}
    subject_list: list[Phrase] = []

    def subject_ids(specs: Sequence[ClaimSpec]) -> frozenset[int]:
        ids: set[int] = set()
        for phrase in _phrases(s for spec in specs for s in spec.subject):
            key = (phrase.atoms, phrase.prefix)
            if key not in subjects:
                subjects[key] = len(subject_list)
                subject_list.append(phrase)
            ids.add(subjects[key])
        return frozenset(ids)

    claims: list[Claim] = []
    for p, point in enumerate(spec):
        if point.claims:
            says = _phrases(s for c in point.claims for s in c.says)
            claims.append(Claim(p, -1, subject_ids(point.claims), says))
        for m, wrong in enumerate(point.misconceptions):
            says = _phrases(s for c in wrong.claims for s in c.says)
            claims.append(Claim(p, m, subject_ids(wrong.claims), says))
    every = [ph for c in claims for ph in c.says] + subject_list
    register_heads(x for ph in every for x in ph.prefixes)
    return CompiledRubric(
        spec=spec,
        claims=tuple(claims),
        subjects=tuple(subject_list),
        prefixes=frozenset(x for ph in every for x in ph.prefixes),
        vocabulary=frozenset(x for ph in every for x in ph.exact),
    )


# --- matching ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    """A claim found in the answer."""

    claim: Claim
    sentence: int
    start: int
    end: int
    negated: bool
    named_subject: bool  # its own subject was named in the answer


@dataclass(slots=True)
class _Mention:
    subject: int
    clause: int
    start: int
    end: int


@dataclass(slots=True)
class Matches:
    hits: list[Hit] = field(default_factory=list)


def _atom_at(phrase: Phrase, k: int, sentence: Sentence, i: int) -> bool:
    if phrase.prefix[k]:
        return sentence.raw[i].startswith(phrase.atoms[k])
    return sentence.stems[i] == phrase.atoms[k]


def _starts(phrase: Phrase, k: int, sentence: Sentence) -> list[int]:
    if phrase.prefix[k]:
        atom = phrase.atoms[k]
        return [i for i, raw in enumerate(sentence.raw) if raw.startswith(atom)]
    return sentence.index.get(phrase.atoms[k], [])


def _follow(phrase: Phrase, order: Sequence[int], sentence: Sentence, first: int) -> int:
    """The index of the phrase's last word when it continues from `first`, else -1."""
    prev = first
    for k in order[1:]:
        limit = sentence.cpos[prev] + GAP + 1
        found = -1
        j = prev + 1
        while j < len(sentence.raw) and sentence.cpos[j] <= limit:
            if _atom_at(phrase, k, sentence, j):
                found = j
                break
            j += 1
        if found < 0:
            return -1
        prev = found
    return prev


def find(phrase: Phrase, sentence: Sentence) -> list[tuple[int, int]]:
    """(start, end) token spans where the phrase occurs; two-word phrases in either order."""
    n = len(phrase.atoms)
    orders: list[Sequence[int]] = [range(n)]
    if n == 2:
        orders.append((1, 0))
    spans: list[tuple[int, int]] = []
    for order in orders:
        for i in _starts(phrase, order[0], sentence):
            end = i if n == 1 else _follow(phrase, order, sentence, i)
            if end >= 0:
                spans.append((i, end + 1))
    return spans


def _negated(sentence: Sentence, start: int, end: int, phrase: Phrase) -> bool:
    """A negation shortly before the phrase, between its words, or as "X won't help" after it."""
    raw = sentence.raw
    clause = sentence.clause[start]
    own = any(a in NEGATIONS for a in phrase.atoms)
    if not own and any(raw[i] in NEGATIONS for i in range(start + 1, end - 1)):
        return True
    i = start - 1
    while i >= 0 and sentence.clause[i] == clause:
        if sentence.cpos[start] - sentence.cpos[i] > NEGATION_REACH:
            break
        if raw[i] in NEGATIONS:
            if raw[i] in _NEAR_ONLY and sentence.cpos[start] - sentence.cpos[i] > 1:
                return False  # "without lst works on the list": "without" took its own noun
            after = raw[i + 1] if i + 1 < len(raw) else ""
            return after not in _NOT_NEGATING
        if raw[i] in _SCOPE_ENDS:
            break
        i -= 1
    last_clause = sentence.clause[end - 1]
    for i in range(end, min(end + 2, len(raw))):
        if sentence.clause[i] != last_clause:
            break
        if raw[i] in NEGATIONS and i + 1 < len(raw) and is_verb_like(raw[i + 1]):
            return True
    return False


def _present(prefixes: frozenset[str], analysis: Analysis) -> frozenset[str]:
    """The prefixes that some word of the answer starts with."""
    return prefixes & analysis.prefixes


def _in_sentence(phrase: Phrase, sentence: Sentence) -> bool:
    return phrase.exact <= sentence.index.keys() and phrase.prefixes <= sentence.heads


def _possible(phrase: Phrase, analysis: Analysis, prefixes: frozenset[str]) -> bool:
    return phrase.exact <= analysis.stems and phrase.prefixes <= prefixes


FOREIGN = -1  # the subject id of anything another question is about, not this one


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subject phrases of other questions, indexed by a word each needs (most never occur)."""

    by_word: dict[str, tuple[Phrase, ...]]
    by_prefix: dict[str, tuple[Phrase, ...]]
    prefixes: frozenset[str]

    def candidates(self, analysis: Analysis) -> list[Phrase]:
        found: list[Phrase] = []
        for word in analysis.stems & self.by_word.keys():
            found.extend(self.by_word[word])
        for prefix in _present(self.prefixes, analysis):
            found.extend(self.by_prefix[prefix])
        return found


NO_SUBJECTS = Subjects({}, {}, frozenset())


def subjects_of(phrases: Sequence[Phrase]) -> Subjects:
    by_word: dict[str, list[Phrase]] = {}
    by_prefix: dict[str, list[Phrase]] = {}
    for ph in phrases:
        if ph.exact:
            by_word.setdefault(min(ph.exact), []).append(ph)
        else:
            by_prefix.setdefault(min(ph.prefixes), []).append(ph)
    return Subjects(
        {w: tuple(p) for w, p in by_word.items()},
        {w: tuple(p) for w, p in by_prefix.items()},
        frozenset(by_prefix),
    )


def match(rubric: CompiledRubric, analysis: Analysis, foreign: Subjects = NO_SUBJECTS) -> list[Hit]:
    """Every claim of the rubric (points and misconceptions) the answer makes or denies.

    `foreign` are subjects of other questions: a sentence about one of them earns none of this
    rubric's claims that rely on the question's own (unnamed) subject.
    """
    prefixes = _present(rubric.prefixes, analysis)
    subjects = [
        (sid, ph) for sid, ph in enumerate(rubric.subjects) if _possible(ph, analysis, prefixes)
    ]
    if foreign.by_word or foreign.by_prefix:
        candidates = foreign.candidates(analysis)
        present = _present(frozenset(p for ph in candidates for p in ph.prefixes), analysis)
        subjects += [(FOREIGN, ph) for ph in candidates if _possible(ph, analysis, present)]
    claims = [
        (c, [ph for ph in c.says if _possible(ph, analysis, prefixes)]) for c in rubric.claims
    ]
    claims = [(c, phrases) for c, phrases in claims if phrases]
    hits: list[Hit] = []
    carry: frozenset[int] | None = None
    for s_index, sentence in enumerate(analysis.sentences):
        mentions = [
            _Mention(sid, sentence.clause[a], a, b)
            for sid, ph in subjects
            if _in_sentence(ph, sentence)
            for a, b in find(ph, sentence)
            if not _compared(sentence, a)
        ]
        mentions.sort(key=lambda m: m.start)
        found: list[tuple[Claim, int, int, Phrase]] = []
        for claim, phrases in claims:
            for ph in phrases:
                if not _in_sentence(ph, sentence):
                    continue
                for a, b in find(ph, sentence):
                    found.append((claim, a, b, ph))
        # A word of a subject's name ("sort" in "merge sort") is not something said about it.
        found = [
            f
            for f in found
            if not any(
                m.start <= f[1] and f[2] <= m.end and m.subject not in f[0].subjects
                for m in mentions
            )
        ]
        found.sort(key=lambda f: f[1])
        spans = [(c, a, b) for c, a, b, _ in found]
        asserted = [
            (c, a, b)
            for c, a, b, ph in found
            if c.misconception < 0 and not _negated(sentence, a, b, ph)
        ]
        said: dict[int, frozenset[int]] = {}  # the subject of the last claim in each clause
        for claim, a, b, phrase in found:
            if claim.misconception >= 0 and _inside_point(asserted, claim.point, a, b):
                continue
            if claim.misconception >= 0 and any(
                m.subject in claim.subjects and m.start < b and a < m.end for m in mentions
            ):
                continue  # a penalty needs a predicate clearly apart from its subject
            group = _governing(mentions, spans, sentence, a, b)
            clause = sentence.clause[a]
            if claim.misconception >= 0:
                # A penalty needs its subject named in the same clause, not inferred.
                local = _governing(mentions, spans, sentence, a, b, local=True)
                if claim.subjects and not (local and local & claim.subjects):
                    continue
            if group is None and clause in said:
                group = said[clause]  # "X splits it and halves it": still about X
            if group is None and _leading(sentence, a) <= 1:
                group = carry
            if group is not None:
                said[clause] = group
            if claim.subjects:
                named = group is not None and bool(group & claim.subjects)
                if group is not None and not named:
                    continue
            else:
                named = False
                if group is not None and group <= {FOREIGN}:
                    continue
            if claim.misconception >= 0 and claim.subjects and not named:
                continue
            hits.append(Hit(claim, s_index, a, b, _negated(sentence, a, b, phrase), named))
        if mentions:
            last = mentions[-1]
            carry = frozenset(m.subject for m in mentions if m.clause == last.clause)
    return _resolve(hits)


_COMPARED = frozenset("compared unlike than versus vs отличие сравнению чем".split())


def _compared(sentence: Sentence, start: int) -> bool:
    """A subject named as the other side of a comparison ("unlike a hash table") is not one."""
    return any(sentence.raw[i] in _COMPARED for i in range(max(0, start - 3), start))


def _inside_point(spans: list[tuple[Claim, int, int]], point: int, start: int, end: int) -> bool:
    """Words that make a point's claim are not read as its misconception too."""
    return any(
        c.point == point and c.misconception < 0 and a < end and start < b for c, a, b in spans
    )


def _leading(sentence: Sentence, start: int) -> int:
    """Content words before `start` in its clause."""
    clause = sentence.clause[start]
    first = next(i for i in range(len(sentence.raw)) if sentence.clause[i] == clause)
    return sentence.cpos[start] - sentence.cpos[first]


def _governing(
    mentions: list[_Mention],
    found: list[tuple[Claim, int, int]],
    sentence: Sentence,
    start: int,
    end: int,
    local: bool = False,
) -> frozenset[int] | None:
    clause = sentence.clause[start]
    previous_end = max(
        (b for _, a, b in found if b <= start and sentence.clause[a] == clause), default=-1
    )
    inside = {m.subject for m in mentions if start <= m.start < end}
    before = {m.subject for m in mentions if m.clause == clause and previous_end <= m.start < start}
    if before or inside:
        return frozenset(before | inside)
    leading = _leading(sentence, start)
    after = [
        m
        for m in mentions
        if m.clause == clause
        and m.start >= end
        and sentence.cpos[m.start] - sentence.cpos[end - 1] <= 2  # "LIFO — это стек"
    ]
    if after and leading <= 1:
        return frozenset({after[0].subject})
    if local:
        return None
    earlier = [m for m in mentions if m.start < start]
    if earlier and leading <= 1:
        last = earlier[-1]
        return frozenset(m.subject for m in earlier if m.clause == last.clause)
    return None


def _resolve(hits: list[Hit]) -> list[Hit]:
    """In a clause where a misconception of a point is asserted, that point's claim is not."""
    wrong = {
        (h.sentence, h.claim.point) for h in hits if h.claim.misconception >= 0 and not h.negated
    }
    return [
        h
        for h in hits
        if h.claim.misconception >= 0 or h.negated or (h.sentence, h.claim.point) not in wrong
    ]
