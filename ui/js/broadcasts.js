// "Disparos" (supervisors and admins with the run_broadcasts permission): one approved template
// sent to an audience, with variables per recipient, the reply routing and a start time. The list
// (#/broadcasts), a new one (#/broadcasts/new: name, channel, template, where replies go, when it
// starts) and one broadcast (#/broadcasts/12): its audience (broadcast_audience.js), start,
// pause, resume and cancel, and the live report (queued, sent, delivered, read, failed by error
// code with the pt-BR reason, replied, opted out), refreshed every few seconds while it runs, with
// the results as CSV.

import { describe, get, post } from "./api.js";
import { formatDateTime, h, replace, setRawText, setText } from "./dom.js";
import { has, onLangChange, t } from "./i18n.js";
import { listOf } from "./actions.js";
import { audienceStep } from "./broadcast_audience.js";
import { channelOptions } from "./templates.js";

const REPORT_REFRESH_MS = 2000;
const ACTIVE = new Set(["scheduled", "running", "paused"]);

export function broadcastsSection(container) {
  const listBox = h("div", { id: "bc-list", class: "bc-list" });
  const detail = h("div", { id: "bc-detail", class: "bc-detail" });
  const newButton = h("a", { href: "#/broadcasts/new", id: "bc-new", class: "btn btn-secondary btn-small", i18n: "bc.new" });
  replace(
    container,
    h(
      "div",
      { class: "admin-screen bc-screen" },
      h("div", { class: "admin-list bc-list-pane" }, h("div", { class: "admin-list-head" }, h("h2", { i18n: "bc.title" }), newButton), h("p", { class: "muted small", i18n: "bc.intro" }), listBox),
      detail,
    ),
  );
  let items = [];
  let current = null; // {id, destroy()}
  let selected = null;
  let stopped = false;

  async function loadList() {
    try {
      items = listOf(await get("/api/broadcasts"), "broadcasts");
      if (!stopped) renderList();
    } catch (e) {
      if (!stopped) replace(listBox, h("p", { class: "form-error", text: describe(e) }));
    }
  }

  function renderList() {
    if (!items.length) return replace(listBox, h("p", { class: "muted small", i18n: "bc.empty" }));
    replace(
      listBox,
      items.map((b) =>
        h(
          "a",
          { href: `#/broadcasts/${b.id}`, class: `bc-item${String(b.id) === String(selected) ? " selected" : ""}`, dataset: { testid: "bc-item", id: b.id, status: b.status } },
          h("div", { class: "conv-line" }, h("strong", { text: b.name }), statusBadge(b.status)),
          h("div", { class: "small muted", text: [b.template_name, b.start_at ? formatDateTime(b.start_at) : null, b.accepted_rows ? t("bc.recipients", { n: b.accepted_rows }) : null].filter(Boolean).join(" · ") }),
        ),
      ),
    );
  }

  function open(id) {
    selected = id;
    renderList();
    current?.destroy?.();
    if (id === "new") current = createForm(detail, { onCreated: (b) => ((location.hash = `#/broadcasts/${b.id}`), loadList()) });
    else if (id) current = broadcastView(detail, Number(id), { onChanged: loadList });
    else {
      current = null;
      replace(detail, h("div", { class: "empty-state" }, h("p", { i18n: "bc.pick" })));
    }
  }

  const offLang = onLangChange(renderList);
  loadList();
  return {
    route(parts) {
      open(parts[0] || null);
    },
    destroy() {
      stopped = true;
      current?.destroy?.();
      offLang();
    },
  };
}

function statusBadge(status) {
  const key = `bc.status.${status}`;
  return h("span", { class: `badge bc-status bc-status-${status}`, dataset: { testid: "bc-status", status }, ...(has(key) ? { i18n: key } : { text: status }) });
}

// ---------- Creating ----------

function createForm(container, { onCreated }) {
  const name = h("input", { id: "bc-name", type: "text", maxlength: 120, required: true });
  const channel = h("select", { id: "bc-channel" });
  const template = h("select", { id: "bc-template" });
  const queue = h("select", { id: "bc-queue" }, h("option", { value: "", i18n: "bc.noQueue" }));
  const route = h("select", { id: "bc-route" }, ["channel", "queue", "bot"].map((v) => h("option", { value: v, i18n: `bc.route.${v}` })));
  const minutes = h("input", { id: "bc-reply-minutes", type: "number", min: 1, max: 43200, i18nPlaceholder: "bc.replyMinutesDefault" });
  const startNow = h("input", { type: "radio", name: "bc-start", id: "bc-start-now", value: "now", checked: true });
  const startAt = h("input", { type: "radio", name: "bc-start", id: "bc-start-at", value: "at" });
  const when = h("input", { id: "bc-start-time", type: "datetime-local", disabled: true });
  const media = h("input", { id: "bc-header-media", type: "url", placeholder: "https://", hidden: true });
  const error = h("div", { id: "bc-error", class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", id: "bc-create", class: "btn btn-primary", i18n: "bc.create" });
  let templates = [];
  const form = h(
    "form",
    { class: "admin-form bc-form", novalidate: true },
    h("h2", { i18n: "bc.newTitle" }),
    field("bc-name", "bc.name", name),
    h("div", { class: "sched-grid" }, field("bc-channel", "bc.channel", channel), field("bc-template", "bc.template", template)),
    field("bc-header-media", "bc.headerMedia", media),
    h("div", { class: "sched-grid" }, field("bc-queue", "bc.queue", queue, "bc.queueHint"), field("bc-route", "bc.routeTitle", route), field("bc-reply-minutes", "bc.replyMinutes", minutes)),
    h("div", { class: "field" }, h("label", { i18n: "bc.start" }), h("label", { class: "inline checkbox" }, startNow, h("span", { i18n: "bc.startNow" })), h("label", { class: "inline checkbox" }, startAt, h("span", { i18n: "bc.startAt" }), when), h("div", { class: "muted small", i18n: "bc.startHint" })),
    error,
    h("div", { class: "dialog-actions" }, h("a", { href: "#/broadcasts", class: "btn btn-ghost", i18n: "dialog.cancel" }), submit),
  );
  replace(container, form);

  async function loadTemplates() {
    try {
      const qs = new URLSearchParams({ status: "APPROVED" });
      if (channel.value) qs.set("channel_id", channel.value);
      templates = listOf(await get(`/api/templates?${qs}`), "templates");
      replace(template, templates.length ? templates.map((x) => h("option", { value: String(x.id), text: `${x.name} · ${x.language}` })) : h("option", { value: "", i18n: "tplc.none" }));
      showMedia();
    } catch (e) {
      setRawText(error, describe(e));
    }
  }

  function showMedia() {
    const tpl = templates.find((x) => String(x.id) === template.value);
    const header = (tpl ? (typeof tpl.components === "string" ? JSON.parse(tpl.components || "[]") : tpl.components || []) : []).find((c) => String(c.type).toUpperCase() === "HEADER");
    media.closest(".field").hidden = !header || !["IMAGE", "VIDEO", "DOCUMENT"].includes(String(header.format).toUpperCase());
  }

  channelOptions().then((options) => {
    replace(channel, options.map((o) => h("option", { value: String(o.value), text: o.label })));
    loadTemplates();
  });
  get("/api/queues")
    .then((data) => queue.append(...listOf(data, "queues").map((q) => h("option", { value: String(q.id), text: q.name }))))
    .catch(() => {});
  channel.addEventListener("change", loadTemplates);
  template.addEventListener("change", showMedia);
  for (const r of [startNow, startAt]) r.addEventListener("change", () => (when.disabled = !startAt.checked));
  media.hidden = false;
  media.closest(".field").hidden = true;

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setText(error, null);
    if (!name.value.trim()) return setText(error, "bc.nameMissing"), name.focus();
    if (!template.value) return setText(error, "bc.templateMissing");
    const body = {
      name: name.value.trim(),
      channel_id: Number(channel.value),
      template_id: Number(template.value),
      queue_id: queue.value ? Number(queue.value) : null,
      reply_route: route.value === "queue" ? { target: "queue", queue_id: queue.value ? Number(queue.value) : null } : { target: route.value },
      reply_minutes: minutes.value ? Number(minutes.value) : null,
    };
    if (route.value === "queue" && !queue.value) return setText(error, "bc.queueMissing");
    if (startAt.checked) {
      const at = new Date(when.value).getTime();
      if (!Number.isFinite(at) || at <= Date.now()) return setText(error, "sched.pastTime");
      body.start_at = at;
    }
    if (!media.closest(".field").hidden && media.value.trim()) body.header_media = { link: media.value.trim() };
    submit.disabled = true;
    try {
      const result = await post("/api/broadcasts", body);
      onCreated(result?.broadcast || result);
    } catch (e) {
      setRawText(error, describe(e));
      submit.disabled = false;
    }
  });
  name.focus();
  return { destroy() {} };
}

function field(id, label, control, hint) {
  return h("div", { class: "field" }, h("label", { for: id, i18n: label }), control, hint ? h("div", { class: "muted small", i18n: hint }) : null);
}

// ---------- One broadcast ----------

function broadcastView(container, id, { onChanged }) {
  const head = h("div", { class: "bc-head" });
  const actions = h("div", { class: "row-buttons", id: "bc-actions" });
  const error = h("div", { id: "bc-action-error", class: "form-error", role: "alert" });
  const audienceBox = h("div", { id: "bc-audience" });
  const reportBox = h("div", { id: "bc-report", class: "bc-report" });
  replace(container, h("div", { class: "bc-view" }, head, actions, error, audienceBox, reportBox));
  let broadcast = null;
  let template = null;
  let audience = null;
  let timer = null;
  let stopped = false;

  async function load() {
    try {
      const data = await get(`/api/broadcasts/${id}`);
      if (stopped) return;
      const fresh = data?.broadcast || data;
      const first = !broadcast;
      const statusChanged = broadcast && broadcast.status !== fresh.status;
      broadcast = { ...fresh, audience: data?.audience ?? null };
      template = data?.template || template || (await loadTemplate(broadcast.template_id));
      renderHead();
      renderActions();
      if (first || statusChanged) renderAudience();
      loadReport();
    } catch (e) {
      if (!stopped) setRawText(error, describe(e));
    }
  }

  async function loadTemplate(templateId) {
    try {
      const data = await get(`/api/templates/${templateId}`);
      return data?.template || data;
    } catch {
      return null;
    }
  }

  function renderHead() {
    const b = broadcast;
    replace(
      head,
      h("div", { class: "conv-line" }, h("h2", { id: "bc-title", text: b.name }), statusBadge(b.status)),
      h(
        "div",
        { class: "small muted" },
        [template ? `${template.name} · ${template.language}` : `#${b.template_id}`, b.start_at ? t("bc.startsAt", { when: formatDateTime(b.start_at) }) : null, b.started_at ? t("bc.startedAt", { when: formatDateTime(b.started_at) }) : null, b.finished_at ? t("bc.finishedAt", { when: formatDateTime(b.finished_at) }) : null].filter(Boolean).join(" · "),
      ),
      b.status_detail || b.status_reason ? h("div", { id: "bc-status-detail", class: "alert alert-warning small", text: b.status_detail || (has(`bc.reason.${b.status_reason}`) ? t(`bc.reason.${b.status_reason}`) : b.status_reason) }) : null,
    );
  }

  function actionButton(action, cls = "btn-ghost") {
    return h("button", { type: "button", id: `bc-${action}`, class: `btn ${cls} btn-small`, i18n: `bc.action.${action}`, on: { click: () => act(action) } });
  }

  function renderActions() {
    const s = broadcast.status;
    const out = [];
    if (s === "draft" || s === "scheduled") out.push(actionButton("start", "btn-primary"));
    if (s === "running") out.push(actionButton("pause"));
    if (s === "paused") out.push(actionButton("resume", "btn-primary"));
    if (s !== "completed" && s !== "cancelled") out.push(actionButton("cancel", "btn-ghost danger"));
    out.push(h("a", { href: `/api/broadcasts/${id}/export.csv`, id: "bc-export", class: "btn btn-ghost btn-small", download: `disparo-${id}.csv`, i18n: "bc.export" }));
    replace(actions, out);
  }

  async function act(action) {
    setText(error, null);
    if (action === "cancel" && !window.confirm(t("bc.cancelConfirm"))) return;
    if (action === "start" && !window.confirm(t("bc.startConfirm", { n: broadcast.accepted_rows ?? "?" }))) return;
    for (const b of actions.querySelectorAll("button")) b.disabled = true;
    try {
      await post(`/api/broadcasts/${id}/${action}`, {});
      await load();
      onChanged?.();
    } catch (e) {
      setRawText(error, describe(e));
      renderActions();
    }
  }

  function renderAudience() {
    audience?.destroy();
    audience = audienceStep(audienceBox, {
      broadcast,
      template,
      editable: broadcast.status === "draft" || broadcast.status === "scheduled",
      onChanged: () => {
        get(`/api/broadcasts/${id}`)
          .then((data) => {
            broadcast = { ...broadcast, ...(data?.broadcast || data) };
            renderActions();
            onChanged?.();
          })
          .catch(() => {});
      },
    });
  }

  async function loadReport() {
    clearTimeout(timer);
    try {
      const data = await get(`/api/broadcasts/${id}/report`);
      if (stopped) return;
      renderReport(data?.report || data);
    } catch {
      // Shown again at the next refresh.
    }
    if (!stopped && ACTIVE.has(broadcast?.status)) timer = setTimeout(load, REPORT_REFRESH_MS);
  }

  function renderReport(r) {
    if (!r) return replace(reportBox);
    const total = r.recipients || 0;
    const pct = (n) => (total ? `${Math.round((n * 100) / total)}%` : "");
    const item = (key, n) => h("div", { class: "bc-count", dataset: { testid: `bc-report-${key}`, value: String(n ?? 0) } }, h("strong", { text: String(n ?? 0) }), h("span", { class: "small", i18n: `bc.report.${key}` }), h("span", { class: "small muted", text: pct(n ?? 0) }));
    const failures = r.failed_by_code || [];
    replace(
      reportBox,
      h("h3", { i18n: "bc.reportTitle" }),
      h("progress", { id: "bc-progress", max: String(total || 1), value: String((r.sent || 0) + (r.delivered || 0) + (r.read || 0) + (r.failed || 0)) }),
      // The store counts each recipient in its current state only; people read a funnel, so
      // "sent" includes the delivered and read ones, and "delivered" the read ones.
      h(
        "div",
        { class: "bc-counts" },
        item("recipients", total),
        item("pending", r.pending),
        item("queued", r.queued),
        item("sent", (r.sent || 0) + (r.delivered || 0) + (r.read || 0)),
        item("delivered", (r.delivered || 0) + (r.read || 0)),
        item("read", r.read),
        item("failed", r.failed),
        item("replied", r.replied),
        item("opted_out", (r.opted_out || 0) + (r.skipped_opted_out || 0)),
      ),
      failures.length
        ? h(
            "table",
            { class: "data-table", id: "bc-failures" },
            h("thead", {}, h("tr", {}, ["bc.errorCode", "bc.reason", "bc.count.total"].map((k) => h("th", { i18n: k })))),
            h(
              "tbody",
              {},
              failures.map((f) => h("tr", { dataset: { testid: "bc-failure", code: String(f.code ?? "") } }, h("td", { class: "num", text: f.code != null ? String(f.code) : "—" }), h("td", { text: f.code != null && has(`waError.${f.code}`) ? t(`waError.${f.code}`) : f.title || "" }), h("td", { class: "num", text: String(f.count) }))),
            ),
          )
        : null,
    );
  }

  load();
  return {
    destroy() {
      stopped = true;
      clearTimeout(timer);
      audience?.destroy();
    },
  };
}
