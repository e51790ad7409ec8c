"""Questions in MongoDB, cached per level (Redis or in process) and invalidated on change."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from core.db import Database, Doc, parse_object_id
from core.kv import Cache
from engine.questions.bank import LEVELS, BankQuestion, bank_digest, load_bank

log = logging.getLogger(__name__)

CACHE_KEY = "questions:v1:"
META_ID = "question_bank"
# Each node also keeps the parsed bank of a level for this long: an answer's evaluation reads its
# question without a round trip or a parse. A change by staff is seen at once on the node that
# made it and within this time on the others.
LOCAL_TTL_SEC = 30.0


def _cacheable(doc: Doc) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "slug": doc["slug"],
        "level": doc["level"],
        "tags": doc["tags"],
        "difficulty": doc["difficulty"],
        "text": doc["text"],
        "exampleAnswer": doc["exampleAnswer"],
        "keyPoints": doc["keyPoints"],
    }


class QuestionRepository:
    def __init__(self, db: Database, cache: Cache, ttl_sec: int) -> None:
        self._questions = db["questions"]
        self._meta = db["meta"]
        self._cache = cache
        self._ttl = ttl_sec
        self._local: dict[str, tuple[float, list[dict[str, Any]], dict[str, dict[str, Any]]]] = {}

    async def seed(self, questions: tuple[BankQuestion, ...] | None = None) -> int:
        """Upsert the shipped bank by slug; a question staff have edited keeps their edits."""
        items = questions if questions is not None else load_bank()
        now = datetime.now(UTC)
        ops = [
            UpdateOne(
                {"slug": q.slug, "updatedBy": {"$exists": False}},
                {
                    "$set": {
                        "type": q.type,
                        "level": q.level,
                        "question": q.text.ru,
                        "text": q.text.model_dump(),
                        "exampleAnswer": q.exampleAnswer.model_dump(),
                        "keyPoints": [k.model_dump() for k in q.keyPoints],
                        "tags": q.tags,
                        "difficulty": q.difficulty,
                        "updatedAt": now,
                    },
                    "$setOnInsert": {"slug": q.slug, "isActive": True, "createdAt": now},
                },
                upsert=True,
            )
            for q in items
        ]
        if ops:
            try:
                await self._questions.bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                # An upsert that meets a staff-edited question collides on the slug: keep theirs.
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise
        await self._meta.update_one(
            {"_id": META_ID}, {"$set": {"digest": bank_digest(), "seededAt": now}}, upsert=True
        )
        await self.invalidate()
        return len(ops)

    async def seed_if_changed(self) -> bool:
        """Seed when the shipped bank differs from what the database holds."""
        meta = await self._meta.find_one({"_id": META_ID})
        if meta is not None and meta.get("digest") == bank_digest():
            return False
        count = await self.seed()
        log.info("question bank seeded", extra={"questions": count})
        return True

    async def seed_if_empty(self) -> bool:
        """Seed an empty bank (a production database's first start); never touch a full one.

        Several nodes may start at once: the seed upserts by slug, so they agree.
        """
        if await self._questions.find_one({}, projection={"_id": 1}) is not None:
            return False
        count = await self.seed()
        log.info("empty question bank seeded", extra={"questions": count})
        return True

    async def invalidate(self) -> None:
        self._local.clear()
        await self._cache.delete(*(CACHE_KEY + level for level in LEVELS))

    async def _level(self, level: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The level's active questions and the same by id; shared, so callers never change them."""
        now = time.monotonic()
        local = self._local.get(level)
        if local is not None and local[0] > now:
            return local[1], local[2]
        key = CACHE_KEY + level
        cached = await self._cache.get(key)
        if cached is not None:
            docs: list[dict[str, Any]] = json.loads(cached)
        else:
            docs = [
                _cacheable(d)
                async for d in self._questions.find(
                    {"type": "technical", "level": level, "isActive": True}
                )
            ]
            await self._cache.set(key, json.dumps(docs, ensure_ascii=False).encode(), self._ttl)
        by_id = {q["id"]: q for q in docs}
        self._local[level] = (now + LOCAL_TTL_SEC, docs, by_id)
        return docs, by_id

    async def active_for_level(self, level: str) -> list[dict[str, Any]]:
        """Active technical questions of a level, from the caches when they have them."""
        return (await self._level(level))[0]

    async def by_ids(self, level: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Questions by id (inactive ones included: a running interview keeps its questions)."""
        active = (await self._level(level))[1]
        found = {i: active[i] for i in ids if i in active}
        missing = [i for i in ids if i not in found]
        if missing:
            oids = [o for o in (parse_object_id(i) for i in missing) if o is not None]
            async for d in self._questions.find({"_id": {"$in": oids}}):
                found[str(d["_id"])] = _cacheable(d)
        return found
