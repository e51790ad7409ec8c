"""Subscription and support screens in real headless Chromium: the free tier runs out, the user
buys a plan through the sandbox checkout, and a support ticket gets a staff reply."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import AppServer, Session, launch_app
from tests.browser.pages import login, no_horizontal_scroll, screenshot, unlabelled_fields

pytestmark = pytest.mark.browser

OpenBrowser = Callable[..., Session]
ADMIN_PASSWORD = "admin password 123"


@pytest.fixture(scope="module")
def app_server(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """This module's app: one free interview a month."""
    server = launch_app(
        mongo_url, tmp_path_factory.mktemp("billing") / "data", FREE_INTERVIEWS_PER_MONTH="1"
    )
    yield server
    server.stop()


def create_admin(server: AppServer, address: str) -> str:
    """An admin made with the project's CLI against the app's database; returns a token."""
    env = {
        **os.environ,
        **server.env,
        "DATA_DIR": str(server.data_dir),
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "create-admin", "--email", address],
        cwd=server.data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answer = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"email": address, "password": ADMIN_PASSWORD},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def test_free_tier_subscription_and_support(
    app_server: AppServer, open_browser: OpenBrowser, artifacts: Path
) -> None:
    address = f"billing-{uuid.uuid4().hex[:10]}@example.com"
    app_server.verified_user(address)
    page = open_browser().new_page()
    login(page, app_server, address)

    # The one free interview of the month: start it and finish it early.
    page.get_by_role("radio", name="Intern").check()
    page.get_by_role("radio", name="English", exact=True).check()
    page.get_by_role("button", name="Start the interview").click()
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    page.get_by_role("button", name="Finish the interview").click()
    page.get_by_role("button", name="Yes, finish").click()
    expect(page.get_by_text("The interview is complete.")).to_be_visible()

    # The second start is over the free tier: a clear message with the way to subscribe.
    page.get_by_role("link", name="New interview").click()
    page.get_by_role("radio", name="Intern").check()
    page.get_by_role("button", name="Start the interview").click()
    expect(page.get_by_text("This month's free interviews are used up.")).to_be_visible()
    expect(page.get_by_text("Something went wrong")).to_be_hidden()
    page.get_by_role("link", name="Open the subscription").click()

    # The subscription screen: not active, the plans with prices.
    expect(page.get_by_role("heading", name="Subscription", exact=True)).to_be_visible()
    expect(page.locator(".status-list")).to_contain_text("Not active")
    expect(page.locator(".status-list")).to_contain_text("1 of 1 used")
    month = page.locator('.plan[data-plan-id="month"]')
    expect(month).to_contain_text("Month")
    expect(month).to_contain_text("990")
    assert unlabelled_fields(page) == []

    # Buy the month plan through the sandbox checkout, in the same tab.
    page.get_by_role("button", name="Subscribe: Month").click()
    page.wait_for_url(re.compile(r"/billing/sandbox/"))
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(page.get_by_text("Paid.")).to_be_visible()
    page.get_by_role("link", name="Back to the app").click()

    # Back on the page: the subscription is active, with auto-renewal.
    expect(page.get_by_role("heading", name="Subscription", exact=True)).to_be_visible()
    expect(page.locator(".status-list")).to_contain_text("Active")
    expect(page.locator(".status-list")).not_to_contain_text("Not active")
    expect(page.locator(".status-list")).to_contain_text("Month")
    expect(page.locator(".status-list")).to_contain_text("Active until")
    expect(page.get_by_text("Payment received: the subscription is active.")).to_be_visible()
    assert "payment=" not in page.url
    screenshot(page, artifacts / "subscription.png")

    # Russian text on the same screen, then back to English.
    page.get_by_role("button", name="Русский").click()
    expect(page.get_by_role("heading", name="Подписка", exact=True)).to_be_visible()
    expect(page.locator(".status-list")).to_contain_text("Активна")
    expect(page.get_by_role("button", name="Продлить: Месяц")).to_be_visible()
    expect(page.get_by_role("button", name="Оформить: Квартал")).to_be_visible()
    page.get_by_role("button", name="English").click()

    # Turning auto-renewal off keeps the access.
    page.get_by_role("button", name="Turn off auto-renewal").click()
    expect(page.locator(".status-list")).to_contain_text("Off")
    expect(page.locator(".status-list")).to_contain_text("Active")

    # Starting works again.
    page.get_by_role("link", name="New interview").click()
    page.get_by_role("radio", name="Intern").check()
    page.get_by_role("button", name="Start the interview").click()
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    page.get_by_role("button", name="Finish the interview").click()
    page.get_by_role("button", name="Yes, finish").click()
    expect(page.get_by_text("The interview is complete.")).to_be_visible()

    # Support, at phone width: open a ticket from the page.
    page.set_viewport_size({"width": 375, "height": 740})
    page.get_by_role("link", name="Support").click()
    expect(page.get_by_role("heading", name="Support", exact=True)).to_be_visible()
    assert unlabelled_fields(page) == []
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_label("Subject")).to_be_focused()
    page.get_by_label("Subject").fill("The receipt did not arrive")
    page.get_by_label("Message").fill("I paid for the month plan.\nWhere is the receipt?")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_text("The request is sent.")).to_be_visible()
    item = page.locator(".ticket-item").first
    expect(item).to_contain_text("The receipt did not arrive")
    expect(item).to_contain_text("New")
    ticket_id = item.get_attribute("data-ticket-id")
    assert ticket_id
    assert no_horizontal_scroll(page)

    page.get_by_role("link", name="The receipt did not arrive").click()
    expect(page.get_by_role("heading", name="The receipt did not arrive")).to_be_visible()
    expect(page.locator(".thread .reply")).to_have_count(1)
    expect(page.locator(".thread")).to_contain_text("Where is the receipt?")

    # Staff reply over the admin API; the user reloads the ticket and sees it marked as staff.
    token = create_admin(app_server, f"admin-{uuid.uuid4().hex[:8]}@example.com")
    reply = httpx.post(
        f"{app_server.url}/api/v1/admin/support/tickets/{ticket_id}/reply",
        json={"message": "Sent it again: check your inbox."},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    page.reload()
    staff = page.locator(".thread .reply.staff")
    expect(staff).to_have_count(1)
    expect(staff).to_contain_text("Support team")
    expect(staff).to_contain_text("Sent it again: check your inbox.")

    # The user answers in the page.
    page.get_by_label("Your reply").fill("Got it, thanks!")
    page.get_by_role("button", name="Send the reply").click()
    expect(page.locator(".thread .reply")).to_have_count(3)
    expect(page.locator(".thread .reply").last).to_contain_text("Got it, thanks!")
    assert unlabelled_fields(page) == []
    assert no_horizontal_scroll(page)
    screenshot(page, artifacts / "support.png")
