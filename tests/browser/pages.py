"""What the browser tests do on the page, in the user's terms (labels, roles, visible text)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, WebSocket, expect

from tests.browser.conftest import PASSWORD, AppServer

# The page's interactions finish in well under a second; slow CI machines get headroom.
expect.set_options(timeout=15_000)

GOOD_ANSWER = (
    "A process has its own address space; threads of one process share the heap and globals "
    "but each thread has its own stack and registers. A context switch saves and restores that "
    "state, which is cheaper between threads than between processes."
)


@dataclass
class SocketLog:
    """Every frame the page's interview sockets sent and received, as parsed JSON."""

    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("websocket", self._on_socket)

    def _on_socket(self, ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))

    def of_type(self, frame_type: str) -> list[dict[str, Any]]:
        return [f for f in self.received if f.get("type") == frame_type]

    def done(self, question_id: str) -> dict[str, Any]:
        """The last feedback.done for a question (a restarted evaluation sends a new one)."""
        found = [f for f in self.of_type("feedback.done") if f["questionId"] == question_id]
        assert found, f"no feedback.done for {question_id}"
        return found[-1]

    def hellos(self) -> list[dict[str, Any]]:
        return [f for f in self.sent if f.get("type") == "hello"]


def login(page: Page, server: AppServer, address: str, password: str = PASSWORD) -> None:
    page.goto(f"{server.url}/#/login")
    page.get_by_label("Email", exact=True).fill(address)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="New interview")).to_be_visible()


def start_interview(page: Page, level: str = "Junior", language: str = "English") -> str:
    """Start from the start screen; returns the interview id from the address."""
    page.get_by_role("radio", name=level).check()
    page.get_by_role("radio", name=language, exact=True).check()
    page.get_by_role("button", name="Start the interview").click()
    expect(answer_box(page)).to_be_visible()
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    return page.url.rsplit("/", 1)[1]


def answer_box(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Your answer")


def current_question_id(page: Page) -> str:
    card = page.locator(".qcard", has=page.locator("#answer"))
    question_id = card.get_attribute("data-question-id")
    assert question_id
    return question_id


def card(page: Page, question_id: str) -> Locator:
    return page.locator(f'.qcard[data-question-id="{question_id}"]')


def feedback_text(page: Page, question_id: str) -> str:
    return card(page, question_id).locator(".feedback").inner_text()


def wait_streaming(page: Page, question_id: str) -> str:
    """Wait until part of the feedback is on screen and the score is not; returns that part."""
    # The text is taken in the same animation frame that saw the stream unfinished: read
    # afterwards, a fast stream may already be complete.
    handle = page.wait_for_function(
        """(id) => {
            const card = document.querySelector(`.qcard[data-question-id="${id}"]`);
            const text = card.querySelector(".feedback").textContent;
            return text.length > 0 && card.querySelector(".score").hidden ? text : false;
        }""",
        arg=question_id,
        polling="raf",
    )
    text: str = handle.json_value()
    return text


def wait_scored(page: Page, question_id: str, timeout: float = 15_000) -> None:
    expect(card(page, question_id).locator(".score")).to_be_visible(timeout=timeout)


def record_feedback(page: Page, question_id: str) -> None:
    """Log every text the question's feedback box shows, to check it only ever grew."""
    page.evaluate(
        """(id) => {
            const box = document.querySelector(`.qcard[data-question-id="${id}"] .feedback`);
            window.__feedbackLog = window.__feedbackLog || {};
            const log = (window.__feedbackLog[id] = []);
            new MutationObserver(() => log.push(box.textContent)).observe(box, {
                childList: true, characterData: true, subtree: true,
            });
        }""",
        question_id,
    )


def feedback_log(page: Page, question_id: str) -> list[str]:
    log: list[str] = page.evaluate("(id) => window.__feedbackLog[id]", question_id)
    return log


def no_horizontal_scroll(page: Page) -> bool:
    overflow: bool = page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    return overflow


def screenshot(page: Page, path: Path) -> None:
    """The whole page, from the top (so the sticky interview bar sits where it belongs)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)


def unlabelled_fields(page: Page) -> list[str]:
    """Form controls a screen reader could not name (no <label>, no aria-label)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea")]
            .filter((el) => !el.labels.length && !el.getAttribute("aria-label")
                && !el.getAttribute("aria-labelledby"))
            .map((el) => el.outerHTML.slice(0, 80))"""
    )
    return found
