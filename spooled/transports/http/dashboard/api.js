// The REST client of the dashboard: bearer tokens from POST /auth/login kept in sessionStorage, one refresh on a
// 401 (shared by concurrent requests), every error as the server's `message` (api.md "Errors").

const BASE = "/api/v1";
const KEY = { access: "spooled.access_token", refresh: "spooled.refresh_token", me: "spooled.me" };
const listeners = new Set();

export class ApiError extends Error {
  constructor(message, status, code, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const session = {
  get access() { return sessionStorage.getItem(KEY.access); },
  get refresh() { return sessionStorage.getItem(KEY.refresh); },
  get me() {
    const raw = sessionStorage.getItem(KEY.me);
    try { return raw ? JSON.parse(raw) : null; } catch { return null; }
  },
  get signedIn() { return Boolean(this.access && this.me); },
  // read-only keys (GET /auth/me reports read_only: true) see no action buttons; a missing field is false
  get readOnly() { return this.me?.read_only === true; },
  onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); },
};

function changed(reason) {
  for (const fn of listeners) fn(reason ?? null);
}

function forget(reason) {
  for (const k of Object.values(KEY)) sessionStorage.removeItem(k);
  changed(reason);
}

// User JSON keeps its numbers as written: a number JSON.parse cannot hold exactly (a big integer, 1.0, 1e3)
// becomes a RawNumber that prettyJson prints verbatim (needs JSON.parse source text, Chromium 114+).
export class RawNumber {
  constructor(source) { this.source = source; }
  toJSON() { return Number(this.source); }
  valueOf() { return Number(this.source); }      // arithmetic and Math.* on server figures such as 0.0
}

function revive(_key, value, context) {
  if (typeof value === "number" && context && typeof context.source === "string" && String(value) !== context.source) {
    return new RawNumber(context.source);
  }
  return value;
}

export function parseJson(text) {
  return JSON.parse(text, revive);
}

export function prettyJson(value, indent = "") {
  if (value instanceof RawNumber) return value.source;
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return "[\n" + value.map((v) => inner + prettyJson(v, inner)).join(",\n") + "\n" + indent + "]";
  }
  const keys = Object.keys(value);
  if (!keys.length) return "{}";
  return "{\n" + keys.map((k) => inner + JSON.stringify(k) + ": " + prettyJson(value[k], inner)).join(",\n")
    + "\n" + indent + "}";
}

function query(params) {
  if (!params) return "";
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

async function send(method, path, { body, params, token } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    return await fetch(BASE + path + query(params), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(`Cannot reach the server (${e.message})`, 0, "NETWORK_ERROR");
  }
}

async function failure(resp) {
  let body = null;
  try { body = parseJson(await resp.text()); } catch { /* not JSON: fall back to the status line */ }
  const message = body && typeof body.message === "string" && body.message
    ? body.message : `${resp.status} ${resp.statusText || "error"}`;
  return new ApiError(message, resp.status, body?.code, body?.details);
}

let refreshing = null;

// A new access token from the refresh token; a refused refresh ends the session.
export function refreshAccess() {
  refreshing ??= (async () => {
    const refresh = session.refresh;
    if (!refresh) throw new ApiError("Not signed in", 401, "UNAUTHORIZED");
    const resp = await send("POST", "/auth/refresh", { body: { refresh_token: refresh } });
    if (!resp.ok) {
      const err = await failure(resp);
      if (resp.status === 401) forget(`Your session has ended: ${err.message}`);
      throw err;
    }
    const tokens = await resp.json();
    sessionStorage.setItem(KEY.access, tokens.access_token);
    return tokens.access_token;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

// The access token's expiry (seconds since the epoch), read from the JWT; 0 when it cannot be read.
export function accessExpiry() {
  try {
    const part = session.access.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).exp || 0;
  } catch { return 0; }
}

export async function request(method, path, options = {}) {
  let resp = await send(method, path, { ...options, token: session.access });
  if (resp.status === 401 && session.refresh) {
    await refreshAccess();
    resp = await send(method, path, { ...options, token: session.access });
  }
  if (!resp.ok) {
    const err = await failure(resp);
    if (resp.status === 401) forget(`Your session has ended: ${err.message}`);
    throw err;
  }
  const text = resp.status === 204 ? "" : await resp.text();
  return { data: text ? parseJson(text) : null, headers: resp.headers };
}

export const get = async (path, params) => (await request("GET", path, { params })).data;
export const post = async (path, body = {}) => (await request("POST", path, { body })).data;
export const del = async (path) => (await request("DELETE", path)).data;

export async function signIn(apiKey) {
  const resp = await send("POST", "/auth/login", { body: { api_key: apiKey } });
  if (!resp.ok) throw await failure(resp);
  const tokens = await resp.json();
  sessionStorage.setItem(KEY.access, tokens.access_token);
  sessionStorage.setItem(KEY.refresh, tokens.refresh_token);
  try {
    sessionStorage.setItem(KEY.me, JSON.stringify(await get("/auth/me")));
  } catch (e) {
    forget(null);
    throw e;
  }
  changed(null);
}

// Revokes the session's refresh token (refreshing a stale access token once, as any request), then forgets the
// tokens whatever the server said: a refused or failed logout never keeps the page signed in.
export async function signOut() {
  if (session.refresh) {
    try { await request("POST", "/auth/logout", { body: { refresh_token: session.refresh } }); }
    catch { /* signing out locally is what matters */ }
  }
  forget(null);
}
