// A list-and-form screen for the admin pages: a table of items, a "Novo" button, and a form panel
// built from field specs that creates (POST) or edits (PATCH) the chosen item.
//
// Field spec: {key, label (i18n key), type: text|email|password|number|textarea|select|checkbox|
// checkboxes|lines, options: [{value, label | i18n}] or () => that, required, createOnly,
// editOnly, nullable (empty sends null), hint (i18n key), placeholder (i18n key), min, max,
// secret (edit: blank means unchanged)}.

import { describe, del, get, patch, post } from "./api.js";
import { h, replace, setRawText, setText } from "./dom.js";
import { onLangChange, t } from "./i18n.js";
import { listOf } from "./actions.js";

/**
 * `screen`: {title, intro?, listUrl, listKey, createUrl?, itemUrl(item)?, columns: [{label,
 * value(item) -> node|string}], fields, canDelete?, rowActions(item, reload)?, toBody(values,
 * item)?, fromItem(item) -> values?, afterSave(saved, values, item)?, newLabel?, prepare()? (awaited
 * before the first load)}.
 */
export function crudScreen(container, screen) {
  const notice = h("div", { id: "admin-notice", class: "alert alert-ok", role: "status", hidden: true });
  const listStatus = h("div", { id: "admin-list-error", class: "form-error" });
  const table = h("table", { id: "admin-table", class: "data-table" });
  const panel = h("div", { id: "admin-panel", class: "admin-panel", hidden: true });
  const newButton = screen.createUrl
    ? h("button", { type: "button", id: "admin-new", class: "btn btn-secondary btn-small", i18n: screen.newLabel || "admin.new", on: { click: () => edit(null) } })
    : null;
  replace(
    container,
    h(
      "div",
      { class: "admin-screen" },
      h(
        "div",
        { class: "admin-list" },
        h("div", { class: "admin-list-head" }, h("h2", { i18n: screen.title }), newButton),
        screen.intro ? h("p", { class: "muted small", i18n: screen.intro }) : null,
        notice,
        listStatus,
        h("div", { class: "table-wrap" }, table),
      ),
      panel,
    ),
  );

  let items = [];
  let editing = undefined; // undefined: no panel; null: new; item: editing it
  let stopped = false;

  async function load() {
    try {
      const data = await get(screen.listUrl);
      if (stopped) return;
      items = listOf(data, screen.listKey);
      setRawText(listStatus, "");
      renderTable();
    } catch (e) {
      if (!stopped) setRawText(listStatus, describe(e));
    }
  }

  function renderTable() {
    replace(
      table,
      h("thead", {}, h("tr", {}, screen.columns.map((c) => h("th", { i18n: c.label })), h("th", { class: "actions-col" }))),
      h(
        "tbody",
        {},
        items.length
          ? items.map((item) =>
              h(
                "tr",
                { dataset: { testid: "admin-row", id: item.id ?? "" }, class: editing && editing.id === item.id ? "selected" : "" },
                screen.columns.map((c) => h("td", {}, c.value(item))),
                h("td", { class: "row-actions" }, rowButtons(item)),
              ),
            )
          : h("tr", {}, h("td", { colspan: String(screen.columns.length + 1), class: "muted", i18n: "admin.empty" })),
      ),
    );
  }

  function rowButtons(item) {
    const out = [];
    if (screen.itemUrl && screen.fields.some((f) => !f.createOnly)) {
      out.push(h("button", { type: "button", class: "btn btn-ghost btn-small", dataset: { testid: "admin-edit", id: item.id }, i18n: "admin.edit", on: { click: () => edit(item) } }));
    }
    if (screen.rowActions) out.push(...screen.rowActions(item, { reload: load, notify }));
    if (screen.canDelete && screen.itemUrl) {
      out.push(h("button", { type: "button", class: "btn btn-ghost btn-small danger", dataset: { testid: "admin-delete", id: item.id }, i18n: "admin.delete", on: { click: () => remove(item) } }));
    }
    return out;
  }

  async function remove(item) {
    if (!window.confirm(t("admin.confirmDelete"))) return;
    try {
      await del(screen.itemUrl(item));
      notify("admin.deleted");
      if (editing && editing.id === item.id) closePanel();
      load();
    } catch (e) {
      setRawText(listStatus, describe(e));
    }
  }

  function notify(key, args) {
    notice.hidden = !key;
    if (key) setText(notice, key, args);
  }

  function closePanel() {
    editing = undefined;
    panel.hidden = true;
    replace(panel);
    renderTable();
  }

  // ---------- The form ----------

  async function edit(item) {
    editing = item;
    notify(null);
    renderTable();
    const values = item ? { ...item, ...(screen.fromItem ? await screen.fromItem(item) : {}) } : {};
    const fields = screen.fields.filter((f) => (item ? !f.createOnly : !f.editOnly));
    const controls = {};
    const error = h("div", { id: "admin-error", class: "form-error", role: "alert" });
    const submit = h("button", { type: "submit", id: "admin-save", class: "btn btn-primary", i18n: item ? "admin.save" : "admin.create" });
    const form = h(
      "form",
      { id: "admin-form", class: "admin-form", novalidate: true },
      h("h3", { i18n: item ? "admin.editTitle" : "admin.newTitle" }),
      await Promise.all(fields.map(async (f) => fieldRow(f, values, controls, Boolean(item)))),
      error,
      h("div", { class: "dialog-actions" }, h("button", { type: "button", id: "admin-cancel", class: "btn btn-ghost", i18n: "dialog.cancel", on: { click: closePanel } }), submit),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      setText(error, null);
      const collected = collect(fields, controls, Boolean(item));
      if (collected.missing) {
        setText(error, "admin.required", { field: t(collected.missing.label) });
        controls[collected.missing.key]?.focus?.();
        return;
      }
      const body = screen.toBody ? screen.toBody(collected.values, item) : collected.values;
      submit.disabled = true;
      try {
        const result = item ? await patch(screen.itemUrl(item), body) : await post(screen.createUrl, body);
        const saved = (result && typeof result === "object" && Object.values(result).find((v) => v && typeof v === "object" && !Array.isArray(v) && "id" in v)) || result || item;
        await screen.afterSave?.(saved, collected.values, item, result);
        closePanel();
        notify(item ? "admin.saved" : "admin.created");
        load();
      } catch (e) {
        setRawText(error, describe(e));
        submit.disabled = false;
      }
    });
    panel.hidden = false;
    replace(panel, form);
    form.querySelector("input:not([type=checkbox]), select, textarea")?.focus();
  }

  async function fieldRow(f, values, controls, isEdit) {
    const id = `admin-field-${f.key}`;
    const value = values[f.key];
    const options = typeof f.options === "function" ? await f.options() : f.options || [];
    const optionNode = (o) => h("option", { value: String(o.value), ...(o.i18n ? { i18n: o.i18n } : { text: o.label }) });
    let control;
    switch (f.type) {
      case "textarea":
      case "lines":
        control = h("textarea", { id, rows: f.rows || 3, maxlength: f.max || null });
        control.value = f.type === "lines" ? (value || []).join("\n") : value ?? "";
        break;
      case "select":
        control = h("select", { id }, f.nullable ? h("option", { value: "", i18n: f.nullLabel || "admin.none" }) : null, options.map(optionNode));
        control.value = value == null ? "" : String(value);
        break;
      case "checkbox":
        control = h("input", { id, type: "checkbox" });
        control.checked = value == null ? Boolean(f.default) : Boolean(value);
        controls[f.key] = control;
        return h("label", { class: "inline checkbox field" }, control, h("span", { i18n: f.label }));
      case "checkboxes": {
        const chosen = new Set((value || []).map(String));
        const boxes = options.map((o) => {
          const box = h("input", { type: "checkbox", value: String(o.value), dataset: { testid: `${id}-option` } });
          box.checked = chosen.has(String(o.value));
          return h("label", { class: "inline checkbox" }, box, h("span", { text: o.label }));
        });
        control = h("div", { id, class: "checkbox-list" }, boxes.length ? boxes : h("span", { class: "muted small", i18n: "admin.noOptions" }));
        break;
      }
      default:
        control = h("input", {
          id,
          type: f.type === "password" ? "password" : f.type === "number" ? "number" : f.type === "email" ? "email" : "text",
          min: f.min ?? null,
          max: f.type === "number" ? f.max ?? null : null,
          maxlength: f.type !== "number" ? f.max ?? null : null,
          autocomplete: f.type === "password" ? "new-password" : "off",
        });
        control.value = f.secret ? "" : value ?? "";
        if (f.secret && isEdit) control.placeholder = t("admin.secretUnchanged");
    }
    if (f.placeholder) control.placeholder = t(f.placeholder);
    controls[f.key] = control;
    return h(
      "div",
      { class: `field${f.required ? " required" : ""}` },
      h("label", { for: id }, h("span", { i18n: f.label }), f.required ? h("span", { class: "required-mark", text: " *" }) : null),
      control,
      f.hint ? h("div", { class: "muted small", i18n: f.hint }) : null,
    );
  }

  function collect(fields, controls, isEdit) {
    const values = {};
    for (const f of fields) {
      const c = controls[f.key];
      let v;
      switch (f.type) {
        case "checkbox":
          v = c.checked;
          break;
        case "checkboxes":
          v = [...c.querySelectorAll("input[type=checkbox]:checked")].map((b) => (Number.isNaN(Number(b.value)) ? b.value : Number(b.value)));
          break;
        case "lines":
          v = c.value.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
          break;
        case "number":
          v = c.value === "" ? null : Number(c.value);
          break;
        case "select":
          v = c.value === "" ? null : /^\d+$/.test(c.value) && f.numeric !== false ? Number(c.value) : c.value;
          break;
        default:
          v = c.value.trim() === "" ? null : c.value;
      }
      const empty = v === null || (Array.isArray(v) && !v.length);
      if (f.required && empty && !(f.secret && isEdit)) return { missing: f };
      if (empty) {
        if (f.secret && isEdit) continue; // unchanged
        if (f.nullable || Array.isArray(v)) values[f.key] = v; // cleared
        else if (isEdit && ["text", "email", "textarea", undefined].includes(f.type)) values[f.key] = "";
        continue; // on create, the server's default
      }
      values[f.key] = v;
    }
    return { values };
  }

  const offLang = onLangChange(renderTable);
  Promise.resolve(screen.prepare?.()).finally(load);
  return {
    reload: load,
    destroy() {
      stopped = true;
      offLang();
    },
  };
}
