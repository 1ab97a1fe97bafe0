// The template editor (Admin → Modelos): Meta's whole component model (header none / text with one
// variable / image / video / document with its example uploaded through POST /api/templates/media,
// body with positional {{1}} or named {{nome}} variables and the examples Meta requires, footer,
// buttons: quick reply, URL with a variable, phone number, copy code), category and language.
// As the admin types, the definition is checked by the server with Meta's rules
// (POST /api/templates/validate, debounced) and every problem is shown in pt-BR next to its field;
// the live preview beside the form is the WhatsApp bubble with the examples filled in. When Meta
// refuses a submission anyway, its error is shown verbatim with its code.

import { ApiError, describe, patch, post, upload } from "./api.js";
import { debounce, h, replace, setRawText, setText } from "./dom.js";
import { t } from "./i18n.js";
import { templatePreview } from "./template_preview.js";
import {
  BUTTON_TYPES,
  CATEGORIES,
  EDITABLE_STATUSES,
  HEADER_FORMATS,
  LANGUAGES,
  definitionFromState,
  emptyState,
  languageName,
  nextVariable,
  orderedVariables,
  render,
  stateFromDefinition,
  variablesOf,
} from "./template_model.js";
import { getLang } from "./i18n.js";

const VALIDATE_DELAY_MS = 400;
const MEDIA_ACCEPT = { IMAGE: "image/jpeg,image/png", VIDEO: "video/mp4", DOCUMENT: "application/pdf" };

/**
 * `container`, `channelId`, `template` (a stored one to edit, or null for a new one), `onDone(saved)`,
 * `onCancel()`. Returns {destroy()}.
 */
export function templateEditor(container, { channelId, template, onDone, onCancel }) {
  const editing = Boolean(template);
  const state = editing ? stateFromDefinition(template) : emptyState();
  const errors = {}; // field path -> element showing its problems
  const general = h("div", { id: "tpl-problems", class: "alert alert-error", role: "alert", hidden: true });
  const submitError = h("div", { id: "tpl-submit-error", class: "alert alert-error", role: "alert", hidden: true });
  const previewBox = h("div", { id: "tpl-preview", class: "tpl-preview-box" });
  const checkState = h("span", { id: "tpl-check-state", class: "small muted", dataset: { state: "idle" } });
  const submit = h("button", { type: "submit", id: "tpl-submit", class: "btn btn-primary", i18n: editing ? "tpl.saveEdit" : "tpl.submit" });
  let stopped = false;
  let lastProblems = [];
  let checkSeq = 0;

  // ---------- Fields ----------

  function errorFor(path) {
    const el = h("div", { class: "field-error small", dataset: { testid: "tpl-field-error", field: path }, role: "alert" });
    errors[path] = el;
    return el;
  }

  function field(path, labelKey, control, { hint, extra = [] } = {}) {
    return h(
      "div",
      { class: "field", dataset: { field: path } },
      labelKey ? h("label", { for: control.id, i18n: labelKey }) : null,
      control,
      hint ? h("div", { class: "muted small", i18n: hint }) : null,
      extra,
      errorFor(path),
    );
  }

  function input(id, value, onInput, attrs = {}) {
    const el = h("input", { id, type: "text", autocomplete: "off", ...attrs });
    el.value = value ?? "";
    el.addEventListener("input", () => {
      onInput(el.value);
      changed();
    });
    return el;
  }

  function select(id, options, value, onChange) {
    const el = h("select", { id }, options.map((o) => h("option", { value: o.value, ...(o.i18n ? { i18n: o.i18n } : { text: o.label }) })));
    el.value = value;
    el.addEventListener("change", () => {
      onChange(el.value);
      changed();
    });
    return el;
  }

  const nameInput = input("tpl-name", state.name, (v) => (state.name = v), { maxlength: 512, spellcheck: "false", readonly: editing, placeholder: "lembrete_pagamento" });
  const languageInput = input("tpl-language", state.language, (v) => (state.language = v.trim()), { list: "tpl-language-list", maxlength: 15, readonly: editing });
  const languageList = h("datalist", { id: "tpl-language-list" }, LANGUAGES.map((code) => h("option", { value: code, text: languageName(code, getLang()) })));
  const categorySelect = select("tpl-category", CATEGORIES.map((c) => ({ value: c, i18n: `tpl.category.${c}` })), state.category, (v) => (state.category = v));
  const formatSelect = select(
    "tpl-parameter-format",
    ["POSITIONAL", "NAMED"].map((f) => ({ value: f, i18n: `tpl.format.${f}` })),
    state.parameter_format,
    (v) => {
      state.parameter_format = v;
      renderExamples();
    },
  );
  formatSelect.disabled = editing;
  // Meta keeps an approved template's category (it re-categorizes by itself, with a webhook).
  categorySelect.disabled = editing && String(template.status || "").toUpperCase() === "APPROVED";

  // Header
  const headerFormat = select("tpl-header-format", HEADER_FORMATS.map((f) => ({ value: f, i18n: `tpl.header.${f}` })), state.header.format, (v) => {
    state.header.format = v;
    renderHeader();
  });
  const headerBox = h("div", { class: "tpl-subfields" });

  // Body
  const bodyInput = h("textarea", { id: "tpl-body", rows: 6, maxlength: 1024, i18nPlaceholder: "tpl.bodyPlaceholder" });
  bodyInput.value = state.body.text;
  const bodyCount = h("span", { class: "small muted tpl-count" });
  bodyInput.addEventListener("input", () => {
    state.body.text = bodyInput.value;
    renderExamples();
    changed();
  });
  const addBodyVar = h("button", { type: "button", id: "tpl-body-add-var", class: "btn btn-ghost btn-small", i18n: "tpl.addVariable", on: { click: () => insertVariable(bodyInput, "body") } });
  const bodyExamples = h("div", { id: "tpl-body-examples", class: "tpl-examples" });

  // Footer
  const footerInput = input("tpl-footer", state.footer.text, (v) => (state.footer.text = v), { maxlength: 60, i18nPlaceholder: "tpl.footerPlaceholder" });

  // Buttons
  const buttonsBox = h("div", { id: "tpl-buttons", class: "tpl-button-list" });
  const addButtons = h(
    "div",
    { class: "row-buttons" },
    BUTTON_TYPES.map((type) =>
      h("button", { type: "button", class: "btn btn-ghost btn-small", dataset: { testid: "tpl-add-button", type }, i18n: `tpl.addButton.${type}`, on: { click: () => addButton(type) } }),
    ),
  );

  function insertVariable(el, part) {
    const text = part === "body" ? state.body.text : state.header.text;
    const token = `{{${nextVariable(text, state.parameter_format)}}}`;
    const start = el.selectionStart ?? el.value.length;
    const end = el.selectionEnd ?? el.value.length;
    el.setRangeText(token, start, end, "end");
    el.focus();
    el.dispatchEvent(new Event("input"));
  }

  function renderHeader() {
    const f = state.header.format;
    if (f === "NONE") return replace(headerBox);
    if (f === "TEXT") {
      const text = input("tpl-header-text", state.header.text, (v) => {
        state.header.text = v;
        renderHeaderExamples(examples);
      }, { maxlength: 60, i18nPlaceholder: "tpl.headerPlaceholder" });
      const add = h("button", { type: "button", id: "tpl-header-add-var", class: "btn btn-ghost btn-small", i18n: "tpl.addVariable", on: { click: () => insertVariable(text, "header") } });
      const examples = h("div", { id: "tpl-header-examples", class: "tpl-examples" });
      replace(headerBox, field("components.header.text", "tpl.headerText", text, { hint: "tpl.headerHint", extra: [h("div", { class: "row-buttons" }, add)] }), examples, h("div", {}, errorFor("components.header.example")));
      renderHeaderExamples(examples);
      return;
    }
    const file = h("input", { id: "tpl-header-file", type: "file", accept: MEDIA_ACCEPT[f] });
    const status = h("div", { id: "tpl-header-upload", class: "small muted", role: "status" });
    if (state.header.handle) setText(status, "tpl.mediaReady", { name: state.header.fileName || "—" });
    file.addEventListener("change", () => uploadExample(file.files[0], status));
    replace(headerBox, field("components.header.example", `tpl.mediaExample.${f}`, file, { hint: "tpl.mediaHint", extra: [status] }));
  }

  async function uploadExample(fileObj, status) {
    if (!fileObj) return;
    setText(status, "tpl.uploading");
    const data = new FormData();
    if (channelId) data.append("channel_id", String(channelId));
    data.append("format", state.header.format);
    data.append("file", fileObj, fileObj.name);
    try {
      const result = await upload("/api/templates/media", data);
      state.header.handle = result?.handle || result?.header_handle || "";
      state.header.fileName = fileObj.name;
      if (state.header.previewUrl) URL.revokeObjectURL(state.header.previewUrl);
      state.header.previewUrl = fileObj.type.startsWith("image/") ? URL.createObjectURL(fileObj) : "";
      setText(status, "tpl.mediaReady", { name: fileObj.name });
    } catch (e) {
      setText(status, "tpl.uploadFailed", { message: describe(e) });
    }
    changed();
  }

  function exampleInputs(container, text, examples, part) {
    const vars = orderedVariables(text, state.parameter_format);
    replace(
      container,
      vars.length ? h("div", { class: "small muted", i18n: "tpl.examplesHint" }) : null,
      vars.map((v) => {
        const id = `tpl-${part}-example-${v}`;
        const el = h("input", { id, type: "text", autocomplete: "off", dataset: { testid: `tpl-${part}-example`, variable: v } });
        el.value = examples[v] ?? "";
        el.addEventListener("input", () => {
          examples[v] = el.value;
          changed();
        });
        return h("div", { class: "tpl-example" }, h("label", { for: id, class: "tpl-var-label", text: `{{${v}}}` }), el);
      }),
    );
  }

  function renderHeaderExamples(box) {
    if (box) exampleInputs(box, state.header.text, state.header.examples, "header");
  }

  function renderExamples() {
    exampleInputs(bodyExamples, state.body.text, state.body.examples, "body");
    if (state.header.format === "TEXT") renderHeaderExamples(document.getElementById("tpl-header-examples"));
  }

  function addButton(type) {
    state.buttons.push({ type, text: "", url: "", phone_number: "", example: "" });
    renderButtons();
    changed();
    buttonsBox.querySelector(".tpl-button-row:last-child input")?.focus();
  }

  function renderButtons() {
    replace(
      buttonsBox,
      state.buttons.map((b, i) => {
        const path = `components.buttons[${i}]`;
        const remove = h("button", { type: "button", class: "chip-remove", dataset: { testid: "tpl-remove-button" }, i18nTitle: "tpl.removeButton", text: "×", on: { click: () => (state.buttons.splice(i, 1), renderButtons(), changed()) } });
        const fields = [];
        if (b.type !== "COPY_CODE") fields.push(field(`${path}.text`, "tpl.buttonText", input(`tpl-button-${i}-text`, b.text, (v) => (b.text = v), { maxlength: 25 })));
        if (b.type === "URL") {
          const example = h("div", {});
          const url = input(`tpl-button-${i}-url`, b.url, (v) => {
            b.url = v;
            showUrlExample();
          }, { maxlength: 2000, placeholder: "https://exemplo.com.br/pedido/{{1}}" });
          const showUrlExample = () =>
            replace(example, variablesOf(b.url).length ? field(`${path}.example`, "tpl.urlExample", input(`tpl-button-${i}-example`, b.example, (v) => (b.example = v)), { hint: "tpl.urlExampleHint" }) : null);
          fields.push(field(`${path}.url`, "tpl.buttonUrl", url, { hint: "tpl.urlHint" }), example);
          showUrlExample();
        }
        if (b.type === "PHONE_NUMBER") fields.push(field(`${path}.phone_number`, "tpl.buttonPhone", input(`tpl-button-${i}-phone`, b.phone_number, (v) => (b.phone_number = v), { maxlength: 20, placeholder: "+5511999990000" })));
        if (b.type === "COPY_CODE") fields.push(field(`${path}.example`, "tpl.copyCodeExample", input(`tpl-button-${i}-example`, b.example, (v) => (b.example = v), { maxlength: 15 })));
        return h("div", { class: "tpl-button-row", dataset: { testid: "tpl-button-row", type: b.type } }, h("div", { class: "tpl-button-title" }, h("strong", { i18n: `tpl.buttonType.${b.type}` }), remove), fields, errorFor(path));
      }),
    );
  }

  // ---------- Checking and preview ----------

  function changed() {
    setRawText(bodyCount, `${state.body.text.length}/1024`);
    renderPreview();
    setCheck("pending");
    validateSoon();
  }

  function renderPreview() {
    const rendered = render(state);
    replace(previewBox, templatePreview(rendered, { empty: !state.body.text.trim() && state.header.format === "NONE" }));
  }

  const validateSoon = debounce(validate, VALIDATE_DELAY_MS);

  async function validate() {
    const seq = ++checkSeq;
    setCheck("checking");
    try {
      const result = await post("/api/templates/validate", { ...(channelId ? { channel_id: channelId } : {}), ...definitionFromState(state) });
      if (stopped || seq !== checkSeq) return;
      // Editing keeps the name and language: the template "taking" them is this one.
      showProblems((result?.problems || []).filter((p) => !(editing && p.code === "name_taken")));
    } catch (e) {
      if (stopped || seq !== checkSeq) return;
      // A 422 carries the problems as well.
      const problems = problemsOf(e);
      if (problems) showProblems(problems);
      else setCheck("error", describe(e));
    }
  }

  function showProblems(problems) {
    lastProblems = problems;
    for (const el of Object.values(errors)) replace(el);
    const unplaced = [];
    for (const p of problems) {
      const target = placeOf(p.field);
      const text = problemText(p);
      if (target) target.append(h("div", { dataset: { code: p.code || "" }, text }));
      else unplaced.push(h("li", { dataset: { code: p.code || "", field: p.field || "" }, text }));
    }
    general.hidden = !unplaced.length;
    replace(general, unplaced.length ? h("ul", {}, unplaced) : null);
    for (const [path, el] of Object.entries(errors)) el.closest(".field")?.classList.toggle("field-missing", Boolean(el.childNodes.length) && path !== "");
    setCheck(problems.length ? "problems" : "ok", problems.length);
  }

  /** The field box of a problem: its own, else the nearest enclosing one (buttons[1].url → buttons[1]). */
  function placeOf(path) {
    let p = normalize(path);
    while (p) {
      if (errors[p]?.isConnected) return errors[p];
      const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      if (cut <= 0) break;
      p = p.slice(0, cut);
    }
    return null;
  }

  function setCheck(s, detail) {
    checkState.dataset.state = s;
    if (s === "ok") setText(checkState, "tpl.checkOk");
    else if (s === "problems") setText(checkState, "tpl.checkProblems", { n: detail });
    else if (s === "checking" || s === "pending") setText(checkState, "tpl.checking");
    else if (s === "error") setText(checkState, "tpl.checkError", { message: detail || "" });
    else setText(checkState, null);
  }

  // ---------- Submission ----------

  async function onSubmit(ev) {
    ev.preventDefault();
    validateSoon.cancel();
    submitError.hidden = true;
    submit.disabled = true;
    try {
      const definition = definitionFromState(state);
      const result = editing
        ? await patch(`/api/templates/${template.id}`, { category: definition.category, components: definition.components })
        : await post("/api/templates", { ...(channelId ? { channel_id: channelId } : {}), ...definition });
      onDone?.(result?.template || result, result);
    } catch (e) {
      const problems = problemsOf(e);
      if (problems?.length) showProblems(problems);
      showSubmitError(e);
    } finally {
      submit.disabled = false;
    }
  }

  function showSubmitError(e) {
    submitError.hidden = false;
    const meta = metaError(e);
    if (meta) {
      replace(
        submitError,
        h("strong", { i18n: "tpl.metaRefused" }),
        h("div", { id: "tpl-meta-error", class: "tpl-meta-error", dataset: { code: String(meta.code ?? ""), subcode: String(meta.subcode ?? "") } }, h("span", { text: meta.message }), meta.code != null ? h("span", { class: "muted", i18n: "tpl.metaCode", i18nArgs: { code: meta.code, subcode: meta.subcode ?? "" } }) : null),
        meta.detail ? h("div", { class: "small", text: meta.detail }) : null,
        h("div", { class: "small muted", text: e.body?.error?.message || "" }),
      );
    } else {
      replace(submitError, h("span", { text: problemsOf(e)?.length ? t("tpl.fixProblems") : describe(e) }));
    }
  }

  // ---------- Layout ----------

  const allowedNote = editing ? editNote(template) : null;
  const form = h(
    "form",
    { id: "tpl-form", class: "tpl-form", novalidate: true, on: { submit: onSubmit } },
    h("div", { class: "tpl-form-head" }, h("h2", { i18n: editing ? "tpl.editTitle" : "tpl.newTitle", i18nArgs: { name: template?.name || "" } }), checkState),
    allowedNote,
    general,
    h(
      "fieldset",
      { class: "tpl-section" },
      h("legend", { i18n: "tpl.sectionBasics" }),
      field("name", "tpl.name", nameInput, { hint: "tpl.nameHint" }),
      h("div", { class: "tpl-grid" }, field("language", "tpl.language", languageInput, { extra: [languageList] }), field("category", "tpl.category", categorySelect), field("parameter_format", "tpl.parameterFormat", formatSelect)),
      h("div", { class: "muted small", i18n: `tpl.categoryHint` }),
    ),
    h("fieldset", { class: "tpl-section" }, h("legend", { i18n: "tpl.sectionHeader" }), field("components.header", "tpl.headerFormat", headerFormat), headerBox),
    h(
      "fieldset",
      { class: "tpl-section" },
      h("legend", { i18n: "tpl.sectionBody" }),
      field("components.body.text", null, bodyInput, { hint: "tpl.bodyHint", extra: [h("div", { class: "row-buttons tpl-body-tools" }, addBodyVar, bodyCount)] }),
      bodyExamples,
      h("div", { dataset: { field: "components.body.example" } }, errorFor("components.body.example")),
    ),
    h("fieldset", { class: "tpl-section" }, h("legend", { i18n: "tpl.sectionFooter" }), field("components.footer.text", null, footerInput, { hint: "tpl.footerHint" })),
    h("fieldset", { class: "tpl-section" }, h("legend", { i18n: "tpl.sectionButtons" }), h("div", { class: "muted small", i18n: "tpl.buttonsHint" }), buttonsBox, addButtons, h("div", {}, errorFor("components.buttons"))),
    submitError,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", id: "tpl-cancel", class: "btn btn-ghost", i18n: "dialog.cancel", on: { click: () => onCancel?.() } }), submit),
  );
  replace(
    container,
    h(
      "div",
      { class: "tpl-editor" },
      h("div", { class: "tpl-editor-form" }, form),
      h("aside", { class: "tpl-editor-side" }, h("h3", { i18n: "tpl.previewHeading" }), previewBox, h("p", { class: "muted small", i18n: "tpl.previewHint" })),
    ),
  );
  renderHeader();
  renderExamples();
  renderButtons();
  changed();
  // Without scrolling: the note on top says what saving does to the template's state.
  (editing ? bodyInput : nameInput).focus({ preventScroll: true });

  return {
    destroy() {
      stopped = true;
      validateSoon.cancel();
      if (state.header.previewUrl) URL.revokeObjectURL(state.header.previewUrl);
    },
    problems: () => lastProblems,
  };
}

/** What editing does to this template, by Meta's rules. */
function editNote(template) {
  const status = String(template.status || "").toUpperCase();
  // The server knows the edit limits too (once per 24 h, ten per 30 days).
  if (template.edit && template.edit.allowed === false && EDITABLE_STATUSES.has(status)) {
    return h("div", { id: "tpl-edit-note", class: "alert alert-warning", dataset: { editable: "false" }, text: template.edit.reason_pt || "" });
  }
  if (!EDITABLE_STATUSES.has(status)) {
    return h("div", { id: "tpl-edit-note", class: "alert alert-warning", dataset: { editable: "false" }, i18n: "tpl.notEditable", i18nArgs: { status: t(`tpl.status.${status}`) } });
  }
  return h("div", { id: "tpl-edit-note", class: "alert alert-warning", dataset: { editable: "true" } }, h("span", { i18n: "tpl.editGoesTo", i18nArgs: { status: t(`tpl.status.${status}`) } }), status === "APPROVED" ? h("div", { class: "small", i18n: "tpl.editLimits" }) : null);
}

/** Problem paths as the editor names its fields ("components[1].text" → by the component's type). */
function normalize(path) {
  return String(path || "")
    .replace(/^components\.(header|body|footer|buttons)/i, (m, part) => `components.${part.toLowerCase()}`)
    .replace(/\.example\..*$/, ".example");
}

/** The problems of a 422 answer ({error: {details: {problems}}}), or null. */
export function problemsOf(e) {
  if (!(e instanceof ApiError)) return null;
  const d = e.body?.error?.details || e.body?.details || e.body;
  return Array.isArray(d?.problems) ? d.problems : null;
}

/** Meta's own refusal as the server relays it: {code, subcode, message, detail}, or null. */
export function metaError(e) {
  if (!(e instanceof ApiError)) return null;
  const err = e.body?.error || {};
  const d = err.details || {};
  const meta = d.meta || d.meta_error || d.graph_error || (d.error && typeof d.error === "object" ? d.error : null);
  if (meta) {
    // Verbatim, as Meta wrote it: its technical message, then what it says to the user.
    const user = [meta.error_user_title, meta.error_user_msg].filter(Boolean).join(" — ");
    return {
      code: meta.code ?? d.code,
      subcode: meta.subcode ?? meta.error_subcode,
      message: meta.message || meta.network || err.message,
      detail: user || (typeof meta.details === "string" ? meta.details : meta.error_data?.details) || null,
    };
  }
  if (d.meta_code != null || d.graph_code != null) return { code: d.meta_code ?? d.graph_code, subcode: d.meta_subcode, message: d.meta_message || err.message, detail: null };
  return null;
}

export function problemText(p) {
  return getLang() === "en" && p.message_en ? p.message_en : p.message || p.message_pt || p.code || "";
}
