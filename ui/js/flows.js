// "Fluxos do bot" (admins): the flows, a JSON editor for one of them, validation with the server's
// pt-BR errors or a preview of what a new customer would see, saving a new version, and the
// version history.

import { ApiError, get, post, put } from "./api.js";
import { formatDateTime, h, replace } from "./dom.js";
import { has, onLangChange, t } from "./i18n.js";
import { customerBubble } from "./chat.js";
import { icon } from "./icons.js";

/** What "Novo fluxo" starts from: the smallest flow the validator accepts. */
const STARTER_DEFINITION = {
  start: "menu",
  human_queue: "atendimento",
  steps: {
    menu: {
      type: "menu",
      text: "Olá, {{nome}}! Seu protocolo é {{protocolo}}. Como podemos ajudar?",
      send_protocol: true,
      options: [
        { id: "atendente", title: "Falar com atendente", next: "atendente" },
        { id: "encerrar", title: "Era só isso", next: "fim" },
      ],
    },
    atendente: { type: "handoff", queue: "atendimento", text: "Vou transferir você para um atendente." },
    fim: { type: "end", text: "Obrigado pelo contato!" },
  },
};

export function flowsSection(container, { user }) {
  if (user.role !== "admin") {
    replace(container, h("div", { class: "empty-state" }, h("p", { i18n: "flows.adminOnly" })));
    return {};
  }
  const list = h("div", { id: "flow-list", class: "flow-list", role: "list" });
  const listStatus = h("div", { class: "list-status muted" });
  const newName = h("input", { id: "new-flow-name", type: "text", i18nPlaceholder: "flows.newName", maxlength: 100 });
  const newForm = h(
    "form",
    { class: "new-flow", hidden: true },
    newName,
    h(
      "div",
      { class: "row-buttons" },
      h("button", { type: "submit", class: "btn btn-primary btn-small", i18n: "flows.create" }),
      h("button", { type: "button", class: "btn btn-ghost btn-small", i18n: "flows.cancel", on: { click: () => (newForm.hidden = true) } }),
    ),
  );
  const newButton = h("button", {
    type: "button",
    id: "new-flow",
    class: "btn btn-small btn-secondary",
    i18n: "flows.new",
    on: {
      click: () => {
        newForm.hidden = !newForm.hidden;
        if (!newForm.hidden) newName.focus();
      },
    },
  });
  const pane = h("section", { id: "flow-pane", class: "flow-pane" });
  replace(
    container,
    h(
      "div",
      { class: "flows" },
      h("aside", { class: "flow-sidebar" }, h("div", { class: "panel-title" }, h("h2", { i18n: "flows.title" }), newButton), newForm, listStatus, list),
      pane,
    ),
  );

  let flows = [];
  let selectedId = null;
  let editor = null;

  function renderList() {
    if (!flows.length) {
      replace(list, h("p", { class: "empty-list muted", i18n: "flows.empty" }));
      return;
    }
    replace(
      list,
      flows.map((f) =>
        h(
          "a",
          { href: `#/flows/${f.id}`, class: `flow-item${f.id === selectedId ? " selected" : ""}`, role: "listitem", dataset: { id: f.id } },
          h("div", { class: "flow-name", text: f.name }),
          h(
            "div",
            { class: "conv-line small muted" },
            h("span", { i18n: "flows.version", i18nArgs: { version: f.version } }),
            f.channel_id == null
              ? h("span", { i18n: "flows.allChannels" })
              : h("span", { i18n: "flows.channel", i18nArgs: { id: f.channel_id } }),
          ),
          h("span", { class: `badge ${f.enabled ? "badge-on" : "badge-off"}`, i18n: f.enabled ? "flows.enabled" : "flows.disabled" }),
        ),
      ),
    );
  }

  async function loadList() {
    try {
      const data = await get("/api/flows");
      flows = data?.flows || [];
      listStatus.textContent = "";
      renderList();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        listStatus.dataset.i18n = "flows.unavailable";
        listStatus.textContent = t("flows.unavailable");
      } else {
        listStatus.textContent = e instanceof ApiError ? e.describe() : String(e);
      }
    }
  }

  newForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = newName.value.trim();
    if (!name) return newName.focus();
    try {
      const result = await post("/api/flows", { name, definition: STARTER_DEFINITION });
      newForm.hidden = true;
      newName.value = "";
      await loadList();
      location.hash = `#/flows/${result.flow.id}`;
    } catch (e) {
      listStatus.textContent = describeError(e);
    }
  });

  function select(id) {
    if (id === selectedId && editor) return;
    selectedId = id;
    renderList();
    editor = null;
    if (!id) {
      replace(pane, h("div", { class: "empty-state" }, h("div", { class: "empty-icon" }, icon("bot", { size: 48 })), h("p", { i18n: "flows.pick" })));
      return;
    }
    editor = flowEditor(pane, id, { onSaved: loadList });
  }

  const offLang = onLangChange(renderList);
  loadList();
  return {
    route(parts) {
      const id = Number(parts[0]);
      select(Number.isInteger(id) && id > 0 ? id : null);
    },
    destroy() {
      offLang();
    },
  };
}

/** A readable sentence for an API error, with the flow's problems when the server listed them. */
function describeError(e) {
  if (!(e instanceof ApiError)) return String(e);
  return e.body?.error?.message || e.describe();
}

function flowEditor(pane, id, { onSaved }) {
  const title = h("h2", { class: "flow-title" });
  const meta = h("div", { class: "muted small" });
  const enabled = h("input", { type: "checkbox", id: "flow-enabled" });
  const textarea = h("textarea", {
    id: "flow-json",
    class: "code-editor",
    spellcheck: "false",
    autocomplete: "off",
    autocapitalize: "off",
    wrap: "off",
    "aria-labelledby": "flow-json-label",
  });
  const dirty = h("span", { class: "dirty muted small", i18n: "flows.unsaved", hidden: true });
  const formatBtn = h("button", { type: "button", class: "btn btn-ghost btn-small", i18n: "flows.format" });
  const validateBtn = h("button", { type: "button", id: "flow-validate", class: "btn btn-secondary", i18n: "flows.validate" });
  const saveBtn = h("button", { type: "button", id: "flow-save", class: "btn btn-primary", i18n: "flows.save" });
  const results = h("div", { id: "flow-results", class: "flow-results", "aria-live": "polite" });
  const history = h("div", { id: "flow-history", class: "flow-history" });

  replace(
    pane,
    h(
      "header",
      { class: "flow-header" },
      h("div", {}, title, meta),
      h("label", { class: "switch" }, enabled, h("span", { i18n: "flows.enabled" })),
    ),
    h(
      "div",
      { class: "flow-body" },
      h(
        "div",
        { class: "flow-editor" },
        h("label", { id: "flow-json-label", for: "flow-json", class: "field-label", i18n: "flows.editor" }),
        textarea,
        h("div", { class: "toolbar" }, formatBtn, dirty, h("div", { class: "top-spacer" }), validateBtn, saveBtn),
      ),
      h(
        "div",
        { class: "flow-side" },
        results,
        h("h3", { i18n: "flows.history" }),
        history,
      ),
    ),
  );

  let flow = null;
  let savedText = "";

  function setText(definition) {
    textarea.value = JSON.stringify(definition, null, 2);
    savedText = textarea.value;
    dirty.hidden = true;
  }

  function renderHeader() {
    title.textContent = flow.name;
    replace(
      meta,
      h("span", { i18n: "flows.version", i18nArgs: { version: flow.version } }),
      " · ",
      flow.channel_id == null ? h("span", { i18n: "flows.allChannels" }) : h("span", { i18n: "flows.channel", i18nArgs: { id: flow.channel_id } }),
      " · ",
      formatDateTime(flow.updated_at),
    );
    enabled.checked = Boolean(flow.enabled);
  }

  function renderHistory(versions) {
    if (!versions?.length) {
      replace(history, h("p", { class: "muted small", i18n: "flows.historyEmpty" }));
      return;
    }
    const sorted = versions.slice().sort((a, b) => b.version - a.version);
    replace(
      history,
      h(
        "ol",
        { class: "version-list" },
        sorted.map((v) =>
          h(
            "li",
            { class: v.version === flow.version ? "current" : "" },
            h("strong", { i18n: "flows.version", i18nArgs: { version: v.version } }),
            v.version === flow.version ? h("span", { class: "badge badge-on", i18n: "flows.current" }) : null,
            h("span", { class: "muted small" }, formatDateTime(v.created_at)),
            v.created_by != null ? h("span", { class: "muted small", i18n: "flows.by", i18nArgs: { id: v.created_by } }) : null,
          ),
        ),
      ),
    );
  }

  async function load() {
    try {
      const data = await get(`/api/flows/${id}`);
      flow = data.flow;
      renderHeader();
      setText(flow.definition);
      renderHistory(data.versions);
    } catch (e) {
      replace(results, h("div", { class: "alert alert-error", text: describeError(e) }));
    }
  }

  /** The editor's JSON, or null after showing why it does not parse. */
  function parsed() {
    try {
      return JSON.parse(textarea.value);
    } catch (e) {
      replace(results, h("div", { class: "alert alert-error", i18n: "flows.jsonError", i18nArgs: { message: e.message } }));
      return null;
    }
  }

  function showErrors(errors) {
    const items = (errors || []).map((err) => (typeof err === "string" ? err : err.message || JSON.stringify(err)));
    replace(
      results,
      h(
        "div",
        { class: "alert alert-error", id: "flow-errors" },
        h("strong", { i18n: "flows.invalid", i18nArgs: { n: items.length } }),
        h("ul", {}, items.map((text) => h("li", { text }))),
      ),
    );
  }

  function warningsView(warnings) {
    if (!warnings?.length) return null;
    return h("div", { class: "alert alert-warning" }, h("ul", {}, warnings.map((w) => h("li", { text: w }))));
  }

  function showPreview(result) {
    const preview = result.preview || {};
    const bubbles = (preview.messages || []).map((m) => customerBubble(previewItem(m), { expandList: true, highlightProtocol: true }));
    const then = preview.then || {};
    let ending = null;
    if (then.handoff) ending = h("div", { class: "bubble bubble-note", i18n: "flows.handoff", i18nArgs: { queue: then.handoff.queue } });
    else if (then.end) ending = h("div", { class: "bubble bubble-note", i18n: "flows.end" });
    else if (then.waits_at) ending = h("div", { class: "bubble bubble-note", i18n: "flows.waits" });
    replace(
      results,
      h("div", { class: "alert alert-ok", id: "flow-valid", i18n: "flows.valid" }),
      warningsView(result.warnings),
      h("h3", { i18n: "flows.preview" }),
      h(
        "div",
        { class: "phone-preview chat-bg", id: "flow-preview" },
        bubbles.length ? bubbles : h("p", { class: "muted small", i18n: "flows.previewEmpty" }),
        ending ? h("div", { class: "bubble-row row-system" }, ending) : null,
      ),
    );
  }

  async function validate() {
    const definition = parsed();
    if (!definition) return;
    busy(validateBtn, "flows.validating", true);
    try {
      const result = await post("/api/flows/validate", { definition });
      if (result.valid === false) showErrors(result.errors);
      else showPreview(result);
    } catch (e) {
      replace(results, h("div", { class: "alert alert-error", text: describeError(e) }));
    } finally {
      busy(validateBtn, "flows.validate", false);
    }
  }

  async function save(changes) {
    busy(saveBtn, "flows.saving", true);
    try {
      const result = await put(`/api/flows/${id}`, changes);
      flow = result.flow;
      renderHeader();
      if (changes.definition) setText(flow.definition);
      replace(
        results,
        h("div", { class: "alert alert-ok", id: "flow-saved", i18n: "flows.saved", i18nArgs: { version: flow.version } }),
        warningsView(result.warnings),
      );
      const data = await get(`/api/flows/${id}`);
      renderHistory(data.versions);
      onSaved?.();
    } catch (e) {
      const errors = e instanceof ApiError ? e.body?.error?.errors : null;
      if (errors?.length) showErrors(errors);
      else replace(results, h("div", { class: "alert alert-error", text: describeError(e) }));
      if (changes.enabled !== undefined) enabled.checked = Boolean(flow?.enabled);
    } finally {
      busy(saveBtn, "flows.save", false);
    }
  }

  function busy(button, key, on) {
    button.disabled = on;
    button.dataset.i18n = key;
    button.textContent = t(key);
  }

  formatBtn.addEventListener("click", () => {
    const definition = parsed();
    if (definition) textarea.value = JSON.stringify(definition, null, 2);
    dirty.hidden = textarea.value === savedText;
  });
  validateBtn.addEventListener("click", validate);
  saveBtn.addEventListener("click", () => {
    const definition = parsed();
    if (definition) save({ definition });
  });
  enabled.addEventListener("change", () => save({ enabled: enabled.checked }));
  textarea.addEventListener("input", () => {
    dirty.hidden = textarea.value === savedText;
  });
  textarea.addEventListener("keydown", (ev) => {
    // Tab indents instead of leaving the editor.
    if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault();
      textarea.setRangeText("  ", textarea.selectionStart, textarea.selectionEnd, "end");
      dirty.hidden = textarea.value === savedText;
    }
  });

  load();
  return {};
}

/** The server's preview message as a customer bubble item. */
function previewItem(m) {
  switch (m.type) {
    case "text":
      return { type: "text", text: m.body };
    case "buttons":
      return { type: "buttons", body: m.body, options: m.buttons || [] };
    case "list":
      return { type: "list", body: m.body, button: m.button, options: m.rows || [] };
    default: {
      const kind = has(`kind.${m.type}`) ? t(`kind.${m.type}`) : m.type;
      return { type: "media", kind: m.type, label: kind, caption: m.caption || m.filename || m.media };
    }
  }
}
