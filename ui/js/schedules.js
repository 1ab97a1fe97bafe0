// "Agendar" in a conversation: the contact's scheduled messages (GET /api/schedules?conversation_id=)
// with their state (pending, sent, failed with its reason, cancelled), a change of date and time or
// a cancellation of a pending one, and a new schedule: an approved template with its variables
// (the desk's template mode, submitting to POST /api/schedules instead of sending), or a free text,
// which the server sends only if the 24 h window is still open then.

import { describe, del, get, patch, post } from "./api.js";
import { formatDateTime, h, replace, setRawText, setText } from "./dom.js";
import { has, t } from "./i18n.js";
import { listOf } from "./actions.js";
import { openDialog } from "./dialog.js";
import { createTemplateComposer } from "./template_composer.js";

/** A "Agendar" button for the header of conversation `c`. */
export function scheduleButton(c, user) {
  return h("button", { type: "button", id: "schedule-button", class: "btn btn-ghost", i18n: "sched.button", on: { click: () => openSchedules(c, user) } });
}

/** `<input type=datetime-local>` value for a time in ms (local time). */
function localValue(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocal(value) {
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? ms : null;
}

export function openSchedules(c, user) {
  const list = h("div", { id: "sched-list", class: "sched-list" }, h("p", { class: "muted small", i18n: "sched.loading" }));
  const listError = h("div", { id: "sched-list-error", class: "form-error", role: "alert" });
  const newBox = h("div", { id: "sched-new", class: "sched-new" });
  const newButton = h("button", { type: "button", id: "sched-new-button", class: "btn btn-secondary btn-small", i18n: "sched.new" });
  let composer = null;
  let dialog = null;
  dialog = openDialog({
    id: "sched-dialog",
    title: "sched.title",
    titleArgs: { protocol: c.protocol || "" },
    wide: true,
    body: [h("div", { class: "admin-list-head" }, h("h3", { i18n: "sched.listTitle" }), newButton), listError, list, newBox],
    actions: [h("button", { type: "button", class: "btn btn-ghost", i18n: "dialog.close", on: { click: () => dialog.close() } })],
    onClose: () => composer?.destroy(),
  });

  async function load() {
    try {
      const data = await get(`/api/schedules?conversation_id=${c.id}`);
      renderList(listOf(data, "schedules"));
      setText(listError, null);
    } catch (e) {
      setRawText(listError, describe(e));
    }
  }

  function renderList(items) {
    if (!items.length) return replace(list, h("p", { class: "muted small", i18n: "sched.empty" }));
    replace(
      list,
      h(
        "table",
        { class: "data-table" },
        h("thead", {}, h("tr", {}, ["sched.when", "sched.what", "sched.state", "sched.by"].map((k) => h("th", { i18n: k })), h("th", {}))),
        h("tbody", {}, items.map(row)),
      ),
    );
  }

  function row(s) {
    const what = s.kind === "template" ? h("span", {}, h("span", { class: "badge", text: "HSM" }), " ", s.template?.name || s.template_name || `#${s.template_id}`) : h("span", { class: "clip", text: s.body || "" });
    const stateKey = `sched.stateName.${s.state}`;
    const actions = [];
    if (s.state === "pending") {
      actions.push(
        h("button", { type: "button", class: "btn btn-ghost btn-small", dataset: { testid: "sched-reschedule", id: s.id }, i18n: "sched.reschedule", on: { click: () => reschedule(s) } }),
        h("button", { type: "button", class: "btn btn-ghost btn-small danger", dataset: { testid: "sched-cancel", id: s.id }, i18n: "sched.cancel", on: { click: () => cancel(s) } }),
      );
    }
    return h(
      "tr",
      { dataset: { testid: "sched-row", id: s.id, state: s.state } },
      h("td", { class: "num", text: formatDateTime(s.due_at) }),
      h("td", {}, what),
      h("td", {}, h("span", { class: `badge sched-${s.state}`, ...(has(stateKey) ? { i18n: stateKey } : { text: s.state }) }), s.state === "failed" && (s.error || s.error_code) ? h("div", { class: "small form-error", text: s.error || `#${s.error_code}` }) : null),
      h("td", { class: "small muted", text: s.created_by_name || (s.created_via && has(`sched.via.${s.created_via}`) ? t(`sched.via.${s.created_via}`) : s.created_via || "") }),
      h("td", { class: "row-actions" }, actions),
    );
  }

  async function reschedule(s) {
    const value = window.prompt(t("sched.newTime"), localValue(s.due_at));
    if (!value) return;
    const due = fromLocal(value);
    if (!due) return setText(listError, "sched.badTime");
    try {
      await patch(`/api/schedules/${s.id}`, { due_at: due });
      load();
    } catch (e) {
      setRawText(listError, describe(e));
    }
  }

  async function cancel(s) {
    if (!window.confirm(t("sched.cancelConfirm", { when: formatDateTime(s.due_at) }))) return;
    try {
      await del(`/api/schedules/${s.id}`);
      load();
    } catch (e) {
      setRawText(listError, describe(e));
    }
  }

  function showNew() {
    newButton.hidden = true;
    const when = h("input", { id: "sched-when", type: "datetime-local", required: true });
    when.value = localValue(Date.now() + 60 * 60 * 1000);
    const kindTemplate = h("input", { type: "radio", name: "sched-kind", id: "sched-kind-template", value: "template", checked: true });
    const kindText = h("input", { type: "radio", name: "sched-kind", id: "sched-kind-text", value: "text" });
    const content = h("div", { class: "sched-content" });
    const error = h("div", { id: "sched-error", class: "form-error", role: "alert" });
    const note = h("input", { id: "sched-note", type: "text", maxlength: 200, i18nPlaceholder: "sched.notePlaceholder" });

    const due = () => fromLocal(when.value);
    const common = () => ({ conversation_id: c.id, due_at: due(), note: note.value.trim() || null });
    const saved = () => {
      composer?.destroy();
      composer = null;
      replace(newBox);
      newButton.hidden = false;
      load();
    };
    const checkedDue = () => {
      const d = due();
      if (!d || d <= Date.now()) {
        setText(error, "sched.pastTime");
        when.focus();
        return null;
      }
      return d;
    };

    function showKind() {
      composer?.destroy();
      composer = null;
      setText(error, null);
      if (kindTemplate.checked) {
        composer = createTemplateComposer({
          conversationId: c.id,
          conversation: c,
          user,
          prefix: "sched-tpl",
          sendLabel: "sched.save",
          submitter: async (body) => {
            if (!checkedDue()) throw new Error(t("sched.pastTime"));
            return post("/api/schedules", { ...common(), ...body, type: "template" });
          },
          onSent: saved,
        });
        replace(content, composer.el);
        return;
      }
      const text = h("textarea", { id: "sched-text", rows: 3, maxlength: 4096, i18nPlaceholder: "sched.textPlaceholder" });
      const save = h("button", { type: "button", id: "sched-save-text", class: "btn btn-primary", i18n: "sched.save" });
      save.addEventListener("click", async () => {
        if (!checkedDue()) return;
        if (!text.value.trim()) return setText(error, "sched.textMissing");
        save.disabled = true;
        try {
          await post("/api/schedules", { ...common(), type: "text", body: text.value.trim() });
          saved();
        } catch (e) {
          setRawText(error, describe(e));
          save.disabled = false;
        }
      });
      replace(content, h("p", { class: "muted small", i18n: "sched.textHint" }), text, h("div", { class: "dialog-actions" }, save));
    }
    kindTemplate.addEventListener("change", showKind);
    kindText.addEventListener("change", showKind);
    replace(
      newBox,
      h("h3", { i18n: "sched.newTitle" }),
      h(
        "div",
        { class: "sched-grid" },
        h("div", { class: "field" }, h("label", { for: "sched-when", i18n: "sched.when" }), when),
        h("div", { class: "field" }, h("label", { for: "sched-note", i18n: "sched.note" }), note),
        h("div", { class: "field sched-kinds" }, h("label", { class: "inline checkbox" }, kindTemplate, h("span", { i18n: "sched.kindTemplate" })), h("label", { class: "inline checkbox" }, kindText, h("span", { i18n: "sched.kindText" }))),
      ),
      error,
      content,
    );
    showKind();
  }

  newButton.addEventListener("click", showNew);
  load();
}
