// The answer box: typing, sending, drafts the server submits when time runs out. It lives inside
// the card of the question being answered.

import { clearText, field, h, setText } from "../dom.js";
import { PHASE } from "../model.js";

const ANSWER_MAX_CHARS = 8000;

/**
 * The composer of `model`'s current answer. `connection.send(frame)` sends a frame when the
 * socket is live (and says whether it did), `connection.live()` says whether it is;
 * `onSubmit()` runs before an answer goes out.
 */
export function answerComposer(model, list, connection, { onSubmit }) {
  const textarea = h("textarea", {
    name: "answer",
    id: "answer",
    rows: 8,
    maxLength: ANSWER_MAX_CHARS,
    attrs: { autocomplete: "off", spellcheck: "true" },
  });
  const answerField = field({
    label: "interview.answerLabel",
    input: textarea,
    hint: "interview.answerHint",
  });
  const sendButton = h("button", { type: "submit", class: "primary", i18n: "interview.send" });
  const note = h("p", { class: "note", attrs: { role: "status" } });
  const el = h(
    "form",
    { class: "composer", noValidate: true },
    answerField,
    h("div", { class: "actions" }, sendButton),
    note,
  );

  /** Sending state: the answer stays read-only until the server has accepted it. */
  function draw() {
    const sending = model.pending !== null;
    textarea.readOnly = sending;
    sendButton.disabled = sending;
    if (!sending) clearText(note);
    else if (connection.live()) setText(note, "interview.sending");
    else setText(note, "interview.queued");
  }

  /** Move the composer into the current question's card while it is being answered. */
  function place() {
    const q = model.current;
    const hadFocus = el.contains(document.activeElement);
    if (model.phase === PHASE.ANSWERING && q) {
      const c = list.card(q);
      if (el.dataset.questionId !== q.id) {
        textarea.value = model.drafts.get(q.id) || "";
        el.dataset.questionId = q.id;
        answerField.showError(null);
      }
      if (el.parentNode !== c.root) {
        c.root.append(el);
        const active = document.activeElement;
        if (hadFocus || active === document.body || list.isTitle(active)) textarea.focus();
      }
    } else if (el.parentNode) {
      el.remove();
      if (hadFocus && q) list.card(q).title.focus();
    }
    draw();
  }

  /** Send the text typed so far, if it changed: the server submits it at the deadline. */
  function saveDraft() {
    const q = model.current;
    if (!q || model.phase !== PHASE.ANSWERING || model.pending) return;
    if (el.dataset.questionId !== q.id) return;
    const text = textarea.value;
    if ((model.drafts.get(q.id) || "") === text) return;
    if (connection.send({ type: "draft", questionId: q.id, answer: text })) {
      model.drafts.set(q.id, text);
    }
  }

  function showTimeUp() {
    setText(note, "interview.timeUp");
  }

  function submit() {
    const text = textarea.value.trim();
    if (!text) {
      answerField.showError("interview.emptyAnswer");
      textarea.focus();
      return;
    }
    answerField.showError(null);
    onSubmit();
    const frame = model.submit(textarea.value);
    if (frame) connection.send(frame);
    draw();
  }

  el.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
  });
  textarea.addEventListener("input", () => answerField.showError(null));

  return { el, draw, place, saveDraft, showTimeUp, remove: () => el.remove() };
}
