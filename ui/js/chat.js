// Chat bubbles, shared by the agents' conversation view (thread.js), the bot-flow preview and the
// simulator.

import { has, t } from "./i18n.js";
import { formatBytes, formatDay, formatTime, h } from "./dom.js";
import { icon, kindIcon } from "./icons.js";
import { templateButtons, templateParts } from "./template_preview.js";

const TICKS = {
  queued: "◔",
  sent: "✓",
  delivered: "✓✓",
  read: "✓✓",
  failed: "!",
};

/** The delivery ticks of an outbound message: ✓ sent, ✓✓ delivered, blue ✓✓ read. */
export function ticks(status) {
  if (!TICKS[status]) return null;
  return h("span", {
    class: `ticks ticks-${status}`,
    text: TICKS[status],
    i18nTitle: `status.${status}`,
    i18nAriaLabel: `status.${status}`,
    dataset: { status },
  });
}

export function daySeparator(ms) {
  return h("div", { class: "day-separator" }, h("span", { text: formatDay(ms) }));
}

function kindLabel(kind) {
  return has(`kind.${kind}`) ? h("em", { i18n: `kind.${kind}` }) : h("em", { i18n: "kind.other", i18nArgs: { kind } });
}

/** Customer messages are stored with direction "in", ours with "out". */
function isInbound(m) {
  return m.direction === "in";
}

function authorKey(m, meId) {
  if (isInbound(m)) return "customer";
  if (m.author === "agent") return m.author_user_id != null && m.author_user_id === meId ? "you" : "agent";
  return ["bot", "system", "integration"].includes(m.author) ? m.author : "agent";
}

const mediaSizes = new Map(); // media id -> Promise<number|null>

/** The size of a stored file, from a HEAD request (messages do not carry it). Cached. */
function mediaSize(mediaId) {
  if (!mediaSizes.has(mediaId)) {
    const p = fetch(`/api/media/${mediaId}`, { method: "HEAD", credentials: "same-origin" })
      .then((r) => (r.ok ? Number(r.headers.get("Content-Length")) || null : null))
      .catch(() => null);
    mediaSizes.set(mediaId, p);
  }
  return mediaSizes.get(mediaId);
}

/** The file name of a document message: its content's, else the body (caption or name). */
function fileName(m) {
  const c = m.content || {};
  return m.media?.filename || c.document?.filename || c.filename || m.body || t("msg.openFile");
}

/**
 * Images the server may show in place (it decides from the file's bytes, see docs/api.md); only
 * these open in a tab. Anything else, whatever its declared type, is offered as a download, so a
 * customer's file is never opened as a page of the app.
 */
const VIEWABLE_IMAGES = new Set(["image/jpeg", "image/png", "image/webp"]);

function viewableImage(m) {
  const declared = (m.media?.mime_type || m.content?.[m.kind]?.mime_type || "").split(";")[0].trim().toLowerCase();
  return VIEWABLE_IMAGES.has(declared);
}

/** A document as a download link: icon, name and size (filled in when known). */
function fileLink(m, url) {
  const size = h("span", { class: "file-size muted small" });
  const known = m.media?.size_bytes;
  if (known != null) size.textContent = formatBytes(known);
  else if (m.media_id) mediaSize(m.media_id).then((n) => (size.textContent = n ? formatBytes(n) : ""));
  return h(
    "a",
    { class: "file-link", href: url, download: fileName(m), dataset: { testid: "file-link" } },
    icon("document", { size: 20 }),
    h("span", { class: "file-info" }, h("span", { class: "file-name", text: fileName(m) }), size),
  );
}

function mediaView(m) {
  const url = `/api/media/${m.media_id}`;
  switch (m.kind) {
    case "image":
    case "sticker": {
      const img = h("img", { class: m.kind === "sticker" ? "media-sticker" : "media-image", src: url, alt: t(`kind.${m.kind}`), loading: "lazy" });
      // A customer's file is downloaded from WhatsApp after the message arrives: retry a few times
      // before settling for a link.
      let attempts = 0;
      img.addEventListener("error", () => {
        attempts += 1;
        // The link around the picture goes too: a link inside a link would be invalid.
        if (attempts > 5) (img.parentElement?.tagName === "A" ? img.parentElement : img).replaceWith(fileLink(m, url));
        else setTimeout(() => (img.src = `${url}?try=${attempts}`), 800 * attempts);
      });
      return viewableImage(m)
        ? h("a", { href: url, target: "_blank", rel: "noopener" }, img)
        : h("a", { href: url, download: fileName(m) }, img);
    }
    case "audio":
      return h("audio", { class: "media-audio", controls: true, preload: "none", src: url });
    case "video":
      return h("video", { class: "media-video", controls: true, preload: "metadata", src: url });
    default:
      return fileLink(m, url);
  }
}

/** Options of an outbound interactive message (as the agent sees them: not clickable). */
function sentOptions(content) {
  if (!content || typeof content !== "object") return null;
  if (content.type === "buttons" && Array.isArray(content.buttons)) {
    return h("div", { class: "bubble-options" }, content.buttons.map((b) => h("span", { class: "option-chip", text: b.title })));
  }
  if (content.type === "list" && Array.isArray(content.sections)) {
    const rows = content.sections.flatMap((s) => s.rows || []);
    return h(
      "div",
      { class: "bubble-options" },
      h("span", { class: "option-chip option-list" }, icon("list", { size: 14 }), content.button || ""),
      rows.map((r) => h("span", { class: "option-chip", text: r.title })),
    );
  }
  return null;
}

function locationText(content) {
  const loc = content?.location || content;
  if (!loc || loc.latitude === undefined) return null;
  const name = [loc.name, loc.address].filter(Boolean).join(" — ");
  return `${name ? `${name} ` : ""}(${loc.latitude}, ${loc.longitude})`;
}

/** A short text for a message (reply quotes, previews). */
export function messageSnippet(m) {
  if (!m) return "";
  if (m.body) return m.body.length > 120 ? `${m.body.slice(0, 119)}…` : m.body;
  return has(`kind.${m.kind}`) ? t(`kind.${m.kind}`) : t("kind.other", { kind: m.kind });
}

/** The quoted message above a reply: `quoted` is the message replied to, or null when not loaded. */
function replyQuote(m, quoted, onQuoteClick) {
  const who = quoted ? authorKey(quoted, null) : null;
  return h(
    "button",
    {
      type: "button",
      class: "reply-quote",
      dataset: { testid: "reply-quote", replyTo: quoted?.id ?? "" },
      disabled: !quoted,
      on: quoted && onQuoteClick ? { click: () => onQuoteClick(quoted.id) } : {},
    },
    h("span", { class: "reply-quote-author", i18n: quoted ? `author.${who === "you" ? "agent" : who}` : "msg.replyTo" }),
    h("span", { class: "reply-quote-text", text: quoted ? messageSnippet(quoted) : "", i18n: quoted ? null : "msg.replyUnknown" }),
  );
}

/**
 * One message of a conversation, as the agent sees it. `meId`: the logged-in user's id;
 * `findByWamid(wamid)`: the loaded message with that wamid (reply quotes); `onReply(m)`: shows a
 * "Responder" action; `onQuoteClick(id)`: jump to a quoted message.
 */
export function messageBubble(m, { meId, findByWamid, onReply, onQuoteClick } = {}) {
  const who = authorKey(m, meId);
  const author = isInbound(m) ? "customer" : m.author || "agent";
  const rowData = { id: m.id, author: who, testid: "message", phase: m.phase || "", status: m.status || "" };
  if (who === "system") {
    return h("div", { class: "bubble-row row-system", dataset: rowData }, h("div", { class: "bubble bubble-system", dataset: { author }, text: m.body || "" }));
  }
  const side = who === "customer" ? "in" : "out";
  const body = [];
  if (who !== "customer") body.push(h("div", { class: `bubble-author author-${who}`, i18n: `author.${who}` }));
  if (m.reply_to_wamid) body.push(replyQuote(m, findByWamid?.(m.reply_to_wamid) || null, onQuoteClick));
  if (m.media_id) body.push(mediaView(m));
  const location = m.kind === "location" ? locationText(m.content) : null;
  // A template as the customer sees it (header, body, footer; its buttons under the bubble).
  const template = m.kind === "template" ? m.template?.rendered || null : null;
  if (template) body.push(h("div", { class: "bubble-template", dataset: { testid: "template-message", name: m.template?.name || "" } }, templateParts(template)));
  else if (location) body.push(h("div", { class: "bubble-text with-icon" }, icon("location", { size: 16 }), location));
  // A document's body is its caption, or its file name when it has none (already the link's text).
  else if (m.body && !(m.media_id && m.kind === "document" && m.body === fileName(m))) body.push(h("div", { class: "bubble-text", text: m.body }));
  else if (!m.media_id) body.push(h("div", { class: "bubble-text" }, kindLabel(m.kind)));
  if (!isInbound(m)) body.push(sentOptions(m.content));
  if (m.status === "failed") {
    const known = m.error_code && has(`waError.${m.error_code}`) ? t(`waError.${m.error_code}`) : "";
    const reason = known || m.error_detail || m.error_title || (m.error_code ? `#${m.error_code}` : "");
    body.push(h("div", { class: "bubble-error", i18n: "msg.failed", i18nArgs: { reason } }));
  }
  const reply =
    onReply && m.wamid
      ? h("button", { type: "button", class: "bubble-action", dataset: { testid: "reply-button" }, i18nTitle: "msg.reply", i18n: "msg.reply", on: { click: () => onReply(m) } })
      : null;
  body.push(h("div", { class: "bubble-meta" }, reply, h("span", { text: formatTime(m.created_at) }), side === "out" ? ticks(m.status) : null));
  const bubble = h("div", { class: `bubble bubble-${side} bubble-${who}${template ? " bubble-tpl" : ""}`, dataset: { author } }, body);
  return h(
    "div",
    { class: `bubble-row row-${side}${m.phase === "bot" ? " phase-bot" : ""}`, dataset: rowData },
    template?.buttons?.length ? h("div", { class: "bubble-column" }, bubble, templateButtons(template.buttons)) : bubble,
  );
}

/**
 * A business message as the customer sees it on the phone (bot-flow preview, simulator).
 * `item`: {type: "text", text} | {type: "buttons", header, body, footer, options: [{id, title}]}
 * | {type: "list", header, body, footer, button, options: [{id, title, description}]}
 * | {type: "media", kind, label, caption} | {type: "note", text}.
 * `onChoose(kind, option)` makes the options tappable ("button_reply" / "list_reply"); without it
 * they are shown but inert. `expandList` lists the rows of a list under it (preview).
 */
export function customerBubble(item, { time, onChoose, expandList = false, highlightProtocol = false } = {}) {
  if (item.type === "note") {
    return h("div", { class: "bubble-row row-system" }, h("div", { class: "bubble bubble-note", text: item.text }));
  }
  const parts = [];
  if (item.header) parts.push(h("div", { class: "bubble-header", text: item.header }));
  if (item.type === "media") parts.push(h("div", { class: "bubble-media-label with-icon" }, kindIcon(item.kind), item.label));
  const text = item.type === "text" ? item.text : item.type === "media" ? item.caption : item.body;
  if (text) parts.push(textWithProtocol(text, highlightProtocol));
  if (item.footer) parts.push(h("div", { class: "bubble-footer", text: item.footer }));
  if (time) parts.push(h("div", { class: "bubble-meta" }, h("span", { text: formatTime(time) })));
  const bubble = h("div", { class: "bubble bubble-in bubble-business" }, parts);
  const column = [bubble];
  if (item.type === "buttons") {
    column.push(
      h(
        "div",
        { class: "reply-buttons" },
        item.options.map((o) =>
          h("button", {
            type: "button",
            class: "reply-button",
            text: o.title,
            disabled: !onChoose,
            dataset: { optionId: o.id },
            on: onChoose ? { click: () => onChoose("button_reply", o) } : {},
          }),
        ),
      ),
    );
  } else if (item.type === "list") {
    const rows = h(
      "div",
      { class: "list-rows" },
      item.options.map((o) =>
        h(
          "button",
          {
            type: "button",
            class: "list-row",
            disabled: !onChoose,
            dataset: { optionId: o.id },
            on: onChoose ? { click: () => onChoose("list_reply", o) } : {},
          },
          h("span", { class: "list-row-title", text: o.title }),
          o.description ? h("span", { class: "list-row-description", text: o.description }) : null,
        ),
      ),
    );
    rows.hidden = !expandList;
    const opener = h(
      "button",
      { type: "button", class: "reply-button list-opener", on: { click: () => (rows.hidden = !rows.hidden) } },
      icon("list", { size: 16 }),
      item.button || t("flows.listOpen"),
    );
    column.push(h("div", { class: "reply-buttons" }, opener), rows);
  }
  return h("div", { class: "bubble-row row-in" }, h("div", { class: "bubble-column" }, column));
}

/** Text with long digit runs (protocol numbers) in bold when the text speaks of a protocol. */
function textWithProtocol(text, highlight) {
  const el = h("div", { class: "bubble-text" });
  if (!highlight || !/protocolo|protocol/i.test(text)) {
    el.textContent = text;
    return el;
  }
  let last = 0;
  for (const match of text.matchAll(/[A-Za-z]{0,6}-?\d{10,}/g)) {
    el.append(text.slice(last, match.index), h("strong", { class: "protocol-number", text: match[0] }));
    last = match.index + match[0].length;
  }
  el.append(text.slice(last));
  return el;
}
