// The interview as the page knows it, built only from socket frames. No DOM here: the view asks
// what changed and redraws that part.

export const PHASE = Object.freeze({
  LOADING: "loading",
  ANSWERING: "answering",
  EVALUATING: "evaluating",
  COMPLETED: "completed",
  ABANDONED: "abandoned",
});

// Errors that mean a pending answer will never be accepted as sent.
const ANSWER_REFUSED = new Set(["already_answered", "question_mismatch", "interview_closed"]);

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class InterviewModel {
  constructor(interviewId) {
    this.interviewId = interviewId;
    this.phase = PHASE.LOADING;
    this.total = 0;
    this.questions = new Map(); // questionId -> question, in the order they were asked
    this.currentId = null;
    this.deadline = null; // ms since the epoch
    this.timeLimitSec = null;
    this.result = null;
    this.pending = null; // {questionId, answer, clientMsgId} until the server accepts it
    this.drafts = new Map(); // questionId -> the draft text last sent
    this.finishRequested = false;
  }

  get current() {
    return this.currentId ? this.questions.get(this.currentId) : null;
  }

  _upsert(questionId, fields) {
    let q = this.questions.get(questionId);
    if (!q) {
      q = {
        id: questionId,
        index: 0,
        text: "",
        tags: [],
        answer: null,
        auto: false,
        feedback: "",
        // True after a snapshot taken mid-stream: the start of the text is unknown, so the rest
        // of that stream is not shown (a fragment would read as nonsense) until a reset or done.
        feedbackGap: false,
        streaming: false,
        done: false,
        score: null,
        scores: null,
      };
      this.questions.set(questionId, q);
    }
    Object.assign(q, fields);
    return q;
  }

  /** Record an answer to send; returns the frame (resent as is after a reconnect). */
  submit(answer) {
    const q = this.current;
    if (!q || this.phase !== PHASE.ANSWERING) return null;
    this.pending = { questionId: q.id, answer, clientMsgId: newId() };
    return this.pendingFrame();
  }

  pendingFrame() {
    if (!this.pending) return null;
    return { type: "answer", ...this.pending };
  }

  /** Apply one frame; returns what changed: {kind, question?} or null when nothing did. */
  apply(frame) {
    switch (frame.type) {
      case "question":
        return this._question(frame);
      case "answer.accepted":
        return this._accepted(frame);
      case "feedback.delta": {
        const q = this.questions.get(frame.questionId);
        if (!q || q.done || q.feedbackGap) return null;
        q.feedback += frame.delta;
        q.streaming = true;
        return { kind: "feedback", question: q };
      }
      case "feedback.reset": {
        const q = this.questions.get(frame.questionId);
        if (!q || q.done) return null;
        q.feedback = "";
        q.feedbackGap = false;
        return { kind: "feedback", question: q };
      }
      case "feedback.done": {
        // The final text replaces whatever was streamed, so it is right even if deltas were not.
        const q = this._upsert(frame.questionId, {
          feedback: frame.feedback,
          score: frame.score,
          scores: frame.scores,
          done: true,
          feedbackGap: false,
          streaming: false,
        });
        return { kind: "scored", question: q };
      }
      case "interview.completed":
        this.phase = PHASE.COMPLETED;
        this.deadline = null;
        this.pending = null;
        this.result = {
          score: frame.score,
          passed: frame.passed,
          feedback: frame.feedback,
          strongTopics: frame.strongTopics || [],
          weakTopics: frame.weakTopics || [],
        };
        return { kind: "completed" };
      case "interview.abandoned":
        this.phase = PHASE.ABANDONED;
        this.deadline = null;
        this.pending = null;
        return { kind: "abandoned" };
      case "snapshot":
        return this._snapshot(frame);
      case "error":
        if (this.pending && ANSWER_REFUSED.has(frame.code)) this.pending = null;
        return { kind: "error", code: frame.code, message: frame.message };
      case "socket.fatal":
        return { kind: "fatal", reason: frame.reason };
      default:
        return null;
    }
  }

  _question(frame) {
    const q = this._upsert(frame.questionId, {
      index: frame.index,
      text: frame.text,
      tags: frame.tags || [],
    });
    this.total = frame.total;
    this.currentId = q.id;
    this.deadline = Date.parse(frame.deadline);
    this.timeLimitSec = frame.timeLimitSec;
    this.phase = PHASE.ANSWERING;
    return { kind: "question", question: q };
  }

  _accepted(frame) {
    const q = this.questions.get(frame.questionId);
    if (!q) return null;
    const mine = this.pending && this.pending.clientMsgId === frame.clientMsgId;
    if (q.answer === null) {
      if (mine) q.answer = this.pending.answer;
      else if (frame.auto) q.answer = this.drafts.get(q.id) || "";
    }
    if (frame.auto) q.auto = true;
    if (mine || (this.pending && this.pending.questionId === q.id)) this.pending = null;
    if (frame.duplicate) return { kind: "answer", question: q };
    if (this.currentId === q.id && this.phase === PHASE.ANSWERING) {
      this.phase = PHASE.EVALUATING;
      this.deadline = null;
    }
    return { kind: "accepted", question: q };
  }

  _snapshot(frame) {
    const seen = new Set();
    for (const sq of frame.questions) {
      seen.add(sq.questionId);
      const done = sq.score !== null && sq.score !== undefined;
      this._upsert(sq.questionId, {
        index: sq.index,
        text: sq.text,
        tags: sq.tags || [],
        answer: sq.answer,
        done,
        streaming: false,
        // Feedback streamed before the snapshot is not in it.
        feedback: done ? sq.feedback || "" : "",
        feedbackGap: !done && sq.answer !== null,
        score: done ? sq.score : null,
        scores: done ? sq.scores : null,
      });
    }
    for (const id of [...this.questions.keys()]) if (!seen.has(id)) this.questions.delete(id);
    this.total = frame.total;
    this.currentId = frame.currentQuestionId;
    this.deadline = null;
    if (frame.status === "completed") {
      this.phase = PHASE.COMPLETED;
      this.result = {
        score: frame.score,
        passed: frame.passed,
        feedback: frame.feedback,
        strongTopics: [],
        weakTopics: [],
      };
    } else if (frame.status === "abandoned") {
      this.phase = PHASE.ABANDONED;
    } else {
      const current = this.current;
      if (current && current.answer === null) {
        this.phase = PHASE.ANSWERING;
        this.deadline = frame.deadline ? Date.parse(frame.deadline) : null;
      } else {
        this.phase = PHASE.EVALUATING;
      }
    }
    if (this.pending) {
      const target = this.questions.get(this.pending.questionId);
      if (!target || target.answer !== null || this.phase !== PHASE.ANSWERING) this.pending = null;
    }
    return { kind: "snapshot" };
  }
}
