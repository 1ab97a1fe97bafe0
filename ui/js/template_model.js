// Message templates (HSM) on the page: Meta's component model as the editor holds it, the
// conversion to and from Meta's JSON (`components` of /message_templates), the variables a text
// uses, and the rendering of a template with values, as the customer's phone will show it. Pure
// functions, no DOM: the editor, the desk's template mode and the broadcasts share them. The
// server validates with Meta's rules (POST /api/templates/validate) and renders the sent message
// itself (`message.template.rendered`); this rendering only feeds the live previews.

export const CATEGORIES = ["UTILITY", "MARKETING", "AUTHENTICATION"];
export const HEADER_FORMATS = ["NONE", "TEXT", "IMAGE", "VIDEO", "DOCUMENT"];
export const BUTTON_TYPES = ["QUICK_REPLY", "URL", "PHONE_NUMBER", "COPY_CODE"];
/** Languages offered first (Meta's codes); any other code may be typed. */
export const LANGUAGES = ["pt_BR", "en_US", "es", "es_AR", "es_MX", "en", "pt_PT"];
/** Statuses as Meta names them; the first ones are those a contact center meets every day. */
export const STATUSES = ["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL", "FLAGGED", "LIMIT_EXCEEDED", "PENDING_DELETION", "DELETED", "REINSTATED", "ARCHIVED", "LOCKED"];
/** Meta lets these be edited (an approved one at most once a day and 10 times a month). */
export const EDITABLE_STATUSES = new Set(["APPROVED", "REJECTED", "PAUSED"]);

const VARIABLE = /\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g;

/** The variables of a text in order of first appearance: ["1", "2"] or ["first_name"]. */
export function variablesOf(text) {
  const seen = [];
  for (const m of String(text || "").matchAll(VARIABLE)) if (!seen.includes(m[1])) seen.push(m[1]);
  return seen;
}

/** Positional variables sorted by number ("1", "2", "10"), named ones as they appear. */
export function orderedVariables(text, format) {
  const vars = variablesOf(text);
  return format === "NAMED" ? vars : vars.sort((a, b) => Number(a) - Number(b));
}

/** The next variable to insert in a text: {{n+1}} or {{variavel_n}}. */
export function nextVariable(text, format) {
  const vars = variablesOf(text);
  if (format === "NAMED") {
    let i = vars.length + 1;
    while (vars.includes(`variavel_${i}`)) i += 1;
    return `variavel_${i}`;
  }
  const max = vars.reduce((m, v) => Math.max(m, Number(v) || 0), 0);
  return String(max + 1);
}

/** An empty editor state (pt_BR, utility, positional, a body only). */
export function emptyState() {
  return {
    name: "",
    language: "pt_BR",
    category: "UTILITY",
    parameter_format: "POSITIONAL",
    header: { format: "NONE", text: "", examples: {}, handle: "", fileName: "", previewUrl: "" },
    body: { text: "", examples: {} },
    footer: { text: "" },
    buttons: [],
  };
}

/** Editor state from a stored template (its Meta definition). */
export function stateFromDefinition(def) {
  const state = emptyState();
  state.name = def?.name || "";
  state.language = def?.language || "pt_BR";
  state.category = String(def?.category || "UTILITY").toUpperCase();
  state.parameter_format = String(def?.parameter_format || "POSITIONAL").toUpperCase();
  for (const c of componentsOf(def)) {
    const type = String(c.type || "").toUpperCase();
    if (type === "HEADER") {
      const format = String(c.format || "TEXT").toUpperCase();
      state.header.format = format;
      state.header.text = c.text || "";
      state.header.examples = examplesFrom(c.example, "header", state.header.text, state.parameter_format);
      state.header.handle = c.example?.header_handle?.[0] || "";
    } else if (type === "BODY") {
      state.body.text = c.text || "";
      state.body.examples = examplesFrom(c.example, "body", state.body.text, state.parameter_format);
    } else if (type === "FOOTER") {
      state.footer.text = c.text || "";
    } else if (type === "BUTTONS") {
      state.buttons = (c.buttons || []).map(buttonFromMeta);
    }
  }
  return state;
}

function componentsOf(def) {
  const components = def?.components;
  if (Array.isArray(components)) return components;
  if (typeof components === "string") {
    try {
      return JSON.parse(components) || [];
    } catch {
      return [];
    }
  }
  return [];
}

function examplesFrom(example, part, text, format) {
  const out = {};
  if (!example) return out;
  const named = example[`${part}_text_named_params`];
  if (Array.isArray(named)) {
    for (const p of named) out[p.param_name] = p.example ?? "";
    return out;
  }
  const raw = part === "body" ? example.body_text?.[0] : example.header_text;
  const vars = orderedVariables(text, format);
  (raw || []).forEach((value, i) => {
    if (vars[i] !== undefined) out[vars[i]] = value;
  });
  return out;
}

function buttonFromMeta(b) {
  const type = String(b.type || "").toUpperCase();
  const url = b.url || "";
  const example = Array.isArray(b.example) ? b.example[0] || "" : b.example || "";
  // Meta's example of a URL button is the whole address with the variable filled in; the editor
  // asks only for the part that replaces the variable.
  const prefix = url.split("{{")[0];
  return {
    type,
    text: b.text || "",
    url,
    phone_number: b.phone_number || "",
    example: type === "URL" && example.startsWith(prefix) ? example.slice(prefix.length) : example,
  };
}

/** The examples of a text, in the order of its variables (missing ones empty). */
function exampleList(text, examples, format) {
  return orderedVariables(text, format).map((v) => examples?.[v] ?? "");
}

/** Meta's create/edit body (`name`, `language`, `category`, `parameter_format`, `components`). */
export function definitionFromState(state) {
  const format = state.parameter_format;
  const components = [];
  const header = state.header;
  if (header.format === "TEXT") {
    const c = { type: "HEADER", format: "TEXT", text: header.text };
    const vars = orderedVariables(header.text, format);
    if (vars.length) {
      c.example =
        format === "NAMED"
          ? { header_text_named_params: vars.map((v) => ({ param_name: v, example: header.examples?.[v] ?? "" })) }
          : { header_text: exampleList(header.text, header.examples, format) };
    }
    components.push(c);
  } else if (["IMAGE", "VIDEO", "DOCUMENT"].includes(header.format)) {
    components.push({ type: "HEADER", format: header.format, example: { header_handle: header.handle ? [header.handle] : [] } });
  }
  const body = { type: "BODY", text: state.body.text };
  const bodyVars = orderedVariables(state.body.text, format);
  if (bodyVars.length) {
    body.example =
      format === "NAMED"
        ? { body_text_named_params: bodyVars.map((v) => ({ param_name: v, example: state.body.examples?.[v] ?? "" })) }
        : { body_text: [exampleList(state.body.text, state.body.examples, format)] };
  }
  components.push(body);
  if (state.footer.text) components.push({ type: "FOOTER", text: state.footer.text });
  if (state.buttons.length) components.push({ type: "BUTTONS", buttons: state.buttons.map(buttonToMeta) });
  return {
    name: state.name,
    language: state.language,
    category: state.category,
    parameter_format: format,
    components,
  };
}

function buttonToMeta(b) {
  switch (b.type) {
    case "URL": {
      const out = { type: "URL", text: b.text, url: b.url };
      if (variablesOf(b.url).length) out.example = [fillUrl(b.url, b.example)];
      return out;
    }
    case "PHONE_NUMBER":
      return { type: "PHONE_NUMBER", text: b.text, phone_number: b.phone_number };
    case "COPY_CODE":
      return { type: "COPY_CODE", example: b.example };
    default:
      return { type: "QUICK_REPLY", text: b.text };
  }
}

function fillUrl(url, value) {
  return String(url || "").replace(VARIABLE, () => value ?? "");
}

/** Replaces each {{var}} of `text` by values[var], else its example, else leaves {{var}}. */
export function fill(text, values = {}, examples = {}) {
  return String(text || "").replace(VARIABLE, (whole, name) => {
    const v = values?.[name];
    if (v !== undefined && v !== null && v !== "") return String(v);
    const e = examples?.[name];
    if (e !== undefined && e !== null && e !== "") return String(e);
    return whole;
  });
}

/**
 * The message as the customer sees it: {header, header_media, body, footer, buttons: [{type, text,
 * url?, phone_number?}]}. `values`: {header: {var: v}, body: {var: v}, buttons: {index: v}};
 * missing values show the template's examples (what Meta's reviewers see too).
 */
export function render(state, values = {}) {
  const header = state.header || {};
  const buttons = (state.buttons || []).map((b, i) => {
    const out = { type: b.type, text: b.type === "COPY_CODE" ? "" : b.text };
    if (b.type === "URL") out.url = fillUrl(b.url, values.buttons?.[i] ?? values.buttons?.[String(i)] ?? b.example);
    if (b.type === "PHONE_NUMBER") out.phone_number = b.phone_number;
    if (b.type === "COPY_CODE") out.code = values.buttons?.[i] ?? b.example;
    return out;
  });
  return {
    header: header.format === "TEXT" ? fill(header.text, values.header, header.examples) : null,
    header_media: ["IMAGE", "VIDEO", "DOCUMENT"].includes(header.format) ? header.format.toLowerCase() : null,
    header_url: values.header_media || header.previewUrl || null,
    body: fill(state.body?.text, values.body, state.body?.examples),
    footer: state.footer?.text || null,
    buttons,
  };
}

/**
 * What a send must supply, from the template's definition: [{part: "header"|"body"|"button",
 * name, index?, example}] in the order the fields are shown.
 */
export function sendVariables(state) {
  const out = [];
  const format = state.parameter_format;
  if (state.header.format === "TEXT") {
    for (const v of orderedVariables(state.header.text, format)) out.push({ part: "header", name: v, example: state.header.examples?.[v] || "" });
  }
  for (const v of orderedVariables(state.body.text, format)) out.push({ part: "body", name: v, example: state.body.examples?.[v] || "" });
  state.buttons.forEach((b, i) => {
    if (b.type === "URL" && variablesOf(b.url).length) out.push({ part: "button", name: variablesOf(b.url)[0], index: i, example: b.example || "" });
    if (b.type === "COPY_CODE") out.push({ part: "button", name: "code", index: i, example: b.example || "" });
  });
  return out;
}

/** The variables of a send as the API takes them: {header: {}, body: {}, buttons: {"0": v}}. */
export function valuesForApi(variables, chosen) {
  const values = { header: {}, body: {}, buttons: {} };
  for (const v of variables) {
    const value = chosen[keyOf(v)] ?? "";
    if (v.part === "button") values.buttons[String(v.index)] = value;
    else values[v.part][v.name] = value;
  }
  return values;
}

/** A stable key of one send variable (for forms and maps). */
export function keyOf(v) {
  return v.part === "button" ? `button.${v.index}` : `${v.part}.${v.name}`;
}

/** Render input from chosen values (same shape `render` takes). */
export function renderValues(variables, chosen, headerMedia) {
  const values = valuesForApi(variables, chosen);
  if (headerMedia) values.header_media = headerMedia;
  for (const part of ["header", "body"]) {
    for (const k of Object.keys(values[part])) if (values[part][k] === "") delete values[part][k];
  }
  return values;
}

/** Whether a header is a media one (image, video, document). */
export function mediaHeader(state) {
  return ["IMAGE", "VIDEO", "DOCUMENT"].includes(state?.header?.format) ? state.header.format.toLowerCase() : null;
}

/** "pt_BR" → "Português (Brasil)" when the browser knows it, else the code. */
export function languageName(code, lang) {
  try {
    const names = new Intl.DisplayNames([lang], { type: "language" });
    return names.of(String(code).replace("_", "-")) || code;
  } catch {
    return code;
  }
}
