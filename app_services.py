"""The composition root: one function builds every service from settings.

The web process, the Celery workers and the command line all call `open_services`; what differs
between them is only what they start afterwards (`AppServices.start_node` on web nodes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from core.accounts import AccountService
from core.backup import register_backup_job
from core.billing import BillingService, build_billing, periodic_jobs
from core.campaigns import CampaignService, build_campaigns, register_campaign_jobs
from core.container import Infrastructure, open_infrastructure
from core.security import PasswordHasher, TokenService
from core.settings import Settings
from core.support import SupportService, build_support
from core.tasks import periodic
from engine.container import Engine, build_engine
from engine.questions.admin import QuestionAdmin

log = logging.getLogger(__name__)

CAMPAIGN_TICK_SEC = 60.0


@dataclass
class AppServices:
    """Every service of the product, built on one set of infrastructure clients."""

    settings: Settings
    infra: Infrastructure
    hasher: PasswordHasher
    tokens: TokenService
    accounts: AccountService
    engine: Engine
    support: SupportService
    campaigns: CampaignService
    question_admin: QuestionAdmin
    billing: BillingService
    loops: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_node(self) -> None:
        """What a web node runs besides serving: timers, and the periodic jobs without Celery."""
        if self.settings.is_production:  # the seed step of a deployment updates the bank
            await self.engine.questions.seed_if_empty()
        else:
            await self.engine.questions.seed_if_changed()
        in_process = not self.settings.celery_broker_url
        await self.engine.start_background(abandon_in_process=in_process)
        if in_process:  # no Celery beat: run the periodic jobs here
            campaigns = periodic("campaigns", CAMPAIGN_TICK_SEC, self.campaigns.run_due)
            self.loops.append(asyncio.create_task(campaigns))
            self.billing.start_background(periodic_jobs(self.billing))
        log.info(
            "node ready",
            extra={
                "components": self.infra.components,
                "evaluator": self.engine.service.evaluator.name,
            },
        )

    async def close(self) -> None:
        for task in self.loops:
            task.cancel()
        for task in self.loops:
            with contextlib.suppress(BaseException):
                await task
        await self.engine.close()
        await self.billing.close()
        await self.infra.close()


async def open_services(settings: Settings, *, in_process_jobs: bool = False) -> AppServices:
    """Open the clients the settings ask for and build every service on them.

    Every named job (mail, billing, campaigns, the abandon sweep) is registered on
    `infra.jobs`, so a worker can run whatever a web node enqueues. `in_process_jobs` runs jobs
    in this process even when Celery is configured (the command line).
    """
    infra = await open_infrastructure(settings, in_process_jobs=in_process_jobs)
    try:
        hasher = PasswordHasher(settings.password_pepper.get_secret_value(), settings.bcrypt_rounds)
        tokens = TokenService(settings)
        accounts = AccountService(settings, infra.db, infra.cache, hasher, tokens, infra.mailer)
        billing = build_billing(infra)
        engine = build_engine(infra, accounts, start_guard=billing.start_guard)
        campaigns = build_campaigns(infra)
        register_campaign_jobs(infra.jobs, campaigns)
        register_backup_job(infra.jobs, infra.db.db, settings)
        return AppServices(
            settings=settings,
            infra=infra,
            hasher=hasher,
            tokens=tokens,
            accounts=accounts,
            engine=engine,
            support=build_support(infra),
            campaigns=campaigns,
            question_admin=QuestionAdmin(infra.db, engine.questions),
            billing=billing,
        )
    except BaseException:
        await infra.close()
        raise
