//! Templates managed with Meta through the public API, against graph-sim: create (checked locally
//! first: nothing reaches Meta while a rule is broken), Meta's refusals verbatim, review
//! webhooks (approval, rejection with reason and recommendation, quality, category), the sync of
//! a template only Meta knows, the full import with paging, edits within Meta's rules, deletion
//! of one language or the whole name, the media example upload and the quick-reply actions.

use std::time::Duration;

use graph_sim::{Endpoint, Fault, RequestKind};
use reqwest::Method;
use serde_json::{Value, json};
use store::auth::Role;

use crate::helpers::{ACCESS_TOKEN, Person, TestApp, WABA_ID, wait_until};
use crate::on_both_backends;

const WAIT: Duration = Duration::from_secs(20);

/// A UTILITY template with a text header, two body variables, a footer and two quick replies.
pub fn order_template(name: &str, language: &str) -> Value {
    json!({
        "name": name,
        "language": language,
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}", "example": {"header_text": ["#123"]}},
            {"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} foi enviado hoje pela transportadora.",
             "example": {"body_text": [["Ana", "#123"]]}},
            {"type": "FOOTER", "text": "Atende Lojas"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Falar com atendente"},
                {"type": "QUICK_REPLY", "text": "Confirmar"}
            ]}
        ]
    })
}

pub async fn admin(app: &TestApp) -> Person {
    app.person(Role::Admin, "Admin Templates").await
}

/// Creates through the API (asserting 201); returns the template view.
pub async fn create_ok(admin: &Person, body: &Value) -> Value {
    let (status, answer) = admin.post("/api/templates", body).await;
    assert_eq!(status, 201, "create {body}: {answer}");
    answer["template"].clone()
}

pub async fn template_of(person: &Person, id: i64) -> Value {
    person.get_ok(&format!("/api/templates/{id}")).await["template"].clone()
}

/// Waits until the stored template satisfies `check`; returns it.
pub async fn wait_template(
    admin: &Person,
    id: i64,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let check = &check;
    wait_until(what, WAIT, || async move {
        check(&template_of(admin, id).await)
    })
    .await;
    template_of(admin, id).await
}

fn meta_id(t: &Value) -> String {
    t["meta_id"].as_str().expect("meta id").to_owned()
}

async fn approved(app: &TestApp, admin: &Person, name: &str) -> Value {
    let t = create_ok(admin, &order_template(name, "pt_BR")).await;
    app.sim
        .approve_template(&meta_id(&t))
        .await
        .expect("approve");
    let id = t["id"].as_i64().unwrap();
    wait_template(admin, id, "approval", |t| t["status"] == "APPROVED").await
}

async fn create_review_and_read(app: TestApp) {
    app.sim.set_record_template_requests(true);
    let admin = admin(&app).await;
    let t = create_ok(&admin, &order_template("pedido_enviado", "pt_BR")).await;
    assert_eq!(t["status"], "PENDING");
    assert_eq!(t["status_pt"], "Em análise");
    assert_eq!(t["category"], "UTILITY");
    let at_meta = app
        .sim
        .template(&meta_id(&t))
        .expect("graph-sim has the template");
    assert_eq!(at_meta.name, "pedido_enviado");
    assert_eq!(at_meta.language, "pt_BR");
    // What Atende sent conforms to Meta's OpenAPI document.
    let requests = app.sim.template_requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(
            r.valid,
            "request not conforming to Meta's schema: {:?}",
            r.errors
        );
    }
    // The preview shows the examples; the parameters are what a send must supply.
    assert_eq!(t["preview"]["header"], "Pedido #123");
    assert_eq!(
        t["preview"]["body"],
        "Olá Ana, seu pedido #123 foi enviado hoje pela transportadora."
    );
    assert_eq!(t["parameters"]["body"], json!(["1", "2"]));

    // Meta approves: the status webhook updates it, and the event log tells the screens.
    app.sim
        .approve_template(&meta_id(&t))
        .await
        .expect("approve");
    let id = t["id"].as_i64().unwrap();
    let t = wait_template(&admin, id, "approval", |t| t["status"] == "APPROVED").await;
    assert_eq!(t["status_pt"], "Aprovado");
    let events = app.store.events_after(0, 10_000).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "template.updated"
            && e.payload.contains(&format!("\"template_id\":{id}"))),
        "no template.updated event"
    );

    // An agent (send_template) lists and reads the approved template...
    let agent = app.person(Role::Agent, "Agente Lista").await;
    let list = agent.get_ok("/api/templates").await;
    let names: Vec<&str> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["pedido_enviado"]);
    assert_eq!(template_of(&agent, id).await["name"], "pedido_enviado");
    // ...but not a pending one, which only managers see.
    let pending = create_ok(&admin, &order_template("pedido_pendente", "pt_BR")).await;
    let pending_id = pending["id"].as_i64().unwrap();
    let (status, _) = agent.get(&format!("/api/templates/{pending_id}")).await;
    assert_eq!(status, 404);
    let all = admin.get_ok("/api/templates").await;
    assert_eq!(all["templates"].as_array().unwrap().len(), 2);
    let filtered = admin
        .get_ok("/api/templates?status=PENDING&q=pendente")
        .await;
    assert_eq!(filtered["templates"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["templates"][0]["id"], pending_id);
    // The search takes `_` literally (it is in most names) and `%` is no wildcard.
    let by_name = admin.get_ok("/api/templates?q=pedido_p").await;
    assert_eq!(by_name["templates"].as_array().unwrap().len(), 1);
    let wildcard = admin.get_ok("/api/templates?q=pedido%25p").await;
    assert_eq!(wildcard["templates"].as_array().unwrap().len(), 0);
    let one = template_of(&admin, id).await;
    assert_eq!(one["edit"]["allowed"], true);
}

async fn rejection_with_reason_and_recommendation(app: TestApp) {
    let admin = admin(&app).await;
    let t = create_ok(&admin, &order_template("oferta_disfarcada", "pt_BR")).await;
    app.sim
        .reject_template(
            &meta_id(&t),
            "PROMOTIONAL",
            Some("Escolha a categoria MARKETING para conteúdo promocional."),
        )
        .await
        .expect("reject");
    let id = t["id"].as_i64().unwrap();
    let t = wait_template(&admin, id, "rejection", |t| t["status"] == "REJECTED").await;
    assert_eq!(t["rejected_reason"], "PROMOTIONAL");
    assert_eq!(
        t["rejection_recommendation"],
        "Escolha a categoria MARKETING para conteúdo promocional."
    );
    assert_eq!(t["status_pt"], "Rejeitado");
    assert!(
        t["rejected_reason_pt"]
            .as_str()
            .unwrap()
            .contains("promocional")
    );
    // A rejected template may be edited.
    assert_eq!(t["edit"]["allowed"], true);
}

async fn quality_and_category_webhooks(app: TestApp) {
    let admin = admin(&app).await;
    let t = approved(&app, &admin, "aviso_qualidade").await;
    let id = t["id"].as_i64().unwrap();
    app.sim
        .set_template_quality(&meta_id(&t), "RED")
        .await
        .expect("quality");
    wait_template(&admin, id, "quality RED", |t| t["quality"] == "RED").await;
    app.sim
        .set_template_category(&meta_id(&t), "MARKETING")
        .await
        .expect("category");
    let t = wait_template(&admin, id, "re-categorised", |t| {
        t["category"] == "MARKETING"
    })
    .await;
    assert_eq!(t["previous_category"], "UTILITY");
    assert_eq!(
        t["status"], "APPROVED",
        "a category change keeps the status"
    );
    // A pause, then the reinstatement, follow too.
    app.sim.pause_template(&meta_id(&t)).await.expect("pause");
    wait_template(&admin, id, "paused", |t| t["status"] == "PAUSED").await;
    app.sim
        .reinstate_template(&meta_id(&t))
        .await
        .expect("reinstate");
    wait_template(&admin, id, "reinstated", |t| t["status"] == "APPROVED").await;
}

async fn unknown_template_webhook_fetches_it(app: TestApp) {
    let admin = admin(&app).await;
    // Created in Meta's WhatsApp Manager, never seen by Atende.
    let components = order_template("x", "pt_BR")["components"].clone();
    let meta = app.sim.add_template(
        WABA_ID,
        "criado_no_gerenciador",
        "pt_BR",
        "UTILITY",
        "PENDING",
        components,
    );
    let gets_before = app.sim.request_count(Endpoint::Templates);
    app.sim.approve_template(&meta).await.expect("approve");
    let store = app.store.clone();
    let m = meta.clone();
    wait_until("the unknown template to be fetched", WAIT, || {
        let (store, m) = (store.clone(), m.clone());
        async move {
            store
                .template_by_meta_id(&m)
                .await
                .ok()
                .flatten()
                .is_some_and(|t| t.status == "APPROVED")
        }
    })
    .await;
    assert!(
        app.sim.request_count(Endpoint::Templates) > gets_before,
        "GET /{{template-id}} was called"
    );
    let t = app.store.template_by_meta_id(&meta).await.unwrap().unwrap();
    assert_eq!(t.name, "criado_no_gerenciador");
    let view = template_of(&admin, t.id).await;
    assert_eq!(view["components"][1]["type"], "BODY");
    assert_eq!(view["preview"]["header"], "Pedido #123");
}

async fn full_sync_with_paging(app: TestApp) {
    let admin = admin(&app).await;
    // One Atende knows that Meta no longer has (deleted in the WhatsApp Manager).
    let gone = create_ok(&admin, &order_template("vai_sumir", "pt_BR")).await;
    delete_at_meta(&app, "vai_sumir").await;
    // 130 templates only Meta knows: more than one page of 100.
    let components = order_template("x", "pt_BR")["components"].clone();
    for i in 0..130 {
        app.sim.add_template(
            WABA_ID,
            &format!("importado_{i:03}"),
            "pt_BR",
            "UTILITY",
            if i % 2 == 0 { "APPROVED" } else { "REJECTED" },
            components.clone(),
        );
    }
    let calls_before = app.sim.request_count(Endpoint::Templates);
    let answer = admin.post_ok("/api/templates/sync", &json!({})).await;
    let report = &answer["reports"][0];
    assert_eq!(report["waba_id"], WABA_ID);
    assert_eq!(report["seen"], 130);
    assert_eq!(report["created"], 130);
    assert_eq!(report["deleted"], 1);
    assert!(
        app.sim.request_count(Endpoint::Templates) - calls_before >= 2,
        "the list was read page by page"
    );
    let gone = template_of(&admin, gone["id"].as_i64().unwrap()).await;
    assert_eq!(gone["status"], "DELETED");
    let approved = admin.get_ok("/api/templates?status=APPROVED").await;
    assert_eq!(approved["templates"].as_array().unwrap().len(), 65);
    let listed = admin.get_ok("/api/templates").await;
    assert_eq!(
        listed["templates"].as_array().unwrap().len(),
        130,
        "DELETED ones are not listed"
    );
    // A second sync changes nothing.
    let again = admin.post_ok("/api/templates/sync", &json!({})).await;
    assert_eq!(again["reports"][0]["created"], 0);
    assert_eq!(again["reports"][0]["updated"], 0);
    assert_eq!(again["reports"][0]["deleted"], 0);
}

/// Deletes a template at graph-sim directly, as someone in Meta's WhatsApp Manager would.
async fn delete_at_meta(app: &TestApp, name: &str) {
    let resp = app
        .http
        .delete(format!(
            "{}/{WABA_ID}/message_templates?name={name}",
            app.sim.base_url()
        ))
        .bearer_auth(ACCESS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "delete at graph-sim");
}

fn edits_sent(app: &TestApp) -> usize {
    app.sim
        .template_requests()
        .iter()
        .filter(|r| r.kind == RequestKind::TemplateEdit)
        .count()
}

async fn edits_follow_metas_rules(app: TestApp) {
    app.sim.set_record_template_requests(true);
    let admin = admin(&app).await;
    // Approved at Meta and imported: the only approval webhook of this test is the one after the
    // edit (two identical webhooks in one second are one delivery to the inbox).
    let components = order_template("x", "pt_BR")["components"].clone();
    let meta = app.sim.add_template(
        WABA_ID,
        "pedido_editavel",
        "pt_BR",
        "UTILITY",
        "APPROVED",
        components,
    );
    admin.post_ok("/api/templates/sync", &json!({})).await;
    let id = app
        .store
        .template_by_meta_id(&meta)
        .await
        .unwrap()
        .unwrap()
        .id;
    let t = template_of(&admin, id).await;
    assert_eq!(t["status"], "APPROVED");
    let path = format!("/api/templates/{id}");
    let mut components = t["components"].clone();
    components[1]["text"] =
        json!("Oi {{1}}, o pedido {{2}} já saiu para entrega com a transportadora.");

    // The category of an approved template cannot change: refused locally.
    let (status, body) = admin.patch(&path, &json!({"category": "MARKETING"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["problems"][0]["code"], "category_locked");
    assert_eq!(edits_sent(&app), 0);

    // A valid edit goes to Meta and the template goes back to review.
    let (status, body) = admin.patch(&path, &json!({"components": components})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status_before"], "APPROVED");
    assert_eq!(body["status_after"], "PENDING");
    assert!(body["message_pt"].as_str().unwrap().contains("Em análise"));
    assert_eq!(
        body["template"]["components"][1]["text"],
        "Oi {{1}}, o pedido {{2}} já saiu para entrega com a transportadora."
    );
    assert_eq!(edits_sent(&app), 1);
    assert_eq!(
        app.sim.template(&meta_id(&t)).unwrap().components[1]["text"],
        "Oi {{1}}, o pedido {{2}} já saiu para entrega com a transportadora."
    );

    // PENDING cannot be edited.
    let (status, body) = admin.patch(&path, &json!({"components": components})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_editable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Em análise")
    );

    // Approved again: a second edit within 24 hours is refused, before reaching Meta.
    app.sim.approve_template(&meta_id(&t)).await.unwrap();
    wait_template(&admin, id, "approval", |t| t["status"] == "APPROVED").await;
    let view = template_of(&admin, id).await;
    assert_eq!(view["edit"]["allowed"], false);
    assert!(view["edit"]["next_edit_at"].as_i64().is_some());
    let (status, body) = admin.patch(&path, &json!({"components": components})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "edit_limit");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("24 horas")
    );
    assert_eq!(edits_sent(&app), 1);

    // New content breaking a rule is refused locally with the problem.
    let rejected = create_ok(&admin, &order_template("pedido_rejeitado", "pt_BR")).await;
    app.sim
        .reject_template(&meta_id(&rejected), "INVALID_FORMAT", None)
        .await
        .unwrap();
    let rid = rejected["id"].as_i64().unwrap();
    wait_template(&admin, rid, "rejection", |t| t["status"] == "REJECTED").await;
    let mut bad = rejected["components"].clone();
    bad[1]["text"] = json!("{{1}} começa com variável {{2}}");
    let (status, body) = admin
        .patch(
            &format!("/api/templates/{rid}"),
            &json!({"components": bad}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["problems"][0]["field"],
        "components.body.text"
    );
    // A rejected template may change its category.
    let (status, body) = admin
        .patch(
            &format!("/api/templates/{rid}"),
            &json!({"category": "MARKETING"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["template"]["category"], "MARKETING");
    assert_eq!(body["template"]["rejected_reason"], Value::Null);
}

async fn delete_one_language_then_the_name(app: TestApp) {
    app.sim.set_record_template_requests(true);
    let admin = admin(&app).await;
    let pt = create_ok(&admin, &order_template("boas_vindas", "pt_BR")).await;
    let mut en_body = order_template("boas_vindas", "en_US");
    en_body["components"][1]["text"] =
        json!("Hello {{1}}, your order {{2}} has shipped with the carrier today.");
    let en = create_ok(&admin, &en_body).await;

    let (status, body) = admin
        .call(
            Method::DELETE,
            &format!("/api/templates/{}?scope=language", en["id"]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], json!([en["id"]]));
    assert!(body["warning_pt"].as_str().unwrap().contains("30 dias"));
    assert!(
        app.sim.template(&meta_id(&en)).is_none(),
        "en_US gone at Meta"
    );
    assert!(
        app.sim.template(&meta_id(&pt)).is_some(),
        "pt_BR kept at Meta"
    );
    assert_eq!(
        template_of(&admin, en["id"].as_i64().unwrap()).await["status"],
        "DELETED"
    );
    assert_eq!(
        template_of(&admin, pt["id"].as_i64().unwrap()).await["status"],
        "PENDING"
    );

    let (status, body) = admin
        .call(
            Method::DELETE,
            &format!("/api/templates/{}?scope=name", pt["id"]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "name");
    assert!(body["warning_pt"].as_str().unwrap().contains("30 dias"));
    assert!(app.sim.template(&meta_id(&pt)).is_none());

    // The name cannot be used again for 30 days: refused locally, nothing sent.
    let sent = app.sim.template_requests().len();
    let (status, body) = admin
        .post("/api/templates", &order_template("boas_vindas", "pt_BR"))
        .await;
    assert_eq!(status, 422, "{body}");
    let codes: Vec<&str> = body["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"name_recently_deleted"), "{codes:?}");
    assert_eq!(app.sim.template_requests().len(), sent);

    // Meta refuses to delete what it no longer has: shown verbatim.
    let other = create_ok(&admin, &order_template("ja_apagado", "pt_BR")).await;
    delete_at_meta(&app, "ja_apagado").await;
    let (status, body) = admin
        .call(
            Method::DELETE,
            &format!("/api/templates/{}", other["id"]),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "meta_refused");
    assert_eq!(body["error"]["meta"]["code"], 100);
    assert!(
        body["error"]["meta"]["message"]
            .as_str()
            .unwrap()
            .contains("doesn't exist")
    );
    assert_eq!(
        template_of(&admin, other["id"].as_i64().unwrap()).await["status"],
        "PENDING"
    );
}

async fn local_validation_refuses_and_sends_nothing(app: TestApp) {
    app.sim.set_record_template_requests(true);
    let admin = admin(&app).await;
    let bad = json!({
        "name": "Pedido Enviado",
        "language": "pt_BR",
        "category": "UTILITY",
        "components": [
            {"type": "BODY", "text": "{{1}}{{2}}", "example": {"body_text": [["a", "b"]]}},
            {"type": "FOOTER", "text": "Rodapé com {{1}}"}
        ]
    });
    let calls = app.sim.request_count(Endpoint::Templates);
    let (status, body) = admin.post("/api/templates", &bad).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_template");
    let problems = body["error"]["problems"].as_array().unwrap();
    let fields: Vec<&str> = problems
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"name"), "{fields:?}");
    assert!(fields.contains(&"components.body.text"), "{fields:?}");
    assert!(
        fields.iter().any(|f| f.starts_with("components.footer")),
        "{fields:?}"
    );
    for p in problems {
        assert!(!p["message"].as_str().unwrap().is_empty());
        assert!(!p["message_en"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        app.sim.request_count(Endpoint::Templates),
        calls,
        "nothing reached Meta"
    );
    assert!(app.sim.template_requests().is_empty());

    // The validator answers the same problems, and for a valid one the preview with values.
    let v = admin.post_ok("/api/templates/validate", &bad).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"].as_array().unwrap().len(), problems.len());
    let mut good = order_template("pedido_ok", "pt_BR");
    good["variables"] = json!({"1": "Bruna", "2": "#987"});
    let v = admin.post_ok("/api/templates/validate", &good).await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(
        v["preview"]["body"],
        "Olá Bruna, seu pedido #987 foi enviado hoje pela transportadora."
    );
    assert_eq!(
        v["preview"]["header"], "Pedido Bruna",
        "a variable's value fills it wherever the template uses it"
    );
    let v = admin
        .post_ok("/api/templates/validate", &{
            let mut t = order_template("pedido_ok", "pt_BR");
            t["values"] = json!({"body": {"1": "Bruna"}});
            t
        })
        .await;
    assert_eq!(
        v["preview"]["header"], "Pedido #123",
        "the example where no value was given"
    );
    assert_eq!(
        v["preview"]["body"],
        "Olá Bruna, seu pedido #123 foi enviado hoje pela transportadora."
    );
    assert_eq!(v["preview"]["buttons"][0]["text"], "Falar com atendente");
    assert!(app.sim.template_requests().is_empty());
}

async fn metas_refusal_is_shown_verbatim(app: TestApp) {
    let admin = admin(&app).await;
    // Meta already has this name in this language (made elsewhere): only Meta knows.
    let components = order_template("x", "pt_BR")["components"].clone();
    app.sim.add_template(
        WABA_ID,
        "ja_existe",
        "pt_BR",
        "UTILITY",
        "APPROVED",
        components,
    );
    let (status, body) = admin
        .post("/api/templates", &order_template("ja_existe", "pt_BR"))
        .await;
    assert_eq!(status, 422, "{body}");
    let error = &body["error"];
    assert_eq!(error["code"], "meta_refused");
    assert_eq!(error["meta"]["code"], 100);
    assert_eq!(error["meta"]["subcode"], 2388024);
    assert_eq!(
        error["meta"]["error_user_title"],
        "Content in this language already exists"
    );
    assert_eq!(
        error["meta"]["error_user_msg"],
        "Message template \"ja_existe\" already exists in language pt_BR."
    );
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("Já existe um modelo"), "{message}");
    assert!(
        message.contains("already exists in language pt_BR"),
        "{message}"
    );
    assert!(
        app.store
            .template_by_name(WABA_ID, "ja_existe", "pt_BR")
            .await
            .unwrap()
            .is_none()
    );

    // Meta failing is a 502, with what it said.
    app.sim
        .inject(Endpoint::Templates, vec![Fault::ServerError]);
    let (status, body) = admin
        .post("/api/templates", &order_template("meta_fora", "pt_BR"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "meta_unavailable");
    assert!(body["error"]["meta"]["http_status"].as_u64().unwrap() >= 500);
}

/// The smallest valid PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

async fn upload(admin: &Person, bytes: &[u8], filename: &str, format: &str) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("format", format.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(filename.to_owned()),
        );
    let resp = admin
        .bare(Method::POST, "/api/templates/media")
        .header("x-csrf-token", admin.csrf())
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn media_header_example_through_resumable_upload(app: TestApp) {
    let admin = admin(&app).await;
    let (status, body) = upload(&admin, PNG, "banner.png", "IMAGE").await;
    assert_eq!(status, 201, "{body}");
    let handle = body["handle"].as_str().unwrap().to_owned();
    assert_eq!(body["mime_type"], "image/png");
    let stored = app
        .sim
        .upload_handle(&handle)
        .expect("graph-sim has the upload");
    assert_eq!(stored.bytes.as_ref(), PNG);
    // The app id came from debug_token and is now on the channel.
    let channels = admin.get_ok("/api/channels").await;
    assert_eq!(channels["channels"][0]["app_id"], app.sim.app_id());

    let (status, body) = upload(&admin, b"just some text", "notas.txt", "DOCUMENT").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["problems"][0]["code"], "file_type");
    let (status, body) = upload(&admin, PNG, "banner.png", "VIDEO").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["problems"][0]["code"], "format_mismatch");

    let mut t = order_template("promo_imagem", "pt_BR");
    t["category"] = json!("MARKETING");
    t["components"][0] =
        json!({"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [handle]}});
    let created = create_ok(&admin, &t).await;
    assert_eq!(created["parameters"]["header_media"], "image");
    assert!(app.sim.template(&meta_id(&created)).is_some());
}

async fn quick_reply_actions(app: TestApp) {
    let admin = admin(&app).await;
    let t = create_ok(&admin, &order_template("pesquisa", "pt_BR")).await;
    let path = format!("/api/templates/{}/button_actions", t["id"]);
    let actions = json!({"button_actions": {
        "Confirmar": {"action": "reply", "text": "Obrigado, pedido confirmado!"},
        "Falar com atendente": {"action": "route"}
    }});
    let (status, body) = admin.put(&path, &actions).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["template"]["button_actions"]["Confirmar"]["text"],
        "Obrigado, pedido confirmado!"
    );
    let stored = app
        .store
        .template(t["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.button_actions.unwrap().contains("pedido confirmado"));

    let (status, body) = admin
        .put(
            &path,
            &json!({"button_actions": {"Cancelar": {"action": "route"}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["problems"][0]["field"],
        "button_actions.Cancelar"
    );
    let (status, body) = admin
        .put(
            &path,
            &json!({"button_actions": {"Confirmar": {"action": "reply", "text": " "}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = admin.put(&path, &json!({"button_actions": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["template"]["button_actions"], Value::Null);
}

on_both_backends!(
    create_review_and_read,
    rejection_with_reason_and_recommendation,
    quality_and_category_webhooks,
    unknown_template_webhook_fetches_it,
    full_sync_with_paging,
    edits_follow_metas_rules,
    delete_one_language_then_the_name,
    local_validation_refuses_and_sends_nothing,
    metas_refusal_is_shown_verbatim,
    media_header_example_through_resumable_upload,
    quick_reply_actions,
);

/// The periodic full import runs by itself (here every second) and picks up what only Meta has.
async fn periodic_sync_imports_by_itself(backend: crate::helpers::Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, |c| c.template_sync_secs = 1).await
    else {
        return;
    };
    let components = order_template("x", "pt_BR")["components"].clone();
    let meta = app.sim.add_template(
        WABA_ID,
        "importado_sozinho",
        "pt_BR",
        "UTILITY",
        "APPROVED",
        components,
    );
    let store = app.store.clone();
    wait_until("the periodic sync", Duration::from_secs(30), || {
        let (store, meta) = (store.clone(), meta.clone());
        async move {
            store
                .template_by_meta_id(&meta)
                .await
                .ok()
                .flatten()
                .is_some_and(|t| t.status == "APPROVED")
        }
    })
    .await;
}

mod periodic {
    use crate::helpers::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::periodic_sync_imports_by_itself(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::periodic_sync_imports_by_itself(Backend::Postgres).await;
    }
}
