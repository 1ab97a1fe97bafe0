// "Administração" (admins): users, queues, channels, dispositions ("tabulações"), canned responses,
// custom fields of the protocol form, pause reasons and API tokens. One tab per screen
// (#/admin/users, ...).

import { del, describe, get, post, put } from "./api.js";
import { formatDateTime, h, replace, setRawText, setText } from "./dom.js";
import { t } from "./i18n.js";
import { crudScreen } from "./crud.js";
import { listOf } from "./actions.js";
import { openDialog } from "./dialog.js";
import { templatesScreen } from "./templates.js";
import { permissionsScreen } from "./permissions.js";
import { prerequisitesButton } from "./prerequisites.js";
import { can } from "./me.js";

const TABS = [
  { name: "users", label: "admin.users", create: usersScreen },
  { name: "queues", label: "admin.queues", create: queuesScreen },
  { name: "channels", label: "admin.channels", create: channelsScreen },
  { name: "dispositions", label: "admin.dispositions", create: dispositionsScreen },
  { name: "canned", label: "admin.canned", create: cannedScreen },
  { name: "fields", label: "admin.fields", create: fieldsScreen },
  { name: "pauses", label: "admin.pauses", create: pausesScreen },
  { name: "tokens", label: "admin.tokens", create: tokensScreen },
  { name: "templates", label: "admin.templates", create: templatesScreen, permission: "manage_templates" },
  { name: "permissions", label: "admin.permissions", create: permissionsScreen },
];

/** The tabs a person sees: an admin all of them; anyone else those their permissions open. */
export function visibleAdminTabs(user) {
  return TABS.filter((tab) => user.role === "admin" || (tab.permission && can(tab.permission)));
}

export function adminSection(container, { user }) {
  const visible = visibleAdminTabs(user);
  if (!visible.length) {
    replace(container, h("div", { class: "empty-state" }, h("p", { i18n: "admin.adminOnly" })));
    return {};
  }
  const tabs = h(
    "nav",
    { class: "admin-tabs tabs", role: "tablist" },
    visible.map((tab) => h("a", { href: `#/admin/${tab.name}`, class: "tab", role: "tab", id: `admin-tab-${tab.name}`, dataset: { tab: tab.name }, i18n: tab.label })),
  );
  const body = h("div", { class: "admin-body", id: "admin-body" });
  replace(container, h("div", { class: "admin" }, tabs, body));
  let current = null;

  return {
    route(parts) {
      const tab = visible.find((x) => x.name === parts[0]) || visible[0];
      if (current?.name === tab.name) return;
      current?.screen?.destroy?.();
      for (const a of tabs.querySelectorAll(".tab")) {
        a.classList.toggle("active", a.dataset.tab === tab.name);
        a.setAttribute("aria-selected", String(a.dataset.tab === tab.name));
      }
      current = { name: tab.name, screen: tab.create(body, { user }) };
    },
    destroy() {
      current?.screen?.destroy?.();
    },
  };
}

// ---------- Shared option loaders ----------

async function queueOptions() {
  try {
    return listOf(await get("/api/queues"), "queues").map((q) => ({ value: q.id, label: q.name }));
  } catch {
    return [];
  }
}

async function userOptions() {
  try {
    return listOf(await get("/api/users"), "users")
      .filter((u) => u.active !== false)
      .map((u) => ({ value: u.id, label: `${u.name || u.email} (${t(`role.${u.role}`)})` }));
  } catch {
    return [];
  }
}

let queueNames = new Map();
async function refreshQueueNames() {
  queueNames = new Map((await queueOptions()).map((o) => [o.value, o.label]));
}
const queueLabel = (id) => (id == null ? t("admin.allQueues") : queueNames.get(id) || `#${id}`);
const yesNo = (v) => h("span", { class: `badge ${v ? "badge-on" : "badge-off"}`, i18n: v ? "admin.yes" : "admin.no" });
const text = (v) => (v == null || v === "" ? "—" : String(v));

// ---------- Users ----------

const ROLES = ["agent", "supervisor", "admin"].map((r) => ({ value: r, i18n: `role.${r}` }));

function usersScreen(container) {
  return crudScreen(container, {
    prepare: refreshQueueNames,
    title: "admin.users",
    listUrl: "/api/users",
    listKey: "users",
    createUrl: "/api/users",
    itemUrl: (u) => `/api/users/${u.id}`,
    newLabel: "admin.newUser",
    columns: [
      { label: "admin.name", value: (u) => u.name },
      { label: "admin.email", value: (u) => u.email },
      { label: "admin.role", value: (u) => h("span", { i18n: `role.${u.role}` }) },
      { label: "admin.active", value: (u) => yesNo(u.active !== false) },
      { label: "admin.limit", value: (u) => (u.max_concurrent == null ? h("span", { class: "muted", i18n: "admin.limitDefault", i18nArgs: { n: u.limit ?? "—" } }) : String(u.max_concurrent)) },
      { label: "admin.userQueues", value: (u) => (u.queue_ids || []).map(queueLabel).join(", ") || "—" },
    ],
    fields: [
      { key: "email", label: "admin.email", type: "email", required: true, createOnly: true, max: 200 },
      { key: "name", label: "admin.name", required: true, max: 100 },
      { key: "role", label: "admin.role", type: "select", options: ROLES, required: true, numeric: false },
      { key: "password", label: "admin.password", type: "password", required: true, createOnly: true, hint: "admin.passwordHint" },
      { key: "active", label: "admin.active", type: "checkbox", editOnly: true, default: true },
      { key: "max_concurrent", label: "admin.maxConcurrent", type: "number", min: 0, max: 50, nullable: true, hint: "admin.maxConcurrentHint" },
      { key: "queue_ids", label: "admin.userQueues", type: "checkboxes", options: queueOptions },
    ],
    rowActions: (u, { notify }) => [
      h("button", { type: "button", class: "btn btn-ghost btn-small", dataset: { testid: "reset-password", id: u.id }, i18n: "admin.resetPassword", on: { click: () => resetPassword(u, notify) } }),
    ],
  });
}

async function resetPassword(user, notify) {
  if (!window.confirm(t("admin.resetConfirm", { name: user.name || user.email }))) return;
  try {
    const data = await post(`/api/users/${user.id}/reset-password`, {});
    const password = data?.temporary_password || "";
    const value = h("input", { id: "reset-password-value", type: "text", readonly: true, class: "code", value: password });
    let dialog = null;
    dialog = openDialog({
      id: "reset-password-dialog",
      title: "admin.resetTitle",
      body: [h("p", { i18n: "admin.resetShown", i18nArgs: { name: user.name || user.email } }), value, h("p", { class: "muted small", i18n: "admin.resetOnce" })],
      actions: [
        h("button", { type: "button", class: "btn btn-ghost", i18n: "admin.copy", on: { click: () => navigator.clipboard?.writeText(password) } }),
        h("button", { type: "button", id: "reset-password-close", class: "btn btn-primary", i18n: "dialog.close", on: { click: () => dialog.close() } }),
      ],
    });
    value.select();
  } catch (e) {
    notify(null);
    window.alert(describe(e));
  }
}

// ---------- Queues ----------

function queuesScreen(container) {
  return crudScreen(container, {
    title: "admin.queues",
    listUrl: "/api/queues",
    listKey: "queues",
    createUrl: "/api/queues",
    itemUrl: (q) => `/api/queues/${q.id}`,
    newLabel: "admin.newQueue",
    columns: [
      { label: "admin.name", value: (q) => q.name },
      { label: "admin.key", value: (q) => h("code", { text: q.key || "" }) },
      { label: "admin.priority", value: (q) => text(q.priority) },
      { label: "admin.defaultLimit", value: (q) => text(q.default_max_concurrent) },
      { label: "admin.maxWait", value: (q) => (q.max_wait_secs ? `${q.max_wait_secs} s` : "—") },
    ],
    fields: [
      { key: "key", label: "admin.key", required: true, createOnly: true, hint: "admin.keyHint", max: 50 },
      { key: "name", label: "admin.name", required: true, max: 100 },
      { key: "priority", label: "admin.priority", type: "number", hint: "admin.priorityHint" },
      { key: "members", label: "admin.members", type: "checkboxes", options: userOptions, editOnly: true },
      { key: "waiting_message", label: "admin.waitingMessage", type: "textarea", nullable: true, hint: "admin.waitingMessageHint", max: 1000 },
      { key: "position_update_secs", label: "admin.positionUpdate", type: "number", min: 0, hint: "admin.positionUpdateHint" },
      { key: "max_wait_secs", label: "admin.maxWaitSecs", type: "number", min: 0, nullable: true, hint: "admin.maxWaitHint" },
      { key: "max_wait_message", label: "admin.maxWaitMessage", type: "textarea", nullable: true, max: 1000 },
      { key: "default_max_concurrent", label: "admin.defaultLimit", type: "number", min: 1, max: 50, hint: "admin.defaultLimitHint" },
      { key: "transfer_message", label: "admin.transferMessage", type: "textarea", nullable: true, max: 1000 },
      { key: "closing_message", label: "admin.closingMessage", type: "textarea", nullable: true, max: 1000 },
    ],
    fromItem: async (q) => {
      try {
        return { members: listOf(await get(`/api/queues/${q.id}/members`), "user_ids") };
      } catch {
        return { members: [] };
      }
    },
    toBody: (values) => {
      const { members, ...rest } = values;
      return rest;
    },
    afterSave: async (saved, values, item) => {
      if (item && values.members) await put(`/api/queues/${item.id}/members`, { user_ids: values.members });
    },
  });
}

// ---------- Channels ----------

function channelsScreen(container) {
  return crudScreen(container, {
    title: "admin.channels",
    intro: "admin.channelsIntro",
    listUrl: "/api/channels",
    listKey: "channels",
    createUrl: "/api/channels",
    itemUrl: (c) => `/api/channels/${c.id}`,
    newLabel: "admin.newChannel",
    columns: [
      { label: "admin.name", value: (c) => c.name },
      { label: "admin.phone", value: (c) => text(c.display_phone_number || c.phone_number_id) },
      { label: "admin.enabled", value: (c) => yesNo(c.enabled !== false) },
      {
        label: "admin.health",
        value: (c) => h("span", {}, yesNo(c.healthy !== false), c.health_note ? h("div", { class: "small muted", text: c.health_note }) : null, c.is_simulator ? h("span", { class: "badge", i18n: "admin.simulated" }) : null),
      },
      { label: "admin.rate", value: (c) => text(c.rate_limit_per_sec) },
      { label: "admin.tierQuality", value: (c) => h("span", { class: "small", text: [c.messaging_limit_tier, c.quality_rating].filter(Boolean).join(" · ") || "—" }) },
    ],
    fields: [
      { key: "name", label: "admin.name", required: true, max: 100 },
      { key: "phone_number_id", label: "admin.phoneNumberId", required: true, createOnly: true },
      { key: "waba_id", label: "admin.wabaId", required: true, createOnly: true },
      { key: "display_phone_number", label: "admin.displayPhone" },
      { key: "access_token", label: "admin.accessToken", type: "password", required: true, secret: true },
      { key: "app_secret", label: "admin.appSecret", type: "password", required: true, secret: true },
      { key: "verify_token", label: "admin.verifyToken", type: "password", required: true, secret: true },
      { key: "graph_base_url", label: "admin.graphBaseUrl", hint: "admin.graphBaseUrlHint" },
      { key: "rate_limit_per_sec", label: "admin.rate", type: "number", min: 1, max: 1000 },
      { key: "mark_read", label: "admin.markRead", type: "checkbox", default: true },
      { key: "enabled", label: "admin.enabled", type: "checkbox", editOnly: true, default: true },
      { key: "app_id", editOnly: true, label: "admin.appId", nullable: true, hint: "admin.appIdHint", max: 30 },
      { key: "messaging_limit", editOnly: true, label: "admin.messagingLimit", type: "number", min: 1, nullable: true, hint: "admin.messagingLimitHint" },
      { key: "hsm_queue_id", editOnly: true, label: "admin.hsmQueue", type: "select", options: queueOptions, nullable: true, nullLabel: "admin.hsmQueueNone", hint: "admin.hsmQueueHint" },
      { key: "hsm_reply_minutes", editOnly: true, label: "admin.hsmReplyMinutes", type: "number", min: 1, max: 43200, hint: "admin.hsmReplyMinutesHint" },
      { key: "hsm_fallback_queue_id", editOnly: true, label: "admin.hsmFallbackQueue", type: "select", options: queueOptions, nullable: true, nullLabel: "admin.hsmQueueNone", hint: "admin.hsmFallbackHint" },
    ],
    // Only a limit the admin fixed is shown as theirs; empty keeps following Meta's tier.
    fromItem: (c) => ({ messaging_limit: c.messaging_limit_manual ? c.messaging_limit : null }),
    rowActions: (c) => [prerequisitesButton(c), testButton(c)],
  });
}

function testButton(channel) {
  const result = h("div", { class: "channel-test-result small", dataset: { testid: "channel-test-result", id: channel.id }, role: "status" });
  const button = h("button", { type: "button", class: "btn btn-ghost btn-small", dataset: { testid: "channel-test", id: channel.id }, i18n: "admin.testConnection" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.className = "channel-test-result small";
    setText(result, "admin.testing");
    try {
      const data = await post(`/api/channels/${channel.id}/test`, {});
      const ok = data?.ok !== false;
      result.classList.add(ok ? "ok" : "fail");
      result.dataset.ok = String(ok);
      const detail = ok
        ? [data?.verified_name, data?.display_phone_number, data?.quality_rating].filter(Boolean).join(" · ")
        : data?.explanation || data?.error || "";
      setText(result, ok ? "admin.testOk" : "admin.testFail", { detail });
    } catch (e) {
      result.classList.add("fail");
      result.dataset.ok = "false";
      setText(result, "admin.testFail", { detail: describe(e) });
    } finally {
      button.disabled = false;
    }
  });
  return h("span", { class: "channel-test" }, button, result);
}

// ---------- Dispositions ----------

function dispositionsScreen(container) {
  return crudScreen(container, {
    prepare: refreshQueueNames,
    title: "admin.dispositions",
    intro: "admin.dispositionsIntro",
    listUrl: "/api/dispositions",
    listKey: "dispositions",
    createUrl: "/api/dispositions",
    itemUrl: (d) => `/api/dispositions/${d.id}`,
    canDelete: true,
    newLabel: "admin.newDisposition",
    columns: [
      { label: "admin.label", value: (d) => d.label },
      { label: "admin.queue", value: (d) => queueLabel(d.queue_id) },
    ],
    fields: [
      { key: "label", label: "admin.label", required: true, createOnly: true, max: 100 },
      { key: "queue_id", label: "admin.queue", type: "select", options: queueOptions, nullable: true, nullLabel: "admin.allQueues", createOnly: true },
    ],
  });
}

// ---------- Canned responses ----------

function cannedScreen(container) {
  return crudScreen(container, {
    prepare: refreshQueueNames,
    title: "admin.canned",
    intro: "admin.cannedIntro",
    listUrl: "/api/canned-responses",
    listKey: "canned_responses",
    createUrl: "/api/canned-responses",
    itemUrl: (c) => `/api/canned-responses/${c.id}`,
    canDelete: true,
    newLabel: "admin.newCanned",
    columns: [
      { label: "admin.shortcut", value: (c) => h("code", { text: `/${String(c.shortcut || "").replace(/^\//, "")}` }) },
      { label: "admin.title", value: (c) => c.title },
      { label: "admin.body", value: (c) => h("span", { class: "clip", text: c.body }) },
      { label: "admin.queue", value: (c) => queueLabel(c.queue_id) },
    ],
    fields: [
      { key: "shortcut", label: "admin.shortcut", required: true, max: 30, hint: "admin.shortcutHint" },
      { key: "title", label: "admin.title", required: true, max: 100 },
      { key: "body", label: "admin.body", type: "textarea", required: true, rows: 5, max: 4096, hint: "admin.bodyHint" },
      { key: "queue_id", label: "admin.queue", type: "select", options: queueOptions, nullable: true, nullLabel: "admin.allQueues" },
    ],
  });
}

// ---------- Custom fields ----------

const KINDS = ["text", "number", "date", "choice"].map((k) => ({ value: k, i18n: `admin.kind.${k}` }));

function fieldsScreen(container) {
  return crudScreen(container, {
    prepare: refreshQueueNames,
    title: "admin.fields",
    intro: "admin.fieldsIntro",
    listUrl: "/api/custom-fields",
    listKey: "custom_fields",
    createUrl: "/api/custom-fields",
    itemUrl: (f) => `/api/custom-fields/${f.id}`,
    canDelete: true,
    newLabel: "admin.newField",
    columns: [
      { label: "admin.label", value: (f) => f.label },
      { label: "admin.fieldKey", value: (f) => h("code", { text: f.key }) },
      { label: "admin.kind", value: (f) => h("span", { i18n: `admin.kind.${f.kind}` }) },
      { label: "admin.options", value: (f) => (f.options || []).join(", ") || "—" },
      { label: "admin.requiredField", value: (f) => yesNo(f.required) },
      { label: "admin.queue", value: (f) => queueLabel(f.queue_id) },
    ],
    fields: [
      { key: "queue_id", label: "admin.queue", type: "select", options: queueOptions, nullable: true, nullLabel: "admin.allQueues" },
      { key: "key", label: "admin.fieldKey", required: true, createOnly: true, hint: "admin.fieldKeyHint", max: 50 },
      { key: "label", label: "admin.label", required: true, max: 100 },
      { key: "kind", label: "admin.kind", type: "select", options: KINDS, required: true, numeric: false },
      { key: "options", label: "admin.options", type: "lines", hint: "admin.optionsHint" },
      { key: "required", label: "admin.requiredField", type: "checkbox" },
    ],
  });
}

// ---------- Pause reasons ----------

function pausesScreen(container) {
  const input = h("textarea", { id: "pause-reasons-input", rows: 8 });
  const save = h("button", { type: "submit", id: "pause-reasons-save", class: "btn btn-primary", i18n: "admin.save" });
  const status = h("div", { id: "pause-reasons-status", role: "status", class: "small" });
  const form = h(
    "form",
    { class: "admin-form narrow" },
    h("h2", { i18n: "admin.pauses" }),
    h("p", { class: "muted small", i18n: "admin.pausesIntro" }),
    h("label", { for: "pause-reasons-input", i18n: "admin.pausesLabel" }),
    input,
    status,
    h("div", { class: "dialog-actions" }, save),
  );
  replace(container, h("div", { class: "admin-screen" }, form));
  get("/api/pause-reasons")
    .then((data) => (input.value = (data?.reasons || []).join("\n")))
    .catch((e) => setRawText(status, describe(e)));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reasons = input.value.split("\n").map((s) => s.trim()).filter(Boolean);
    save.disabled = true;
    try {
      await put("/api/pause-reasons", { reasons });
      status.className = "small alert alert-ok";
      setText(status, "admin.saved");
    } catch (e) {
      status.className = "small form-error";
      setRawText(status, describe(e));
    } finally {
      save.disabled = false;
    }
  });
  return {};
}

// ---------- API tokens ----------

// The list never holds a token (the server keeps only hashes); a new token is shown once, in the
// dialog that follows its creation.
function tokensScreen(container) {
  return crudScreen(container, {
    title: "admin.tokens",
    intro: "admin.tokensIntro",
    listUrl: "/api/tokens",
    listKey: "tokens",
    createUrl: "/api/tokens",
    newLabel: "admin.newToken",
    columns: [
      { label: "admin.tokenName", value: (tk) => tk.name },
      { label: "admin.createdBy", value: (tk) => (tk.created_by == null ? h("span", { class: "muted", i18n: "admin.createdByCli" }) : text(tk.created_by_name || `#${tk.created_by}`)) },
      { label: "admin.createdAt", value: (tk) => formatDateTime(tk.created_at) },
      { label: "admin.lastUsed", value: (tk) => (tk.last_used_at == null ? h("span", { class: "muted", i18n: "admin.neverUsed" }) : formatDateTime(tk.last_used_at)) },
      { label: "admin.tokenStatus", value: tokenStatus },
    ],
    fields: [{ key: "name", label: "admin.tokenName", required: true, createOnly: true, max: 100, hint: "admin.tokenNameHint" }],
    afterSave: (saved, values, item, result) => showNewToken(result),
    rowActions: (tk, { reload, notify }) =>
      tk.revoked_at == null
        ? [h("button", { type: "button", class: "btn btn-ghost btn-small danger", dataset: { testid: "token-revoke", id: tk.id }, i18n: "admin.revoke", on: { click: () => revokeToken(tk, reload, notify) } })]
        : [],
  });
}

function tokenStatus(tk) {
  const status = tk.status || (tk.revoked_at == null ? "active" : "revoked");
  const on = status === "active";
  return h("span", {
    class: `badge ${on ? "badge-on" : "badge-off"}`,
    dataset: { testid: "token-status", status },
    i18n: `admin.tokenStatus.${status}`,
    i18nArgs: { when: tk.revoked_at == null ? "" : formatDateTime(tk.revoked_at) },
  });
}

function showNewToken(result) {
  const token = result?.token || "";
  const value = h("input", { id: "new-token-value", type: "text", readonly: true, class: "code", value: token });
  let dialog = null;
  dialog = openDialog({
    id: "new-token-dialog",
    title: "admin.tokenTitle",
    body: [h("p", { i18n: "admin.tokenShown", i18nArgs: { name: result?.name || "" } }), value, h("p", { class: "muted small", i18n: "admin.tokenOnce" })],
    actions: [
      h("button", { type: "button", class: "btn btn-ghost", i18n: "admin.copy", on: { click: () => navigator.clipboard?.writeText(token) } }),
      h("button", { type: "button", id: "new-token-close", class: "btn btn-primary", i18n: "dialog.close", on: { click: () => dialog.close() } }),
    ],
  });
  value.select();
}

async function revokeToken(tk, reload, notify) {
  if (!window.confirm(t("admin.revokeConfirm", { name: tk.name }))) return;
  try {
    await del(`/api/tokens/${tk.id}`);
    notify("admin.revoked");
    reload();
  } catch (e) {
    notify(null);
    window.alert(describe(e));
  }
}
