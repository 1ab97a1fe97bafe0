// "Supervisão" (supervisors and admins): the queues with their waiting counts and longest wait, the
// agents with presence and load/limit, and every open conversation they may see, live. A
// conversation opens read-only, with assign and transfer.

import { ApiError, describe, get, patch, put } from "./api.js";
import { contactName, debounce, formatDuration, h, replace, setRawText, shortWhen } from "./dom.js";
import { onLangChange, t } from "./i18n.js";
import { onEvent, onReload, onStatus } from "./live.js";
import { conversationView, stateBadge } from "./conversation.js";
import { listOf } from "./actions.js";
import { openHistory } from "./desk.js";

const FALLBACK_REFRESH_MS = 15000;
const STATE_FILTERS = ["", "queued", "assigned", "bot"];

export function supervisorSection(container, { user }) {
  const stateFilter = h(
    "select",
    { id: "sup-state-filter", class: "filter-select", i18nAriaLabel: "sup.filterState" },
    STATE_FILTERS.map((s) => h("option", { value: s, i18n: s ? `state.${s}` : "sup.allStates" })),
  );
  const queueFilter = h("select", { id: "sup-queue-filter", class: "filter-select", i18nAriaLabel: "sup.filterQueue" });
  const convCount = h("span", { id: "sup-count", class: "count-pill", text: "0" });
  const convList = h("div", { id: "sup-conversations", class: "conv-list", role: "list" });
  const status = h("div", { id: "sup-status", class: "list-status" });
  const pane = h("section", { id: "sup-pane", class: "sup-pane" });
  replace(
    container,
    h(
      "div",
      { class: "conversations supervisor" },
      h(
        "aside",
        { class: "conv-sidebar" },
        h("div", { class: "panel-title" }, h("h2", { i18n: "sup.conversations" }), convCount),
        h("div", { class: "filters" }, stateFilter, queueFilter),
        status,
        convList,
      ),
      pane,
    ),
  );

  let overview = { queues: [], agents: [] };
  let fetchedAt = Date.now();
  let conversations = [];
  let selectedId = null;
  let view = null;
  let stopped = false;
  let fallbackTimer = null;

  // ---------- Data ----------

  async function loadOverview() {
    try {
      const data = await get("/api/supervisor/overview");
      if (stopped) return;
      overview = { queues: listOf(data, "queues"), agents: listOf(data, "agents") };
      fetchedAt = Date.now();
      renderQueueFilter();
      refreshDashboard();
    } catch (e) {
      if (!stopped && !(e instanceof ApiError && e.status === 401)) setRawText(status, describe(e));
    }
  }

  async function loadConversations() {
    try {
      const data = await get("/api/conversations?scope=all&open=true&limit=500");
      if (stopped) return;
      conversations = listOf(data, "conversations");
      setRawText(status, "");
      renderList();
    } catch (e) {
      if (!stopped && !(e instanceof ApiError && e.status === 401)) setRawText(status, describe(e));
    }
  }

  const overviewSoon = debounce(loadOverview, 1000);
  const listSoon = debounce(loadConversations, 400);

  // ---------- Conversation list ----------

  function renderQueueFilter() {
    const value = queueFilter.value;
    replace(queueFilter, h("option", { value: "", i18n: "sup.allQueues" }), overview.queues.map((q) => h("option", { value: String(q.id), text: q.name })));
    queueFilter.value = value;
  }

  function renderList() {
    const state = stateFilter.value;
    const queue = queueFilter.value;
    const shown = conversations.filter((c) => (!state || c.state === state) && (!queue || String(c.queue_id) === queue));
    convCount.textContent = String(shown.length);
    if (!shown.length) return replace(convList, h("p", { class: "empty-list muted small", i18n: "sup.noConversations" }));
    replace(
      convList,
      shown.map((c) =>
        h(
          "a",
          {
            href: `#/supervisor/${c.id}`,
            class: `conv-item${c.id === selectedId ? " selected" : ""}`,
            role: "listitem",
            dataset: { testid: "conversation-item", id: c.id, waId: c.contact_wa_id, scope: "all", state: c.state },
          },
          h("div", { class: "conv-line" }, h("span", { class: "conv-name", text: contactName(c) }), h("span", { class: "conv-time muted", text: shortWhen(c.last_message_at) })),
          h(
            "div",
            { class: "conv-line small muted" },
            h("span", { class: "conv-queue", text: c.queue_name || "" }),
            h("span", { text: c.agent_name || "" }),
          ),
          h(
            "div",
            { class: "conv-line small" },
            stateBadge(c.state),
            c.state === "queued" && c.queued_at ? h("span", { class: "wait-time", i18n: "desk.waitingFor", i18nArgs: { time: formatDuration(Date.now() - c.queued_at) } }) : null,
            c.unread_count > 0 ? h("span", { class: "unread", text: String(c.unread_count) }) : null,
          ),
        ),
      ),
    );
  }

  // ---------- Dashboard ----------

  function queueName(id) {
    return overview.queues.find((q) => q.id === id)?.name || `#${id}`;
  }

  /** Re-renders the dashboard unless someone is editing a field in it. */
  function refreshDashboard() {
    if (selectedId) return;
    const active = document.activeElement;
    if (active && pane.contains(active) && active.matches("input, select")) return;
    renderDashboard();
  }

  function renderDashboard() {
    const elapsed = Date.now() - fetchedAt;
    replace(
      pane,
      h(
        "div",
        { class: "dashboard" },
        h("h2", { i18n: "sup.queues" }),
        h(
          "table",
          { id: "sup-queues", class: "data-table" },
          h("thead", {}, h("tr", {}, ["sup.queue", "sup.waiting", "sup.longestWait", "sup.assigned"].map((k) => h("th", { i18n: k })))),
          h(
            "tbody",
            {},
            overview.queues.length
              ? overview.queues.map((q) =>
                  h(
                    "tr",
                    { dataset: { testid: "queue-row", id: q.id }, class: q.waiting > 0 ? "has-waiting" : "" },
                    h("td", { text: q.name }),
                    h("td", { class: "num", dataset: { testid: "queue-waiting" }, text: String(q.waiting ?? 0) }),
                    h("td", { class: "num", text: q.waiting > 0 && q.longest_wait_ms != null ? formatDuration(q.longest_wait_ms + elapsed) : "—" }),
                    h("td", { class: "num", text: String(q.assigned ?? 0) }),
                  ),
                )
              : h("tr", {}, h("td", { colspan: "4", class: "muted", i18n: "sup.noQueues" })),
          ),
        ),
        h("h2", { i18n: "sup.agents" }),
        h(
          "table",
          { id: "sup-agents", class: "data-table" },
          h("thead", {}, h("tr", {}, ["sup.agent", "sup.presence", "sup.load", "sup.agentQueues"].map((k) => h("th", { i18n: k })))),
          h("tbody", {}, overview.agents.length ? overview.agents.map(agentRow) : h("tr", {}, h("td", { colspan: "4", class: "muted", i18n: "sup.noAgents" }))),
        ),
      ),
    );
  }

  function agentRow(a) {
    const full = a.limit != null && a.load >= a.limit;
    const presence = h(
      "select",
      { class: "compact-select", dataset: { testid: "agent-presence", id: a.id }, i18nAriaLabel: "sup.setPresence" },
      ["available", "paused", "offline"].map((p) => h("option", { value: p, text: t(`presence.${p}`) })),
    );
    presence.value = a.presence || "offline";
    presence.addEventListener("change", () => setPresence(a, presence));
    const limit = h("input", { type: "number", min: "0", max: "50", class: "limit-input", value: String(a.limit ?? ""), dataset: { testid: "agent-limit", id: a.id }, i18nAriaLabel: "sup.limit" });
    limit.addEventListener("change", () => setLimit(a, limit));
    return h(
      "tr",
      { dataset: { testid: "agent-row", id: a.id, presence: a.presence } },
      h("td", {}, h("span", { class: `presence-dot presence-${a.presence}` }), " ", a.name),
      h("td", {}, presence, a.presence === "paused" && a.pause_reason ? h("div", { class: "muted small", text: a.pause_reason }) : null),
      h(
        "td",
        { class: `num${full ? " at-limit" : ""}` },
        h("span", { class: "load", dataset: { testid: "agent-load" }, text: `${a.load ?? 0}/` }),
        limit,
        full ? h("div", { class: "small at-limit-text", i18n: "sup.atLimit" }) : null,
      ),
      h("td", { class: "small", text: (a.queue_ids || []).map(queueName).join(", ") }),
    );
  }

  async function setPresence(agent, select) {
    const body = { presence: select.value };
    if (select.value === "paused") {
      try {
        const reasons = (await get("/api/pause-reasons"))?.reasons || [];
        body.reason = reasons[0] || t("presence.pausedDefault");
      } catch {
        body.reason = t("presence.pausedDefault");
      }
    }
    try {
      await put(`/api/users/${agent.id}/presence`, body);
    } catch (e) {
      setRawText(status, describe(e));
    }
    loadOverview();
  }

  async function setLimit(agent, input) {
    const value = input.value === "" ? null : Number(input.value);
    try {
      await patch(`/api/users/${agent.id}`, { max_concurrent: value });
    } catch (e) {
      setRawText(status, describe(e));
    }
    loadOverview();
  }

  // ---------- Selection ----------

  function select(id) {
    if (id === selectedId && (view || !id)) return;
    view?.destroy();
    view = null;
    selectedId = id;
    for (const el of convList.querySelectorAll(".conv-item")) el.classList.toggle("selected", Number(el.dataset.id) === id);
    if (!id) return renderDashboard();
    const body = h("div", { class: "sup-conversation" });
    replace(pane, h("div", { class: "sup-back-bar" }, h("a", { href: "#/supervisor", id: "sup-back", class: "btn btn-ghost btn-small", i18n: "sup.back" })), body);
    view = conversationView(body, id, { user, mode: "supervise", onOpenConversation: (other) => openHistory(other, user) });
  }

  // ---------- Live ----------

  const offs = [
    onEvent((ev) => {
      const kind = ev.kind || "";
      if (kind.startsWith("conversation.") || kind === "message.created" || kind === "queue.changed") listSoon();
      if (kind.startsWith("conversation.") || kind === "presence.changed" || kind === "queue.changed") overviewSoon();
    }),
    onReload(() => {
      listSoon();
      overviewSoon();
    }),
    onStatus((up) => {
      clearInterval(fallbackTimer);
      fallbackTimer = up
        ? null
        : setInterval(() => {
            loadConversations();
            loadOverview();
          }, FALLBACK_REFRESH_MS);
    }),
    onLangChange(() => {
      renderList();
      if (!selectedId) renderDashboard();
    }),
  ];
  const tick = setInterval(() => {
    renderList();
    refreshDashboard();
  }, 15000);
  stateFilter.addEventListener("change", renderList);
  queueFilter.addEventListener("change", renderList);
  renderDashboard();
  loadOverview();
  loadConversations();

  return {
    route(parts) {
      const id = Number(parts[0]);
      select(Number.isInteger(id) && id > 0 ? id : null);
    },
    destroy() {
      stopped = true;
      for (const off of offs) off();
      clearInterval(tick);
      clearInterval(fallbackTimer);
      overviewSoon.cancel();
      listSoon.cancel();
      view?.destroy();
    },
  };
}
