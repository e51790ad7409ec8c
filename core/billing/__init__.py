"""Subscriptions and payments through CloudPayments (or the embedded sandbox)."""

from __future__ import annotations

from core.billing.cloudpayments import CloudPaymentsClient, CloudPaymentsGateway
from core.billing.crypto import ReferenceCipher, derive_key
from core.billing.gateway import PaymentGateway, PaymentsOff
from core.billing.jobs import periodic_jobs, register_billing_jobs
from core.billing.sandbox import SandboxGateway
from core.billing.service import BillingService
from core.container import Infrastructure
from core.settings import Settings

__all__ = ["BillingService", "build_billing", "periodic_jobs", "register_billing_jobs"]


def webhook_secret(settings: Settings) -> bytes:
    """The key notifications are signed with: the API secret, or the sandbox's own key."""
    if settings.cloudpayments_api_secret is not None:
        secret = settings.cloudpayments_api_secret.get_secret_value()
        if secret:
            return secret.encode("utf-8")
    return derive_key(settings.payment_reference_key.get_secret_value(), b"sandbox-webhook")


def build_gateway(settings: Settings) -> PaymentGateway:
    """CloudPayments when configured; else the sandbox, which production never uses."""
    if settings.cloudpayments_enabled:
        assert settings.cloudpayments_api_secret is not None
        return CloudPaymentsGateway(
            CloudPaymentsClient(
                api_url=settings.cloudpayments_api_url,
                public_id=settings.cloudpayments_public_id,
                api_secret=settings.cloudpayments_api_secret.get_secret_value(),
            )
        )
    if settings.is_production:
        # The sandbox accepts payments without money: production runs with payments off.
        return PaymentsOff()
    return SandboxGateway(settings.public_base_url)


def build_billing(infra: Infrastructure) -> BillingService:
    """The billing service on the infrastructure; its jobs are registered on `infra.jobs`."""
    settings = infra.settings
    cipher = ReferenceCipher.from_settings(
        settings.payment_reference_key.get_secret_value(),
        settings.payment_reference_old_keys.get_secret_value(),
    )
    service = BillingService(
        settings,
        infra.db,
        infra.mailer,
        infra.queue,
        build_gateway(settings),
        cipher,
        webhook_secret(settings),
    )
    register_billing_jobs(infra.jobs, service)
    return service
