// The end of the interview: the result, the summary and the link to the report.

import { clearText, h, setText } from "../dom.js";
import { PHASE } from "../model.js";

export function completionPanel(model, interviewId) {
  const heading = h("h2", { tabIndex: -1 });
  const result = h("p", { class: "result-line" });
  const summary = h("p", { class: "summary" });
  const reportLink = h("a", {
    class: "button primary",
    href: `/#/report/${encodeURIComponent(interviewId)}`,
    i18n: "interview.viewReport",
  });
  const el = h(
    "section",
    { class: "card completion", hidden: true },
    heading,
    result,
    summary,
    reportLink,
  );

  function draw() {
    const open = model.phase === PHASE.ANSWERING || model.phase === PHASE.EVALUATING;
    el.hidden = open || model.phase === PHASE.LOADING;
    if (model.phase === PHASE.COMPLETED) {
      setText(heading, "interview.completed");
      const r = model.result;
      if (r && r.score !== null && r.score !== undefined) {
        setText(result, "interview.result", { score: r.score });
        result.dataset.passed = String(r.passed);
      }
      summary.textContent = (r && r.feedback) || "";
      reportLink.hidden = false;
    } else if (model.phase === PHASE.ABANDONED) {
      setText(heading, "interview.abandoned");
      clearText(result);
      summary.textContent = "";
      reportLink.hidden = true;
    }
  }

  /** Move the focus to the panel's heading if the panel is shown. */
  function focus() {
    if (!el.hidden) heading.focus();
  }

  return { el, draw, focus };
}
