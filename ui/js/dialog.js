// Modal dialogs on the native <dialog> element (Chromium and Firefox): a title, a body, buttons.

import { h } from "./dom.js";

/**
 * Opens a modal. `id` (for tests), `title` (i18n key) with `titleArgs`, `body` (nodes), `actions`
 * (nodes, usually buttons), `forced` (no close button, Escape does nothing), `wide`,
 * `onClose()`. `body` and `actions` may be wrapped in a <form> by passing `onSubmit`: Enter in a
 * field then submits. Returns {el, close()}.
 */
export function openDialog({ id, title, titleArgs, body = [], actions = [], forced = false, wide = false, onSubmit, onClose }) {
  const closeButton = forced
    ? null
    : h("button", { type: "button", class: "dialog-close", i18nAriaLabel: "dialog.close", i18nTitle: "dialog.close", text: "×" });
  const content = [h("div", { class: "dialog-body" }, body), h("div", { class: "dialog-actions" }, actions)];
  const inner = onSubmit
    ? h("form", { class: "dialog-form", novalidate: true, on: { submit: (ev) => (ev.preventDefault(), onSubmit(ev)) } }, content)
    : h("div", { class: "dialog-form" }, content);
  const el = h(
    "dialog",
    { id, class: `dialog${wide ? " dialog-wide" : ""}`, "aria-labelledby": id ? `${id}-title` : null, dataset: forced ? { forced: "true" } : {} },
    h("header", { class: "dialog-header" }, h("h2", { id: id ? `${id}-title` : null, i18n: title, i18nArgs: titleArgs }), closeButton),
    inner,
  );
  let closed = false;
  function close() {
    if (closed) return;
    closed = true;
    if (el.open) el.close();
    el.remove();
    onClose?.();
  }
  el.addEventListener("cancel", (ev) => {
    ev.preventDefault();
    if (!forced) close();
  });
  closeButton?.addEventListener("click", close);
  document.body.append(el);
  el.showModal();
  const first = el.querySelector("[autofocus], input:not([type=hidden]):not([disabled]), select, textarea");
  first?.focus();
  return { el, close };
}

/** A "Cancelar" button that closes `dialog` once it exists: `cancelButton(() => d)`. */
export function cancelButton(getDialog, id) {
  return h("button", { type: "button", id, class: "btn btn-ghost", i18n: "dialog.cancel", on: { click: () => getDialog()?.close() } });
}
