//! Template sends (Meta's 132xxx checks, marketing and spam faults, the rendered text) and the
//! OpenAPI conformance of every template request body, over real HTTP.

mod common;

use common::*;
use graph_sim::{Endpoint, GraphSim, MarketingFault, RequestKind, openapi};
use serde_json::{Value, json};

async fn send(sim: &GraphSim, template: Value) -> (u16, Value) {
    let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
        "to": "5511987654321", "type": "template", "template": template});
    post(sim, &format!("{PNID}/messages"), body).await
}

fn text(v: &str) -> Value {
    json!({"type": "text", "text": v})
}

/// `pedido` (approved, UTILITY): text header with {{1}}, body {{1}} {{2}}, URL button with a
/// suffix.
async fn approved_order(sim: &GraphSim) -> String {
    sim.set_new_template_status("APPROVED");
    let (status, body) = create(sim, order_template("pedido")).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn full_send() -> Value {
    json!({"name": "pedido", "language": {"code": "pt_BR"}, "components": [
        {"type": "header", "parameters": [text("#9")]},
        {"type": "body", "parameters": [text("Ana"), text("#9")]},
        {"type": "button", "sub_type": "url", "index": "1", "parameters": [text("9")]}]})
}

#[tokio::test]
async fn enforced_sends_get_metas_template_errors() {
    let (sim, _rx) = sim_with_receiver().await;
    let id = approved_order(&sim).await;
    sim.set_enforce_templates(true);

    let (status, body) = send(&sim, full_send()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["message_status"], "accepted");

    let mut wrong_language = full_send();
    wrong_language["language"]["code"] = json!("en_US");
    assert_eq!(code(&send(&sim, wrong_language).await.1), Some(132001));

    let mut no_header = full_send();
    no_header["components"].as_array_mut().unwrap().remove(0);
    let (status, body) = send(&sim, no_header).await;
    assert_eq!((status, code(&body)), (400, Some(132000)));
    assert!(
        body["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .starts_with("header")
    );

    let mut short_body = full_send();
    short_body["components"][1]["parameters"] = json!([text("Ana")]);
    let (_, body) = send(&sim, short_body).await;
    assert_eq!(code(&body), Some(132000));
    assert!(
        body["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .starts_with("body")
    );

    let mut no_button = full_send();
    no_button["components"].as_array_mut().unwrap().remove(2);
    let (_, body) = send(&sim, no_button).await;
    assert_eq!(
        code(&body),
        Some(132000),
        "the URL suffix is missing: {body}"
    );

    let mut named = full_send();
    named["components"][1]["parameters"][0]["parameter_name"] = json!("first_name");
    assert_eq!(
        code(&send(&sim, named).await.1),
        Some(132012),
        "named on a positional template"
    );

    let mut newline = full_send();
    newline["components"][1]["parameters"][0] = text("Ana\nMaria");
    assert_eq!(code(&send(&sim, newline).await.1), Some(132018));

    let mut long = full_send();
    long["components"][1]["parameters"][0] = text(&"a".repeat(1100));
    assert_eq!(code(&send(&sim, long).await.1), Some(132005));

    sim.pause_template(&id).await.unwrap();
    assert_eq!(code(&send(&sim, full_send()).await.1), Some(132015));
    sim.disable_template(&id).await.unwrap();
    assert_eq!(code(&send(&sim, full_send()).await.1), Some(132016));
    sim.set_template_status(&id, "PENDING", None).await.unwrap();
    assert_eq!(code(&send(&sim, full_send()).await.1), Some(132001));

    // Media headers and named templates.
    sim.add_template(
        WABA,
        "com_foto",
        "pt_BR",
        "MARKETING",
        "APPROVED",
        json!([
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Veja as novidades da semana."}]),
    );
    let media = |params: Value| {
        json!({"name": "com_foto", "language": {"code": "pt_BR"},
        "components": [{"type": "header", "parameters": params}]})
    };
    let (_, body) = send(
        &sim,
        json!({"name": "com_foto", "language": {"code": "pt_BR"}}),
    )
    .await;
    assert_eq!(
        code(&body),
        Some(132012),
        "the image header is missing: {body}"
    );
    let (_, body) = send(
        &sim,
        media(json!([{"type": "video", "video": {"link": "https://x.y/a.mp4"}}])),
    )
    .await;
    assert_eq!(code(&body), Some(132012));
    let (status, _) = send(
        &sim,
        media(json!([{"type": "image", "image": {"link": "https://x.y/a.png"}}])),
    )
    .await;
    assert_eq!(status, 200);

    sim.add_named_template(
        WABA,
        "ola",
        "pt_BR",
        "UTILITY",
        "APPROVED",
        json!([
        {"type": "BODY", "text": "Olá {{first_name}}, tudo certo com seu pedido."}]),
    );
    let named = |params: Value| {
        json!({"name": "ola", "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": params}]})
    };
    assert_eq!(
        code(&send(&sim, named(json!([text("Ana")]))).await.1),
        Some(132012)
    );
    let wrong = json!([{"type": "text", "parameter_name": "nome", "text": "Ana"}]);
    assert_eq!(code(&send(&sim, named(wrong)).await.1), Some(132000));
    let right = json!([{"type": "text", "parameter_name": "first_name", "text": "Ana"}]);
    assert_eq!(send(&sim, named(right)).await.0, 200);
    let sent = sim.sent_messages();
    assert_eq!(
        sent.last().unwrap().rendered_text().as_deref(),
        Some("Olá Ana, tudo certo com seu pedido.")
    );
}

#[tokio::test]
async fn rendered_text_is_what_the_customer_sees() {
    let (sim, _rx) = sim_with_receiver().await;
    approved_order(&sim).await;
    let (status, _) = send(&sim, full_send()).await;
    assert_eq!(status, 200);
    let sent = sim.sent_messages();
    let t = sent[0].template.as_ref().expect("rendered");
    assert_eq!(t.header.as_deref(), Some("Pedido #9"));
    assert_eq!(t.body, "Olá Ana, seu pedido #9 saiu para entrega hoje.");
    assert_eq!(t.footer.as_deref(), Some("Atende"));
    assert_eq!(t.buttons[1].url.as_deref(), Some("https://x.y/t/9"));
    assert_eq!(t.buttons[0].text, "Falar com atendente");
    assert_eq!(
        sent[0].rendered_text().unwrap(),
        "Pedido #9\n\nOlá Ana, seu pedido #9 saiu para entrega hoje.\n\nAtende"
    );
}

#[tokio::test]
async fn marketing_and_spam_faults_fail_asynchronously() {
    let (sim, rx) = sim_with_receiver().await;
    sim.set_new_template_status("APPROVED");
    let mut promo = order_template("promo");
    promo["category"] = json!("MARKETING");
    assert_eq!(create(&sim, promo).await.0, 200);
    approved_order(&sim).await;
    let mut promo_send = full_send();
    promo_send["name"] = json!("promo");

    sim.set_marketing_fault("+55 11 98765-4321", Some(MarketingFault::StoppedMarketing));
    let (status, _) = send(&sim, promo_send.clone()).await;
    assert_eq!(status, 200, "accepted, then failed");
    let (status, _) = send(&sim, full_send()).await;
    assert_eq!(status, 200, "a UTILITY template is not affected");
    let (status, _) = control(
        &sim,
        "recipients/5511987654321/marketing",
        json!({"fault": "ecosystem_cap"}),
    )
    .await;
    assert_eq!(status, 200);
    send(&sim, promo_send.clone()).await;
    sim.set_spam_rate_limited(PNID, true);
    send(&sim, full_send()).await;

    let statuses = |hits: &[Value]| -> Vec<(String, Option<i64>)> {
        hits.iter()
            .filter_map(|h| {
                h["entry"][0]["changes"][0]["value"]["statuses"][0]
                    .as_object()
                    .cloned()
            })
            .map(|s| {
                (
                    s["status"].as_str().unwrap().to_owned(),
                    s.get("errors").and_then(|e| e[0]["code"].as_i64()),
                )
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut failed: Vec<Option<i64>>;
    loop {
        let hits = rx.wait(1).await;
        failed = statuses(&hits)
            .into_iter()
            .filter(|(s, _)| s == "failed")
            .map(|(_, c)| c)
            .collect();
        if failed.len() >= 3 || tokio::time::Instant::now() > deadline {
            break;
        }
        rx.wait(hits.len() + 1).await;
    }
    failed.sort();
    assert_eq!(failed, vec![Some(131048), Some(131049), Some(131050)]);
    let priced: Vec<Value> = rx
        .wait(1)
        .await
        .iter()
        .filter_map(|h| {
            h["entry"][0]["changes"][0]["value"]["statuses"][0]
                .get("pricing")
                .cloned()
        })
        .collect();
    assert!(
        priced.iter().all(|p| p["category"] == "utility"),
        "{priced:?}"
    );
}

#[tokio::test]
async fn non_conforming_bodies_are_refused_and_every_request_is_recorded() {
    let (sim, _rx) = sim_with_receiver().await;
    approved_order(&sim).await;
    assert_eq!(send(&sim, full_send()).await.0, 200);

    let mut upper = full_send();
    upper["components"][1]["type"] = json!("BODY");
    let (status, body) = send(&sim, upper).await;
    assert_eq!(
        (status, code(&body), subcode(&body)),
        (400, Some(100), Some(openapi::SCHEMA_SUBCODE))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("template['components'][1]['type']"),
        "{body}"
    );

    let (status, body) = create(
        &sim,
        json!({"name": "x", "language": "pt_BR", "category": "UTILITY", "components": "BODY"}),
    )
    .await;
    assert_eq!(
        (status, subcode(&body)),
        (400, Some(openapi::SCHEMA_SUBCODE)),
        "{body}"
    );
    let id = sim.templates()[0].id.clone();
    let (status, _) = post(
        &sim,
        &id,
        json!({"components": [{"type": "BODY", "text": 1}]}),
    )
    .await;
    assert_eq!(status, 400);

    let recorded = sim.template_requests();
    let summary: Vec<(RequestKind, bool)> = recorded.iter().map(|r| (r.kind, r.valid)).collect();
    assert_eq!(
        summary,
        vec![
            (RequestKind::TemplateCreate, true),
            (RequestKind::TemplateSend, true),
            (RequestKind::TemplateSend, false),
            (RequestKind::TemplateCreate, false),
            (RequestKind::TemplateEdit, false),
        ]
    );
    assert!(
        recorded[2].errors[0].contains("['type']"),
        "{:?}",
        recorded[2].errors
    );
    assert_eq!(recorded[1].path, format!("/v23.0/{PNID}/messages"));
    assert_eq!(recorded[1].body["template"]["name"], "pedido");
    let (_, listed) = get(&sim, "../_sim/template_requests").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(5));
    sim.reset();
    assert!(sim.template_requests().is_empty());
}

#[tokio::test]
async fn the_documents_own_examples_pass_over_http() {
    let (sim, _rx) = sim_with_receiver().await;
    for (name, mut body) in openapi::examples(RequestKind::TemplateSend).unwrap() {
        body["to"] = json!("5511987654321");
        let (status, answer) = post(&sim, &format!("{PNID}/messages"), body).await;
        assert_eq!(status, 200, "{name}: {answer}");
    }
    for (name, body) in openapi::examples(RequestKind::TemplateCreate).unwrap() {
        // Meta's rules may refuse the examples' placeholder names and handles, the schema not.
        let (_, answer) = create(&sim, body).await;
        assert_ne!(
            subcode(&answer),
            Some(openapi::SCHEMA_SUBCODE),
            "{name}: {answer}"
        );
    }
    let recorded = sim.template_requests();
    assert_eq!(recorded.len(), 9 + 11);
    assert!(recorded.iter().all(|r| r.valid), "{recorded:?}");
    assert_eq!(sim.request_count(Endpoint::Templates), 11);
}
