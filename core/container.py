"""Builds the infrastructure adapters that settings choose, and closes them again."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from core.db import Database
from core.embedded_mongo import EmbeddedMongo
from core.kv import (
    Cache,
    MemoryCache,
    MemoryRateLimiter,
    RateLimiter,
    RedisCache,
    RedisRateLimiter,
)
from core.mail.base import MailSender
from core.mail.outbox import OutboxMailSender
from core.mailing import SEND_MAIL_JOB, Mailer, make_send_mail_job
from core.redis_client import RedisClient, open_redis
from core.revocations import MemoryRevocations, RedisRevocations, Revocations
from core.settings import Settings
from core.socket_limits import MemorySocketLimits, RedisSocketLimits, SocketLimits
from core.tasks import InProcessTaskQueue, JobRegistry, TaskQueue

log = logging.getLogger(__name__)


@dataclass
class Infrastructure:
    settings: Settings
    db: Database
    redis: RedisClient | None
    cache: Cache
    limiter: RateLimiter
    mail_sender: MailSender
    jobs: JobRegistry
    queue: TaskQueue
    mailer: Mailer
    revocations: Revocations
    socket_limits: SocketLimits
    embedded_mongo: EmbeddedMongo | None = None
    components: dict[str, str] = field(default_factory=dict)

    async def close(self) -> None:
        await self.revocations.close()
        await self.queue.close()
        await self.mail_sender.close()
        await self.db.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.embedded_mongo is not None:
            self.embedded_mongo.stop()


def build_mail_sender(settings: Settings) -> MailSender:
    if settings.sendpulse_enabled:
        from core.mail.sendpulse import SendPulseMailSender

        assert settings.sendpulse_client_secret is not None
        return SendPulseMailSender(
            api_url=settings.sendpulse_api_url,
            client_id=settings.sendpulse_client_id,
            client_secret=settings.sendpulse_client_secret.get_secret_value(),
            from_email=settings.mail_from_email,
            from_name=settings.mail_from_name,
        )
    return OutboxMailSender(
        Path(settings.data_dir) / "outbox", settings.mail_from_email, settings.mail_from_name
    )


async def open_infrastructure(
    settings: Settings, *, in_process_jobs: bool = False
) -> Infrastructure:
    """Open every client the settings ask for; `in_process_jobs` forces the embedded queue."""
    settings.check_production()
    embedded: EmbeddedMongo | None = None
    mongo_url = settings.mongodb_url
    if settings.embedded_mongo:
        embedded = EmbeddedMongo(Path(settings.data_dir).resolve() / "mongo")
        embedded.start()
        mongo_url = embedded.url
    db = Database(mongo_url, settings.mongodb_db)
    await db.ensure_indexes()

    redis: RedisClient | None = None
    cache: Cache
    limiter: RateLimiter
    if settings.redis_url:
        redis = open_redis(settings)
        cache = RedisCache(redis, settings.redis_key_prefix)
        limiter = RedisRateLimiter(redis, settings.redis_key_prefix)
        revocations: Revocations = RedisRevocations(redis, settings.redis_key_prefix)
        socket_limits: SocketLimits = RedisSocketLimits(redis, settings.redis_key_prefix)
    else:
        cache = MemoryCache()
        limiter = MemoryRateLimiter()
        revocations = MemoryRevocations()
        socket_limits = MemorySocketLimits()

    mail_sender = build_mail_sender(settings)
    jobs = JobRegistry()
    jobs.register(SEND_MAIL_JOB, make_send_mail_job(mail_sender))
    queue: TaskQueue
    if settings.celery_broker_url and not in_process_jobs:
        from core.celery_queue import CeleryTaskQueue

        queue = CeleryTaskQueue(settings.celery_broker_url, settings.celery_queue)
    else:
        queue = InProcessTaskQueue(jobs)
    components = {
        "mongo": "embedded secantusdb" if embedded else "mongodb",
        "redis": _redis_kind(settings) if redis is not None else "in-process",
        "mail": "sendpulse" if settings.sendpulse_enabled else "outbox",
        "tasks": type(queue).__name__,
    }
    log.info("infrastructure ready", extra={"components": components})
    return Infrastructure(
        settings=settings,
        db=db,
        redis=redis,
        cache=cache,
        limiter=limiter,
        mail_sender=mail_sender,
        jobs=jobs,
        queue=queue,
        mailer=Mailer(queue),
        revocations=revocations,
        socket_limits=socket_limits,
        embedded_mongo=embedded,
        components=components,
    )


def _redis_kind(settings: Settings) -> str:
    return "redis cluster" if settings.redis_cluster_mode else "redis"
