// "Atendimento", the agent's desk: on the left "Meus" (assigned to me) and "Aguardando" (waiting in
// my queues or in my personal line), with unread counts and waiting times, live; on the right the
// chosen conversation with its protocol form.

import { contactName, formatDuration, h, replace, shortWhen } from "./dom.js";
import { onLangChange } from "./i18n.js";
import { icon } from "./icons.js";
import { onWorklist } from "./worklist.js";
import { conversationView, stateBadge } from "./conversation.js";
import { openDialog } from "./dialog.js";
import { can } from "./me.js";
import { openStartConversation } from "./start_conversation.js";

export function deskSection(container, { user }) {
  const mineCount = h("span", { id: "count-mine", class: "count-pill", text: "0" });
  const waitingCount = h("span", { id: "count-waiting", class: "count-pill count-waiting", text: "0" });
  const mineList = h("div", { id: "list-mine", class: "conv-list", role: "list" });
  const waitingList = h("div", { id: "list-waiting", class: "conv-list", role: "list" });
  const status = h("div", { id: "desk-status", class: "list-status" });
  const pane = h("section", { id: "conv-pane", class: "conv-pane" });
  const startButton = can("send_template")
    ? h("button", { type: "button", id: "start-conversation", class: "btn btn-secondary btn-small start-button", i18n: "start.button", on: { click: () => openStartConversation({ user }) } })
    : null;
  replace(
    container,
    h(
      "div",
      { class: "conversations desk" },
      h(
        "aside",
        { class: "conv-sidebar", id: "desk-sidebar" },
        startButton,
        status,
        h("div", { class: "list-group" }, h("div", { class: "group-title" }, h("h2", { i18n: "desk.mine" }), mineCount), mineList),
        h("div", { class: "list-group" }, h("div", { class: "group-title" }, h("h2", { i18n: "desk.waiting" }), waitingCount), waitingList),
      ),
      pane,
    ),
  );

  let selectedId = null;
  let view = null;
  let current = { mine: [], waiting: [], loaded: false };

  function item(c, scope) {
    const waitingSince = scope === "waiting" ? c.queued_at : null;
    const personal = scope === "waiting" && c.waiting_agent_id === user.id;
    return h(
      "a",
      {
        href: `#/conversations/${c.id}`,
        class: `conv-item${c.id === selectedId ? " selected" : ""}`,
        role: "listitem",
        dataset: { testid: "conversation-item", id: c.id, waId: c.contact_wa_id, scope, state: c.state },
      },
      h("div", { class: "conv-line" }, h("span", { class: "conv-name", text: contactName(c) }), h("span", { class: "conv-time muted", text: shortWhen(c.last_message_at) })),
      h(
        "div",
        { class: "conv-line muted small" },
        h("span", { class: "conv-preview", text: c.last_message_preview || "" }),
        c.unread_count > 0 ? h("span", { class: "unread", dataset: { testid: "unread" }, text: String(c.unread_count), i18nTitle: "conv.unread", i18nArgs: { n: c.unread_count } }) : null,
      ),
      h(
        "div",
        { class: "conv-line small" },
        h("span", { class: "conv-queue muted", text: c.queue_name || "" }),
        waitingSince ? h("span", { class: "wait-time", dataset: { testid: "wait-time" }, i18n: "desk.waitingFor", i18nArgs: { time: formatDuration(Date.now() - waitingSince) } }) : null,
        personal ? h("span", { class: "badge badge-personal", i18n: "desk.personal" }) : null,
        scope === "mine" ? null : stateBadge(c.state),
      ),
    );
  }

  function renderList(el, list, scope, emptyKey) {
    if (!list.length) return replace(el, h("p", { class: "empty-list muted small", i18n: current.loaded ? emptyKey : "desk.loading" }));
    replace(el, list.map((c) => item(c, scope)));
  }

  function render() {
    mineCount.textContent = String(current.mine.length);
    waitingCount.textContent = String(current.waiting.length);
    waitingCount.classList.toggle("has-waiting", current.waiting.length > 0);
    renderList(mineList, current.mine, "mine", "desk.mineEmpty");
    renderList(waitingList, current.waiting, "waiting", "desk.waitingEmpty");
    status.hidden = !current.error;
    if (current.error) status.textContent = current.error.describe?.() || String(current.error);
  }

  function emptyPane() {
    replace(pane, h("div", { class: "empty-state" }, h("div", { class: "empty-icon" }, icon("chat", { size: 48 })), h("p", { i18n: "desk.pick" })));
  }

  function reopen() {
    const id = selectedId;
    view?.destroy();
    view = null;
    select(id);
  }

  function select(id) {
    if (id === selectedId && view) return;
    view?.destroy(); // flushes the form's pending edits
    view = null;
    selectedId = id;
    for (const el of container.querySelectorAll(".conv-item")) el.classList.toggle("selected", Number(el.dataset.id) === id);
    if (!id) return emptyPane();
    view = conversationView(pane, id, {
      user,
      mode: "desk",
      onLeave: () => {
        location.hash = "#/conversations";
      },
      onOpenConversation: (other) => openHistory(other, user),
    });
  }

  const offWork = onWorklist((s) => {
    const before = JSON.stringify(placeOf(current, selectedId));
    current = s;
    render();
    // The open conversation moved (taken, transferred, finalized elsewhere): re-read it; one
    // that had left my hands and is back gets a fresh view.
    const place = placeOf(current, selectedId);
    if (view?.isLost() && place) reopen();
    else if (view && JSON.stringify(place) !== before) view.refresh();
  });
  const offLang = onLangChange(render);
  const tick = setInterval(render, 30000); // waiting times
  emptyPane();

  return {
    route(parts) {
      const id = Number(parts[0]);
      select(Number.isInteger(id) && id > 0 ? id : null);
    },
    destroy() {
      offWork();
      offLang();
      clearInterval(tick);
      view?.destroy();
    },
  };
}

/** Where a conversation stands in the work lists (to notice it moved). */
function placeOf(lists, id) {
  const find = (list) => list.find((c) => c.id === id);
  const c = find(lists.mine) || find(lists.waiting);
  return c ? [lists.mine.includes(c) ? "mine" : "waiting", c.state, c.agent_id, c.queue_id, c.waiting_agent_id] : null;
}

/** A previous conversation of the contact, read-only, in a dialog. */
export function openHistory(id, user) {
  const body = h("div", { class: "history-body" });
  let view = null;
  openDialog({ id: "history-dialog", title: "history.title", wide: true, body: [body], onClose: () => view?.destroy() });
  view = conversationView(body, id, { user, mode: "history" });
}
