// The protocol form beside the chat: protocol (read-only), name, "Código" (CPF/CNPJ checked as
// the agent types), e-mail, phone (from WhatsApp, read-only), subject, notes and the queue's custom
// fields. Saved as the agent types (debounced PATCH of the changed fields); switching conversations
// or leaving the page flushes what is pending, so no edit is lost. Below it, the contact's previous
// conversations, each openable read-only.

import { ApiError, describe, get, patch } from "./api.js";
import { debounce, formatDateTime, formatPhone, h, replace, setRawText, setText } from "./dom.js";
import { has } from "./i18n.js";
import { checkDocument } from "./document.js";

const SAVE_DELAY_MS = 700;
let dispositions = null; // id -> label, read once per page
const RETRY_MS = 4000;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * `conversationId`, `editable`, `onOpenConversation(id)` (a previous conversation was clicked).
 * Returns {el, flush(), reload(), markMissing(fields), setEditable(bool), destroy()}.
 */
export function createProtocolForm({ conversationId, editable, onOpenConversation }) {
  const saveState = h("span", { id: "form-save-state", class: "save-state small", dataset: { state: "idle" } });
  const body = h("div", { class: "form-body" }, h("p", { class: "muted small", i18n: "form.loading" }));
  const previous = h("div", { id: "previous-conversations", class: "previous-list" });
  const el = h(
    "aside",
    { id: "protocol-form", class: "side-panel" },
    h("div", { class: "side-title" }, h("h2", { i18n: "form.title" }), saveState),
    body,
    h("h3", { class: "side-subtitle", i18n: "form.previous" }),
    previous,
  );

  let form = null; // the server's last answer
  let inputs = {}; // field key -> input element
  let dirty = {}; // field key -> value to send
  let saving = false;
  let retryTimer = null;
  let stopped = false;
  let canEdit = editable;

  // ---------- Loading and rendering ----------

  async function load() {
    try {
      const data = await get(`/api/conversations/${conversationId}/form`);
      if (stopped) return;
      form = data?.form || data;
      render();
      loadPrevious();
    } catch (e) {
      if (stopped) return;
      replace(body, h("p", { class: "form-error", text: e instanceof ApiError && e.status === 404 ? "" : describe(e), i18n: e instanceof ApiError && e.status === 404 ? "form.unavailable" : null }));
    }
  }

  function render() {
    inputs = {};
    const fields = [
      readOnlyField("protocol", "form.protocol", form.protocol),
      textField("name", "form.name", { value: form.name, autocomplete: "off", maxlength: 200 }),
      codeField(),
      textField("email", "form.email", { type: "email", value: form.email, autocomplete: "off", maxlength: 200, validate: checkEmail }),
      readOnlyField("phone", "form.phone", formatPhone(form.phone) || form.phone),
      textField("subject", "form.subject", { value: form.subject, maxlength: 200 }),
      textField("notes", "form.notes", { value: form.notes, multiline: true, maxlength: 4000 }),
    ];
    const custom = (form.fields || []).map(customField);
    replace(body, fields, custom.length ? h("h3", { class: "side-subtitle", i18n: "form.custom" }) : null, custom);
    setEditable(canEdit);
  }

  function fieldWrap(key, labelKey, control, { required = false, label = null, extra = [] } = {}) {
    const id = control.id;
    return h(
      "div",
      { class: `field${required ? " required" : ""}`, dataset: { field: key } },
      h("label", { for: id }, label ? h("span", { text: label }) : h("span", { i18n: labelKey }), required ? h("span", { class: "required-mark", text: " *", "aria-hidden": "true" }) : null),
      control,
      extra,
    );
  }

  function readOnlyField(key, labelKey, value) {
    const input = h("input", { id: `form-${key}`, type: "text", value: value || "", readonly: true, class: "readonly" });
    return fieldWrap(key, labelKey, input);
  }

  function textField(key, labelKey, { value, multiline = false, validate, ...attrs }) {
    const input = multiline
      ? h("textarea", { id: `form-${key}`, rows: 3, ...attrs })
      : h("input", { id: `form-${key}`, type: attrs.type || "text", ...attrs });
    input.value = value ?? "";
    const error = h("div", { id: `form-${key}-error`, class: "field-error small", role: "alert" });
    inputs[key] = input;
    input.addEventListener("input", () => {
      clearMissing(key);
      const ok = validate ? validate(input.value, error) : true;
      if (ok) queue(key, input.value.trim()); // "" clears it (null would leave it unchanged)
      else drop(key);
    });
    return fieldWrap(key, labelKey, input, { extra: [error] });
  }

  function checkEmail(value, error) {
    const v = value.trim();
    if (!v || EMAIL.test(v)) {
      setText(error, null);
      return true;
    }
    setText(error, "form.emailInvalid");
    return false;
  }

  function codeField() {
    const input = h("input", { id: "form-code", type: "text", autocomplete: "off", spellcheck: "false", maxlength: 20, "aria-describedby": "form-code-hint form-code-error" });
    input.value = form.code_formatted || form.code || "";
    const hint = h("div", { id: "form-code-hint", class: "field-hint small muted" });
    const error = h("div", { id: "form-code-error", class: "field-error small", role: "alert" });
    inputs.code = input;
    const check = (final) => {
      const result = checkDocument(input.value);
      input.dataset.state = result.state;
      setText(error, null);
      setText(hint, null);
      switch (result.state) {
        case "empty":
          setText(hint, "form.codeHint");
          return { ok: true, value: "" };
        case "valid":
          setText(hint, result.kind === "cpf" ? "form.cpfValid" : "form.cnpjValid", { value: result.formatted });
          if (input.value !== result.formatted) input.value = result.formatted;
          return { ok: true, value: result.value };
        case "partial":
          if (final) setText(error, "form.codeIncomplete");
          else setText(hint, result.alphanumeric ? "form.codePartialCnpj" : "form.codePartial");
          return { ok: false };
        default:
          setText(error, `form.codeInvalid.${result.reason}`);
          return { ok: false };
      }
    };
    input.addEventListener("input", () => {
      clearMissing("code");
      const r = check(false);
      if (r.ok) queue("code", r.value);
      else drop("code");
    });
    input.addEventListener("blur", () => check(true));
    check(false);
    return fieldWrap("code", "form.code", input, { extra: [hint, error] });
  }

  function customField(def) {
    const key = def.key;
    const id = `form-custom-${key}`;
    const value = form.custom?.[key];
    let input;
    switch (def.kind) {
      case "number":
        input = h("input", { id, type: "number", step: "any" });
        break;
      case "date":
        input = h("input", { id, type: "date" });
        break;
      case "choice":
        input = h("select", { id }, h("option", { value: "", i18n: "form.choose" }), (def.options || []).map((o) => h("option", { value: String(o), text: String(o) })));
        break;
      default:
        input = h("input", { id, type: "text", maxlength: 500 });
    }
    input.value = value ?? "";
    input.dataset.testid = "custom-field";
    input.dataset.key = key;
    if (def.required) input.setAttribute("aria-required", "true");
    inputs[`custom.${key}`] = input;
    const onChange = () => {
      clearMissing(key);
      const raw = input.value;
      const v = raw === "" ? null : def.kind === "number" ? Number(raw) : raw;
      if (def.kind === "number" && raw !== "" && !Number.isFinite(v)) return;
      queueCustom(key, v);
    };
    input.addEventListener(def.kind === "choice" || def.kind === "date" ? "change" : "input", onChange);
    return fieldWrap(key, null, input, { required: def.required, label: def.label || key });
  }

  // ---------- Saving ----------

  const saveSoon = debounce(() => save(), SAVE_DELAY_MS);

  function queue(key, value) {
    dirty[key] = value;
    setState("pending");
    saveSoon();
  }

  function queueCustom(key, value) {
    const custom = { ...(form.custom || {}), ...(dirty.custom || {}) };
    if (value === null) delete custom[key];
    else custom[key] = value;
    // The whole object: a PATCH replaces `custom` or merges it, the result is the same.
    dirty.custom = custom;
    setState("pending");
    saveSoon();
  }

  function drop(key) {
    delete dirty[key];
    if (!Object.keys(dirty).length && !saving) setState("idle");
  }

  async function save({ keepalive = false } = {}) {
    clearTimeout(retryTimer);
    if (saving || !Object.keys(dirty).length) return;
    const sent = dirty;
    dirty = {};
    saving = true;
    setState("saving");
    try {
      const data = await patch(`/api/conversations/${conversationId}/form`, sent, { keepalive });
      const fresh = data?.form || data;
      if (fresh && typeof fresh === "object") form = { ...form, ...fresh };
      else form = { ...form, ...sent };
      if (!stopped) setState(Object.keys(dirty).length ? "pending" : "saved");
    } catch (e) {
      if (stopped) return;
      if (e instanceof ApiError && e.code === "invalid_document") {
        setText(document.getElementById("form-code-error"), "form.codeRejected");
        setState("error", describe(e));
      } else if (e instanceof ApiError && (e.status === 400 || e.status === 403 || e.status === 409)) {
        setState("error", describe(e)); // not worth retrying
      } else {
        dirty = { ...sent, ...dirty }; // keep it, newer edits win
        setState("error", describe(e));
        retryTimer = setTimeout(() => save(), RETRY_MS);
      }
    } finally {
      saving = false;
      if (!stopped && Object.keys(dirty).length && !retryTimer) saveSoon();
    }
  }

  function setState(state, message) {
    saveState.dataset.state = state;
    if (state === "saving" || state === "pending") setText(saveState, "form.saving");
    else if (state === "saved") setText(saveState, "form.saved");
    else if (state === "error") setText(saveState, "form.saveError", { message: message || "" });
    else setText(saveState, null);
  }

  /** Sends what is pending now (switching conversation, leaving the page, finalizing). */
  async function flush() {
    saveSoon.cancel();
    while (saving) await new Promise((r) => setTimeout(r, 50));
    if (Object.keys(dirty).length) await save({ keepalive: true });
  }

  // ---------- Required fields and editability ----------

  function fieldEl(key) {
    return body.querySelector(`.field[data-field="${CSS.escape(key)}"]`);
  }

  function clearMissing(key) {
    fieldEl(key)?.classList.remove("field-missing");
  }

  /** The form's key for a field named by key or label (the server names missing ones by label). */
  function keyOf(name) {
    const k = String(name).replace(/^custom\./, "");
    const def = (form?.fields || []).find((f) => f.key === k || f.label === k);
    return def ? def.key : k;
  }

  function markMissing(fields) {
    let first = null;
    for (const name of fields || []) {
      const el = fieldEl(keyOf(name));
      if (!el) continue;
      el.classList.add("field-missing");
      first = first || el;
    }
    first?.querySelector("input, select, textarea")?.focus();
  }

  /** The label of a field key, for messages ("Nome", or a custom field's label). */
  function labelOf(key) {
    const k = String(key).replace(/^custom\./, "");
    const def = (form?.fields || []).find((f) => f.key === k || f.label === k);
    if (def) return def.label || k;
    return has(`form.${k}`) ? `form.${k}` : k;
  }

  function setEditable(value) {
    canEdit = value;
    for (const [key, input] of Object.entries(inputs)) {
      if (key === "protocol" || key === "phone") continue;
      input.disabled = !canEdit;
    }
    el.classList.toggle("read-only", !canEdit);
  }

  // ---------- Previous conversations ----------

  async function loadPrevious() {
    if (!form?.contact_id) return;
    try {
      const [data] = await Promise.all([get(`/api/contacts/${form.contact_id}/conversations`), loadDispositions()]);
      if (stopped) return;
      const list = (data?.conversations || []).filter((c) => c.id !== conversationId);
      if (!list.length) return replace(previous, h("p", { class: "muted small", i18n: "form.noPrevious" }));
      replace(
        previous,
        list.map((c) =>
          h(
            "button",
            { type: "button", class: "previous-item", dataset: { testid: "previous-conversation", id: c.id }, on: { click: () => onOpenConversation?.(c.id) } },
            h("span", { class: "protocol", text: c.protocol || `#${c.id}` }),
            h("span", { class: "muted small", text: formatDateTime(c.opened_at || c.created_at || c.last_message_at) }),
            closeLabel(c),
          ),
        ),
      );
    } catch (e) {
      if (!stopped) setRawText(previous, describe(e));
    }
  }

  // ---------- Lifecycle ----------

  const onPageHide = () => flush();
  window.addEventListener("pagehide", onPageHide);
  // A re-read that waited for the agent to leave the form.
  let staleWhileEditing = false;
  el.addEventListener("focusout", (event) => {
    if (!staleWhileEditing || el.contains(event.relatedTarget)) return;
    setTimeout(() => {
      if (stopped || el.contains(document.activeElement)) return;
      if (Object.keys(dirty).length || saving || saveSoon.pending()) return;
      staleWhileEditing = false;
      load();
    }, 0);
  });
  load();

  return {
    el,
    flush,
    /**
     * Re-reads the form (someone saved it). Never under the agent's fingers: while they have
     * edits pending or a field of the form has focus (half-typed text that is not valid yet is
     * not "pending"), the re-read waits until the focus leaves the form.
     */
    reload() {
      const editing = el.contains(document.activeElement);
      if (editing || Object.keys(dirty).length || saving || saveSoon.pending()) {
        staleWhileEditing = true;
        return;
      }
      load();
    },
    markMissing,
    labelOf,
    setEditable,
    destroy() {
      flush();
      stopped = true;
      clearTimeout(retryTimer);
      window.removeEventListener("pagehide", onPageHide);
    },
  };
}

async function loadDispositions() {
  if (dispositions) return;
  try {
    const data = await get("/api/dispositions");
    dispositions = new Map((data?.dispositions || []).map((d) => [d.id, d.label]));
  } catch {
    dispositions = new Map();
  }
}

/** How a previous conversation ended: its disposition, else why it closed, else its state. */
function closeLabel(c) {
  const label = c.disposition_label || (c.disposition_id != null ? dispositions?.get(c.disposition_id) : null);
  if (label) return h("span", { class: "small", text: label });
  if (!c.closed_at) return h("span", { class: "small", i18n: has(`state.${c.state}`) ? `state.${c.state}` : null, text: c.state });
  const key = `close.${c.close_reason}`;
  return h("span", { class: "muted small", ...(has(key) ? { i18n: key } : { text: c.close_reason || "" }) });
}
