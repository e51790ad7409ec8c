// A tiny DOM builder. Text always goes in through textContent, so server data (questions,
// answers, feedback) can never inject markup.

import { formatDate, renderLocalized, renderText, t } from "./i18n.js";

/**
 * h("button", {class: "primary", i18n: "login.submit", on: {click}}, ...children)
 * - i18n / args: translated text that follows the language toggle
 * - texts: {ru, en} server text in both languages that follows the toggle
 * - attrs: plain attributes; i18nAttrs: {"aria-label": key} translated attributes
 * - anything else is set as a property (id, type, value, disabled, htmlFor, ...)
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name === "i18n") el.dataset.i18n = value;
    else if (name === "args") el.dataset.i18nArgs = JSON.stringify(value);
    else if (name === "date") el.dataset.date = value;
    else if (name === "texts") {
      el.dataset.textRu = value.ru;
      el.dataset.textEn = value.en;
    }
    else if (name === "on")
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    else if (name === "attrs") for (const [a, v] of Object.entries(value)) el.setAttribute(a, v);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "i18nAttrs") {
      el.dataset.i18nAttr = Object.entries(value)
        .map(([a, key]) => `${a}:${key}`)
        .join(";");
      for (const [a, key] of Object.entries(value)) el.setAttribute(a, t(key));
    } else el[name] = value;
  }
  if (el.dataset.i18n) renderText(el);
  if (el.dataset.date) el.textContent = formatDate(el.dataset.date);
  if (el.dataset.textRu !== undefined) renderLocalized(el);
  append(el, children);
  return el;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Set translated text on an existing element (and remember it for the language toggle). */
export function setText(el, key, args) {
  el.dataset.i18n = key;
  if (args) el.dataset.i18nArgs = JSON.stringify(args);
  else delete el.dataset.i18nArgs;
  renderText(el);
}

export function clearText(el) {
  delete el.dataset.i18n;
  delete el.dataset.i18nArgs;
  el.textContent = "";
}

let fieldCounter = 0;

/** A labelled form field with a hint and an error slot wired up through aria-describedby. */
export function field({ label, input, hint, optional = false }) {
  const id = input.id || `f${++fieldCounter}`;
  input.id = id;
  const errorEl = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const describedBy = [];
  let hintEl = null;
  if (hint) {
    hintEl = h("p", { class: "hint", id: `${id}-hint`, i18n: hint });
    describedBy.push(hintEl.id);
  }
  describedBy.push(errorEl.id);
  input.setAttribute("aria-describedby", describedBy.join(" "));
  const labelEl = h(
    "label",
    { htmlFor: id },
    h("span", { i18n: label }),
    optional ? [" ", h("span", { class: "optional", i18n: "common.optional" })] : null,
  );
  const wrapper = h("div", { class: "field" }, labelEl, hintEl, input, errorEl);
  wrapper.showError = (key, args) => {
    if (!key) {
      errorEl.hidden = true;
      clearText(errorEl);
      input.removeAttribute("aria-invalid");
      return;
    }
    setText(errorEl, key, args);
    errorEl.hidden = false;
    input.setAttribute("aria-invalid", "true");
  };
  return wrapper;
}

/** A polite announcement for screen readers (the visually hidden #announcer region). */
export function announce(key, args) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node in a new frame makes screen readers read repeated messages too.
  requestAnimationFrame(() => {
    region.textContent = t(key, args || {});
  });
}

/** An alert box for a form or a screen; `show(key)` / `hide()`. */
export function alertBox(kind = "error") {
  const el = h("div", { class: `alert alert-${kind}`, hidden: true, attrs: { role: "alert" } });
  el.show = (key, args) => {
    setText(el, key, args);
    el.hidden = false;
  };
  el.hide = () => {
    el.hidden = true;
    clearText(el);
  };
  return el;
}

/** The three sub-scores of an evaluation as a definition list. */
export function scoreList(scores) {
  return h(
    "dl",
    { class: "scores" },
    ["correctness", "completeness", "clarity"].map((name) =>
      h(
        "div",
        { class: "score-item" },
        h("dt", { i18n: `scores.${name}` }),
        h("dd", { text: String(scores[name]) }),
      ),
    ),
  );
}
