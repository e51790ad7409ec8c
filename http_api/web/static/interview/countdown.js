// The time left for the current question, with a spoken warning a minute before the end.

import { announce, h } from "../dom.js";
import { PHASE } from "../model.js";

const MINUTE_MS = 60000;
const ALMOST_UP_MS = 2000;

/** "m:ss" of a duration in milliseconds, rounded up; never negative. */
export function formatClock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

/**
 * The timer of the current question. `onAlmostUp()` runs once two seconds before the deadline,
 * `onUp()` on every tick after it.
 */
export function countdown(model, { onAlmostUp, onUp }) {
  const el = h("p", {
    class: "timer",
    hidden: true,
    attrs: { role: "timer" },
    i18nAttrs: { "aria-label": "interview.timeLeft" },
  });
  let warnedMinute = false;
  let warnedEnd = false;

  /** A new question: its warnings are still to come. */
  function reset() {
    warnedMinute = false;
    warnedEnd = false;
  }

  function tick() {
    if (model.phase !== PHASE.ANSWERING || model.deadline === null) return;
    let left = model.deadline - Date.now();
    // A client clock behind the server's would show more time than the limit allows.
    if (model.timeLimitSec) left = Math.min(left, model.timeLimitSec * 1000);
    el.textContent = formatClock(left);
    el.classList.toggle("urgent", left <= MINUTE_MS);
    if (left <= MINUTE_MS && left > MINUTE_MS - 5000 && !warnedMinute) {
      warnedMinute = true;
      announce("interview.minuteLeft");
    }
    if (left <= ALMOST_UP_MS && !warnedEnd) {
      warnedEnd = true;
      onAlmostUp();
    }
    if (left <= 0) onUp();
  }

  function draw() {
    el.hidden = model.phase !== PHASE.ANSWERING || model.deadline === null;
    tick();
  }

  return { el, reset, tick, draw };
}
