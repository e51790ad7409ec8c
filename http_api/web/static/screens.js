// Choosing a new interview, and the history list.

import { api, session } from "./api.js";
import { alertBox, h } from "./dom.js";
import { lang } from "./i18n.js";
import { errorKey } from "./forms.js";

const LEVELS = ["intern", "junior", "middle"];
const HISTORY_PAGE_SIZE = 10;

function radioGroup(name, legendKey, options, checked) {
  return h(
    "fieldset",
    { class: "choices" },
    h("legend", { i18n: legendKey }),
    options.map(({ value, labelKey, descKey, descArgs }) => {
      const id = `${name}-${value}`;
      const radio = h("input", { type: "radio", name, value, id, checked: value === checked });
      const desc = descKey
        ? h("span", { class: "choice-desc", i18n: descKey, args: descArgs })
        : null;
      if (desc) {
        desc.id = `${id}-desc`;
        radio.setAttribute("aria-describedby", desc.id);
      }
      return h(
        "div",
        { class: "choice" },
        radio,
        h("label", { htmlFor: id }, h("span", { class: "choice-title", i18n: labelKey }), desc),
      );
    }),
  );
}

export function startView(ctx) {
  const heading = h("h1", { i18n: "start.title", tabIndex: -1 });
  const alert = alertBox();
  const unfinished = h("div", { class: "alert alert-info", hidden: true });
  // Over the free tier the server answers 402 subscription_required: offer the plans.
  const limit = h(
    "div",
    { class: "alert alert-info limit-reached", hidden: true, attrs: { role: "alert" } },
    h("p", { class: "limit-title", i18n: "start.limitTitle" }),
    h("p", { i18n: "start.limitText" }),
    h("a", { class: "button primary", href: "/#/subscription", i18n: "start.limitAction" }),
  );
  const form = h("form", { class: "form", noValidate: true, attrs: { "aria-busy": "true" } });
  const el = h("section", { class: "card narrow" }, heading, unfinished, limit, alert, form);
  const userLang = (session.user && session.user.language) || lang();

  const submit = h("button", { type: "submit", class: "primary", i18n: "start.submit" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.hide();
    limit.hidden = true;
    const data = new FormData(form);
    submit.disabled = true;
    try {
      const started = await api.start(data.get("level"), data.get("language"));
      ctx.navigate(`/#/interview/${encodeURIComponent(started.interviewId)}`);
    } catch (error) {
      if (error.code === "subscription_required") {
        limit.hidden = false;
        limit.querySelector("a").focus();
      } else {
        alert.show(errorKey(error));
      }
      submit.disabled = false;
    }
  });

  api.levels().then(
    (info) => {
      const levels = info.levels.filter((level) => LEVELS.includes(level));
      form.append(
        radioGroup(
          "level",
          "start.level",
          levels.map((level) => ({
            value: level,
            labelKey: `level.${level}`,
            descKey: "start.info",
            descArgs: {
              count: info.questionsPerInterview,
              minutes: Math.round((info.timeLimitsSec[level] || 0) / 60),
              pass: info.passThresholds[level],
            },
          })),
          "junior",
        ),
        radioGroup(
          "language",
          "start.language",
          [
            { value: "ru", labelKey: "lang.ru" },
            { value: "en", labelKey: "lang.en" },
          ],
          userLang,
        ),
        h("div", { class: "actions" }, submit),
      );
      form.removeAttribute("aria-busy");
    },
    (error) => alert.show(errorKey(error)),
  );

  // Offer to continue an unfinished interview instead of starting another one.
  api.history(1, 5).then(
    (data) => {
      const open = data.interviews.find((item) => item.status === "in-progress");
      if (!open) return;
      unfinished.replaceChildren(
        h("p", { dataset: { i18nLevel: open.level }, i18n: "start.unfinished" }),
        h("a", {
          class: "button secondary",
          href: `/#/interview/${encodeURIComponent(open.interviewId)}`,
          i18n: "start.continue",
        }),
      );
      unfinished.hidden = false;
    },
    () => {},
  );
  return { el, focus: heading };
}

function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, i18n: `status.${status}` });
}

export function historyView(ctx, pageNumber = 1) {
  const heading = h("h1", { i18n: "history.title", tabIndex: -1 });
  const alert = alertBox();
  const list = h("ul", { class: "history", attrs: { "aria-busy": "true" } });
  const pager = h("nav", {
    class: "pager",
    hidden: true,
    i18nAttrs: { "aria-label": "history.title" },
  });
  const el = h("section", { class: "card" }, heading, alert, list, pager);

  api.history(pageNumber, HISTORY_PAGE_SIZE).then(
    (data) => {
      list.removeAttribute("aria-busy");
      if (!data.interviews.length) {
        list.replaceWith(h("p", { class: "empty", i18n: "history.empty" }));
        return;
      }
      list.replaceChildren(...data.interviews.map(historyItem));
      const pages = Math.max(1, Math.ceil(data.total / data.pageSize));
      if (pages > 1) {
        pager.hidden = false;
        pager.append(
          pageNumber > 1
            ? h("a", {
                href: `/#/history/${pageNumber - 1}`,
                i18n: "history.prev",
                attrs: { rel: "prev" },
              })
            : null,
          h("span", { i18n: "history.page", args: { page: pageNumber, pages } }),
          pageNumber < pages
            ? h("a", {
                href: `/#/history/${pageNumber + 1}`,
                i18n: "history.next",
                attrs: { rel: "next" },
              })
            : null,
        );
      }
    },
    (error) => {
      list.removeAttribute("aria-busy");
      alert.show(errorKey(error));
    },
  );
  return { el, focus: heading };
}

function historyItem(item) {
  const id = encodeURIComponent(item.interviewId);
  const scored = item.overallScore !== null && item.overallScore !== undefined;
  const action =
    item.status === "in-progress"
      ? h("a", { class: "button secondary", href: `/#/interview/${id}`, i18n: "history.continue" })
      : h("a", { class: "button secondary", href: `/#/report/${id}`, i18n: "history.open" });
  return h(
    "li",
    { class: "history-item", dataset: { interviewId: item.interviewId } },
    h(
      "div",
      { class: "history-main" },
      h(
        "p",
        { class: "history-title" },
        h("span", { i18n: `level.${item.level}` }),
        " · ",
        item.language.toUpperCase(),
      ),
      h("p", { class: "history-date", date: item.startTime }),
      h("p", {
        class: "history-answered",
        i18n: "history.answered",
        args: { answered: item.answered, total: item.total },
      }),
    ),
    h(
      "div",
      { class: "history-side" },
      statusBadge(item.status),
      scored
        ? h("p", {
            class: "history-score",
            i18n: "history.score",
            args: { score: item.overallScore },
          })
        : null,
      scored && item.passed !== null
        ? h("span", {
            class: `badge ${item.passed ? "passed" : "failed"}`,
            i18n: item.passed ? "report.passed" : "report.failed",
          })
        : null,
      action,
    ),
  );
}
