// The REST client. The access token lives only in memory; the refresh token in sessionStorage
// (this tab only), so a reload keeps the session and closing the tab ends it.

const BASE = "/api/v1";
const REFRESH_KEY = "ip.refreshToken";

export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let accessToken = null;
let user = null;
let refreshing = null;
const sessionListeners = new Set();

function readRefresh() {
  try {
    return sessionStorage.getItem(REFRESH_KEY);
  } catch {
    return null;
  }
}

function writeRefresh(token) {
  try {
    if (token) sessionStorage.setItem(REFRESH_KEY, token);
    else sessionStorage.removeItem(REFRESH_KEY);
  } catch {
    // Without storage the session just does not survive a reload.
  }
}

function notify() {
  for (const fn of sessionListeners) fn(user);
}

export const session = {
  get user() {
    return user;
  },
  get loggedIn() {
    return accessToken !== null || readRefresh() !== null;
  },
  get accessToken() {
    return accessToken;
  },
  onChange(fn) {
    sessionListeners.add(fn);
  },
  /** Forget the tokens locally (the server side is ended by logout()). */
  clear() {
    accessToken = null;
    user = null;
    writeRefresh(null);
    notify();
  },
};

function adopt(tokens) {
  accessToken = tokens.token;
  writeRefresh(tokens.refreshToken);
}

async function send(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "network", "network error");
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || (response.status >= 500 ? "generic" : "http_error"),
      error.message || response.statusText,
      error.details || null,
    );
  }
  return data;
}

/**
 * Exchange the refresh token for a new pair. One exchange at a time: refresh tokens rotate and
 * presenting a used one ends the whole session, so concurrent callers share one request.
 */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const token = readRefresh();
      if (!token) throw new ApiError(401, "unauthorized", "not logged in");
      try {
        adopt(await send("POST", "/auth/refresh", { refreshToken: token }));
      } catch (error) {
        if (error.status === 401 || error.status === 422) session.clear();
        throw error;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** A request as the logged-in user: refreshes once on 401 and retries. */
export async function call(method, path, body) {
  if (!accessToken && readRefresh()) await refresh();
  if (!accessToken) throw new ApiError(401, "unauthorized", "not logged in");
  try {
    return await send(method, path, body, accessToken);
  } catch (error) {
    if (error.status !== 401) throw error;
    if (!readRefresh()) {
      session.clear();
      throw error;
    }
  }
  await refresh();
  return send(method, path, body, accessToken);
}

/** A request that needs no login. */
export function publicCall(method, path, body) {
  return send(method, path, body, null);
}

export async function login(email, password) {
  const data = await publicCall("POST", "/auth/login", { email, password });
  adopt(data);
  user = data.user;
  notify();
  return user;
}

export async function logout() {
  const token = readRefresh();
  session.clear();
  if (token) {
    try {
      await publicCall("POST", "/auth/logout", { refreshToken: token });
    } catch {
      // The local session is gone either way.
    }
  }
}

/** Restore the session after a reload: refresh, then load the user. */
export async function restore() {
  if (!readRefresh()) return null;
  try {
    await refresh();
    const data = await call("GET", "/auth/me");
    user = data.user;
    notify();
    return user;
  } catch (error) {
    if (error.status === 0) return null; // offline: keep the refresh token for later
    session.clear();
    return null;
  }
}

export async function loadUser() {
  const data = await call("GET", "/auth/me");
  user = data.user;
  notify();
  return user;
}

export const api = {
  register: (body) => publicCall("POST", "/auth/register", body),
  verifyEmail: (token) => publicCall("POST", "/auth/verify-email", { token }),
  forgotPassword: (email) => publicCall("POST", "/auth/forgot-password", { email }),
  resetPassword: (token, newPassword) =>
    publicCall("POST", "/auth/reset-password", { token, newPassword }),
  levels: () => call("GET", "/interviews/technical"),
  start: (level, language) => call("POST", "/interviews/technical/start", { level, language }),
  history: (page, pageSize) => call("GET", `/interviews/history?page=${page}&pageSize=${pageSize}`),
  report: (id) => call("GET", `/interviews/${encodeURIComponent(id)}/report`),
  share: (id) => call("POST", `/interviews/${encodeURIComponent(id)}/share`),
  unshare: (id) => call("DELETE", `/interviews/${encodeURIComponent(id)}/share`),
  plans: () => publicCall("GET", "/subscriptions/plans"),
  subscription: () => call("GET", "/subscriptions/status"),
  subscribe: (plan, autoRenew) => call("POST", "/subscriptions/create", { plan, autoRenew }),
  cancelRenewal: () => call("POST", "/subscriptions/cancel"),
  contact: (subject, message) => call("POST", "/support/contact", { subject, message }),
  tickets: (page, pageSize) => call("GET", `/support/tickets?page=${page}&pageSize=${pageSize}`),
  ticket: (id) => call("GET", `/support/tickets/${encodeURIComponent(id)}`),
  replyTicket: (id, message) =>
    call("POST", `/support/tickets/${encodeURIComponent(id)}/reply`, { message }),
  shared: (token) => publicCall("GET", `/shared/${encodeURIComponent(token)}`),
};
