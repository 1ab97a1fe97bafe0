//! Shared by the template test files: a simulator with a webhook receiver, and a small Graph
//! client.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing;
use graph_sim::{GraphSim, SimConfig, sign};
use serde_json::{Value, json};
use tokio::sync::watch;

pub const SECRET: &str = "app-secret";
pub const TOKEN: &str = "good-token";
pub const PNID: &str = "106540352242922";
pub const WABA: &str = "WABA-106540352242922";
pub const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Hits {
    list: Arc<Mutex<Vec<Value>>>,
    changed: Arc<watch::Sender<usize>>,
}

/// Atende's webhook endpoint: checks the signature and keeps the JSON.
pub struct Receiver {
    pub url: String,
    hits: Hits,
}

async fn receive(State(h): State<Hits>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if signature.as_deref() != Some(sign(SECRET, &body).as_str()) {
        return StatusCode::UNAUTHORIZED;
    }
    let n = {
        let mut list = h.list.lock().unwrap();
        list.push(serde_json::from_slice(&body).unwrap());
        list.len()
    };
    h.changed.send_replace(n);
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Receiver {
        let hits = Hits {
            list: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        };
        let app = Router::new()
            .route("/webhook", routing::post(receive))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, hits }
    }

    /// Waits for at least `n` webhooks (or the deadline) and returns them all.
    pub async fn wait(&self, n: usize) -> Vec<Value> {
        let mut rx = self.hits.changed.subscribe();
        let _ = tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n)).await;
        self.hits.list.lock().unwrap().clone()
    }

    /// The `changes[0].value` of webhooks whose field is `field`, after waiting for `n` of them.
    pub async fn values_of(&self, field: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut rx = self.hits.changed.subscribe();
        loop {
            let found: Vec<Value> = self
                .hits
                .list
                .lock()
                .unwrap()
                .iter()
                .filter(|h| h["entry"][0]["changes"][0]["field"] == field)
                .map(|h| h["entry"][0]["changes"][0]["value"].clone())
                .collect();
            if found.len() >= n {
                return found;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return found;
            }
        }
    }
}

pub async fn sim_with_receiver() -> (GraphSim, Receiver) {
    let rx = Receiver::start().await;
    let mut cfg = SimConfig::new(SECRET, TOKEN, PNID);
    cfg.webhook_url = Some(rx.url.clone());
    (GraphSim::start(cfg).await.unwrap(), rx)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn post(sim: &GraphSim, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/{path}", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    answer(resp).await
}

pub async fn get(sim: &GraphSim, path_and_query: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}/{path_and_query}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    answer(resp).await
}

pub async fn delete(sim: &GraphSim, path_and_query: &str) -> (u16, Value) {
    let resp = client()
        .delete(format!("{}/{path_and_query}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    answer(resp).await
}

/// POST on the control API (`/_sim/...`, beside the version prefix).
pub async fn control(sim: &GraphSim, path: &str, body: Value) -> (u16, Value) {
    let origin = sim.base_url().trim_end_matches("/v23.0").to_owned();
    let resp = client()
        .post(format!("{origin}/_sim/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    answer(resp).await
}

pub async fn create(sim: &GraphSim, body: Value) -> (u16, Value) {
    post(sim, &format!("{WABA}/message_templates"), body).await
}

/// A valid UTILITY template with a text header, a body with two variables, a footer and
/// buttons (quick reply, URL with a suffix).
pub fn order_template(name: &str) -> Value {
    json!({"name": name, "language": "pt_BR", "category": "UTILITY", "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}", "example": {"header_text": ["#123"]}},
        {"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} saiu para entrega hoje.",
         "example": {"body_text": [["Maria", "#123"]]}},
        {"type": "FOOTER", "text": "Atende"},
        {"type": "BUTTONS", "buttons": [
            {"type": "QUICK_REPLY", "text": "Falar com atendente"},
            {"type": "URL", "text": "Rastrear", "url": "https://x.y/t/{{1}}", "example": ["https://x.y/t/123"]}]}]})
}

pub fn subcode(body: &Value) -> Option<i64> {
    body["error"]["error_subcode"].as_i64()
}

pub fn code(body: &Value) -> Option<i64> {
    body["error"]["code"].as_i64()
}
