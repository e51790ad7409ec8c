// The interview's questions as an ordered list of cards, one per question the model knows.

import { h } from "../dom.js";
import { questionCard } from "./card.js";

/** The list of question cards; `sync()` and `draw(q)` bring it up to date with `model`. */
export function questionList(model) {
  const cards = new Map();
  const el = h("ol", { class: "questions", i18nAttrs: { "aria-label": "interview.questions" } });

  function card(q) {
    let c = cards.get(q.id);
    if (!c) {
      c = questionCard(q);
      cards.set(q.id, c);
    }
    return c;
  }

  /** Redraw question `q`'s card (the one being evaluated shows that it is). */
  function draw(q) {
    card(q).draw(q, q.answer !== null && !q.done && model.currentId === q.id);
  }

  // Put the cards in question order, moving only those out of place: moving the card that holds
  // the answer box would take the focus away from someone typing.
  function sync() {
    for (const [id, c] of [...cards]) {
      if (!model.questions.has(id)) {
        c.root.remove();
        cards.delete(id);
      }
    }
    const ordered = [...model.questions.values()].sort((a, b) => a.index - b.index);
    ordered.forEach((q, i) => {
      const root = card(q).root;
      if (el.children[i] !== root) el.insertBefore(root, el.children[i] || null);
    });
  }

  function drawAll() {
    sync();
    for (const q of model.questions.values()) draw(q);
  }

  /** Whether `node` is the title of one of the cards. */
  function isTitle(node) {
    return [...cards.values()].some((c) => c.title === node);
  }

  return { el, card, draw, sync, drawAll, isTitle };
}
