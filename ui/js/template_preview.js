// A template message as WhatsApp draws it on the customer's phone: the chat's patterned
// background, a white bubble with the header (text in bold, or the picture, video or document),
// the body with WhatsApp's formatting (*bold*, _italic_, ~strike~, ```mono```), the footer in
// grey, the time, and the buttons under the bubble (more than three: two and "Ver todas as
// opções"). Used by the template editor, the desk's template mode, the broadcasts' preview and
// the thread (a sent template as the customer sees it).

import { formatTime, h } from "./dom.js";
import { icon } from "./icons.js";

/**
 * `rendered`: {header, header_media ("image"|"video"|"document"), header_url, body, footer,
 * buttons: [{type, text, url?, phone_number?, code?}]}. Returns the phone-like frame.
 */
export function templatePreview(rendered, { time = Date.now(), id, empty = false } = {}) {
  const content = empty
    ? h("p", { class: "tpl-preview-empty muted small", i18n: "tpl.previewEmpty" })
    : h("div", { class: "tpl-column" }, h("div", { class: "tpl-bubble" }, templateParts(rendered), h("div", { class: "tpl-time", text: formatTime(time) })), templateButtons(rendered?.buttons));
  return h(
    "div",
    { class: "tpl-phone", id, dataset: { testid: "template-preview" } },
    h("div", { class: "tpl-phone-bar" }, h("span", { class: "tpl-phone-avatar" }, icon("chat", { size: 16 })), h("span", { class: "tpl-phone-title", i18n: "tpl.previewTitle" })),
    h("div", { class: "tpl-wallpaper" }, content),
  );
}

/** Header, body and footer of a template bubble (also inside the thread's own bubbles). */
export function templateParts(rendered) {
  const r = rendered || {};
  const parts = [];
  const media = r.header_media || (r.header && typeof r.header === "object" ? r.header.media : null);
  if (media) parts.push(mediaHeader(String(media).toLowerCase(), r.header_url));
  const headerText = typeof r.header === "string" ? r.header : r.header?.text;
  if (headerText) parts.push(h("div", { class: "tpl-header", dataset: { testid: "template-header" } }, formatted(headerText)));
  parts.push(h("div", { class: "tpl-body", dataset: { testid: "template-body" } }, formatted(r.body || "")));
  if (r.footer) parts.push(h("div", { class: "tpl-footer", dataset: { testid: "template-footer" }, text: r.footer }));
  return parts;
}

function mediaHeader(kind, url) {
  if (kind === "image" && url) return h("img", { class: "tpl-media-picture", src: url, alt: "" });
  const names = { image: "image", video: "video", document: "document" };
  return h("div", { class: `tpl-media tpl-media-${kind}`, dataset: { testid: "template-media" } }, icon(names[kind] || "document", { size: 36 }), h("span", { class: "small", i18n: `kind.${kind}` }));
}

const BUTTON_ICONS = { QUICK_REPLY: "↩", URL: "↗", PHONE_NUMBER: "✆", COPY_CODE: "⧉", OTP: "⧉" };

/** The buttons under a template bubble, as WhatsApp lays them out. */
export function templateButtons(buttons) {
  const list = (buttons || []).map((b) => ({ ...b, type: String(b.type || b.kind || "QUICK_REPLY").toUpperCase() }));
  if (!list.length) return null;
  const shown = list.length > 3 ? list.slice(0, 2) : list;
  const rows = shown.map((b) =>
    h(
      "div",
      { class: `tpl-button tpl-button-${b.type.toLowerCase()}`, dataset: { testid: "template-button", type: b.type }, title: b.url || b.phone_number || "" },
      h("span", { class: "tpl-button-icon", text: BUTTON_ICONS[b.type] || "↩", "aria-hidden": "true" }),
      b.type === "COPY_CODE" && !b.text ? h("span", { i18n: "tpl.copyCode" }) : h("span", { text: b.text || "" }),
    ),
  );
  if (list.length > 3) rows.push(h("div", { class: "tpl-button tpl-button-more" }, h("span", { class: "tpl-button-icon", text: "☰" }), h("span", { i18n: "tpl.allOptions" })));
  return h("div", { class: "tpl-buttons" }, rows);
}

/** WhatsApp's inline formatting as nodes (never as HTML: the text is the customer's or Meta's). */
export function formatted(text) {
  const out = [];
  const pattern = /```([\s\S]+?)```|\*([^*\n]+)\*|_([^_\n]+)_|~([^~\n]+)~/g;
  let last = 0;
  for (const m of String(text).matchAll(pattern)) {
    if (m.index > last) out.push(String(text).slice(last, m.index));
    if (m[1] !== undefined) out.push(h("code", { text: m[1] }));
    else if (m[2] !== undefined) out.push(h("strong", { text: m[2] }));
    else if (m[3] !== undefined) out.push(h("em", { text: m[3] }));
    else out.push(h("s", { text: m[4] }));
    last = m.index + m[0].length;
  }
  if (last < String(text).length) out.push(String(text).slice(last));
  return out;
}
