// The dialogs that act on a conversation: transfer (to an agent or a queue, optional note),
// finalize (disposition, note, closing message; required form fields reported nicely) and assign
// (supervisors; exceeding an agent's limit only with an explicit checkbox).

import { ApiError, describe, get, post } from "./api.js";
import { h, replace, setRawText, setText } from "./dom.js";
import { t } from "./i18n.js";
import { cancelButton, openDialog } from "./dialog.js";

/** The array in an API answer: `data[key]`, the answer itself when it is one, else its only array. */
export function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (!data || typeof data !== "object") return [];
  if (Array.isArray(data[key])) return data[key];
  const arrays = Object.values(data).filter(Array.isArray);
  return arrays.length === 1 ? arrays[0] : [];
}

/** People a conversation can go to, with presence, load and limit (GET /api/agents, any staff). */
export async function loadAgents() {
  return listOf(await get("/api/agents"), "agents").map(normalizeAgent);
}

function normalizeAgent(a) {
  return { id: a.id, name: a.name || a.email || `#${a.id}`, role: a.role, presence: a.presence || "offline", pause_reason: a.pause_reason, load: a.load ?? 0, limit: a.limit ?? a.max_concurrent ?? null };
}

export const atLimit = (a) => a && a.limit != null && a.load >= a.limit;

/** "Ana — Disponível · 2/3" */
export function agentLabel(a) {
  const presence = t(`presence.${a.presence}`);
  const load = a.limit != null ? ` · ${a.load}/${a.limit}` : "";
  return `${a.name} — ${presence}${load}`;
}

function agentOptions(agents, excludeId) {
  return [
    h("option", { value: "", i18n: "dialog.choose" }),
    agents
      .filter((a) => a.id !== excludeId)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((a) => h("option", { value: String(a.id), text: agentLabel(a), dataset: { presence: a.presence, atLimit: atLimit(a) ? "true" : "false" } })),
  ];
}

function submitButton(id, key) {
  return h("button", { type: "submit", id, class: "btn btn-primary", i18n: key });
}

function busy(button, on, key) {
  button.disabled = on;
  setText(button, on ? "dialog.working" : key);
}

// ---------- Transfer ----------

export async function openTransferDialog(conversation, { me, onDone }) {
  let dialog = null;
  const error = h("div", { id: "transfer-error", class: "form-error", role: "alert" });
  const warning = h("div", { id: "transfer-warning", class: "alert alert-warning", hidden: true });
  const toAgent = h("input", { type: "radio", name: "transfer-target", id: "transfer-to-agent", value: "agent", checked: true });
  const toQueue = h("input", { type: "radio", name: "transfer-target", id: "transfer-to-queue", value: "queue" });
  const agentSelect = h("select", { id: "transfer-agent" }, h("option", { value: "", i18n: "dialog.loading" }));
  const queueSelect = h("select", { id: "transfer-queue" }, h("option", { value: "", i18n: "dialog.loading" }));
  const note = h("textarea", { id: "transfer-note", rows: 3, maxlength: 2000, i18nPlaceholder: "transfer.notePlaceholder" });
  const submit = submitButton("transfer-submit", "transfer.submit");
  const agentNote = h("p", { class: "muted small", hidden: true, i18n: "transfer.noAgents" });
  let agents = [];

  const agentRow = h("div", { class: "field" }, h("label", { for: "transfer-agent", i18n: "transfer.agent" }), agentSelect, agentNote);
  const queueRow = h("div", { class: "field", hidden: true }, h("label", { for: "transfer-queue", i18n: "transfer.queue" }), queueSelect);

  function sync() {
    const byAgent = toAgent.checked;
    agentRow.hidden = !byAgent;
    queueRow.hidden = byAgent;
    const agent = agents.find((a) => String(a.id) === agentSelect.value);
    warning.hidden = !(byAgent && atLimit(agent));
    if (!warning.hidden) setText(warning, "transfer.agentBusy", { name: agent.name, load: agent.load, limit: agent.limit });
    submit.disabled = byAgent ? !agentSelect.value : !queueSelect.value;
  }

  async function onSubmit() {
    setText(error, null);
    const body = toAgent.checked ? { to_agent_id: Number(agentSelect.value) } : { to_queue_id: Number(queueSelect.value) };
    if (note.value.trim()) body.note = note.value.trim();
    busy(submit, true, "transfer.submit");
    try {
      await post(`/api/conversations/${conversation.id}/transfer`, body);
      dialog.close();
      onDone?.();
    } catch (e) {
      setRawText(error, describe(e));
      busy(submit, false, "transfer.submit");
      sync();
    }
  }

  dialog = openDialog({
    id: "transfer-dialog",
    title: "transfer.title",
    onSubmit,
    body: [
      h("p", { class: "muted", i18n: "transfer.intro", i18nArgs: { protocol: conversation.protocol } }),
      h("div", { class: "radio-row" }, h("label", { class: "inline" }, toAgent, h("span", { i18n: "transfer.toAgent" })), h("label", { class: "inline" }, toQueue, h("span", { i18n: "transfer.toQueue" }))),
      agentRow,
      queueRow,
      warning,
      h("div", { class: "field" }, h("label", { for: "transfer-note", i18n: "transfer.note" }), note),
      error,
    ],
    actions: [cancelButton(() => dialog, "transfer-cancel"), submit],
  });
  for (const el of [toAgent, toQueue, agentSelect, queueSelect]) el.addEventListener("change", sync);
  sync();

  const [agentsResult, queuesResult] = await Promise.allSettled([loadAgents(), get("/api/queues")]);
  if (agentsResult.status === "fulfilled" && agentsResult.value) {
    agents = agentsResult.value;
    replace(agentSelect, agentOptions(agents, conversation.agent_id ?? me?.id));
  } else {
    replace(agentSelect, h("option", { value: "", i18n: "transfer.noAgentsOption" }));
    agentSelect.disabled = true;
    toAgent.disabled = true;
    toQueue.checked = true;
    agentNote.hidden = false;
    queueRow.append(agentNote); // say why, where it is seen
  }
  if (queuesResult.status === "fulfilled") {
    replace(
      queueSelect,
      h("option", { value: "", i18n: "dialog.choose" }),
      listOf(queuesResult.value, "queues").map((q) => h("option", { value: String(q.id), text: q.name })),
    );
  } else {
    setRawText(error, describe(queuesResult.reason));
  }
  sync();
}

// ---------- Finalize ----------

/** `form`: the protocol form (flushed first; its fields are highlighted when required ones are missing). */
export async function openFinalizeDialog(conversation, { form, onDone }) {
  let dialog = null;
  const error = h("div", { id: "finalize-error", class: "form-error", role: "alert" });
  const missing = h("div", { id: "finalize-missing", class: "alert alert-error", hidden: true });
  const disposition = h("select", { id: "finalize-disposition", required: true }, h("option", { value: "", i18n: "dialog.loading" }));
  const note = h("textarea", { id: "finalize-note", rows: 3, maxlength: 2000, i18nPlaceholder: "finalize.notePlaceholder" });
  const sendClosing = h("input", { type: "checkbox", id: "finalize-send-closing", checked: true });
  const submit = submitButton("finalize-submit", "finalize.submit");

  async function onSubmit() {
    setText(error, null);
    missing.hidden = true;
    if (!disposition.value) {
      setText(error, "finalize.dispositionRequired");
      disposition.focus();
      return;
    }
    busy(submit, true, "finalize.submit");
    try {
      await form?.flush();
      const body = { disposition_id: Number(disposition.value), send_closing_message: sendClosing.checked };
      if (note.value.trim()) body.note = note.value.trim();
      await post(`/api/conversations/${conversation.id}/finalize`, body);
      dialog.close();
      onDone?.();
    } catch (e) {
      if (e instanceof ApiError && e.code === "required_fields_missing") {
        const fields = e.body?.error?.fields || e.body?.fields || [];
        showMissing(fields);
        form?.markMissing(fields);
      } else {
        setRawText(error, describe(e));
      }
      busy(submit, false, "finalize.submit");
    }
  }

  function showMissing(fields) {
    const labels = fields.map((f) => {
      const label = form?.labelOf(f) ?? f;
      return label.startsWith("form.") ? t(label) : label;
    });
    missing.hidden = false;
    replace(
      missing,
      h("strong", { i18n: "finalize.missingTitle" }),
      h("ul", { id: "finalize-missing-list" }, labels.map((l) => h("li", { text: l }))),
      h("p", { class: "small", i18n: "finalize.missingHelp" }),
    );
  }

  dialog = openDialog({
    id: "finalize-dialog",
    title: "finalize.title",
    onSubmit,
    body: [
      h("p", { class: "muted", i18n: "finalize.intro", i18nArgs: { protocol: conversation.protocol } }),
      h("div", { class: "field required" }, h("label", { for: "finalize-disposition" }, h("span", { i18n: "finalize.disposition" }), h("span", { class: "required-mark", text: " *" })), disposition),
      h("div", { class: "field" }, h("label", { for: "finalize-note", i18n: "finalize.note" }), note),
      h("label", { class: "inline checkbox" }, sendClosing, h("span", { i18n: "finalize.sendClosing" })),
      missing,
      error,
    ],
    actions: [cancelButton(() => dialog, "finalize-cancel"), submit],
  });

  try {
    const q = conversation.queue_id != null ? `?queue_id=${conversation.queue_id}` : "";
    const list = listOf(await get(`/api/dispositions${q}`), "dispositions");
    replace(
      disposition,
      h("option", { value: "", i18n: list.length ? "dialog.choose" : "finalize.noDispositions" }),
      list.map((d) => h("option", { value: String(d.id), text: d.label })),
    );
  } catch (e) {
    replace(disposition, h("option", { value: "", i18n: "finalize.noDispositions" }));
    setRawText(error, describe(e));
  }
}

// ---------- Assign (supervisors, admins) ----------

export async function openAssignDialog(conversation, { onDone }) {
  let dialog = null;
  const error = h("div", { id: "assign-error", class: "form-error", role: "alert" });
  const agentSelect = h("select", { id: "assign-agent" }, h("option", { value: "", i18n: "dialog.loading" }));
  const warning = h("div", { id: "assign-warning", class: "alert alert-warning", hidden: true });
  const exceed = h("input", { type: "checkbox", id: "assign-exceed" });
  const exceedRow = h("label", { class: "inline checkbox", hidden: true }, exceed, h("span", { i18n: "assign.exceed" }));
  const submit = submitButton("assign-submit", "assign.submit");
  let agents = [];

  function sync() {
    const agent = agents.find((a) => String(a.id) === agentSelect.value);
    const full = atLimit(agent);
    warning.hidden = !full;
    exceedRow.hidden = !full;
    if (full) setText(warning, "assign.atLimit", { name: agent.name, load: agent.load, limit: agent.limit });
    else exceed.checked = false;
    submit.disabled = !agent || (full && !exceed.checked);
  }

  async function onSubmit() {
    setText(error, null);
    const body = { agent_id: Number(agentSelect.value) };
    if (exceed.checked) body.exceed_limit = true;
    busy(submit, true, "assign.submit");
    try {
      await post(`/api/conversations/${conversation.id}/assign`, body);
      dialog.close();
      onDone?.();
    } catch (e) {
      if (e instanceof ApiError && e.code === "agent_at_capacity") {
        setText(error, "assign.atCapacity");
        warning.hidden = false;
        exceedRow.hidden = false;
      } else {
        setRawText(error, describe(e));
      }
      busy(submit, false, "assign.submit");
      submit.disabled = !agentSelect.value || (!exceedRow.hidden && !exceed.checked);
    }
  }

  dialog = openDialog({
    id: "assign-dialog",
    title: "assign.title",
    onSubmit,
    body: [
      h("p", { class: "muted", i18n: "assign.intro", i18nArgs: { protocol: conversation.protocol } }),
      h("div", { class: "field" }, h("label", { for: "assign-agent", i18n: "assign.agent" }), agentSelect),
      warning,
      exceedRow,
      error,
    ],
    actions: [cancelButton(() => dialog, "assign-cancel"), submit],
  });
  agentSelect.addEventListener("change", sync);
  exceed.addEventListener("change", sync);
  sync();
  try {
    agents = (await loadAgents()) || [];
    replace(agentSelect, agentOptions(agents, conversation.agent_id));
  } catch (e) {
    setRawText(error, describe(e));
  }
  sync();
}
