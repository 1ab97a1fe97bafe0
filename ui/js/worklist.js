// The agent's work: "Meus" (scope=mine) and "Aguardando" (scope=waiting), kept fresh from the live
// events (with a slow refresh while the socket is down), shared by the desk and the title badge.
// A conversation that newly shows up in either list beeps.

import { ApiError, get } from "./api.js";
import { debounce } from "./dom.js";
import { onEvent, onReload, onStatus } from "./live.js";
import { beep, setTitleBadge } from "./notify.js";

const FALLBACK_REFRESH_MS = 15000;
const LIST_EVENTS = /^(conversation\.|message\.created|queue\.changed)/;

let state = { mine: [], waiting: [], loaded: false, error: null };
const listeners = new Set();
let known = null; // ids seen so far (null until the first load: no beep for what was there)
let offs = [];
let fallbackTimer = null;
let running = false;
let inFlight = null;
let again = false;

/** fn(state) now and after every change; returns the unsubscribe function. */
export function onWorklist(fn) {
  listeners.add(fn);
  fn(state);
  return () => listeners.delete(fn);
}

export function worklist() {
  return state;
}

const refreshSoon = debounce(() => refresh(), 250);

export function startWorklist() {
  if (running) return;
  running = true;
  offs = [
    onEvent((ev) => {
      if (LIST_EVENTS.test(ev.kind || "")) refreshSoon();
    }),
    onReload(() => refreshSoon()),
    onStatus((up) => {
      clearInterval(fallbackTimer);
      fallbackTimer = up ? null : setInterval(() => refresh(), FALLBACK_REFRESH_MS);
    }),
  ];
  refresh();
}

export function stopWorklist() {
  running = false;
  for (const off of offs) off();
  offs = [];
  clearInterval(fallbackTimer);
  refreshSoon.cancel();
  state = { mine: [], waiting: [], loaded: false, error: null };
  known = null;
  setTitleBadge(0);
}

/** Re-reads both lists now (one request pair at a time; a call meanwhile queues one more). */
export async function refresh() {
  if (!running) return;
  if (inFlight) {
    again = true;
    return inFlight;
  }
  inFlight = load();
  try {
    await inFlight;
  } finally {
    inFlight = null;
  }
  if (again) {
    again = false;
    return refresh();
  }
}

async function load() {
  try {
    const [mine, waiting] = await Promise.all([
      get("/api/conversations?scope=mine&open=true&limit=200"),
      get("/api/conversations?scope=waiting&open=true&limit=200"),
    ]);
    if (!running) return;
    const mineList = (mine?.conversations || []).slice().sort((a, b) => (b.last_message_at || 0) - (a.last_message_at || 0));
    const waitingList = waiting?.conversations || [];
    notifyNew([...mineList, ...waitingList]);
    state = { mine: mineList, waiting: waitingList, loaded: true, error: null };
  } catch (e) {
    if (!running || (e instanceof ApiError && e.status === 401)) return;
    state = { ...state, error: e };
  }
  setTitleBadge(attentionCount(state));
  for (const fn of [...listeners]) fn(state);
}

function notifyNew(list) {
  const ids = new Set(list.map((c) => c.id));
  if (known) {
    const fresh = list.some((c) => !known.has(c.id));
    if (fresh) beep();
  }
  known = ids;
}

/** Waiting conversations plus my conversations with unread customer messages. */
function attentionCount({ mine, waiting }) {
  return waiting.length + mine.filter((c) => c.unread_count > 0).length;
}
