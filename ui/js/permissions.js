// Admin → Permissões: which role may do what beyond its role's basics (manage templates, send a
// template, run broadcasts, schedule messages), as a matrix of checkboxes saved with
// PUT /api/permissions. The admin column is fixed (always everything: nobody can lock the admins
// out).

import { describe, get, put } from "./api.js";
import { h, replace, setRawText, setText } from "./dom.js";
import { has, onLangChange } from "./i18n.js";
import { loadMyPermissions } from "./me.js";

const ROLES = ["admin", "supervisor", "agent"];

export function permissionsScreen(container) {
  const status = h("div", { id: "perm-status", class: "small", role: "status" });
  const table = h("table", { id: "perm-table", class: "data-table perm-table" });
  const save = h("button", { type: "submit", id: "perm-save", class: "btn btn-primary", i18n: "admin.save" });
  const form = h(
    "form",
    { class: "admin-form narrow perm-form", novalidate: true },
    h("h2", { i18n: "perm.title" }),
    h("p", { class: "muted small", i18n: "perm.intro" }),
    table,
    h("p", { class: "muted small", i18n: "perm.adminFixed" }),
    status,
    h("div", { class: "dialog-actions" }, save),
  );
  replace(container, h("div", { class: "admin-screen" }, form));

  let all = []; // [{key, label_pt}]
  let roles = {}; // role -> Set of keys
  let stopped = false;

  function label(p) {
    const key = `perm.${p.key}`;
    return has(key) ? { i18n: key } : { text: p.label_pt || p.key };
  }

  function render() {
    replace(
      table,
      h("thead", {}, h("tr", {}, h("th", { i18n: "perm.permission" }), ROLES.map((r) => h("th", { class: "perm-role", i18n: `role.${r}` })))),
      h(
        "tbody",
        {},
        all.map((p) =>
          h(
            "tr",
            { dataset: { testid: "perm-row", permission: p.key } },
            h("td", {}, h("div", label(p)), has(`perm.${p.key}.hint`) ? h("div", { class: "muted small", i18n: `perm.${p.key}.hint` }) : null),
            ROLES.map((r) => {
              const box = h("input", {
                type: "checkbox",
                id: `perm-${r}-${p.key}`,
                dataset: { testid: "perm-box", role: r, permission: p.key },
                "aria-label": `${r} ${p.key}`,
              });
              box.checked = r === "admin" || roles[r]?.has(p.key);
              box.disabled = r === "admin";
              box.addEventListener("change", () => {
                roles[r] = roles[r] || new Set();
                if (box.checked) roles[r].add(p.key);
                else roles[r].delete(p.key);
                setText(status, null);
              });
              return h("td", { class: "perm-cell" }, box);
            }),
          ),
        ),
      ),
    );
  }

  async function load() {
    try {
      const data = await get("/api/permissions");
      if (stopped) return;
      all = (data?.all || []).map((p) => (typeof p === "string" ? { key: p } : p));
      roles = Object.fromEntries(ROLES.map((r) => [r, new Set(data?.roles?.[r] || [])]));
      render();
    } catch (e) {
      if (!stopped) setRawText(status, describe(e));
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    try {
      const body = { roles: Object.fromEntries(ROLES.filter((r) => r !== "admin").map((r) => [r, [...(roles[r] || [])]])) };
      const data = await put("/api/permissions", body);
      if (data?.roles) roles = Object.fromEntries(ROLES.map((r) => [r, new Set(data.roles[r] || [])]));
      render();
      status.className = "small alert alert-ok";
      setText(status, "admin.saved");
      loadMyPermissions();
    } catch (e) {
      status.className = "small form-error";
      setRawText(status, describe(e));
    } finally {
      save.disabled = false;
    }
  });

  const offLang = onLangChange(() => all.length && render());
  load();
  return {
    destroy() {
      stopped = true;
      offLang();
    },
  };
}
