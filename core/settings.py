"""The one settings class: every knob of the product, read from the environment."""

from __future__ import annotations

import json
import logging
import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_JWT_SECRET = "dev-only-jwt-secret-change-me-in-production"
DEFAULT_PEPPER = "dev-only-password-pepper"
DEFAULT_REFERENCE_KEY = "dev-only-payment-reference-key"
MIN_SECRET_LENGTH = 32
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


class Plan(BaseModel):
    """A subscription plan: price in RUB, billed every `period` `interval`s."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    price: int = Field(gt=0)
    currency: str = "RUB"
    interval: str = Field(default="Month", pattern="^(Day|Week|Month)$")
    period: int = Field(default=1, ge=1)
    days: int = Field(gt=0)
    title_ru: str
    title_en: str


DEFAULT_PLANS = {
    "month": Plan(price=990, period=1, days=30, title_ru="Месяц", title_en="Month"),
    "quarter": Plan(price=2490, period=3, days=91, title_ru="Квартал", title_en="Quarter"),
    "year": Plan(price=7990, period=12, days=365, title_ru="Год", title_en="Year"),
}


class AppEnv(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ConfigurationError(RuntimeError):
    """The settings cannot run the product; the message says why in one line."""


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    app_env: AppEnv = AppEnv.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = ""
    node_id: str = Field(default_factory=lambda: socket.gethostname())
    log_level: str = "INFO"
    data_dir: Path = Path(".data")
    # Peers whose X-Forwarded-For/-Proto are believed (uvicorn's list): the reverse proxy only.
    forwarded_allow_ips: str = "127.0.0.1"
    # How long a stopping node waits for open requests and hands sockets over (close 1012).
    graceful_shutdown_sec: int = Field(default=10, ge=0)

    # Storage
    mongodb_url: str = ""
    mongodb_db: str = "interview_platform"
    redis_url: str = ""
    # A Redis Cluster behind REDIS_URL (any node of it); a `redis+cluster://` URL says so too.
    redis_cluster: bool = False
    redis_key_prefix: str = "ip:"
    redis_max_connections: int = Field(default=500, ge=1)
    celery_broker_url: str = ""
    # The broker queue jobs go to: one per deployment colour keeps old workers off new jobs.
    celery_queue: str = Field(default="celery", min_length=1)

    # Backups (`make backup`, the scheduled backup job)
    backup_dir: Path | None = None  # DATA_DIR/backups when unset
    backup_keep: int = Field(default=7, ge=1)
    backup_interval_sec: int = Field(default=24 * 3600, ge=0)  # 0: no scheduled backups

    # Security
    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_issuer: str = "interview-platform"
    jwt_audience: str = "interview-platform-api"
    access_token_ttl_sec: int = 900
    refresh_token_ttl_sec: int = 30 * 24 * 3600
    password_pepper: SecretStr = SecretStr(DEFAULT_PEPPER)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    verification_token_ttl_sec: int = 24 * 3600
    reset_token_ttl_sec: int = 3600
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = 64 * 1024
    max_bulk_body_bytes: int = 4 * 1024 * 1024

    # Rate limits: "count/seconds"
    rate_limit_auth_ip: str = "20/60"
    rate_limit_auth_account: str = "10/300"
    rate_limit_global_ip: str = "600/60"
    rate_limit_user: str = "300/60"
    rate_limit_socket_messages: str = "30/10"

    # Interviews
    questions_per_interview: int = Field(default=5, ge=1, le=20)
    time_limit_intern_sec: int = 300
    time_limit_junior_sec: int = 300
    time_limit_middle_sec: int = 420
    pass_threshold_intern: int = 60
    pass_threshold_junior: int = 65
    pass_threshold_middle: int = 70
    answer_max_chars: int = 8000
    ws_max_frame_bytes: int = 64 * 1024
    ws_hello_timeout_sec: float = 10.0
    ws_send_queue_limit: int = 256
    ws_ping_interval_sec: float = 20.0
    ws_idle_timeout_sec: float = 600.0
    eval_lease_ttl_sec: float = Field(default=10.0, gt=0)
    orphan_sweep_sec: float = Field(default=2.0, gt=0)
    abandon_after_sec: int = 3600
    question_cache_ttl_sec: int = 3600

    # Evaluator
    local_evaluator_delay_sec: float = Field(default=0.01, ge=0, le=1)
    # A socket whose access token expired must send `auth` with a fresh one within this time.
    ws_auth_grace_sec: int = Field(default=30, ge=0, le=3600)
    # Open sockets per user (the oldest is closed with 4409 past it), and sockets one address
    # may hold before they said hello; counted across nodes when Redis is configured.
    ws_max_sockets_per_user: int = Field(default=10, ge=1, le=1000)
    ws_max_pending_per_ip: int = Field(default=20, ge=1, le=100_000)
    # Off by default: most frames are small JSON deltas, which cost more CPU to compress than
    # the bytes they save are worth (load/README.md has the measurement).
    ws_per_message_deflate: bool = False
    # Feedback deltas that come within this window go out as one event (the first at once).
    feedback_coalesce_ms: int = Field(default=30, ge=0, le=1000)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o"
    openai_connect_timeout_sec: float = 5.0
    openai_read_timeout_sec: float = 20.0
    openai_max_attempts: int = Field(default=3, ge=1, le=6)
    openai_breaker_failures: int = 5
    openai_breaker_cooldown_sec: float = 30.0
    openai_cache_ttl_sec: int = 7 * 24 * 3600
    openai_daily_token_budget: int = 2_000_000
    openai_budget_alert_ratio: float = 0.8

    # Mail
    sendpulse_client_id: str = ""
    sendpulse_client_secret: SecretStr | None = None
    sendpulse_api_url: str = "https://api.sendpulse.com"
    mail_from_email: str = "no-reply@interview-platform.ru"
    mail_from_name: str = "Interview Platform"
    # The secret in the SendPulse event webhook URL (`?token=`); derived from JWT_SECRET when unset.
    mail_webhook_token: SecretStr | None = None

    # Payments and plans
    cloudpayments_public_id: str = ""
    cloudpayments_api_secret: SecretStr | None = None
    cloudpayments_api_url: str = "https://api.cloudpayments.ru"
    payment_reference_key: SecretStr = SecretStr(DEFAULT_REFERENCE_KEY)
    # Comma-separated keys that were PAYMENT_REFERENCE_KEY before a rotation: decrypt only.
    payment_reference_old_keys: SecretStr = SecretStr("")
    plans: dict[str, Plan] = Field(default_factory=lambda: dict(DEFAULT_PLANS))
    free_interviews_per_month: int = Field(default=3, ge=0)
    renewal_reminder_days: int = 3

    # Support
    support_tickets_per_day: int = 5
    support_message_max_chars: int = 5000

    @field_validator("backup_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        return _csv(value)

    @model_validator(mode="after")
    def _cluster_needs_url(self) -> Settings:
        if self.redis_cluster and not self.redis_url:
            raise ValueError("REDIS_CLUSTER=1 needs REDIS_URL (the address of a cluster node)")
        return self

    @model_validator(mode="after")
    def _fill_base_url(self) -> Settings:
        if not self.public_base_url:
            object.__setattr__(self, "public_base_url", f"http://{self.host}:{self.port}")
        return self

    @property
    def backup_path(self) -> Path:
        return self.backup_dir if self.backup_dir is not None else self.data_dir / "backups"

    @property
    def is_production(self) -> bool:
        return self.app_env is AppEnv.PRODUCTION

    @property
    def embedded_mongo(self) -> bool:
        return not self.mongodb_url

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def redis_cluster_mode(self) -> bool:
        """REDIS_URL names a Redis Cluster: `REDIS_CLUSTER=1` or a `redis+cluster://` URL."""
        return bool(self.redis_url) and (
            self.redis_cluster or self.redis_url.startswith(CLUSTER_SCHEMES)
        )

    @property
    def redis_client_url(self) -> str:
        """REDIS_URL as redis-py reads it (`redis+cluster://` becomes `redis://`)."""
        scheme, sep, rest = self.redis_url.partition("://")
        return f"{scheme.removesuffix('+cluster')}{sep}{rest}"

    @property
    def openai_enabled(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())

    @property
    def sendpulse_enabled(self) -> bool:
        return bool(self.sendpulse_client_id) and self.sendpulse_client_secret is not None

    @property
    def cloudpayments_enabled(self) -> bool:
        return bool(self.cloudpayments_public_id) and self.cloudpayments_api_secret is not None

    def time_limit_sec(self, level: str) -> int:
        return int(getattr(self, f"time_limit_{level}_sec"))

    def pass_threshold(self, level: str) -> int:
        return int(getattr(self, f"pass_threshold_{level}"))

    def check_production(self) -> None:
        """Refuse a production start on unsafe defaults, in one line; log what runs degraded.

        Optional vendors are optional in production too: without CloudPayments billing turns
        payments off (it says so itself), without SendPulse mail goes to the outbox folder.
        """
        if not self.is_production:
            return
        secret = self.jwt_secret.get_secret_value()
        if secret == DEFAULT_JWT_SECRET or len(secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"JWT_SECRET must be set to a random value of at least {MIN_SECRET_LENGTH} "
                "characters in production"
            )
        if self.password_pepper.get_secret_value() == DEFAULT_PEPPER:
            raise ConfigurationError("PASSWORD_PEPPER must be set in production")
        if self.payment_reference_key.get_secret_value() == DEFAULT_REFERENCE_KEY:
            raise ConfigurationError("PAYMENT_REFERENCE_KEY must be set in production")
        if self.embedded_mongo:
            raise ConfigurationError(
                "MONGODB_URL must point at a MongoDB server in production (no embedded store)"
            )
        if self.embedded_redis:
            raise ConfigurationError("REDIS_URL must be set in production (sessions span nodes)")
        for line in self.production_notes():
            if line not in _noted:
                _noted.add(line)
                log.warning(line)

    def production_notes(self) -> list[str]:
        """What a production start without an optional vendor does instead, one line each."""
        notes = []
        if not self.sendpulse_enabled:
            outbox = (self.data_dir / "outbox").resolve()
            notes.append(
                f"mail is written to {outbox} as .eml files (no SENDPULSE_CLIENT_ID/SECRET): "
                "keep that folder on a volume and deliver from it, or configure SendPulse"
            )
        if not self.openai_enabled:
            notes.append("answers are graded by the local evaluator (no OPENAI_API_KEY)")
        return notes


_noted: set[str] = set()  # production notes already logged by this process


def parse_rate(spec: str) -> tuple[int, int]:
    """Parse a "count/seconds" rate limit."""
    count, _, window = spec.partition("/")
    return int(count), int(window or "60")
