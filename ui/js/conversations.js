// "Conversas": the open conversations (polled every 2 s until the WebSocket arrives) and, for the
// chosen one, its messages and a composer to answer in text.

import { ApiError, get, post } from "./api.js";
import { formatDay, formatPhone, formatTime, h, randomKey, replace } from "./dom.js";
import { has, onLangChange, t } from "./i18n.js";
import { messageList } from "./chat.js";
import { icon } from "./icons.js";

const POLL_MS = 2000;

export function stateBadge(state) {
  const key = `state.${state}`;
  return h("span", { class: `badge state-${state}`, ...(has(key) ? { i18n: key } : { text: state }) });
}

function displayName(c) {
  return c.contact_name || formatPhone(c.contact_wa_id);
}

export function conversationsSection(container, { user }) {
  const list = h("div", { id: "conv-list", class: "conv-list", role: "list" });
  const listStatus = h("div", { class: "list-status muted" });
  const count = h("span", { class: "count-pill", text: "0" });
  const pane = h("section", { id: "conv-pane", class: "conv-pane" });
  replace(
    container,
    h(
      "div",
      { class: "conversations" },
      h("aside", { class: "conv-sidebar" }, h("div", { class: "panel-title" }, h("h2", { i18n: "conv.title" }), count), listStatus, list),
      pane,
    ),
  );

  let conversations = [];
  let lastListJson = "";
  let selectedId = null;
  let view = null;
  let timer = null;
  let stopped = false;

  function renderEmptyPane() {
    replace(pane, h("div", { class: "empty-state" }, h("div", { class: "empty-icon" }, icon("chat", { size: 48 })), h("p", { i18n: "conv.pick" })));
  }

  function renderList() {
    count.textContent = String(conversations.length);
    if (!conversations.length) {
      replace(list, h("p", { class: "empty-list muted", i18n: "conv.empty" }));
      return;
    }
    replace(
      list,
      conversations.map((c) =>
        h(
          "a",
          {
            href: `#/conversations/${c.id}`,
            class: `conv-item${c.id === selectedId ? " selected" : ""}`,
            role: "listitem",
            dataset: { id: c.id, waId: c.contact_wa_id },
          },
          h(
            "div",
            { class: "conv-line" },
            h("span", { class: "conv-name", text: displayName(c) }),
            h("span", { class: "conv-time muted", text: shortWhen(c.last_message_at) }),
          ),
          h(
            "div",
            { class: "conv-line muted small" },
            h("span", { class: "conv-number", text: formatPhone(c.contact_wa_id) }),
            h("span", { class: "conv-protocol", i18n: "conv.protocol", i18nArgs: { protocol: c.protocol } }),
          ),
          h(
            "div",
            { class: "conv-line" },
            stateBadge(c.state),
            c.unread_count > 0
              ? h("span", { class: "unread", text: String(c.unread_count), i18nTitle: "conv.unread", i18nArgs: { n: c.unread_count } })
              : null,
          ),
        ),
      ),
    );
  }

  async function pollList() {
    if (stopped) return;
    try {
      const data = await get("/api/conversations?open=true&limit=200");
      const next = (data?.conversations || []).slice().sort((a, b) => b.last_message_at - a.last_message_at);
      const json = JSON.stringify(next);
      listStatus.textContent = "";
      if (json !== lastListJson) {
        lastListJson = json;
        conversations = next;
        renderList();
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      listStatus.textContent = `${t("conv.loadError")} ${e instanceof ApiError ? e.describe() : ""}`;
    }
    if (!stopped) timer = setTimeout(pollList, POLL_MS);
  }

  function select(id) {
    if (id === selectedId) return;
    view?.destroy();
    view = null;
    selectedId = id;
    for (const item of list.querySelectorAll(".conv-item")) item.classList.toggle("selected", Number(item.dataset.id) === id);
    if (id) view = conversationView(pane, id, { user, onRead: () => pollNowSoon() });
    else renderEmptyPane();
  }

  function pollNowSoon() {
    clearTimeout(timer);
    timer = setTimeout(pollList, 150);
  }

  const offLang = onLangChange(() => {
    lastListJson = "";
    renderList();
  });
  renderEmptyPane();
  pollList();

  return {
    route(parts) {
      const id = Number(parts[0]);
      select(Number.isInteger(id) && id > 0 ? id : null);
    },
    destroy() {
      stopped = true;
      clearTimeout(timer);
      offLang();
      view?.destroy();
    },
  };
}

function shortWhen(ms) {
  if (!ms) return "";
  const today = new Date().toDateString() === new Date(ms).toDateString();
  return today ? formatTime(ms) : formatDay(ms);
}

/** One conversation: header, messages (polled), composer. */
function conversationView(pane, id, { user, onRead }) {
  const header = h("header", { class: "conv-header" });
  const older = h("button", { type: "button", class: "btn btn-small btn-ghost older", i18n: "msg.older", hidden: true });
  const messagesEl = h("div", { id: "messages", class: "messages chat-bg", "aria-live": "polite" });
  const scroller = h("div", { class: "messages-scroll" }, h("div", { class: "older-wrap" }, older), messagesEl);
  const error = h("div", { id: "composer-error", class: "form-error composer-error", role: "alert" });
  const input = h("textarea", { id: "composer-input", rows: 1, i18nPlaceholder: "composer.placeholder", maxlength: 4096 });
  const send = h("button", { id: "composer-send", type: "submit", class: "btn btn-primary", i18n: "composer.send" });
  const form = h("form", { class: "composer" }, input, send);
  replace(pane, header, scroller, error, form);

  const messages = new Map();
  let nextBefore = undefined; // undefined: first page not loaded; null: no older page
  let conversation = null;
  let lastRender = "";
  let timer = null;
  let stopped = false;
  let first = true;
  let markingRead = false;

  function renderHeader() {
    if (!conversation) return;
    const c = conversation;
    replace(
      header,
      h("div", { class: "avatar", text: (displayName(c)[0] || "?").toUpperCase() }),
      h(
        "div",
        { class: "conv-header-main" },
        h("div", { class: "conv-header-name", id: "conv-title", text: displayName(c) }),
        h("div", { class: "muted small" }, formatPhone(c.contact_wa_id)),
      ),
      h("div", { class: "conv-header-side" }, h("span", { class: "protocol", i18n: "conv.protocol", i18nArgs: { protocol: c.protocol } }), stateBadge(c.state)),
    );
    const closed = Boolean(c.closed_at);
    input.disabled = closed;
    send.disabled = closed;
    if (closed) showError("conv.closed");
  }

  function render() {
    const sorted = [...messages.values()].sort((a, b) => a.id - b.id);
    const signature = JSON.stringify(sorted.map((m) => [m.id, m.status, m.media_id, m.body]));
    older.hidden = !nextBefore;
    if (signature === lastRender) return;
    lastRender = signature;
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    if (!sorted.length) replace(messagesEl, h("p", { class: "empty-list muted", i18n: "msg.empty" }));
    else replace(messagesEl, messageList(sorted, { meId: user.id }));
    if (first || atBottom) scroller.scrollTop = scroller.scrollHeight;
    else scroller.scrollTop = scroller.scrollHeight - fromBottom;
    first = false;
  }

  function merge(list) {
    for (const m of list || []) messages.set(m.id, m);
  }

  async function poll() {
    if (stopped) return;
    try {
      const [conv, page] = await Promise.all([
        get(`/api/conversations/${id}`),
        get(`/api/conversations/${id}/messages?limit=50`),
      ]);
      if (stopped) return;
      conversation = conv.conversation;
      merge(page.messages);
      if (nextBefore === undefined) nextBefore = page.next_before ?? null;
      renderHeader();
      render();
      if (conversation.unread_count > 0 && !markingRead) markRead();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      showText(e instanceof ApiError ? e.describe() : String(e));
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  async function markRead() {
    markingRead = true;
    try {
      await post(`/api/conversations/${id}/read`, {});
      onRead?.();
    } catch {
      // Unread counts are a convenience; the next poll tries again.
    } finally {
      markingRead = false;
    }
  }

  async function loadOlder() {
    if (!nextBefore) return;
    older.disabled = true;
    try {
      const page = await get(`/api/conversations/${id}/messages?limit=50&before=${nextBefore}`);
      merge(page.messages);
      nextBefore = page.next_before ?? null;
      render();
    } catch (e) {
      showText(e instanceof ApiError ? e.describe() : String(e));
    } finally {
      older.disabled = false;
    }
  }

  function showError(key, args) {
    error.dataset.i18n = key;
    if (args) error.dataset.i18nArgs = JSON.stringify(args);
    else delete error.dataset.i18nArgs;
    error.textContent = t(key, args);
  }

  function showText(text) {
    delete error.dataset.i18n;
    delete error.dataset.i18nArgs;
    error.textContent = text;
  }

  async function submit(ev) {
    ev.preventDefault();
    const body = input.value.trim();
    if (!body || send.disabled) return;
    send.disabled = true;
    showText("");
    try {
      const result = await post(`/api/conversations/${id}/messages`, { type: "text", body, idempotency_key: randomKey() });
      merge([result.message]);
      input.value = "";
      autoGrow();
      first = true; // jump to the new message
      render();
    } catch (e) {
      if (e instanceof ApiError && e.code === "outside_service_window") showError("composer.outsideWindow");
      else if (e instanceof ApiError && e.code === "conversation_closed") showError("composer.closed");
      else showError("composer.error", { message: e instanceof ApiError ? e.describe() : String(e) });
    } finally {
      send.disabled = Boolean(conversation?.closed_at);
      input.focus();
    }
  }

  function autoGrow() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 140)}px`;
  }

  form.addEventListener("submit", submit);
  input.addEventListener("input", autoGrow);
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  older.addEventListener("click", loadOlder);
  const offLang = onLangChange(() => {
    lastRender = "";
    render();
  });
  poll();
  input.focus();

  return {
    destroy() {
      stopped = true;
      clearTimeout(timer);
      offLang();
    },
  };
}
