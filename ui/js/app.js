// The agents' web app: login, then a shell (top bar + left nav) with one section at a time,
// chosen by the URL hash (#/conversations, #/conversations/12, #/supervisor, #/admin/users,
// #/flows/3). The session starts the live connection (live.js) and the agent's work list
// (worklist.js), shared by the sections.

import { ApiError, get, onUnauthorized, post, setCsrfToken } from "./api.js";
import { h, replace } from "./dom.js";
import { applyI18n, languageSelect, onLangChange, t } from "./i18n.js";
import { deskSection } from "./desk.js";
import { supervisorSection } from "./supervisor.js";
import { adminSection, visibleAdminTabs } from "./admin.js";
import { broadcastsSection } from "./broadcasts.js";
import { can, clearMyPermissions, loadMyPermissions } from "./me.js";
import { icon } from "./icons.js";
import { flowsSection } from "./flows.js";
import { onStatus, startLive, stopLive } from "./live.js";
import { startWorklist, stopWorklist } from "./worklist.js";
import { presenceSwitch } from "./presence.js";
import { openPasswordDialog } from "./password.js";
import { renderTitle } from "./notify.js";

const root = document.getElementById("root");
let session = null; // {user, csrf_token}
let activeSection = null; // {name, destroy(), route(parts)}
let sessionOffs = []; // cleanups of the shell

const SECTIONS = [
  { name: "conversations", label: "nav.desk", icon: "chat", create: deskSection },
  { name: "supervisor", label: "nav.supervisor", icon: "monitor", create: supervisorSection, roles: ["supervisor", "admin"] },
  { name: "broadcasts", label: "nav.broadcasts", icon: "send", create: broadcastsSection, permission: "run_broadcasts" },
  { name: "admin", label: "nav.admin", icon: "settings", create: adminSection, visible: (user) => visibleAdminTabs(user).length > 0 },
  { name: "flows", label: "nav.flows", icon: "bot", create: flowsSection, roles: ["admin"] },
];

async function boot() {
  applyI18n(document);
  onUnauthorized(() => {
    if (session) showLogin("login.expired");
  });
  try {
    const me = await get("/api/auth/me", { quiet401: true });
    if (me?.user) {
      startSession(me);
      return;
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) {
      showLogin(null, e instanceof ApiError ? e.describe() : String(e));
      return;
    }
  }
  showLogin();
}

function showLogin(noticeKey = null, errorText = null) {
  endSession();
  const email = h("input", { id: "login-email", type: "email", name: "email", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { id: "login-password", type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("div", { id: "login-error", class: "form-error", role: "alert" });
  if (errorText) error.textContent = errorText;
  const submit = h("button", { id: "login-submit", type: "submit", class: "btn btn-primary btn-block", i18n: "login.submit" });
  const form = h(
    "form",
    { class: "login-card", novalidate: true, on: { submit: (ev) => login(ev, email, password, submit, error) } },
    h("div", { class: "login-brand" }, h("span", { class: "brand-mark", text: "A" }), h("span", { class: "brand-name", i18n: "app.name" })),
    h("h1", { i18n: "login.title" }),
    h("p", { class: "muted", i18n: "app.tagline" }),
    noticeKey ? h("div", { class: "notice", i18n: noticeKey }) : null,
    h("label", { for: "login-email", i18n: "login.email" }),
    email,
    h("label", { for: "login-password", i18n: "login.password" }),
    password,
    error,
    submit,
    h("div", { class: "login-footer" }, languageSelect("login-lang")),
  );
  replace(root, h("main", { class: "login-page" }, form));
  email.focus();
}

async function login(ev, email, password, submit, error) {
  ev.preventDefault();
  error.textContent = "";
  error.removeAttribute("data-i18n");
  if (!email.value.trim() || !password.value) {
    error.dataset.i18n = "login.error.missing";
    error.textContent = t("login.error.missing");
    return;
  }
  submit.disabled = true;
  submit.dataset.i18n = "login.submitting";
  submit.textContent = t("login.submitting");
  try {
    const result = await post("/api/auth/login", { email: email.value.trim(), password: password.value }, { quiet401: true });
    startSession(result);
  } catch (e) {
    const key = e.status === 401 ? "login.error.invalid" : e.status === 429 ? "login.error.throttled" : null;
    if (key) {
      error.dataset.i18n = key;
      error.textContent = t(key);
    } else {
      error.textContent = e instanceof ApiError ? e.describe() : String(e);
    }
    password.select();
  } finally {
    submit.disabled = false;
    submit.dataset.i18n = "login.submit";
    submit.textContent = t("login.submit");
  }
}

async function startSession(me) {
  session = me;
  setCsrfToken(me.csrf_token);
  // The menu depends on them; a server that does not answer leaves the role's own sections.
  if (!me.user.must_change_password) await loadMyPermissions();
  if (session !== me) return;
  renderShell();
  // The API refuses everything but the password change until it is done.
  if (me.user.must_change_password) forcePasswordChange(startWork);
  else startWork();
}

function startWork() {
  window.addEventListener("hashchange", route);
  startLive();
  startWorklist();
  route();
}

function endSession() {
  stopSection();
  stopWorklist();
  stopLive();
  for (const off of sessionOffs) off();
  sessionOffs = [];
  document.querySelectorAll("dialog").forEach((d) => d.remove());
  window.removeEventListener("hashchange", route);
  session = null;
  clearMyPermissions();
  setCsrfToken(null);
  renderTitle();
}

/** After an admin's reset: nothing else until the password changed. */
function forcePasswordChange(then) {
  openPasswordDialog({
    forced: true,
    onDone: () => {
      session.user.must_change_password = false;
      loadMyPermissions().finally(() => {
        renderShell();
        then();
      });
    },
  });
}

async function logout() {
  stopSection(); // saves what a form has pending while the session still exists
  try {
    await post("/api/auth/logout", {}, { quiet401: true });
  } catch {
    // The session is gone either way.
  }
  history.replaceState(null, "", "/app/");
  showLogin("login.loggedOut");
}

function visibleSections() {
  return SECTIONS.filter((s) => {
    if (s.visible) return s.visible(session.user);
    if (s.permission) return can(s.permission);
    return !s.roles || s.roles.includes(session.user.role);
  });
}

function renderShell() {
  // Drawn again once the permissions are known (after a forced password change).
  for (const off of sessionOffs) off();
  sessionOffs = [];
  const user = session.user;
  const nav = h(
    "nav",
    { class: "side-nav", "aria-label": "Menu" },
    visibleSections().map((s) =>
      h(
        "a",
        { href: `#/${s.name}`, class: "nav-link", dataset: { nav: s.name }, i18nTitle: s.label },
        h("span", { class: "nav-icon" }, icon(s.icon)),
        h("span", { i18n: s.label }),
      ),
    ),
    h("div", { class: "nav-spacer" }),
    h(
      "a",
      { href: "/simulator", target: "_blank", rel: "noopener", class: "nav-link nav-secondary", dataset: { nav: "simulator" } },
      h("span", { class: "nav-icon" }, icon("phone")),
      h("span", { i18n: "nav.simulator" }),
    ),
  );
  const presence = presenceSwitch(user);
  const liveStatus = h("span", { id: "live-status", class: "live-status", dataset: { connected: "false" } });
  sessionOffs.push(
    presence.destroy,
    onStatus((up) => {
      liveStatus.dataset.connected = String(up);
      liveStatus.dataset.i18n = up ? "live.on" : "live.off";
      liveStatus.dataset.i18nTitle = up ? "live.onTitle" : "live.offTitle";
      liveStatus.textContent = t(liveStatus.dataset.i18n);
      liveStatus.title = t(liveStatus.dataset.i18nTitle);
    }),
    onLangChange(renderTitle),
  );
  const top = h(
    "header",
    { class: "top-bar" },
    h("div", { class: "top-brand" }, h("span", { class: "brand-mark", text: "A" }), h("span", { class: "brand-name", i18n: "app.name" })),
    liveStatus,
    h("div", { class: "top-spacer" }),
    presence.el,
    h(
      "div",
      { class: "top-user" },
      h("span", { class: "user-name", id: "user-name", text: user.name || user.email }),
      h("span", { class: "user-role", i18n: `role.${user.role}` }),
    ),
    languageSelect(),
    h("button", { type: "button", id: "password-button", class: "btn btn-ghost btn-small", i18n: "top.password", on: { click: () => openPasswordDialog() } }),
    h("button", { type: "button", id: "logout", class: "btn btn-ghost btn-small", i18n: "top.logout", on: { click: logout } }),
  );
  const main = h("main", { id: "section", class: "section" });
  replace(root, h("div", { class: "shell" }, top, h("div", { class: "shell-body" }, nav, main)));
}

function route() {
  if (!session) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const allowed = visibleSections();
  const section = allowed.find((s) => s.name === parts[0]) || allowed[0];
  for (const link of root.querySelectorAll(".nav-link[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === section.name);
  }
  if (activeSection?.name !== section.name) {
    stopSection();
    const container = document.getElementById("section");
    activeSection = { name: section.name, ...section.create(container, { user: session.user }) };
  }
  activeSection.route?.(parts.slice(1));
}

function stopSection() {
  activeSection?.destroy?.();
  activeSection = null;
}

boot();
