//! Sending a template (HSM) to one customer: from the desk in and out of the 24 h window, to a
//! phone number or a known contact through `POST /api/messages`, with values checked locally
//! before anything leaves, the permission and queue scoping, and failures explained in pt-BR.
//! graph-sim enforces Meta's template checks, so what it accepts Meta accepts.

use std::time::Duration;

use serde_json::{Value, json};
use store::auth::Role;
use store::templates::TemplateUpsert;

use crate::desk::{agent, queue};
use crate::helpers::{TestApp, WABA_ID, wait_until};
use crate::on_both_backends;

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// `lembrete`: a UTILITY template with two body variables, a footer and two quick replies.
pub fn reminder_components() -> Value {
    json!([
        {"type": "BODY", "text": "Olá {{1}}, seu boleto de {{2}} vence amanhã.",
         "example": {"body_text": [["Ana", "R$ 10,00"]]}},
        {"type": "FOOTER", "text": "Atende"},
        {"type": "BUTTONS", "buttons": [
            {"type": "QUICK_REPLY", "text": "Confirmar"},
            {"type": "QUICK_REPLY", "text": "Falar com atendente"}
        ]}
    ])
}

/// A template approved at Meta (graph-sim) and known to Atende, as a sync leaves it; its id.
pub async fn seed_template(app: &TestApp, name: &str, components: Value) -> i64 {
    seed_template_of(app, name, "UTILITY", components).await
}

pub async fn seed_template_of(app: &TestApp, name: &str, category: &str, components: Value) -> i64 {
    let meta_id = app.sim.add_template(
        WABA_ID,
        name,
        "pt_BR",
        category,
        "APPROVED",
        components.clone(),
    );
    let (record, _) = app
        .store
        .upsert_template(&TemplateUpsert {
            waba_id: WABA_ID.into(),
            meta_id: Some(meta_id),
            name: name.into(),
            language: "pt_BR".into(),
            category: category.into(),
            status: "APPROVED".into(),
            parameter_format: "POSITIONAL".into(),
            components: components.to_string(),
            quality: None,
            rejected_reason: None,
            created_by: None,
            status_at: store::now_ms(),
        })
        .await
        .expect("template stored");
    record.id
}

/// Templates graph-sim received for `to`.
pub fn templates_to(app: &TestApp, to: &str) -> Vec<graph_sim::SentMessage> {
    app.sim
        .sent_messages()
        .into_iter()
        .filter(|m| m.to == to && m.kind() == "template")
        .collect()
}

pub async fn wait_templates_to(app: &TestApp, to: &str, n: usize) -> Vec<graph_sim::SentMessage> {
    wait_until(&format!("{n} template(s) to {to}"), TIMEOUT, || async {
        templates_to(app, to).len() >= n
    })
    .await;
    templates_to(app, to)
}

/// Waits until graph-sim received `n` templates in all; returns them.
pub async fn wait_templates_to_all(app: &TestApp, n: usize) -> Vec<graph_sim::SentMessage> {
    let all = || {
        app.sim
            .sent_messages()
            .into_iter()
            .filter(|m| m.kind() == "template")
            .collect::<Vec<_>>()
    };
    wait_until(&format!("{n} templates"), TIMEOUT, || async {
        all().len() >= n
    })
    .await;
    all()
}

/// `POST /api/messages` with the admin token.
pub async fn start_template(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = app.api_post("/api/messages", &body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A conversation's messages, as the API shows them.
async fn conversation_messages(app: &TestApp, conversation_id: i64) -> Vec<Value> {
    app.api_get(&format!(
        "/api/conversations/{conversation_id}/messages?limit=200"
    ))
    .await["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

on_both_backends!(
    a_template_goes_out_of_the_window_from_the_desk,
    a_template_starts_a_conversation_with_a_number,
    values_that_do_not_fit_are_refused_before_anything_is_sent,
    the_permission_and_the_queues_decide_who_may_send,
    a_refused_template_shows_its_reason_in_portuguese,
    channel_hsm_settings_are_admin_only,
);

async fn a_template_goes_out_of_the_window_from_the_desk(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    app.sim.set_enforce_templates(true);
    let sales = queue(&app, "vendas", json!({})).await;
    let olga = agent(&app, "Olga", 3, &[sales]).await;
    // She starts a conversation with a number that never wrote: the window is closed.
    let (status, started) = olga
        .post("/api/conversations", &json!({ "wa_id": "5511987650001" }))
        .await;
    assert_eq!(status, 201, "{started}");
    let c = &started["conversation"];
    let id = c["id"].as_i64().unwrap();
    assert_eq!(
        c["queue_id"], sales,
        "an agent's conversation belongs to her queue"
    );
    let (status, state) = olga
        .get(&format!("/api/conversations/{id}/template_state"))
        .await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["window_open"], false);
    assert_eq!(state["mode"], "template");
    assert_eq!(state["can_send_template"], true);
    assert!(
        state["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == template_id && t["name"] == "lembrete"),
        "{state}"
    );
    let (status, body) = olga
        .post(
            &format!("/api/conversations/{id}/messages"),
            &json!({ "type": "text", "body": "Olá" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("outside_service_window")),
        "free text still needs the window"
    );
    let (status, sent) = olga
        .post(
            &format!("/api/conversations/{id}/messages"),
            &json!({ "type": "template", "template_id": template_id,
                     "variables": {"1": "Ana", "2": "R$ 50,00"}, "idempotency_key": "t-1" }),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let m = &sent["message"];
    assert_eq!(m["kind"], "template");
    assert_eq!(m["body"], "Olá Ana, seu boleto de R$ 50,00 vence amanhã.");
    assert_eq!(m["template"]["name"], "lembrete");
    assert_eq!(
        m["template"]["rendered"]["body"],
        "Olá Ana, seu boleto de R$ 50,00 vence amanhã."
    );
    assert_eq!(m["template"]["rendered"]["footer"], "Atende");
    assert_eq!(
        m["template"]["rendered"]["buttons"][1]["text"],
        "Falar com atendente"
    );
    let out = wait_templates_to(&app, "5511987650001", 1).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body["template"]["name"], "lembrete");
    assert_eq!(out[0].body["template"]["language"]["code"], "pt_BR");
    assert_eq!(
        out[0].body["template"]["components"],
        json!([{"type": "body", "parameters": [
            {"type": "text", "text": "Ana"}, {"type": "text", "text": "R$ 50,00"}]}]),
        "graph-sim received exactly the components"
    );
    let message_id = m["id"].as_i64().unwrap();
    wait_until("the template at Meta", TIMEOUT, || async {
        app.message(id, message_id).await["wamid"].is_string()
    })
    .await;
    // The same key again: the first message, nothing new sent.
    let (status, again) = olga
        .post(
            &format!("/api/conversations/{id}/messages"),
            &json!({ "type": "template", "template_id": template_id,
                     "variables": {"1": "Ana", "2": "R$ 50,00"}, "idempotency_key": "t-1" }),
        )
        .await;
    assert_eq!((status, &again["message"]["id"]), (200, &m["id"]));

    // Inside the window (the customer wrote) a template goes too, in Meta's components form.
    let inside = app.open_conversation("5511987650002").await;
    let sent = app
        .send_ok(
            inside,
            &json!({ "type": "template", "name": "lembrete", "language": "pt_BR",
                     "components": [{"type": "body", "parameters": [
                        {"type": "text", "text": "Bia"}, {"type": "text", "text": "R$ 7,00"}]}] }),
        )
        .await;
    let sent = json!({ "message": sent });
    assert_eq!(
        sent["message"]["body"], "Olá Bia, seu boleto de R$ 7,00 vence amanhã.",
        "{sent}"
    );
    let out = wait_templates_to(&app, "5511987650002", 1).await;
    assert_eq!(
        out[0].body["template"]["components"][0]["parameters"][0]["text"],
        "Bia"
    );
    // Olga may take it (it waits for anyone) but does not work it: no template from her.
    let (status, state) = olga
        .get(&format!("/api/conversations/{inside}/template_state"))
        .await;
    assert_eq!((status, &state["can_send_template"]), (200, &json!(false)));
    let state = app
        .api_get(&format!("/api/conversations/{inside}/template_state"))
        .await;
    assert_eq!(state["window_open"], true);
    assert_eq!(state["mode"], "free");
    assert!(state["closes_at"].as_i64().unwrap() > store::now_ms());
}

async fn a_template_starts_a_conversation_with_a_number(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    app.sim.set_enforce_templates(true);
    let sales = queue(&app, "vendas", json!({})).await;
    let olga = agent(&app, "Olga", 3, &[sales]).await;
    // A Brazilian mobile written the way people write it, without the ninth digit.
    let (status, started) = olga
        .post(
            "/api/messages",
            &json!({ "to": "+55 (11) 8765-0003", "type": "template", "template_id": template_id,
                     "variables": {"1": "Carla", "2": "R$ 9,90"} }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["opened"], true);
    let c = &started["conversation"];
    let wa_id = c["contact_wa_id"].as_str().unwrap().to_owned();
    assert!(wa_id.starts_with("5511"), "{wa_id}");
    assert_eq!(c["state"], "awaiting_reply");
    assert_eq!(c["queue_id"], sales);
    assert!(c["protocol"].as_str().unwrap().len() >= 9);
    let id = c["id"].as_i64().unwrap();
    let out = wait_templates_to(&app, &wa_id, 1).await;
    assert_eq!(out[0].body["template"]["name"], "lembrete");
    // Waiting for the customer: in no worklist, but the sender can read it.
    for scope in ["mine", "waiting"] {
        let (_, list) = olga
            .get(&format!("/api/conversations?scope={scope}&open=true"))
            .await;
        assert!(
            !list["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == id),
            "{scope}: {list}"
        );
    }
    let (status, _) = olga.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
    // The known contact again, by id: the same conversation, one more template.
    let contact_id = c["contact_id"].as_i64().unwrap();
    let (status, again) = olga
        .post(
            "/api/messages",
            &json!({ "contact_id": contact_id, "type": "template", "template_id": template_id,
                     "variables": {"1": "Carla", "2": "R$ 9,90"} }),
        )
        .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["conversation"]["id"], id);
    assert_eq!(again["opened"], false);
    wait_templates_to(&app, &wa_id, 2).await;
    let messages = conversation_messages(&app, id).await;
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m["author"] == "agent"
        && m["author_user_id"] == olga.id
        && m["template"]["rendered"]["body"] == "Olá Carla, seu boleto de R$ 9,90 vence amanhã."));
    // Only templates start a conversation; a nonsense number is refused.
    let (status, body) = start_template(
        &app,
        json!({ "to": "5511987650004", "type": "text", "body": "Oi" }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = start_template(
        &app,
        json!({ "to": "abc", "type": "template", "template_id": template_id,
                "variables": {"1": "x", "2": "y"} }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

async fn values_that_do_not_fit_are_refused_before_anything_is_sent(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    app.sim.set_enforce_templates(true);
    for variables in [
        json!({"1": "Ana"}),
        json!({"1": "Ana", "2": "x", "3": "extra"}),
        json!({"1": "", "2": "x"}),
    ] {
        let (status, body) = start_template(
            &app,
            json!({ "to": "5511987650010", "type": "template", "template_id": template_id,
                    "variables": variables }),
        )
        .await;
        assert_eq!(status, 422, "{variables}: {body}");
        assert_eq!(body["error"]["code"], "invalid_template_values");
        let problems = body["error"]["problems"].as_array().expect("problems");
        assert!(!problems.is_empty());
        assert!(problems.iter().all(|p| p["field"].is_string()
            && p["message"].as_str().is_some_and(|m| !m.is_empty())
            && p["message_en"].is_string()));
    }
    let (status, body) = start_template(
        &app,
        json!({ "to": "5511987650010", "type": "template", "template_id": 999_999,
                "variables": {"1": "a", "2": "b"} }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // Nothing reached Meta, no conversation was opened, no contact's message stored.
    assert!(app.sim.sent_messages().is_empty());
    let list = app.api_get("/api/conversations?limit=100").await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 0, "{list}");
}

async fn the_permission_and_the_queues_decide_who_may_send(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let sales = queue(&app, "vendas", json!({})).await;
    let support = queue(&app, "suporte", json!({})).await;
    let olga = agent(&app, "Olga", 3, &[sales]).await;
    let paulo = agent(&app, "Paulo", 3, &[support]).await;
    let body = |to: &str| {
        json!({ "to": to, "type": "template", "template_id": template_id,
                "variables": {"1": "Ana", "2": "R$ 1"} })
    };
    // Anonymous: 401.
    let resp = app
        .http
        .post(format!("{}/api/messages", app.address))
        .json(&body("5511987650020"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Olga's customer (a new number is hers).
    let (status, started) = olga.post("/api/messages", &body("5511987650020")).await;
    assert_eq!(status, 201, "{started}");
    // Replies go only to her queues, and to no other agent's portfolio.
    let routed = |to: &str, route: Value| {
        let mut b = body(to);
        b["reply_route"] = route;
        b
    };
    for route in [
        json!({"target": "queue", "queue_id": support}),
        json!({"target": "agent", "agent_id": paulo.id}),
        json!({"target": "agent", "fallback_queue_id": support}),
    ] {
        let (status, denied) = olga
            .post("/api/messages", &routed("5511987650024", route.clone()))
            .await;
        assert_eq!(status, 403, "{route}: {denied}");
    }
    let (status, ok) = olga
        .post(
            "/api/messages",
            &routed(
                "5511987650024",
                json!({"target": "agent", "fallback_queue_id": sales}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    // Paulo cannot reach a customer of another queue.
    let contact_id = started["conversation"]["contact_id"].as_i64().unwrap();
    let conversation_id = started["conversation"]["id"].as_i64().unwrap();
    app.store
        .close_unanswered(store::now_ms() + 10 * 24 * 3_600_000, 100)
        .await
        .unwrap();
    let (status, denied) = paulo
        .post(
            "/api/messages",
            &json!({ "contact_id": contact_id, "type": "template", "template_id": template_id,
                     "variables": {"1": "Ana", "2": "R$ 1"} }),
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    let (status, _) = paulo
        .get(&format!(
            "/api/conversations/{conversation_id}/template_state"
        ))
        .await;
    assert_eq!(status, 404);
    // Without the permission, no template at all: 403 naming it in pt-BR.
    app.store
        .set_role_permissions("agent", &[])
        .await
        .expect("matrix");
    let (status, denied) = olga.post("/api/messages", &body("5511987650021")).await;
    assert_eq!(status, 403, "{denied}");
    assert!(
        denied["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Enviar templates"),
        "{denied}"
    );
    let (status, started) = olga
        .post("/api/conversations", &json!({ "wa_id": "5511987650022" }))
        .await;
    assert_eq!(status, 201);
    let (status, denied) = olga
        .post(
            &format!(
                "/api/conversations/{}/messages",
                started["conversation"]["id"]
            ),
            &json!({ "type": "template", "template_id": template_id,
                     "variables": {"1": "Ana", "2": "R$ 1"} }),
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    // Supervisors keep it by default.
    let sup = app.person(Role::Supervisor, "Sueli").await;
    let (status, ok) = sup.post("/api/messages", &body("5511987650023")).await;
    assert_eq!(status, 201, "{ok}");
    assert_eq!(templates_to(&app, "5511987650021").len(), 0);
}

async fn a_refused_template_shows_its_reason_in_portuguese(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    app.sim.set_enforce_templates(true);
    // Meta paused it; Atende has not heard yet: Meta refuses the send (132015).
    let meta_id = app
        .sim
        .template_by_name(WABA_ID, "lembrete", "pt_BR")
        .unwrap()
        .id;
    app.sim
        .set_template_status(&meta_id, "PAUSED", None)
        .await
        .ok();
    let (status, started) = start_template(
        &app,
        json!({ "to": "5511987650030", "type": "template", "template_id": template_id,
                "variables": {"1": "Ana", "2": "R$ 1"} }),
    )
    .await;
    let message = if status == 201 {
        let m = &started["message"];
        app.wait_status(
            m["conversation_id"].as_i64().unwrap(),
            m["id"].as_i64().unwrap(),
            "failed",
        )
        .await
    } else {
        // The status webhook reached Atende first: refused locally with the same reason.
        assert_eq!(status, 409, "{started}");
        assert_eq!(started["error"]["code"], "template_not_approved");
        started["error"].clone()
    };
    let text = message["error_detail"]
        .as_str()
        .or(message["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(text.contains("pausado"), "{message}");

    // A marketing template the customer's WhatsApp refuses asynchronously (131050).
    let promo = seed_template_of(
        &app,
        "promocao",
        "MARKETING",
        json!([{"type": "BODY", "text": "Oferta para você, {{1}}!", "example": {"body_text": [["Ana"]]}}]),
    )
    .await;
    app.sim.set_marketing_fault(
        "5511987650031",
        Some(graph_sim::MarketingFault::StoppedMarketing),
    );
    let (status, started) = start_template(
        &app,
        json!({ "to": "5511987650031", "type": "template", "template_id": promo,
                "variables": {"1": "Ana"} }),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let m = &started["message"];
    let failed = app
        .wait_status(
            m["conversation_id"].as_i64().unwrap(),
            m["id"].as_i64().unwrap(),
            "failed",
        )
        .await;
    assert_eq!(failed["error_code"], 131050, "{failed}");
    assert_eq!(
        failed["error_detail"], "O cliente optou por não receber mensagens de marketing.",
        "{failed}"
    );
}

async fn channel_hsm_settings_are_admin_only(app: TestApp) {
    let support = queue(&app, "suporte", json!({})).await;
    let path = format!("/api/channels/{}", app.channel_id);
    let resp = app
        .http
        .patch(format!("{}{path}", app.address))
        .bearer_auth(&app.token)
        .json(&json!({ "hsm_queue_id": support, "hsm_reply_minutes": 120 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["channel"]["hsm_queue_id"], support);
    assert_eq!(body["channel"]["hsm_reply_minutes"], 120);
    let list = app.api_get("/api/channels").await;
    assert_eq!(list["channels"][0]["hsm_queue_id"], support);
    // null clears the queue; the minutes stay.
    let resp = app
        .http
        .patch(format!("{}{path}", app.address))
        .bearer_auth(&app.token)
        .json(&json!({ "hsm_queue_id": null }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["channel"]["hsm_queue_id"], Value::Null);
    assert_eq!(body["channel"]["hsm_reply_minutes"], 120);
    for bad in [
        json!({ "hsm_reply_minutes": 0 }),
        json!({ "hsm_queue_id": 424242 }),
    ] {
        let resp = app
            .http
            .patch(format!("{}{path}", app.address))
            .bearer_auth(&app.token)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let sup = app.person(Role::Supervisor, "Sueli").await;
    let (status, _) = sup.patch(&path, &json!({ "hsm_queue_id": support })).await;
    assert_eq!(status, 403);
}
