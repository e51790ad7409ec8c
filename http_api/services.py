"""What the web process holds: infrastructure plus the services built on it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.accounts import AccountService
from core.billing import BillingService
from core.campaigns import CampaignService
from core.container import Infrastructure
from core.security import PasswordHasher, TokenService
from core.settings import Settings
from core.support import SupportService

if TYPE_CHECKING:
    from engine.container import Engine
    from engine.questions.admin import QuestionAdmin


@dataclass
class AppServices:
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

    async def close(self) -> None:
        for task in self.loops:
            task.cancel()
        for task in self.loops:
            with contextlib.suppress(BaseException):
                await task
        await self.engine.close()
        await self.billing.close()
        await self.infra.close()
