// The bar above the questions: progress, the countdown and the state of the connection.

import { clearText, h, setText } from "../dom.js";

const CONNECTION_TEXT = {
  connecting: "conn.connecting",
  live: "conn.live",
  reconnecting: "conn.reconnecting",
  closed: "conn.closed",
  fatal: "conn.closed",
};

/** The bar, holding `timer` (the countdown's element) between progress and connection. */
export function statusBar(model, timer) {
  const progress = h("p", { class: "progress" });
  const conn = h("p", { class: "conn", attrs: { role: "status" } });
  const el = h("div", { class: "interview-bar" }, progress, timer, conn);

  function drawProgress() {
    const q = model.current;
    if (q && model.total) {
      setText(progress, "interview.progress", { n: q.index + 1, total: model.total });
    } else {
      clearText(progress);
    }
  }

  /** `status` is the socket's: connecting, live, reconnecting, closed or fatal. */
  function drawConnection(status) {
    setText(conn, CONNECTION_TEXT[status]);
    conn.dataset.state = status;
    conn.hidden = status === "closed"; // the interview is over; nothing to report
  }

  return { el, drawProgress, drawConnection };
}
