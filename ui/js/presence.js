// The presence switch in the top bar: Disponível, Em pausa (one option per pause reason), Offline.
// Presence is explicit (PUT /api/presence); the server may still set it (offline after every tab
// was closed for a while), which arrives as a presence.changed event.

import { describe, get, put } from "./api.js";
import { h, replace } from "./dom.js";
import { onLangChange, t } from "./i18n.js";
import { onEvent, onReload } from "./live.js";

/** `user` from /api/auth/me (its `presence` and `pause_reason` when the server gives them). Returns {el, destroy()}. */
export function presenceSwitch(user) {
  const select = h("select", { id: "presence-select", class: "presence-select", i18nAriaLabel: "presence.label", i18nTitle: "presence.label" });
  const dot = h("span", { class: "presence-dot", "aria-hidden": "true" });
  const error = h("span", { id: "presence-error", class: "presence-error", role: "alert" });
  const el = h("div", { id: "presence", class: "presence", dataset: { presence: user.presence || "unknown" } }, dot, select, error);

  let presence = user.presence || null; // null: not known yet (shown as such, never guessed)
  let reason = user.pause_reason || null;
  let reasons = [];

  function valueOf(p, r) {
    return p === "paused" ? `paused:${r || ""}` : p;
  }

  function render() {
    const paused = reasons.length ? reasons : [reason || t("presence.pausedDefault")];
    replace(
      select,
      h("option", { value: "available", text: t("presence.available") }),
      h(
        "optgroup",
        { label: t("presence.paused") },
        paused.map((r) => h("option", { value: `paused:${r}`, text: t("presence.pausedWith", { reason: r }) })),
      ),
      h("option", { value: "offline", text: t("presence.offline") }),
    );
    if (!presence) select.prepend(h("option", { value: "", text: t("presence.unknown"), disabled: true }));
    const current = presence ? valueOf(presence, reason) : "";
    if (presence && ![...select.options].some((o) => o.value === current)) {
      select.append(h("option", { value: current, text: t("presence.pausedWith", { reason: reason || "?" }) }));
    }
    select.value = current;
    el.dataset.presence = presence || "unknown";
  }

  async function change() {
    const [next, ...rest] = select.value.split(":");
    const nextReason = next === "paused" ? rest.join(":") : null;
    const body = next === "paused" ? { presence: next, reason: nextReason } : { presence: next };
    select.disabled = true;
    error.textContent = "";
    try {
      await put("/api/presence", body);
      presence = next;
      reason = nextReason;
    } catch (e) {
      error.textContent = describe(e);
    } finally {
      select.disabled = false;
      render();
    }
  }

  async function loadReasons() {
    try {
      const data = await get("/api/pause-reasons");
      reasons = Array.isArray(data?.reasons) ? data.reasons : [];
    } catch {
      reasons = [];
    }
    render();
  }

  /**
   * Re-reads my presence (at start, and after a reconnection: the server may have changed it):
   * /api/auth/me when it carries it, else my row of /api/users (admins, supervisors).
   */
  async function loadMine() {
    try {
      let mine = (await get("/api/auth/me"))?.user;
      if (mine?.presence === undefined && user.role !== "agent") {
        mine = ((await get("/api/users"))?.users || []).find((u) => u.id === user.id);
      }
      if (mine?.presence) {
        presence = mine.presence;
        reason = mine.pause_reason || null;
        render();
      }
    } catch {
      // The next event will tell.
    }
  }

  select.addEventListener("change", change);
  // Pause reasons may have been edited by an admin meanwhile: re-read them now and then.
  let reasonsAt = Date.now();
  select.addEventListener("focus", () => {
    if (Date.now() - reasonsAt > 60000) {
      reasonsAt = Date.now();
      loadReasons();
    }
  });
  const offs = [
    onLangChange(render),
    onEvent((ev) => {
      const p = ev.payload || {};
      if (ev.kind === "presence.changed" && p.user_id === user.id) {
        presence = p.presence || presence;
        reason = p.pause_reason ?? p.reason ?? null;
        render();
      }
    }),
    onReload(loadMine),
  ];
  render();
  loadReasons();
  if (user.presence === undefined) loadMine();
  return {
    el,
    destroy() {
      for (const off of offs) off();
    },
  };
}
