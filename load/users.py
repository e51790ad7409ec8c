"""Pre-create verified users for load tests, straight in MongoDB (no bcrypt per registration).

The documents have the fields `core.accounts.AccountService.register` writes, already verified.
Every user gets the same password; its hash is made once, the way the product makes it
(`PasswordHasher(PASSWORD_PEPPER, rounds).hash_sync`), and shared: bcrypt stores the salt and the
cost in the hash, so logins check it at that cost exactly as they would a hash of their own.

    # the embedded run (`make run`): the MongoDB-protocol server is found by DATA_DIR
    .venv/bin/python -m load.users --data-dir .data --count 500 --out load/results/users.json
    # any MongoDB
    .venv/bin/python -m load.users --mongodb-url mongodb://127.0.0.1:27017 --count 500
    # compose: run it inside an API container, which has MONGODB_URL and PASSWORD_PEPPER
    docker compose exec -T api1 python - --count 500 < load/users.py > load/results/users.json

The users file is a JSON list of {"email", "password", "id"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from core.accounts import normalize_email
from core.security import PasswordHasher
from core.settings import Settings

DEFAULT_PASSWORD = "load-test password 1"


def user_doc(email: str, password_hash: str, now: datetime) -> dict[str, Any]:
    """A verified user as `AccountService.register` + `verify_email` leave it."""
    return {
        "email": normalize_email(email),
        "passwordHash": password_hash,
        "gender": "female",
        "age": 30,
        "language": "ru",
        "role": "user",
        "isEmailVerified": True,
        "registrationDate": now,
        "lastLoginDate": None,
        "marketingConsent": False,
        "subscription": {
            "isActive": False,
            "plan": None,
            "startDate": None,
            "endDate": None,
            "autoRenew": False,
            "paymentId": None,
        },
    }


def create_users(
    mongo_url: str,
    db_name: str,
    count: int,
    *,
    pepper: str,
    rounds: int,
    password: str = DEFAULT_PASSWORD,
    prefix: str | None = None,
) -> list[dict[str, str]]:
    """Insert `count` verified users; returns their emails, password and ids."""
    prefix = prefix or f"load-{uuid.uuid4().hex[:8]}"
    password_hash = PasswordHasher(pepper, rounds).hash_sync(password)
    now = datetime.now(UTC)
    docs = [user_doc(f"{prefix}-{i}@example.ru", password_hash, now) for i in range(count)]
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    try:
        users = client[db_name]["users"]
        for start in range(0, len(docs), 1000):
            users.insert_many(docs[start : start + 1000], ordered=False)
    finally:
        client.close()
    return [{"email": d["email"], "password": password, "id": str(d["_id"])} for d in docs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--mongodb-url", help="default: MONGODB_URL of the product's settings")
    where.add_argument(
        "--data-dir", type=Path, help="the DATA_DIR of an embedded run: find its MongoDB there"
    )
    parser.add_argument("--db", help="database name (default: MONGODB_DB of the settings)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, help="bcrypt cost of the hash (default: BCRYPT_ROUNDS)"
    )
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--prefix", help="email prefix (default: random, so runs never collide)")
    parser.add_argument("--out", default="-", help="users file to write ('-' = stdout)")
    args = parser.parse_args(argv)

    settings = Settings()
    url = args.mongodb_url or settings.mongodb_url
    if args.data_dir is not None:
        from load.common import embedded_mongo_url

        url = embedded_mongo_url(data_dir=args.data_dir)
    if not url:
        parser.error("give --mongodb-url or --data-dir (or set MONGODB_URL)")
    users = create_users(
        url,
        args.db or settings.mongodb_db,
        args.count,
        pepper=settings.password_pepper.get_secret_value(),
        rounds=args.rounds or settings.bcrypt_rounds,
        password=args.password,
        prefix=args.prefix,
    )
    text = json.dumps(users, indent=1)
    if args.out == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(args.out).write_text(text + "\n")
        print(f"wrote {len(users)} verified users to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
