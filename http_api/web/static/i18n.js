// Interface text in Russian and English. Server content (questions, feedback) keeps the
// interview's own language; only the page's chrome follows this toggle.

import en from "./lang/en.js";
import ru from "./lang/ru.js";

const STORAGE_KEY = "ip.uiLang";
export const LANGUAGES = ["ru", "en"];

const DICTIONARIES = { ru, en };
const listeners = new Set();
let current = detect();

function detect() {
  let saved = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage can be disabled; the navigator language still works.
  }
  if (LANGUAGES.includes(saved)) return saved;
  const preferred = (navigator.languages || [navigator.language || ""]).map((l) =>
    String(l).slice(0, 2).toLowerCase(),
  );
  return preferred.find((l) => LANGUAGES.includes(l)) || "ru";
}

export function lang() {
  return current;
}

export function has(key) {
  return key in DICTIONARIES[current];
}

/** The text for `key` in the current language, with `{name}` placeholders filled from `args`. */
export function t(key, args = {}) {
  const text = DICTIONARIES[current][key] ?? DICTIONARIES.ru[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in args ? String(args[name]) : `{${name}}`));
}

export function setLang(next) {
  if (!LANGUAGES.includes(next) || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not remembered across visits; fine.
  }
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

export function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return new Intl.DateTimeFormat(current === "ru" ? "ru-RU" : "en-GB", {
    dateStyle: "medium",
    timeStyle: "short",
  }).format(date);
}

/** Fill an element's text from its data-i18n key and arguments (dates and levels are localized). */
export function renderText(el) {
  const args = el.dataset.i18nArgs ? JSON.parse(el.dataset.i18nArgs) : {};
  if (el.dataset.i18nDate) args.date = formatDate(el.dataset.i18nDate);
  if (el.dataset.i18nLevel) args.level = t(`level.${el.dataset.i18nLevel}`);
  el.textContent = t(el.dataset.i18n, args);
}

/** Re-translate every element under `root` marked with data-i18n (text) or data-i18n-attr. */
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) renderText(el);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr, t(key));
    }
  }
  for (const el of root.querySelectorAll("[data-date]")) {
    el.textContent = formatDate(el.dataset.date);
  }
  for (const el of root.querySelectorAll("[data-text-ru]")) renderLocalized(el);
}

/** Server text that comes in both languages (plan titles): data-text-ru / data-text-en. */
export function renderLocalized(el) {
  el.textContent = (current === "en" ? el.dataset.textEn : el.dataset.textRu) ?? "";
}

export function formatMoney(amount, currency, language = current) {
  try {
    return new Intl.NumberFormat(language === "ru" ? "ru-RU" : "en-GB", {
      style: "currency",
      currency,
      maximumFractionDigits: 0,
    }).format(amount);
  } catch {
    return `${amount} ${currency}`;
  }
}
