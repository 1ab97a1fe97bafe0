// Changing one's password (POST /api/auth/password); forced after an admin's reset.

import { ApiError, describe, post, setCsrfToken } from "./api.js";
import { h, setRawText, setText } from "./dom.js";
import { cancelButton, openDialog } from "./dialog.js";

const MIN_LENGTH = 8;

/** `forced`: the dialog cannot be dismissed until the password changed. `onDone()` afterwards. */
export function openPasswordDialog({ forced = false, onDone } = {}) {
  let dialog = null;
  const current = h("input", { id: "password-current", type: "password", autocomplete: "current-password", required: true });
  const next = h("input", { id: "password-new", type: "password", autocomplete: "new-password", minlength: MIN_LENGTH, required: true });
  const confirm = h("input", { id: "password-confirm", type: "password", autocomplete: "new-password", required: true });
  const error = h("div", { id: "password-error", class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", id: "password-submit", class: "btn btn-primary", i18n: "password.submit" });

  async function onSubmit() {
    setText(error, null);
    if (!current.value) return setText(error, "password.currentMissing");
    if (next.value.length < MIN_LENGTH) return setText(error, "password.tooShort", { n: MIN_LENGTH });
    if (next.value !== confirm.value) return setText(error, "password.mismatch");
    if (next.value === current.value) return setText(error, "password.same");
    submit.disabled = true;
    try {
      const answer = await post("/api/auth/password", { current_password: current.value, new_password: next.value }, { quiet401: true });
      // The server ended every session and gave this tab a new one, with a new CSRF token.
      setCsrfToken(answer?.csrf_token);
      dialog.close();
      onDone?.();
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403 || e.code === "invalid_password" || e.code === "wrong_password")) {
        setText(error, "password.wrongCurrent");
      } else {
        setRawText(error, describe(e));
      }
      submit.disabled = false;
    }
  }

  dialog = openDialog({
    id: "password-dialog",
    title: forced ? "password.forcedTitle" : "password.title",
    forced,
    onSubmit,
    body: [
      forced ? h("p", { class: "notice", i18n: "password.forcedText" }) : null,
      h("label", { for: "password-current", i18n: forced ? "password.temporary" : "password.current" }),
      current,
      h("label", { for: "password-new", i18n: "password.new" }),
      next,
      h("p", { class: "muted small", i18n: "password.rule", i18nArgs: { n: MIN_LENGTH } }),
      h("label", { for: "password-confirm", i18n: "password.confirm" }),
      confirm,
      error,
    ],
    actions: [forced ? null : cancelButton(() => dialog, "password-cancel"), submit],
  });
  return dialog;
}
