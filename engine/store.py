"""The durable interview record in MongoDB: what the history, reports and recovery read."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from core.db import Database, Doc, parse_object_id
from engine.questions.selection import History
from engine.state import InterviewState, QuestionState, Status


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class InterviewStore:
    def __init__(self, db: Database) -> None:
        self._interviews = db["interviews"]

    async def create(self, state: InterviewState, now: float) -> None:
        doc: Doc = {
            "_id": ObjectId(state.interview_id),
            "userId": ObjectId(state.user_id),
            "type": "technical",
            "level": state.level,
            "language": state.language,
            "passThreshold": state.pass_threshold,
            "startTime": _dt(now),
            "endTime": None,
            "status": state.status.public,
            "phase": state.status.value,
            "currentIndex": state.current,
            "deadline": _dt(state.deadline),
            "questions": [
                {
                    "questionId": ObjectId(q.question_id),
                    "question": q.text,
                    "tags": q.tags,
                    "timeLimitSec": q.time_limit_sec,
                    "userAnswer": None,
                    "answeredAt": None,
                    "auto": False,
                    "clientMsgId": None,
                    "aiEvaluation": None,
                }
                for q in state.questions
            ],
            "overallScore": None,
            "passed": None,
            "feedback": None,
            "strongTopics": [],
            "weakTopics": [],
            "feedbackDelivered": False,
            "lastActivity": _dt(now),
            "tokenUsage": {"in": 0, "out": 0},
            "version": state.version,
        }
        await self._interviews.insert_one(doc)

    async def persist_answer(self, state: InterviewState, index: int, now: float) -> bool:
        """Store the answer unless the question already has one; False means someone was first."""
        q = state.questions[index]
        prefix = f"questions.{index}."
        result = await self._interviews.update_one(
            {"_id": ObjectId(state.interview_id), prefix + "userAnswer": None},
            {
                "$set": {
                    prefix + "userAnswer": q.answer,
                    prefix + "answeredAt": _dt(q.answered_at),
                    prefix + "auto": q.auto,
                    prefix + "clientMsgId": q.client_msg_id,
                    "phase": state.status.value,
                    "deadline": None,
                    "lastActivity": _dt(now),
                    "version": state.version,
                }
            },
        )
        return result.matched_count == 1

    async def persist_evaluation(self, state: InterviewState, index: int, now: float) -> None:
        q = state.questions[index]
        evaluation = q.evaluation or {}
        await self._interviews.update_one(
            {"_id": ObjectId(state.interview_id)},
            {
                "$set": {
                    f"questions.{index}.aiEvaluation": evaluation,
                    "phase": state.status.value,
                    "currentIndex": state.current,
                    "deadline": _dt(state.deadline),
                    "lastActivity": _dt(now),
                    "version": state.version,
                },
                "$inc": {
                    "tokenUsage.in": int(evaluation.get("tokensIn", 0)),
                    "tokenUsage.out": int(evaluation.get("tokensOut", 0)),
                },
            },
        )

    async def persist_outcome(self, state: InterviewState, now: float) -> None:
        update: dict[str, Any] = {
            "status": state.status.public,
            "phase": state.status.value,
            "endTime": _dt(now),
            "deadline": None,
            "lastActivity": _dt(now),
            "version": state.version,
        }
        for i, q in enumerate(state.questions):
            if q.evaluation is not None:
                update[f"questions.{i}.aiEvaluation"] = q.evaluation
        if state.result is not None:
            update.update(
                {
                    "overallScore": state.result["score"],
                    "passed": state.result["passed"],
                    "feedback": state.result["feedback"],
                    "strongTopics": state.result["strongTopics"],
                    "weakTopics": state.result["weakTopics"],
                    "feedbackDelivered": True,
                }
            )
        await self._interviews.update_one({"_id": ObjectId(state.interview_id)}, {"$set": update})

    async def get(self, interview_id: str) -> Doc | None:
        oid = parse_object_id(interview_id)
        return None if oid is None else await self._interviews.find_one({"_id": oid})

    async def load_state(self, interview_id: str) -> InterviewState | None:
        """Rebuild the live state from the durable record (after the live copy was lost)."""
        doc = await self.get(interview_id)
        return None if doc is None else state_from_doc(doc)

    async def history(self, user_id: str, skip: int, limit: int) -> tuple[list[Doc], int]:
        query = {"userId": ObjectId(user_id)}
        cursor = (
            self._interviews.find(query, {"questions.aiEvaluation.feedback": 0})
            .sort("startTime", -1)
            .skip(skip)
            .limit(limit)
        )
        docs = [d async for d in cursor]
        total = await self._interviews.count_documents(query)
        return docs, total

    async def selection_history(self, user_id: str, level: str, last: int = 30) -> History:
        """Which questions the user was asked at this level, and the mean score per topic."""
        cursor = (
            self._interviews.find(
                {"userId": ObjectId(user_id), "level": level},
                {"questions.questionId": 1, "questions.tags": 1, "questions.aiEvaluation.score": 1},
            )
            .sort("startTime", -1)
            .limit(last)
        )
        asked: dict[str, int] = {}
        scores: dict[str, list[float]] = defaultdict(list)
        age = 0
        async for doc in cursor:
            for q in doc.get("questions", []):
                asked.setdefault(str(q["questionId"]), age)
                evaluation = q.get("aiEvaluation") or {}
                if "score" in evaluation:
                    tags = q.get("tags") or ["general"]
                    scores[tags[0]].append(float(evaluation["score"]))
            age += 1
        return History(asked, {t: sum(v) / len(v) for t, v in scores.items()})

    async def percentile(self, level: str, score: int) -> int:
        """Share (0-100) of completed interviews at this level that scored below `score`."""
        base = {"level": level, "status": "completed"}
        total = await self._interviews.count_documents(base)
        if total == 0:
            return 100
        below = await self._interviews.count_documents({**base, "overallScore": {"$lt": score}})
        equal = await self._interviews.count_documents({**base, "overallScore": score})
        return round(100 * (below + 0.5 * equal) / total)

    async def set_share_token(self, interview_id: str, token_hash: str | None) -> None:
        op = (
            {"$set": {"shareTokenHash": token_hash}}
            if token_hash
            else {"$unset": {"shareTokenHash": ""}}
        )
        await self._interviews.update_one({"_id": ObjectId(interview_id)}, op)

    async def by_share_token(self, token_hash: str) -> Doc | None:
        return await self._interviews.find_one({"shareTokenHash": token_hash})

    async def stale_in_progress(self, before: datetime, limit: int = 500) -> list[str]:
        cursor = self._interviews.find(
            {"status": "in-progress", "lastActivity": {"$lt": before}}, {"_id": 1}
        ).limit(limit)
        return [str(d["_id"]) async for d in cursor]

    async def evaluating(self, idle_since: datetime, limit: int = 1000) -> list[tuple[str, int]]:
        """In-progress interviews whose answer has waited for its evaluation since `idle_since`."""
        cursor = self._interviews.find(
            {"status": "in-progress", "phase": "evaluating", "lastActivity": {"$lt": idle_since}},
            {"currentIndex": 1},
        ).limit(limit)
        return [(str(d["_id"]), int(d.get("currentIndex", 0))) async for d in cursor]

    async def with_deadlines(self, limit: int = 10_000) -> list[tuple[str, float]]:
        """In-progress interviews waiting on an answer, with their deadlines (to re-arm timers)."""
        cursor = self._interviews.find(
            {"status": "in-progress", "deadline": {"$ne": None}}, {"deadline": 1}
        ).limit(limit)
        return [(str(d["_id"]), d["deadline"].timestamp()) async for d in cursor]


def state_from_doc(doc: Doc) -> InterviewState:
    questions = [
        QuestionState(
            question_id=str(q["questionId"]),
            text=q["question"],
            tags=list(q.get("tags") or []),
            time_limit_sec=int(q.get("timeLimitSec", 300)),
            answer=q.get("userAnswer"),
            client_msg_id=q.get("clientMsgId"),
            answered_at=_ts(q.get("answeredAt")),
            auto=bool(q.get("auto")),
            evaluation=q.get("aiEvaluation"),
        )
        for q in doc["questions"]
    ]
    result = None
    if doc.get("overallScore") is not None:
        result = {
            "score": doc["overallScore"],
            "passed": doc["passed"],
            "feedback": doc.get("feedback") or "",
            "strongTopics": doc.get("strongTopics") or [],
            "weakTopics": doc.get("weakTopics") or [],
        }
    return InterviewState(
        interview_id=str(doc["_id"]),
        user_id=str(doc["userId"]),
        level=doc["level"],
        language=doc.get("language", "ru"),
        pass_threshold=int(doc.get("passThreshold", 60)),
        questions=questions,
        status=Status(doc.get("phase", "awaiting_answer")),
        current=int(doc.get("currentIndex", 0)),
        deadline=_ts(doc.get("deadline")),
        result=result,
        version=int(doc.get("version", 1)),
    )
