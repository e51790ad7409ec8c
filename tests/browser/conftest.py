"""Headless Chromium (Debian's package, driven by Playwright) against the app served by uvicorn.

The app runs as `python -m core.cli run` in a child process, as `make run` does, so a test can
restart the node under a connected page. Playwright never downloads a browser here: it is pointed
at the system Chromium, and a missing one fails the tests with instructions.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from load.harness import ProductNode, free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
# The browser reports refused connections and error statuses on its own; the page handles those.
# Anything else on the console (script errors, CSP refusals) fails the test.
NETWORK_NOISE = ("Failed to load resource", "WebSocket connection to")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium; a missing one is a failure with instructions, never a skip."""
    path = os.environ.get("CHROMIUM_PATH", DEFAULT_CHROMIUM)
    resolved = shutil.which(path)
    if resolved is None:
        pytest.fail(
            f"Chromium not found at {path!r}. Install Debian's package "
            "(`apt-get update && apt-get install -y chromium`, or `make chromium`) "
            "or point CHROMIUM_PATH at a Chromium executable.",
            pytrace=False,
        )
    return resolved


class AppServer(ProductNode):
    """The product in a child process on a fixed port (so a restart keeps the page's origin)."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        port = free_port()
        settings = {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "DATA_DIR": str(data_dir)}
        super().__init__(
            "browser-test",
            {**os.environ, **settings},
            data_dir / "server.log",
            port=port,
            cwd=data_dir,  # no developer .env is picked up from here
        )

    # --- mail and accounts, as a user's inbox would show them --------------------------------

    def mails(self, address: str, tag: str) -> list[Message]:
        folder = self.data_dir / "outbox"
        found = []
        for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
            message = email.message_from_bytes(path.read_bytes())
            if address in str(message["To"]) and message["X-Mail-Tag"] == tag:
                found.append(message)
        return found

    def mailed_link(self, address: str, tag: str, path: str, timeout: float = 10.0) -> str:
        """The link to `path` in the newest `tag` mail to `address` (waits for the mail job)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.mails(address, tag)
            if messages:
                text = _plain_text(messages[-1])
                found = re.search(rf"https?://\S+{re.escape(path)}\?token=[A-Za-z0-9_-]+", text)
                assert found, f"no {path} link in the {tag} mail:\n{text}"
                return found.group(0)
            time.sleep(0.05)
        raise AssertionError(f"no {tag} mail to {address} within {timeout}s")

    def verified_user(self, address: str) -> None:
        """Register and confirm an account over the API (the page flow has its own test)."""
        body = {"email": address, "password": PASSWORD, "gender": "female", "age": 30}
        with httpx.Client(base_url=self.url, timeout=10) as http:
            assert http.post("/api/v1/auth/register", json=body).status_code == 201
            link = self.mailed_link(address, "verify_email", "/verify-email")
            token = link.rsplit("token=", 1)[1]
            verified = http.post("/api/v1/auth/verify-email", json={"token": token})
            assert verified.status_code == 200, verified.text


def _plain_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("the mail has no text part")


def launch_app(mongo_url: str, data_dir: Path, **env: str) -> AppServer:
    """Start the app (local evaluator, outbox mail, in-process bus) with extra environment."""
    data_dir.mkdir(parents=True)
    base = {
        "APP_ENV": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": f"browser_{uuid.uuid4().hex[:12]}",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "OPENAI_API_KEY": "",
        "SENDPULSE_CLIENT_ID": "",
        "BCRYPT_ROUNDS": "4",
        "LOCAL_EVALUATOR_DELAY_SEC": "0.02",
        "LOG_LEVEL": "WARNING",
        "NODE_ID": "browser-test",
    }
    server = AppServer(data_dir, {**base, **env})
    server.start()
    return server


@pytest.fixture(scope="module")
def app_server(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """One app for a module's tests; intern questions run out of time in seconds."""
    server = launch_app(
        mongo_url, tmp_path_factory.mktemp("app") / "data", TIME_LIMIT_INTERN_SEC="6"
    )
    yield server
    server.stop()


@pytest.fixture
def start_app(mongo_url: str, tmp_path: Path) -> Iterator[Callable[..., AppServer]]:
    """Start an app of this test's own (extra environment as keywords); stopped afterwards."""
    servers: list[AppServer] = []

    def start(**env: str) -> AppServer:
        server = launch_app(mongo_url, tmp_path / f"app{len(servers)}", **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def chromium(chromium_path: str) -> Iterator[Browser]:
    """The system Chromium on a fresh profile (Playwright gives every launch a new user data
    dir); each test gets its own isolated context. Module scope: Playwright's sync driver is
    gone before the next module's asyncio tests run in this process."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@dataclass
class Session:
    """One test's browser context; script errors on its pages are collected."""

    context: BrowserContext
    errors: list[str]

    def new_page(self) -> Page:
        page = self.context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and not message.text.startswith(NETWORK_NOISE):
                self.errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        return page


@pytest.fixture
def open_browser(chromium: Browser) -> Iterator[Callable[..., Session]]:
    """A fresh context (no cookies or storage) per call; script errors fail the test."""
    opened: list[Session] = []

    def open_context(**options: Any) -> Session:
        context = chromium.new_context(
            **{"viewport": {"width": 1100, "height": 900}, "locale": "en-US", **options}
        )
        context.set_default_timeout(15_000)
        session = Session(context, [])
        opened.append(session)
        return session

    yield open_context
    for session in opened:
        session.context.close()
    errors = [e for session in opened for e in session.errors]
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
