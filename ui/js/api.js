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
export async function api(method, path, body, { quiet401 = false, keepalive = false } = {}) {
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
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin", keepalive });
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
  if (!response.ok) throw failure(response.status, response.statusText, text, data, quiet401);
  return data;
}

function failure(status, statusText, text, data, quiet401) {
  const error = data && typeof data.error === "object" ? data.error : null;
  const message = error?.message || (typeof data?.error === "string" ? data.error : "") || text || statusText;
  const err = new ApiError(status, error?.code, message, data);
  if (status === 401 && !quiet401) for (const fn of unauthorizedHandlers) fn(err);
  return err;
}

/**
 * POSTs a FormData with upload progress (fetch has none): `onProgress(fraction)`. Resolves to the
 * parsed JSON, rejects with ApiError. `signal` aborts it.
 */
export function upload(path, form, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Accept", "application/json");
    if (csrfToken) xhr.setRequestHeader("X-CSRF-Token", csrfToken);
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) onProgress?.(ev.loaded / ev.total);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(failure(xhr.status, xhr.statusText, xhr.responseText, data, false));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "network error")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "aborted")));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(form);
  });
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body, options) => api("POST", path, body ?? {}, options);
export const put = (path, body, options) => api("PUT", path, body ?? {}, options);
export const patch = (path, body, options) => api("PATCH", path, body ?? {}, options);
export const del = (path, options) => api("DELETE", path, undefined, options);

/** A sentence for the user from any error (the server's message when it gave one). */
export function describe(e) {
  if (!(e instanceof ApiError)) return String(e?.message || e);
  if (e.status === 0 || e.status === 403 || e.status === 404) return e.describe();
  return e.body?.error?.message || e.describe();
}
