"""The feedback an interviewer would give, written from a judgement, in Russian or English.

It quotes what the candidate wrote, says which claims were right, names and corrects each wrong
one, says what was missing, and ends with one thing to study. A point is called right only when
a claim of it was found in the answer.
"""

from __future__ import annotations

from engine.evaluator.base import EvaluationRequest, RubricPoint, pick
from engine.evaluator.grading import FRAGMENT, HEDGED, STATEMENT, Judgement, Scores

STATED = STATEMENT * HEDGED  # credit of a point made in a statement, even a hedged one

MAX_RIGHT = 3
MAX_MISSING = 3

TOPICS: dict[str, tuple[str, str]] = {
    "algorithms": ("алгоритмы", "algorithms"),
    "data-structures": ("структуры данных", "data structures"),
    "python": ("Python", "Python"),
    "databases": ("базы данных", "databases"),
    "networking": ("сети", "networking"),
    "os": ("операционные системы", "operating systems"),
    "concurrency": ("конкурентность", "concurrency"),
    "testing": ("тестирование", "testing"),
    "system-design": ("проектирование систем", "system design"),
}

_TEXT = {
    "ru": {
        "quote": "Вы пишете: «{q}».",
        "right": "Верно: {items}.",
        "hedged": " Вы сомневались, но это правильно — говорите увереннее.",
        "listed": "Вы назвали термины («{q}»), но не объяснили, что они означают и как работают.",
        "wrong": "Неверно: «{q}». {fix}",
        "wrong_unlisted": "Неверно: «{q}».",
        "missing": "Не хватает: {items}.",
        "study": "Что изучить: {point}. Проверьте себя вопросом: {ask}",
        "study_plain": "Что изучить: {point}.",
        "empty": "Ответа нет, поэтому 0 баллов.",
        "dont_know": "Вы ответили, что не знаете, — это честно, но баллов за такой ответ нет.",
        "nothing": "В ответе нет утверждений по этому вопросу, которые можно засчитать, "
        "поэтому 0 баллов.",
        "injection": "Указания проверяющему в ответе проигнорированы: оценивается только "
        "техническое содержание.",
        "off_topic": "Это ответ на другой вопрос — «{other}» (тема: {topic}), а спрашивали: "
        "«{own}». По этому вопросу баллов нет.",
        "language": "Вы ответили по-английски; содержание оценено, но на собеседовании лучше "
        "отвечать на его языке.",
        "expected": "Хороший ответ: {items}.",
    },
    "en": {
        "quote": 'You wrote: "{q}".',
        "right": "Right: {items}.",
        "hedged": " You hedged, but this is correct: say it with confidence.",
        "listed": 'You named terms ("{q}") but did not explain what they mean or how they work.',
        "wrong": 'Wrong: "{q}". {fix}',
        "wrong_unlisted": 'Wrong: "{q}".',
        "missing": "Missing: {items}.",
        "study": "What to study: {point}. Check yourself with: {ask}",
        "study_plain": "What to study: {point}.",
        "empty": "There is no answer, so the score is 0.",
        "dont_know": "You said you do not know: that is honest, but such an answer earns no "
        "points.",
        "nothing": "The answer makes no statement about this question that can be credited, "
        "so the score is 0.",
        "injection": "Instructions to the grader in the answer were ignored: only the technical "
        "content is graded.",
        "off_topic": 'This answers a different question, "{other}" (topic: {topic}); the '
        'question was "{own}". It earns no points here.',
        "language": "You answered in Russian; the content is graded, but in an interview answer "
        "in its language.",
        "expected": "A good answer says: {items}.",
    },
}


def topic_name(tag: str, language: str) -> str:
    names = TOPICS.get(tag)
    if names is None:
        return tag.replace("-", " ")
    return names[1] if language == "en" else names[0]


def _point(point: RubricPoint, language: str) -> str:
    return _lower_first(pick(point.text, language).rstrip("."))


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _short(question: str, limit: int = 140) -> str:
    text = " ".join(question.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _join(items: list[str]) -> str:
    return "; ".join(items)


def _study(request: EvaluationRequest, judgement: Judgement, language: str) -> str:
    text = _TEXT["en" if language == "en" else "ru"]
    rubric = request.rubric
    order = [m.point for m in judgement.myths]
    order += [i for i, p in enumerate(judgement.points) if p.credit < FRAGMENT]
    if not order or not rubric:
        return ""
    point = rubric[order[0]]
    if point.follow_up is not None:
        return text["study"].format(
            point=_point(point, language), ask=pick(point.follow_up, language)
        )
    return text["study_plain"].format(point=_point(point, language))


def _expected(request: EvaluationRequest, judgement: Judgement, language: str) -> list[str]:
    """What a good answer to this question says, and the first thing to study."""
    text = _TEXT["en" if language == "en" else "ru"]
    parts = []
    if request.rubric:
        items = [_point(p, language) for p in request.rubric[:MAX_MISSING]]
        parts.append(text["expected"].format(items=_join(items)))
    study = _study(request, judgement, language)
    if study:
        parts.append(study)
    return parts


def write(request: EvaluationRequest, judgement: Judgement, scores: Scores) -> str:
    """The feedback for a graded answer."""
    language = "en" if request.language == "en" else "ru"
    text = _TEXT[language]
    rubric = request.rubric
    parts: list[str] = []
    if judgement.injection:
        parts.append(text["injection"])
    if judgement.other_language:
        parts.append(text["language"])
    if judgement.off_topic is not None:
        other = judgement.off_topic
        topic = topic_name(other.tags[0] if other.tags else "", language)
        parts.append(
            text["off_topic"].format(
                other=_short(pick(other.text, language)), topic=topic, own=_short(request.question)
            )
        )
        return " ".join(parts + _expected(request, judgement, language))
    if scores.score == 0 and not judgement.myths:
        if not request.answer.strip():
            parts.append(text["empty"])
        elif judgement.dont_know:
            parts.append(text["dont_know"])
        else:
            parts.append(text["nothing"])
        return " ".join(parts + _expected(request, judgement, language))

    credited = [(i, p) for i, p in enumerate(judgement.points) if p.credit >= STATED - 1e-9]
    listed = [p for p in judgement.points if 0 < p.credit < STATED - 1e-9]
    if credited:
        best = max(credited, key=lambda item: item[1].credit)[1]
        parts.append(text["quote"].format(q=best.quote))
        items = [_point(rubric[i], language) for i, _ in credited[:MAX_RIGHT]]
        right = text["right"].format(items=_join(items))
        if judgement.hedged:
            right += text["hedged"]
        parts.append(right)
    elif listed:
        parts.append(text["listed"].format(q=listed[0].quote))
    fixes: dict[str, list[str]] = {}  # quote -> corrections, in the order they were said
    seen: set[tuple[int, int]] = set()
    for myth in judgement.myths:
        key = (myth.point, myth.misconception)
        if key in seen:
            continue
        seen.add(key)
        wrong = rubric[myth.point].misconceptions[myth.misconception]
        fixes.setdefault(myth.quote, []).append(pick(wrong.correction, language))
    for quoted, corrections in fixes.items():
        parts.append(text["wrong"].format(q=quoted, fix=" ".join(corrections)))
    for claim in judgement.unlisted_errors:
        parts.append(text["wrong_unlisted"].format(q=claim))
    corrected = {m.point for m in judgement.myths}  # already said right above
    missing = [
        _point(rubric[i], language)
        for i, p in enumerate(judgement.points)
        if p.credit < FRAGMENT and i not in corrected
    ]
    if missing:
        parts.append(text["missing"].format(items=_join(missing[:MAX_MISSING])))
    study = _study(request, judgement, language)
    if study:
        parts.append(study)
    return " ".join(parts)
