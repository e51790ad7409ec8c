"""The web page in real headless Chromium against the running app with the local evaluator."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, AppServer, Session
from tests.browser.pages import (
    GOOD_ANSWER,
    SocketLog,
    answer_box,
    card,
    current_question_id,
    feedback_log,
    feedback_text,
    login,
    no_horizontal_scroll,
    record_feedback,
    screenshot,
    start_interview,
    unlabelled_fields,
    wait_scored,
    wait_streaming,
)

pytestmark = pytest.mark.browser

OpenBrowser = Callable[..., Session]


STATIC = Path(__file__).resolve().parents[2] / "http_api" / "web" / "static"


def new_address() -> str:
    return f"browser-{uuid.uuid4().hex[:10]}@example.com"


def test_registration_to_shared_report(
    app_server: AppServer, open_browser: OpenBrowser, artifacts: Path
) -> None:
    browser = open_browser()
    page = browser.new_page()
    sockets = SocketLog()
    sockets.attach(page)
    address = new_address()

    # Sign up in the page.
    page.goto(f"{app_server.url}/")
    page.get_by_role("link", name="Sign up").first.click()
    assert unlabelled_fields(page) == []
    page.get_by_role("button", name="Create the account").click()
    expect(page.get_by_text("Enter an email address such as name@example.com.")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_be_focused()
    expect(page.get_by_label("Email", exact=True)).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Email", exact=True).fill(address)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Gender").select_option("female")
    page.get_by_label("Age", exact=True).fill("27")
    page.get_by_label("Language of interviews and emails").select_option("en")
    page.get_by_role("button", name="Create the account").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(page.get_by_text(address)).to_be_visible()

    # The link in the mailed .eml confirms the address by itself.
    link = app_server.mailed_link(address, "verify_email", "/verify-email")
    page.goto(link)
    expect(page.get_by_text("Your address is confirmed")).to_be_visible()
    assert "token=" not in page.url  # the single-use token leaves the address bar

    login(page, app_server, address)

    # Russian and English interface text.
    page.get_by_role("button", name="Русский").click()
    expect(page.get_by_role("heading", name="Новое собеседование")).to_be_visible()
    assert page.evaluate("() => document.documentElement.lang") == "ru"
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="New interview")).to_be_visible()

    interview_id = start_interview(page, "Junior", "English")
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^[45]:\d\d$"))
    expect(page.get_by_text("Question 1 of 5", exact=True)).to_be_visible()

    for n in range(1, 6):
        expect(page.get_by_text(f"Question {n} of 5", exact=True)).to_be_visible()
        question_id = current_question_id(page)
        answer_box(page).fill(f"{GOOD_ANSWER} ({n})")
        page.get_by_role("button", name="Send the answer").click()
        partial = wait_streaming(page, question_id)
        if n == 1:
            page.screenshot(path=str(artifacts / "interview-streaming.png"))
        wait_scored(page, question_id)
        done = sockets.done(question_id)
        final = feedback_text(page, question_id)
        assert final == done["feedback"]
        assert partial and len(partial) < len(final) and final.startswith(partial)
        expect(card(page, question_id).locator(".score")).to_have_text(
            f"Score: {done['score']:g} of 10"
        )
        expect(card(page, question_id).locator(".answer-text")).to_have_text(f"{GOOD_ANSWER} ({n})")
        if n == 2:
            screenshot(page, artifacts / "interview.png")
            assert unlabelled_fields(page) == []

    completed = sockets.of_type("interview.completed")
    assert len(completed) == 1
    expect(page.get_by_text("The interview is complete.")).to_be_visible()
    expect(page.get_by_text(f"Result: {completed[0]['score']} of 100.")).to_be_visible()
    page.get_by_role("link", name="Open the report").click()

    # The report, with a public link.
    expect(page.get_by_role("heading", name="Interview report")).to_be_visible()
    expect(page.locator(".score-value")).to_have_text(str(completed[0]["score"]))
    expect(
        page.get_by_text("Passed" if completed[0]["passed"] else "Not passed", exact=True)
    ).to_be_visible()
    expect(page.get_by_text(re.compile(r"Better than \d+% of candidates"))).to_be_visible()
    expect(page.get_by_role("heading", name="Strong topics")).to_be_visible()
    expect(page.get_by_role("heading", name="Topics to work on")).to_be_visible()
    expect(page.locator(".report-questions .qcard")).to_have_count(5)
    expect(page.get_by_role("button", name="Revoke the link")).to_be_hidden()
    page.get_by_role("button", name="Create a public link").click()
    share_url = page.get_by_label("Public link")
    expect(share_url).to_have_value(re.compile(rf"^{re.escape(app_server.url)}/shared/\S+$"))
    public_link = share_url.input_value()
    assert unlabelled_fields(page) == []
    screenshot(page, artifacts / "report.png")

    # The history lists it.
    page.get_by_role("link", name="History").click()
    item = page.locator(f'.history-item[data-interview-id="{interview_id}"]')
    expect(item).to_contain_text("Completed")
    expect(item).to_contain_text(f"{completed[0]['score']} of 100")
    expect(item).to_contain_text("Answered: 5 of 5")
    screenshot(page, artifacts / "history.png")

    # The public link opens without logging in and shows no email.
    visitor = browser.new_page()
    visitor.goto(public_link)
    expect(visitor.get_by_role("heading", name="Interview report (public link)")).to_be_visible()
    expect(visitor.locator(".score-value")).to_have_text(str(completed[0]["score"]))
    expect(visitor.get_by_role("link", name="Log in")).to_be_visible()
    assert address not in visitor.content()
    assert "@example.com" not in visitor.locator("body").inner_text()
    screenshot(visitor, artifacts / "shared.png")

    # Revoking the link closes it.
    page.go_back()
    page.get_by_role("button", name="Revoke the link").click()
    expect(page.get_by_text("The link is revoked")).to_be_visible()
    visitor.reload()
    expect(visitor.get_by_text("This link is invalid or was revoked.")).to_be_visible()


def test_forgotten_password_is_reset_through_the_mailed_link(
    app_server: AppServer, open_browser: OpenBrowser
) -> None:
    address = new_address()
    app_server.verified_user(address)
    page = open_browser().new_page()
    page.goto(f"{app_server.url}/#/login")
    page.get_by_label("Email", exact=True).fill(address)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email", exact=True).fill(address)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_text("If this address has an account")).to_be_visible()

    page.goto(app_server.mailed_link(address, "password_reset", "/reset-password"))
    page.get_by_label("New password", exact=True).fill("another long secret")
    page.get_by_label("Repeat the new password").fill("another long secret!")
    page.get_by_role("button", name="Change the password").click()
    expect(page.get_by_text("The passwords do not match.")).to_be_visible()
    page.get_by_label("Repeat the new password").fill("another long secret")
    page.get_by_role("button", name="Change the password").click()
    expect(page.get_by_text("The password is changed.")).to_be_visible()

    login(page, app_server, address, "another long secret")


def test_dropped_socket_and_node_restart_resume_without_duplicated_feedback(
    start_app: Callable[..., AppServer], open_browser: OpenBrowser, artifacts: Path
) -> None:
    # Slow streams leave time to cut the connection in the middle of one; a short evaluation
    # lease lets the restarted node take the interrupted evaluation over quickly.
    # Access tokens that expire within seconds make the reconnects and REST calls below refresh.
    server = start_app(
        LOCAL_EVALUATOR_DELAY_SEC="0.03",
        EVAL_LEASE_TTL_SEC="1",
        ORPHAN_SWEEP_SEC="0.25",
        ACCESS_TOKEN_TTL_SEC="2",
    )
    address = new_address()
    server.verified_user(address)
    page = open_browser().new_page()
    sockets = SocketLog()
    sockets.attach(page)
    api_calls: list[tuple[str, int]] = []
    page.on("response", lambda r: api_calls.append((r.url.split("/api/v1", 1)[-1], r.status)))
    login(page, server, address)
    interview_id = start_interview(page)

    # 1. The connection drops during a feedback stream.
    first = current_question_id(page)
    record_feedback(page, first)
    answer_box(page).fill(GOOD_ANSWER)
    page.get_by_role("button", name="Send the answer").click()
    partial = wait_streaming(page, first)
    # Read the position and drop in one script turn, so no frame lands in between.
    seq_before = page.evaluate(
        "() => { const s = window.__interviewSocket; const seq = s.lastSeq; s.drop(); return seq; }"
    )
    wait_scored(page, first)
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()

    assert page.evaluate("() => window.__interviewSocket.connects") == 2
    assert sockets.hellos()[-1]["lastSeq"] == seq_before  # resumed from where it was
    final = feedback_text(page, first)
    assert final == sockets.done(first)["feedback"]
    assert partial and len(partial) < len(final)
    assert all(final.startswith(shown) for shown in feedback_log(page, first)), "text repeated"
    assert page.locator("body").inner_text().count(final) == 1

    # 2. The node restarts during the next stream (1012, a new history epoch, the evaluation
    # starts over with feedback.reset).
    second = current_question_id(page)
    record_feedback(page, second)
    answer_box(page).fill(GOOD_ANSWER)
    page.get_by_role("button", name="Send the answer").click()
    wait_streaming(page, second)
    server.restart()
    wait_scored(page, second, timeout=30_000)
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    expect(page.get_by_text("Question 3 of 5", exact=True)).to_be_visible()

    final = feedback_text(page, second)
    with httpx.Client(base_url=server.url) as http:
        token = http.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['token']}"}
        report = http.get(f"/api/v1/interviews/{interview_id}/report", headers=headers).json()
    stored = report["questions"][1]["aiEvaluation"]["feedback"]
    assert final == stored
    # Depending on timing the page got the result live (feedback.done) or in a snapshot.
    assert all(
        f["feedback"] == stored
        for f in sockets.of_type("feedback.done")
        if f["questionId"] == second
    )
    assert all(stored.startswith(shown) for shown in feedback_log(page, second)), "text repeated"
    assert page.locator("body").inner_text().count(stored) == 1
    assert page.evaluate("() => window.__interviewSocket.connects") >= 3
    # The access token had expired by the restart: the socket said hello with a refreshed one.
    assert sockets.hellos()[-1]["token"] != sockets.hellos()[0]["token"]
    assert ("/auth/refresh", 200) in api_calls

    # The interview goes on after the restart.
    third = current_question_id(page)
    answer_box(page).fill(GOOD_ANSWER)
    page.get_by_role("button", name="Send the answer").click()
    wait_scored(page, third)
    screenshot(page, artifacts / "interview-resumed.png")

    # The socket kept its session alive in-band: fresh tokens went out in `auth` frames.
    auths = [f for f in sockets.sent if f.get("type") == "auth"]
    assert auths and auths[-1]["token"] != sockets.hellos()[0]["token"]

    # REST after the access token expired: 401, one refresh, the same request again. The socket
    # stops renewing first, and the test waits until the last token it sent has expired.
    page.evaluate("() => window.__interviewSocket.stop()")
    last = [f["token"] for f in sockets.sent if f.get("type") in ("hello", "auth")][-1]
    expires = token_expiry(last)
    deadline = time.monotonic() + 30
    while time.time() <= expires + 0.2:
        assert time.monotonic() < deadline
        page.wait_for_timeout(100)
    api_calls.clear()
    page.get_by_role("link", name="History").click()
    expect(page.locator(f'.history-item[data-interview-id="{interview_id}"]')).to_contain_text(
        "Answered: 3 of 5"
    )
    history = [status for path, status in api_calls if path.startswith("/interviews/history")]
    assert history == [401, 200]
    assert api_calls.count(("/auth/refresh", 200)) == 1

    # Back to the interview, and a reload: the session survives (refresh token in
    # sessionStorage) and the screen is rebuilt from a snapshot.
    for reopen in (page.go_back, page.reload):
        reopen()
        expect(page.get_by_text("Question 4 of 5", exact=True)).to_be_visible()
        expect(page.locator(".questions .qcard")).to_have_count(4)
        expect(card(page, second).locator(".feedback")).to_have_text(stored)
        expect(answer_box(page)).to_be_visible()


def token_expiry(token: str) -> float:
    """The `exp` of a JWT, read without checking it (the test only needs the time)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])


def test_time_running_out_submits_the_saved_draft(
    app_server: AppServer, open_browser: OpenBrowser
) -> None:
    address = new_address()
    app_server.verified_user(address)
    page = open_browser().new_page()
    sockets = SocketLog()
    sockets.attach(page)
    login(page, app_server, address)
    start_interview(page, "Intern", "English")
    question_id = current_question_id(page)

    timer = page.get_by_role("timer")
    expect(timer).to_have_text(re.compile(r"^0:0[0-6]$"))
    draft = "A draft that was saved but never sent"
    answer_box(page).fill(draft)
    shown = timer.inner_text()
    expect(timer).not_to_have_text(shown)  # it counts down

    here = card(page, question_id)
    expect(here.get_by_text("Sent automatically when the time ran out.")).to_be_visible()
    expect(here.locator(".answer-text")).to_have_text(draft)
    wait_scored(page, question_id)
    drafts = [f for f in sockets.sent if f["type"] == "draft"]
    assert drafts and drafts[-1] == {"type": "draft", "questionId": question_id, "answer": draft}
    assert not [f for f in sockets.sent if f["type"] == "answer"]
    accepted = [f for f in sockets.of_type("answer.accepted") if f["questionId"] == question_id]
    assert accepted and accepted[0]["auto"] is True
    expect(page.get_by_text("Question 2 of 5", exact=True)).to_be_visible()


def test_phone_width_and_keyboard_only(
    app_server: AppServer, open_browser: OpenBrowser, artifacts: Path
) -> None:
    address = new_address()
    app_server.verified_user(address)
    # A Russian browser gets the Russian interface without touching the toggle.
    browser = open_browser(viewport={"width": 375, "height": 740}, locale="ru-RU")
    page = browser.new_page()
    page.goto(f"{app_server.url}/#/login")
    expect(page.get_by_role("heading", name="Вход")).to_be_visible()

    # Log in with the keyboard only.
    tab_to(page, "input[type=email]")
    page.keyboard.type(address)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Новое собеседование")).to_be_visible()
    expect(page.get_by_role("radio", name="Junior")).to_be_checked()
    tab_to(page, "button.primary")
    page.keyboard.press("Enter")
    expect(page.get_by_text("На связи", exact=True)).to_be_visible()

    # Tab to the answer box, write, and send with the keyboard (Tab + Enter, then Ctrl+Enter).
    tab_to(page, "#answer")
    assert outline_visible(page)
    first = current_question_id(page)
    page.keyboard.type(GOOD_ANSWER)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Отправить ответ"
    page.keyboard.press("Enter")
    wait_scored(page, first)
    expect(page.get_by_text("Вопрос 2 из 5", exact=True)).to_be_visible()
    # The next question's answer box takes the focus by itself.
    expect(page.get_by_role("textbox", name="Ваш ответ")).to_be_focused()
    assert no_horizontal_scroll(page)
    screenshot(page, artifacts / "phone-interview.png")

    second = current_question_id(page)
    page.keyboard.type("Не знаю.")
    page.keyboard.press("Control+Enter")
    wait_scored(page, second)
    assert no_horizontal_scroll(page)

    # Finish early, by keyboard, and read the report at phone width.
    tab_to(page, "button.secondary")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Завершить сейчас?")).to_be_visible()
    page.keyboard.press("Enter")  # "Yes, finish" has the focus
    expect(page.get_by_text("Собеседование завершено.")).to_be_visible()
    tab_to(page, "a.button.primary")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Отчёт о собеседовании")).to_be_visible()
    expect(page.locator(".score-value")).to_be_visible()
    assert no_horizontal_scroll(page)
    screenshot(page, artifacts / "phone-report.png")


def tab_to(page: Page, selector: str, limit: int = 30) -> None:
    """Press Tab until the element matching `selector` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} never got the focus by Tab")


def outline_visible(page: Page) -> bool:
    style: str = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    return style not in ("none", "")


def test_every_interface_text_exists_in_both_languages() -> None:
    def keys(language: str) -> list[str]:
        text = (STATIC / "lang" / f"{language}.js").read_text("utf-8")
        return re.findall(r'^  "([\w.-]+)":', text, flags=re.MULTILINE)

    ru, en = keys("ru"), keys("en")
    assert len(ru) > 100
    assert sorted(ru) == sorted(en)
    assert len(set(ru)) == len(ru)
