// The composer of the desk: text (Enter sends), attachments (button, drag and drop, paste; each
// uploaded at once to /api/media and sent as {"type": "media"}), canned responses ("/" + shortcut,
// filled in by the server with the conversation's data), a small emoji picker, a reply context and
// the 24-hour window state (closed: only templates may be sent, and the composer switches to the
// template mode of template_composer.js by itself; open: how long it has left, and a "Modelo"
// button for a template anyway).

import { ApiError, describe, get, post, upload } from "./api.js";
import { formatBytes, formatDuration, h, randomKey, replace, setRawText, setText } from "./dom.js";
import { t } from "./i18n.js";
import { icon } from "./icons.js";
import { messageSnippet } from "./chat.js";
import { notifyTyping } from "./live.js";
import { createTemplateComposer } from "./template_composer.js";
import { can } from "./me.js";

const EMOJIS = "😀 😃 😄 😁 😊 🙂 😉 😍 😘 🤗 🤔 😅 😂 🙏 👍 👎 👏 🙌 👋 💪 ✅ ❌ ⚠️ ❗ ❓ 📎 📄 📷 📞 📅 ⏰ 💰 🎉 ❤️ 💚 ⭐ 🔒 🚚 😢 😞".split(" ");
const CAPTION_KINDS = new Set(["image", "video", "document"]);

/**
 * `conversationId`, `user` (the agent), `onSent(message)`: each message the server accepted.
 * Returns {el, setState(conversation), setReply(message), addFiles(files), focus(), destroy()}.
 */
export function createComposer({ conversationId, user, onSent }) {
  const input = h("textarea", { id: "composer-input", rows: 1, i18nPlaceholder: "composer.placeholder", maxlength: 4096, "aria-label": t("composer.label") });
  const send = h("button", { id: "composer-send", type: "submit", class: "btn btn-primary", i18nTitle: "composer.send" }, icon("send", { size: 18 }), h("span", { i18n: "composer.send" }));
  const fileInput = h("input", { id: "attach-input", type: "file", multiple: true, class: "visually-hidden", tabindex: "-1" });
  const attach = h("button", { id: "attach-button", type: "button", class: "icon-button", i18nTitle: "composer.attach", i18nAriaLabel: "composer.attach" }, icon("attach"));
  const emojiButton = h("button", { id: "emoji-button", type: "button", class: "icon-button", i18nTitle: "composer.emoji", i18nAriaLabel: "composer.emoji", text: "☺" });
  const cannedButton = h("button", { id: "canned-button", type: "button", class: "icon-button", i18nTitle: "composer.canned", i18nAriaLabel: "composer.canned", text: "/" });
  const templateButton = h("button", { id: "template-button", type: "button", class: "icon-button tplc-open", i18nTitle: "tplc.open", i18nAriaLabel: "tplc.open", text: "HSM", hidden: !can("send_template") });
  const templateArea = h("div", { id: "template-area", class: "template-area", hidden: true });
  const emojiPanel = h(
    "div",
    { id: "emoji-panel", class: "emoji-panel", role: "listbox", hidden: true },
    EMOJIS.map((e) => h("button", { type: "button", class: "emoji-option", text: e, dataset: { emoji: e }, on: { click: () => insertText(e) } })),
  );
  const cannedPanel = h("div", { id: "canned-list", class: "canned-list", role: "listbox", hidden: true });
  const attachments = h("div", { id: "attachment-list", class: "attachment-list", hidden: true });
  const replyBox = h("div", { id: "reply-preview", class: "reply-preview", hidden: true });
  const windowState = h("div", { id: "window-state", class: "window-state small" });
  const error = h("div", { id: "composer-error", class: "form-error composer-error", role: "alert" });
  const form = h(
    "form",
    { class: "composer", id: "composer" },
    emojiPanel,
    cannedPanel,
    replyBox,
    attachments,
    h("div", { class: "composer-row", id: "composer-row" }, emojiButton, cannedButton, templateButton, attach, fileInput, input, send),
    h("div", { class: "composer-footer" }, windowState, error),
  );
  const root = h("div", { class: "composer-wrap", id: "composer-wrap", dataset: { mode: "text" } }, templateArea, form);

  let conversation = null;
  let windowOpen = true;
  let replyTo = null;
  let pending = []; // {id, file, media, promise, error, el}
  let canned = null; // loaded on first use
  let suggestions = [];
  let active = 0;
  let sending = false;
  let windowTimer = null;
  let templateMode = null; // {composer, automatic}

  // ---------- Template mode ----------

  /** Shows the template composer in place of the text row; `automatic`: the window closed. */
  function enterTemplateMode(automatic) {
    if (templateMode) return;
    const tc = createTemplateComposer({
      conversationId,
      conversation,
      user,
      onSent: (m) => {
        if (m && m.id) onSent?.(m);
        if (windowOpen) leaveTemplateMode();
      },
      onCancel: automatic ? null : () => leaveTemplateMode(),
    });
    templateMode = { composer: tc, automatic };
    replace(templateArea, tc.el);
    templateArea.hidden = false;
    form.querySelector(".composer-row").hidden = true;
    replyBox.hidden = true;
    attachments.hidden = true;
    root.dataset.mode = "template";
  }

  function leaveTemplateMode() {
    if (!templateMode) return;
    templateMode.composer.destroy();
    templateMode = null;
    replace(templateArea);
    templateArea.hidden = true;
    form.querySelector(".composer-row").hidden = false;
    replyBox.hidden = !replyTo;
    attachments.hidden = !pending.length;
    root.dataset.mode = "text";
    input.focus();
  }

  // ---------- Window state ----------

  function renderWindow() {
    const expires = conversation?.window_expires_at;
    windowOpen = Boolean(expires && expires > Date.now());
    windowState.dataset.state = windowOpen ? "open" : "closed";
    if (windowOpen) setText(windowState, "composer.windowOpen", { left: formatDuration(expires - Date.now()) });
    else setText(windowState, can("send_template") ? "composer.windowClosed" : "tplc.noPermission");
    // Closed: only a template can go, so the composer becomes one; reopened (the customer
    // wrote): back to text, unless the agent chose the template themselves.
    if (!windowOpen && can("send_template")) enterTemplateMode(true);
    else if (windowOpen && templateMode?.automatic) leaveTemplateMode();
    templateMode?.composer.setConversation(conversation);
    input.disabled = !windowOpen;
    attach.disabled = !windowOpen;
    emojiButton.disabled = !windowOpen;
    cannedButton.disabled = !windowOpen;
    input.dataset.i18nPlaceholder = windowOpen ? "composer.placeholder" : "composer.placeholderClosed";
    input.placeholder = t(input.dataset.i18nPlaceholder);
    updateSend();
  }

  function updateSend() {
    const hasContent = input.value.trim() || pending.length;
    send.disabled = sending || !windowOpen || !hasContent || pending.some((p) => !p.media && !p.error);
  }

  // ---------- Text helpers ----------

  function insertText(text) {
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    input.setRangeText(text, start, end, "end");
    input.focus();
    autoGrow();
    updateSend();
  }

  function autoGrow() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
    input.style.overflowY = input.scrollHeight > 160 ? "auto" : "hidden";
  }

  function showError(key, args) {
    setText(error, key, args);
  }

  // ---------- Attachments ----------

  function addFiles(files) {
    if (!windowOpen) return showError("composer.windowClosed");
    for (const file of files) {
      const item = { id: randomKey(), file, media: null, error: null };
      item.el = attachmentChip(item);
      item.promise = upload("/api/media", formWith(file), { onProgress: (f) => item.el.querySelector("progress")?.setAttribute("value", String(f)) })
        .then((data) => {
          item.media = data?.media || data;
          item.el.dataset.state = "ready";
        })
        .catch((e) => {
          item.error = e;
          item.el.dataset.state = "error";
          setRawText(item.el.querySelector(".attachment-status"), uploadError(e));
        })
        .finally(updateSend);
      pending.push(item);
    }
    renderAttachments();
  }

  function formWith(file) {
    const data = new FormData();
    data.append("file", file, file.name);
    return data;
  }

  function uploadError(e) {
    if (e instanceof ApiError && e.status === 413) return t("composer.fileTooLarge");
    if (e instanceof ApiError && e.status === 415) return t("composer.fileType");
    return describe(e);
  }

  function attachmentChip(item) {
    const remove = h("button", { type: "button", class: "chip-remove", i18nTitle: "composer.removeFile", text: "×", on: { click: () => removeAttachment(item) } });
    const preview = item.file.type.startsWith("image/") ? h("img", { class: "attachment-thumb", src: URL.createObjectURL(item.file), alt: "" }) : icon("document", { size: 22 });
    return h(
      "div",
      { class: "attachment-chip", dataset: { testid: "attachment", state: "uploading", name: item.file.name } },
      preview,
      h(
        "div",
        { class: "attachment-info" },
        h("span", { class: "file-name", text: item.file.name }),
        h("span", { class: "muted small" }, formatBytes(item.file.size), " ", h("span", { class: "attachment-status" })),
        h("progress", { max: "1", value: "0" }),
      ),
      remove,
    );
  }

  function removeAttachment(item) {
    pending = pending.filter((p) => p !== item);
    const thumb = item.el.querySelector("img");
    if (thumb) URL.revokeObjectURL(thumb.src);
    renderAttachments();
  }

  function renderAttachments() {
    attachments.hidden = !pending.length;
    replace(attachments, pending.map((p) => p.el));
    updateSend();
  }

  // ---------- Reply ----------

  function setReply(m) {
    replyTo = m;
    replyBox.hidden = !m;
    if (!m) return replace(replyBox);
    replace(
      replyBox,
      h("div", { class: "reply-preview-text" }, h("strong", { i18n: "composer.replyingTo" }), " ", h("span", { text: messageSnippet(m) })),
      h("button", { type: "button", id: "reply-cancel", class: "chip-remove", i18nTitle: "composer.cancelReply", text: "×", on: { click: () => setReply(null) } }),
    );
    input.focus();
  }

  // ---------- Canned responses ----------

  async function loadCanned() {
    if (canned) return canned;
    try {
      const data = await get(`/api/canned-responses?conversation_id=${conversationId}`);
      canned = (data?.canned_responses || data?.responses || (Array.isArray(data) ? data : [])).map((c) => ({
        ...c,
        shortcut: String(c.shortcut || "").replace(/^\//, ""),
      }));
    } catch (e) {
      canned = null;
      showError("composer.cannedError", { message: describe(e) });
      return [];
    }
    return canned;
  }

  /** The "/word" right before the caret, or null. */
  function slashToken() {
    const before = input.value.slice(0, input.selectionStart ?? input.value.length);
    const match = before.match(/(^|\s)\/([^\s/]*)$/);
    return match ? { query: match[2].toLowerCase(), start: before.length - match[2].length - 1 } : null;
  }

  async function updateSuggestions({ all = false } = {}) {
    const token = all ? { query: "", start: null } : slashToken();
    if (!token) return closeSuggestions();
    const list = await loadCanned();
    const q = token.query;
    suggestions = list
      .filter((c) => !q || c.shortcut.toLowerCase().startsWith(q) || String(c.title || "").toLowerCase().includes(q))
      .slice(0, 8)
      .map((c) => ({ ...c, start: token.start }));
    active = 0;
    renderSuggestions();
  }

  function renderSuggestions() {
    cannedPanel.hidden = !suggestions.length && !(canned && canned.length === 0);
    if (canned && !canned.length) return replace(cannedPanel, h("div", { class: "canned-empty muted", i18n: "composer.cannedEmpty" }));
    replace(
      cannedPanel,
      suggestions.map((c, i) =>
        h(
          "button",
          {
            type: "button",
            class: `canned-item${i === active ? " active" : ""}`,
            role: "option",
            "aria-selected": i === active ? "true" : "false",
            dataset: { testid: "canned-item", shortcut: c.shortcut },
            on: { mousedown: (ev) => ev.preventDefault(), click: () => chooseSuggestion(c) },
          },
          h("span", { class: "canned-shortcut", text: `/${c.shortcut}` }),
          h("span", { class: "canned-title", text: c.title || "" }),
          h("span", { class: "canned-body muted small", text: c.rendered || c.body || "" }),
        ),
      ),
    );
  }

  function closeSuggestions() {
    suggestions = [];
    cannedPanel.hidden = true;
  }

  function chooseSuggestion(c) {
    const text = c.rendered || c.body || "";
    const caret = input.selectionStart ?? input.value.length;
    if (c.start != null) input.setRangeText(text, c.start, caret, "end");
    else insertText(text);
    closeSuggestions();
    input.focus();
    autoGrow();
    updateSend();
  }

  // ---------- Sending ----------

  async function submit(ev) {
    ev?.preventDefault();
    if (send.disabled) return;
    sending = true;
    updateSend();
    showError(null);
    try {
      await Promise.all(pending.map((p) => p.promise));
      const ready = pending.filter((p) => p.media);
      if (pending.some((p) => p.error)) return showError("composer.removeFailed");
      const text = input.value.trim();
      const captioned = ready.length === 1 && CAPTION_KINDS.has(ready[0].media.kind) && text;
      if (text && !captioned) await sendOne({ type: "text", body: text });
      input.value = "";
      autoGrow();
      for (const item of ready) {
        await sendOne({ type: "media", media_id: item.media.id, ...(captioned ? { caption: text } : {}) });
        removeAttachment(item);
      }
      setReply(null);
    } catch (e) {
      if (e instanceof ApiError && e.code === "outside_service_window") showError("composer.outsideWindow");
      else if (e instanceof ApiError && e.code === "conversation_closed") showError("composer.closed");
      else showError("composer.error", { message: describe(e) });
    } finally {
      sending = false;
      updateSend();
      input.focus();
    }
  }

  async function sendOne(body) {
    // One key per message of this action: a retry after a network error cannot send it twice.
    const payload = { ...body, idempotency_key: randomKey() };
    if (replyTo) payload.reply_to_message_id = replyTo.id;
    const result = await post(`/api/conversations/${conversationId}/messages`, payload);
    if (result?.message) onSent?.(result.message);
    replyTo = null; // the reply context goes with the first message only
  }

  // ---------- Events ----------

  form.addEventListener("submit", submit);
  input.addEventListener("input", () => {
    autoGrow();
    updateSend();
    if (input.value) notifyTyping(conversationId);
    updateSuggestions();
  });
  input.addEventListener("keydown", (ev) => {
    if (!cannedPanel.hidden && suggestions.length) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        active = (active + (ev.key === "ArrowDown" ? 1 : suggestions.length - 1)) % suggestions.length;
        return renderSuggestions();
      }
      if (ev.key === "Enter" || ev.key === "Tab") {
        ev.preventDefault();
        return chooseSuggestion(suggestions[active]);
      }
      if (ev.key === "Escape") {
        ev.preventDefault();
        return closeSuggestions();
      }
    }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("blur", () => setTimeout(closeSuggestions, 150));
  input.addEventListener("paste", (ev) => {
    const files = [...(ev.clipboardData?.files || [])];
    if (files.length) {
      ev.preventDefault();
      addFiles(files);
    }
  });
  attach.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    addFiles([...fileInput.files]);
    fileInput.value = "";
  });
  emojiButton.addEventListener("click", () => {
    emojiPanel.hidden = !emojiPanel.hidden;
    closeSuggestions();
  });
  templateButton.addEventListener("click", () => enterTemplateMode(false));
  cannedButton.addEventListener("click", () => {
    emojiPanel.hidden = true;
    if (cannedPanel.hidden) updateSuggestions({ all: true });
    else closeSuggestions();
  });
  const closePanels = (ev) => {
    if (!emojiPanel.hidden && !emojiPanel.contains(ev.target) && ev.target !== emojiButton) emojiPanel.hidden = true;
  };
  document.addEventListener("click", closePanels);
  windowTimer = setInterval(renderWindow, 30000);

  return {
    el: root,
    setState(c) {
      conversation = c;
      renderWindow();
    },
    setReply,
    addFiles,
    focus: () => input.focus(),
    destroy() {
      templateMode?.composer.destroy();
      clearInterval(windowTimer);
      document.removeEventListener("click", closePanels);
      for (const p of pending) removeAttachment(p);
    },
  };
}
