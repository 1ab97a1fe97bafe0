//! The agent desk through its API: presence and capacity routing, queues, transfer, finalize, the
//! protocol form, notes and canned responses, and who may do what (the authorization matrix).

use std::time::Duration;

use graph_sim::SentMessage;
use serde_json::{Value, json};
use store::auth::Role;

use crate::helpers::{Person, TestApp, wait_until};
use crate::on_both_backends;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A queue created by the admin with desk settings; returns its id.
pub async fn queue(app: &TestApp, key: &str, settings: Value) -> i64 {
    let mut body = json!({ "key": key, "name": key.to_uppercase() });
    if let (Some(b), Some(s)) = (body.as_object_mut(), settings.as_object()) {
        b.extend(s.clone());
    }
    let resp = app.api_post("/api/queues", &body).await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["queue"]["id"]
        .as_i64()
        .unwrap()
}

/// An agent with their own limit, member of `queues`.
pub async fn agent(app: &TestApp, name: &str, limit: i64, queues: &[i64]) -> Person {
    let person = app.person(Role::Agent, name).await;
    admin_patch_user(
        app,
        person.id,
        json!({ "max_concurrent": limit, "queue_ids": queues }),
    )
    .await;
    person
}

pub async fn admin_patch_user(app: &TestApp, id: i64, body: Value) {
    let resp = app
        .http
        .patch(format!("{}/api/users/{id}", app.address))
        .bearer_auth(&app.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

pub async fn conversation(app: &TestApp, id: i64) -> Value {
    app.api_get(&format!("/api/conversations/{id}")).await["conversation"].clone()
}

pub async fn wait_assigned_to(app: &TestApp, id: i64, agent_id: i64) -> Value {
    wait_until(
        &format!("conversation {id} assigned to {agent_id}"),
        TIMEOUT,
        || async {
            let c = conversation(app, id).await;
            c["state"] == "assigned" && c["agent_id"] == agent_id
        },
    )
    .await;
    conversation(app, id).await
}

/// The admin moves a conversation to a queue (as the bot's hand-off would).
pub async fn hand_to_queue(app: &TestApp, id: i64, queue_id: i64) {
    let resp = app
        .api_post(
            &format!("/api/conversations/{id}/transfer"),
            &json!({ "to_queue_id": queue_id }),
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

fn texts_to(app: &TestApp, wa_id: &str) -> Vec<String> {
    app.sim
        .sent_messages()
        .iter()
        .filter(|m: &&SentMessage| m.to == wa_id)
        .map(|m| {
            m.body["text"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn wait_text_to(app: &TestApp, wa_id: &str, needle: &str) {
    wait_until(
        &format!("{wa_id} to receive {needle:?}"),
        TIMEOUT,
        || async { texts_to(app, wa_id).iter().any(|t| t.contains(needle)) },
    )
    .await;
}

async fn loads(app: &TestApp) -> Vec<(i64, i64)> {
    app.api_get("/api/users").await["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["id"].as_i64().unwrap(), u["load"].as_i64().unwrap()))
        .collect()
}

pub async fn disposition(app: &TestApp, label: &str, queue_id: Option<i64>) -> i64 {
    let resp = app
        .api_post(
            "/api/dispositions",
            &json!({ "label": label, "queue_id": queue_id }),
        )
        .await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["disposition"]["id"]
        .as_i64()
        .unwrap()
}

on_both_backends!(
    routing_fills_agents_up_to_their_limit_then_waits,
    presence_decides_who_receives,
    queue_members_only_and_waiting_customers_learn_their_position,
    transfer_to_an_agent_a_busy_agent_and_a_queue,
    finalize_needs_a_disposition_and_required_fields,
    the_protocol_form_validates_codigo_and_carries_over,
    notes_and_canned_responses,
    the_authorization_matrix,
    users_passwords_and_the_supervisor_overview,
    an_agent_starts_a_conversation_with_a_protocol,
    a_long_history_is_read_page_by_page,
    the_channel_connection_test_calls_graph,
);

async fn routing_fills_agents_up_to_their_limit_then_waits(app: TestApp) {
    let ana = agent(&app, "Ana", 2, &[]).await;
    ana.set_presence("available").await;
    let first = app.open_conversation("5511900000001").await;
    let second = app.open_conversation("5511900000002").await;
    let third = app.open_conversation("5511900000003").await;
    // Not in a queue: any available person may take them; Ana's limit is 2.
    wait_assigned_to(&app, first, ana.id).await;
    wait_assigned_to(&app, second, ana.id).await;
    let waiting = conversation(&app, third).await;
    assert_eq!(waiting["state"], "queued", "{waiting}");
    let mine = ana.get_ok("/api/conversations?scope=mine&open=true").await;
    assert_eq!(mine["conversations"].as_array().unwrap().len(), 2);
    let line = ana
        .get_ok("/api/conversations?scope=waiting&open=true")
        .await;
    assert_eq!(line["conversations"][0]["id"], third);

    // Raising the limit frees capacity at once.
    admin_patch_user(&app, ana.id, json!({ "max_concurrent": 3 })).await;
    wait_assigned_to(&app, third, ana.id).await;

    // Finalizing frees capacity for the next customer.
    let fourth = app.open_conversation("5511900000004").await;
    assert_eq!(conversation(&app, fourth).await["state"], "queued");
    let done = disposition(&app, "Resolvido", None).await;
    ana.post_ok(
        &format!("/api/conversations/{first}/finalize"),
        &json!({ "disposition_id": done }),
    )
    .await;
    wait_assigned_to(&app, fourth, ana.id).await;
    assert!(loads(&app).await.contains(&(ana.id, 3)));
}

async fn presence_decides_who_receives(app: TestApp) {
    let bia = agent(&app, "Bia", 3, &[]).await;
    let caio = agent(&app, "Caio", 3, &[]).await;
    // A pause needs a reason from the list.
    let (status, body) = bia
        .put("/api/presence", &json!({ "presence": "paused" }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("pause_reason_required"))
    );
    bia.set_presence("paused").await;
    caio.set_presence("available").await;
    let a = app.open_conversation("5511900000011").await;
    wait_assigned_to(&app, a, caio.id).await;
    // Caio goes offline; Bia comes back: the next one is hers.
    caio.set_presence("offline").await;
    let b = app.open_conversation("5511900000012").await;
    assert_eq!(conversation(&app, b).await["state"], "queued");
    bia.set_presence("available").await;
    wait_assigned_to(&app, b, bia.id).await;
    // Both have one conversation now; Caio has been idle longer than Bia, so he gets the next.
    caio.set_presence("available").await;
    let c = app.open_conversation("5511900000013").await;
    wait_assigned_to(&app, c, caio.id).await;
    let d = app.open_conversation("5511900000014").await;
    wait_assigned_to(&app, d, bia.id).await;
    let me = bia.get_ok("/api/auth/me").await;
    assert_eq!(me["user"]["email"], bia.email);
}

async fn queue_members_only_and_waiting_customers_learn_their_position(app: TestApp) {
    let suporte = queue(
        &app,
        "suporte",
        json!({
            "waiting_message": "Fila {{fila}}: você é o {{posicao}}º. Protocolo {{protocolo}}.",
            "position_update_secs": 1,
            "max_wait_secs": 1,
            "max_wait_message": "Ainda estamos ocupados."
        }),
    )
    .await;
    let financeiro = queue(&app, "financeiro", json!({})).await;
    let dani = agent(&app, "Dani", 1, &[financeiro]).await;
    dani.set_presence("available").await;
    let x = app.open_conversation("5511900000021").await;
    let y = app.open_conversation("5511900000022").await;
    // Both went to Dani's line before the hand-off? Only one fits her limit of 1.
    wait_assigned_to(&app, x, dani.id).await;
    hand_to_queue(&app, y, suporte).await;
    // Dani is not a member of suporte: y waits there, and its customer learns the position.
    wait_text_to(&app, "5511900000022", "você é o 1º").await;
    let protocol = conversation(&app, y).await["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        texts_to(&app, "5511900000022")
            .iter()
            .any(|t| t.contains(&protocol))
    );
    let z = app.open_conversation("5511900000023").await;
    hand_to_queue(&app, z, suporte).await;
    wait_text_to(&app, "5511900000023", "você é o 2º").await;
    wait_text_to(&app, "5511900000022", "Ainda estamos ocupados.").await;
    // Sent once, however long the wait.
    let busy = |app: &TestApp| {
        texts_to(app, "5511900000022")
            .iter()
            .filter(|t| t.contains("Ainda estamos"))
            .count()
    };
    assert_eq!(busy(&app), 1);
    assert_eq!(conversation(&app, y).await["state"], "queued");
    // A member arrives: first come, first served.
    let edu = agent(&app, "Edu", 1, &[suporte]).await;
    edu.set_presence("available").await;
    wait_assigned_to(&app, y, edu.id).await;
    assert_eq!(conversation(&app, z).await["state"], "queued");
    // z moved up: told again (at most once per second).
    wait_text_to(&app, "5511900000023", "você é o 1º").await;
    let overview = app.api_get("/api/supervisor/overview").await;
    let line = overview["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == suporte)
        .unwrap()
        .clone();
    assert_eq!(
        (line["waiting"].as_i64(), line["assigned"].as_i64()),
        (Some(1), Some(1)),
        "{line}"
    );
    assert!(line["longest_wait_ms"].as_i64().unwrap() > 0);
}

async fn transfer_to_an_agent_a_busy_agent_and_a_queue(app: TestApp) {
    let vendas = queue(
        &app,
        "vendas",
        json!({ "transfer_message": "Transferimos você para {{fila}}." }),
    )
    .await;
    let fabi = agent(&app, "Fabi", 1, &[]).await;
    let gabi = agent(&app, "Gabi", 1, &[]).await;
    fabi.set_presence("available").await;
    let a = app.open_conversation("5511900000031").await;
    wait_assigned_to(&app, a, fabi.id).await;
    gabi.set_presence("available").await;
    fabi.post_ok(
        &format!("/api/conversations/{a}/messages"),
        &json!({ "type": "text", "body": "Olá!" }),
    )
    .await;

    // To Gabi, who has room: assigned at once, with the history whole.
    let moved = fabi
        .post_ok(
            &format!("/api/conversations/{a}/transfer"),
            &json!({ "to_agent_id": gabi.id, "note": "cliente quer 2ª via" }),
        )
        .await;
    assert_eq!(moved["state"], "assigned");
    wait_assigned_to(&app, a, gabi.id).await;
    let history = gabi
        .get_ok(&format!("/api/conversations/{a}/messages"))
        .await;
    assert!(
        history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["body"] == "Olá!")
    );
    // Fabi no longer sees it.
    assert_eq!(fabi.get(&format!("/api/conversations/{a}")).await.0, 404);

    // Nobody is transferred to an agent who is offline.
    let hugo = agent(&app, "Hugo", 1, &[]).await;
    let (status, body) = gabi
        .post(
            &format!("/api/conversations/{a}/transfer"),
            &json!({ "to_agent_id": hugo.id }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("agent_offline"))
    );
    // Gabi is full now: a transfer to her waits in her personal line.
    let b = app.open_conversation("5511900000032").await;
    wait_assigned_to(&app, b, fabi.id).await;
    let moved = fabi
        .post_ok(
            &format!("/api/conversations/{b}/transfer"),
            &json!({ "to_agent_id": gabi.id }),
        )
        .await;
    assert_eq!(moved["state"], "queued");
    let c = conversation(&app, b).await;
    assert_eq!(c["waiting_agent_id"], gabi.id);
    // Fabi has room again but the conversation waits for Gabi, not for her.
    let line = gabi.get_ok("/api/conversations?scope=waiting").await;
    assert_eq!(line["conversations"][0]["id"], b);
    assert_eq!(conversation(&app, b).await["state"], "queued");
    // When Gabi's conversation goes to a queue, hers is next.
    let to_queue = gabi
        .post_ok(
            &format!("/api/conversations/{a}/transfer"),
            &json!({ "to_queue_id": vendas }),
        )
        .await;
    assert_eq!(to_queue["state"], "queued");
    wait_assigned_to(&app, b, gabi.id).await;
    wait_text_to(&app, "5511900000031", "Transferimos você para VENDAS.").await;
    // Once per transfer; the first one (to Gabi, with no queue yet) had no message to send.
    let told = texts_to(&app, "5511900000031")
        .iter()
        .filter(|t| t.starts_with("Transferimos"))
        .count();
    assert_eq!(told, 1);

    let transfers = app
        .api_get(&format!("/api/conversations/{a}/transfers"))
        .await["transfers"]
        .clone();
    let transfers = transfers.as_array().unwrap();
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    assert_eq!(transfers[0]["from_agent_id"], fabi.id);
    assert_eq!(transfers[0]["to_agent_id"], gabi.id);
    assert_eq!(transfers[0]["note"], "cliente quer 2ª via");
    assert_eq!(transfers[0]["by_user_id"], fabi.id);
    assert_eq!(transfers[1]["to_queue_id"], vendas);
    // The protocol number stays the same through transfers.
    let protocol = conversation(&app, a).await["protocol"].clone();
    let found = app
        .api_get(&format!("/api/protocols/{}", protocol.as_str().unwrap()))
        .await;
    assert_eq!(found["conversation"]["id"], a);
    assert_eq!(found["conversation"]["agent_id"], Value::Null);
    // An agent without access to it cannot find it by its number either.
    assert_eq!(
        fabi.get(&format!("/api/protocols/{}", protocol.as_str().unwrap()))
            .await
            .0,
        404
    );
}

async fn finalize_needs_a_disposition_and_required_fields(app: TestApp) {
    let sac = queue(
        &app,
        "sac",
        json!({ "closing_message": "Protocolo {{protocolo}} encerrado." }),
    )
    .await;
    let hugo = agent(&app, "Hugo", 2, &[sac]).await;
    let field = app
        .api_post(
            "/api/custom-fields",
            &json!({ "queue_id": sac, "key": "pedido", "label": "Número do pedido", "kind": "number", "required": true }),
        )
        .await;
    assert_eq!(field.status(), 201);
    let resolved = disposition(&app, "Resolvido", Some(sac)).await;
    let other_queue = queue(&app, "outra", json!({})).await;
    let elsewhere = disposition(&app, "Só da outra fila", Some(other_queue)).await;

    let a = app.open_conversation("5511900000041").await;
    hand_to_queue(&app, a, sac).await;
    hugo.set_presence("available").await;
    wait_assigned_to(&app, a, hugo.id).await;
    let path = format!("/api/conversations/{a}/finalize");
    let (status, body) = hugo.post(&path, &json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("disposition_required"))
    );
    let (status, _) = hugo
        .post(&path, &json!({ "disposition_id": elsewhere }))
        .await;
    assert_eq!(status, 400);
    let (status, body) = hugo
        .post(&path, &json!({ "disposition_id": resolved }))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"], json!(["Número do pedido"]));
    let form = format!("/api/conversations/{a}/form");
    let (status, _) = hugo
        .patch(&form, &json!({ "custom": { "pedido": "abc" } }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        hugo.patch(&form, &json!({ "custom": { "pedido": "123" } }))
            .await
            .0,
        200
    );
    let done = hugo
        .post_ok(&path, &json!({ "disposition_id": resolved, "note": "ok" }))
        .await;
    assert_eq!(done["conversation"]["close_reason"], "finalized");
    assert_eq!(done["conversation"]["disposition_id"], resolved);
    let protocol = done["conversation"]["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_text_to(
        &app,
        "5511900000041",
        &format!("Protocolo {protocol} encerrado."),
    )
    .await;
    // Read-only now.
    let (status, body) = hugo
        .post(
            &format!("/api/conversations/{a}/messages"),
            &json!({ "type": "text", "body": "?" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conversation_closed"))
    );
    assert_eq!(hugo.patch(&form, &json!({ "subject": "x" })).await.0, 409);
    assert!(loads(&app).await.contains(&(hugo.id, 0)));
    // The customer writes again: a new conversation with a new protocol.
    let again = app.open_conversation("5511900000041").await;
    assert_ne!(again, a);
    assert_ne!(conversation(&app, again).await["protocol"], protocol);
}

async fn the_protocol_form_validates_codigo_and_carries_over(app: TestApp) {
    let iris = agent(&app, "Iris", 2, &[]).await;
    iris.set_presence("available").await;
    let a = app.open_conversation("5511900000051").await;
    wait_assigned_to(&app, a, iris.id).await;
    let form = format!("/api/conversations/{a}/form");
    let blank = iris.get_ok(&form).await;
    assert_eq!(blank["phone"], "5511900000051");
    assert!(blank["protocol"].as_str().unwrap().len() >= 9);

    let (status, body) = iris
        .patch(&form, &json!({ "code": "123.456.789-00" }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_document"))
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("CPF"),
        "{body}"
    );
    let (status, body) = iris
        .patch(&form, &json!({ "code": "529.982.247-25", "name": "Maria Silva", "email": "maria@example.com", "subject": "Boleto", "notes": "ligar depois" }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], "52998224725");
    assert_eq!(body["code_formatted"], "529.982.247-25");
    assert_eq!(body["code_kind"], "cpf");
    let (status, body) = iris
        .patch(&form, &json!({ "code": "12.abc.345/01de-35" }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], "12ABC34501DE35");
    assert_eq!(body["code_kind"], "cnpj");
    assert_eq!(body["code_formatted"], "12.ABC.345/01DE-35");
    assert_eq!(
        iris.patch(&form, &json!({ "email": "not-an-email" }))
            .await
            .0,
        400
    );

    let done = disposition(&app, "Resolvido", None).await;
    iris.post_ok(
        &format!("/api/conversations/{a}/finalize"),
        &json!({ "disposition_id": done }),
    )
    .await;
    // Next conversation of the same contact: the contact's data are there, the old one listed.
    let b = app.open_conversation("5511900000051").await;
    wait_assigned_to(&app, b, iris.id).await;
    let next = iris.get_ok(&format!("/api/conversations/{b}/form")).await;
    assert_eq!(next["name"], "Maria Silva");
    assert_eq!(next["code"], "12ABC34501DE35");
    assert_eq!(next["email"], "maria@example.com");
    assert_eq!(
        next["notes"],
        Value::Null,
        "notes belong to one conversation"
    );
    let history = iris
        .get_ok(&format!(
            "/api/contacts/{}/conversations",
            next["contact_id"]
        ))
        .await;
    let ids: Vec<i64> = history["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![b, a]);
    let old = iris
        .get_ok(&format!("/api/conversations/{a}/messages"))
        .await;
    assert!(!old["messages"].as_array().unwrap().is_empty());
    let old_form = iris.get_ok(&format!("/api/conversations/{a}/form")).await;
    assert_eq!(old_form["subject"], "Boleto");
    assert_eq!(old_form["notes"], "ligar depois");
}

async fn notes_and_canned_responses(app: TestApp) {
    let jo = agent(&app, "Jo", 2, &[]).await;
    jo.set_presence("available").await;
    let a = app.open_conversation("5511900000061").await;
    wait_assigned_to(&app, a, jo.id).await;
    let sent_before = app.sim.sent_messages().len();
    let (status, _) = jo
        .post(
            &format!("/api/conversations/{a}/notes"),
            &json!({ "body": "cliente irritado" }),
        )
        .await;
    assert_eq!(status, 201);
    let notes = jo.get_ok(&format!("/api/conversations/{a}/notes")).await;
    assert_eq!(notes["notes"][0]["body"], "cliente irritado");
    assert_eq!(notes["notes"][0]["user_name"], "Jo");
    // Never sent to the customer, and not in the message history.
    assert_eq!(app.sim.sent_messages().len(), sent_before);
    let history = jo.get_ok(&format!("/api/conversations/{a}/messages")).await;
    assert!(!history.to_string().contains("cliente irritado"));

    let created = app
        .api_post(
            "/api/canned-responses",
            &json!({ "shortcut": "/ola", "title": "Saudação", "body": "Olá {{nome}}, sou {{agente}}. Protocolo {{protocolo}}." }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let dup = app
        .api_post(
            "/api/canned-responses",
            &json!({ "shortcut": "ola", "title": "x", "body": "y" }),
        )
        .await;
    assert_eq!(dup.status(), 409);
    let protocol = conversation(&app, a).await["protocol"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = jo
        .get_ok(&format!("/api/canned-responses?conversation_id={a}"))
        .await;
    let ola = &list["canned_responses"][0];
    assert_eq!(ola["shortcut"], "ola");
    assert_eq!(
        ola["rendered"],
        format!("Olá Cliente Teste, sou Jo. Protocolo {protocol}.")
    );
    // Agents use them; only supervisors and admins write them.
    assert_eq!(
        jo.post(
            "/api/canned-responses",
            &json!({ "shortcut": "x", "title": "x", "body": "x" })
        )
        .await
        .0,
        403
    );
    // The window state is part of the conversation.
    let c = jo.get_ok(&format!("/api/conversations/{a}")).await["conversation"].clone();
    let expires = c["window_expires_at"].as_i64().unwrap();
    assert_eq!(
        expires,
        c["last_inbound_at"].as_i64().unwrap() + 24 * 3600 * 1000
    );
    assert_eq!(c["can_act"], true);
}

async fn the_authorization_matrix(app: TestApp) {
    let norte = queue(&app, "norte", json!({})).await;
    let sul = queue(&app, "sul", json!({})).await;
    let kai = agent(&app, "Kai", 1, &[norte]).await;
    let lia = agent(&app, "Lia", 1, &[norte]).await;
    let mel = agent(&app, "Mel", 1, &[sul]).await;
    let sup_norte = app.person(Role::Supervisor, "Sup Norte").await;
    admin_patch_user(&app, sup_norte.id, json!({ "queue_ids": [norte] })).await;
    let sup_sul = app.person(Role::Supervisor, "Sup Sul").await;
    admin_patch_user(&app, sup_sul.id, json!({ "queue_ids": [sul] })).await;

    let worked = app.open_conversation("5511900000071").await;
    hand_to_queue(&app, worked, norte).await;
    kai.set_presence("available").await;
    wait_assigned_to(&app, worked, kai.id).await;
    let waiting = app.open_conversation("5511900000072").await;
    hand_to_queue(&app, waiting, norte).await;

    let conv = |id: i64| format!("/api/conversations/{id}");
    let send = |id: i64| format!("/api/conversations/{id}/messages");
    let text = json!({ "type": "text", "body": "oi" });

    // Kai works his own conversation, files included; they are his conversation's, not Lia's.
    assert_eq!(kai.get(&conv(worked)).await.0, 200);
    assert_eq!(kai.post(&send(worked), &text).await.0, 201);
    let pdf = kai.upload(crate::samples::PDF, "contrato.pdf").await;
    assert_eq!(
        kai.post(&send(worked), &json!({ "type": "media", "media_id": pdf }))
            .await
            .0,
        201
    );
    assert_eq!(kai.get(&format!("/api/media/{pdf}")).await.0, 200);
    assert_eq!(lia.get(&format!("/api/media/{pdf}")).await.0, 404);
    // Lia (same queue) cannot see Kai's conversation: 404, existence does not leak.
    assert_eq!(lia.get(&conv(worked)).await.0, 404);
    assert_eq!(lia.post(&send(worked), &text).await.0, 404);
    assert_eq!(lia.get(&format!("{}/form", conv(worked))).await.0, 404);
    // She sees the waiting one of her queue, may take it, but not reply before.
    assert_eq!(lia.get(&conv(waiting)).await.0, 200);
    assert_eq!(lia.post(&send(waiting), &text).await.0, 403);
    assert_eq!(
        lia.post(&format!("{}/finalize", conv(waiting)), &json!({}))
            .await
            .0,
        403
    );
    assert_eq!(
        lia.post(
            &format!("{}/assign", conv(waiting)),
            &json!({ "agent_id": kai.id })
        )
        .await
        .0,
        403
    );
    // Mel (other queue) sees neither.
    assert_eq!(mel.get(&conv(waiting)).await.0, 404);
    assert_eq!(mel.get(&conv(worked)).await.0, 404);
    let listed = mel.get_ok("/api/conversations?scope=all").await;
    assert_eq!(listed["conversations"].as_array().unwrap().len(), 0);
    // Agents list colleagues to transfer to (without their e-mail), not the users admin.
    let colleagues = kai.get_ok("/api/agents").await;
    assert!(
        colleagues["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "Lia" && a["limit"] == 1)
    );
    assert!(!colleagues.to_string().contains("@atende.test"));
    assert_eq!(kai.get("/api/users").await.0, 403);
    assert_eq!(kai.get("/api/supervisor/overview").await.0, 403);
    assert_eq!(
        kai.post("/api/queues", &json!({ "key": "x", "name": "x" }))
            .await
            .0,
        403
    );
    assert_eq!(
        kai.post("/api/dispositions", &json!({ "label": "x" }))
            .await
            .0,
        403
    );
    assert_eq!(
        kai.put(
            &format!("/api/users/{}/presence", lia.id),
            &json!({ "presence": "available" })
        )
        .await
        .0,
        403
    );
    assert_eq!(
        kai.patch(
            &format!("/api/users/{}", kai.id),
            &json!({ "max_concurrent": 50 })
        )
        .await
        .0,
        403
    );
    // The norte supervisor reads both, may not reply, may assign above a limit only explicitly.
    assert_eq!(sup_norte.get(&conv(worked)).await.0, 200);
    assert_eq!(sup_norte.post(&send(worked), &text).await.0, 403);
    let (status, body) = sup_norte
        .post(
            &format!("{}/assign", conv(waiting)),
            &json!({ "agent_id": kai.id }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("agent_at_capacity"))
    );
    sup_norte
        .post_ok(
            &format!("{}/assign", conv(waiting)),
            &json!({ "agent_id": kai.id, "exceed_limit": true }),
        )
        .await;
    assert!(loads(&app).await.contains(&(kai.id, 2)));
    // ...and the sul supervisor sees nothing of norte.
    assert_eq!(sup_sul.get(&conv(worked)).await.0, 404);
    assert_eq!(
        sup_sul
            .post(
                &format!("{}/transfer", conv(worked)),
                &json!({ "to_queue_id": sul })
            )
            .await
            .0,
        404
    );
    // A supervisor changes the limit of an agent of their queue, not of another's.
    assert_eq!(
        sup_norte
            .patch(
                &format!("/api/users/{}", lia.id),
                &json!({ "max_concurrent": 4 })
            )
            .await
            .0,
        200
    );
    assert_eq!(
        sup_norte
            .patch(
                &format!("/api/users/{}", mel.id),
                &json!({ "max_concurrent": 4 })
            )
            .await
            .0,
        403
    );
    assert_eq!(
        sup_norte
            .patch(
                &format!("/api/users/{}", lia.id),
                &json!({ "role": "admin" })
            )
            .await
            .0,
        403
    );
    // Without a session: 401; with a session but no CSRF token: 403.
    let anonymous = app
        .http
        .get(format!("{}/api/conversations", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let no_csrf = app
        .http
        .post(format!("{}{}", app.address, send(worked)))
        .header("cookie", kai.cookie())
        .json(&text)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    // Nor can a media id be used to pull someone else's file into one's own conversation.
    let lias = app.open_conversation("5511900000079").await;
    admin_patch_user(&app, lia.id, json!({ "max_concurrent": 2 })).await;
    lia.set_presence("available").await;
    wait_assigned_to(&app, lias, lia.id).await;
    let (status, _) = lia
        .post(&send(lias), &json!({ "type": "media", "media_id": pdf }))
        .await;
    assert_eq!(status, 404);
}

async fn users_passwords_and_the_supervisor_overview(app: TestApp) {
    let created = app
        .api_post(
            "/api/users",
            &json!({ "email": "nina@atende.test", "name": "Nina", "role": "agent", "password": "curta" }),
        )
        .await;
    assert_eq!(created.status(), 400);
    let created = app
        .api_post(
            "/api/users",
            &json!({ "email": "Nina@Atende.test", "name": "Nina", "role": "agent", "password": "uma-senha-boa", "max_concurrent": 5 }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let nina = created.json::<Value>().await.unwrap()["user"].clone();
    assert_eq!(nina["max_concurrent"], 5);
    assert!(!nina.to_string().contains("password_hash"));
    let id = nina["id"].as_i64().unwrap();
    let session = app.sign_in(id, "nina@atende.test", "uma-senha-boa").await;
    let (status, _) = session
        .post(
            "/api/auth/password",
            &json!({ "current_password": "errada", "new_password": "outra-senha-boa" }),
        )
        .await;
    assert_eq!(status, 400);
    session
        .post_ok(
            "/api/auth/password",
            &json!({ "current_password": "uma-senha-boa", "new_password": "outra-senha-boa" }),
        )
        .await;
    let reset = app
        .api_post(&format!("/api/users/{id}/reset-password"), &json!({}))
        .await;
    assert_eq!(reset.status(), 200);
    let temporary = reset.json::<Value>().await.unwrap()["temporary_password"]
        .as_str()
        .unwrap()
        .to_owned();
    // The reset ended her sessions; the temporary password works and must be changed.
    assert_eq!(session.get("/api/auth/me").await.0, 401);
    let again = app.sign_in(id, "nina@atende.test", &temporary).await;
    assert_eq!(
        again.get_ok("/api/auth/me").await["user"]["must_change_password"],
        true
    );
    // Deactivated: no more login.
    admin_patch_user(&app, id, json!({ "active": false })).await;
    let login = app
        .http
        .post(format!("{}/api/auth/login", app.address))
        .json(&json!({ "email": "nina@atende.test", "password": temporary }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);

    let reasons = app.api_get("/api/pause-reasons").await;
    assert!(
        reasons["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "Almoço")
    );
    let overview = app.api_get("/api/supervisor/overview").await;
    assert!(
        overview["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != id)
    );
}

/// Many conversations arrive at once for few agents while the agents toggle their presence and
/// try to take conversations by hand, and (on PostgreSQL) two instances route at the same time:
/// no agent is ever seen above their limit, and in the end every free seat is filled.
async fn the_limit_holds_under_concurrency(app: TestApp, second_instance: Option<String>) {
    const CUSTOMERS: usize = 40;
    const LIMIT: i64 = 2;
    let mut agents = Vec::new();
    for name in ["Ari", "Bel", "Cid", "Duda"] {
        agents.push(agent(&app, name, LIMIT, &[]).await);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let store = app.store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut highest = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let users = store.desk_users().await.unwrap();
                highest = users.iter().map(|u| u.load).max().unwrap_or(0).max(highest);
                tokio::task::yield_now().await;
            }
            highest
        })
    };
    let addresses: Vec<String> = std::iter::once(app.address.clone())
        .chain(second_instance)
        .collect();
    let mut arrivals = Vec::new();
    for i in 0..CUSTOMERS {
        let (_, payload) = app
            .builder
            .text(&app.customer(&format!("55119100{i:05}"), "Cliente"), "Oi");
        let body = graph_sim::to_meta_json(&payload);
        let url = format!("{}/webhooks/whatsapp", addresses[i % addresses.len()]);
        let http = app.http.clone();
        arrivals.push(tokio::spawn(async move {
            let resp = http
                .post(url)
                .header("content-type", "application/json")
                .header(
                    "x-hub-signature-256",
                    graph_sim::sign(crate::helpers::APP_SECRET, &body),
                )
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }));
    }
    // Meanwhile agents flip between available and paused and grab waiting conversations.
    let mut churn = Vec::new();
    for person in &agents {
        churn.push(async move {
            for round in 0..6 {
                person
                    .set_presence(if round % 2 == 0 {
                        "available"
                    } else {
                        "paused"
                    })
                    .await;
                let waiting = person
                    .get_ok("/api/conversations?scope=waiting&open=true")
                    .await;
                for c in waiting["conversations"].as_array().unwrap().iter().take(2) {
                    let (status, body) = person
                        .post(
                            &format!("/api/conversations/{}/assign", c["id"]),
                            &json!({}),
                        )
                        .await;
                    assert!(
                        status == 200 || status == 409 || status == 404,
                        "take: {status} {body}"
                    );
                }
            }
            person.set_presence("available").await;
        });
    }
    futures::future::join_all(churn).await;
    for a in arrivals {
        a.await.unwrap();
    }
    app.inbox_drained().await;
    let seats = (agents.len() as i64 * LIMIT) as usize;
    wait_until("every seat filled", TIMEOUT, || async {
        let all = app
            .api_get("/api/conversations?scope=all&open=true&limit=500")
            .await;
        let list = all["conversations"].as_array().unwrap().clone();
        list.len() == CUSTOMERS && list.iter().filter(|c| c["state"] == "assigned").count() == seats
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let highest = watcher.await.unwrap();
    assert!(
        highest <= LIMIT,
        "an agent was seen with {highest} conversations (limit {LIMIT})"
    );
    for (id, load) in loads(&app).await {
        if agents.iter().any(|a| a.id == id) {
            assert_eq!(load, LIMIT, "agent {id}");
        }
    }
    let waiting = app
        .api_get("/api/conversations?scope=waiting&open=true&limit=500")
        .await;
    assert_eq!(
        waiting["conversations"].as_array().unwrap().len(),
        CUSTOMERS - seats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_the_limit_holds_under_concurrency() {
    if let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await {
        the_limit_holds_under_concurrency(app, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_the_limit_holds_under_concurrency_with_two_instances() {
    if let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await {
        let second = app.spawn_second_instance().await;
        the_limit_holds_under_concurrency(app, Some(second)).await;
    }
}

async fn an_agent_starts_a_conversation_with_a_protocol(app: TestApp) {
    let olga = agent(&app, "Olga", 1, &[]).await;
    let (status, started) = olga
        .post(
            "/api/conversations",
            &json!({ "wa_id": "+55 (11) 98888-7777" }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let c = &started["conversation"];
    assert_eq!(
        (c["state"].as_str(), c["agent_id"].as_i64()),
        (Some("assigned"), Some(olga.id))
    );
    assert_eq!(c["contact_wa_id"], "5511988887777");
    assert!(c["protocol"].as_str().unwrap().len() >= 9);
    // Never written: only a template may be sent.
    let (status, body) = olga
        .post(
            &format!("/api/conversations/{}/messages", c["id"]),
            &json!({ "type": "text", "body": "Olá" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("outside_service_window"))
    );
    // The same customer again: the open conversation, not a new one.
    let (status, again) = olga
        .post("/api/conversations", &json!({ "wa_id": "5511988887777" }))
        .await;
    assert_eq!((status, &again["conversation"]["id"]), (200, &c["id"]));
    // Her limit is 1: a second customer waits for an explicit decision.
    let (status, body) = olga
        .post("/api/conversations", &json!({ "wa_id": "5511988886666" }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("agent_at_capacity"))
    );
    let paulo = agent(&app, "Paulo", 1, &[]).await;
    let (status, body) = paulo
        .post("/api/conversations", &json!({ "wa_id": "5511988887777" }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conversation_open_elsewhere"))
    );
    assert_eq!(
        paulo
            .post("/api/conversations", &json!({ "wa_id": "123" }))
            .await
            .0,
        400
    );
}

async fn a_long_history_is_read_page_by_page(app: TestApp) {
    const MESSAGES: usize = 5_000;
    let id = app.open_conversation("5511900000131").await;
    // Written straight into the store: this test is about reading, not about the webhook.
    let customer = app.customer("5511900000131", "Cliente Teste");
    for chunk in 0..(MESSAGES / 500) {
        let items: Vec<store::conversations::InboundItem> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                store::conversations::InboundItem::Message(
                    store::conversations::InboundMessageRecord {
                        channel_id: app.channel_id,
                        wa_id: customer.wa_id.clone(),
                        profile_name: None,
                        wamid: format!("wamid.long.{n}"),
                        kind: "text".into(),
                        body: Some(format!("mensagem {n}")),
                        content_json:
                            json!({ "type": "text", "text": { "body": format!("mensagem {n}") } })
                                .to_string(),
                        reply_to_wamid: None,
                        wa_timestamp_ms: None,
                        media: None,
                    },
                )
            })
            .collect();
        app.store
            .apply_inbound(-1, &items, &domain::protocol::ProtocolConfig::default())
            .await
            .unwrap();
    }
    let mut before: Option<i64> = None;
    let mut seen = 0;
    let mut pages = 0;
    let started = std::time::Instant::now();
    loop {
        let path = match before {
            Some(b) => format!("/api/conversations/{id}/messages?limit=100&before={b}"),
            None => format!("/api/conversations/{id}/messages?limit=100"),
        };
        let page = app.api_get(&path).await;
        let messages = page["messages"].as_array().unwrap();
        assert!(messages.len() <= 100);
        // Chronological within a page, and older than the previous page.
        let ids: Vec<i64> = messages.iter().map(|m| m["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        if let (Some(b), Some(last)) = (before, ids.last()) {
            assert!(*last < b);
        }
        seen += messages.len();
        pages += 1;
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, MESSAGES + 1, "every message once");
    assert_eq!(pages, 51);
    eprintln!(
        "read {MESSAGES} messages in {pages} pages in {:?}",
        started.elapsed()
    );
}

async fn the_channel_connection_test_calls_graph(app: TestApp) {
    let ok = app
        .api_post(
            &format!("/api/channels/{}/test", app.channel_id),
            &json!({}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["verified_name"], "Atende Simulado");
    // A token Meta refuses: a clear pt-BR explanation, not a 500.
    let resp = app
        .http
        .patch(format!("{}/api/channels/{}", app.address, app.channel_id))
        .bearer_auth(&app.token)
        .json(&json!({ "access_token": "wrong-token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bad: Value = app
        .api_post(
            &format!("/api/channels/{}/test", app.channel_id),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bad["ok"], false, "{bad}");
    assert!(
        bad["explanation"].as_str().unwrap().contains("token"),
        "{bad}"
    );
}
