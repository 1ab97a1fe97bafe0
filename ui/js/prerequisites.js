// Admin → Canais → "Pré-requisitos": what a channel needs before templates can be used, checked
// against Meta when the dialog opens (GET /api/channels/{id}/prerequisites): the token's
// whatsapp_business_management permission, the WABA answering, the app subscribed to the WABA,
// the number's messaging limit tier and quality rating. Each check shows ✓ or ✗, the pt-BR
// explanation and, when it fails, the step that fixes it.

import { describe, get, post } from "./api.js";
import { formatDateTime, h, replace, setRawText } from "./dom.js";
import { has, t } from "./i18n.js";
import { openDialog } from "./dialog.js";

export function prerequisitesButton(channel) {
  return h("button", {
    type: "button",
    class: "btn btn-ghost btn-small",
    dataset: { testid: "channel-prerequisites", id: channel.id },
    i18n: "prereq.open",
    on: { click: () => openPrerequisites(channel) },
  });
}

export function openPrerequisites(channel) {
  const body = h("div", { id: "prereq-body", class: "prereq-body" }, h("p", { class: "muted small", i18n: "prereq.checking" }));
  const again = h("button", { type: "button", id: "prereq-again", class: "btn btn-ghost", i18n: "prereq.again" });
  let dialog = null;
  dialog = openDialog({
    id: "prereq-dialog",
    title: "prereq.title",
    titleArgs: { name: channel.name || `#${channel.id}` },
    wide: false,
    body: [body],
    actions: [again, h("button", { type: "button", class: "btn btn-primary", i18n: "dialog.close", on: { click: () => dialog.close() } })],
  });
  async function run() {
    again.disabled = true;
    replace(body, h("p", { class: "muted small", i18n: "prereq.checking" }));
    try {
      show(await get(`/api/channels/${channel.id}/prerequisites`));
    } catch (e) {
      replace(body, h("p", { class: "form-error" }));
      setRawText(body.firstChild, describe(e));
    } finally {
      again.disabled = false;
    }
  }
  function show(data) {
    const nodes = renderChecks(data);
    // The one step Atende can take itself: subscribing the app to the WABA's webhooks.
    if ((data?.checks || []).some((c) => c.key === "app_subscribed" && !c.ok)) {
      const subscribe = h("button", { type: "button", id: "prereq-subscribe", class: "btn btn-secondary btn-small", i18n: "prereq.subscribe" });
      subscribe.addEventListener("click", async () => {
        subscribe.disabled = true;
        try {
          show(await post(`/api/channels/${channel.id}/subscribe`, {}));
        } catch (e) {
          subscribe.disabled = false;
          subscribe.after(h("div", { class: "form-error small", text: describe(e) }));
        }
      });
      nodes.push(h("div", { class: "dialog-actions" }, subscribe));
    }
    replace(body, nodes);
  }
  again.addEventListener("click", run);
  run();
}

function renderChecks(data) {
  const checks = data?.checks || [];
  const ok = checks.every((c) => c.ok);
  const tier = data?.tier ?? data?.messaging_limit_tier;
  const quality = data?.quality ?? data?.quality_rating;
  return [
    h("div", { class: `alert ${ok ? "alert-ok" : "alert-warning"}`, id: "prereq-summary", dataset: { ok: String(ok) }, i18n: ok ? "prereq.allOk" : "prereq.missing", i18nArgs: { n: checks.filter((c) => !c.ok).length } }),
    h(
      "ul",
      { class: "prereq-list", id: "prereq-list" },
      checks.map((c) =>
        h(
          "li",
          { class: `prereq-item ${c.ok ? "ok" : "fail"}`, dataset: { testid: "prereq-check", key: c.key, ok: String(Boolean(c.ok)) } },
          h("span", { class: "prereq-mark", text: c.ok ? "✓" : "✗", "aria-label": t(c.ok ? "prereq.ok" : "prereq.fail") }),
          h(
            "div",
            { class: "prereq-text" },
            h("div", { class: "prereq-title", ...(has(`prereq.key.${c.key}`) ? { i18n: `prereq.key.${c.key}` } : { text: c.key }) }),
            c.message_pt || c.message ? h("div", { class: "small", text: c.message_pt || c.message }) : null,
            !c.ok && (c.fix_pt || c.fix) ? h("div", { class: "small prereq-fix" }, h("strong", { i18n: "prereq.fix" }), " ", h("span", { text: c.fix_pt || c.fix })) : null,
          ),
        ),
      ),
    ),
    h(
      "dl",
      { class: "prereq-facts" },
      h("dt", { i18n: "prereq.tier" }),
      h("dd", { id: "prereq-tier", ...(tier && has(`prereq.tierName.${tier}`) ? { i18n: `prereq.tierName.${tier}` } : { text: tier || "—" }) }),
      h("dt", { i18n: "prereq.quality" }),
      h("dd", { id: "prereq-quality", ...(quality && has(`tpl.quality.${String(quality).toUpperCase()}`) ? { i18n: `tpl.quality.${String(quality).toUpperCase()}` } : { text: quality || "—" }) }),
      data?.messaging_limit != null ? [h("dt", { i18n: "prereq.limit" }), h("dd", { text: String(data.messaging_limit) })] : null,
      data?.checked_at ? [h("dt", { i18n: "prereq.checkedAt" }), h("dd", { text: formatDateTime(data.checked_at) })] : null,
    ),
  ];
}
