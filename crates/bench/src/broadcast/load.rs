//! The `broadcast` scenario's clients: the API with the bench's token, what graph-sim received
//! (kept compact), and the conversations going on during the broadcast: agents' texts over HTTP
//! and customers' messages as signed webhooks, open loop at steady rates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use graph_sim::{Customer, SentMessage, WebhookBuilder};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::report::{percentile, us_to_ms};

/// The server's HTTP API as the bench's integration token calls it.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
}

impl Api {
    pub fn new(port: u16, token: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Api {
            http,
            base: Arc::from(format!("http://127.0.0.1:{port}")),
            token: Arc::from(token),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn answer(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{what}: HTTP {status}: {body}");
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&*self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        Api::answer(resp, path).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(&*self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Api::answer(resp, path).await
    }

    /// `POST /api/broadcasts/{id}/audience` with the CSV as part `file` (the suggested mapping).
    pub async fn upload(&self, id: i64, csv: Vec<u8>) -> anyhow::Result<Value> {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv).file_name("publico.csv"),
        );
        let path = format!("/api/broadcasts/{id}/audience");
        let resp = self
            .http
            .post(self.url(&path))
            .bearer_auth(&*self.token)
            .multipart(form)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Api::answer(resp, &path).await
    }

    /// A signed webhook to `/webhooks/whatsapp`; `Err` unless it was answered 200.
    pub async fn webhook(&self, secret: &str, body: Vec<u8>) -> Result<(), String> {
        let url = self.url("/webhooks/whatsapp");
        match graph_sim::post_webhook(&self.http, &url, secret, &body).await {
            Ok((200, _)) => Ok(()),
            Ok((status, text)) => Err(format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// An agent's text in a conversation; `Err` unless it was created (201).
    async fn send_text(&self, conversation_id: i64, body: &str) -> Result<(), String> {
        let resp = self
            .http
            .post(self.url(&format!("/api/conversations/{conversation_id}/messages")))
            .bearer_auth(&*self.token)
            .json(&json!({"type": "text", "body": body}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        if status.as_u16() == 201 {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

/// A text from customer `base + i` in Meta's webhook shape.
pub fn customer_webhook(builder: &WebhookBuilder, base: i64, i: usize, text: &str) -> Vec<u8> {
    let who = Customer::new(
        (base + i64::try_from(i).unwrap_or(0)).to_string(),
        "Cliente",
    );
    graph_sim::to_meta_json(&builder.text(&who, text).1)
}

/// One send graph-sim accepted, without its body.
struct Send {
    at: SystemTime,
    /// The recipient of a template; `None` for anything else.
    template_to: Option<String>,
}

/// What graph-sim received since the broadcast started, in arrival order.
#[derive(Default)]
pub struct Sends {
    all: Vec<Send>,
    /// Text body -> when it arrived (the agents' texts are unique).
    texts: HashMap<String, SystemTime>,
    templates: usize,
}

impl Sends {
    pub fn add(&mut self, new: &[SentMessage]) {
        for s in new {
            let template = s.kind() == "template";
            if template {
                self.templates += 1;
            } else if let Some(body) = s.body.pointer("/text/body").and_then(Value::as_str) {
                self.texts.insert(body.to_owned(), s.received_at);
            }
            self.all.push(Send {
                at: s.received_at,
                template_to: template.then(|| s.to.clone()),
            });
        }
    }

    pub fn templates(&self) -> usize {
        self.templates
    }

    /// Arrival times of the templates, ascending.
    pub fn template_times(&self) -> Vec<SystemTime> {
        let mut t: Vec<SystemTime> = self
            .all
            .iter()
            .filter(|s| s.template_to.is_some())
            .map(|s| s.at)
            .collect();
        t.sort_unstable();
        t
    }

    pub fn template_recipients(&self) -> impl Iterator<Item = &str> {
        self.all.iter().filter_map(|s| s.template_to.as_deref())
    }

    /// Arrival times of the sends of any kind in `[from, to]`, ascending.
    pub fn all_between(&self, from: SystemTime, to: SystemTime) -> Vec<SystemTime> {
        let mut t: Vec<SystemTime> = self
            .all
            .iter()
            .map(|s| s.at)
            .filter(|at| *at >= from && *at <= to)
            .collect();
        t.sort_unstable();
        t
    }
}

/// Where the number sat idle: the pauses between consecutive sends (ascending `times`) longer
/// than 10 ms (at 1,000 msg/s sends are about 1 ms apart), by size, and the time they add up to.
pub fn idle_gaps(times: &[SystemTime]) -> Value {
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default().as_secs_f64() * 1000.0)
        .filter(|ms| *ms > 10.0)
        .collect();
    let count = |min: f64| gaps.iter().filter(|g| **g > min).count();
    let idle_ms: f64 = gaps.iter().sum();
    json!({
        "over_10ms": gaps.len(),
        "over_25ms": count(25.0),
        "over_50ms": count(50.0),
        "over_100ms": count(100.0),
        "over_250ms": count(250.0),
        "idle_s_in_gaps_over_10ms": (idle_ms / 10.0).round() / 100.0,
        "longest_ms": gaps.iter().copied().fold(0.0, f64::max).round(),
    })
}

/// How many of `times` (ascending) fell in each second from the first.
pub fn per_second(times: &[SystemTime]) -> Vec<usize> {
    let Some(first) = times.first() else {
        return Vec::new();
    };
    let mut out: Vec<usize> = Vec::new();
    for t in times {
        let i = t.duration_since(*first).unwrap_or_default().as_secs() as usize;
        if out.len() <= i {
            out.resize(i + 1, 0);
        }
        out[i] += 1;
    }
    out
}

/// The most of `times` (ascending) within any sliding one-second window.
pub fn max_in_any_second(times: &[SystemTime]) -> usize {
    let window = Duration::from_secs(1);
    let (mut best, mut start) = (0, 0);
    for (end, t) in times.iter().enumerate() {
        while t.duration_since(times[start]).unwrap_or_default() >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// One agent text: its unique body, when its POST started, how long the answer took.
struct Posted {
    body: String,
    at: SystemTime,
    http_us: u32,
    ok: bool,
}

#[derive(Default)]
struct Log {
    agents: Vec<Posted>,
    agent_errors: Vec<String>,
    customer_posts: u64,
    customer_errors: Vec<String>,
}

pub struct Outcome {
    log: Log,
}

/// Until `stop`: agent text `k` goes to `conversations[k % n]` at `agent_rate` per second in
/// total, and customer message `j` comes from the customer of `conversations[(j + n/2) % n]` at
/// `customer_rate` (0: none). Open loop: every request is its own task.
#[allow(clippy::too_many_arguments)]
pub async fn drive(
    api: Api,
    conversations: Vec<i64>,
    builder: WebhookBuilder,
    secret: String,
    customer_base: i64,
    agent_rate: f64,
    customer_rate: f64,
    stop: CancellationToken,
) -> Outcome {
    let log = Arc::new(Mutex::new(Log::default()));
    let secret: Arc<str> = Arc::from(secret);
    let n = conversations.len().max(1);
    let start = Instant::now();
    let (mut agent_k, mut customer_k) = (0u64, 0u64);
    let mut tasks = JoinSet::new();
    while !stop.is_cancelled() {
        let elapsed = start.elapsed().as_secs_f64();
        while (agent_k as f64) < elapsed * agent_rate {
            let c = conversations[(agent_k as usize) % n];
            let body = format!("agente {agent_k}");
            agent_k += 1;
            let (api, log) = (api.clone(), log.clone());
            tasks.spawn(async move {
                let at = SystemTime::now();
                let t = Instant::now();
                let result = api.send_text(c, &body).await;
                let http_us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                let mut g = log.lock().unwrap_or_else(|e| e.into_inner());
                g.agents.push(Posted {
                    body,
                    at,
                    http_us,
                    ok: result.is_ok(),
                });
                if let Err(e) = result {
                    g.agent_errors.push(e);
                }
            });
        }
        while (customer_k as f64) < elapsed * customer_rate {
            let i = (customer_k as usize + n / 2) % n;
            let body =
                customer_webhook(&builder, customer_base, i, &format!("cliente {customer_k}"));
            customer_k += 1;
            let (api, log, secret) = (api.clone(), log.clone(), secret.clone());
            tasks.spawn(async move {
                let result = api.webhook(&secret, body).await;
                let mut g = log.lock().unwrap_or_else(|e| e.into_inner());
                g.customer_posts += 1;
                if let Err(e) = result {
                    g.customer_errors.push(e);
                }
            });
        }
        // Reap finished tasks as we go.
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            _ = stop.cancelled() => {}
        }
    }
    // The requests in flight finish (or time out) on their own.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    // A poisoned log still holds what was recorded.
    let mut g = log.lock().unwrap_or_else(|e| e.into_inner());
    Outcome {
        log: std::mem::take(&mut *g),
    }
}

impl Outcome {
    /// The agents' side of the report: texts posted in `[from, to]` (the broadcast's run) and
    /// their latency to graph-sim.
    pub fn report(&self, sends: &Sends, from: SystemTime, to: SystemTime) -> Value {
        let during: Vec<&Posted> = self
            .log
            .agents
            .iter()
            .filter(|p| p.at >= from && p.at <= to)
            .collect();
        let mut latency: Vec<u32> = Vec::new();
        let mut http: Vec<u32> = Vec::new();
        let mut lost = 0u64;
        for p in &during {
            http.push(p.http_us);
            if !p.ok {
                continue;
            }
            match sends.texts.get(&p.body) {
                Some(at) => latency.push(
                    u32::try_from(at.duration_since(p.at).unwrap_or_default().as_micros())
                        .unwrap_or(u32::MAX),
                ),
                None => lost += 1,
            }
        }
        let failed = during.iter().filter(|p| !p.ok).count();
        json!({
            "posted_total": self.log.agents.len(),
            "posted_during_broadcast": during.len(),
            "http_errors": failed,
            "first_http_error": self.log.agent_errors.first(),
            "lost": lost,
            "latency": summary(&mut latency),
            "http_answer": summary(&mut http),
            "customer_webhooks": self.log.customer_posts,
            "customer_webhook_errors": self.log.customer_errors.len(),
            "first_customer_webhook_error": self.log.customer_errors.first(),
        })
    }
}

fn summary(v: &mut [u32]) -> Value {
    v.sort_unstable();
    json!({
        "samples": v.len(),
        "p50_ms": us_to_ms(percentile(v, 50.0)),
        "p90_ms": us_to_ms(percentile(v, 90.0)),
        "p99_ms": us_to_ms(percentile(v, 99.0)),
        "max_ms": us_to_ms(v.last().copied().unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_of_wall_times() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let times = [at(0), at(100), at(999), at(1000), at(1500), at(1999)];
        assert_eq!(max_in_any_second(&times), 3);
        let burst = [at(0), at(1), at(2), at(1001)];
        assert_eq!(max_in_any_second(&burst), 3);
        assert_eq!(max_in_any_second(&[]), 0);
        assert_eq!(max_in_any_second(&[at(5)]), 1);
    }
}
