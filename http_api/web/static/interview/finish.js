// "Finish the interview" and its confirmation.

import { h, setText } from "../dom.js";
import { PHASE } from "../model.js";

/** The finish button; `onConfirm()` runs when the candidate confirms. */
export function finishControls(model, { onConfirm }) {
  const button = h("button", { type: "button", class: "secondary", i18n: "interview.finish" });
  const yes = h("button", { type: "button", class: "danger", i18n: "interview.finishYes" });
  const no = h("button", { type: "button", class: "secondary", i18n: "interview.finishNo" });
  const confirm = h(
    "div",
    { class: "confirm", hidden: true, attrs: { role: "group", "aria-labelledby": "finish-q" } },
    h("p", { id: "finish-q", i18n: "interview.finishConfirm" }),
    h("div", { class: "actions" }, yes, no),
  );
  const el = h("div", { class: "finish" }, button, confirm);

  function closeConfirm() {
    confirm.hidden = true;
    button.hidden = false;
  }

  button.addEventListener("click", () => {
    confirm.hidden = false;
    button.hidden = true;
    yes.focus();
  });
  no.addEventListener("click", () => {
    closeConfirm();
    button.focus();
  });
  yes.addEventListener("click", () => {
    closeConfirm();
    onConfirm();
    button.focus();
  });

  /** Shown while the interview is open; disabled once finishing was asked for. */
  function draw() {
    el.hidden = !(model.phase === PHASE.ANSWERING || model.phase === PHASE.EVALUATING);
    button.disabled = model.finishRequested;
    if (model.finishRequested) setText(button, "interview.finishing");
  }

  function hide() {
    el.hidden = true;
  }

  return { el, draw, hide };
}
