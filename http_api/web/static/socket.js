// The live interview socket (protocol v1, docs/protocol.md): hello -> welcome -> events with `seq`.
//
// Resume: the client remembers the last `seq` it applied and the history's `epoch`. After a drop
// (or a 1012 node restart) it reconnects with backoff and sends both; the server replays only
// newer events (or a snapshot when that history is gone), and any event at or below `lastSeq` is
// dropped here too, so no text is applied twice.

import { refresh, session } from "./api.js";

export const SOCKET_PATH = "/ws/v1/interview";

// A page that has seen nothing yet asks for a snapshot (the server sends one for a `lastSeq`
// beyond the history) rather than the whole history: after a restart of an embedded node the
// history starts over and would not hold the earlier questions.
export const SNAPSHOT_POSITION = 2 ** 31 - 1;

// Close codes after which retrying cannot help.
const FATAL_CODES = new Set([4400, 4403, 4404]);
const BAD_TOKEN = 4401;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 5000;
const HEARTBEAT_MS = 15000;
// A fresh token goes to the server this long before the one in use expires (`auth` frame).
const RENEW_BEFORE_MS = 60000;
const RENEW_MIN_MS = 1000;

/** When an access token expires (ms since the epoch), read from its payload; null if unknown. */
export function tokenExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}
const SILENCE_LIMIT_MS = 40000;

export class InterviewSocket {
  /**
   * onFrame(frame): every interview event (in seq order, never twice), snapshots, errors and
   * duplicate acknowledgements. onStatus(status): "connecting" | "live" | "reconnecting" |
   * "closed" | "fatal". onSynced(): after each welcome, to resend what is still pending.
   */
  constructor(interviewId, { onFrame, onStatus, onSynced, onAuthLost }) {
    this.interviewId = interviewId;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onSynced = onSynced || (() => {});
    this.onAuthLost = onAuthLost || (() => {});
    this.lastSeq = null;
    this.epoch = null;
    this.ws = null;
    this.attempt = 0;
    this.connects = 0;
    this.stopped = false;
    this.retryTimer = null;
    this.heartbeat = null;
    this.renewTimer = null;
    this.lastHeard = 0;
    this.lastSpoke = 0;
    this.tokenRetried = false;
    this.status = "connecting";
    this._online = () => {
      if (!this.ws && !this.stopped) this._connectSoon(0);
    };
    window.addEventListener("online", this._online);
  }

  start() {
    this._connect();
  }

  /** Close for good (leaving the screen, or the interview is over). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.renewTimer);
    clearInterval(this.heartbeat);
    window.removeEventListener("online", this._online);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "done");
    this._setStatus("closed");
  }

  /** Send a frame if the socket is live; returns whether it went out. */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.status !== "live") return false;
    this._write(this.ws, frame);
    return true;
  }

  _write(ws, frame) {
    this.lastSpoke = Date.now();
    ws.send(JSON.stringify(frame));
  }

  /** Test hook: drop the connection the way a network failure would (no clean goodbye). */
  drop() {
    if (this.ws) this.ws.close();
  }

  _setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.onStatus(status);
  }

  async _connect() {
    if (this.stopped) return;
    this.retryTimer = null;
    if (!session.accessToken) {
      try {
        await refresh();
      } catch (error) {
        if (error.status === 401 || error.status === 422) {
          this._fatal("unauthorized");
          this.onAuthLost();
          return;
        }
        this._scheduleRetry();
        return;
      }
      if (this.stopped) return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}${SOCKET_PATH}`);
    } catch {
      this._scheduleRetry();
      return;
    }
    this.ws = ws;
    const hello = { type: "hello", token: session.accessToken, interviewId: this.interviewId };
    if (this.lastSeq === null) hello.lastSeq = SNAPSHOT_POSITION;
    else Object.assign(hello, { lastSeq: this.lastSeq, epoch: this.epoch });
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.lastHeard = this.lastSpoke = Date.now();
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this._receive(ws, frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      clearInterval(this.heartbeat);
      clearTimeout(this.renewTimer);
      this._closed(event.code);
    };
  }

  _receive(ws, frame) {
    switch (frame.type) {
      case "welcome":
        this._welcome(ws, frame);
        return;
      case "snapshot":
        // The whole state at `seq`: everything after it comes live.
        this.lastSeq = frame.seq;
        this.onFrame(frame);
        return;
      case "pong":
        return;
      default:
        break;
    }
    if (typeof frame.seq !== "number") {
      this.onFrame(frame); // errors and duplicate acknowledgements are not history
      return;
    }
    if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // already applied
    if (this.lastSeq !== null && frame.seq > this.lastSeq + 1) {
      // A gap: reconnect from the last applied event and let the server replay the rest.
      ws.close(4000, "gap");
      return;
    }
    this.lastSeq = frame.seq;
    this.onFrame(frame);
  }

  _welcome(ws, frame) {
    // A new epoch means the history we counted in is gone: the server follows with a snapshot,
    // which resets `lastSeq`.
    this.epoch = frame.epoch;
    this.attempt = 0;
    this.tokenRetried = false;
    this.connects += 1;
    this._setStatus("live");
    this._startHeartbeat(ws);
    this._scheduleRenewal(ws);
    this.onSynced();
  }

  /** Before the access token expires, fetch a new one and hand it to the server (`auth`). */
  _scheduleRenewal(ws) {
    clearTimeout(this.renewTimer);
    const expiry = tokenExpiry(session.accessToken || "");
    if (expiry === null) return;
    const delay = Math.max(RENEW_MIN_MS, expiry - RENEW_BEFORE_MS - Date.now());
    this.renewTimer = setTimeout(async () => {
      if (ws !== this.ws) return;
      try {
        await refresh();
      } catch {
        return; // the server closes the socket with 4401 later; reconnecting refreshes again
      }
      if (ws !== this.ws || !session.accessToken) return;
      this._write(ws, { type: "auth", token: session.accessToken });
      this._scheduleRenewal(ws);
    }, delay);
  }

  _startHeartbeat(ws) {
    clearInterval(this.heartbeat);
    // Browsers cannot see a silently dead TCP connection; a quiet socket is pinged, and one that
    // stays silent is treated as dropped.
    this.heartbeat = setInterval(() => {
      if (ws !== this.ws) return;
      const now = Date.now();
      if (now - this.lastHeard > SILENCE_LIMIT_MS) ws.close(4000, "silent");
      // The server also closes sockets that send nothing for a long time.
      else if (now - this.lastHeard > HEARTBEAT_MS || now - this.lastSpoke > HEARTBEAT_MS) {
        this._write(ws, { type: "ping" });
      }
    }, HEARTBEAT_MS);
  }

  async _closed(code) {
    if (this.stopped) return;
    if (FATAL_CODES.has(code)) {
      this._fatal(code);
      return;
    }
    if (code === BAD_TOKEN) {
      if (this.tokenRetried) {
        this._fatal("unauthorized");
        this.onAuthLost();
        return;
      }
      this.tokenRetried = true;
      try {
        await refresh();
      } catch (error) {
        if (error.status === 401 || error.status === 422) {
          this._fatal("unauthorized");
          this.onAuthLost();
          return;
        }
        this.tokenRetried = false; // the refresh itself failed (offline?): try it again later
        this._scheduleRetry();
        return;
      }
      this._connectSoon(0);
      return;
    }
    this._scheduleRetry();
  }

  _fatal(reason) {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this._setStatus("fatal");
    this.onFrame({ type: "socket.fatal", reason });
  }

  _scheduleRetry() {
    this._setStatus("reconnecting");
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    // Jitter keeps a restarted node from being hit by every client at the same instant.
    const delay = exp / 2 + Math.random() * (exp / 2);
    if (navigator.onLine === false) return; // the "online" event reconnects
    this._connectSoon(delay);
  }

  _connectSoon(delay) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this._connect(), delay);
  }
}
