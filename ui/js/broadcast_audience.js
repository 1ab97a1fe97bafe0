// The audience step of a broadcast (broadcasts.js): a CSV upload (phone and variable columns) or
// the contacts chosen by their fields, sent to POST /api/broadcasts/{id}/audience; then the
// column-mapping step (which column is the phone, which fills each variable of the template; the
// server's suggestion preselected, re-applied without uploading again), the first messages as the
// customers will see them, and the rows that will not be sent (invalid phone or variables,
// duplicates, opted out) before anything starts.

import { describe, post, upload } from "./api.js";
import { formatPhone, h, replace, setRawText, setText } from "./dom.js";
import { t } from "./i18n.js";
import { templatePreview } from "./template_preview.js";
import { keyOf, sendVariables, stateFromDefinition } from "./template_model.js";

/**
 * `container`, `broadcast`, `template` (its stored template), `editable` (not started yet),
 * `onChanged(summary)`. Returns {destroy()}.
 */
export function audienceStep(container, { broadcast, template, editable, onChanged }) {
  const variables = template ? sendVariables(stateFromDefinition(template)) : [];
  const file = h("input", { id: "bc-csv", type: "file", accept: ".csv,text/csv,text/plain" });
  const status = h("div", { id: "bc-audience-status", class: "small", role: "status" });
  const mappingBox = h("div", { id: "bc-mapping", class: "bc-mapping" });
  const summaryBox = h("div", { id: "bc-summary", class: "bc-summary" });
  const previewBox = h("div", { id: "bc-preview", class: "bc-preview" });
  const rejectedBox = h("div", { id: "bc-rejected", class: "bc-rejected" });
  const filterName = h("input", { id: "bc-filter-name", type: "text", i18nPlaceholder: "bc.filterName" });
  const filterCode = h("input", { id: "bc-filter-code", type: "text", i18nPlaceholder: "bc.filterCode" });
  const filterField = h("input", { id: "bc-filter-field", type: "text", i18nPlaceholder: "bc.filterField" });
  const useContacts = h("button", { type: "button", id: "bc-use-contacts", class: "btn btn-ghost btn-small", i18n: "bc.useContacts" });
  let columns = [];
  let mapping = {};
  let stopped = false;

  replace(
    container,
    h(
      "section",
      { class: "bc-step" },
      h("h3", { i18n: "bc.audienceTitle" }),
      editable
        ? h(
            "div",
            { class: "bc-sources" },
            h("div", { class: "field" }, h("label", { for: "bc-csv", i18n: "bc.csv" }), file, h("div", { class: "muted small", i18n: "bc.csvHint" })),
            h(
              "details",
              { class: "bc-contacts" },
              h("summary", { i18n: "bc.fromContacts" }),
              h("div", { class: "sched-grid" }, filterName, filterCode, filterField),
              h("div", { class: "muted small", i18n: "bc.filterHint" }),
              useContacts,
            ),
          )
        : null,
      status,
      mappingBox,
      summaryBox,
      h("div", { class: "bc-review" }, previewBox, rejectedBox),
    ),
  );

  function show(result) {
    if (stopped || !result) return;
    columns = result.columns || columns;
    mapping = { ...(result.mapping_suggestion || {}), ...(result.mapping || {}) };
    renderMapping();
    renderSummary(result);
    renderPreview(result.preview || []);
    renderRejected(result);
    onChanged?.(result);
  }

  function renderMapping() {
    if (!columns.length || !editable) return replace(mappingBox);
    const targets = [{ key: "phone", label: t("bc.mapPhone") }, { key: "name", label: t("bc.mapName"), optional: true }, ...variables.map((v) => ({ key: keyOf(v), label: v.part === "button" ? t("tplc.buttonVar", { n: v.index + 1 }) : v.part === "header" ? t("tplc.headerVar", { name: v.name }) : `{{${v.name}}}` }))];
    const selects = targets.map((target) => {
      const sel = h(
        "select",
        { id: `bc-map-${target.key.replace(/[^a-z0-9]/gi, "-")}`, dataset: { testid: "bc-map", target: target.key } },
        h("option", { value: "", i18n: target.optional ? "bc.mapNone" : "bc.mapChoose" }),
        columns.map((c) => h("option", { value: c, text: c })),
      );
      sel.value = mapping[target.key] || "";
      sel.addEventListener("change", () => (mapping[target.key] = sel.value || undefined));
      return h("div", { class: "bc-map-row" }, h("label", { for: sel.id, text: target.label }), sel);
    });
    const apply = h("button", { type: "button", id: "bc-apply-mapping", class: "btn btn-secondary btn-small", i18n: "bc.applyMapping", on: { click: applyMapping } });
    replace(mappingBox, h("h4", { i18n: "bc.mappingTitle" }), h("p", { class: "muted small", i18n: "bc.mappingHint" }), h("div", { class: "bc-map-grid" }, selects), apply);
  }

  function renderSummary(r) {
    const n = (v) => (typeof v === "number" ? v : Array.isArray(v) ? v.length : v ?? 0);
    const item = (key, value, cls) => h("div", { class: `bc-count ${cls || ""}`, dataset: { testid: `bc-count-${key}` } }, h("strong", { text: String(value) }), h("span", { class: "small", i18n: `bc.count.${key}` }));
    replace(
      summaryBox,
      h(
        "div",
        { class: "bc-counts" },
        item("accepted", n(r.accepted ?? r.counts?.accepted), "ok"),
        item("invalid", n(r.invalid_count ?? r.counts?.invalid ?? r.invalid), r.invalid?.length ? "bad" : ""),
        item("duplicates", n(r.duplicates ?? r.counts?.duplicates)),
        item("opted_out", n(r.opted_out ?? r.counts?.opted_out)),
      ),
    );
  }

  function renderPreview(preview) {
    if (!preview.length) return replace(previewBox);
    replace(
      previewBox,
      h("h4", { i18n: "bc.previewTitle" }),
      h(
        "div",
        { class: "bc-preview-list" },
        preview.slice(0, 3).map((p) =>
          h(
            "div",
            { class: "bc-preview-item", dataset: { testid: "bc-preview-item" } },
            h("div", { class: "small muted", text: [formatPhone(p.wa_id || p.phone), p.name].filter(Boolean).join(" · ") }),
            templatePreview(p.rendered || p),
          ),
        ),
      ),
    );
  }

  function renderRejected(r) {
    // Invalid and repeated rows, and the numbers skipped because the customer opted out.
    const optedOut = (r.opted_out_rows || []).map((x) => ({ ...x, code: "opted_out", reason: t("bc.optedOutReason") }));
    const rows = [...(Array.isArray(r.invalid) ? r.invalid : r.rejections || []), ...(r.duplicate_rows || []), ...optedOut];
    if (!rows.length) return replace(rejectedBox);
    replace(
      rejectedBox,
      h("h4", { i18n: "bc.rejectedTitle", i18nArgs: { n: rows.length } }),
      h(
        "table",
        { class: "data-table", id: "bc-rejected-table" },
        h("thead", {}, h("tr", {}, ["bc.row", "bc.phone", "bc.reason"].map((k) => h("th", { i18n: k })))),
        h(
          "tbody",
          {},
          rows.slice(0, 200).map((x) => h("tr", { dataset: { testid: "bc-rejected-row", code: x.code || "" } }, h("td", { class: "num", text: String(x.row ?? x.row_number ?? "") }), h("td", { text: x.phone || "" }), h("td", { text: x.reason || x.code || "" }))),
        ),
      ),
      rows.length > 200 ? h("p", { class: "muted small", i18n: "bc.rejectedMore", i18nArgs: { n: rows.length - 200 } }) : null,
    );
  }

  async function send(promise) {
    setText(status, "bc.reading");
    try {
      const result = await promise;
      setText(status, null);
      show(result);
    } catch (e) {
      setRawText(status, describe(e));
    }
  }

  function uploadCsv() {
    const f = file.files[0];
    if (!f) return;
    const data = new FormData();
    data.append("file", f, f.name);
    send(upload(`/api/broadcasts/${broadcast.id}/audience`, data));
  }

  function applyMapping() {
    const clean = Object.fromEntries(Object.entries(mapping).filter(([, v]) => v));
    if (!clean.phone) return setText(status, "bc.phoneColumnMissing");
    send(post(`/api/broadcasts/${broadcast.id}/audience`, { mapping: clean }));
  }

  function fromContacts() {
    const filter = {};
    if (filterName.value.trim()) filter.name = filterName.value.trim();
    if (filterCode.value.trim()) filter.code = filterCode.value.trim();
    const fields = {};
    for (const pair of filterField.value.split(",")) {
      const [k, ...rest] = pair.split("=");
      if (k?.trim() && rest.length) fields[k.trim()] = rest.join("=").trim();
    }
    if (Object.keys(fields).length) filter.fields = fields;
    send(post(`/api/broadcasts/${broadcast.id}/audience`, { contacts_filter: filter }));
  }

  file.addEventListener("change", uploadCsv);
  useContacts.addEventListener("click", fromContacts);
  // A broadcast that already has an audience shows it again.
  if (broadcast.audience) show(broadcast.audience);
  else if (broadcast.audience_rows) renderSummary({ accepted: broadcast.accepted_rows, invalid_count: broadcast.invalid_rows, duplicates: broadcast.duplicate_rows, opted_out: broadcast.opted_out_rows });

  return {
    destroy() {
      stopped = true;
    },
  };
}
