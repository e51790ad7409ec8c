"""From what an answer claims to the 0-10 scores, the same way for every evaluator.

`judge` reads an answer locally (claims against the rubric, misconceptions, hedges, "I don't
know", orders to the grader, lists without statements, answers to another question). The model
path builds the same `Judgement` from the model's structured output. `score` turns a judgement
into correctness, completeness, clarity and the overall score, so both paths share one scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.evaluator.bankindex import Entry, bank_index, foreign_subjects
from engine.evaluator.base import EvaluationRequest
from engine.evaluator.rubric import NO_SUBJECTS, CompiledRubric, Hit, compile_rubric, match
from engine.evaluator.signals import hedges, neutralize, says_dont_know
from engine.evaluator.text import Analysis, Sentence, analyse

# Credit of a point by how it was made.
STATEMENT = 1.0
FRAGMENT = 0.4  # a phrase without a verb or definition around it
LISTED = 0.3  # an item of a bare list of terms
DENIED_MYTH = 0.6  # the point's misconception explicitly denied ("GIL does not make it safe")
HEDGED = 0.85

FULL_COVERAGE = 0.85  # share of the points that earns full completeness
DEPTH_SHARE = 0.5  # an answer this share of the example answer's length is not cut short
DEPTH_FLOOR = 0.55  # what is left of the score of a one-line answer
MOSTLY_WRONG = 1.0  # only wrong claims, in the topic's words
LIST_CAP = 1.5  # terms without statements
OFF_TOPIC_RATIO = 0.5
OFF_TOPIC_CHECK_BELOW = 0.4  # an answer covering this share of its own points is on topic
SHORT_ANSWER_WORDS = 60
QUOTE_CHARS = 110


@dataclass(slots=True)
class PointResult:
    credit: float = 0.0
    quote: str = ""


@dataclass(slots=True)
class Myth:
    point: int
    misconception: int
    quote: str
    named: bool = True  # the misconception's subject was named, not just implied


@dataclass(slots=True)
class Judgement:
    points: list[PointResult]
    myths: list[Myth] = field(default_factory=list)
    unlisted_errors: list[str] = field(default_factory=list)  # wrong claims outside the rubric
    dont_know: bool = False
    injection: bool = False
    hedged: bool = False
    listlike: bool = False
    other_language: bool = False
    off_topic: Entry | None = None  # the question this answer fits instead
    elsewhere: bool = False  # judged (by the model) to answer another question
    statements: int = 0
    sentences: int = 0
    words: int = 0
    expected_words: int = 0  # length of the example answer

    @property
    def covered(self) -> float:
        return sum(p.credit for p in self.points)

    @property
    def wrong(self) -> int:
        return len({(m.point, m.misconception) for m in self.myths}) + len(self.unlisted_errors)


@dataclass(frozen=True, slots=True)
class Scores:
    score: float
    correctness: float
    completeness: float
    clarity: float


ZERO = Scores(0.0, 0.0, 0.0, 0.0)


def quote(sentence: Sentence) -> str:
    text = sentence.text.strip()
    if len(text) <= QUOTE_CHARS:
        return text.rstrip(".;,")
    cut = text[:QUOTE_CHARS].rsplit(" ", 1)[0]
    return cut.rstrip(".;,") + "…"


def _credit(sentence: Sentence, hedged: bool) -> float:
    shape = LISTED if sentence.listlike else STATEMENT if sentence.statement else FRAGMENT
    return shape * (HEDGED if hedged else 1.0)


def apply_hits(
    judgement: Judgement,
    analysis: Analysis,
    hits: list[Hit],
    any_hedge: bool | None = None,
    any_unsure: bool | None = None,
) -> None:
    """Fold matched claims into the judgement: best credit per point, asserted myths."""
    hedged_at: dict[int, bool] = {}
    if any_hedge is None:
        any_hedge = hedges(analysis.text)
    if any_unsure is None:
        any_unsure = says_dont_know(analysis.text)
    unsure: set[int] = set()
    if any_unsure:
        unsure = {i for i, s in enumerate(analysis.sentences) if says_dont_know(s.text)}
    for hit in hits:
        if hit.sentence in unsure and hit.claim.misconception < 0:
            continue  # "I've heard of X but don't know": X is not a claim
        sentence = analysis.sentences[hit.sentence]
        hedged = hedged_at.get(hit.sentence)
        if hedged is None:
            hedged = hedged_at[hit.sentence] = any_hedge and hedges(sentence.text)
        claim = hit.claim
        point = judgement.points[claim.point]
        if claim.misconception < 0:
            if hit.negated:
                continue
            credit = _credit(sentence, hedged)
        elif hit.negated:
            credit = DENIED_MYTH * _credit(sentence, hedged)
        else:
            judgement.myths.append(
                Myth(claim.point, claim.misconception, quote(sentence), hit.named_subject)
            )
            continue
        if credit > point.credit:
            point.credit = credit
            point.quote = quote(sentence)


def coverage_of(rubric: CompiledRubric, analysis: Analysis) -> float:
    """Points credited against a rubric (misconceptions ignored): for comparing questions."""
    probe = Judgement([PointResult() for _ in rubric.spec])
    apply_hits(probe, analysis, match(rubric, analysis), False, False)
    return probe.covered


def _shape(
    request: EvaluationRequest, other_language: bool
) -> tuple[Judgement, Analysis, CompiledRubric]:
    cleaned = neutralize(request.answer)
    rubric = compile_rubric(request.rubric)  # before the analysis: it registers word beginnings
    bank_index()
    analysis = analyse(cleaned.text)
    judgement = Judgement([PointResult() for _ in request.rubric])
    judgement.injection = cleaned.injection
    judgement.other_language = other_language
    judgement.hedged = hedges(cleaned.text)
    judgement.dont_know = says_dont_know(cleaned.text)
    judgement.sentences = len(analysis.sentences)
    judgement.statements = sum(1 for s in analysis.sentences if s.statement)
    judgement.words = analysis.words
    judgement.expected_words = len(request.example_answer.split())
    judgement.listlike = (
        bool(analysis.sentences)
        and judgement.statements == 0
        and any(s.listlike or s.content_words <= 3 for s in analysis.sentences)
    )
    return judgement, analysis, rubric


def shape_of(request: EvaluationRequest, other_language: bool = False) -> Judgement:
    """A judgement with no claims yet: how the answer is written, read locally."""
    return _shape(request, other_language)[0]


def judge(request: EvaluationRequest, other_language: bool = False) -> Judgement:
    """Read the answer against the request's rubric."""
    judgement, analysis, rubric = _shape(request, other_language)
    context = " ".join([request.question, request.example_answer, *request.key_points])
    foreign = foreign_subjects(rubric, context) if request.rubric else NO_SUBJECTS
    hits = match(rubric, analysis, foreign)
    apply_hits(judgement, analysis, hits, judgement.hedged, judgement.dont_know)
    own_share = judgement.covered / max(1, len(request.rubric))
    if analysis.sentences and request.rubric and own_share < OFF_TOPIC_CHECK_BELOW:
        named = any(m.named for m in judgement.myths)
        judgement.off_topic = None if named else _off_topic(request, analysis, judgement.covered)
    return judgement


def _off_topic(request: EvaluationRequest, analysis: Analysis, own: float) -> Entry | None:
    index = bank_index()
    own_text = request.question.strip()
    exclude = frozenset(
        e.slug for e in index.entries if e.slug == request.slug or own_text in e.text
    )
    n_own = max(1, len(request.rubric))
    best: tuple[float, Entry | None] = (0.0, None)
    own_subjects = {(p.atoms, p.prefix) for p in compile_rubric(request.rubric).subjects}
    for candidate in index.closest(analysis, exclude):
        if any((p.atoms, p.prefix) in own_subjects for p in candidate.rubric.subjects):
            continue  # a question about the same subject is not another topic
        other = coverage_of(candidate.rubric, analysis)
        n_other = max(1, len(candidate.rubric.spec))
        if other / n_other > best[0]:
            best = (other / n_other, candidate)
    share, found = best
    if found is None or share < 0.4:
        return None
    if own < 2 and own / n_own < OFF_TOPIC_RATIO * share:
        return found
    return None


def clarity_of(judgement: Judgement) -> float:
    """Structure: statements rather than fragments, more than one sentence, not a list."""
    if judgement.sentences == 0:
        return 0.0
    ratio = judgement.statements / judgement.sentences
    value = 3.0 + 5.0 * ratio + (2.0 if judgement.sentences >= 2 else 1.0)
    if judgement.listlike:
        value = min(value, 2.0)
    return min(10.0, value)


def score(judgement: Judgement, level: str) -> Scores:
    """The 0-10 scores of a judgement.

    Correctness is the share of right claims among all claims, scaled by how much was said;
    completeness the share of key points made, lowered for an answer much shorter than a good
    one; clarity how much of the answer is statements. A misconception caps the score below
    every pass mark; a bare list of terms, "I don't know", an answer to another question or an
    answer with nothing to credit score (almost) nothing, as the rubric of the level says.
    """
    n = max(1, len(judgement.points))
    covered = judgement.covered
    wrong = judgement.wrong
    stated = sum(1 for p in judgement.points if p.credit >= FRAGMENT)
    if judgement.off_topic is not None or judgement.elsewhere or (covered == 0 and wrong == 0):
        return ZERO
    if judgement.dont_know and stated == 0:
        return ZERO
    if covered == 0:
        return Scores(MOSTLY_WRONG, 0.0, 0.0, round(min(2.0, clarity_of(judgement)), 1))
    coverage = covered / n
    depth = min(1.0, judgement.words / max(1.0, DEPTH_SHARE * judgement.expected_words))
    precision = covered / (covered + 1.5 * wrong)
    correctness = 10.0 * precision * min(1.0, coverage / 0.6)
    if wrong:
        correctness = min(correctness, 4.0 if wrong == 1 else 2.0)
    completeness = 10.0 * min(1.0, coverage / FULL_COVERAGE) * (0.5 + 0.5 * depth)
    clarity = clarity_of(judgement) * min(1.0, coverage / 0.5)
    overall = (0.5 * correctness + 0.3 * completeness + 0.2 * clarity) * (
        DEPTH_FLOOR + (1 - DEPTH_FLOOR) * depth
    )
    if wrong:
        overall = min(overall, 4.5 if wrong == 1 else 2.5)
    if judgement.listlike:
        overall = min(overall, LIST_CAP)
    return Scores(
        round(overall, 1), round(correctness, 1), round(completeness, 1), round(clarity, 1)
    )
