"""Backups: a round trip through an archive into a fresh database, and damaged archives refused."""

from __future__ import annotations

import gzip
import io
import tarfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from core.backup import (
    BackupError,
    create_backup,
    list_backups,
    restore_backup,
    verify_archive,
)
from core.billing import webhook_secret
from core.settings import Settings
from http_api.services import AppServices
from tests.billing.conftest import create_order, pay
from tests.conftest import make_settings, running_app
from tests.helpers import PASSWORD, verified_user

pytestmark = pytest.mark.integration


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"questions_per_interview": 2}


async def build_history(client: httpx.AsyncClient, services: AppServices) -> dict[str, Any]:
    """A user with a completed interview, a payment and a support ticket; what they see."""
    user = await verified_user(client, services, "kept@example.ru")
    user["id"] = user["user"]["id"]
    await verified_user(client, services, "other@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "junior"}, headers=user["headers"]
    )
    assert started.status_code == 201, started.text
    interview_id = started.json()["interviewId"]
    question = started.json()["questions"][0]
    answered = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/answer",
        json={"questionId": question["questionId"], "answer": "индексы B-tree и транзакции"},
        headers=user["headers"],
    )
    assert answered.status_code == 200, answered.text
    done = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/complete", headers=user["headers"]
    )
    assert done.status_code == 200, done.text
    order_id = await create_order(client, user)
    await pay(client, services, webhook_secret(services.settings), user, order_id)
    ticket = await client.post(
        "/api/v1/support/contact",
        json={"subject": "Receipt", "message": "Where is my receipt?"},
        headers=user["headers"],
    )
    assert ticket.status_code == 201, ticket.text
    return {"interviewId": interview_id, **await seen_by(client, user["headers"], interview_id)}


async def seen_by(
    client: httpx.AsyncClient, headers: dict[str, str], interview_id: str
) -> dict[str, Any]:
    """What the user reads back: history, report, payments, subscription, tickets."""
    paths = {
        "history": "/api/v1/interviews/history",
        "report": f"/api/v1/interviews/{interview_id}/report",
        "payments": "/api/v1/payments",
        "subscription": "/api/v1/subscriptions/status",
        "tickets": "/api/v1/support/tickets",
    }
    seen = {}
    for key, path in paths.items():
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        seen[key] = response.json()
    return seen


async def login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_backup_then_restore_into_a_fresh_database_gives_the_same_history(
    client: httpx.AsyncClient, services: AppServices, settings: Settings, tmp_path: Path
) -> None:
    before = await build_history(client, services)
    folder = tmp_path / "backups"
    archive = await create_backup(services.infra.db.db, folder, keep=3)
    manifest = verify_archive(archive)
    counts = {c.name: c.count for c in manifest.collections}
    assert counts["users"] == 2 and counts["interviews"] == 1
    assert counts["payments"] >= 1 and counts["support_tickets"] == 1
    assert manifest.consistent, "SecantusDB has transactions: one snapshot"
    users = next(c for c in manifest.collections if c.name == "users")
    assert any(i["name"] == "email_unique" and i.get("unique") for i in users.indexes)

    fresh = make_settings(settings.mongodb_url, tmp_path / "fresh")
    client_db: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    try:
        restored = await restore_backup(client_db[fresh.mongodb_db], archive)
        assert restored.database == settings.mongodb_db
        index_names = await client_db[fresh.mongodb_db]["users"].index_information()
        assert "email_unique" in index_names
    finally:
        await client_db.close()

    async with running_app(fresh) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            headers = await login(other, "kept@example.ru")
            after = await seen_by(other, headers, before["interviewId"])
    assert after == {k: v for k, v in before.items() if k != "interviewId"}


async def test_a_restore_refuses_a_database_with_documents_unless_forced(
    client: httpx.AsyncClient, services: AppServices, tmp_path: Path
) -> None:
    await verified_user(client, services, "first@example.ru")
    db = services.infra.db.db
    archive = await create_backup(db, tmp_path, keep=3)
    await verified_user(client, services, "later@example.ru")
    with pytest.raises(BackupError, match="is not empty .*users: 2.*FORCE=1"):
        await restore_backup(db, archive)
    assert await db["users"].count_documents({}) == 2, "nothing written"
    await restore_backup(db, archive, force=True)
    emails = sorted([u["email"] async for u in db["users"].find()])
    assert emails == ["first@example.ru"], "the forced restore replaced the database"


async def test_only_the_newest_backups_are_kept(
    client: httpx.AsyncClient, services: AppServices, tmp_path: Path
) -> None:
    await verified_user(client, services, "keep@example.ru")
    made = [await create_backup(services.infra.db.db, tmp_path, keep=2) for _ in range(4)]
    assert list_backups(tmp_path, services.settings.mongodb_db) == made[-2:]


def _rewrite(archive: Path, change: Any) -> Path:
    """A copy of `archive` with `change(name, data) -> data | None` applied to each member."""
    out = archive.with_name("changed-" + archive.name)
    with tarfile.open(archive, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            stream = src.extractfile(member)
            assert stream is not None
            data = change(member.name, stream.read())
            if data is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


async def test_a_damaged_archive_is_refused_before_anything_is_written(
    client: httpx.AsyncClient, services: AppServices, settings: Settings, tmp_path: Path
) -> None:
    await verified_user(client, services, "damaged@example.ru")
    archive = await create_backup(services.infra.db.db, tmp_path, keep=10)

    def flip(name: str, data: bytes) -> bytes:
        if name != "collections/users.bson":
            return data
        spoiled = bytearray(data)
        spoiled[len(spoiled) // 2] ^= 0x01
        return bytes(spoiled)

    def drop_last_document(name: str, data: bytes) -> bytes:
        if name != "collections/users.bson":
            return data
        first = int.from_bytes(data[:4], "little")
        return data[:first] if first < len(data) else data + data

    truncated = archive.with_name("truncated.tar.gz")
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    not_gzip = archive.with_name("plain.tar.gz")
    not_gzip.write_bytes(gzip.decompress(archive.read_bytes())[:2048])
    cases = {
        _rewrite(archive, flip): "collection users: SHA-256 differs from the manifest",
        _rewrite(archive, drop_last_document): "collection users: SHA-256 differs",
        _rewrite(archive, lambda n, d: None if n == "manifest.json" else d): "manifest",
        _rewrite(archive, lambda n, d: b"{}" if n == "manifest.json" else d): "not an Interview",
        truncated: "damaged|not a readable",
        not_gzip: "not a readable",
    }
    target_name = f"t_{uuid.uuid4().hex[:16]}"
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    try:
        for path, message in cases.items():
            with pytest.raises(BackupError, match=message) as refused:
                await restore_backup(mongo[target_name], path)
            assert "\n" not in str(refused.value), "one line"
            assert target_name not in await mongo.list_database_names(), "nothing written"
        names = [n for n in await mongo.list_database_names() if "_restore_" in n]
        assert not any(n.startswith(target_name[:40]) for n in names), "no staging left"
    finally:
        await mongo.close()
