// The desk's template mode: what the composer becomes when the customer's 24 h window is closed
// (and, on request, while it is open), and what starting a conversation with a phone number or a
// contact shows. The agent picks an approved template of the channel (GET
// /api/conversations/{id}/template_state, or GET /api/templates for a new conversation), fills
// its variables from what Atende knows (contact name, Código, protocol number, agent name) or free
// text, sees the exact message the customer will get, chooses where the reply goes (the channel's
// HSM response queue, a queue, or back to the agent) and sends. The server checks the variables
// against the template again (422 with the problem of each variable).

import { ApiError, describe, get, post } from "./api.js";
import { h, randomKey, replace, setRawText, setText } from "./dom.js";
import { getLang, t } from "./i18n.js";
import { listOf } from "./actions.js";
import { templatePreview } from "./template_preview.js";
import { keyOf, languageName, mediaHeader, render, renderValues, sendVariables, stateFromDefinition, valuesForApi } from "./template_model.js";
import { problemsOf, problemText } from "./template_editor.js";

/** Where a value of a variable can come from; "free" is typed by the agent. */
const SOURCES = ["contact_name", "code", "protocol", "agent_name", "free"];

/**
 * `conversationId` (template mode of a conversation) or `start` ({to} | {contact_id}, with
 * `channel_id`: a new conversation), `conversation` (for the offered values), `user`,
 * `onSent(message, result)`, `onCancel()` (shown when given: back to free text), `submitter(body)`
 * (instead of sending now: scheduling takes the same body), `sendLabel` (i18n key of the button).
 * Returns {el, setConversation(c), destroy()}.
 */
export function createTemplateComposer({ conversationId = null, start = null, conversation = null, user, onSent, onCancel, submitter = null, sendLabel = "tplc.send", prefix = "tplc" }) {
  const picker = h("select", { id: `${prefix}-template`, "aria-label": t("tplc.template") });
  const head = h("div", { class: "tplc-head" }, h("label", { for: `${prefix}-template`, class: "tplc-label", i18n: "tplc.template" }), picker);
  const fields = h("div", { id: `${prefix}-fields`, class: "tplc-fields" });
  const route = routeChooser(user, prefix);
  const previewBox = h("div", { id: `${prefix}-preview`, class: "tplc-preview" });
  const error = h("div", { id: `${prefix}-error`, class: "form-error", role: "alert" });
  const send = h("button", { type: "submit", id: `${prefix}-send`, class: "btn btn-primary", i18n: sendLabel, disabled: true });
  const cancel = onCancel ? h("button", { type: "button", id: `${prefix}-cancel`, class: "btn btn-ghost", i18n: "tplc.backToText", on: { click: () => onCancel() } }) : null;
  const el = h(
    "form",
    { id: "template-composer", class: "template-composer", novalidate: true, dataset: { testid: "template-composer" } },
    h("div", { class: "tplc-main" }, head, fields, route.el, error, h("div", { class: "tplc-actions" }, cancel, send)),
    previewBox,
  );

  let templates = []; // stored templates, approved ones of the channel
  let chosen = null; // {record, state, variables}
  let values = {}; // key -> value
  let known = { contact_name: "", code: "", protocol: "", agent_name: user?.name || "" };
  let stopped = false;
  let sending = false;
  let idempotencyKey = randomKey();

  // ---------- Loading ----------

  async function load() {
    try {
      if (conversationId) {
        const data = await get(`/api/conversations/${conversationId}/template_state`);
        templates = listOf(data, "templates");
      } else {
        const qs = new URLSearchParams({ status: "APPROVED" });
        if (start?.channel_id) qs.set("channel_id", String(start.channel_id));
        templates = listOf(await get(`/api/templates?${qs}`), "templates");
      }
      templates = templates.filter((tpl) => String(tpl.status || "APPROVED").toUpperCase() === "APPROVED");
      if (stopped) return;
      renderPicker();
    } catch (e) {
      if (!stopped) setRawText(error, describe(e));
    }
    if (conversationId) loadKnown();
  }

  /** The conversation's Código (from its protocol form), to offer it as a value. */
  async function loadKnown() {
    try {
      const data = await get(`/api/conversations/${conversationId}/form`);
      const form = data?.form || data;
      known.code = form?.code_formatted || form?.code || "";
      if (!known.contact_name && form?.name) known.contact_name = form.name;
      if (!stopped) refreshSourced();
    } catch {
      // The form is a convenience here.
    }
  }

  function renderPicker() {
    replace(
      picker,
      h("option", { value: "", i18n: templates.length ? "tplc.choose" : "tplc.none" }),
      templates.map((tpl) => h("option", { value: String(tpl.id), text: `${tpl.name} · ${languageName(tpl.language, getLang())}` })),
    );
    picker.disabled = !templates.length;
    if (templates.length === 1) {
      picker.value = String(templates[0].id);
      choose();
    } else renderPreview();
  }

  // ---------- Variables ----------

  function choose() {
    const record = templates.find((tpl) => String(tpl.id) === picker.value) || null;
    setText(error, null);
    delete error.dataset.state;
    idempotencyKey = randomKey();
    if (!record) {
      chosen = null;
      replace(fields);
      renderPreview();
      return updateSend();
    }
    const state = stateFromDefinition(record);
    chosen = { record, state, variables: sendVariables(state), media: mediaHeader(state) };
    values = {};
    replace(fields, chosen.media ? mediaField(chosen.media) : null, chosen.variables.map(variableField));
    if (!chosen.variables.length && !chosen.media) fields.append(h("p", { class: "muted small", i18n: "tplc.noVariables" }));
    renderPreview();
    updateSend();
  }

  /**
   * A sensible first source for a variable: from its name ({{nome}}), else from the words right
   * before it in the text ("Protocolo {{3}}", "Olá, {{1}}"). The agent can always change it.
   */
  function guessSource(v) {
    const source = guessFromText(v);
    // Nothing to fill it with (a phone number typed for a new conversation): the agent types it.
    return source !== "free" && !conversationId && !known[source] ? "free" : source;
  }

  function guessFromText(v) {
    if (v.part === "button") return "free";
    const text = v.part === "header" ? chosen.state.header.text : chosen.state.body.text;
    const at = text.search(new RegExp(`\\{\\{\\s*${v.name}\\s*\\}\\}`));
    const before = (at > 0 ? text.slice(Math.max(0, at - 30), at) : "").toLowerCase();
    const clue = `${String(v.name).toLowerCase()} ${before}`;
    if (/protocolo|protocol/.test(clue)) return conversationId ? "protocol" : "free";
    if (/c[oó]digo|cpf|cnpj/.test(clue)) return "code";
    if (/atendente|agent|meu nome é|sou [ao] /.test(clue)) return "agent_name";
    if (/nome|name|cliente|(ol[aá]|oi|prezad[ao]|bom dia|boa tarde|boa noite),?\s*$/.test(clue)) return "contact_name";
    return "free";
  }

  function variableField(v) {
    const key = keyOf(v);
    const id = `${prefix}-var-${key.replace(/[^a-z0-9]/gi, "-")}`;
    const source = h(
      "select",
      { id: `${id}-source`, class: "tplc-source", dataset: { testid: "tplc-source", key } },
      SOURCES.map((s) => h("option", { value: s, i18n: `tplc.source.${s}`, disabled: s === "protocol" && !conversationId })),
    );
    const input = h("input", { id, type: "text", autocomplete: "off", maxlength: v.part === "header" ? 60 : 1024, dataset: { testid: "tplc-var", key, part: v.part, name: v.name }, placeholder: v.example || "" });
    const problem = h("div", { class: "field-error small", dataset: { testid: "tplc-var-error", key }, role: "alert" });
    source.value = guessSource(v);
    const apply = () => {
      if (source.value !== "free") input.value = known[source.value] || "";
      input.readOnly = source.value !== "free";
      values[key] = input.value;
    };
    source.addEventListener("change", () => {
      apply();
      if (source.value === "free") input.focus();
      changed();
    });
    input.addEventListener("input", () => {
      values[key] = input.value;
      replace(problem);
      changed();
    });
    apply();
    const label = v.part === "button" ? t("tplc.buttonVar", { n: v.index + 1 }) : v.part === "header" ? t("tplc.headerVar", { name: v.name }) : `{{${v.name}}}`;
    return h("div", { class: "tplc-var", dataset: { key } }, h("label", { for: id, class: "tplc-var-label", text: label, title: label }), h("div", { class: "tplc-var-inputs" }, source, input), problem);
  }

  function mediaField(kind) {
    const id = `${prefix}-media-link`;
    const input = h("input", { id, type: "url", autocomplete: "off", placeholder: "https://", dataset: { testid: "tplc-media" } });
    input.addEventListener("input", () => {
      values["header_media"] = input.value.trim();
      changed();
    });
    return h("div", { class: "tplc-var", dataset: { key: "header_media" } }, h("label", { for: id, class: "tplc-var-label", i18n: `tplc.mediaLink.${kind}` }), input, h("div", { class: "field-error small", dataset: { testid: "tplc-var-error", key: "header_media" } }));
  }

  /** Values that follow a source (the form's Código was read, the contact got a name). */
  function refreshSourced() {
    for (const box of fields.querySelectorAll(".tplc-var")) {
      const source = box.querySelector(".tplc-source");
      const input = box.querySelector("input[type=text]");
      if (!source || !input || source.value === "free") continue;
      input.value = known[source.value] || "";
      values[box.dataset.key] = input.value;
    }
    changed();
  }

  function changed() {
    renderPreview();
    updateSend();
  }

  function renderPreview() {
    if (!chosen) return replace(previewBox, templatePreview({}, { empty: true }));
    const rendered = render(chosen.state, renderValues(chosen.variables, values, values.header_media));
    replace(previewBox, templatePreview(rendered));
  }

  function missing() {
    if (!chosen) return true;
    if (chosen.media && !values.header_media) return true;
    return chosen.variables.some((v) => !String(values[keyOf(v)] ?? "").trim());
  }

  function updateSend() {
    send.disabled = sending || missing() || !route.valid();
  }

  // ---------- Sending ----------

  async function submit(ev) {
    ev.preventDefault();
    if (send.disabled) return;
    sending = true;
    updateSend();
    setText(error, null);
    delete error.dataset.state;
    const variables = valuesForApi(chosen.variables, values);
    if (values.header_media) variables.header_media = { link: values.header_media };
    const body = { type: "template", template_id: chosen.record.id, variables, reply_route: route.value(), idempotency_key: idempotencyKey };
    try {
      const result = submitter
        ? await submitter(body)
        : conversationId
          ? await post(`/api/conversations/${conversationId}/messages`, body)
          : await post("/api/messages", { ...start, ...body });
      onSent?.(result?.message || result, result);
      // Ready for another one (a new key): the same template, its variables cleared.
      choose();
      setText(error, "tplc.sent");
      error.dataset.state = "ok";
    } catch (e) {
      showFailure(e);
    } finally {
      sending = false;
      updateSend();
    }
  }

  function showFailure(e) {
    const problems = problemsOf(e) || [];
    const unplaced = [];
    for (const p of problems) {
      const key = problemKey(p.field);
      const target = key && fields.querySelector(`[data-testid=tplc-var-error][data-key="${CSS.escape(key)}"]`);
      if (target) target.append(h("div", { text: problemText(p) }));
      else unplaced.push(problemText(p));
    }
    if (problems.length && !unplaced.length) return setText(error, "tplc.fixVariables");
    if (unplaced.length) return setRawText(error, unplaced.join(" "));
    if (e instanceof ApiError && e.status === 403) return setRawText(error, e.body?.error?.message || e.describe());
    setText(error, "composer.error", { message: describe(e) });
  }

  el.addEventListener("submit", submit);
  picker.addEventListener("change", choose);
  route.onChange(updateSend);
  function setConversation(c) {
    known.contact_name = c?.contact_name || known.contact_name || "";
    known.protocol = c?.protocol || "";
    refreshSourced();
  }
  if (conversation) setConversation(conversation);
  load();

  return {
    el,
    setConversation,
    focus: () => picker.focus(),
    destroy() {
      stopped = true;
    },
  };
}

/** "body.1" from a problem's field ("body.1", "values.body.1", "components.body.parameters[0]"...). */
function problemKey(field) {
  const f = String(field || "").replace(/^(values|variables)\./, "");
  let m = f.match(/^(header|body)\.([A-Za-z0-9_]+)$/);
  if (m) return `${m[1]}.${m[2]}`;
  m = f.match(/^buttons?[.[](\d+)/);
  if (m) return `button.${m[1]}`;
  if (/header_media|header\.media/.test(f)) return "header_media";
  return null;
}

/**
 * The reply routing choice: the channel's HSM response queue (default), a chosen queue, or back to
 * me (with the channel's fallback queue when I am away). Returns {el, value(), valid(), onChange(fn)}.
 */
function routeChooser(user, prefix) {
  const choice = h(
    "select",
    { id: `${prefix}-route`, dataset: { testid: "tplc-route" } },
    ["channel_default", "queue", "agent"].map((v) => h("option", { value: v, i18n: `tplc.route.${v}` })),
  );
  const queue = h("select", { id: `${prefix}-route-queue`, class: "tplc-route-queue", hidden: true }, h("option", { value: "", i18n: "tplc.chooseQueue" }));
  const listeners = [];
  const el = h("div", { class: "tplc-route" }, h("label", { for: choice.id, class: "tplc-var-label", i18n: "tplc.routeTitle" }), h("div", { class: "tplc-var-inputs" }, choice, queue));
  let loaded = false;
  const fire = () => listeners.forEach((fn) => fn());
  choice.addEventListener("change", async () => {
    queue.hidden = choice.value !== "queue";
    if (choice.value === "queue" && !loaded) {
      loaded = true;
      try {
        const queues = listOf(await get("/api/queues"), "queues");
        queue.append(...queues.map((q) => h("option", { value: String(q.id), text: q.name })));
      } catch {
        loaded = false;
      }
    }
    fire();
  });
  queue.addEventListener("change", fire);
  return {
    el,
    value() {
      if (choice.value === "queue") return { target: "queue", queue_id: Number(queue.value) };
      // The sender's own portfolio; the channel's fallback queue when they are away.
      if (choice.value === "agent") return { target: "agent" };
      return { target: "channel" };
    },
    valid: () => choice.value !== "queue" || Boolean(queue.value),
    onChange: (fn) => listeners.push(fn),
  };
}
