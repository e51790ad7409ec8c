// The final report of an interview, its public link, and the public (shared) view of it.

import { api } from "./api.js";
import { alertBox, h, scoreList, setText } from "./dom.js";
import { errorKey } from "./forms.js";

function topics(titleKey, items, cls) {
  return h(
    "div",
    { class: `topics ${cls}` },
    h("h3", { i18n: titleKey }),
    items.length
      ? h(
          "ul",
          { class: "chips" },
          items.map((topic) => h("li", { class: "chip", text: topic })),
        )
      : h("p", { class: "muted", i18n: "report.none" }),
  );
}

function questionItem(q) {
  const evaluation = q.aiEvaluation;
  const header = [
    h("h3", { class: "qtitle", i18n: "report.question", args: { n: q.index + 1 } }),
    h("p", { class: "qtext", text: q.question }),
    q.tags.length ? h("p", { class: "tags", text: q.tags.map((t) => `#${t}`).join(" ") }) : null,
  ];
  if (evaluation && evaluation.source === "skipped") {
    // Never reached: the interview was finished before this question.
    return h(
      "li",
      { class: "card qcard", dataset: { questionId: q.questionId } },
      header,
      h("p", { class: "note", i18n: "report.skipped" }),
    );
  }
  return h(
    "li",
    { class: "card qcard", dataset: { questionId: q.questionId } },
    header,
    h(
      "div",
      { class: "answer-block" },
      h("h4", { i18n: "interview.yourAnswer" }),
      q.userAnswer
        ? h("p", { class: "answer-text", text: q.userAnswer })
        : h("p", { class: "answer-text muted", i18n: "interview.noAnswer" }),
      q.auto ? h("p", { class: "note", i18n: "interview.auto" }) : null,
    ),
    evaluation
      ? h(
          "div",
          { class: "feedback-block" },
          h("h4", { i18n: "interview.feedback" }),
          evaluation.feedback ? h("div", { class: "feedback", text: evaluation.feedback }) : null,
          h("p", { class: "score", i18n: "interview.score", args: { score: evaluation.score } }),
          scoreList(evaluation.scores),
        )
      : null,
  );
}

/** The report body shared by the owner's view and the public one. */
function reportBody(report) {
  const finished = report.overallScore !== null && report.overallScore !== undefined;
  const summary = h(
    "section",
    { class: "card summary-card", attrs: { "aria-labelledby": "report-score-label" } },
    h("p", {
      class: "meta",
      i18n: "report.meta",
      dataset: { i18nLevel: report.level, i18nDate: report.endTime || report.startTime },
    }),
  );
  if (finished) {
    summary.append(
      h(
        "div",
        { class: "score-line" },
        h(
          "p",
          { class: "big-score" },
          h("span", { class: "score-value", text: String(report.overallScore) }),
          h("span", { class: "of", text: "/100" }),
        ),
        h(
          "div",
          {},
          h("p", { id: "report-score-label", class: "score-label", i18n: "report.score" }),
          h("span", {
            class: `badge ${report.passed ? "passed" : "failed"}`,
            i18n: report.passed ? "report.passed" : "report.failed",
          }),
        ),
      ),
      report.percentile !== null && report.percentile !== undefined
        ? h("p", { class: "percentile", i18n: "report.percentile", args: { p: report.percentile } })
        : null,
      report.feedback
        ? h(
            "div",
            { class: "overall" },
            h("h2", { i18n: "report.summary" }),
            h("p", { class: "summary", text: report.feedback }),
          )
        : null,
      h(
        "div",
        { class: "topic-grid" },
        topics("report.strong", report.strongTopics, "strong"),
        topics("report.weak", report.weakTopics, "weak"),
      ),
    );
  } else {
    summary.append(
      h("p", { id: "report-score-label", class: "alert alert-info", i18n: "report.unfinished" }),
    );
  }
  const answered = report.questions.filter((q) => q.userAnswer !== null || q.aiEvaluation);
  return [
    summary,
    h(
      "section",
      { class: "report-questions" },
      h("h2", { i18n: "report.questions" }),
      h("ol", { class: "questions" }, answered.map(questionItem)),
    ),
  ];
}

function shareBox(report) {
  const alert = alertBox();
  const status = h("p", { class: "note", attrs: { role: "status" } });
  const exists = h("p", { i18n: "report.shareExists", hidden: !report.shared });
  const url = h("input", { type: "text", id: "share-url", readOnly: true, class: "share-url" });
  const urlRow = h(
    "div",
    { class: "field", hidden: true },
    h("label", { htmlFor: "share-url", i18n: "report.shareUrl" }),
    h(
      "div",
      { class: "inline" },
      url,
      h("button", {
        type: "button",
        class: "secondary",
        i18n: "report.shareCopy",
        on: { click: copy },
      }),
    ),
  );
  const create = h("button", {
    type: "button",
    class: "primary",
    i18n: report.shared ? "report.shareRecreate" : "report.shareCreate",
  });
  const revoke = h("button", {
    type: "button",
    class: "danger",
    i18n: "report.shareRevoke",
    hidden: !report.shared,
  });

  async function copy() {
    url.select();
    try {
      await navigator.clipboard.writeText(url.value);
    } catch {
      document.execCommand("copy");
    }
    setText(status, "report.shareCopied");
  }

  create.addEventListener("click", async () => {
    alert.hide();
    create.disabled = true;
    try {
      const shared = await api.share(report.interviewId);
      url.value = shared.shareUrl;
      urlRow.hidden = false;
      exists.hidden = true;
      revoke.hidden = false;
      setText(create, "report.shareRecreate");
      status.textContent = "";
      url.focus();
      url.select();
    } catch (error) {
      alert.show(errorKey(error));
    } finally {
      create.disabled = false;
    }
  });
  revoke.addEventListener("click", async () => {
    alert.hide();
    revoke.disabled = true;
    try {
      await api.unshare(report.interviewId);
      url.value = "";
      urlRow.hidden = true;
      exists.hidden = true;
      revoke.hidden = true;
      setText(create, "report.shareCreate");
      setText(status, "report.shareRevoked");
      create.focus();
    } catch (error) {
      alert.show(errorKey(error));
    } finally {
      revoke.disabled = false;
    }
  });

  return h(
    "section",
    { class: "card share", attrs: { "aria-labelledby": "share-title" } },
    h("h2", { id: "share-title", i18n: "report.share" }),
    h("p", { class: "muted", i18n: "report.shareText" }),
    alert,
    exists,
    urlRow,
    h("div", { class: "actions" }, create, revoke),
    status,
  );
}

export function reportView(ctx, interviewId) {
  const heading = h("h1", { i18n: "report.title", tabIndex: -1 });
  const alert = alertBox();
  const body = h(
    "div",
    { class: "report-body", attrs: { "aria-busy": "true" } },
    h("p", { i18n: "common.loading" }),
  );
  const el = h("section", { class: "report" }, heading, alert, body);
  api.report(interviewId).then(
    (report) => {
      body.removeAttribute("aria-busy");
      const parts = reportBody(report);
      if (report.status === "in-progress") {
        parts.splice(
          1,
          0,
          h(
            "p",
            {},
            h("a", {
              class: "button primary",
              href: `/#/interview/${encodeURIComponent(interviewId)}`,
              i18n: "start.continue",
            }),
          ),
        );
      }
      if (report.status === "completed") parts.splice(1, 0, shareBox(report));
      body.replaceChildren(...parts);
    },
    (error) => {
      body.removeAttribute("aria-busy");
      body.replaceChildren();
      alert.show(errorKey(error));
    },
  );
  return { el, focus: heading };
}

export function sharedView(ctx, token) {
  const heading = h("h1", { i18n: "report.sharedTitle", tabIndex: -1 });
  const alert = alertBox();
  const body = h(
    "div",
    { class: "report-body", attrs: { "aria-busy": "true" } },
    h("p", { i18n: "common.loading" }),
  );
  const el = h("section", { class: "report shared" }, heading, alert, body);
  api.shared(token).then(
    (report) => {
      body.removeAttribute("aria-busy");
      body.replaceChildren(...reportBody(report));
    },
    (error) => {
      body.removeAttribute("aria-busy");
      body.replaceChildren();
      alert.show(error.status === 404 ? "report.notFound" : errorKey(error));
    },
  );
  return { el, focus: heading };
}
