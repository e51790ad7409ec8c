"""`make eval`: grade the labelled answers and print the figures.

    python -m tests.evaluator.run [--evaluator local|openai] [--half test|dev|both] [--verbose]

`--evaluator openai` sends every answer through the OpenAI evaluator built from the environment
(OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL: any OpenAI-compatible endpoint such as a local
Ollama or llama.cpp server). Answers the model did not grade (fallback to the local evaluator)
are counted and reported, never silently mixed in.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from core.kv import MemoryCache
from core.settings import Settings
from engine.evaluator.bankindex import bank_index, bank_request
from engine.evaluator.base import Done, EvaluationRequest, Evaluator
from engine.evaluator.local import grade
from tests.evaluator.labelled import HALVES, Graded, Labelled, figures, load, report

CONCURRENCY = 4


def request_for(item: Labelled) -> EvaluationRequest:
    return bank_request(item.question, item.answer, item.language)


TYPICAL_CHARS = (550, 900)  # "a typical 700-character answer"


def typical_cost(requests: list[EvaluationRequest]) -> float | None:
    """Median CPU seconds to grade one answer of about 700 characters (best of 5 runs each)."""
    typical = [r for r in requests if TYPICAL_CHARS[0] <= len(r.answer) <= TYPICAL_CHARS[1]]
    costs = []
    for request in typical:
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            grade(request)
            best = min(best, time.process_time() - started)
        costs.append(best)
    return statistics.median(costs) if costs else None


def grade_locally(items: list[Labelled]) -> tuple[list[Graded], float, float | None]:
    """Scores, the CPU time per answer on a second (warm) pass, and per typical answer."""
    requests = [request_for(item) for item in items]
    results = [grade(r)[0] for r in requests]
    started = time.process_time()
    for r in requests:
        grade(r)
    per_answer = (time.process_time() - started) / max(1, len(requests))
    graded = [
        Graded(item, ev.score, req.level, ev.source)
        for item, req, ev in zip(items, requests, results, strict=True)
    ]
    return graded, per_answer, typical_cost(requests)


async def grade_with(evaluator: Evaluator, items: list[Labelled]) -> list[Graded]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(item: Labelled) -> Graded:
        request = request_for(item)
        async with limit:
            async for event in evaluator.evaluate(request):
                if isinstance(event, Done):
                    ev = event.evaluation
                    return Graded(item, ev.score, request.level, ev.source)
        raise RuntimeError(f"{item.id}: the evaluator ended without a result")

    return list(await asyncio.gather(*(one(item) for item in items)))


async def grade_openai(items: list[Labelled]) -> list[Graded]:
    from engine.evaluator.openai import OpenAIEvaluator

    settings = Settings()
    if settings.openai_api_key is None:
        raise SystemExit("EVALUATOR=openai needs OPENAI_API_KEY (any value for a local server)")
    evaluator = OpenAIEvaluator.from_settings(settings, MemoryCache())
    try:
        return await grade_with(evaluator, items)
    finally:
        await evaluator.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure a grader on the labelled answers.")
    parser.add_argument("--evaluator", choices=("local", "openai"), default="local")
    parser.add_argument("--half", choices=(*HALVES, "both"), default="both")
    parser.add_argument("--verbose", action="store_true", help="print every answer's score")
    parser.add_argument("--limit", type=int, default=0, help="only the first N answers of a half")
    args = parser.parse_args(argv)
    halves = HALVES if args.half == "both" else (args.half,)
    bank_index()  # built once per process; not part of the per-answer cost
    summaries: list[str] = []
    for half in halves:
        items = load(half)[: args.limit] if args.limit else load(half)
        cpu = typical = None
        if args.evaluator == "local":
            graded, cpu, typical = grade_locally(items)
        else:
            graded = asyncio.run(grade_openai(items))
        fig = figures(graded)
        lines = report(half, fig)
        sources: dict[str, int] = {}
        for g in graded:
            sources[g.source] = sources.get(g.source, 0) + 1
        lines.append("  graded by: " + ", ".join(f"{s} {n}" for s, n in sorted(sources.items())))
        if cpu is not None:
            lines.append(f"  CPU per graded answer (warm)   {cpu * 1000:.2f} ms")
        if typical is not None:
            lines.append(f"  CPU per ~700-char answer (median) {typical * 1000:.2f} ms")
        if args.verbose:
            for g in sorted(graded, key=lambda g: abs(g.score - g.item.expected), reverse=True):
                lines.append(
                    f"  {g.item.id} {g.item.kind:<14} expected {g.item.expected:>4} "
                    f"got {g.score:>4}  {g.item.question}"
                )
        print("\n".join(lines))
        summary = fig.summary(f"{half}[{args.evaluator}]")
        if cpu is not None:
            summary += f" cpu={cpu * 1000:.2f}ms/answer"
        summaries.append(summary)
    print(" | ".join(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
