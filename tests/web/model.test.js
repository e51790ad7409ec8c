// The page's interview model, fed the protocol's recorded example frames (protocol/v1/examples):
// `node --test tests/web/`.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { InterviewModel, PHASE } from "../../http_api/web/static/model.js";

const EXAMPLES = new URL("../../protocol/v1/examples/", import.meta.url);

/** A recorded server frame, with `changes` laid over it. */
function frame(name, changes = {}) {
  const recorded = JSON.parse(readFileSync(new URL(`server.${name}.json`, EXAMPLES), "utf8"));
  return { ...recorded, ...changes };
}

const QUESTION = frame("question");
const Q1 = QUESTION.questionId;

function asked() {
  const model = new InterviewModel("iv-1");
  model.apply(QUESTION);
  return model;
}

/** A model whose answer to the first question was sent and accepted. */
function evaluating() {
  const model = asked();
  const sent = model.submit("my answer");
  model.apply(frame("answer.accepted", { clientMsgId: sent.clientMsgId }));
  return model;
}

describe("questions", () => {
  test("a new model waits for the first frame", () => {
    const model = new InterviewModel("iv-1");
    assert.equal(model.phase, PHASE.LOADING);
    assert.equal(model.current, null);
    assert.equal(model.submit("too early"), null);
  });

  test("a question opens the answering phase with its deadline", () => {
    const model = new InterviewModel("iv-1");
    const change = model.apply(QUESTION);
    assert.equal(change.kind, "question");
    assert.equal(change.question.id, Q1);
    assert.equal(model.phase, PHASE.ANSWERING);
    assert.equal(model.current.text, QUESTION.text);
    assert.deepEqual(model.current.tags, QUESTION.tags);
    assert.equal(model.total, QUESTION.total);
    assert.equal(model.deadline, Date.parse(QUESTION.deadline));
    assert.equal(model.timeLimitSec, QUESTION.timeLimitSec);
  });

  test("frames of unknown types change nothing", () => {
    const model = asked();
    assert.equal(model.apply(frame("pong")), null);
    assert.equal(model.apply({ type: "something.new", seq: 2 }), null);
    assert.equal(model.phase, PHASE.ANSWERING);
  });
});

describe("answers", () => {
  test("submit gives the answer frame and keeps it pending for a resend", () => {
    const model = asked();
    const sent = model.submit("Хеш-таблица");
    assert.equal(sent.type, "answer");
    assert.equal(sent.questionId, Q1);
    assert.equal(sent.answer, "Хеш-таблица");
    assert.match(sent.clientMsgId, /^[0-9a-f-]{32,36}$/);
    // After a reconnect the same frame (same clientMsgId) goes out again.
    assert.deepEqual(model.pendingFrame(), sent);
  });

  test("every answer gets its own clientMsgId", () => {
    const first = asked().submit("a").clientMsgId;
    const second = asked().submit("a").clientMsgId;
    assert.notEqual(first, second);
  });

  test("the acceptance of our answer records it and starts the evaluation", () => {
    const model = asked();
    const sent = model.submit("my answer");
    const change = model.apply(frame("answer.accepted", { clientMsgId: sent.clientMsgId }));
    assert.equal(change.kind, "accepted");
    assert.equal(model.current.answer, "my answer");
    assert.equal(model.pending, null);
    assert.equal(model.pendingFrame(), null);
    assert.equal(model.phase, PHASE.EVALUATING);
    assert.equal(model.deadline, null);
    assert.equal(model.submit("again"), null);
  });

  test("an answer submitted at the deadline shows the last draft sent", () => {
    const model = asked();
    model.drafts.set(Q1, "half an answer");
    const change = model.apply(frame("answer.accepted", { clientMsgId: null, auto: true }));
    assert.equal(change.kind, "accepted");
    assert.equal(model.current.answer, "half an answer");
    assert.equal(model.current.auto, true);
    assert.equal(model.phase, PHASE.EVALUATING);
  });

  test("an auto-submitted answer with no draft is empty", () => {
    const model = asked();
    model.apply(frame("answer.accepted", { clientMsgId: null, auto: true }));
    assert.equal(model.current.answer, "");
  });

  test("a duplicate acknowledgement settles the pending answer without a phase change", () => {
    const model = asked();
    const sent = model.submit("resent");
    const change = model.apply(
      frame("answer.accepted.duplicate", { clientMsgId: sent.clientMsgId }),
    );
    assert.equal(change.kind, "answer");
    assert.equal(model.pending, null);
    assert.equal(model.current.answer, "resent");
    assert.equal(model.phase, PHASE.ANSWERING);
  });

  test("an acceptance for a question never seen is ignored", () => {
    const model = asked();
    const change = model.apply(frame("answer.accepted", { questionId: "0".repeat(24) }));
    assert.equal(change, null);
    assert.equal(model.phase, PHASE.ANSWERING);
  });

  test("an error that refuses the answer drops it; others keep it for a resend", () => {
    const model = asked();
    model.submit("first");
    const limited = model.apply(frame("error", { code: "rate_limited", message: "slow down" }));
    assert.deepEqual(limited, { kind: "error", code: "rate_limited", message: "slow down" });
    assert.notEqual(model.pending, null);
    for (const code of ["already_answered", "question_mismatch", "interview_closed"]) {
      model.submit("again");
      model.apply(frame("error", { code }));
      assert.equal(model.pending, null, code);
    }
  });
});

describe("feedback", () => {
  test("deltas add up and done replaces them with the final text", () => {
    const model = evaluating();
    let change = model.apply(frame("feedback.delta", { delta: "Ответ " }));
    assert.equal(change.kind, "feedback");
    model.apply(frame("feedback.delta", { delta: "частично" }));
    assert.equal(model.current.feedback, "Ответ частично");
    assert.equal(model.current.streaming, true);

    const done = frame("feedback.done");
    change = model.apply(done);
    assert.equal(change.kind, "scored");
    assert.equal(model.current.feedback, done.feedback);
    assert.equal(model.current.score, done.score);
    assert.deepEqual(model.current.scores, done.scores);
    assert.equal(model.current.done, true);
    assert.equal(model.current.streaming, false);
  });

  test("nothing is added to feedback that is done", () => {
    const model = evaluating();
    model.apply(frame("feedback.done"));
    assert.equal(model.apply(frame("feedback.delta", { delta: "late" })), null);
    assert.equal(model.apply(frame("feedback.reset")), null);
    assert.equal(model.current.feedback, frame("feedback.done").feedback);
  });

  test("a reset clears the streamed text; the restarted stream follows", () => {
    const model = evaluating();
    model.apply(frame("feedback.delta", { delta: "first try" }));
    const change = model.apply(frame("feedback.reset"));
    assert.equal(change.kind, "feedback");
    assert.equal(model.current.feedback, "");
    model.apply(frame("feedback.delta", { delta: "second try" }));
    assert.equal(model.current.feedback, "second try");
  });

  test("deltas for a question never seen are ignored", () => {
    const model = evaluating();
    assert.equal(model.apply(frame("feedback.delta", { questionId: "f".repeat(24) })), null);
  });
});

describe("the end", () => {
  test("completion carries the result and drops anything pending", () => {
    const model = asked();
    model.submit("never accepted");
    const completed = frame("interview.completed");
    assert.deepEqual(model.apply(completed), { kind: "completed" });
    assert.equal(model.phase, PHASE.COMPLETED);
    assert.equal(model.pending, null);
    assert.equal(model.deadline, null);
    assert.deepEqual(model.result, {
      score: completed.score,
      passed: completed.passed,
      feedback: completed.feedback,
      strongTopics: completed.strongTopics,
      weakTopics: completed.weakTopics,
    });
  });

  test("an abandoned interview closes too", () => {
    const model = asked();
    assert.deepEqual(model.apply(frame("interview.abandoned")), { kind: "abandoned" });
    assert.equal(model.phase, PHASE.ABANDONED);
    assert.equal(model.deadline, null);
  });

  test("a fatal socket is reported with its reason", () => {
    const model = asked();
    assert.deepEqual(model.apply({ type: "socket.fatal", reason: 4404 }), {
      kind: "fatal",
      reason: 4404,
    });
  });
});

describe("snapshots", () => {
  const SNAPSHOT = frame("snapshot");
  const [SCORED, OPEN] = SNAPSHOT.questions;

  test("a snapshot rebuilds every question and the current one's deadline", () => {
    const model = new InterviewModel("iv-1");
    assert.deepEqual(model.apply(SNAPSHOT), { kind: "snapshot" });
    assert.deepEqual([...model.questions.keys()], [SCORED.questionId, OPEN.questionId]);
    const scored = model.questions.get(SCORED.questionId);
    assert.equal(scored.done, true);
    assert.equal(scored.answer, SCORED.answer);
    assert.equal(scored.feedback, SCORED.feedback);
    assert.equal(scored.score, SCORED.score);
    assert.equal(model.currentId, OPEN.questionId);
    assert.equal(model.phase, PHASE.ANSWERING);
    assert.equal(model.deadline, Date.parse(SNAPSHOT.deadline));
    assert.equal(model.total, SNAPSHOT.total);
  });

  test("questions the snapshot does not hold are forgotten", () => {
    const model = new InterviewModel("iv-1");
    model.apply(frame("question", { questionId: "a".repeat(24) }));
    model.apply(SNAPSHOT);
    assert.equal(model.questions.has("a".repeat(24)), false);
  });

  test("a snapshot taken mid-evaluation hides the rest of that stream until a reset", () => {
    const answered = { ...OPEN, answer: "my answer" };
    const model = new InterviewModel("iv-1");
    model.apply(frame("snapshot", { questions: [SCORED, answered], deadline: null }));
    assert.equal(model.phase, PHASE.EVALUATING);
    const current = model.current;
    assert.equal(current.feedbackGap, true);
    const delta = { questionId: OPEN.questionId, delta: "…the middle of a sentence" };
    assert.equal(model.apply(frame("feedback.delta", delta)), null);
    assert.equal(current.feedback, "");
    model.apply(frame("feedback.reset", { questionId: OPEN.questionId }));
    model.apply(frame("feedback.delta", { ...delta, delta: "From the start" }));
    assert.equal(current.feedback, "From the start");
  });

  test("a completed snapshot carries the result", () => {
    const model = new InterviewModel("iv-1");
    model.apply(
      frame("snapshot", { status: "completed", score: 80, passed: true, feedback: "Итог" }),
    );
    assert.equal(model.phase, PHASE.COMPLETED);
    assert.deepEqual(model.result, {
      score: 80,
      passed: true,
      feedback: "Итог",
      strongTopics: [],
      weakTopics: [],
    });
  });

  test("an abandoned snapshot closes the interview", () => {
    const model = new InterviewModel("iv-1");
    model.apply(frame("snapshot", { status: "abandoned" }));
    assert.equal(model.phase, PHASE.ABANDONED);
  });

  test("a pending answer survives a snapshot only while its question is still open", () => {
    const model = new InterviewModel("iv-1");
    model.apply(SNAPSHOT);
    const sent = model.submit("typed while offline");
    model.apply(SNAPSHOT);
    assert.deepEqual(model.pendingFrame(), sent);

    const answered = { ...OPEN, answer: "accepted meanwhile" };
    model.apply(frame("snapshot", { questions: [SCORED, answered] }));
    assert.equal(model.pending, null);
  });
});
