//! Templates (HSM) in a real browser (headless Chromium through chromedriver, with the helpers
//! and skip rules of `browser.rs`):
//!
//! - `the_composer_switches_to_a_template_when_the_window_is_closed`: Ana opens a conversation
//!   whose customer never wrote (the 24 h window is closed); the composer becomes the template
//!   mode by itself, offers the channel's approved template, she fills its variables, the
//!   WhatsApp preview shows the filled text, she sends, and the message appears in the thread as
//!   the customer sees it, with its delivery status; graph-sim got the template with her values.
//! - `the_template_editor_checks_the_name_in_portuguese`: the admin's template editor shows the
//!   server's pt-BR problem next to an invalid name as it is typed, clears it once the name is
//!   valid, and the live preview fills the body's variable with its example.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use store::auth::Role;

use crate::browser::{Chromedriver, Page, run_scenario};
use crate::desk::{agent, queue};
use crate::helpers::{Backend, PERSON_PASSWORD, Person, TestApp, WABA_ID, spawn_app_with};

const TEMPLATE: &str = "lembrete_fatura";
const BODY: &str = "Olá, {{1}}! Sua fatura de R$ {{2}} vence amanhã.";
const FILLED: &str = "Olá, Maria! Sua fatura de R$ 149,90 vence amanhã.";
/// A customer who never wrote: only a template may reach them.
const CUSTOMER: &str = "5511987650001";

/// An approved template known to graph-sim (Meta) and to Atende, as a sync leaves it; its id.
async fn approved_template(app: &TestApp) -> i64 {
    let components = json!([
        { "type": "BODY", "text": BODY, "example": { "body_text": [["Ana", "99,00"]] } },
        { "type": "FOOTER", "text": "Atende Cobrança" },
        { "type": "BUTTONS", "buttons": [{ "type": "QUICK_REPLY", "text": "Já paguei" }] },
    ]);
    let meta_id = app.sim.add_template(
        WABA_ID,
        TEMPLATE,
        "pt_BR",
        "UTILITY",
        "APPROVED",
        components.clone(),
    );
    let (record, _) = app
        .store
        .upsert_template(&store::templates::TemplateUpsert {
            waba_id: WABA_ID.into(),
            meta_id: Some(meta_id),
            name: TEMPLATE.into(),
            language: "pt_BR".into(),
            category: "UTILITY".into(),
            status: "APPROVED".into(),
            parameter_format: "POSITIONAL".into(),
            components: components.to_string(),
            quality: Some("GREEN".into()),
            rejected_reason: None,
            created_by: None,
            status_at: store::now_ms(),
        })
        .await
        .expect("store the template");
    record.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_composer_switches_to_a_template_when_the_window_is_closed() {
    const TEST: &str = "the_composer_switches_to_a_template_when_the_window_is_closed";
    let Some(driver) = Chromedriver::start_or_skip().await else {
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, |_| {})
        .await
        .expect("SQLite app");
    let cobranca = queue(&app, "cobranca", json!({})).await;
    let ana = agent(&app, "Ana", 3, &[cobranca]).await;
    let template_id = approved_template(&app).await;
    // Ana starts a conversation with a number that never wrote: hers, window closed.
    let (status, started) = ana
        .post("/api/conversations", &json!({ "wa_id": CUSTOMER }))
        .await;
    assert_eq!(status, 201, "{started}");
    let conversation_id = started["conversation"]["id"].as_i64().expect("id");
    let page = driver
        .open("ana", &app.address)
        .await
        .unwrap_or_else(|e| panic!("cannot open the browser: {e:#}"));
    run_scenario(
        TEST,
        &[&page],
        composer_scenario(&app, &ana, &page, conversation_id, template_id),
    )
    .await;
}

async fn composer_scenario(
    app: &TestApp,
    ana: &Person,
    page: &Page,
    conversation_id: i64,
    template_id: i64,
) -> anyhow::Result<()> {
    page.goto("/app/").await?;
    page.submit_login(&ana.email, PERSON_PASSWORD).await?;
    page.goto(&format!("/app/#/conversations/{conversation_id}"))
        .await?;

    // Nobody asked for it: the closed window turned the composer into the template mode, with
    // the channel's approved template, and the text row is gone.
    page.wait_for("#window-state[data-state=closed]").await?;
    page.wait_for("#composer-wrap[data-mode=template] #template-composer")
        .await?;
    let hidden = page
        .eval(
            "return document.querySelector('#composer-row').hidden;",
            vec![],
        )
        .await?;
    ensure!(
        hidden == json!(true),
        "the text row is hidden in template mode"
    );
    page.wait_value("#tplc-template", &template_id.to_string())
        .await?;

    // Before anything is filled, the preview shows Meta's examples and sending is not possible.
    page.wait_text("#tplc-preview [data-testid=template-body]", "Olá, Ana!")
        .await?;
    page.wait_for("#tplc-send[disabled]").await?;

    // {{1}}: free text instead of the (unknown) contact name; {{2}}: the amount.
    page.select("[data-testid=tplc-source][data-key='body.1']", "free")
        .await?;
    page.type_into("[data-testid=tplc-var][data-key='body.1']", "Maria")
        .await?;
    page.type_into("[data-testid=tplc-var][data-key='body.2']", "149,90")
        .await?;
    page.wait_text("#tplc-preview [data-testid=template-body]", FILLED)
        .await?;
    page.wait_text(
        "#tplc-preview [data-testid=template-footer]",
        "Atende Cobrança",
    )
    .await?;
    page.wait_text("#tplc-preview [data-testid=template-button]", "Já paguei")
        .await?;

    // Sent: the thread shows it as the customer sees it, and its delivery status follows.
    page.click("#tplc-send:not([disabled])").await?;
    let sent_row = "#messages [data-testid=message][data-author=you]";
    page.wait_text(
        &format!("{sent_row} [data-testid=template-message]"),
        FILLED,
    )
    .await?;
    page.wait_text(
        &format!("{sent_row} [data-testid=template-footer]"),
        "Atende Cobrança",
    )
    .await?;
    page.wait_text(
        &format!("{sent_row} [data-testid=template-button]"),
        "Já paguei",
    )
    .await?;
    page.wait_js(
        "the template's delivery status in the thread",
        "return [...document.querySelectorAll(arguments[0])].some(r => ['sent', 'delivered', 'read'].includes(r.dataset.status));",
        vec![json!(sent_row)],
    )
    .await?;
    page.wait_text("#tplc-error", "Modelo enviado.").await?;

    // What reached Meta: the template, in its language, with Ana's values in order.
    let sent = app.sim.wait_for_sent(1, Duration::from_secs(10)).await;
    let message = sent.first().context("graph-sim got no message")?;
    ensure!(message.kind() == "template", "sent {:?}", message.body);
    ensure!(
        message.body["template"]["name"] == TEMPLATE
            && message.body["template"]["language"]["code"] == "pt_BR",
        "sent {}",
        message.body
    );
    let parameters: Vec<Value> = message.body["template"]["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "body")
        .flat_map(|c| c["parameters"].as_array().cloned().unwrap_or_default())
        .map(|p| p["text"].clone())
        .collect();
    ensure!(
        parameters == vec![json!("Maria"), json!("149,90")],
        "body parameters {parameters:?}"
    );
    let stored = ana
        .get_ok(&format!("/api/conversations/{conversation_id}/messages"))
        .await;
    ensure!(
        stored["messages"].as_array().is_some_and(|ms| ms
            .iter()
            .any(|m| m["kind"] == "template" && m["template"]["rendered"]["body"] == FILLED)),
        "the stored message is the rendered template: {stored}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_editor_checks_the_name_in_portuguese() {
    const TEST: &str = "the_template_editor_checks_the_name_in_portuguese";
    let Some(driver) = Chromedriver::start_or_skip().await else {
        return;
    };
    let app = spawn_app_with(Backend::Sqlite, |_| {})
        .await
        .expect("SQLite app");
    let admin = app.person(Role::Admin, "Carla").await;
    let page = driver
        .open("admin", &app.address)
        .await
        .unwrap_or_else(|e| panic!("cannot open the browser: {e:#}"));
    run_scenario(TEST, &[&page], editor_scenario(&admin, &page)).await;
}

async fn editor_scenario(admin: &Person, page: &Page) -> anyhow::Result<()> {
    page.goto("/app/").await?;
    page.submit_login(&admin.email, PERSON_PASSWORD).await?;
    page.goto("/app/#/admin/templates").await?;
    page.click("#tpl-new").await?;

    // A name with capitals and a space: the server's pt-BR rule, next to the field, as typed.
    page.type_into("#tpl-name", "Lembrete Fatura").await?;
    let name_error = "[data-testid=tpl-field-error][data-field=name]";
    page.wait_text(
        name_error,
        "O nome aceita apenas letras minúsculas sem acento",
    )
    .await?;
    page.wait_for(".field.field-missing[data-field=name]")
        .await?;

    // The body's variable asks for its example, and the preview fills it in.
    page.type_into("#tpl-body", "Olá, {{1}}! Sua fatura vence amanhã.")
        .await?;
    page.type_into("[data-testid=tpl-body-example][data-variable='1']", "Ana")
        .await?;
    page.wait_text(
        "#tpl-preview [data-testid=template-body]",
        "Olá, Ana! Sua fatura vence amanhã.",
    )
    .await?;

    // A valid name: its problem goes away.
    page.replace_text("#tpl-name", "lembrete_fatura").await?;
    page.wait_js(
        "the name's problem to go away",
        "const e = document.querySelector(arguments[0]); return !!e && e.innerText.trim() === '';",
        vec![json!(name_error)],
    )
    .await?;
    page.wait_for("#tpl-check-state[data-state=ok]").await?;
    Ok(())
}
