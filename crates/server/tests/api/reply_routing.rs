//! The HSM response queue: a customer's reply to a template skips the bot and lands in the
//! channel's HSM queue, or with the agent who sent it (a fallback queue when they are offline
//! or full), with the protocol number sent first; after the route's time the bot answers as
//! usual; quick-reply taps are recorded and may be answered without a person.

use graph_sim::Customer;
use serde_json::{Value, json};

use crate::desk::{agent, conversation, queue, wait_assigned_to};
use crate::helpers::{TestApp, wait_until};
use crate::hsm_send::{TIMEOUT, reminder_components, seed_template, wait_templates_to};
use crate::on_both_backends;

on_both_backends!(
    a_reply_lands_in_the_hsm_queue_without_the_bot,
    a_reply_goes_back_to_the_sending_agent_or_the_fallback_queue,
    after_the_route_expires_the_bot_answers,
    quick_replies_are_answered_or_routed,
);

/// The default bot flow, so that skipping it shows.
async fn install_bot(app: &TestApp) {
    let definition = serde_json::to_value(server::workers::bot::default_flow()).unwrap();
    let resp = app
        .api_post(
            "/api/flows",
            &json!({ "name": "Robô", "definition": definition }),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

async fn patch_channel(app: &TestApp, body: Value) {
    let resp = app
        .http
        .patch(format!("{}/api/channels/{}", app.address, app.channel_id))
        .bearer_auth(&app.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// The admin's integration sends `lembrete` to `to`; returns the conversation.
async fn send_reminder(app: &TestApp, template_id: i64, to: &str, route: Value) -> Value {
    let resp = app
        .api_post(
            "/api/messages",
            &json!({ "to": to, "type": "template", "template_id": template_id,
                     "variables": {"1": "Ana", "2": "R$ 10,00"}, "reply_route": route }),
        )
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["conversation"].clone()
}

async fn say(app: &TestApp, wa_id: &str, text: &str) {
    let (_, payload) = app.builder.text(&Customer::new(wa_id, "Cliente"), text);
    assert_eq!(app.post_webhook(&payload).await.status(), 200);
    app.inbox_drained().await;
}

/// Texts sent to a customer (text messages and interactive bodies), in order.
fn texts_to(app: &TestApp, wa_id: &str) -> Vec<String> {
    app.sim
        .sent_messages()
        .into_iter()
        .filter(|m| m.to == wa_id && m.kind() != "template")
        .map(|m| {
            m.body["text"]["body"]
                .as_str()
                .or(m.body["interactive"]["body"]["text"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn wait_text_to(app: &TestApp, wa_id: &str, needle: &str) {
    wait_until(&format!("{needle:?} sent to {wa_id}"), TIMEOUT, || async {
        texts_to(app, wa_id).iter().any(|t| t.contains(needle))
    })
    .await;
}

async fn wait_conversation(
    app: &TestApp,
    id: i64,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(what, TIMEOUT, || async { ok(&conversation(app, id).await) }).await;
    conversation(app, id).await
}

async fn routes_of(
    app: &TestApp,
    conversation_id: i64,
) -> Vec<store::reply_routes::ReplyRouteRecord> {
    app.store
        .reply_routes_of_conversation(conversation_id)
        .await
        .unwrap()
}

/// Makes every route expire now (as if its time had passed).
async fn expire_routes(app: &TestApp) {
    let sql = "UPDATE reply_routes SET expires_at = 1 WHERE answered_at IS NULL";
    if app.database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

async fn a_reply_lands_in_the_hsm_queue_without_the_bot(app: TestApp) {
    install_bot(&app).await;
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let billing = queue(&app, "cobranca", json!({})).await;
    patch_channel(
        &app,
        json!({ "hsm_queue_id": billing, "hsm_reply_minutes": 60 }),
    )
    .await;
    let wa_id = "5511987651001";
    let c = send_reminder(&app, template_id, wa_id, Value::Null).await;
    let id = c["id"].as_i64().unwrap();
    assert_eq!(
        (c["state"].as_str(), c["queue_id"].as_i64()),
        (Some("awaiting_reply"), Some(billing))
    );
    wait_templates_to(&app, wa_id, 1).await;
    let route = &routes_of(&app, id).await[0];
    assert_eq!(
        (route.target.as_str(), route.queue_id),
        ("queue", Some(billing))
    );
    let ttl = route.expires_at - route.created_at;
    assert!((59 * 60_000..=61 * 60_000).contains(&ttl), "{ttl}");

    say(&app, wa_id, "Oi, recebi o aviso").await;
    let c = wait_conversation(&app, id, "the reply queued in cobranca", |c| {
        c["state"] == "queued"
    })
    .await;
    assert_eq!(c["queue_id"], billing, "{c}");
    let protocol = c["protocol"].as_str().unwrap().to_owned();
    wait_text_to(
        &app,
        wa_id,
        &format!("Seu número de protocolo é {protocol}"),
    )
    .await;
    // The bot never spoke; the template opens the conversation's history.
    let messages = app
        .api_get(&format!("/api/conversations/{id}/messages?limit=200"))
        .await["messages"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(messages[0]["kind"], "template", "{messages:?}");
    assert_eq!(messages[1]["direction"], "in");
    assert!(
        messages.iter().all(|m| m["author"] != "bot"),
        "{messages:?}"
    );
    assert_eq!(
        texts_to(&app, wa_id).len(),
        1,
        "only the protocol: {:?}",
        texts_to(&app, wa_id)
    );
    let route = &routes_of(&app, id).await[0];
    assert_eq!(route.outcome.as_deref(), Some("queued"));
    assert!(route.answered_at.is_some());
    // A member of the queue gets it as any waiting conversation.
    let olga = agent(&app, "Olga", 2, &[billing]).await;
    olga.set_presence("available").await;
    wait_assigned_to(&app, id, olga.id).await;
    // A second message of the customer is an ordinary one: nothing changes.
    say(&app, wa_id, "Ainda está aí?").await;
    assert_eq!(conversation(&app, id).await["agent_id"], olga.id);
}

async fn a_reply_goes_back_to_the_sending_agent_or_the_fallback_queue(app: TestApp) {
    install_bot(&app).await;
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let sales = queue(&app, "vendas", json!({})).await;
    let back = queue(&app, "retorno", json!({})).await;
    patch_channel(&app, json!({ "hsm_fallback_queue_id": back })).await;
    let olga = agent(&app, "Olga", 1, &[sales]).await;
    olga.set_presence("available").await;
    let send = |to: &'static str| {
        let olga = &olga;
        async move {
            let (status, body) = olga
                .post(
                    "/api/messages",
                    &json!({ "to": to, "type": "template", "template_id": template_id,
                             "variables": {"1": "Ana", "2": "R$ 10,00"},
                             "reply_route": {"target": "agent"} }),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            body["conversation"]["id"].as_i64().unwrap()
        }
    };
    // Her customer answers while she is available: straight to her ("carteira").
    let first = send("5511987651011").await;
    wait_templates_to(&app, "5511987651011", 1).await;
    say(&app, "5511987651011", "Pode falar").await;
    wait_assigned_to(&app, first, olga.id).await;
    assert_eq!(
        routes_of(&app, first).await[0].outcome.as_deref(),
        Some("waiting_agent")
    );
    wait_text_to(&app, "5511987651011", "Seu número de protocolo é").await;

    // At her limit (1): the next answer waits in the fallback queue, not for her.
    let second = send("5511987651012").await;
    wait_templates_to(&app, "5511987651012", 1).await;
    say(&app, "5511987651012", "Oi").await;
    let c = wait_conversation(&app, second, "queued in the fallback", |c| {
        c["state"] == "queued"
    })
    .await;
    assert_eq!(
        (c["queue_id"].as_i64(), c["waiting_agent_id"].as_i64()),
        (Some(back), None),
        "{c}"
    );
    assert_eq!(
        routes_of(&app, second).await[0].outcome.as_deref(),
        Some("fallback")
    );

    // Offline: the fallback queue too.
    olga.set_presence("offline").await;
    let third = send("5511987651013").await;
    wait_templates_to(&app, "5511987651013", 1).await;
    say(&app, "5511987651013", "Oi").await;
    let c = wait_conversation(&app, third, "queued in the fallback", |c| {
        c["state"] == "queued"
    })
    .await;
    assert_eq!(c["queue_id"], back, "{c}");
    assert_eq!(c["agent_id"], Value::Null);
    // Someone of the fallback queue takes them.
    let paulo = agent(&app, "Paulo", 5, &[back]).await;
    paulo.set_presence("available").await;
    wait_assigned_to(&app, second, paulo.id).await;
    wait_assigned_to(&app, third, paulo.id).await;
}

async fn after_the_route_expires_the_bot_answers(app: TestApp) {
    install_bot(&app).await;
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let billing = queue(&app, "cobranca", json!({})).await;
    patch_channel(&app, json!({ "hsm_queue_id": billing })).await;
    let wa_id = "5511987651021";
    let c = send_reminder(&app, template_id, wa_id, Value::Null).await;
    let id = c["id"].as_i64().unwrap();
    wait_templates_to(&app, wa_id, 1).await;
    expire_routes(&app).await;
    // The sweep closes the unanswered conversation (it was never in a worklist).
    let closed = wait_conversation(&app, id, "the unanswered conversation closed", |c| {
        c["state"] == "closed"
    })
    .await;
    assert_eq!(closed["close_reason"], "no_reply");
    assert_eq!(
        routes_of(&app, id).await[0].outcome.as_deref(),
        Some("expired")
    );
    // The customer's late answer meets the bot in a fresh conversation.
    say(&app, wa_id, "Oi").await;
    let list = app.api_get("/api/conversations?open=true&limit=100").await;
    let fresh = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contact_wa_id"] == wa_id)
        .cloned()
        .expect("a new conversation");
    assert_ne!(fresh["id"], id);
    assert_eq!(fresh["state"], "bot");
    wait_until("the bot's greeting", TIMEOUT, || async {
        texts_to(&app, wa_id).len() >= 2
    })
    .await;
    assert!(texts_to(&app, wa_id)[0].contains(fresh["protocol"].as_str().unwrap()));

    // A template sent without routing: the answer meets the bot in the same conversation.
    let plain = "5511987651022";
    let c = send_reminder(&app, template_id, plain, json!({ "target": "none" })).await;
    let id = c["id"].as_i64().unwrap();
    wait_templates_to(&app, plain, 1).await;
    say(&app, plain, "Oi").await;
    let c = wait_conversation(&app, id, "the bot takes the answer", |c| {
        c["state"] == "bot"
    })
    .await;
    wait_until("the bot's greeting", TIMEOUT, || async {
        texts_to(&app, plain).len() >= 2
    })
    .await;
    assert!(texts_to(&app, plain)[0].contains(c["protocol"].as_str().unwrap()));
    assert_eq!(routes_of(&app, id).await[0].outcome.as_deref(), Some("bot"));
}

async fn quick_replies_are_answered_or_routed(app: TestApp) {
    install_bot(&app).await;
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    app.store
        .set_template_button_actions(
            template_id,
            Some(r#"{"Confirmar": {"action": "reply", "text": "Obrigado! Pagamento confirmado (protocolo {{protocolo}})."},
                    "Falar com atendente": {"action": "route"}}"#),
        )
        .await
        .unwrap();
    let billing = queue(&app, "cobranca", json!({})).await;
    patch_channel(&app, json!({ "hsm_queue_id": billing })).await;

    // "Confirmar": answered with the configured text, no person, closed.
    let confirm = "5511987651031";
    let c = send_reminder(&app, template_id, confirm, Value::Null).await;
    let id = c["id"].as_i64().unwrap();
    let protocol = c["protocol"].as_str().unwrap().to_owned();
    let sent = wait_templates_to(&app, confirm, 1).await;
    let (_, tap) = app.builder.template_button(
        &Customer::new(confirm, "Cliente"),
        "Confirmar",
        "Confirmar",
        &sent[0].wamid,
    );
    assert_eq!(app.post_webhook(&tap).await.status(), 200);
    app.inbox_drained().await;
    wait_text_to(
        &app,
        confirm,
        &format!("Obrigado! Pagamento confirmado (protocolo {protocol})."),
    )
    .await;
    let c = conversation(&app, id).await;
    assert_eq!(
        (c["state"].as_str(), c["close_reason"].as_str()),
        (Some("closed"), Some("hsm_auto_reply")),
        "{c}"
    );
    assert_eq!(c["agent_id"], Value::Null);
    let route = &routes_of(&app, id).await[0];
    assert_eq!(
        (route.payload.as_deref(), route.outcome.as_deref()),
        (Some("Confirmar"), Some("auto_reply"))
    );
    assert_eq!(
        texts_to(&app, confirm).len(),
        1,
        "{:?}",
        texts_to(&app, confirm)
    );

    // "Falar com atendente": to the HSM queue, with the protocol.
    let talk = "5511987651032";
    let c = send_reminder(&app, template_id, talk, Value::Null).await;
    let id = c["id"].as_i64().unwrap();
    let sent = wait_templates_to(&app, talk, 1).await;
    let (_, tap) = app.builder.template_button(
        &Customer::new(talk, "Cliente"),
        "Falar com atendente",
        "Falar com atendente",
        &sent[0].wamid,
    );
    assert_eq!(app.post_webhook(&tap).await.status(), 200);
    app.inbox_drained().await;
    let c = wait_conversation(&app, id, "queued for a person", |c| c["state"] == "queued").await;
    assert_eq!(c["queue_id"], billing);
    wait_text_to(&app, talk, "Seu número de protocolo é").await;
    let route = &routes_of(&app, id).await[0];
    assert_eq!(
        (route.payload.as_deref(), route.outcome.as_deref()),
        (Some("Falar com atendente"), Some("queued"))
    );
}
