"""Command line: run the server, and the staff commands (seed, create-admin, backup, restore).

The staff commands work beside a running `make run`: they use its embedded database server
(found through the run file it leaves in DATA_DIR) and start their own only when none runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from app_services import AppServices

log = logging.getLogger("core.cli")


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    settings.check_production()
    uvicorn.run(
        "http_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_max_size=settings.ws_max_frame_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_ping_interval=settings.ws_ping_interval_sec,
        ws_ping_timeout=settings.ws_ping_interval_sec,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=settings.graceful_shutdown_sec,
    )
    return 0


def beside_running_product(settings: Settings) -> Settings:
    """Settings that use the embedded database server `make run` already runs, if it does."""
    if not settings.embedded_mongo:
        return settings
    from core.embedded_mongo import find_running

    running = find_running(Path(settings.data_dir).resolve() / "mongo")
    if running is None:
        return settings
    log.info(
        "using the embedded database of the running product",
        extra={"pid": running.pid, "port": running.port, "owner": running.owner_pid},
    )
    return settings.model_copy(update={"mongodb_url": running.url})


@contextlib.asynccontextmanager
async def product(settings: Settings) -> AsyncIterator[AppServices]:
    """The product's services for a staff command, built as the web nodes build them."""
    from app_services import open_services

    services = await open_services(beside_running_product(settings), in_process_jobs=True)
    try:
        yield services
    finally:
        await services.close()


def _staff(action: Callable[[AppServices], Awaitable[str]]) -> int:
    from core.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.node_id)

    async def run() -> str:
        async with product(settings) as services:
            return await action(services)

    print(asyncio.run(run()))
    return 0


def _seed(args: argparse.Namespace) -> int:
    async def seed(services: AppServices) -> str:
        return f"seeded {await services.engine.questions.seed()} questions"

    return _staff(seed)


def _create_admin(args: argparse.Namespace) -> int:
    email = (args.email or os.environ.get("ADMIN_EMAIL") or "").strip() or input("Admin email: ")
    if "@" not in email:
        print(f"not an email address: {email!r}", file=sys.stderr)
        return 2
    password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Admin password (8-128 chars): ")
    if not 8 <= len(password) <= 128:
        print("the password must be 8 to 128 characters", file=sys.stderr)
        return 2

    async def create(services: AppServices) -> str:
        return f"admin {await services.accounts.create_admin(email, password)} ({email})"

    return _staff(create)


def _backup(args: argparse.Namespace) -> int:
    async def backup(services: AppServices) -> str:
        from core.backup import create_backup

        settings, db = services.settings, services.infra.db.db
        path = await create_backup(db, settings.backup_path, settings.backup_keep)
        return f"backup written to {path}"

    return _staff(backup)


def _restore(args: argparse.Namespace) -> int:
    path = Path(args.file)

    async def restore(services: AppServices) -> str:
        from core.backup import restore_backup

        settings, infra = services.settings, services.infra
        manifest = await restore_backup(infra.db.db, path, force=args.force)
        forgotten = 0
        if infra.redis is not None:
            # Live interview state, caches and leases describe the data after the backup.
            async for key in infra.redis.scan_iter(match=settings.redis_key_prefix + "*"):
                forgotten += int(await infra.redis.unlink(key))
        documents = sum(c.count for c in manifest.collections)
        return (
            f"restored {documents} documents in {len(manifest.collections)} collections from "
            f"{path.name} (made {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC by version "
            f"{manifest.app_version}) into {infra.db.db.name}"
            + (f"; {forgotten} Redis keys of the old state removed" if forgotten else "")
            + "; restart the product's nodes"
        )

    return _staff(restore)


def _export_schema(args: argparse.Namespace) -> int:
    from protocol.v1.asyncapi import ASYNCAPI_PATH, asyncapi_document
    from protocol.v1.schema import SCHEMA_PATH, protocol_schema

    documents = [(SCHEMA_PATH, protocol_schema()), (ASYNCAPI_PATH, asyncapi_document())]
    if args.output:
        documents = documents[:1]
    stale = 0
    for default, document in documents:
        text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        path = Path(args.output) if args.output else default
        if args.check:
            if not path.exists() or path.read_text("utf-8") != text:
                print(f"{path} is out of date: run `make schema`", file=sys.stderr)
                stale += 1
            continue
        path.write_text(text, "utf-8")
        print(f"wrote {path}")
    return 1 if stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interview-platform")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="serve the product (settings from the environment)").set_defaults(
        func=_run
    )
    sub.add_parser("seed", help="load the shipped question bank into the database").set_defaults(
        func=_seed
    )
    admin = sub.add_parser(
        "create-admin",
        help="create or promote an admin (email from --email or ADMIN_EMAIL, password from "
        "ADMIN_PASSWORD or a prompt)",
    )
    admin.add_argument("--email")
    admin.set_defaults(func=_create_admin)
    sub.add_parser(
        "backup", help="write a compressed archive of the database to BACKUP_DIR"
    ).set_defaults(func=_backup)
    restore = sub.add_parser("restore", help="restore an archive into an empty database")
    restore.add_argument("file", help="the backup archive (.tar.gz)")
    restore.add_argument(
        "--force", action="store_true", help="replace a database that holds documents"
    )
    restore.set_defaults(func=_restore)
    schema = sub.add_parser(
        "export-schema", help="write the protocol's JSON Schema and AsyncAPI document"
    )
    schema.add_argument("--output")
    schema.add_argument(
        "--check", action="store_true", help="fail if the checked-in schema is stale"
    )
    schema.set_defaults(func=_export_schema)
    args = parser.parse_args(argv)
    from core.backup import BackupError
    from core.embedded_mongo import EmbeddedMongoError

    try:
        return int(args.func(args))
    except (BackupError, EmbeddedMongoError, ConfigurationError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
