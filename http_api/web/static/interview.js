// The live interview screen: questions, countdown, answer box, streaming feedback, scores.

import { questionCard } from "./card.js";
import { alertBox, announce, clearText, field, h, setText } from "./dom.js";
import { errorKey } from "./forms.js";
import { InterviewModel, PHASE } from "./model.js";
import { InterviewSocket } from "./socket.js";

const DRAFT_EVERY_MS = 3000;
const DRAFT_ERRORS = new Set(["not_your_turn", "question_mismatch", "interview_closed"]);
const TICK_MS = 250;

function formatClock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

export function interviewView(ctx, interviewId) {
  const model = new InterviewModel(interviewId);
  const cards = new Map();

  // --- the fixed parts of the screen ---------------------------------------------------------
  const heading = h("h1", { i18n: "interview.title", tabIndex: -1 });
  const conn = h("p", { class: "conn", attrs: { role: "status" } });
  const progress = h("p", { class: "progress" });
  const timer = h("p", {
    class: "timer",
    hidden: true,
    attrs: { role: "timer" },
    i18nAttrs: { "aria-label": "interview.timeLeft" },
  });
  const bar = h("div", { class: "interview-bar" }, progress, timer, conn);
  const list = h("ol", { class: "questions", i18nAttrs: { "aria-label": "interview.questions" } });
  const screenAlert = alertBox();

  const textarea = h("textarea", {
    name: "answer",
    id: "answer",
    rows: 8,
    maxLength: 8000,
    attrs: { autocomplete: "off", spellcheck: "true" },
  });
  const answerField = field({
    label: "interview.answerLabel",
    input: textarea,
    hint: "interview.answerHint",
  });
  const sendButton = h("button", { type: "submit", class: "primary", i18n: "interview.send" });
  const composerNote = h("p", { class: "note", attrs: { role: "status" } });
  const composer = h(
    "form",
    { class: "composer", noValidate: true },
    answerField,
    h("div", { class: "actions" }, sendButton),
    composerNote,
  );

  const finishButton = h("button", {
    type: "button",
    class: "secondary",
    i18n: "interview.finish",
  });
  const finishYes = h("button", { type: "button", class: "danger", i18n: "interview.finishYes" });
  const finishNo = h("button", { type: "button", class: "secondary", i18n: "interview.finishNo" });
  const finishConfirm = h(
    "div",
    { class: "confirm", hidden: true, attrs: { role: "group", "aria-labelledby": "finish-q" } },
    h("p", { id: "finish-q", i18n: "interview.finishConfirm" }),
    h("div", { class: "actions" }, finishYes, finishNo),
  );
  const finishArea = h("div", { class: "finish" }, finishButton, finishConfirm);

  const completionHeading = h("h2", { tabIndex: -1 });
  const completionResult = h("p", { class: "result-line" });
  const completionFeedback = h("p", { class: "summary" });
  const reportLink = h("a", {
    class: "button primary",
    href: `/#/report/${encodeURIComponent(interviewId)}`,
    i18n: "interview.viewReport",
  });
  const completion = h(
    "section",
    { class: "card completion", hidden: true },
    completionHeading,
    completionResult,
    completionFeedback,
    reportLink,
  );

  const el = h(
    "section",
    { class: "interview" },
    heading,
    bar,
    screenAlert,
    list,
    completion,
    finishArea,
  );

  // --- cards ---------------------------------------------------------------------------------
  function card(q) {
    let c = cards.get(q.id);
    if (!c) {
      c = questionCard(q);
      cards.set(q.id, c);
    }
    return c;
  }

  function drawCard(q) {
    card(q).draw(q, q.answer !== null && !q.done && model.currentId === q.id);
  }

  function drawAll() {
    syncList();
    for (const q of model.questions.values()) drawCard(q);
    placeComposer();
    drawPhase();
  }

  // Put the cards in question order, moving only those out of place: moving the card that holds
  // the answer box would take the focus away from someone typing.
  function syncList() {
    for (const [id, c] of [...cards]) {
      if (!model.questions.has(id)) {
        c.root.remove();
        cards.delete(id);
      }
    }
    const ordered = [...model.questions.values()].sort((a, b) => a.index - b.index);
    ordered.forEach((q, i) => {
      const root = card(q).root;
      if (list.children[i] !== root) list.insertBefore(root, list.children[i] || null);
    });
  }

  function placeComposer() {
    const q = model.current;
    const hadFocus = composer.contains(document.activeElement);
    if (model.phase === PHASE.ANSWERING && q) {
      const c = card(q);
      if (composer.dataset.questionId !== q.id) {
        textarea.value = model.drafts.get(q.id) || "";
        composer.dataset.questionId = q.id;
        answerField.showError(null);
      }
      if (composer.parentNode !== c.root) {
        c.root.append(composer);
        if (hadFocus || document.activeElement === document.body || isCardTitle()) {
          textarea.focus();
        }
      }
    } else if (composer.parentNode) {
      composer.remove();
      if (hadFocus && q) card(q).title.focus();
    }
    drawComposer();
  }

  function isCardTitle() {
    return [...cards.values()].some((c) => c.title === document.activeElement);
  }

  function drawComposer() {
    const sending = model.pending !== null;
    textarea.readOnly = sending;
    sendButton.disabled = sending;
    if (!sending) clearText(composerNote);
    else if (socket.status === "live") setText(composerNote, "interview.sending");
    else setText(composerNote, "interview.queued");
  }

  function drawPhase() {
    const open = model.phase === PHASE.ANSWERING || model.phase === PHASE.EVALUATING;
    const q = model.current;
    if (q && model.total)
      setText(progress, "interview.progress", { n: q.index + 1, total: model.total });
    else clearText(progress);
    timer.hidden = model.phase !== PHASE.ANSWERING || model.deadline === null;
    finishArea.hidden = !open;
    finishButton.disabled = model.finishRequested;
    if (model.finishRequested) setText(finishButton, "interview.finishing");
    completion.hidden = open || model.phase === PHASE.LOADING;
    if (model.phase === PHASE.COMPLETED) {
      setText(completionHeading, "interview.completed");
      const r = model.result;
      if (r && r.score !== null && r.score !== undefined) {
        setText(completionResult, "interview.result", { score: r.score });
        completionResult.dataset.passed = String(r.passed);
      }
      completionFeedback.textContent = (r && r.feedback) || "";
      reportLink.hidden = false;
    } else if (model.phase === PHASE.ABANDONED) {
      setText(completionHeading, "interview.abandoned");
      clearText(completionResult);
      completionFeedback.textContent = "";
      reportLink.hidden = true;
    }
    tick();
  }

  // --- the countdown -------------------------------------------------------------------------
  let warnedMinute = false;
  let warnedEnd = false;
  function tick() {
    if (model.phase !== PHASE.ANSWERING || model.deadline === null) return;
    let left = model.deadline - Date.now();
    // A client clock behind the server's would show more time than the limit allows.
    if (model.timeLimitSec) left = Math.min(left, model.timeLimitSec * 1000);
    timer.textContent = formatClock(left);
    timer.classList.toggle("urgent", left <= 60000);
    if (left <= 60000 && left > 55000 && !warnedMinute) {
      warnedMinute = true;
      announce("interview.minuteLeft");
    }
    if (left <= 2000 && !warnedEnd) {
      warnedEnd = true;
      saveDraft(); // what the server submits when the deadline passes
    }
    if (left <= 0) setText(composerNote, "interview.timeUp");
  }

  function saveDraft() {
    const q = model.current;
    if (!q || model.phase !== PHASE.ANSWERING || model.pending) return;
    if (composer.dataset.questionId !== q.id) return;
    const text = textarea.value;
    if ((model.drafts.get(q.id) || "") === text) return;
    if (socket.send({ type: "draft", questionId: q.id, answer: text }))
      model.drafts.set(q.id, text);
  }

  // --- frames from the socket ----------------------------------------------------------------
  function onFrame(frame) {
    const answering = model.pending !== null || model.finishRequested;
    const change = model.apply(frame);
    if (!change) return;
    switch (change.kind) {
      case "question":
        warnedMinute = false;
        warnedEnd = false;
        syncList();
        drawCard(change.question);
        placeComposer();
        drawPhase();
        announce("interview.newQuestion", { n: change.question.index + 1, total: model.total });
        break;
      case "accepted":
      case "answer":
        drawCard(change.question);
        placeComposer();
        drawPhase();
        break;
      case "feedback":
      case "scored":
        drawCard(change.question);
        if (change.kind === "scored") drawPhase();
        break;
      case "completed":
      case "abandoned":
        socket.stop();
        drawAll();
        if (!completion.hidden) completionHeading.focus();
        break;
      case "snapshot":
        drawAll();
        break;
      case "error":
        // Errors while nothing is pending answer a draft that crossed the deadline: not news.
        if (change.code === "rate_limited" || (!answering && DRAFT_ERRORS.has(change.code))) break;
        screenAlert.show(errorKey({ code: change.code }));
        drawComposer();
        break;
      case "fatal":
        screenAlert.show(
          change.reason === 4404 ? "error.interview_not_found" : "error.socket_fatal",
        );
        finishArea.hidden = true;
        composer.remove();
        break;
      default:
        break;
    }
  }

  function onStatus(status) {
    const key = {
      connecting: "conn.connecting",
      live: "conn.live",
      reconnecting: "conn.reconnecting",
      closed: "conn.closed",
      fatal: "conn.closed",
    }[status];
    setText(conn, key);
    conn.dataset.state = status;
    conn.hidden = status === "closed"; // the interview is over; nothing to report
    drawComposer();
  }

  function onSynced() {
    screenAlert.hide();
    const frame = model.pendingFrame();
    if (frame) socket.send(frame);
    if (model.finishRequested && model.phase !== PHASE.COMPLETED) socket.send({ type: "complete" });
    drawComposer();
  }

  const socket = new InterviewSocket(interviewId, {
    onFrame,
    onStatus,
    onSynced,
    onAuthLost: () => ctx.sessionEnded(),
  });

  // --- user actions --------------------------------------------------------------------------
  function submitAnswer() {
    const text = textarea.value.trim();
    if (!text) {
      answerField.showError("interview.emptyAnswer");
      textarea.focus();
      return;
    }
    answerField.showError(null);
    screenAlert.hide();
    const frame = model.submit(textarea.value);
    if (frame) socket.send(frame);
    drawComposer();
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitAnswer();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submitAnswer();
    }
  });
  textarea.addEventListener("input", () => answerField.showError(null));

  finishButton.addEventListener("click", () => {
    finishConfirm.hidden = false;
    finishButton.hidden = true;
    finishYes.focus();
  });
  finishNo.addEventListener("click", () => {
    finishConfirm.hidden = true;
    finishButton.hidden = false;
    finishButton.focus();
  });
  finishYes.addEventListener("click", () => {
    finishConfirm.hidden = true;
    finishButton.hidden = false;
    model.finishRequested = true;
    socket.send({ type: "complete" });
    drawPhase();
    finishButton.focus();
  });

  const draftTimer = setInterval(saveDraft, DRAFT_EVERY_MS);
  const tickTimer = setInterval(tick, TICK_MS);
  onStatus("connecting");
  drawAll();
  socket.start();
  // Test hook (also handy in devtools): drop() simulates a network failure.
  window.__interviewSocket = socket;

  return {
    el,
    focus: heading,
    destroy() {
      clearInterval(draftTimer);
      clearInterval(tickTimer);
      socket.stop();
      if (window.__interviewSocket === socket) delete window.__interviewSocket;
    },
  };
}
