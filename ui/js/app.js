// The agents' web app: login, then a shell (top bar + left nav) with one section at a time,
// chosen by the URL hash (#/conversations, #/conversations/12, #/flows, #/flows/3).

import { ApiError, get, onUnauthorized, post, setCsrfToken } from "./api.js";
import { h, replace } from "./dom.js";
import { applyI18n, languageSelect, t } from "./i18n.js";
import { conversationsSection } from "./conversations.js";
import { icon } from "./icons.js";
import { flowsSection } from "./flows.js";

const root = document.getElementById("root");
let session = null; // {user, csrf_token}
let activeSection = null; // {name, destroy(), route(parts)}

const SECTIONS = [
  { name: "conversations", label: "nav.conversations", icon: "chat", create: conversationsSection },
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
  stopSection();
  session = null;
  setCsrfToken(null);
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

function startSession(me) {
  session = me;
  setCsrfToken(me.csrf_token);
  renderShell();
  window.addEventListener("hashchange", route);
  route();
}

async function logout() {
  try {
    await post("/api/auth/logout", {}, { quiet401: true });
  } catch {
    // The session is gone either way.
  }
  window.removeEventListener("hashchange", route);
  history.replaceState(null, "", "/app/");
  showLogin("login.loggedOut");
}

function visibleSections() {
  return SECTIONS.filter((s) => !s.roles || s.roles.includes(session.user.role));
}

function renderShell() {
  const user = session.user;
  const nav = h(
    "nav",
    { class: "side-nav", "aria-label": "Menu" },
    visibleSections().map((s) =>
      h(
        "a",
        { href: `#/${s.name}`, class: "nav-link", dataset: { nav: s.name } },
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
  const top = h(
    "header",
    { class: "top-bar" },
    h("div", { class: "top-brand" }, h("span", { class: "brand-mark", text: "A" }), h("span", { class: "brand-name", i18n: "app.name" })),
    h("div", { class: "top-spacer" }),
    h(
      "div",
      { class: "top-user" },
      h("span", { class: "user-name", id: "user-name", text: user.name || user.email }),
      h("span", { class: "user-role", i18n: `role.${user.role}` }),
    ),
    languageSelect(),
    h("button", { type: "button", id: "logout", class: "btn btn-ghost", i18n: "top.logout", on: { click: logout } }),
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
