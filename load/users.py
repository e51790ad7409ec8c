"""Verified users for load, made through the product's public API as a person would make them:
register, open the link in the verification mail, log in.

The mail is read from the outbox of an embedded run (`DATA_DIR/outbox/*.eml`). Where mail
really goes out (SendPulse), give `--mongodb-url` instead: the accounts are then marked
verified in the database (the `isEmailVerified` field every user document has).

    # the embedded run (`make run`, DATA_DIR=.data)
    .venv/bin/python -m load.users --base http://127.0.0.1:8000 --outbox .data/outbox \\
        --count 200 --out load/results/users.json
    # compose, through nginx, with the database reachable
    .venv/bin/python -m load.users --base http://127.0.0.1:8080 \\
        --mongodb-url mongodb://127.0.0.1:27017 --count 200 --out load/results/users.json

Registration costs one bcrypt hash at the server's BCRYPT_ROUNDS. The users file is a JSON list
of {"email", "password"}, the accounts Locust logs in as.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_PASSWORD = "load-test password 1"
VERIFY_TAG = "verify_email"
VERIFY_LINK = re.compile(r"/verify-email\?token=([A-Za-z0-9_-]+)")


@dataclass
class Account:
    """A verified user; `token` once logged in, `interview_id` once one is started."""

    email: str
    password: str
    token: str = ""
    interview_id: str = ""


def http_client(base: str, connections: int = 64) -> httpx.AsyncClient:
    """httpx for setting a run up, where the client's own cost does not matter."""
    return httpx.AsyncClient(
        base_url=base,
        timeout=120,
        trust_env=False,  # never a proxy: the traffic stays where it is sent
        limits=httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            # Under uvicorn's 5 s keep-alive timeout: the client lets an idle connection go
            # first, so a request never races the server closing it.
            keepalive_expiry=4.0,
        ),
    )


async def bounded[T](jobs: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Await `jobs` with at most `limit` in flight; results in order."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


class Outbox:
    """The verification links in an embedded run's mail folder, by recipient."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: set[str] = set()
        self.tokens: dict[str, str] = {}

    def scan(self) -> None:
        if not self.folder.exists():
            return
        for path in self.folder.glob("*.eml"):
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            message = email.message_from_bytes(path.read_bytes())
            if message["X-Mail-Tag"] != VERIFY_TAG:
                continue
            found = VERIFY_LINK.search(_plain_text(message))
            if found:
                _, address = email.utils.parseaddr(str(message["To"]))
                self.tokens[address.lower()] = found.group(1)

    async def links(self, emails: list[str], timeout: float) -> dict[str, str]:
        """Wait until every address got its verification mail; their tokens."""
        wanted = {e.lower() for e in emails}
        deadline = time.monotonic() + timeout
        while not wanted <= self.tokens.keys():
            if time.monotonic() > deadline:
                missing = len(wanted - self.tokens.keys())
                raise TimeoutError(f"{missing} verification mails missing after {timeout:g} s")
            await asyncio.to_thread(self.scan)
            await asyncio.sleep(0.2)
        return {e: self.tokens[e.lower()] for e in emails}


def _plain_text(message: email.message.Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            return payload.decode() if isinstance(payload, bytes) else ""
    return ""


async def _checked(response: Awaitable[httpx.Response], expected: int) -> dict[str, Any]:
    answer = await response
    if answer.status_code != expected:
        raise RuntimeError(f"{answer.request.url.path}: {answer.status_code} {answer.text[:200]}")
    body: dict[str, Any] = answer.json()
    return body


async def register_users(
    base: str,
    count: int,
    *,
    outbox: Path | None = None,
    mongodb: tuple[str, str] | None = None,
    password: str = DEFAULT_PASSWORD,
    prefix: str | None = None,
    login: bool = True,
    concurrency: int = 32,
) -> list[Account]:
    """Register `count` users and verify them (mail links from `outbox`, or the flag in the
    database `mongodb` = (url, database name)); with `login`, each gets an access token."""
    if (outbox is None) == (mongodb is None):
        raise ValueError("give exactly one of outbox and mongodb")
    prefix = prefix or f"load-{uuid.uuid4().hex[:8]}"
    accounts = [Account(f"{prefix}-{i}@example.ru", password) for i in range(count)]
    async with http_client(base, concurrency * 2) as http:
        body = {"password": password, "gender": "female", "age": 30, "language": "ru"}
        await bounded(
            (
                _checked(http.post("/api/v1/auth/register", json={**body, "email": a.email}), 201)
                for a in accounts
            ),
            concurrency,
        )
        if outbox is not None:
            links = await Outbox(outbox).links([a.email for a in accounts], 60 + count / 10)
            await bounded(
                (
                    _checked(http.post("/api/v1/auth/verify-email", json={"token": t}), 200)
                    for t in links.values()
                ),
                concurrency,
            )
        elif mongodb is not None:
            await _mark_verified(*mongodb, [a.email for a in accounts])
        if login:
            answers = await bounded(
                (
                    _checked(
                        http.post(
                            "/api/v1/auth/login", json={"email": a.email, "password": password}
                        ),
                        200,
                    )
                    for a in accounts
                ),
                concurrency,
            )
            for account, answer in zip(accounts, answers, strict=True):
                account.token = str(answer["token"])
    return accounts


async def _mark_verified(url: str, db_name: str, emails: list[str]) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        await client[db_name]["users"].update_many(
            {"email": {"$in": emails}}, {"$set": {"isEmailVerified": True}}
        )
    finally:
        await client.close()


async def start_interviews(
    base: str,
    accounts: list[Account],
    *,
    level: str = "junior",
    language: str = "ru",
    concurrency: int = 32,
) -> None:
    """Start one interview for each logged-in account (its `interview_id`)."""
    async with http_client(base, concurrency * 2) as http:

        async def start(account: Account) -> None:
            answer = await _checked(
                http.post(
                    "/api/v1/interviews/technical/start",
                    json={"level": level, "language": language},
                    headers={"Authorization": f"Bearer {account.token}"},
                ),
                201,
            )
            account.interview_id = str(answer["interviewId"])

        await bounded((start(a) for a in accounts), concurrency)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", required=True, help="the product's URL, e.g. http://host:8000")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--outbox", type=Path, help="the embedded run's DATA_DIR/outbox")
    how.add_argument("--mongodb-url", help="mark the accounts verified in this database")
    parser.add_argument("--db", default="interview_platform", help="with --mongodb-url")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--prefix", help="email prefix (default: random, so runs never collide)")
    parser.add_argument("--out", default="-", help="users file to write ('-' = stdout)")
    args = parser.parse_args(argv)
    accounts = asyncio.run(
        register_users(
            args.base,
            args.count,
            outbox=args.outbox,
            mongodb=(args.mongodb_url, args.db) if args.mongodb_url else None,
            password=args.password,
            prefix=args.prefix,
            login=False,
        )
    )
    text = json.dumps([{"email": a.email, "password": a.password} for a in accounts], indent=1)
    if args.out == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(args.out).write_text(text + "\n")
        print(f"wrote {len(accounts)} verified users to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
