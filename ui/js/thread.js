// The messages of one conversation: loaded page by page upward (never the whole history), merged
// with live updates, rendered incrementally (a status tick replaces one bubble, a new message is
// appended) so a long conversation stays responsive. The bot's transcript is marked above the
// human part.

import { ApiError, get } from "./api.js";
import { h, replace } from "./dom.js";
import { daySeparator, messageBubble } from "./chat.js";

const PAGE = 50;

/**
 * `conversationId`, `meId`, `onReply(m)` (null: no reply action), `onError(error)`,
 * `onInbound()` (a new customer message arrived). Returns the element and the operations.
 */
export function createThread({ conversationId, meId, onReply, onError, onInbound }) {
  const older = h("button", { type: "button", id: "older-button", class: "btn btn-small btn-ghost older", i18n: "msg.older", hidden: true });
  const loading = h("div", { class: "older-loading muted small", i18n: "msg.loading", hidden: true });
  const list = h("div", { id: "messages", class: "messages", "aria-live": "polite" });
  const newBelow = h("button", { type: "button", id: "new-messages-button", class: "new-below", i18n: "msg.newBelow", hidden: true });
  const scroller = h("div", { class: "messages-scroll chat-bg" }, h("div", { class: "older-wrap" }, older, loading), list);
  const el = h("div", { class: "thread" }, scroller, newBelow);

  const messages = new Map(); // id -> message
  const rows = new Map(); // id -> rendered row
  let sorted = []; // messages by id
  let nextBefore; // undefined: nothing loaded yet; null: the first page is loaded
  let loadingOlder = false;
  let stopped = false;

  const byWamid = (wamid) => sorted.find((m) => m.wamid === wamid) || null;
  const bubbleOptions = { meId, onReply, findByWamid: byWamid, onQuoteClick: scrollToMessage };

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
    newBelow.hidden = true;
  }

  function scrollToMessage(id) {
    const row = rows.get(id);
    if (!row) return;
    row.scrollIntoView({ block: "center" });
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 1200);
  }

  /** Separators that go before `m`, given the message shown before it (or null). */
  function separators(m, prev) {
    const out = [];
    if (!prev && m.phase === "bot") out.push(phaseMarker("bot"));
    if (prev && prev.phase === "bot" && m.phase === "human") out.push(phaseMarker("human"));
    if (!prev || new Date(prev.created_at).toDateString() !== new Date(m.created_at).toDateString()) out.push(daySeparator(m.created_at));
    return out;
  }

  function rowFor(m) {
    const row = messageBubble(m, bubbleOptions);
    rows.set(m.id, row);
    return row;
  }

  function renderAll() {
    rows.clear();
    const nodes = [];
    let prev = null;
    for (const m of sorted) {
      nodes.push(...separators(m, prev), rowFor(m));
      prev = m;
    }
    if (!nodes.length) nodes.push(h("p", { class: "empty-list muted", i18n: "msg.empty" }));
    replace(list, nodes);
    older.hidden = !nextBefore;
  }

  function sortAll() {
    sorted = [...messages.values()].sort((a, b) => a.id - b.id);
  }

  /** Merges messages; re-renders only what changed. Returns the new ones. */
  function merge(incoming, { prepend = false } = {}) {
    const fresh = [];
    const changed = [];
    for (const m of incoming || []) {
      const old = messages.get(m.id);
      if (!old) fresh.push(m);
      else if (signature(old) !== signature(m)) changed.push(m);
      messages.set(m.id, old ? { ...old, ...m, phase: m.phase || old.phase } : m);
    }
    for (const m of changed) {
      const row = rows.get(m.id);
      if (row) row.replaceWith(rowFor(messages.get(m.id)));
    }
    // A message that just got its WhatsApp id can now be quoted by the replies to it.
    const newWamids = new Set(changed.map((m) => m.wamid).filter(Boolean));
    if (newWamids.size) {
      for (const q of sorted) {
        if (q.reply_to_wamid && newWamids.has(q.reply_to_wamid) && rows.has(q.id)) rows.get(q.id).replaceWith(rowFor(q));
      }
    }
    if (!fresh.length) return fresh;
    const lastShown = sorted[sorted.length - 1];
    const firstShown = sorted[0];
    const appendOnly = !prepend && lastShown && fresh.every((m) => m.id > lastShown.id);
    const prependOnly = prepend && firstShown && rows.has(firstShown.id) && fresh.every((m) => m.id < firstShown.id);
    const wasAtBottom = atBottom();
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    sortAll();
    if (appendOnly) {
      let prev = lastShown;
      for (const m of fresh.sort((a, b) => a.id - b.id)) {
        list.append(...separators(m, prev), rowFor(m));
        prev = m;
      }
      if (wasAtBottom) scrollToBottom();
      else newBelow.hidden = false;
    } else if (prependOnly) {
      prependRows(fresh.sort((a, b) => a.id - b.id), firstShown);
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
    } else {
      renderAll();
      if (prepend) scroller.scrollTop = scroller.scrollHeight - fromBottom;
      else scrollToBottom();
    }
    return fresh;
  }

  /** Older messages above what is shown, without rebuilding it (long histories stay cheap). */
  function prependRows(older, firstShown) {
    const anchor = rows.get(firstShown.id);
    while (list.firstChild && list.firstChild !== anchor) list.firstChild.remove(); // its old separators
    const nodes = [];
    let prev = null;
    for (const m of older) {
      nodes.push(...separators(m, prev), rowFor(m));
      prev = m;
    }
    nodes.push(...separators(firstShown, prev));
    anchor.before(...nodes);
  }

  async function loadLatest() {
    const page = await get(`/api/conversations/${conversationId}/messages?limit=${PAGE}`);
    if (stopped) return [];
    const incoming = page?.messages || [];
    const newest = sorted[sorted.length - 1];
    const oldestIncoming = incoming[0];
    // A gap between what we show and the newest page (many messages while away): start over from
    // the newest page rather than show a hole.
    if (newest && oldestIncoming && page.next_before && oldestIncoming.id > newest.id && !incoming.some((m) => messages.has(m.id))) {
      messages.clear();
      sorted = [];
      nextBefore = page.next_before;
      merge(incoming);
      return incoming;
    }
    if (nextBefore === undefined) nextBefore = page?.next_before ?? null;
    const fresh = merge(incoming);
    older.hidden = !nextBefore;
    return fresh;
  }

  async function loadOlder() {
    if (!nextBefore || loadingOlder) return;
    loadingOlder = true;
    older.disabled = true;
    loading.hidden = false;
    try {
      const page = await get(`/api/conversations/${conversationId}/messages?limit=${PAGE}&before=${nextBefore}`);
      if (stopped) return;
      nextBefore = page?.next_before ?? null;
      merge(page?.messages || [], { prepend: true });
      older.hidden = !nextBefore;
    } catch (e) {
      onError?.(e);
    } finally {
      loadingOlder = false;
      older.disabled = false;
      loading.hidden = true;
    }
  }

  older.addEventListener("click", loadOlder);
  newBelow.addEventListener("click", scrollToBottom);
  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop < 120 && nextBefore) loadOlder();
    if (atBottom()) newBelow.hidden = true;
  });

  return {
    el,
    /** First page (and later: the newest page, merged). Resolves to the new messages. */
    async refresh() {
      try {
        const first = nextBefore === undefined;
        const fresh = await loadLatest();
        if (first) {
          renderAll();
          scrollToBottom();
        } else if (fresh.some((m) => m.direction === "in")) onInbound?.();
        return fresh;
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) onError?.(e);
        return [];
      }
    },
    /** A message known from elsewhere (the send answer, an event payload). */
    add(m) {
      const fresh = merge([m]);
      if (fresh.length && !atBottom()) scrollToBottom();
      if (fresh.some((x) => x.direction === "in")) onInbound?.();
    },
    setStatus(messageId, status) {
      const m = messages.get(messageId);
      if (m && status) merge([{ ...m, status }]);
      return Boolean(m);
    },
    has: (id) => messages.has(id),
    rerender: renderAll,
    destroy() {
      stopped = true;
    },
  };
}

function phaseMarker(phase) {
  return h("div", { class: `phase-marker phase-marker-${phase}`, dataset: { testid: `phase-${phase}` } }, h("span", { i18n: `msg.phase.${phase}` }));
}

function signature(m) {
  return `${m.status}|${m.wamid}|${m.body}|${m.media_id}|${m.error_code}|${m.updated_at}`;
}
