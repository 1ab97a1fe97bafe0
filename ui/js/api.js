// The JSON API client: same-origin session cookie, the CSRF header on every non-GET, errors as
// `ApiError` with the server's code and message.

import { t } from "./i18n.js";

let csrfToken = null;
const unauthorizedHandlers = new Set();

export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** Called when a request answers 401 (the session ended). */
export function onUnauthorized(fn) {
  unauthorizedHandlers.add(fn);
}

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.body = body;
  }

  /** A sentence for the user, in the current language. */
  describe() {
    if (this.status === 0) return t("error.network");
    if (this.status === 403) return t("error.forbidden");
    if (this.status === 404) return t("error.notFound");
    return t("error.unexpected", { status: this.status, message: this.message });
  }
}

/**
 * `method` and `path` as in HTTP; `body` is JSON-encoded unless it is a FormData. Resolves to the
 * parsed JSON (or null), rejects with ApiError.
 */
export async function api(method, path, body, { quiet401 = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, "network", e?.message || "network error");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && typeof data.error === "object" ? data.error : null;
    const message = error?.message || (typeof data?.error === "string" ? data.error : "") || text || response.statusText;
    const err = new ApiError(response.status, error?.code, message, data);
    if (response.status === 401 && !quiet401) for (const fn of unauthorizedHandlers) fn(err);
    throw err;
  }
  return data;
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body, options) => api("POST", path, body ?? {}, options);
export const put = (path, body, options) => api("PUT", path, body ?? {}, options);
