//! Who may see which conversation, and who may write the desk's configuration (issue #11):
//! another queue's history stays closed to an agent who starts a conversation with its customer,
//! supervisors write only their own queues' canned responses, a user is created whole or not at
//! all, and the bot's conversations are not every supervisor's.

use std::time::Duration;

use serde_json::{Value, json};
use store::auth::Role;

use crate::desk::{
    admin_patch_user, agent, conversation, disposition, hand_to_queue, queue, wait_assigned_to,
};
use crate::helpers::{Person, TestApp, wait_until};
use crate::on_both_backends;

const TIMEOUT: Duration = Duration::from_secs(20);

on_both_backends!(
    an_agent_starting_a_conversation_does_not_read_other_queues_history,
    supervisors_write_canned_responses_of_their_queues_only,
    a_user_with_an_unknown_queue_is_refused_and_not_created,
    bot_conversations_are_not_every_supervisors,
);

fn ids(list: &Value, key: &str) -> Vec<i64> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect()
}

/// The worker finalizes their conversation with a global disposition.
async fn finalize(person: &Person, id: i64, done: i64) {
    person
        .post_ok(
            &format!("/api/conversations/{id}/finalize"),
            &json!({ "disposition_id": done, "send_closing_message": false }),
        )
        .await;
}

async fn an_agent_starting_a_conversation_does_not_read_other_queues_history(app: TestApp) {
    let q1 = queue(&app, "um", json!({})).await;
    let q2 = queue(&app, "dois", json!({})).await;
    let kai = agent(&app, "Kai", 3, &[q1]).await;
    let mel = agent(&app, "Mel", 3, &[q2]).await;
    // Ana (queue 1) stays offline: routing never gives her the customer's conversations.
    let ana = agent(&app, "Ana", 3, &[q1]).await;
    let done = disposition(&app, "Resolvido", None).await;
    let wa_id = "5511900000501";
    kai.set_presence("available").await;
    mel.set_presence("available").await;

    // An earlier conversation in queue 1, Kai's.
    let own_queue = app.open_conversation(wa_id).await;
    hand_to_queue(&app, own_queue, q1).await;
    wait_assigned_to(&app, own_queue, kai.id).await;
    finalize(&kai, own_queue, done).await;

    // Then one that Kai transfers to queue 2, where Mel writes notes, the form and a file.
    let other_queue = app.open_conversation(wa_id).await;
    hand_to_queue(&app, other_queue, q1).await;
    wait_assigned_to(&app, other_queue, kai.id).await;
    kai.post_ok(
        &format!("/api/conversations/{other_queue}/transfer"),
        &json!({ "to_queue_id": q2 }),
    )
    .await;
    wait_assigned_to(&app, other_queue, mel.id).await;
    let base = format!("/api/conversations/{other_queue}");
    mel.post_ok(
        &format!("{base}/notes"),
        &json!({ "body": "segredo da fila 2" }),
    )
    .await;
    let (status, body) = mel
        .patch(&format!("{base}/form"), &json!({ "subject": "Cobrança" }))
        .await;
    assert_eq!(status, 200, "{body}");
    let pdf = mel.upload(crate::samples::PDF, "fatura.pdf").await;
    mel.post_ok(
        &format!("{base}/messages"),
        &json!({ "type": "media", "media_id": pdf }),
    )
    .await;
    finalize(&mel, other_queue, done).await;
    let protocol = conversation(&app, other_queue).await["protocol"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ana starts a conversation with that customer: allowed, it is her own.
    let (status, started) = ana
        .post("/api/conversations", &json!({ "wa_id": wa_id }))
        .await;
    assert_eq!(status, 201, "{started}");
    let current = started["conversation"]["id"].as_i64().unwrap();
    let contact_id = started["conversation"]["contact_id"].as_i64().unwrap();

    // Queue 2's conversation stays closed to her, whatever the route.
    for path in [
        base.clone(),
        format!("{base}/messages"),
        format!("{base}/form"),
        format!("{base}/notes"),
        format!("{base}/transfers"),
        format!("/api/media/{pdf}"),
        format!("/api/protocols/{protocol}"),
        format!("/api/canned-responses?conversation_id={other_queue}"),
    ] {
        let (status, body) = ana.get(&path).await;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    // The contact's history lists her conversation and queue 1's, not queue 2's.
    let history = ana
        .get_ok(&format!("/api/contacts/{contact_id}/conversations"))
        .await;
    assert_eq!(ids(&history, "conversations"), vec![current, own_queue]);
    // The earlier conversation of her own queue she reads, messages and form included.
    assert_eq!(
        ana.get(&format!("/api/conversations/{own_queue}")).await.0,
        200
    );
    let old = ana
        .get_ok(&format!("/api/conversations/{own_queue}/messages"))
        .await;
    assert!(!old["messages"].as_array().unwrap().is_empty(), "{old}");
    assert_eq!(
        ana.get(&format!("/api/conversations/{own_queue}/form"))
            .await
            .0,
        200
    );

    // Kai, who transferred queue 2's conversation, reads it when he serves the customer again;
    // and Ana's, since a conversation an agent starts belongs to her queue (queue 1, his too).
    finalize(&ana, current, done).await;
    let (status, again) = kai
        .post("/api/conversations", &json!({ "wa_id": wa_id }))
        .await;
    assert_eq!(status, 201, "{again}");
    let notes = kai.get_ok(&format!("{base}/notes")).await;
    assert_eq!(notes["notes"][0]["body"], "segredo da fila 2");
    assert_eq!(
        kai.get(&format!("/api/conversations/{current}")).await.0,
        200
    );
    // Mel (queue 2) never reads Ana's queue-1 conversation.
    assert_eq!(
        mel.get(&format!("/api/conversations/{current}")).await.0,
        404
    );
    // Mel, serving nobody of this customer now, reads only what was hers.
    assert_eq!(mel.get(&base).await.0, 200);
    assert_eq!(
        mel.get(&format!("/api/conversations/{own_queue}")).await.0,
        404
    );
}

/// A canned response created by the admin; returns its id.
async fn admin_canned(app: &TestApp, body: Value) -> i64 {
    let resp = app.api_post("/api/canned-responses", &body).await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["canned_response"]["id"]
        .as_i64()
        .unwrap()
}

async fn supervisors_write_canned_responses_of_their_queues_only(app: TestApp) {
    let a = queue(&app, "a", json!({})).await;
    let b = queue(&app, "b", json!({})).await;
    let sup = app.person(Role::Supervisor, "Sup A").await;
    admin_patch_user(&app, sup.id, json!({ "queue_ids": [a] })).await;
    let create = |shortcut: &str, queue_id: Option<i64>| json!({ "shortcut": shortcut, "title": "T", "body": "Olá {{nome}}", "queue_id": queue_id });
    let global = admin_canned(&app, create("global", None)).await;
    let of_b = admin_canned(&app, create("fila-b", Some(b))).await;
    let at = |id: i64| format!("/api/canned-responses/{id}");

    // Another queue's, the global ones (they reach every queue): 403, and nothing changes.
    for (shortcut, queue_id) in [("novo-b", Some(b)), ("novo-global", None)] {
        let (status, body) = sup
            .post("/api/canned-responses", &create(shortcut, queue_id))
            .await;
        assert_eq!(status, 403, "create {shortcut}: {body}");
    }
    for id in [global, of_b] {
        let (status, body) = sup.patch(&at(id), &create("mudado", Some(a))).await;
        assert_eq!(status, 403, "edit {id}: {body}");
        let (status, body) = sup.call(reqwest::Method::DELETE, &at(id), None).await;
        assert_eq!(status, 403, "delete {id}: {body}");
    }
    let all = app.api_get("/api/canned-responses").await;
    let shortcuts: Vec<&str> = all["canned_responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["shortcut"].as_str())
        .collect();
    assert_eq!(shortcuts, vec!["fila-b", "global"], "{all}");

    // Their own queue's: create, edit, delete; but not move it to another queue or to all.
    let (status, body) = sup
        .post("/api/canned-responses", &create("fila-a", Some(a)))
        .await;
    assert_eq!(status, 201, "{body}");
    let own = body["canned_response"]["id"].as_i64().unwrap();
    let (status, body) = sup.patch(&at(own), &create("fila-a2", Some(a))).await;
    assert_eq!(
        (status, body["canned_response"]["shortcut"].as_str()),
        (200, Some("fila-a2")),
        "{body}"
    );
    for queue_id in [Some(b), None] {
        let (status, body) = sup.patch(&at(own), &create("fila-a3", queue_id)).await;
        assert_eq!(status, 403, "move to {queue_id:?}: {body}");
    }
    let (status, _) = sup.call(reqwest::Method::DELETE, &at(own), None).await;
    assert_eq!(status, 200);
    // A queue that does not exist is a mistake, even for an admin.
    let unknown = app
        .api_post("/api/canned-responses", &create("x", Some(999_999)))
        .await;
    assert_eq!(unknown.status(), 400);

    // The siblings stay admin-only: dispositions and custom fields, even of the own queue.
    let (status, _) = sup
        .post("/api/dispositions", &json!({ "label": "x", "queue_id": a }))
        .await;
    assert_eq!(status, 403);
    let (status, _) = sup
        .post(
            "/api/custom-fields",
            &json!({ "queue_id": a, "key": "x", "label": "X" }),
        )
        .await;
    assert_eq!(status, 403);
}

async fn a_user_with_an_unknown_queue_is_refused_and_not_created(app: TestApp) {
    let real = queue(&app, "real", json!({})).await;
    let body = |email: &str, queue_ids: Value| {
        json!({ "email": email, "name": "Nova", "role": "agent", "password": "senha-segura-123",
            "max_concurrent": 2, "queue_ids": queue_ids })
    };
    let resp = app
        .api_post(
            "/api/users",
            &body("nova@atende.test", json!([real, 999_999])),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let answer: Value = resp.json().await.unwrap();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("999999"),
        "{answer}"
    );
    let users = app.api_get("/api/users").await;
    assert!(!users.to_string().contains("nova@atende.test"), "{users}");

    // With real queues (even repeated) the user, the limit and the queues come together.
    let resp = app
        .api_post("/api/users", &body("nova@atende.test", json!([real, real])))
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["user"]["max_concurrent"], 2, "{created}");
    assert_eq!(created["user"]["queue_ids"], json!([real]), "{created}");
    let again = app
        .api_post("/api/users", &body("nova@atende.test", json!([real])))
        .await;
    assert_eq!(again.status(), 409);
}

/// A menu whose first option hands the customer to queue `norte`, the second ends the bot.
fn two_way_flow() -> Value {
    json!({
        "start": "menu",
        "human_queue": "norte",
        "steps": {
            "menu": {
                "type": "menu",
                "text": "Protocolo {{protocolo}}. Escolha:",
                "send_protocol": true,
                "options": [
                    {"id": "pessoa", "title": "Atendente", "next": "fila"},
                    {"id": "sair", "title": "Sair", "next": "fim"}
                ]
            },
            "fila": {"type": "handoff", "queue": "norte"},
            "fim": {"type": "end", "text": "Até logo!"}
        }
    })
}

async fn wait_state(app: &TestApp, id: i64, state: &str) {
    wait_until(&format!("conversation {id} {state}"), TIMEOUT, || async {
        conversation(app, id).await["state"] == state
    })
    .await;
}

async fn customer_says(app: &TestApp, wa_id: &str, text: &str) {
    let customer = app.customer(wa_id, "Cliente Teste");
    let (_, payload) = app.builder.text(&customer, text);
    assert_eq!(app.post_webhook(&payload).await.status(), 200);
}

async fn bot_conversations_are_not_every_supervisors(app: TestApp) {
    let norte = queue(&app, "norte", json!({})).await;
    let sup = app.person(Role::Supervisor, "Sup Norte").await;
    admin_patch_user(&app, sup.id, json!({ "queue_ids": [norte] })).await;
    let resp = app
        .api_post(
            "/api/flows",
            &json!({ "name": "Triagem", "definition": two_way_flow() }),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let mut tab = sup.socket(None).await;

    // A customer talking to the bot, and one the bot said goodbye to: admins only.
    let talking = app.open_conversation("5511900000601").await;
    wait_state(&app, talking, "bot").await;
    let ended = app.open_conversation("5511900000602").await;
    customer_says(&app, "5511900000602", "2").await;
    wait_state(&app, ended, "closed").await;
    for id in [talking, ended] {
        let (status, body) = sup.get(&format!("/api/conversations/{id}")).await;
        assert_eq!(status, 404, "{body}");
        let (status, _) = sup.get(&format!("/api/conversations/{id}/messages")).await;
        assert_eq!(status, 404);
    }
    let listed = sup.get_ok("/api/conversations?scope=all").await;
    assert!(ids(&listed, "conversations").is_empty(), "{listed}");

    // One in no queue that reached people (an integration's, waiting for anyone): any agent may
    // take it, so the supervisor oversees it.
    let resp = app
        .api_post("/api/conversations", &json!({ "wa_id": "5511900000603" }))
        .await;
    assert_eq!(resp.status(), 201);
    let shared = resp.json::<Value>().await.unwrap()["conversation"]["id"]
        .as_i64()
        .unwrap();
    let (status, body) = sup.get(&format!("/api/conversations/{shared}")).await;
    assert_eq!(
        (status, &body["conversation"]["can_manage"]),
        (200, &json!(true))
    );
    let listed = sup.get_ok("/api/conversations?scope=all").await;
    assert_eq!(ids(&listed, "conversations"), vec![shared]);
    // Live, the same: the shared one's opening arrives, nothing of the bot's before it.
    let (_, before) = tab
        .wait_for("the shared conversation opening", |m| {
            m["type"] == "event" && m["conversation_id"] == shared
        })
        .await;
    let leaked: Vec<&Value> = before
        .iter()
        .filter(|m| m["conversation_id"] == talking || m["conversation_id"] == ended)
        .collect();
    assert!(
        leaked.is_empty(),
        "the bot's conversations reached the supervisor: {leaked:?}"
    );

    // Handed to the supervisor's queue, the conversation is theirs, bot transcript included.
    customer_says(&app, "5511900000601", "1").await;
    wait_state(&app, talking, "queued").await;
    let history = sup
        .get_ok(&format!("/api/conversations/{talking}/messages"))
        .await;
    assert!(
        history.to_string().contains("Escolha:"),
        "no bot transcript: {history}"
    );
    tab.wait_for("the hand-off to norte", |m| {
        m["type"] == "event" && m["conversation_id"] == talking
    })
    .await;
}
