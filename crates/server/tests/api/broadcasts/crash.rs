//! A broadcast of 10,000 recipients survives SIGKILL of the real binary mid-way: after the
//! restart (same port, so Meta's retried status webhooks find it) it finishes, and graph-sim
//! received every recipient exactly once. Sends in flight at the kill are confirmed by their
//! status webhook instead of being sent again; those that never left are sent after the grace.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use graph_sim::{AutoStatuses, GraphSim, PhoneNumber, SimConfig};
use serde_json::{Value, json};

use super::{csv_of, upsert_template};
use crate::cli::Install;
use crate::helpers::{Backend, free_port, wait_until};

const PNID: &str = "106540352242977";
const WABA: &str = "102290129340377";
const SECRET: &str = "broadcast-crash-secret";
const TOKEN: &str = "broadcast-crash-token";
const N: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_survives_sigkill_exactly_once_sqlite() {
    if let Some(install) = Install::new(Backend::Sqlite).await {
        broadcast_survives_sigkill_exactly_once(install).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_survives_sigkill_exactly_once_postgres() {
    if let Some(install) = Install::new(Backend::Postgres).await {
        broadcast_survives_sigkill_exactly_once(install).await;
    }
}

/// `atende serve` on a given port (a restart keeps it), killed when dropped.
struct Serve {
    child: tokio::process::Child,
    address: String,
    log: PathBuf,
}

impl Serve {
    async fn start(install: &Install, port: u16, n: usize) -> Serve {
        let log = install.root().join(format!("broadcast-serve-{n}.stderr"));
        let child = install
            .command(&[
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--seed-demo-flow",
                "false",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn atende serve");
        let serve = Serve {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
        };
        let http = reqwest::Client::new();
        let health = format!("{}/health", serve.address);
        wait_until("atende serve to answer", Duration::from_secs(60), || {
            let request = http.get(&health).send();
            async move { request.await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        serve
    }

    async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reap");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- atende serve log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

async fn call(
    http: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method, &url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

fn sends(sim: &GraphSim) -> HashMap<String, usize> {
    let mut by = HashMap::new();
    for s in sim.sent_messages() {
        if s.kind() == "template" {
            *by.entry(s.to.clone()).or_default() += 1;
        }
    }
    by
}

async fn broadcast_survives_sigkill_exactly_once(install: Install) {
    let mut cfg = SimConfig::new(SECRET, TOKEN, PNID);
    cfg.phone_numbers = vec![PhoneNumber::new(PNID, "5511900000000", WABA)];
    // One status per send: enough to confirm an interrupted send.
    cfg.auto_statuses = AutoStatuses {
        sent: true,
        delivered: false,
        read: false,
    };
    let sim = GraphSim::start(cfg).await.expect("graph-sim");
    // Meta retries a webhook until it is answered; the restart must find them.
    sim.set_webhook_retries(60);
    install
        .ok(
            &[
                "channel",
                "add",
                "--name",
                "Disparos",
                "--phone-number-id",
                PNID,
                "--waba-id",
                WABA,
                "--graph-base-url",
                &sim.base_url(),
                "--rate-limit",
                "1000",
            ],
            &format!("{TOKEN}\n{SECRET}\nverify\n"),
        )
        .await;
    let token = install
        .ok(&["token", "create", "--name", "tests"], "")
        .await
        .trim()
        .to_owned();
    let meta_id = sim.add_template(
        WABA,
        super::TEMPLATE,
        "pt_BR",
        "UTILITY",
        "APPROVED",
        super::components(),
    );
    let store = store::Store::connect(&install.database_url)
        .await
        .expect("database");
    let template_id = upsert_template(&store, WABA, &meta_id).await;
    store
        // Short for the test, yet longer than graph-sim's longest retry interval (3.2 s): a send
        // is given up for lost only after its status webhook had the time to come back.
        .set_setting(server::workers::broadcasts::RESEND_GRACE_SETTING, "10")
        .await
        .expect("grace");
    store.close().await;

    let port = free_port();
    let server = Serve::start(&install, port, 0).await;
    sim.set_webhook_url(Some(format!("{}/webhooks/whatsapp", server.address)));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let base = server.address.clone();
    let channels = call(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/api/channels"),
        None,
    )
    .await;
    let channel_id = channels["channels"][0]["id"].as_i64().expect("channel");
    let created = call(
        &http,
        &token,
        reqwest::Method::POST,
        format!("{base}/api/broadcasts"),
        Some(json!({"name": "Crash", "channel_id": channel_id, "template_id": template_id})),
    )
    .await;
    let id = created["broadcast"]["id"].as_i64().unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv_of(N)).file_name("p.csv"),
    );
    let resp = http
        .post(format!("{base}/api/broadcasts/{id}/audience"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    call(
        &http,
        &token,
        reqwest::Method::POST,
        format!("{base}/api/broadcasts/{id}/start"),
        Some(json!({})),
    )
    .await;

    wait_until(
        "3,000 sends before the kill",
        Duration::from_secs(120),
        || async { sim.sent_messages().len() >= 3_000 },
    )
    .await;
    server.kill().await;
    let at_kill = sim.sent_messages().len();
    let server = Serve::start(&install, port, 1).await;
    let base = server.address.clone();
    wait_until(
        "the broadcast to complete after the restart",
        Duration::from_secs(180),
        || {
            let request = http
                .get(format!("{base}/api/broadcasts/{id}/report"))
                .bearer_auth(&token)
                .send();
            async move {
                match request.await {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["status"] == "completed"),
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    let by = sends(&sim);
    let twice: Vec<_> = by.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "broadcast crash test: {at_kill} sends at the SIGKILL, {} recipients reached, {} twice",
        by.len(),
        twice.len()
    );
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(by.len(), N, "every recipient");
    let report = call(
        &http,
        &token,
        reqwest::Method::GET,
        format!("{base}/api/broadcasts/{id}/report"),
        None,
    )
    .await;
    assert_eq!(report["report"]["pending"], 0);
    assert_eq!(report["report"]["queued"], 0, "{report}");
    drop(server);
}
