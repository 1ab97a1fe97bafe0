// One conversation, as the desk, the supervisor view and the history dialog show it: header with
// the protocol number and the actions (take, assign, transfer, finalize), who else is viewing or
// typing, the messages and the private notes, the composer (or why there is none), and the protocol
// form beside it. Kept live by the WebSocket events of this conversation.

import { ApiError, describe, get, post } from "./api.js";
import { contactName, debounce, formatDateTime, formatDuration, formatPhone, h, replace, setRawText } from "./dom.js";
import { has, onLangChange, t } from "./i18n.js";
import { icon } from "./icons.js";
import { onEvent, onReload, onStatus, onViewers, setViewing } from "./live.js";
import { createThread } from "./thread.js";
import { createComposer } from "./composer.js";
import { createProtocolForm } from "./form.js";
import { listOf, loadAgents, openAssignDialog, openFinalizeDialog, openTransferDialog } from "./actions.js";
import { refresh as refreshWorklist } from "./worklist.js";
import { can } from "./me.js";
import { scheduleButton } from "./schedules.js";
import { openStartConversation } from "./start_conversation.js";

const FALLBACK_REFRESH_MS = 15000;
const STAFF_ROLES = new Set(["supervisor", "admin"]);

/** The state as a badge; `id` for the one in a conversation's header. */
export function stateBadge(state, id = null) {
  const key = `state.${state}`;
  return h("span", { id, class: `badge state-${state}`, dataset: { state }, ...(has(key) ? { i18n: key } : { text: state }) });
}

export function isClosed(c) {
  return c?.state === "closed" || Boolean(c?.closed_at);
}

/**
 * `container` receives the view. `mode`: "desk" (an agent working), "supervise" (read-only with
 * assign and transfer) or "history" (read-only, no actions, no form). `onLeave()`: the
 * conversation left the caller's hands (finalized, transferred). `onOpenConversation(id)`: a
 * previous conversation of the contact was chosen.
 */
export function conversationView(container, id, { user, mode = "desk", onLeave, onOpenConversation }) {
  const staff = STAFF_ROLES.has(user.role);
  const live = mode !== "history";
  const header = h("header", { class: "conv-header", id: "conv-header" });
  const viewers = h("div", { id: "conv-viewers", class: "viewers", "aria-live": "polite", hidden: true });
  const banner = h("div", { id: "conv-banner", class: "conv-banner", role: "alert", hidden: true });
  const tabMessages = h("button", { type: "button", id: "tab-messages", class: "tab active", role: "tab", "aria-selected": "true", i18n: "conv.tabMessages" });
  const notesCount = h("span", { class: "tab-count" });
  const tabNotes = h("button", { type: "button", id: "tab-notes", class: "tab", role: "tab", "aria-selected": "false" }, h("span", { i18n: "conv.tabNotes" }), notesCount);
  const tabs = h("div", { class: "tabs", role: "tablist" }, tabMessages, tabNotes);
  const notesPanel = h("div", { id: "notes-panel", class: "notes-panel", hidden: true });
  const bottom = h("div", { class: "conv-bottom" });
  const dropZone = h("div", { id: "drop-zone", class: "drop-zone", hidden: true }, icon("attach", { size: 32 }), h("span", { i18n: "composer.drop" }));

  let conversation = null;
  let composer = null;
  let form = null;
  let stopped = false;
  let fallbackTimer = null;
  let notes = null; // loaded on first open of the tab
  let lastViewers = [];
  const names = { loaded: false, queues: new Map(), agents: new Map() };

  const thread = createThread({
    conversationId: id,
    meId: user.id,
    onReply: mode === "desk" ? (m) => composer?.setReply(m) : null,
    onError: (e) => showBanner(describe(e)),
    onInbound: () => markReadSoon(),
  });
  const main = h("section", { class: "conv-main" }, header, viewers, banner, tabs, thread.el, notesPanel, bottom, dropZone);
  const root = h("div", { class: `conv-view mode-${mode}`, dataset: { conversationId: id, mode } }, main);
  replace(container, root);

  // ---------- Header ----------

  function renderHeader() {
    const c = conversation;
    const closed = isClosed(c);
    const meta = [h("span", { class: "meta-item", text: formatPhone(c.contact_wa_id) })];
    if (c.queue_name) meta.push(h("span", { class: "meta-item", i18n: "conv.queue", i18nArgs: { queue: c.queue_name } }));
    if (c.agent_name && c.state === "assigned") meta.push(h("span", { class: "meta-item", i18n: "conv.agent", i18nArgs: { agent: c.agent_name } }));
    if (c.state === "queued" && c.queued_at) meta.push(h("span", { class: "meta-item", i18n: "conv.waitingFor", i18nArgs: { time: formatDuration(Date.now() - c.queued_at) } }));
    if (closed && c.closed_at) meta.push(h("span", { class: "meta-item", i18n: "conv.closedAt", i18nArgs: { when: formatDateTime(c.closed_at) } }));
    replace(
      header,
      h("div", { class: "avatar", text: (contactName(c)[0] || "?").toUpperCase() }),
      h(
        "div",
        { class: "conv-header-main" },
        h(
          "div",
          { class: "conv-header-top" },
          h("span", { class: "conv-header-name", id: "conv-title", text: contactName(c) }),
          h("span", { class: "protocol", id: "conv-protocol", dataset: { protocol: c.protocol }, i18n: "conv.protocol", i18nArgs: { protocol: c.protocol } }),
          stateBadge(c.state, "conv-state"),
        ),
        h("div", { class: "muted small conv-meta" }, meta),
      ),
      h("div", { class: "conv-actions" }, actionButtons(c)),
    );
  }

  function actionButtons(c) {
    if (mode === "history" || isClosed(c) || c.lost) return [];
    const out = [];
    if (mode === "desk" && c.state === "queued" && c.can_take !== false) {
      out.push(h("button", { type: "button", id: "take-button", class: "btn btn-primary", i18n: "conv.take", on: { click: take } }));
    }
    if (staff && (c.state === "queued" || c.state === "assigned")) {
      out.push(h("button", { type: "button", id: "assign-button", class: "btn btn-ghost", i18n: "conv.assign", on: { click: () => openAssignDialog(c, { onDone: changed }) } }));
    }
    const mayTransfer = (c.can_manage ?? (c.can_act || staff)) && (c.state === "queued" || c.state === "assigned");
    if (mayTransfer) {
      out.push(h("button", { type: "button", id: "transfer-button", class: "btn btn-ghost", i18n: "conv.transfer", on: { click: () => openTransferDialog(c, { me: user, onDone: left }) } }));
    }
    if (mode === "desk" && c.can_act && c.state === "assigned" && can("schedule_messages")) out.push(scheduleButton(c, user));
    if (mode === "desk" && c.can_act && c.state === "assigned") {
      out.push(h("button", { type: "button", id: "finalize-button", class: "btn btn-secondary", i18n: "conv.finalize", on: { click: () => openFinalizeDialog(c, { form, onDone: left }) } }));
    }
    return out;
  }

  async function take(ev) {
    const button = ev.currentTarget;
    button.disabled = true;
    hideBanner();
    try {
      await post(`/api/conversations/${id}/assign`, {});
      await changed();
      composer?.focus();
    } catch (e) {
      button.disabled = false;
      if (e instanceof ApiError && e.code === "agent_at_capacity") showBanner(t("conv.takeAtCapacity"));
      else showBanner(describe(e));
    }
  }

  async function changed() {
    refreshWorklist();
    await reloadConversation();
  }

  function left() {
    refreshWorklist();
    if (mode === "desk") onLeave?.();
    else reloadConversation();
  }

  // ---------- Bottom: composer or why not ----------

  function canWrite(c) {
    return mode === "desk" && c.can_act && c.state === "assigned" && !isClosed(c);
  }

  function readOnlyReason(c) {
    if (mode === "history") return "conv.readOnly.history";
    if (c.lost) return "conv.readOnly.lost";
    if (isClosed(c)) return "conv.readOnly.closed";
    if (mode === "supervise") return "conv.readOnly.supervise";
    if (c.state === "bot") return "conv.readOnly.bot";
    if (c.state === "awaiting_reply") return "conv.readOnly.awaitingReply";
    if (c.state === "queued") return "conv.readOnly.queued";
    return "conv.readOnly.other";
  }

  function renderBottom() {
    const c = conversation;
    if (canWrite(c)) {
      if (!composer) {
        composer = createComposer({ conversationId: id, user, onSent: (m) => thread.add(m) });
        replace(bottom, composer.el);
      }
      composer.setState(c);
      return;
    }
    composer?.destroy();
    composer = null;
    // A closed conversation's customer can be written again, with a template only.
    const restart =
      mode !== "supervise" && isClosed(c) && c.contact_id && can("send_template")
        ? h("button", {
            type: "button",
            id: "restart-template",
            class: "btn btn-secondary btn-small",
            i18n: "start.again",
            on: { click: () => openStartConversation({ user, contact: { id: c.contact_id, name: c.contact_name, wa_id: c.contact_wa_id }, channelId: c.channel_id }) },
          })
        : null;
    replace(bottom, h("div", { id: "composer-readonly", class: "composer-readonly", dataset: { reason: readOnlyReason(c) } }, h("span", { i18n: readOnlyReason(c), i18nArgs: { agent: c.agent_name || "" } }), restart ? [" ", restart] : null));
  }

  // ---------- Form ----------

  function renderForm() {
    if (mode === "history") return;
    const editable = mode === "desk" && Boolean(conversation.can_act) && !isClosed(conversation);
    if (!form) {
      form = createProtocolForm({ conversationId: id, editable, onOpenConversation });
      root.append(form.el);
    } else {
      form.setEditable(editable);
    }
  }

  // ---------- Notes and transfers ----------

  function showTab(which) {
    const notesOn = which === "notes";
    tabMessages.classList.toggle("active", !notesOn);
    tabNotes.classList.toggle("active", notesOn);
    tabMessages.setAttribute("aria-selected", String(!notesOn));
    tabNotes.setAttribute("aria-selected", String(notesOn));
    thread.el.hidden = notesOn;
    notesPanel.hidden = !notesOn;
    if (notesOn) loadNotes();
  }

  async function loadNotes() {
    try {
      const [notesData, transfersData] = await Promise.all([
        get(`/api/conversations/${id}/notes`),
        get(`/api/conversations/${id}/transfers`).catch(() => null),
      ]);
      if (listOf(transfersData, "transfers").length) await loadNames();
      if (stopped) return;
      notes = listOf(notesData, "notes");
      renderNotes(listOf(transfersData, "transfers"));
    } catch (e) {
      if (!stopped) replace(notesPanel, h("p", { class: "form-error", text: describe(e) }));
    }
  }

  function renderNotes(transfers) {
    setRawText(notesCount, notes.length ? String(notes.length) : "");
    const input = h("textarea", { id: "note-input", rows: 2, maxlength: 4000, i18nPlaceholder: "notes.placeholder" });
    const submit = h("button", { type: "submit", id: "note-submit", class: "btn btn-secondary", i18n: "notes.add" });
    const error = h("div", { id: "note-error", class: "form-error", role: "alert" });
    const noteForm = h("form", { class: "note-form" }, input, submit);
    noteForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = input.value.trim();
      if (!body) return;
      submit.disabled = true;
      try {
        await post(`/api/conversations/${id}/notes`, { body });
        input.value = "";
        await loadNotes();
      } catch (e) {
        setRawText(error, describe(e));
      } finally {
        submit.disabled = false;
      }
    });
    replace(
      notesPanel,
      h("p", { class: "muted small notes-help", i18n: "notes.help" }),
      h(
        "div",
        { id: "notes-list", class: "notes-list" },
        notes.length
          ? notes.map((n) =>
              h(
                "div",
                { class: "note", dataset: { testid: "note", id: n.id } },
                h("div", { class: "note-meta small muted" }, h("strong", { text: n.author_name || n.by_name || n.user_name || "" }), " · ", formatDateTime(n.created_at)),
                h("div", { class: "note-body", text: n.body }),
              ),
            )
          : h("p", { class: "muted small", i18n: "notes.empty" }),
      ),
      mode === "history" ? null : noteForm,
      error,
      transfers?.length ? h("h3", { i18n: "notes.transfers" }) : null,
      transfers?.length ? h("ul", { id: "transfer-history", class: "transfer-history" }, transfers.map(transferItem)) : null,
    );
  }

  function transferItem(tr) {
    const to =
      tr.to_agent_name ||
      tr.to_queue_name ||
      (tr.to_agent_id != null ? names.agents.get(tr.to_agent_id) || `#${tr.to_agent_id}` : names.queues.get(tr.to_queue_id) || `#${tr.to_queue_id}`);
    return h(
      "li",
      { dataset: { testid: "transfer-item" } },
      h("span", { class: "small muted", text: formatDateTime(tr.at) }),
      " ",
      h("span", { i18n: "notes.transferLine", i18nArgs: { by: tr.by_name || "", to } }),
      tr.note ? h("div", { class: "note-body small", text: tr.note }) : null,
    );
  }

  /** Names of queues and people for the transfer history (the records carry ids). */
  async function loadNames() {
    if (names.loaded) return;
    names.loaded = true;
    const [queues, agents] = await Promise.allSettled([get("/api/queues"), loadAgents()]);
    if (queues.status === "fulfilled") for (const q of listOf(queues.value, "queues")) names.queues.set(q.id, q.name);
    if (agents.status === "fulfilled") for (const a of agents.value || []) names.agents.set(a.id, a.name);
  }

  // ---------- Viewers ----------

  function renderViewers(list) {
    lastViewers = list;
    const others = (list || []).filter((v) => v.user_id !== user.id);
    viewers.hidden = !others.length;
    replace(
      viewers,
      others.map((v) =>
        h("span", {
          class: `viewer${v.typing ? " typing" : ""}`,
          dataset: { testid: "viewer", userId: v.user_id, typing: v.typing ? "true" : "false" },
          i18n: v.typing ? "viewers.typing" : "viewers.viewing",
          i18nArgs: { name: v.name || `#${v.user_id}` },
        }),
      ),
    );
  }

  // ---------- Loading ----------

  async function reloadConversation() {
    try {
      const data = await get(`/api/conversations/${id}`);
      if (stopped) return;
      conversation = data?.conversation || data;
      hideBanner();
      renderHeader();
      renderBottom();
      renderForm();
      markReadSoon();
    } catch (e) {
      if (stopped) return;
      if (e instanceof ApiError && e.status === 404) {
        if (!conversation) {
          replace(container, h("div", { class: "empty-state", id: "conv-missing" }, h("p", { i18n: "conv.notFound" })));
          stopped = true;
          return;
        }
        // It left my reach (transferred away, for instance): keep what is shown, read-only.
        conversation = { ...conversation, can_act: false, can_take: false, can_manage: false, lost: true };
        renderHeader();
        renderBottom();
        renderForm();
        return;
      }
      showBanner(describe(e));
    }
  }

  const markReadSoon = debounce(async () => {
    const c = conversation;
    if (stopped || mode !== "desk" || !c || c.lost || isClosed(c) || c.agent_id !== user.id || c.unread_count === 0) return;
    if (document.visibilityState !== "visible") return;
    try {
      await post(`/api/conversations/${id}/read`, {});
      refreshWorklist();
    } catch {
      // Unread counts are a convenience.
    }
  }, 400);

  function showBanner(text) {
    banner.hidden = !text;
    setRawText(banner, text);
  }

  function hideBanner() {
    banner.hidden = true;
  }

  const reloadSoon = debounce(() => reloadConversation(), 200);
  const refreshThreadSoon = debounce(() => thread.refresh(), 100);

  function onLiveEvent(ev) {
    if (ev.conversation_id !== id || conversation?.lost) return;
    const p = ev.payload || {};
    switch (ev.kind) {
      case "message.created":
        if (p.message && typeof p.message === "object") thread.add(p.message);
        else refreshThreadSoon();
        reloadSoon(); // window and unread
        break;
      case "message.status":
        if (!(p.message_id && p.status && thread.setStatus(p.message_id, p.status))) refreshThreadSoon();
        break;
      case "note.created":
        if (notes) loadNotes();
        else setRawText(notesCount, notesCount.textContent ? String(Number(notesCount.textContent) + 1) : "1");
        break;
      case "conversation.updated":
        form?.reload();
        reloadSoon();
        break;
      default:
        if (ev.kind?.startsWith("conversation.")) {
          reloadSoon();
          if (notes) loadNotes();
        }
    }
  }

  function onDragOver(ev) {
    if (!composer || ![...(ev.dataTransfer?.types || [])].includes("Files")) return;
    ev.preventDefault();
    dropZone.hidden = false;
  }

  function onDrop(ev) {
    dropZone.hidden = true;
    if (!composer || !ev.dataTransfer?.files?.length) return;
    ev.preventDefault();
    composer.addFiles([...ev.dataTransfer.files]);
  }

  main.addEventListener("dragover", onDragOver);
  main.addEventListener("dragleave", (ev) => {
    if (!main.contains(ev.relatedTarget)) dropZone.hidden = true;
  });
  main.addEventListener("drop", onDrop);
  tabMessages.addEventListener("click", () => showTab("messages"));
  tabNotes.addEventListener("click", () => showTab("notes"));
  const onVisible = () => markReadSoon();
  document.addEventListener("visibilitychange", onVisible);

  const offs = [];
  if (live) {
    offs.push(
      onEvent(onLiveEvent),
      onReload(() => {
        if (conversation?.lost) return;
        reloadConversation();
        thread.refresh();
        form?.reload();
        if (notes) loadNotes();
      }),
      onViewers((msg) => {
        if (msg.conversation_id === id) renderViewers(msg.viewers);
      }),
      onStatus((up) => {
        clearInterval(fallbackTimer);
        fallbackTimer = up
          ? null
          : setInterval(() => {
              if (conversation?.lost) return;
              reloadConversation();
              thread.refresh();
            }, FALLBACK_REFRESH_MS);
      }),
    );
    setViewing(id);
  }
  offs.push(
    onLangChange(() => {
      thread.rerender();
      if (conversation) renderHeader();
      renderViewers(lastViewers);
    }),
  );
  const headerTimer = setInterval(() => conversation && conversation.state === "queued" && renderHeader(), 30000);

  reloadConversation();
  thread.refresh();

  return {
    id,
    /** Re-reads the conversation soon (the lists changed: it may have moved). */
    refresh: () => conversation?.lost || reloadSoon(),
    isLost: () => Boolean(conversation?.lost),
    /** Saves what the form has pending (before switching away). */
    flush: () => form?.flush(),
    destroy() {
      stopped = true;
      form?.destroy();
      composer?.destroy();
      thread.destroy();
      clearInterval(fallbackTimer);
      clearInterval(headerTimer);
      reloadSoon.cancel();
      refreshThreadSoon.cancel();
      markReadSoon.cancel();
      document.removeEventListener("visibilitychange", onVisible);
      for (const off of offs) off();
      if (live) setViewing(null);
    },
  };
}
