// One question of the live interview: its text, the answer, the feedback as it streams, scores.

import { clearText, h, scoreList, setText } from "../dom.js";

/** A card for question `q`; `draw(q, evaluatingNow)` brings it up to date in place. */
export function questionCard(q) {
  const title = h("h2", { class: "qtitle", tabIndex: -1 });
  const text = h("p", { class: "qtext" });
  const tags = h("p", { class: "tags" });
  const answerText = h("p", { class: "answer-text" });
  const autoNote = h("p", { class: "note", hidden: true, i18n: "interview.auto" });
  const answerBlock = h(
    "div",
    { class: "answer-block", hidden: true },
    h("h3", { i18n: "interview.yourAnswer" }),
    answerText,
    autoNote,
  );
  const evaluating = h("p", {
    class: "note evaluating",
    hidden: true,
    i18n: "interview.evaluating",
  });
  // A polite live region, busy while the text streams: screen readers read it once it settles
  // instead of every few words.
  const feedback = h("div", {
    class: "feedback",
    attrs: { "aria-live": "polite", "aria-busy": "false" },
  });
  const score = h("p", { class: "score", hidden: true });
  const scoresSlot = h("div");
  const feedbackBlock = h(
    "div",
    { class: "feedback-block", hidden: true },
    h("h3", { i18n: "interview.feedback" }),
    evaluating,
    feedback,
    score,
    scoresSlot,
  );
  const root = h(
    "li",
    { class: "card qcard", dataset: { questionId: q.id } },
    title,
    text,
    tags,
    answerBlock,
    feedbackBlock,
  );

  function draw(current, evaluatingNow) {
    setText(title, "report.question", { n: current.index + 1 });
    text.textContent = current.text;
    tags.textContent = current.tags.map((tag) => `#${tag}`).join(" ");
    const answered = current.answer !== null;
    answerBlock.hidden = !answered;
    if (answered && current.answer) {
      clearText(answerText);
      answerText.textContent = current.answer;
    } else if (answered) {
      setText(answerText, "interview.noAnswer");
    }
    autoNote.hidden = !current.auto;
    feedbackBlock.hidden = !(current.done || current.feedback || evaluatingNow);
    evaluating.hidden = !(evaluatingNow && !current.feedback);
    if (feedback.textContent !== current.feedback) feedback.textContent = current.feedback;
    feedback.setAttribute("aria-busy", String(evaluatingNow));
    score.hidden = !current.done;
    if (current.done) {
      setText(score, "interview.score", { score: current.score });
      scoresSlot.replaceChildren(current.scores ? scoreList(current.scores) : "");
    } else {
      scoresSlot.replaceChildren();
    }
  }

  return { root, title, draw };
}
