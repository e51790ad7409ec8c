// The live interview screen: the socket's frames go into the model, and the components the
// change touches are redrawn. The components live in ./interview/.

import { alertBox, announce, h } from "./dom.js";
import { errorKey } from "./forms.js";
import { completionPanel } from "./interview/completion.js";
import { answerComposer } from "./interview/composer.js";
import { countdown } from "./interview/countdown.js";
import { finishControls } from "./interview/finish.js";
import { questionList } from "./interview/question-list.js";
import { statusBar } from "./interview/status-bar.js";
import { InterviewModel, PHASE } from "./model.js";
import { InterviewSocket } from "./socket.js";

const DRAFT_EVERY_MS = 3000;
const DRAFT_ERRORS = new Set(["not_your_turn", "question_mismatch", "interview_closed"]);
const TICK_MS = 250;

export function interviewView(ctx, interviewId) {
  const model = new InterviewModel(interviewId);
  const socket = new InterviewSocket(interviewId, {
    onFrame,
    onStatus,
    onSynced,
    onAuthLost: () => ctx.sessionEnded(),
  });
  const connection = {
    send: (frame) => socket.send(frame),
    live: () => socket.status === "live",
  };

  const heading = h("h1", { i18n: "interview.title", tabIndex: -1 });
  const screenAlert = alertBox();
  const list = questionList(model);
  const composer = answerComposer(model, list, connection, { onSubmit: () => screenAlert.hide() });
  const clock = countdown(model, {
    // What the server submits when the deadline passes.
    onAlmostUp: () => composer.saveDraft(),
    onUp: () => composer.showTimeUp(),
  });
  const bar = statusBar(model, clock.el);
  const completion = completionPanel(model, interviewId);
  const finish = finishControls(model, {
    onConfirm() {
      model.finishRequested = true;
      socket.send({ type: "complete" });
      drawPhase();
    },
  });
  const el = h(
    "section",
    { class: "interview" },
    heading,
    bar.el,
    screenAlert,
    list.el,
    completion.el,
    finish.el,
  );

  // --- drawing -------------------------------------------------------------------------------
  function drawPhase() {
    bar.drawProgress();
    finish.draw();
    completion.draw();
    clock.draw();
  }

  function drawAll() {
    list.drawAll();
    composer.place();
    drawPhase();
  }

  // --- the socket ----------------------------------------------------------------------------
  function onFrame(frame) {
    const answering = model.pending !== null || model.finishRequested;
    const change = model.apply(frame);
    if (!change) return;
    switch (change.kind) {
      case "question":
        clock.reset();
        list.sync();
        list.draw(change.question);
        composer.place();
        drawPhase();
        announce("interview.newQuestion", { n: change.question.index + 1, total: model.total });
        break;
      case "accepted":
      case "answer":
        list.draw(change.question);
        composer.place();
        drawPhase();
        break;
      case "feedback":
      case "scored":
        list.draw(change.question);
        if (change.kind === "scored") drawPhase();
        break;
      case "completed":
      case "abandoned":
        socket.stop();
        drawAll();
        completion.focus();
        break;
      case "snapshot":
        drawAll();
        break;
      case "error":
        // Errors while nothing is pending answer a draft that crossed the deadline: not news.
        if (change.code === "rate_limited" || (!answering && DRAFT_ERRORS.has(change.code))) break;
        screenAlert.show(errorKey({ code: change.code }));
        composer.draw();
        break;
      case "fatal":
        screenAlert.show(
          change.reason === 4404 ? "error.interview_not_found" : "error.socket_fatal",
        );
        finish.hide();
        composer.remove();
        break;
      default:
        break;
    }
  }

  function onStatus(status) {
    bar.drawConnection(status);
    composer.draw();
  }

  function onSynced() {
    screenAlert.hide();
    const frame = model.pendingFrame();
    if (frame) socket.send(frame);
    if (model.finishRequested && model.phase !== PHASE.COMPLETED) socket.send({ type: "complete" });
    composer.draw();
  }

  const draftTimer = setInterval(() => composer.saveDraft(), DRAFT_EVERY_MS);
  const tickTimer = setInterval(() => clock.tick(), TICK_MS);
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
