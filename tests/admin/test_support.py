"""Support tickets through the ASGI app: the user's own tickets and the staff desk."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from http_api.services import AppServices
from tests.helpers import drain, mail_text, mails_to, verified_user

LIMIT = 3
MAX_CHARS = 200


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"support_tickets_per_day": LIMIT, "support_message_max_chars": MAX_CHARS}


async def open_ticket(
    client: httpx.AsyncClient, user: dict[str, Any], subject: str = "Payment", message: str = "Hi"
) -> httpx.Response:
    return await client.post(
        "/api/v1/support/contact",
        json={"subject": subject, "message": message},
        headers=user["headers"],
    )


async def test_user_opens_lists_reads_and_replies(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "asker@example.ru")
    first = await open_ticket(client, user, "Cannot start", "The start button does nothing")
    assert first.status_code == 201, first.text
    assert first.json()["success"] is True
    second = await open_ticket(client, user, "Invoice", "Please send an invoice")
    assert second.status_code == 201

    listed = await client.get("/api/v1/support/tickets", headers=user["headers"])
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 2
    assert [t["subject"] for t in body["tickets"]] == ["Invoice", "Cannot start"]

    page = await client.get("/api/v1/support/tickets?page=2&pageSize=1", headers=user["headers"])
    assert [t["subject"] for t in page.json()["tickets"]] == ["Cannot start"]

    ticket_id = first.json()["ticketId"]
    one = await client.get(f"/api/v1/support/tickets/{ticket_id}", headers=user["headers"])
    assert one.status_code == 200
    ticket = one.json()["ticket"]
    assert ticket["status"] == "new"
    assert ticket["message"] == "The start button does nothing"
    assert ticket["responses"] == []

    reply = await client.post(
        f"/api/v1/support/tickets/{ticket_id}/reply",
        json={"message": "  It is Firefox 128  "},
        headers=user["headers"],
    )
    assert reply.status_code == 200, reply.text
    responses = reply.json()["ticket"]["responses"]
    assert [(r["message"], r["isStaff"]) for r in responses] == [("It is Firefox 128", False)]


async def test_lengths_are_limited(client: httpx.AsyncClient, services: AppServices) -> None:
    user = await verified_user(client, services, "lengths@example.ru")
    blank = await open_ticket(client, user, "   ", "text")
    assert blank.status_code == 422 and blank.json()["error"]["code"] == "subject_blank"
    long_subject = await open_ticket(client, user, "s" * 201, "text")
    assert long_subject.status_code == 422
    too_long = await open_ticket(client, user, "Long", "x" * (MAX_CHARS + 1))
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "message_too_long"
    empty = await open_ticket(client, user, "Empty", "")
    assert empty.status_code == 422
    at_limit = await open_ticket(client, user, "s" * 200, "x" * MAX_CHARS)
    assert at_limit.status_code == 201, at_limit.text

    ticket_id = at_limit.json()["ticketId"]
    long_reply = await client.post(
        f"/api/v1/support/tickets/{ticket_id}/reply",
        json={"message": "y" * (MAX_CHARS + 1)},
        headers=user["headers"],
    )
    assert long_reply.status_code == 422
    extra = await client.post(
        "/api/v1/support/contact",
        json={"subject": "a", "message": "b", "priority": "high"},
        headers=user["headers"],
    )
    assert extra.status_code == 422


async def test_tickets_per_day_are_limited(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "busy@example.ru")
    other = await verified_user(client, services, "calm@example.ru")
    for i in range(LIMIT):
        assert (await open_ticket(client, user, f"Question {i}")).status_code == 201
    refused = await open_ticket(client, user, "One more")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "ticket_limit"
    assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600
    assert (await open_ticket(client, other, "Mine")).status_code == 201

    # The window is rolling: once the oldest ticket is a day old, one more is allowed.
    oldest = await services.infra.db["support_tickets"].find_one({"subject": "Question 0"})
    assert oldest is not None
    await services.infra.db["support_ticket_slots"].update_one(
        {"ticketId": oldest["_id"]},
        {"$set": {"until": datetime.now(UTC) - timedelta(minutes=1)}},
    )
    assert (await open_ticket(client, user, "Next day")).status_code == 201
    assert (await open_ticket(client, user, "Too many again")).status_code == 429
    listed = await client.get("/api/v1/support/tickets", headers=user["headers"])
    assert listed.json()["total"] == LIMIT + 1


async def test_concurrent_tickets_never_pass_the_limit(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "burst@example.ru")
    results = await asyncio.gather(*(open_ticket(client, user, f"Burst {i}") for i in range(8)))
    created = [r for r in results if r.status_code == 201]
    assert len(created) == min(8, LIMIT)
    assert all(r.status_code == 429 for r in results if r.status_code != 201)
    stored = await services.infra.db["support_tickets"].count_documents(
        {"userId": ObjectId(user["user"]["id"])}
    )
    assert stored == len(created)


async def test_another_users_ticket_is_not_found(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    owner = await verified_user(client, services, "owner@example.ru")
    snoop = await verified_user(client, services, "snoop@example.ru")
    ticket_id = (await open_ticket(client, owner, "Private", "My card number")).json()["ticketId"]

    read = await client.get(f"/api/v1/support/tickets/{ticket_id}", headers=snoop["headers"])
    assert read.status_code == 404
    assert read.json()["error"]["code"] == "ticket_not_found"
    reply = await client.post(
        f"/api/v1/support/tickets/{ticket_id}/reply",
        json={"message": "hijack"},
        headers=snoop["headers"],
    )
    assert reply.status_code == 404
    assert (await client.get("/api/v1/support/tickets", headers=snoop["headers"])).json()[
        "total"
    ] == 0
    bogus = await client.get("/api/v1/support/tickets/not-an-id", headers=owner["headers"])
    assert bogus.status_code == 404
    stored = await services.infra.db["support_tickets"].find_one({"_id": ObjectId(ticket_id)})
    assert stored is not None and stored["responses"] == []


async def test_staff_reply_mails_the_user_in_their_language(
    client: httpx.AsyncClient, services: AppServices, admin: dict[str, Any]
) -> None:
    user = await verified_user(client, services, "english@example.ru", language="en")
    ticket_id = (await open_ticket(client, user, "Refund <please>", "Charged twice")).json()[
        "ticketId"
    ]

    desk = await client.get(f"/api/v1/admin/support/tickets/{ticket_id}", headers=admin["headers"])
    assert desk.status_code == 200
    assert desk.json()["ticket"]["userEmail"] == "english@example.ru"

    answer = "We refunded the second charge. <b>Sorry!</b>"
    reply = await client.post(
        f"/api/v1/admin/support/tickets/{ticket_id}/reply",
        json={"message": answer},
        headers=admin["headers"],
    )
    assert reply.status_code == 200, reply.text
    ticket = reply.json()["ticket"]
    assert ticket["status"] == "in-progress"
    assert [(r["message"], r["isStaff"]) for r in ticket["responses"]] == [(answer, True)]

    await drain(services)
    mails = mails_to(services, "english@example.ru", "support_reply")
    assert len(mails) == 1
    assert mails[0]["Subject"] == "Support replied to your request"
    text = mail_text(mails[0])
    assert answer in text and "Refund <please>" in text
    html_part = next(p for p in mails[0].walk() if p.get_content_type() == "text/html")
    payload = html_part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    html = payload.decode()
    assert "&lt;b&gt;Sorry!&lt;/b&gt;" in html and "<b>Sorry!</b>" not in html

    seen = await client.get(f"/api/v1/support/tickets/{ticket_id}", headers=user["headers"])
    assert seen.json()["ticket"]["responses"][0]["isStaff"] is True
    assert "authorId" not in seen.json()["ticket"]["responses"][0]


async def test_staff_filter_and_change_status(
    client: httpx.AsyncClient, services: AppServices, admin: dict[str, Any]
) -> None:
    user = await verified_user(client, services, "status@example.ru")
    first = (await open_ticket(client, user, "First")).json()["ticketId"]
    second = (await open_ticket(client, user, "Second")).json()["ticketId"]

    resolved = await client.put(
        f"/api/v1/admin/support/tickets/{first}/status",
        json={"status": "resolved"},
        headers=admin["headers"],
    )
    assert resolved.status_code == 200
    assert resolved.json()["ticket"]["status"] == "resolved"
    bad = await client.put(
        f"/api/v1/admin/support/tickets/{first}/status",
        json={"status": "closed"},
        headers=admin["headers"],
    )
    assert bad.status_code == 422

    async def ids(status: str | None) -> list[str]:
        query = f"?status={status}" if status else ""
        response = await client.get(
            f"/api/v1/admin/support/tickets{query}", headers=admin["headers"]
        )
        assert response.status_code == 200
        return [t["id"] for t in response.json()["tickets"]]

    assert await ids("resolved") == [first]
    assert await ids("new") == [second]
    assert await ids(None) == [second, first]
    assert (
        await client.get("/api/v1/admin/support/tickets?status=bogus", headers=admin["headers"])
    ).status_code == 422

    # The user answering a resolved ticket opens it again.
    reopened = await client.post(
        f"/api/v1/support/tickets/{first}/reply",
        json={"message": "Still broken"},
        headers=user["headers"],
    )
    assert reopened.json()["ticket"]["status"] == "in-progress"
    missing = await client.put(
        f"/api/v1/admin/support/tickets/{ObjectId()}/status",
        json={"status": "resolved"},
        headers=admin["headers"],
    )
    assert missing.status_code == 404


ADMIN_ROUTES = [
    ("GET", "/api/v1/admin/support/tickets", None),
    ("GET", f"/api/v1/admin/support/tickets/{ObjectId()}", None),
    ("POST", f"/api/v1/admin/support/tickets/{ObjectId()}/reply", {"message": "x"}),
    ("PUT", f"/api/v1/admin/support/tickets/{ObjectId()}/status", {"status": "resolved"}),
    ("GET", "/api/v1/admin/campaigns", None),
    ("POST", "/api/v1/admin/campaigns", {}),
    ("GET", f"/api/v1/admin/campaigns/{ObjectId()}", None),
    ("POST", f"/api/v1/admin/campaigns/{ObjectId()}/cancel", None),
    ("GET", "/api/v1/admin/mail/webhook", None),
    ("GET", "/api/v1/admin/questions", None),
    ("POST", "/api/v1/admin/questions", {}),
    ("GET", "/api/v1/admin/questions/export", None),
    ("POST", "/api/v1/admin/questions/import", None),
    ("GET", f"/api/v1/admin/questions/{ObjectId()}", None),
    ("GET", f"/api/v1/admin/questions/{ObjectId()}/history", None),
    ("PUT", f"/api/v1/admin/questions/{ObjectId()}", {"difficulty": 1}),
    ("POST", f"/api/v1/admin/questions/{ObjectId()}/activate", None),
    ("POST", f"/api/v1/admin/questions/{ObjectId()}/deactivate", None),
]


async def test_admin_routes_refuse_users_and_strangers(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "plain@example.ru")
    for method, path, body in ADMIN_ROUTES:
        as_user = await client.request(method, path, json=body, headers=user["headers"])
        assert as_user.status_code == 403, (method, path, as_user.text)
        assert as_user.json()["error"]["code"] == "forbidden"
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
