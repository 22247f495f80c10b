// The realtime stream (api.md "Realtime"): SSE at /api/v1/events?token=<access token>, data-only frames
// {"type", "data", "timestamp"}. Listeners get every frame; the stream reconnects on error with backoff,
// taking a fresh access token first when the current one is about to expire.

import { accessExpiry, refreshAccess, session } from "./api.js";

const frameListeners = new Set();
const stateListeners = new Set();
let source = null;
let state = "disconnected";
let wanted = false;
let timer = null;
let backoff = 1000;

export const MAX_BACKOFF_MS = 30000;

export function onFrame(fn) { frameListeners.add(fn); return () => frameListeners.delete(fn); }

export function onState(fn) { stateListeners.add(fn); fn(state); return () => stateListeners.delete(fn); }

function setState(next) {
  state = next;
  for (const fn of stateListeners) fn(next);
}

export function start() {
  wanted = true;
  if (!source && !timer) connect();
}

export function stop() {
  wanted = false;
  clearTimeout(timer);
  timer = null;
  source?.close();
  source = null;
  setState("disconnected");
}

function dispatch(event) {
  let frame;
  try { frame = JSON.parse(event.data); } catch { return; }
  if (!frame || typeof frame.type !== "string") return;
  for (const fn of frameListeners) {
    try { fn(frame); } catch (e) { console.error("live listener", e); }
  }
}

function connect() {
  timer = null;
  if (!wanted || !session.access) return;
  setState("connecting");
  const es = new EventSource(`/api/v1/events?token=${encodeURIComponent(session.access)}`);
  source = es;
  es.onopen = () => { backoff = 1000; setState("connected"); };
  es.onmessage = dispatch;
  es.onerror = () => {
    if (source !== es) return;
    es.close();
    source = null;
    setState("disconnected");
    if (!wanted) return;
    const delay = backoff;
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    timer = setTimeout(async () => {
      // a refused stream may be an expired token: EventSource does not tell the status
      if (accessExpiry() - Date.now() / 1000 < 60) {
        try { await refreshAccess(); } catch { /* a refused refresh signs out; stop() follows */ }
      }
      connect();
    }, delay);
  };
}
