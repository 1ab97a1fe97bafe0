// Admin → Modelos (HSM): the templates of a channel's WhatsApp Business Account as Meta knows them
// (status, with the reason and recommendation of a rejection; quality; category), a "Sincronizar"
// button that imports them from Meta, the editor (template_editor.js), deletion of one language or
// of the whole name (a deleted name cannot be reused for 30 days), and what Atende does with each
// quick-reply button ("button_actions": route the reply to a person, or answer with a text).

import { del, describe, get, post, put } from "./api.js";
import { debounce, formatDateTime, h, replace, setRawText, setText } from "./dom.js";
import { getLang, has, onLangChange, t } from "./i18n.js";
import { listOf } from "./actions.js";
import { openDialog } from "./dialog.js";
import { templateEditor } from "./template_editor.js";
import { EDITABLE_STATUSES, STATUSES, languageName, stateFromDefinition } from "./template_model.js";

/** The channels the caller may see, as options (the first one is chosen by default). */
export async function channelOptions() {
  try {
    return listOf(await get("/api/channels"), "channels").map((c) => ({ value: c.id, label: c.name || c.display_phone_number || `#${c.id}`, channel: c }));
  } catch {
    return [];
  }
}

/** A status badge: APPROVED green, PENDING yellow, REJECTED/DISABLED red, PAUSED orange. */
export function statusBadge(status) {
  const s = String(status || "").toUpperCase();
  const key = `tpl.status.${s}`;
  return h("span", { class: `badge tpl-status tpl-status-${s.toLowerCase()}`, dataset: { testid: "tpl-status", status: s }, ...(has(key) ? { i18n: key } : { text: s }) });
}

function qualityBadge(quality) {
  const q = String((quality && typeof quality === "object" ? quality.score : quality) || "UNKNOWN").toUpperCase();
  const key = `tpl.quality.${q}`;
  return h("span", { class: `tpl-quality tpl-quality-${q.toLowerCase()}`, dataset: { quality: q } }, h("span", { class: "tpl-quality-dot" }), h("span", has(key) ? { i18n: key } : { text: q }));
}

export function templatesScreen(container) {
  const channelSelect = h("select", { id: "tpl-channel", class: "inline-select", i18nAriaLabel: "tpl.channel" });
  const statusSelect = h(
    "select",
    { id: "tpl-status-filter", class: "inline-select", i18nAriaLabel: "tpl.statusFilter" },
    h("option", { value: "", i18n: "tpl.allStatuses" }),
    STATUSES.slice(0, 6).map((s) => h("option", { value: s, i18n: `tpl.status.${s}` })),
  );
  const search = h("input", { id: "tpl-search", type: "search", class: "inline-input", i18nPlaceholder: "tpl.search", autocomplete: "off" });
  const syncButton = h("button", { type: "button", id: "tpl-sync", class: "btn btn-ghost btn-small", i18n: "tpl.sync" });
  const newButton = h("button", { type: "button", id: "tpl-new", class: "btn btn-secondary btn-small", i18n: "tpl.new" });
  const notice = h("div", { id: "tpl-notice", class: "alert alert-ok", role: "status", hidden: true });
  const listError = h("div", { id: "tpl-list-error", class: "form-error" });
  const table = h("table", { id: "tpl-table", class: "data-table" });
  const listView = h(
    "div",
    { class: "admin-screen" },
    h(
      "div",
      { class: "admin-list" },
      h("div", { class: "admin-list-head" }, h("h2", { i18n: "tpl.title" }), h("div", { class: "row-buttons" }, syncButton, newButton)),
      h("p", { class: "muted small", i18n: "tpl.intro" }),
      h("div", { class: "tpl-filters" }, channelSelect, statusSelect, search),
      notice,
      listError,
      h("div", { class: "table-wrap" }, table),
    ),
  );
  const editorView = h("div", { class: "tpl-editor-wrap", hidden: true });
  replace(container, h("div", { class: "tpl-screen" }, listView, editorView));

  let templates = [];
  let editor = null;
  let stopped = false;

  const channelId = () => (channelSelect.value ? Number(channelSelect.value) : null);

  async function loadChannels() {
    const options = await channelOptions();
    replace(channelSelect, options.length ? options.map((o) => h("option", { value: String(o.value), text: o.label })) : h("option", { value: "", i18n: "tpl.noChannel" }));
  }

  async function load() {
    const params = new URLSearchParams();
    if (channelId()) params.set("channel_id", String(channelId()));
    if (statusSelect.value) params.set("status", statusSelect.value);
    if (search.value.trim()) params.set("q", search.value.trim());
    try {
      const data = await get(`/api/templates?${params}`);
      if (stopped) return;
      templates = listOf(data, "templates");
      setRawText(listError, "");
      renderTable();
    } catch (e) {
      if (!stopped) setRawText(listError, describe(e));
    }
  }

  function notify(key, args) {
    notice.hidden = !key;
    if (key) setText(notice, key, args);
  }

  function renderTable() {
    replace(
      table,
      h("thead", {}, h("tr", {}, ["tpl.name", "tpl.language", "tpl.category", "tpl.statusCol", "tpl.quality", "tpl.updated"].map((k) => h("th", { i18n: k })), h("th", { class: "actions-col" }))),
      h(
        "tbody",
        {},
        templates.length
          ? templates.map(row)
          : h("tr", {}, h("td", { colspan: "7", class: "muted", i18n: channelId() ? "tpl.empty" : "tpl.noChannel" })),
      ),
    );
  }

  function row(tpl) {
    const status = String(tpl.status || "").toUpperCase();
    const rejected = status === "REJECTED" && (tpl.rejected_reason || tpl.rejection_recommendation);
    return h(
      "tr",
      { dataset: { testid: "tpl-row", id: tpl.id, name: tpl.name, language: tpl.language, status } },
      h("td", {}, h("code", { text: tpl.name })),
      h("td", { title: languageName(tpl.language, getLang()), text: tpl.language }),
      h("td", {}, h("span", has(`tpl.category.${tpl.category}`) ? { i18n: `tpl.category.${tpl.category}` } : { text: tpl.category || "—" })),
      h(
        "td",
        {},
        statusBadge(status),
        rejected
          ? h(
              "div",
              { class: "tpl-rejection small", dataset: { testid: "tpl-rejection" } },
              tpl.rejected_reason ? h("div", {}, h("strong", { i18n: "tpl.reason" }), " ", h("span", has(`tpl.reasonCode.${tpl.rejected_reason}`) ? { i18n: `tpl.reasonCode.${tpl.rejected_reason}` } : { text: tpl.rejected_reason })) : null,
              tpl.rejection_recommendation ? h("div", {}, h("strong", { i18n: "tpl.recommendation" }), " ", h("span", { text: tpl.rejection_recommendation })) : null,
            )
          : null,
      ),
      h("td", {}, qualityBadge(tpl.quality)),
      h("td", { class: "small muted", text: tpl.updated_at ? formatDateTime(tpl.updated_at) : "—" }),
      h("td", {}, h("div", { class: "row-actions" }, rowActions(tpl, status))),
    );
  }

  function rowActions(tpl, status) {
    const out = [
      h("button", {
        type: "button",
        class: "btn btn-ghost btn-small",
        dataset: { testid: "tpl-edit", id: tpl.id },
        i18n: EDITABLE_STATUSES.has(status) ? "admin.edit" : "tpl.view",
        on: { click: () => openEditor(tpl) },
      }),
    ];
    const quickReplies = quickReplyTexts(tpl);
    if (quickReplies.length) {
      out.push(h("button", { type: "button", class: "btn btn-ghost btn-small", dataset: { testid: "tpl-actions", id: tpl.id }, i18n: "tpl.buttonActions", on: { click: () => openButtonActions(tpl, quickReplies, notify, load) } }));
    }
    out.push(h("button", { type: "button", class: "btn btn-ghost btn-small danger", dataset: { testid: "tpl-delete", id: tpl.id }, i18n: "admin.delete", on: { click: () => openDelete(tpl, notify, load) } }));
    return out;
  }

  async function openEditor(tpl) {
    notify(null);
    if (tpl) {
      // With whether Meta's limits allow an edit now.
      try {
        const data = await get(`/api/templates/${tpl.id}`);
        tpl = data?.template || tpl;
      } catch {
        // The list's copy will do.
      }
    }
    listView.hidden = true;
    editorView.hidden = false;
    editor?.destroy();
    editor = templateEditor(editorView, {
      channelId: channelId(),
      template: tpl,
      onCancel: closeEditor,
      onDone: (saved, result) => {
        closeEditor();
        notify(tpl ? "tpl.saved" : "tpl.created", { status: t(`tpl.status.${String(saved?.status || "PENDING").toUpperCase()}`) });
        if (result?.message_pt && getLang() === "pt-BR") setRawText(notice, result.message_pt);
        load();
      },
    });
  }

  function closeEditor() {
    editor?.destroy();
    editor = null;
    replace(editorView);
    editorView.hidden = true;
    listView.hidden = false;
  }

  async function sync() {
    syncButton.disabled = true;
    notify(null);
    setText(listError, null);
    try {
      const qs = channelId() ? `?channel_id=${channelId()}` : "";
      const result = await post(`/api/templates/sync${qs}`, {});
      const n = (result?.reports || []).reduce((sum, r) => sum + (r.seen ?? 0), 0);
      notify("tpl.synced", { n });
      await load();
    } catch (e) {
      setRawText(listError, describe(e));
    } finally {
      syncButton.disabled = false;
    }
  }

  const searchSoon = debounce(load, 300);
  syncButton.addEventListener("click", sync);
  newButton.addEventListener("click", () => openEditor(null));
  channelSelect.addEventListener("change", load);
  statusSelect.addEventListener("change", load);
  search.addEventListener("input", searchSoon);
  const offLang = onLangChange(() => templates.length && renderTable());
  loadChannels().then(load);

  return {
    destroy() {
      stopped = true;
      searchSoon.cancel();
      editor?.destroy();
      offLang();
    },
  };
}

/** The texts of a template's quick-reply buttons (the keys of its button_actions). */
function quickReplyTexts(tpl) {
  return stateFromDefinition(tpl)
    .buttons.filter((b) => b.type === "QUICK_REPLY" && b.text)
    .map((b) => b.text);
}

function openDelete(tpl, notify, reload) {
  const one = h("input", { type: "radio", name: "tpl-delete-scope", id: "tpl-delete-language", value: "language", checked: true });
  const all = h("input", { type: "radio", name: "tpl-delete-scope", id: "tpl-delete-name", value: "name" });
  const error = h("div", { id: "tpl-delete-error", class: "form-error", role: "alert" });
  const confirm = h("button", { type: "submit", id: "tpl-delete-confirm", class: "btn btn-primary danger-bg", i18n: "admin.delete" });
  let dialog = null;
  dialog = openDialog({
    id: "tpl-delete-dialog",
    title: "tpl.deleteTitle",
    titleArgs: { name: tpl.name },
    body: [
      h("label", { class: "inline checkbox" }, one, h("span", { i18n: "tpl.deleteLanguage", i18nArgs: { language: tpl.language } })),
      h("label", { class: "inline checkbox" }, all, h("span", { i18n: "tpl.deleteName", i18nArgs: { name: tpl.name } })),
      h("div", { class: "alert alert-warning small", id: "tpl-delete-warning", i18n: "tpl.deleteWarning", i18nArgs: { name: tpl.name } }),
      error,
    ],
    actions: [h("button", { type: "button", class: "btn btn-ghost", i18n: "dialog.cancel", on: { click: () => dialog.close() } }), confirm],
    onSubmit: async () => {
      confirm.disabled = true;
      const scope = all.checked ? "name" : "language";
      try {
        await del(`/api/templates/${tpl.id}?scope=${scope}`);
        dialog.close();
        notify(scope === "name" ? "tpl.deletedName" : "tpl.deletedLanguage", { name: tpl.name, language: tpl.language });
        reload();
      } catch (e) {
        setRawText(error, describe(e));
        confirm.disabled = false;
      }
    },
  });
}

function openButtonActions(tpl, texts, notify, reload) {
  let current = {};
  try {
    current = typeof tpl.button_actions === "string" ? JSON.parse(tpl.button_actions) || {} : tpl.button_actions || {};
  } catch {
    current = {};
  }
  const rows = texts.map((text, i) => {
    const entry = current[text] || { action: "route" };
    const action = h("select", { id: `tpl-action-${i}`, dataset: { testid: "tpl-action", button: text } }, h("option", { value: "route", i18n: "tpl.action.route" }), h("option", { value: "reply", i18n: "tpl.action.reply" }));
    action.value = entry.action === "reply" ? "reply" : "route";
    const reply = h("textarea", { id: `tpl-action-${i}-text`, rows: 2, maxlength: 4096, i18nPlaceholder: "tpl.action.replyPlaceholder" });
    reply.value = entry.text || "";
    reply.hidden = action.value !== "reply";
    action.addEventListener("change", () => (reply.hidden = action.value !== "reply"));
    return { text, action, reply, el: h("div", { class: "field tpl-action-row" }, h("label", { for: action.id }, h("span", { class: "option-chip", text: `↩ ${text}` })), action, reply) };
  });
  const error = h("div", { id: "tpl-actions-error", class: "form-error", role: "alert" });
  const save = h("button", { type: "submit", id: "tpl-actions-save", class: "btn btn-primary", i18n: "admin.save" });
  let dialog = null;
  dialog = openDialog({
    id: "tpl-actions-dialog",
    title: "tpl.buttonActionsTitle",
    titleArgs: { name: tpl.name },
    body: [h("p", { class: "muted small", i18n: "tpl.buttonActionsIntro" }), rows.map((r) => r.el), error],
    actions: [h("button", { type: "button", class: "btn btn-ghost", i18n: "dialog.cancel", on: { click: () => dialog.close() } }), save],
    onSubmit: async () => {
      const body = {};
      for (const r of rows) {
        if (r.action.value === "reply") {
          if (!r.reply.value.trim()) {
            setText(error, "tpl.action.replyMissing", { button: r.text });
            r.reply.focus();
            return;
          }
          body[r.text] = { action: "reply", text: r.reply.value.trim() };
        } else body[r.text] = { action: "route" };
      }
      save.disabled = true;
      try {
        await put(`/api/templates/${tpl.id}/button_actions`, { button_actions: body });
        dialog.close();
        notify("tpl.actionsSaved");
        reload();
      } catch (e) {
        setRawText(error, describe(e));
        save.disabled = false;
      }
    },
  });
}
