"""The labelled answers and the figures that measure a grader against them.

`graded/dev.jsonl` and `graded/test.jsonl` hold answers to shipped questions, each with the
score a fair senior interviewer gives (0-10) and its kind. The halves split by question: every
answer to a question is in the same half, so the test half measures material the grader was
never tuned on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings

GRADED = Path(__file__).parent / "graded"
HALVES = ("dev", "test")
KINDS = (
    "excellent",
    "partial",
    "wrong",
    "dont_know",
    "off_topic",
    "filler",
    "keyword_list",
    "injection",
    "other_language",
)
FAILING_KINDS = ("wrong", "keyword_list", "injection")  # must stay below the pass mark
ZERO = (("dont_know", ""), ("injection", "only"), ("filler", ""))  # must score exactly 0


@dataclass(frozen=True, slots=True)
class Labelled:
    id: str
    question: str
    language: str
    kind: str
    variant: str
    expected: float
    answer: str


@dataclass(frozen=True, slots=True)
class Graded:
    item: Labelled
    score: float
    level: str
    source: str = "local"


def load(half: str) -> list[Labelled]:
    items = []
    for line in (GRADED / f"{half}.jsonl").read_text("utf-8").splitlines():
        data = json.loads(line)
        items.append(
            Labelled(
                id=data["id"],
                question=data["question"],
                language=data["language"],
                kind=data["kind"],
                variant=data.get("variant", ""),
                expected=float(data["score"]),
                answer=data["answer"],
            )
        )
    return items


def pass_mark(level: str) -> float:
    """The per-answer pass mark: the level's interview threshold (0-100) on the 0-10 scale."""
    field = Settings.model_fields[f"pass_threshold_{level}"]
    return float(field.default) / 10


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float:
    rx, ry = _ranks(xs), _ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else 0.0


def auc(positive: list[float], negative: list[float]) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    if not positive or not negative:
        return 0.0
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in positive for q in negative)
    return wins / (len(positive) * len(negative))


@dataclass(frozen=True, slots=True)
class Figures:
    count: int
    by_kind: dict[str, tuple[int, float, float]]  # kind: (count, mean score, mean expected)
    spearman: float
    auc: float
    mae: float
    false_pass: float
    false_fail: float
    zero_misses: list[str]  # ids of don't-know, injection-only and filler answers above 0

    def summary(self, label: str) -> str:
        return (
            f"{label}: n={self.count} spearman={self.spearman:.3f} auc={self.auc:.3f} "
            f"mae={self.mae:.2f} false_pass={self.false_pass:.1%} "
            f"false_fail={self.false_fail:.1%} zero_misses={len(self.zero_misses)}"
        )


def figures(graded: Iterable[Graded]) -> Figures:
    rows = list(graded)
    kinds: dict[str, list[Graded]] = defaultdict(list)
    for row in rows:
        kinds[row.item.kind].append(row)
    by_kind = {
        kind: (
            len(items),
            sum(r.score for r in items) / len(items),
            sum(r.item.expected for r in items) / len(items),
        )
        for kind, items in sorted(kinds.items(), key=lambda kv: KINDS.index(kv[0]))
    }
    failing = [r for r in rows if r.item.kind in FAILING_KINDS]
    excellent = kinds.get("excellent", [])
    return Figures(
        count=len(rows),
        by_kind=by_kind,
        spearman=spearman([r.score for r in rows], [r.item.expected for r in rows]),
        auc=auc(
            [r.score for r in excellent],
            [r.score for r in rows if r.item.kind in ("wrong", "keyword_list")],
        ),
        mae=sum(abs(r.score - r.item.expected) for r in rows) / max(1, len(rows)),
        false_pass=sum(r.score >= pass_mark(r.level) for r in failing) / max(1, len(failing)),
        false_fail=sum(r.score < pass_mark(r.level) for r in excellent) / max(1, len(excellent)),
        zero_misses=[
            r.item.id
            for r in rows
            if r.score != 0
            and any(r.item.kind == k and (not v or r.item.variant == v) for k, v in ZERO)
        ],
    )


def report(label: str, fig: Figures) -> list[str]:
    lines = [f"{label} half: {fig.count} answers"]
    lines.append(f"  {'kind':<15}{'n':>4}{'mean':>8}{'expected':>10}")
    for kind, (count, mean, expected) in fig.by_kind.items():
        lines.append(f"  {kind:<15}{count:>4}{mean:>8.2f}{expected:>10.2f}")
    lines.append(f"  Spearman(score, expected)      {fig.spearman:.3f}")
    lines.append(f"  ROC AUC excellent vs wrong+list {fig.auc:.3f}")
    lines.append(f"  mean absolute error            {fig.mae:.2f}")
    lines.append(f"  false pass (wrong/list/inject) {fig.false_pass:.1%}")
    lines.append(f"  false fail (excellent)         {fig.false_fail:.1%}")
    misses = ", ".join(fig.zero_misses) or "none"
    lines.append(f"  not 0 (don't know, injection-only, filler): {misses}")
    return lines
