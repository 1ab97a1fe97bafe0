// What the signed-in person may do beyond their role (GET /api/me/permissions): manage templates,
// send a template, run broadcasts, schedule messages. Read once per session; the menu, the admin
// tabs and the desk's template and scheduling actions ask `can()`. The server checks every call
// anyway: this only hides what would be refused.

import { get } from "./api.js";

let granted = new Set();

/** Reads the permissions of the session (none when the server does not answer). */
export async function loadMyPermissions() {
  try {
    const data = await get("/api/me/permissions");
    const list = Array.isArray(data) ? data : data?.permissions || [];
    granted = new Set(list.map((p) => (typeof p === "string" ? p : p?.key)).filter(Boolean));
  } catch {
    granted = new Set();
  }
  return granted;
}

export function clearMyPermissions() {
  granted = new Set();
}

/** Whether the session holds `permission` ("manage_templates", "send_template", ...). */
export function can(permission) {
  return granted.has(permission);
}
