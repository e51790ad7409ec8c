"""What the web process holds: infrastructure plus the services built on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.accounts import AccountService
from core.container import Infrastructure
from core.security import PasswordHasher, TokenService
from core.settings import Settings

if TYPE_CHECKING:
    from engine.container import Engine


@dataclass
class AppServices:
    settings: Settings
    infra: Infrastructure
    hasher: PasswordHasher
    tokens: TokenService
    accounts: AccountService
    engine: Engine

    async def close(self) -> None:
        await self.engine.close()
        await self.infra.close()
