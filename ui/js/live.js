// Live updates: one WebSocket per tab (`/api/ws`). Reconnects by itself with backoff, passes the
// last event id it saw as `since` so the server replays what was missed, and tells the views to
// reload when the server answers `reset` (too far behind) or after a reconnection. Also carries
// the ephemeral "who is viewing / typing" messages.
//
//   startLive() / stopLive()       with the session
//   onEvent(fn)                    fn({id, kind, conversation_id, payload, at}) for every event
//   onReload(fn)                   fn(reason): the views must re-read their data ("connect",
//                                  "reconnect", "reset")
//   onStatus(fn)                   fn(connected: boolean), called at once with the current status
//   onViewers(fn)                  fn({conversation_id, viewers: [{user_id, name, typing}]})
//   setViewing(conversationId)     the conversation this tab shows (or null)
//   notifyTyping(conversationId)   call on every keystroke; sent at most every TYPING_EVERY_MS

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
const STABLE_MS = 10000; // a connection open this long resets the backoff
const TYPING_EVERY_MS = 2500;
const PING_MS = 25000; // keeps idle connections through proxies

const eventHandlers = new Set();
const reloadHandlers = new Set();
const statusHandlers = new Set();
const viewersHandlers = new Set();

let socket = null;
let running = false;
let connected = false;
let everConnected = false;
let lastEventId = null;
let attempt = 0;
let retryTimer = null;
let openedAt = 0;
let viewing = null;
let lastTypingSent = 0;
let pingTimer = null;

function subscribe(set, fn) {
  set.add(fn);
  return () => set.delete(fn);
}

export const onEvent = (fn) => subscribe(eventHandlers, fn);
export const onReload = (fn) => subscribe(reloadHandlers, fn);
export const onViewers = (fn) => subscribe(viewersHandlers, fn);

export function onStatus(fn) {
  statusHandlers.add(fn);
  fn(connected);
  return () => statusHandlers.delete(fn);
}

export function isConnected() {
  return connected;
}

function emit(set, value) {
  for (const fn of [...set]) {
    try {
      fn(value);
    } catch (e) {
      console.error("live handler failed", e);
    }
  }
}

function setConnected(value) {
  if (connected === value) return;
  connected = value;
  emit(statusHandlers, value);
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const since = lastEventId != null ? `?since=${encodeURIComponent(lastEventId)}` : "";
  return `${scheme}//${location.host}/api/ws${since}`;
}

export function startLive() {
  if (running) return;
  running = true;
  attempt = 0;
  connect();
  clearInterval(pingTimer);
  pingTimer = setInterval(() => send({ type: "ping" }), PING_MS);
}

export function stopLive() {
  running = false;
  clearTimeout(retryTimer);
  retryTimer = null;
  viewing = null;
  lastEventId = null;
  everConnected = false;
  clearInterval(pingTimer);
  const s = socket;
  socket = null;
  if (s) s.close(1000, "logout");
  setConnected(false);
}

function connect() {
  if (!running) return;
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (e) {
    scheduleReconnect();
    return;
  }
  socket = ws;
  ws.addEventListener("open", () => {
    openedAt = Date.now();
  });
  ws.addEventListener("message", (ev) => {
    if (socket !== ws) return;
    handleMessage(ev.data);
  });
  ws.addEventListener("close", () => {
    if (socket !== ws) return;
    socket = null;
    setConnected(false);
    scheduleReconnect();
  });
  // An error is always followed by close.
}

function scheduleReconnect() {
  if (!running) return;
  if (openedAt && Date.now() - openedAt > STABLE_MS) attempt = 0;
  openedAt = 0;
  const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  attempt += 1;
  const delay = base / 2 + Math.random() * base; // jitter, so tabs do not reconnect together
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, delay);
}

function handleMessage(data) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return;
  }
  switch (msg.type) {
    case "hello": {
      const wasConnected = everConnected;
      everConnected = true;
      if (lastEventId == null || (typeof msg.last_event_id === "number" && msg.last_event_id < lastEventId)) {
        // First connection (or a server whose event log restarted): start from here.
        lastEventId = msg.last_event_id ?? lastEventId;
      }
      setConnected(true);
      sendView();
      // The replay brings the missed events, but what the views read over HTTP before this
      // connection (first load, fallback refresh while the socket was down) may predate the
      // point the socket starts from: they re-read once.
      emit(reloadHandlers, wasConnected ? "reconnect" : "connect");
      break;
    }
    case "event":
      if (typeof msg.id === "number") {
        if (lastEventId != null && msg.id <= lastEventId) return; // seen already
        lastEventId = msg.id;
      }
      emit(eventHandlers, msg);
      break;
    case "reset":
      lastEventId = typeof msg.last_event_id === "number" ? msg.last_event_id : lastEventId;
      emit(reloadHandlers, "reset");
      break;
    case "viewers":
      emit(viewersHandlers, msg);
      break;
    case "pong":
      break;
    default:
      break;
  }
}

function send(obj) {
  if (socket && socket.readyState === WebSocket.OPEN && connected) {
    socket.send(JSON.stringify(obj));
    return true;
  }
  return false;
}

function sendView() {
  send({ type: "view", conversation_id: viewing });
}

/** The conversation this tab shows, or null. Re-sent after every reconnection. */
export function setViewing(conversationId) {
  const id = conversationId ?? null;
  if (id === viewing) return;
  viewing = id;
  lastTypingSent = 0;
  sendView();
}

/** Call on every keystroke in the composer; sends `typing` at most every TYPING_EVERY_MS. */
export function notifyTyping(conversationId) {
  const now = Date.now();
  if (now - lastTypingSent < TYPING_EVERY_MS) return;
  if (send({ type: "typing", conversation_id: conversationId })) lastTypingSent = now;
}
