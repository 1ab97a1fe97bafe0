// "Nova conversa": a business-initiated conversation, which WhatsApp allows only with an approved
// template. To a phone number typed by the agent (any Brazilian format: the server normalizes it
// to E.164 with the ninth digit) or to an existing contact (from a closed conversation). The
// dialog is the desk's template mode, sending through POST /api/messages; the conversation then
// waits for the customer's reply, routed as chosen.

import { describe, get, post } from "./api.js";
import { t } from "./i18n.js";
import { formatPhone, h, replace, setRawText } from "./dom.js";
import { listOf } from "./actions.js";
import { openDialog } from "./dialog.js";
import { createTemplateComposer } from "./template_composer.js";

/** `user`, and either `contact` ({id, name, wa_id}) or nothing (a phone number is asked). */
export function openStartConversation({ user, contact = null, channelId = null }) {
  const phone = h("input", { id: "start-phone", type: "tel", autocomplete: "off", placeholder: "(11) 98765-4321", maxlength: 25 });
  const channel = h("select", { id: "start-channel" });
  const content = h("div", { id: "start-composer", class: "start-composer" });
  const done = h("div", { id: "start-done", class: "alert alert-ok", role: "status", hidden: true });
  const error = h("div", { id: "start-error", class: "form-error", role: "alert" });
  let composer = null;
  let dialog = null;
  dialog = openDialog({
    id: "start-dialog",
    title: contact ? "start.titleContact" : "start.title",
    titleArgs: { name: contact?.name || formatPhone(contact?.wa_id) || "" },
    wide: true,
    body: [
      h("p", { class: "muted small", i18n: "start.intro" }),
      h(
        "div",
        { class: "sched-grid" },
        contact ? null : h("div", { class: "field" }, h("label", { for: "start-phone", i18n: "start.phone" }), phone, h("div", { class: "muted small", i18n: "start.phoneHint" })),
        h("div", { class: "field", id: "start-channel-field" }, h("label", { for: "start-channel", i18n: "start.channel" }), channel),
      ),
      error,
      done,
      content,
    ],
    actions: [h("button", { type: "button", class: "btn btn-ghost", i18n: "dialog.close", on: { click: () => dialog.close() } })],
    onClose: () => composer?.destroy(),
  });

  function mount() {
    composer?.destroy();
    const start = contact ? { contact_id: contact.id } : {};
    if (channel.value) start.channel_id = Number(channel.value);
    composer = createTemplateComposer({
      start,
      conversation: contact ? { contact_name: contact.name } : null,
      user,
      prefix: "start-tpl",
      submitter: contact
        ? null
        : (body) => {
            if (!phone.value.trim()) {
              phone.focus();
              return Promise.reject(new Error(t("start.phoneMissing")));
            }
            return post("/api/messages", { ...start, to: phone.value.trim(), ...body });
          },
      onSent: (message, result) => {
        const conversationId = result?.conversation?.id ?? message?.conversation_id;
        const protocol = result?.conversation?.protocol || "";
        done.hidden = false;
        replace(
          done,
          h("span", { i18n: "start.sent", i18nArgs: { protocol } }),
          conversationId ? [" ", h("a", { href: `#/conversations/${conversationId}`, id: "start-open", i18n: "start.open", on: { click: () => dialog.close() } })] : null,
        );
        composer?.destroy();
        composer = null;
        replace(content);
      },
    });
    replace(content, composer.el);
  }

  get("/api/channels")
    .then((data) => listOf(data, "channels").filter((c) => c.enabled !== false))
    .catch(() => [])
    .then((channels) => {
      replace(channel, channels.map((c) => h("option", { value: String(c.id), text: c.name || formatPhone(c.display_phone_number) || `#${c.id}` })));
      if (channelId) channel.value = String(channelId);
      // One channel (or none the caller may list): nothing to choose.
      document.getElementById("start-channel-field").hidden = channels.length < 2;
      mount();
    })
    .catch((e) => setRawText(error, describe(e)));
  channel.addEventListener("change", mount);
  (contact ? channel : phone).focus();
}
