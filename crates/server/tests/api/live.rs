//! The live WebSocket: what each person sees, catch-up after a reconnect, who is viewing and
//! typing, and presence when every tab is gone.

use std::time::Duration;

use serde_json::{Value, json};
use store::auth::Role;

use crate::desk::{agent, conversation, hand_to_queue, queue, wait_assigned_to};
use crate::helpers::{Backend, TestApp, spawn_app_with, wait_until};
use crate::on_both_backends;

on_both_backends!(
    an_agent_sees_their_conversations_live_and_catches_up_after_a_reconnect,
    viewers_and_typing_are_shared_and_foreign_origins_refused,
    a_tab_learns_when_its_conversation_is_taken_away_and_then_hears_nothing_more,
);

fn is_event(kind: &'static str, conversation_id: i64) -> impl Fn(&Value) -> bool {
    move |m: &Value| {
        m["type"] == "event" && m["kind"] == kind && m["conversation_id"] == conversation_id
    }
}

async fn customer_says(app: &TestApp, wa_id: &str, text: &str) {
    let customer = app.customer(wa_id, "Cliente Teste");
    let (_, payload) = app.builder.text(&customer, text);
    assert_eq!(app.post_webhook(&payload).await.status(), 200);
}

async fn an_agent_sees_their_conversations_live_and_catches_up_after_a_reconnect(app: TestApp) {
    let norte = queue(&app, "norte", json!({})).await;
    let sul = queue(&app, "sul", json!({})).await;
    let ana = agent(&app, "Ana", 3, &[norte]).await;
    let beto = agent(&app, "Beto", 3, &[sul]).await;
    let mut ana_tab = ana.socket(None).await;
    let mut beto_tab = beto.socket(None).await;

    // A customer writes; the conversation waits in no queue, so both could take it and both
    // hear of it. Then it goes to norte, where only Ana is: Beto learns it left his reach.
    let id = app.open_conversation("5511900000101").await;
    ana_tab
        .wait_for("the new conversation", is_event("conversation.opened", id))
        .await;
    beto_tab
        .wait_for("the new conversation", is_event("conversation.opened", id))
        .await;
    hand_to_queue(&app, id, norte).await;
    beto_tab
        .wait_for("the move to norte", is_event("conversation.queued", id))
        .await;
    ana.set_presence("available").await;
    let (assigned, _) = ana_tab
        .wait_for("the assignment", is_event("conversation.assigned", id))
        .await;
    assert_eq!(assigned["payload"]["agent_id"], ana.id);

    // A message of the customer reaches Ana's tab live, not Beto's.
    customer_says(&app, "5511900000101", "Meu pedido não chegou").await;
    ana_tab
        .wait_for("the customer's message", is_event("message.created", id))
        .await;

    // Ana's tab drops; two messages arrive meanwhile; the reconnect brings them first.
    let since = ana_tab.last_event_id;
    ana_tab.close().await;
    customer_says(&app, "5511900000101", "Alô?").await;
    customer_says(&app, "5511900000101", "Tem alguém aí?").await;
    app.inbox_drained().await;
    let mut ana_tab = ana.socket(Some(since)).await;
    for _ in 0..2 {
        let (missed, _) = ana_tab
            .wait_for("a missed message", is_event("message.created", id))
            .await;
        assert!(missed["id"].as_i64() > Some(since));
    }
    let history = ana
        .get_ok(&format!("/api/conversations/{id}/messages"))
        .await;
    let bodies: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert!(bodies.ends_with(&["Alô?", "Tem alguém aí?"]), "{bodies:?}");

    // Beto got nothing about the messages of a conversation that is not his.
    let seen = beto_tab.last_event_id;
    customer_says(&app, "5511900000101", "Última").await;
    let other = app.open_conversation("5511900000102").await;
    hand_to_queue(&app, other, sul).await;
    let (_, skipped) = beto_tab
        .wait_for(
            "his own queue's conversation",
            is_event("conversation.transferred", other),
        )
        .await;
    assert!(
        skipped
            .iter()
            .all(|m| m["conversation_id"] != id || m["id"].as_i64() <= Some(seen)),
        "Beto saw Ana's conversation: {skipped:?}"
    );

    // A catch-up from too far back asks the tab to reload instead.
    let mut stale = ana.socket(Some(-10_000)).await;
    let (reset, _) = stale.wait_for("a reset", |m| m["type"] == "reset").await;
    assert_eq!(reset["type"], "reset");
    assert_eq!(conversation(&app, id).await["agent_id"], ana.id);
}

async fn viewers_and_typing_are_shared_and_foreign_origins_refused(app: TestApp) {
    let caio = agent(&app, "Caio", 2, &[]).await;
    let sup = app.person(Role::Supervisor, "Dora").await;
    caio.set_presence("available").await;
    let id = app.open_conversation("5511900000111").await;
    wait_assigned_to(&app, id, caio.id).await;

    let mut caio_tab = caio.socket(None).await;
    let mut sup_tab = sup.socket(None).await;
    caio_tab
        .send_json(&json!({ "type": "view", "conversation_id": id }))
        .await;
    sup_tab
        .send_json(&json!({ "type": "view", "conversation_id": id }))
        .await;
    let (both, _) = caio_tab
        .wait_for("both viewers", |m| {
            m["type"] == "viewers" && m["viewers"].as_array().is_some_and(|v| v.len() == 2)
        })
        .await;
    let names: Vec<&str> = both["viewers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Dora") && names.contains(&"Caio"),
        "{names:?}"
    );
    caio_tab
        .send_json(&json!({ "type": "typing", "conversation_id": id }))
        .await;
    sup_tab
        .wait_for("Caio typing", |m| {
            m["type"] == "viewers"
                && m["viewers"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| x["name"] == "Caio" && x["typing"] == true))
        })
        .await;
    // Dora leaves: Caio sees himself alone.
    sup_tab.close().await;
    caio_tab
        .wait_for("Dora gone", |m| {
            m["type"] == "viewers" && m["viewers"].as_array().is_some_and(|v| v.len() == 1)
        })
        .await;

    // Someone else's page cannot open a socket with the agent's cookie.
    let (_, status) = caio.try_socket(None, Some("http://evil.example")).await;
    assert_eq!(status, 403);
    let (ok, status) = caio.try_socket(None, Some(&app.address)).await;
    assert_eq!(status, 101);
    assert!(ok.is_some());

    // Deactivated: the socket that was already open ends too.
    let resp = app
        .http
        .patch(format!("{}/api/users/{}", app.address, caio.id))
        .bearer_auth(&app.token)
        .json(&json!({ "active": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        caio_tab.ends_within(Duration::from_secs(20)).await,
        "the socket stayed open"
    );
}

async fn presence_ends_when_every_tab_is_gone(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.presence_grace_secs = 1).await else {
        return;
    };
    let eva = agent(&app, "Eva", 1, &[]).await;
    let filó = agent(&app, "Filó", 1, &[]).await;
    let first_tab = eva.socket(None).await;
    let second_tab = eva.socket(None).await;
    eva.set_presence("available").await;
    filó.set_presence("available").await;
    let busy = app.open_conversation("5511900000121").await;
    let id_of = |users: &Value, id: i64| {
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == id)
            .cloned()
            .unwrap()
    };
    // Whoever got the first conversation, the second is transferred to Eva's personal line.
    wait_until("the first assignment", Duration::from_secs(20), || async {
        conversation(&app, busy).await["state"] == "assigned"
    })
    .await;
    let second = app.open_conversation("5511900000122").await;
    wait_until("the second assignment", Duration::from_secs(20), || async {
        conversation(&app, second).await["state"] == "assigned"
    })
    .await;
    let on_eva = if conversation(&app, busy).await["agent_id"] == eva.id {
        busy
    } else {
        second
    };
    let on_filo = if on_eva == busy { second } else { busy };
    filó
        .post_ok(
            &format!("/api/conversations/{on_filo}/transfer"),
            &json!({ "to_agent_id": eva.id }),
        )
        .await;
    assert_eq!(
        conversation(&app, on_filo).await["waiting_agent_id"],
        eva.id
    );

    // With a tab open, Eva stays available well past the grace period (the heartbeat).
    let connected_at = store::now_ms();
    wait_until(
        "a heartbeat after the grace period",
        Duration::from_secs(20),
        || async {
            let users = app.api_get("/api/users").await;
            id_of(&users, eva.id)["socket_seen_at"].as_i64() > Some(connected_at + 1_000)
        },
    )
    .await;
    assert_eq!(
        id_of(&app.api_get("/api/users").await, eva.id)["presence"],
        "available"
    );

    // One tab closed: still available. Both closed: offline after the grace period, and the
    // conversation waiting for her goes back to everyone.
    first_tab.close().await;
    second_tab.close().await;
    wait_until("Eva offline", Duration::from_secs(20), || async {
        id_of(&app.api_get("/api/users").await, eva.id)["presence"] == "offline"
    })
    .await;
    let back = conversation(&app, on_filo).await;
    assert_eq!(back["waiting_agent_id"], Value::Null, "{back}");
    // Filó has room again, so it comes back to her.
    wait_assigned_to(&app, on_filo, filó.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_presence_ends_when_every_tab_is_gone() {
    presence_ends_when_every_tab_is_gone(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_presence_ends_when_every_tab_is_gone() {
    presence_ends_when_every_tab_is_gone(Backend::Postgres).await;
}

async fn a_tab_learns_when_its_conversation_is_taken_away_and_then_hears_nothing_more(
    app: TestApp,
) {
    let outra = queue(&app, "outra", json!({})).await;
    let gil = agent(&app, "Gil", 2, &[]).await;
    gil.set_presence("available").await;
    let id = app.open_conversation("5511900000131").await;
    wait_assigned_to(&app, id, gil.id).await;
    // The tab opens after the assignment: no event about the conversation has reached it yet.
    let mut tab = gil.socket(None).await;
    hand_to_queue(&app, id, outra).await;
    tab.wait_for("the move away", is_event("conversation.queued", id))
        .await;
    // From now on the conversation is none of Gil's business.
    customer_says(&app, "5511900000131", "Oi de novo").await;
    let other = app.open_conversation("5511900000132").await;
    let (_, skipped) = tab
        .wait_for(
            "the next conversation",
            is_event("conversation.opened", other),
        )
        .await;
    assert!(
        skipped
            .iter()
            .all(|m| m["kind"] != "message.created" || m["conversation_id"] != id),
        "a message of a conversation taken away reached the tab: {skipped:?}"
    );
}
