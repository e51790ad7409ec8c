"""Command line: run the server, seed the bank, create an admin, export the protocol schema."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path

from core.settings import Settings


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
        ws_ping_interval=settings.ws_ping_interval_sec,
        ws_ping_timeout=settings.ws_ping_interval_sec,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


async def _with_services(action: str, email: str = "", password: str = "") -> str:
    from app_services import open_services
    from core.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.node_id)
    services = await open_services(settings, in_process_jobs=True)
    try:
        if action == "seed":
            return f"seeded {await services.engine.questions.seed()} questions"
        return f"admin {await services.accounts.create_admin(email, password)}"
    finally:
        await services.close()


def _seed(args: argparse.Namespace) -> int:
    print(asyncio.run(_with_services("seed")))
    return 0


def _create_admin(args: argparse.Namespace) -> int:
    email = args.email or input("Admin email: ")
    password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Admin password (8-128 chars): ")
    if not 8 <= len(password) <= 128:
        print("the password must be 8 to 128 characters", file=sys.stderr)
        return 2
    print(asyncio.run(_with_services("admin", email, password)))
    return 0


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
        "create-admin", help="create or promote an admin (password from ADMIN_PASSWORD or a prompt)"
    )
    admin.add_argument("--email")
    admin.set_defaults(func=_create_admin)
    schema = sub.add_parser(
        "export-schema", help="write the protocol's JSON Schema and AsyncAPI document"
    )
    schema.add_argument("--output")
    schema.add_argument(
        "--check", action="store_true", help="fail if the checked-in schema is stale"
    )
    schema.set_defaults(func=_export_schema)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
