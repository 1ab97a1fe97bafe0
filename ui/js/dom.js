// Small DOM helpers shared by the pages: an element builder and formatting.

import { getLang, t } from "./i18n.js";

/**
 * Builds an element. `props`: `class`, `text`, `i18n` (a translation key, kept translated when
 * the language changes) with `i18nArgs`, `i18nPlaceholder`, `i18nTitle`, `on` ({event: fn}),
 * `dataset`, and any other attribute (`false`/`null` leave it out). Children may be strings,
 * nodes, arrays or null.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    switch (key) {
      case "class":
        el.className = value;
        break;
      case "text":
        el.textContent = value;
        break;
      case "i18n":
        el.dataset.i18n = value;
        break;
      case "i18nArgs":
        el.dataset.i18nArgs = JSON.stringify(value);
        break;
      case "i18nPlaceholder":
        el.dataset.i18nPlaceholder = value;
        break;
      case "i18nTitle":
        el.dataset.i18nTitle = value;
        break;
      case "i18nAriaLabel":
        el.dataset.i18nAriaLabel = value;
        break;
      case "on":
        for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
        break;
      case "dataset":
        Object.assign(el.dataset, value);
        break;
      case "value":
        el.value = value;
        break;
      default:
        el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  const args = props?.i18nArgs;
  if (props?.i18n) el.textContent = t(props.i18n, args);
  if (props?.i18nPlaceholder) el.placeholder = t(props.i18nPlaceholder, args);
  if (props?.i18nTitle) el.title = t(props.i18nTitle, args);
  if (props?.i18nAriaLabel) el.setAttribute("aria-label", t(props.i18nAriaLabel, args));
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** "5511987654321" → "+55 11 98765-4321"; anything else as given. */
export function formatPhone(digits) {
  const d = String(digits || "").replace(/\D/g, "");
  const br = d.match(/^55(\d{2})(\d{4,5})(\d{4})$/);
  if (br) return `+55 ${br[1]} ${br[2]}-${br[3]}`;
  return d ? `+${d}` : "";
}

/** HH:MM in the current language. */
export function formatTime(ms) {
  return new Intl.DateTimeFormat(getLang(), { hour: "2-digit", minute: "2-digit" }).format(new Date(ms));
}

/** "Hoje", "Ontem" or the date, for day separators. */
export function formatDay(ms) {
  const day = new Date(ms);
  const today = new Date();
  const startOf = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const diff = Math.round((startOf(today) - startOf(day)) / 86400000);
  if (diff === 0) return t("day.today");
  if (diff === 1) return t("day.yesterday");
  return new Intl.DateTimeFormat(getLang(), { day: "2-digit", month: "2-digit", year: "numeric" }).format(day);
}

/** Date and time, for lists. */
export function formatDateTime(ms) {
  return new Intl.DateTimeFormat(getLang(), { dateStyle: "short", timeStyle: "short" }).format(new Date(ms));
}

/** A random key (idempotency keys); works outside secure contexts too. */
export function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** "agora", "3 min", "1 h 05 min", "2 d 4 h": how long, for waiting times. */
export function formatDuration(ms) {
  const minutes = Math.max(0, Math.floor(ms / 60000));
  if (minutes < 1) return t("duration.now");
  if (minutes < 60) return t("duration.minutes", { m: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return t("duration.hours", { h: hours, m: String(minutes % 60).padStart(2, "0") });
  return t("duration.days", { d: Math.floor(hours / 24), h: hours % 24 });
}

/** 1536 → "1,5 KB" in the current language. */
export function formatBytes(bytes) {
  if (bytes == null || !Number.isFinite(Number(bytes))) return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return `${new Intl.NumberFormat(getLang(), { maximumFractionDigits: digits }).format(value)} ${units[unit]}`;
}

/** Today: "14:05"; before: the date. For list items. */
export function shortWhen(ms) {
  if (!ms) return "";
  const today = new Date().toDateString() === new Date(ms).toDateString();
  return today ? formatTime(ms) : formatDay(ms);
}

/** Calls `fn` once, `ms` after the last call; `.now()` runs it at once, `.cancel()` drops it. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn(...args);
    }, ms);
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  wrapped.now = (...args) => {
    wrapped.cancel();
    fn(...args);
  };
  wrapped.pending = () => timer !== null;
  return wrapped;
}

/** Sets a translated text on `el` (kept translated on language change), or clears it. */
export function setText(el, key, args) {
  if (!key) {
    delete el.dataset.i18n;
    delete el.dataset.i18nArgs;
    el.textContent = "";
    return;
  }
  el.dataset.i18n = key;
  if (args) el.dataset.i18nArgs = JSON.stringify(args);
  else delete el.dataset.i18nArgs;
  el.textContent = t(key, args);
}

/** Sets a literal (untranslated) text on `el`. */
export function setRawText(el, text) {
  delete el.dataset.i18n;
  delete el.dataset.i18nArgs;
  el.textContent = text || "";
}

/** A display name for a conversation's customer. */
export function contactName(c) {
  return c?.contact_name || formatPhone(c?.contact_wa_id) || "?";
}
