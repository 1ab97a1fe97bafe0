// The customer's phone of the built-in WhatsApp simulator: what a person types here reaches Atende
// as a signed Meta webhook (POST /sim/_sim/customer/send), and what Atende sends to this number is
// read back from what the fake Graph API received (GET /sim/_sim/sent, polled every second).

import { customerBubble, ticks } from "./chat.js";
import { formatPhone, formatTime, h, replace } from "./dom.js";
import { applyI18n, languageSelect, onLangChange, t } from "./i18n.js";
import { icon, kindIcon } from "./icons.js";

const SIM = "/sim/_sim";
const POLL_MS = 1000;
const MAX_FILE_BYTES = 16 * 1024 * 1024;
const SETTINGS_KEY = "atende.sim.customer";
const DEFAULT_CUSTOMER = { name: "Maria", number: "5511987654321" };

const root = document.getElementById("root");
const digits = (s) => String(s || "").replace(/\D/g, "");

function loadCustomer() {
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "null");
    if (saved?.number && digits(saved.number)) return { name: saved.name || "", number: digits(saved.number) };
  } catch {
    // Defaults below.
  }
  return { ...DEFAULT_CUSTOMER };
}

function saveCustomer(c) {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(c));
  } catch {
    // Not remembered.
  }
}

/** What this customer sent, per number, for this browser tab. */
function loadOwn(number) {
  try {
    return JSON.parse(sessionStorage.getItem(`atende.sim.own.${number}`) || "[]");
  } catch {
    return [];
  }
}

function saveOwn(number, list) {
  try {
    sessionStorage.setItem(`atende.sim.own.${number}`, JSON.stringify(list));
  } catch {
    // Kept in memory only.
  }
}

function cutoff(number) {
  return Number(sessionStorage.getItem(`atende.sim.cutoff.${number}`) || 0);
}

/** The admin session's CSRF token: the simulator's control API is an admin's tool. */
let csrfToken = "";

async function loadSession() {
  const response = await fetch("/api/auth/me", { credentials: "same-origin" });
  if (!response.ok) return null;
  const me = await response.json();
  csrfToken = me?.csrf_token || "";
  return me?.user || null;
}

async function simFetch(method, path, body) {
  const headers = body ? { "Content-Type": "application/json" } : {};
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(`${SIM}${path}`, {
    method,
    credentials: "same-origin",
    headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new Error(data?.error?.message || data?.error || text || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

async function boot() {
  applyI18n(document);
  const user = await loadSession().catch(() => null);
  if (!user || user.role !== "admin" || user.must_change_password) {
    showSignIn();
    return;
  }
  let config;
  try {
    config = await simFetch("GET", "/config");
  } catch (e) {
    if (e.status === 401 || e.status === 403) showSignIn();
    else showDisabled();
    return;
  }
  startPhone(config);
}

function topBar() {
  return h(
    "header",
    { class: "top-bar sim-top" },
    h("div", { class: "top-brand" }, h("span", { class: "brand-mark", text: "A" }), h("span", { class: "brand-name", i18n: "app.name" })),
    h("span", { class: "sim-badge", i18n: "sim.badge" }),
    h("h1", { class: "sim-title", i18n: "sim.title" }),
    h("div", { class: "top-spacer" }),
    h("a", { href: "/app/", class: "btn btn-ghost", target: "_blank", rel: "noopener", i18n: "sim.openApp" }),
    languageSelect(),
  );
}

/** A card in place of the phone: why it is not shown, and what to do. */
function showNotice(id, titleKey, bodyKey, ...actions) {
  replace(
    root,
    topBar(),
    h(
      "main",
      { class: "sim-main" },
      h("div", { class: "card sim-disabled", id, role: "alert" }, h("h2", { i18n: titleKey }), h("p", { i18n: bodyKey }), ...actions),
    ),
  );
}

function retryButton(style) {
  return h("button", { type: "button", class: `btn ${style}`, i18n: "sim.retry", on: { click: () => location.reload() } });
}

function showDisabled() {
  showNotice("sim-disabled", "sim.disabledTitle", "sim.disabledBody", h("pre", { class: "code" }, "atende --demo on"), retryButton("btn-primary"));
}

/** The simulator plays customers and reads what they receive: only a signed-in admin may use it. */
function showSignIn() {
  showNotice("sim-signin", "sim.signInTitle", "sim.signInBody", h("a", { href: "/app/", class: "btn btn-primary", i18n: "sim.signIn" }), retryButton("btn-ghost"));
}

function startPhone(config) {
  const business = config?.phone_numbers?.[0]?.display_phone_number || "";
  let customer = loadCustomer();
  let own = loadOwn(customer.number);
  let sent = [];
  let readWamids = new Set();
  let lastSignature = "";
  const previews = new Map(); // local object URLs of images this tab sent, by message key

  const nameInput = h("input", { id: "sim-name", type: "text", value: customer.name, maxlength: 60, autocomplete: "off" });
  const numberInput = h("input", { id: "sim-number", type: "text", inputmode: "numeric", value: customer.number, maxlength: 20, autocomplete: "off" });
  const numberError = h("div", { class: "form-error small", role: "alert" });
  const chat = h("div", { id: "sim-chat", class: "phone-chat chat-bg", "aria-live": "polite" });
  const input = h("input", { id: "sim-input", type: "text", i18nPlaceholder: "sim.placeholder", autocomplete: "off", maxlength: 4096 });
  const file = h("input", { id: "sim-file", type: "file", class: "visually-hidden", tabindex: "-1" });
  const attach = h("button", { type: "button", id: "sim-attach", class: "icon-button", i18nTitle: "sim.attach", i18nAriaLabel: "sim.attach" }, icon("attach", { size: 22 }));
  const send = h("button", { type: "submit", id: "sim-send", class: "icon-button send-button", i18nTitle: "sim.send", i18nAriaLabel: "sim.send" }, icon("send", { size: 20 }));
  const error = h("div", { id: "sim-error", class: "phone-error", role: "alert" });
  const composer = h("form", { class: "phone-composer" }, attach, file, input, send);
  const headerName = h("div", { class: "phone-contact-name", i18n: "sim.business" });

  replace(
    root,
    topBar(),
    h(
      "main",
      { class: "sim-main" },
      h(
        "aside",
        { class: "card sim-settings" },
        h("h2", { i18n: "sim.customer" }),
        h("label", { for: "sim-name", i18n: "sim.name" }),
        nameInput,
        h("label", { for: "sim-number", i18n: "sim.number" }),
        numberInput,
        numberError,
        h("p", { class: "notice small", i18n: "sim.notReal" }),
        business ? h("p", { class: "muted small", i18n: "sim.businessNumber", i18nArgs: { number: formatPhone(business) } }) : null,
        h("button", { type: "button", id: "sim-clear", class: "btn btn-ghost btn-small", i18n: "sim.clear", on: { click: clearScreen } }),
      ),
      h(
        "div",
        { class: "phone", "aria-label": t("sim.title") },
        h(
          "div",
          { class: "phone-header" },
          h("div", { class: "avatar avatar-business", text: "A" }),
          h("div", {}, headerName, h("div", { class: "phone-contact-sub" }, h("span", { i18n: "sim.badge" }), business ? ` · ${formatPhone(business)}` : "")),
        ),
        chat,
        error,
        composer,
      ),
    ),
  );

  function ownKey(m) {
    return `own-${m.at}`;
  }

  function render() {
    const since = cutoff(customer.number);
    const mine = sent.filter((s) => digits(s.to) === customer.number && s.received_at >= since);
    // The business marked read up to the latest of our messages it named.
    let readUpTo = -1;
    own.forEach((m, i) => {
      if (m.wamid && readWamids.has(m.wamid)) readUpTo = i;
    });
    const signature = JSON.stringify([customer.number, own.length, readUpTo, mine.map((s) => s.wamid), own.map((m) => m.status)]);
    if (signature === lastSignature) return;
    lastSignature = signature;
    const items = [
      ...own.map((m, i) => ({ at: m.at, node: ownBubble(m, i <= readUpTo) })),
      ...mine.map((s) => ({ at: s.received_at, node: businessBubble(s) })),
    ].sort((a, b) => a.at - b.at);
    const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 60;
    if (!items.length) replace(chat, h("p", { class: "phone-empty", i18n: "sim.empty" }));
    else replace(chat, items.map((i) => i.node));
    if (atBottom) chat.scrollTop = chat.scrollHeight;
  }

  function ownBubble(m, read) {
    const status = m.status === "error" ? "failed" : read ? "read" : m.status === "pending" ? "queued" : "delivered";
    const preview = previews.get(ownKey(m));
    return h(
      "div",
      { class: "bubble-row row-out", dataset: { own: "1" } },
      h(
        "div",
        { class: "bubble bubble-out bubble-customer" },
        preview ? h("img", { class: "media-image", src: preview, alt: m.label || "" }) : null,
        m.label ? h("div", { class: "bubble-media-label with-icon" }, kindIcon(m.kind), m.label) : null,
        m.text ? h("div", { class: "bubble-text", text: m.text }) : null,
        h("div", { class: "bubble-meta" }, h("span", { text: formatTime(m.at) }), ticks(status)),
      ),
    );
  }

  function businessBubble(s) {
    const item = metaBodyToItem(s.body || {});
    const onChoose = (kind, option) => reply(kind, option, s.wamid);
    const node = customerBubble(item, { time: s.received_at, onChoose, highlightProtocol: true });
    node.dataset.wamid = s.wamid;
    node.classList.add("from-business");
    return node;
  }

  function remember(m) {
    own.push(m);
    saveOwn(customer.number, own);
    render();
    return m;
  }

  async function deliver(message, display, context) {
    const entry = remember({ at: Date.now(), status: "pending", ...display });
    try {
      const result = await simFetch("POST", "/customer/send", {
        from: customer.number,
        name: customer.name || undefined,
        ...(context ? { context } : {}),
        ...message,
      });
      if (result?.status && result.status >= 300) throw new Error(`HTTP ${result.status}: ${result.body || ""}`);
      entry.wamid = result?.wamid || null;
      entry.status = "ok";
      showError("");
    } catch (e) {
      entry.status = "error";
      showError(t("sim.sendError", { message: e.message }));
    }
    saveOwn(customer.number, own);
    lastSignature = "";
    render();
    return entry;
  }

  function reply(kind, option, contextWamid) {
    const message =
      kind === "button_reply"
        ? { type: "button_reply", id: option.id, title: option.title }
        : { type: "list_reply", id: option.id, title: option.title, ...(option.description ? { description: option.description } : {}) };
    deliver(message, { text: option.title }, contextWamid);
  }

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  function clearScreen() {
    sessionStorage.setItem(`atende.sim.cutoff.${customer.number}`, String(Date.now()));
    own = [];
    saveOwn(customer.number, own);
    lastSignature = "";
    render();
  }

  function applyCustomer() {
    const number = digits(numberInput.value);
    if (number.length < 10 || number.length > 15) {
      numberError.textContent = t("sim.numberInvalid");
      return false;
    }
    numberError.textContent = "";
    const changed = number !== customer.number;
    customer = { name: nameInput.value.trim(), number };
    saveCustomer(customer);
    if (changed) {
      own = loadOwn(number);
      lastSignature = "";
      render();
    }
    return true;
  }

  composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!applyCustomer()) return;
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    deliver({ type: "text", text }, { text });
    input.focus();
  });

  attach.addEventListener("click", () => file.click());
  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    file.value = "";
    if (!chosen || !applyCustomer()) return;
    if (chosen.size > MAX_FILE_BYTES) {
      showError(t("sim.fileTooBig"));
      return;
    }
    const caption = input.value.trim() || undefined;
    input.value = "";
    const data_base64 = await toBase64(chosen);
    const { message, label } = fileMessage(chosen, data_base64, caption);
    const kind = message.type;
    const at = Date.now();
    if (message.type === "image") previews.set(`own-${at}`, URL.createObjectURL(chosen));
    // The preview is found by the entry's time, so the entry gets the same one.
    deliver(message, { kind, label, text: caption, at });
  });

  nameInput.addEventListener("change", applyCustomer);
  numberInput.addEventListener("change", applyCustomer);

  async function poll() {
    try {
      const [list, read] = await Promise.all([simFetch("GET", "/sent"), simFetch("GET", "/mark_read")]);
      sent = Array.isArray(list) ? list : [];
      readWamids = new Set(Array.isArray(read) ? read : []);
      render();
    } catch (e) {
      showError(t("sim.sendError", { message: e.message }));
    }
    setTimeout(poll, POLL_MS);
  }

  onLangChange(() => {
    lastSignature = "";
    render();
  });
  render();
  poll();
  input.focus();
}

function toBase64(fileObject) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(fileObject);
  });
}

/** The customer/send message for a chosen file and how our own bubble labels it. */
function fileMessage(f, data_base64, caption) {
  const mime = f.type || "application/octet-stream";
  if (/^image\/(jpeg|png|webp)$/.test(mime)) {
    return { message: { type: "image", data_base64, mime_type: mime, caption }, label: f.name };
  }
  if (mime === "audio/ogg" || mime === "audio/mpeg") {
    return { message: { type: "audio", data_base64, voice: mime === "audio/ogg" }, label: f.name };
  }
  if (/^video\/(mp4|3gpp)$/.test(mime)) {
    return { message: { type: "video", data_base64, mime_type: mime, caption }, label: f.name };
  }
  return {
    message: { type: "document", data_base64, mime_type: mime, filename: f.name, caption },
    label: f.name,
  };
}

/** A Graph API send body (what Atende posted to /messages) as a customer bubble item. */
function metaBodyToItem(body) {
  const type = body.type || "text";
  switch (type) {
    case "text":
      return { type: "text", text: body.text?.body || "" };
    case "interactive": {
      const i = body.interactive || {};
      const common = { header: i.header?.text, body: i.body?.text || "", footer: i.footer?.text };
      if (i.type === "button") {
        const options = (i.action?.buttons || []).map((b) => ({ id: b.reply?.id, title: b.reply?.title }));
        return { type: "buttons", ...common, options };
      }
      if (i.type === "list") {
        const options = (i.action?.sections || []).flatMap((s) => s.rows || []);
        return { type: "list", ...common, button: i.action?.button, options };
      }
      return { type: "text", text: common.body };
    }
    case "image":
    case "video":
    case "audio":
    case "document":
    case "sticker": {
      const media = body[type] || {};
      const name = media.filename ? `: ${media.filename}` : "";
      return { type: "media", kind: type, label: `${t(`kind.${type}`)}${name}`, caption: media.caption };
    }
    case "location": {
      const l = body.location || {};
      return { type: "media", kind: "location", label: t("kind.location"), caption: l.name || l.address || `${l.latitude}, ${l.longitude}` };
    }
    case "reaction":
      return { type: "note", text: t("sim.reaction", { emoji: body.reaction?.emoji || "" }) };
    case "template": {
      const tpl = body.template || {};
      const params = (tpl.components || []).flatMap((c) => c.parameters || []).map((p) => p.text).filter(Boolean);
      return { type: "text", text: [t("sim.template", { name: tpl.name || "" }), ...params].join("\n") };
    }
    default:
      return { type: "text", text: t("kind.other", { kind: type }) };
  }
}

boot();
