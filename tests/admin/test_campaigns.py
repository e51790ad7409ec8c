"""Campaigns: segments, consent, once per user, unsubscribe links and SendPulse's events."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from bson import ObjectId

from core.campaigns import RUN_DUE_JOB, CampaignService
from core.db import Doc
from core.mail.base import MailDeliveryError, MailMessage
from http_api.services import AppServices
from tests.helpers import mail_text, mails_to, outbox

NOW = datetime.now(UTC)


async def make_user(
    services: AppServices,
    email: str,
    *,
    consent: bool = True,
    verified: bool = True,
    registered_days_ago: int = 30,
    last_interview_days_ago: int | None = None,
    language: str = "ru",
    subscription: Doc | None = None,
) -> ObjectId:
    db = services.infra.db
    now = datetime.now(UTC)
    result = await db["users"].insert_one(
        {
            "email": email,
            "passwordHash": "x",
            "language": language,
            "role": "user",
            "isEmailVerified": verified,
            "registrationDate": now - timedelta(days=registered_days_ago),
            "marketingConsent": consent,
            "subscription": subscription
            or {"isActive": False, "plan": None, "endDate": None, "autoRenew": False},
        }
    )
    if last_interview_days_ago is not None:
        await db["interviews"].insert_one(
            {
                "userId": result.inserted_id,
                "level": "junior",
                "status": "completed",
                "startTime": now - timedelta(days=last_interview_days_ago),
                "questions": [],
            }
        )
    user_id: ObjectId = result.inserted_id
    return user_id


def active_until(days: float, auto_renew: bool = False) -> Doc:
    return {
        "isActive": True,
        "plan": "month",
        "endDate": datetime.now(UTC) + timedelta(days=days),
        "autoRenew": auto_renew,
    }


async def schedule(
    client: httpx.AsyncClient,
    admin: dict[str, Any],
    template: str,
    segment: str,
    send_at: datetime | None = None,
) -> str:
    response = await client.post(
        "/api/v1/admin/campaigns",
        json={
            "name": f"{template} to {segment}",
            "template": template,
            "segment": segment,
            "sendAt": (send_at or datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        },
        headers=admin["headers"],
    )
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["campaign"]["id"]
    return campaign_id


async def run_job(services: AppServices) -> None:
    await services.infra.jobs.get(RUN_DUE_JOB)({})


async def recipients(services: AppServices, campaign_id: str) -> set[str]:
    cursor = services.infra.db["campaign_deliveries"].find({"campaignId": ObjectId(campaign_id)})
    return {d["email"] async for d in cursor}


async def summary(client: httpx.AsyncClient, admin: dict[str, Any], campaign_id: str) -> Doc:
    response = await client.get(f"/api/v1/admin/campaigns/{campaign_id}", headers=admin["headers"])
    assert response.status_code == 200, response.text
    body: Doc = response.json()["campaign"]
    return body


def unsubscribe_link(message: Any) -> str:
    found = re.search(r"(http://testserver/unsubscribe\?\S+)", mail_text(message))
    assert found, "no unsubscribe link in the mail"
    return found.group(1).rstrip(">")


async def test_segments_select_consenting_users(
    client: httpx.AsyncClient, services: AppServices, admin: dict[str, Any]
) -> None:
    await make_user(services, "idle@example.ru", last_interview_days_ago=10, language="en")
    await make_user(services, "never@example.ru")
    await make_user(services, "recent@example.ru", last_interview_days_ago=2)
    await make_user(services, "newbie@example.ru", registered_days_ago=2)
    await make_user(services, "idle-no-consent@example.ru", consent=False)
    await make_user(services, "idle-unverified@example.ru", verified=False)
    await make_user(
        services, "ending@example.ru", last_interview_days_ago=1, subscription=active_until(2)
    )
    await make_user(
        services,
        "renewing@example.ru",
        last_interview_days_ago=1,
        subscription=active_until(1, auto_renew=True),
    )
    await make_user(
        services, "later@example.ru", last_interview_days_ago=1, subscription=active_until(10)
    )
    await make_user(
        services,
        "ending-no-consent@example.ru",
        consent=False,
        last_interview_days_ago=1,
        subscription=active_until(2),
    )
    lapsed = {**active_until(1), "isActive": False}
    await make_user(services, "lapsed@example.ru", last_interview_days_ago=1, subscription=lapsed)

    comeback = await schedule(client, admin, "comeback", "inactive_7d")
    ending = await schedule(client, admin, "subscription_ending", "subscription_ends_3d")
    everyone = await schedule(client, admin, "comeback", "all_consented")
    await run_job(services)

    assert await recipients(services, comeback) == {"idle@example.ru", "never@example.ru"}
    assert await recipients(services, ending) == {"ending@example.ru", "renewing@example.ru"}
    assert await recipients(services, everyone) == {
        "idle@example.ru",
        "never@example.ru",
        "recent@example.ru",
        "newbie@example.ru",
        "ending@example.ru",
        "renewing@example.ru",
        "later@example.ru",
        "lapsed@example.ru",
    }
    for address in ("idle-no-consent@example.ru", "idle-unverified@example.ru"):
        assert mails_to(services, address) == []
    assert mails_to(services, "ending-no-consent@example.ru") == []

    english = mails_to(services, "idle@example.ru", "comeback")
    assert len(english) == 2  # the comeback and the all-consented campaign
    assert english[0]["Subject"] == "Ready to get back to interview practice?"
    ending_mail = mails_to(services, "ending@example.ru", "subscription_ending")[0]
    text = mail_text(ending_mail)
    assert "Продлите подписку" in text and "List-Unsubscribe: <http://testserver/unsub" in text
    renewing = mail_text(mails_to(services, "renewing@example.ru", "subscription_ending")[0])
    assert "Автопродление включено" in renewing

    listed = await client.get("/api/v1/admin/campaigns", headers=admin["headers"])
    by_id = {c["id"]: c for c in listed.json()["campaigns"]}
    assert by_id[comeback]["status"] == "sent"
    assert by_id[comeback]["summary"]["sent"] == 2
    assert by_id[everyone]["summary"]["recipients"] == 8


async def test_running_twice_mails_each_user_once(
    client: httpx.AsyncClient,
    services: AppServices,
    admin: dict[str, Any],
    campaigns: CampaignService,
) -> None:
    for i in range(5):
        await make_user(services, f"once{i}@example.ru")
    campaign_id = await schedule(client, admin, "comeback", "all_consented")
    later_id = await schedule(
        client, admin, "comeback", "all_consented", datetime.now(UTC) + timedelta(hours=2)
    )

    await asyncio.gather(run_job(services), run_job(services))
    await run_job(services)
    # Even a run that finds the campaign half-done (a worker died) sends nobody a second copy.
    await services.infra.db["campaigns"].update_one(
        {"_id": ObjectId(campaign_id)}, {"$set": {"status": "sending"}}
    )
    assert await campaigns.run_due() == 0

    for i in range(5):
        assert len(mails_to(services, f"once{i}@example.ru")) == 1
    assert (await summary(client, admin, campaign_id))["summary"]["sent"] == 5
    assert await recipients(services, later_id) == set()

    assert await campaigns.run_due(datetime.now(UTC) + timedelta(hours=3)) == 5
    assert await campaigns.run_due(datetime.now(UTC) + timedelta(hours=3)) == 0
    for i in range(5):
        assert len(mails_to(services, f"once{i}@example.ru")) == 2
    assert len(outbox(services)) == 10


async def test_unsubscribe_link_withdraws_consent(
    client: httpx.AsyncClient, services: AppServices, admin: dict[str, Any]
) -> None:
    leaver = await make_user(services, "leaver@example.ru", language="en")
    stayer = await make_user(services, "stayer@example.ru")
    await schedule(client, admin, "comeback", "all_consented")
    await run_job(services)
    link = unsubscribe_link(mails_to(services, "leaver@example.ru")[0])
    stayer_link = unsubscribe_link(mails_to(services, "stayer@example.ru")[0])
    users = services.infra.db["users"]

    # A signature for one user does not work for another, and a changed one works for nobody.
    params = parse_qs(urlsplit(link).query)
    swapped = await client.get("/unsubscribe", params={"u": str(stayer), "s": params["s"][0]})
    assert swapped.status_code == 400
    tampered_sig = params["s"][0][:-2] + ("AA" if not params["s"][0].endswith("AA") else "BB")
    tampered = await client.get("/unsubscribe", params={"u": str(leaver), "s": tampered_sig})
    assert tampered.status_code == 400
    assert (await client.get("/unsubscribe", params={"u": str(leaver)})).status_code == 400
    unicode_sig = await client.get("/unsubscribe", params={"u": str(leaver), "s": "подпись"})
    assert unicode_sig.status_code == 400
    one_click_forged = await client.post("/unsubscribe", params={"u": str(leaver), "s": "x"})
    assert one_click_forged.status_code == 400
    assert one_click_forged.json()["error"]["code"] == "invalid_signature"
    assert (await users.find_one({"_id": leaver}) or {})["marketingConsent"] is True

    page = await client.get(link.replace("http://testserver", ""))
    assert page.status_code == 200
    assert "You are unsubscribed" in page.text
    assert (await users.find_one({"_id": leaver}) or {})["marketingConsent"] is False

    # RFC 8058 one-click: a POST to the same URL.
    one_click = await client.post(
        stayer_link.replace("http://testserver", ""),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200 and one_click.json() == {"success": True}
    assert (await users.find_one({"_id": stayer}) or {})["marketingConsent"] is False

    await schedule(client, admin, "comeback", "all_consented")
    await run_job(services)
    assert len(mails_to(services, "leaver@example.ru")) == 1
    assert len(mails_to(services, "stayer@example.ru")) == 1


async def test_events_webhook_needs_the_token_and_feeds_the_summary(
    client: httpx.AsyncClient,
    services: AppServices,
    admin: dict[str, Any],
    campaigns: CampaignService,
) -> None:
    for name in ("opener", "bouncer", "quitter"):
        await make_user(services, f"{name}@example.ru")
    campaign_id = await schedule(client, admin, "comeback", "all_consented")
    await run_job(services)
    delivery = await services.infra.db["campaign_deliveries"].find_one(
        {"email": "opener@example.ru"}
    )
    assert delivery is not None and delivery["messageId"]
    message_id = delivery["messageId"]
    ts = int(datetime.now(UTC).timestamp())
    events = [
        {
            "event": "delivered",
            "message_id": message_id,
            "recipient": "opener@example.ru",
            "timestamp": ts,
        },
        {
            "event": "open",
            "message_id": message_id,
            "recipient": "opener@example.ru",
            "timestamp": ts + 5,
        },
        {
            "event": "open",
            "message_id": message_id,
            "recipient": "opener@example.ru",
            "timestamp": ts + 60,
        },
        {
            "event": "redirect",
            "message_id": message_id,
            "email": "opener@example.ru",
            "timestamp": str(ts + 70),
            "link_url": "http://testserver/",
        },
        {
            "event": "hard_bounce",
            "campaignId": campaign_id,
            "email": "bouncer@example.ru",
            "timestamp": ts,
        },
        {
            "event": "unsubscribe",
            "campaign_id": campaign_id,
            "email": "quitter@example.ru",
            "timestamp": ts,
        },
        {
            "event": "open",
            "message_id": "unrelated-transactional",
            "recipient": "x@example.ru",
            "timestamp": ts,
        },
        "garbage",
    ]

    url = urlsplit(campaigns.events_webhook_url())
    token = parse_qs(url.query)["token"][0]
    info = await client.get("/api/v1/admin/mail/webhook", headers=admin["headers"])
    assert info.json()["url"] == campaigns.events_webhook_url()
    for bad in ({"token": token[:-1] + ("x" if token[-1] != "x" else "y")}, {}):
        refused = await client.post("/api/v1/mail/events", params=bad, json=events)
        assert refused.status_code == 403
    assert await services.infra.db["mail_events"].count_documents({}) == 0

    accepted = await client.post("/api/v1/mail/events", params={"token": token}, json=events)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"success": True, "stored": 7}
    # SendPulse delivering the same batch again changes nothing.
    again = await client.post("/api/v1/mail/events", params={"token": token}, json=events)
    assert again.json()["stored"] == 0
    malformed = await client.post(
        "/api/v1/mail/events", params={"token": token}, content=b"{not json"
    )
    assert malformed.status_code == 400

    counts = (await summary(client, admin, campaign_id))["summary"]
    assert counts == {
        "recipients": 3,
        "pending": 0,
        "sent": 3,
        "failed": 1,
        "delivered": 1,
        "opened": 1,
        "clicked": 1,
        "unsubscribed": 1,
    }
    quitter = await services.infra.db["users"].find_one({"email": "quitter@example.ru"})
    assert quitter is not None and quitter["marketingConsent"] is False
    stray = await services.infra.db["mail_events"].find_one({"email": "x@example.ru"})
    assert stray is not None and stray["campaignId"] is None


class FlakySender:
    """Refuses mail to one address, delivers the rest to a list."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.sent: list[MailMessage] = []

    async def send(self, message: MailMessage) -> str:
        if message.to_email == self.refuse:
            raise MailDeliveryError("SendPulse send rejected: error_code=8", retryable=False)
        self.sent.append(message)
        return f"id-{len(self.sent)}"

    async def close(self) -> None:
        return None


async def test_refused_sends_are_counted_as_failed(
    client: httpx.AsyncClient, services: AppServices, admin: dict[str, Any]
) -> None:
    await make_user(services, "good@example.ru")
    await make_user(services, "rejected@example.ru")
    sender = FlakySender("rejected@example.ru")
    service = CampaignService(services.settings, services.infra.db, sender)
    campaign_id = await schedule(client, admin, "comeback", "all_consented")
    assert await service.run_due() == 2
    assert await service.run_due() == 0
    assert [m.to_email for m in sender.sent] == ["good@example.ru"]
    counts = (await summary(client, admin, campaign_id))["summary"]
    assert (counts["sent"], counts["failed"], counts["recipients"]) == (1, 1, 2)


async def test_campaign_definition_is_validated_and_cancellable(
    client: httpx.AsyncClient, services: AppServices, admin: dict[str, Any]
) -> None:
    await make_user(services, "maybe@example.ru")
    base = {"name": "x", "template": "comeback", "segment": "all_consented"}
    for bad in (
        {**base, "template": "welcome", "sendAt": NOW.isoformat()},
        {**base, "segment": "everyone", "sendAt": NOW.isoformat()},
        {**base, "sendAt": "2030-01-01T10:00:00"},  # no offset: ambiguous
        {**base, "sendAt": "tomorrow"},
        {**base, "name": "   ", "sendAt": NOW.isoformat()},
        base,
    ):
        response = await client.post("/api/v1/admin/campaigns", json=bad, headers=admin["headers"])
        assert response.status_code == 422, bad

    campaign_id = await schedule(client, admin, "comeback", "all_consented")
    cancelled = await client.post(
        f"/api/v1/admin/campaigns/{campaign_id}/cancel", headers=admin["headers"]
    )
    assert cancelled.status_code == 200 and cancelled.json()["campaign"]["status"] == "cancelled"
    again = await client.post(
        f"/api/v1/admin/campaigns/{campaign_id}/cancel", headers=admin["headers"]
    )
    assert again.status_code == 409
    await run_job(services)
    assert mails_to(services, "maybe@example.ru") == []
    missing = await client.get(f"/api/v1/admin/campaigns/{ObjectId()}", headers=admin["headers"])
    assert missing.status_code == 404
