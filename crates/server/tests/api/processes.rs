//! Two `atende serve` processes on one PostgreSQL database share the outbox: every message goes to
//! Meta exactly once, each customer's messages in the order written, whichever process accepted it.

use std::time::Duration;

use graph_sim::{Customer, GraphSim, SimConfig, WebhookBuilder};
use serde_json::json;

use crate::cli::{Install, Server};
use crate::helpers::{Backend, assert_each_customer_got_in_order, wait_until};

const PNID: &str = "204000000000001";
const SECRET: &str = "two-process-secret";
const TOKEN: &str = "two-process-token";

/// One installation on a fresh PostgreSQL database with a channel pointed at its own graph-sim,
/// an API token, and two `atende serve` processes on it.
struct TwoProcesses {
    a: Server,
    b: Server,
    api_token: String,
    sim: GraphSim,
    _install: Install,
}

async fn two_processes() -> Option<TwoProcesses> {
    let install = Install::new(Backend::Postgres).await?;
    let sim = GraphSim::start(SimConfig::new(SECRET, TOKEN, PNID))
        .await
        .expect("graph-sim");
    install
        .ok(
            &[
                "channel",
                "add",
                "--name",
                "Dois",
                "--phone-number-id",
                PNID,
                "--waba-id",
                "204",
                "--graph-base-url",
                &sim.base_url(),
                "--rate-limit",
                "200",
            ],
            &format!("{TOKEN}\n{SECRET}\nverify\n"),
        )
        .await;
    let api_token = install
        .ok(&["token", "create", "--name", "tests"], "")
        .await
        .trim()
        .to_owned();
    let a = install.serve().await;
    let b = install.serve().await;
    Some(TwoProcesses {
        a,
        b,
        api_token,
        sim,
        _install: install,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_send_each_message_once_in_order() {
    let Some(TwoProcesses {
        a,
        b,
        api_token,
        sim,
        _install,
    }) = two_processes().await
    else {
        return;
    };
    sim.set_webhook_url(Some(a.webhook_url()));

    let builder = WebhookBuilder::new("204", PNID, "5511900000000");
    let customers: Vec<String> = (0..5).map(|i| format!("55119810000{i:02}")).collect();
    for wa_id in &customers {
        let (_, payload) = builder.text(&Customer::new(wa_id.as_str(), "Cliente"), "Oi");
        let resp = a
            .post_webhook(&graph_sim::to_meta_json(&payload), SECRET)
            .await
            .expect("webhook");
        assert_eq!(resp.status(), 200);
    }
    wait_until("five conversations", Duration::from_secs(30), || async {
        let list = a.api_get(&api_token, "/api/conversations?open=true").await;
        list["conversations"].as_array().map_or(0, Vec::len) == customers.len()
    })
    .await;
    let list = a.api_get(&api_token, "/api/conversations?open=true").await;
    let conversations = list["conversations"]
        .as_array()
        .cloned()
        .unwrap_or_default();

    let per_customer = 10;
    for n in 0..per_customer {
        for (k, c) in conversations.iter().enumerate() {
            let server = if (n + k) % 2 == 0 { &a } else { &b };
            let resp = server
                .http
                .post(format!("{}/api/conversations/{}/messages", server.address, c["id"]))
                .bearer_auth(&api_token)
                .json(&json!({"type": "text", "body": format!("{n}"), "idempotency_key": format!("{}-{n}", c["id"])}))
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 201);
        }
    }
    let total = per_customer * conversations.len();
    let sent = sim.wait_for_sent(total, Duration::from_secs(30)).await;
    assert_eq!(sent.len(), total, "every message sent");
    // Give a duplicate the chance to show up: wait until both processes have nothing in flight.
    wait_until("the outbox to settle", Duration::from_secs(30), || async {
        let mut done = 0;
        for c in &conversations {
            let page = a
                .api_get(
                    &api_token,
                    &format!("/api/conversations/{}/messages?limit=200", c["id"]),
                )
                .await;
            done += page["messages"]
                .as_array()
                .map(|ms| {
                    ms.iter()
                        .filter(|m| m["direction"] == "out" && m["wamid"].is_string())
                        .count()
                })
                .unwrap_or(0);
        }
        done == total
    })
    .await;
    let sent = sim.sent_messages();
    assert_eq!(sent.len(), total, "no message sent twice");
    assert_each_customer_got_in_order(&sent, per_customer);
}

/// Protocol numbers are allocated in the database: two processes opening conversations at the
/// same moment (agents starting active contacts through either one) never share or skip a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_allocate_unique_sequential_protocols() {
    // Every part is bound (not `..`) so that graph-sim and the database live as long as the test.
    let Some(TwoProcesses {
        a,
        b,
        api_token,
        sim: _sim,
        _install,
    }) = two_processes().await
    else {
        return;
    };

    const PER_PROCESS: usize = 40;
    let mut calls = Vec::new();
    for i in 0..2 * PER_PROCESS {
        let server = if i % 2 == 0 { &a } else { &b };
        let request = server
            .http
            .post(format!("{}/api/conversations", server.address))
            .bearer_auth(&api_token)
            .json(&json!({ "wa_id": format!("55119820{i:05}") }));
        calls.push(async move {
            let resp = request.send().await.expect("start");
            assert_eq!(resp.status(), 201);
            let body: serde_json::Value = resp.json().await.expect("body");
            body["conversation"]["protocol"]
                .as_str()
                .expect("protocol")
                .to_owned()
        });
    }
    let mut protocols = futures::future::join_all(calls).await;
    protocols.sort();
    let total = protocols.len();
    protocols.dedup();
    assert_eq!(protocols.len(), total, "a protocol number was given twice");
    // Same day, sequence 1..=N without a gap (the test could straddle midnight: then two days).
    let day = &protocols[0][..8];
    if protocols.iter().all(|p| &p[..8] == day) {
        let sequences: Vec<u64> = protocols
            .iter()
            .map(|p| p[8..].parse().expect("sequence"))
            .collect();
        assert_eq!(sequences, (1..=total as u64).collect::<Vec<_>>());
    }
}
