//! Scheduled messages: listed, edited and cancelled (a cancelled one never fires), fired exactly
//! once across a restart (even one that left a claim behind) and with two instances on
//! PostgreSQL, and a schedule whose template became unusable fails with its reason.

use std::time::Duration;

use serde_json::{Value, json};
use store::auth::Role;

use crate::desk::{agent, hand_to_queue, queue};
use crate::helpers::{Backend, TestApp, spawn_app, wait_until};
use crate::hsm_send::{TIMEOUT, reminder_components, seed_template, templates_to};
use crate::on_both_backends;

on_both_backends!(
    schedules_are_listed_edited_and_cancelled,
    a_schedule_whose_template_was_paused_fails_with_its_reason,
    the_bot_schedules_a_reminder,
);

fn reminder(template_id: i64, extra: Value) -> Value {
    let mut body = json!({ "type": "template", "template_id": template_id,
                           "variables": {"1": "Ana", "2": "R$ 10,00"} });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

/// `GET` with the admin token against `base` (another instance after a restart).
async fn get_at(app: &TestApp, base: &str, path: &str) -> Value {
    let resp = app
        .http
        .get(format!("{base}{path}"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.unwrap()
}

async fn create_at(app: &TestApp, base: &str, body: &Value) -> Value {
    let resp = app
        .http
        .post(format!("{base}/api/schedules"))
        .bearer_auth(&app.token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{answer}");
    answer["schedule"].clone()
}

async fn wait_schedule_at(app: &TestApp, base: &str, id: i64, state: &str) -> Value {
    let path = format!("/api/schedules/{id}");
    wait_until(&format!("schedule {id} {state}"), TIMEOUT, || async {
        get_at(app, base, &path).await["schedule"]["state"] == state
    })
    .await;
    get_at(app, base, &path).await["schedule"].clone()
}

async fn schedules_are_listed_edited_and_cancelled(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let billing = queue(&app, "cobranca", json!({})).await;
    let other = queue(&app, "outra", json!({})).await;
    let wa_id = "5511987652001";
    let conversation_id = app.open_conversation(wa_id).await;
    hand_to_queue(&app, conversation_id, billing).await;
    let sueli = app.person(Role::Supervisor, "Sueli").await;
    crate::desk::admin_patch_user(&app, sueli.id, json!({ "queue_ids": [billing] })).await;
    let olga = agent(&app, "Olga", 3, &[billing]).await;
    let later = store::now_ms() + 3_600_000;

    // Who may: anonymous 401; an agent lacks `schedule_messages` by default (403).
    let resp = app
        .http
        .post(format!("{}/api/schedules", app.address))
        .json(&reminder(
            template_id,
            json!({ "conversation_id": conversation_id, "due_at": later }),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, denied) = olga
        .post(
            "/api/schedules",
            &reminder(
                template_id,
                json!({ "conversation_id": conversation_id, "due_at": later }),
            ),
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    assert!(
        denied["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Agendar mensagens")
    );
    let (status, _) = olga.get("/api/schedules").await;
    assert_eq!(status, 403);

    // The supervisor of the queue schedules one for later, from the conversation.
    let (status, created) = sueli
        .post(
            "/api/schedules",
            &reminder(
                template_id,
                json!({ "conversation_id": conversation_id, "at": "2099-01-05T09:00:00-03:00",
                        "note": "cobrança", "idempotency_key": "s-1" }),
            ),
        )
        .await;
    assert_eq!(status, 400, "more than a year ahead: {created}");
    let (status, created) = sueli
        .post(
            "/api/schedules",
            &reminder(
                template_id,
                json!({ "conversation_id": conversation_id, "due_at": later,
                        "note": "cobrança", "idempotency_key": "s-1" }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let a = &created["schedule"];
    let a_id = a["id"].as_i64().unwrap();
    assert_eq!(a["state"], "pending");
    assert_eq!(a["queue_id"], billing);
    assert_eq!(a["template"]["name"], "lembrete");
    assert_eq!(a["template_values"]["body"]["1"], "Ana");
    assert_eq!(a["contact_wa_id"], wa_id);
    // The reply route reads back in the vocabulary a request uses.
    assert_eq!(a["reply_route"], json!({"target": "channel"}));
    let (status, unknown) = sueli
        .post(
            "/api/schedules",
            &reminder(
                template_id,
                json!({ "conversation_id": conversation_id, "due_at": later,
                        "reply_route": {"target": "queue", "queue_id": 999_999} }),
            ),
        )
        .await;
    assert_eq!(status, 400, "a reply route to no queue: {unknown}");
    let (status, again) = sueli
        .post(
            "/api/schedules",
            &reminder(
                template_id,
                json!({ "conversation_id": conversation_id, "due_at": later, "idempotency_key": "s-1" }),
            ),
        )
        .await;
    assert_eq!((status, &again["schedule"]["id"]), (200, &a["id"]));
    // Values are checked now, not only when it fires.
    let (status, bad) = sueli
        .post(
            "/api/schedules",
            &json!({ "type": "template", "template_id": template_id, "conversation_id": conversation_id,
                     "due_at": later, "variables": {"1": "Ana"} }),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert!(
        bad["error"]["problems"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );

    // Edit: another time and another value.
    let (status, edited) = sueli
        .patch(
            &format!("/api/schedules/{a_id}"),
            &json!({ "due_at": later + 60_000, "variables": {"1": "Bruna", "2": "R$ 20,00"} }),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["schedule"]["due_at"], later + 60_000);
    assert_eq!(edited["schedule"]["template_values"]["body"]["1"], "Bruna");
    let (status, _) = sueli
        .patch(
            &format!("/api/schedules/{a_id}"),
            &json!({ "variables": {"1": "x"} }),
        )
        .await;
    assert_eq!(status, 422);

    // Two due now: C is cancelled before it fires, B (a free text, the window is open) fires.
    let soon = store::now_ms() + 1_500;
    let (_, c) = sueli
        .post(
            "/api/schedules",
            &reminder(
                template_id,
                json!({ "conversation_id": conversation_id, "due_at": soon }),
            ),
        )
        .await;
    let c_id = c["schedule"]["id"].as_i64().unwrap();
    let (status, cancelled) = sueli
        .call(
            reqwest::Method::DELETE,
            &format!("/api/schedules/{c_id}"),
            None,
        )
        .await;
    assert_eq!(
        (status, cancelled["schedule"]["state"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    let (status, b) = sueli
        .post(
            "/api/schedules",
            &json!({ "type": "text", "body": "Ligamos às 15h, combinado?", "conversation_id": conversation_id,
                     "due_at": soon }),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    let b_id = b["schedule"]["id"].as_i64().unwrap();
    let sent = wait_schedule_at(&app, &app.address, b_id, "sent").await;
    let message_id = sent["message_id"].as_i64().unwrap();
    wait_until("the scheduled text at Meta", TIMEOUT, || async {
        app.message(conversation_id, message_id).await["wamid"].is_string()
    })
    .await;
    let m = app.message(conversation_id, message_id).await;
    assert_eq!(
        (m["body"].as_str(), m["author"].as_str()),
        (Some("Ligamos às 15h, combinado?"), Some("schedule"))
    );
    // C had the same moment and an earlier id: had it been pending, it would have gone first.
    let c_now = get_at(&app, &app.address, &format!("/api/schedules/{c_id}")).await;
    assert_eq!(c_now["schedule"]["state"], "cancelled");
    assert!(
        templates_to(&app, wa_id).is_empty(),
        "the cancelled template never went"
    );
    for id in [b_id, c_id] {
        let (status, body) = sueli
            .call(
                reqwest::Method::DELETE,
                &format!("/api/schedules/{id}"),
                None,
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("not_pending")),
            "{body}"
        );
    }

    // Lists: by conversation, by state; another queue's supervisor sees none of them.
    let (_, list) = sueli
        .get(&format!("/api/schedules?conversation_id={conversation_id}"))
        .await;
    let ids: Vec<i64> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![c_id, b_id, a_id], "soonest first: {list}");
    let (_, sent_only) = sueli.get("/api/schedules?state=sent").await;
    assert_eq!(sent_only["schedules"].as_array().unwrap().len(), 1);
    let (status, _) = sueli.get("/api/schedules?state=weird").await;
    assert_eq!(status, 400);
    let outsider = app.person(Role::Supervisor, "Otto").await;
    crate::desk::admin_patch_user(&app, outsider.id, json!({ "queue_ids": [other] })).await;
    let (_, theirs) = outsider.get("/api/schedules").await;
    assert_eq!(theirs["schedules"].as_array().unwrap().len(), 0, "{theirs}");
    let (status, _) = outsider.get(&format!("/api/schedules/{a_id}")).await;
    assert_eq!(status, 404);
    let (status, _) = outsider
        .call(
            reqwest::Method::DELETE,
            &format!("/api/schedules/{a_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Nor may schedule for billing's customer by naming the contact; Sueli's replies go only to
    // her queues.
    let contact_id = crate::desk::conversation(&app, conversation_id).await["contact_id"].clone();
    let (status, denied) = outsider
        .post(
            "/api/schedules",
            &reminder(
                template_id,
                json!({ "contact_id": contact_id, "due_at": later }),
            ),
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    let (status, denied) = sueli
        .post(
            "/api/schedules",
            &reminder(
                template_id,
                json!({ "conversation_id": conversation_id, "due_at": later,
                        "reply_route": {"target": "queue", "queue_id": other} }),
            ),
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    let all = app.api_get("/api/schedules").await;
    assert_eq!(all["schedules"].as_array().unwrap().len(), 3);
}

async fn a_schedule_whose_template_was_paused_fails_with_its_reason(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let wa_id = "5511987652011";
    let conversation_id = app.open_conversation(wa_id).await;
    let soon = store::now_ms() + 1_500;
    let s = create_at(
        &app,
        &app.address,
        &reminder(
            template_id,
            json!({ "conversation_id": conversation_id, "due_at": soon }),
        ),
    )
    .await;
    // Meta paused it meanwhile (the status webhook updated Atende's copy).
    app.store
        .change_template(
            template_id,
            &store::templates::TemplateChange {
                status: Some("PAUSED".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let failed = wait_schedule_at(&app, &app.address, s["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(failed["error_code"], "template_not_approved", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("pausado"),
        "{failed}"
    );
    assert!(templates_to(&app, wa_id).is_empty());
    // The conversation shows it too.
    let messages = app
        .api_get(&format!(
            "/api/conversations/{conversation_id}/messages?limit=100"
        ))
        .await["messages"]
        .as_array()
        .cloned()
        .unwrap();
    let notice = messages
        .iter()
        .find(|m| m["author"] == "system")
        .expect("a system notice");
    assert_eq!(notice["status"], "failed");
    assert!(
        notice["body"]
            .as_str()
            .unwrap()
            .starts_with("Mensagem agendada não enviada:"),
        "{notice}"
    );

    // A free text whose window closed fails with that reason: a number that never wrote.
    let started = app
        .api_post("/api/conversations", &json!({ "wa_id": "5511987652012" }))
        .await;
    let started: Value = started.json().await.unwrap();
    let s = create_at(
        &app,
        &app.address,
        &json!({ "type": "text", "body": "Oi", "conversation_id": started["conversation"]["id"],
                 "due_at": store::now_ms() }),
    )
    .await;
    let failed = wait_schedule_at(&app, &app.address, s["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(failed["error_code"], "outside_service_window");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("janela de 24 horas"),
        "{failed}"
    );
}

/// Stops the in-process app and waits until its database pools are closed.
async fn stop(app: &TestApp) {
    app.state.shutdown.cancel();
    wait_until(
        "the first instance to stop",
        Duration::from_secs(30),
        || async { app.store.schedule(0).await.is_err() },
    )
    .await;
}

/// A schedule due while the server is down, claimed by a worker that died holding it, fires once
/// after the restart.
async fn a_schedule_fires_once_across_a_restart(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let wa_id = "5511987652021";
    let due = store::now_ms() + 1_500;
    let s = create_at(
        &app,
        &app.address,
        &reminder(template_id, json!({ "to": wa_id, "due_at": due })),
    )
    .await;
    let id = s["id"].as_i64().unwrap();
    stop(&app).await;
    assert!(
        templates_to(&app, wa_id).is_empty(),
        "not due before the stop"
    );
    // While it is down the schedule comes due and a worker claims it, then dies with the claim.
    let db = store::Store::connect(&app.database_url).await.unwrap();
    wait_until(
        "the schedule to come due",
        Duration::from_secs(10),
        || async { store::now_ms() > due },
    )
    .await;
    let claimed = db
        .claim_due_schedules("a-worker-that-dies", 1, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    db.close().await;
    let second = app.spawn_second_instance().await;
    let sent = wait_schedule_at(&app, &second, id, "sent").await;
    let out = crate::hsm_send::wait_templates_to(&app, wa_id, 1).await;
    // The message is recorded as sent (wamid) before we count: nothing else is in flight.
    let conversation_id = sent["conversation_id"].as_i64().unwrap();
    let message_id = sent["message_id"].as_i64().unwrap();
    wait_until("the message to be recorded sent", TIMEOUT, || async {
        let page = get_at(
            &app,
            &second,
            &format!("/api/conversations/{conversation_id}/messages"),
        )
        .await;
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == message_id && m["wamid"].is_string())
    })
    .await;
    assert_eq!(out.len(), 1);
    assert_eq!(templates_to(&app, wa_id).len(), 1, "fired exactly once");
    assert!(sent["attempts"].as_i64().unwrap() >= 2, "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_schedule_fires_once_across_a_restart() {
    if let Some(app) = spawn_app(Backend::Sqlite).await {
        a_schedule_fires_once_across_a_restart(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_schedule_fires_once_across_a_restart() {
    if let Some(app) = spawn_app(Backend::Postgres).await {
        a_schedule_fires_once_across_a_restart(app).await;
    }
}

/// Two instances on one PostgreSQL database claim the same due schedules: each fires once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_fire_each_schedule_once() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let second = app.spawn_second_instance().await;
    const N: usize = 30;
    let due = store::now_ms() + 1_000;
    let mut ids = Vec::new();
    for i in 0..N {
        let base = if i % 2 == 0 {
            app.address.clone()
        } else {
            second.clone()
        };
        let s = create_at(
            &app,
            &base,
            &reminder(
                template_id,
                json!({ "to": format!("55119876530{i:02}"), "due_at": due }),
            ),
        )
        .await;
        ids.push(s["id"].as_i64().unwrap());
    }
    for id in &ids {
        wait_schedule_at(&app, &app.address, *id, "sent").await;
    }
    let sent = crate::hsm_send::wait_templates_to_all(&app, N).await;
    let mut recipients: Vec<String> = sent.iter().map(|m| m.to.clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), N, "every customer got their reminder");
    // Both instances' senders are idle once every message has its wamid: then count again.
    wait_until("every message recorded sent", TIMEOUT, || async {
        let mut done = 0;
        for id in &ids {
            let s = get_at(&app, &app.address, &format!("/api/schedules/{id}")).await["schedule"]
                .clone();
            let page = get_at(
                &app,
                &app.address,
                &format!("/api/conversations/{}/messages", s["conversation_id"]),
            )
            .await;
            done += page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["wamid"].is_string())
                .count();
        }
        done == N
    })
    .await;
    assert_eq!(
        app.sim
            .sent_messages()
            .iter()
            .filter(|m| m.kind() == "template")
            .count(),
        N,
        "no schedule fired twice"
    );
}

/// The flow step "agendar lembrete": the customer gives a due date, the bot schedules the
/// template for the day before at 09:00 (São Paulo), and one that is due fires like any other.
async fn the_bot_schedules_a_reminder(app: TestApp) {
    let template_id = seed_template(&app, "lembrete", reminder_components()).await;
    let flow = json!({
        "start": "menu",
        "human_queue": "atendimento",
        "steps": {
            "menu": {"type": "menu", "text": "Escolha:", "options": [
                {"id": "lembrar", "title": "Lembrete", "next": "data"},
                {"id": "agora", "title": "Lembrete já", "next": "ja"},
                {"id": "humano", "title": "Atendente", "next": "humano"}]},
            "data": {"type": "ask", "text": "Qual o vencimento?", "validator": "date",
                     "save_to": "custom.vencimento", "next": "agendar", "on_fail": "humano"},
            "agendar": {"type": "schedule_reminder", "template": "lembrete",
                        "date_field": "custom.vencimento", "days_before": 1,
                        "variables": {"1": "{{nome}}", "2": "R$ 99,00"},
                        "text": "Combinado! Vamos lembrar você.", "next": "fim"},
            "ja": {"type": "schedule_reminder", "template": "lembrete", "delay_minutes": 0,
                   "variables": {"1": "Cliente", "2": "R$ 1,00"}, "next": "fim"},
            "fim": {"type": "end", "text": "Até logo!"},
            "humano": {"type": "handoff", "queue": "atendimento"}
        }
    });
    let resp = app
        .api_post(
            "/api/flows",
            &json!({ "name": "Lembretes", "definition": flow }),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let say = |wa_id: &'static str, text: &'static str| {
        let app = &app;
        async move {
            let (_, payload) = app
                .builder
                .text(&graph_sim::Customer::new(wa_id, "Ana"), text);
            assert_eq!(app.post_webhook(&payload).await.status(), 200);
            app.inbox_drained().await;
        }
    };
    let texts_to = |wa_id: &'static str| {
        app.sim
            .sent_messages()
            .into_iter()
            .filter(|m| m.to == wa_id)
            .count()
    };
    // On a date: the day before at 09:00 in São Paulo.
    let wa_id = "5511987652031";
    say(wa_id, "Oi").await;
    wait_until("the menu", TIMEOUT, || async { texts_to(wa_id) >= 1 }).await;
    say(wa_id, "Lembrete").await;
    wait_until("the question", TIMEOUT, || async { texts_to(wa_id) >= 2 }).await;
    say(wa_id, "25/12/2030").await;
    let list = wait_until_some(&app, wa_id).await;
    let s = &list[0];
    assert_eq!(
        (s["state"].as_str(), s["created_via"].as_str()),
        (Some("pending"), Some("bot")),
        "{s}"
    );
    assert_eq!(s["template_id"], template_id);
    assert_eq!(s["template_values"]["body"]["2"], "R$ 99,00");
    let expected = "2030-12-24T12:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    assert_eq!(s["due_at"], expected);
    // Right away: it fires.
    let now_id = "5511987652032";
    say(now_id, "Oi").await;
    wait_until("the menu", TIMEOUT, || async { texts_to(now_id) >= 1 }).await;
    say(now_id, "Lembrete já").await;
    let list = wait_until_some(&app, now_id).await;
    wait_schedule_at(&app, &app.address, list[0]["id"].as_i64().unwrap(), "sent").await;
    let out = crate::hsm_send::wait_templates_to(&app, now_id, 1).await;
    assert_eq!(
        out[0].body["template"]["components"][0]["parameters"][0]["text"],
        "Cliente"
    );
}

/// The schedules of a customer, once there is one.
async fn wait_until_some(app: &TestApp, wa_id: &str) -> Vec<Value> {
    let mine = || async {
        app.api_get("/api/schedules").await["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["contact_wa_id"] == wa_id)
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_until(&format!("a schedule for {wa_id}"), TIMEOUT, || async {
        !mine().await.is_empty()
    })
    .await;
    mine().await
}
