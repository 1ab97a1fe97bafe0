//! Status webhooks that follow an accepted send.
//!
//! One task per accepted message posts its statuses one after the other, so
//! sent < delivered < read holds per message while different messages
//! proceed concurrently (Meta guarantees no order across messages either).

use std::time::Duration;

use serde_json::{Value, json};

use crate::customer::{post_webhook, to_meta_json};
use crate::{GraphSim, PhoneNumber, StatusDelivery, builder_for, ids};

pub(crate) struct StatusJob {
    pub phone: PhoneNumber,
    pub wamid: String,
    pub recipient: String,
    pub template: bool,
    /// The template's category when known (pricing is per category).
    pub category: Option<String>,
    pub biz_opaque: Option<String>,
    pub failure: Option<(i64, String)>,
}

pub(crate) fn spawn(sim: GraphSim, job: StatusJob) {
    tokio::spawn(async move { run(sim, job).await });
}

async fn run(sim: GraphSim, job: StatusJob) {
    let auto = sim.shared.auto_statuses;
    let sequence: Vec<&str> = if job.failure.is_some() {
        vec!["failed"]
    } else {
        [
            ("sent", auto.sent),
            ("delivered", auto.delivered),
            ("read", auto.read),
        ]
        .into_iter()
        .filter_map(|(s, on)| on.then_some(s))
        .collect()
    };
    let conversation_id = ids::hex_id(16);
    for status in sequence {
        let (delay, retries) = {
            let st = sim.shared.lock();
            (st.status_delay, st.webhook_retries)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // Read at each step: clearing the URL stops a sequence midway.
        let Some(url) = sim.webhook_url() else {
            return;
        };
        let payload = status_payload(&job, status, &conversation_id);
        let body = to_meta_json(&payload);
        let mut attempts = 0;
        let mut http_status = None;
        loop {
            attempts += 1;
            match post_webhook(&sim.shared.client, &url, &sim.shared.app_secret, &body).await {
                Ok((code, _)) => {
                    http_status = Some(code);
                    if (200..300).contains(&code) {
                        break;
                    }
                }
                Err(e) => tracing::debug!(error = %e, %status, "graph-sim: status webhook failed"),
            }
            if attempts > retries {
                break;
            }
            tokio::time::sleep(backoff(attempts)).await;
        }
        let record = StatusDelivery {
            wamid: job.wamid.clone(),
            status: status.to_owned(),
            http_status,
            attempts,
        };
        sim.shared.update(|s| s.deliveries.push(record));
    }
}

/// Meta backs off exponentially over days; tests need the same shape in
/// milliseconds.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6)))
}

/// The builder's status plus what the real API adds to non-failed statuses:
/// per-message pricing, the (being phased out) conversation object, and the
/// echo of `biz_opaque_callback_data`.
fn status_payload(job: &StatusJob, status: &str, conversation_id: &str) -> Value {
    let error = job.failure.as_ref().map(|(c, m)| (*c, m.as_str()));
    let mut payload = builder_for(&job.phone).status(&job.wamid, &job.recipient, status, error);
    let Some(s) = payload
        .pointer_mut("/entry/0/changes/0/value/statuses/0")
        .and_then(Value::as_object_mut)
    else {
        return payload;
    };
    if let Some(data) = &job.biz_opaque {
        s.insert("biz_opaque_callback_data".into(), json!(data));
    }
    if status == "failed" {
        return payload;
    }
    let template_category = job
        .category
        .as_deref()
        .map_or_else(|| "utility".to_owned(), str::to_ascii_lowercase);
    let (category, kind, billable) = if job.template {
        (template_category.as_str(), "regular", true)
    } else {
        ("service", "free_customer_service", false)
    };
    let mut conversation = json!({"id": conversation_id, "origin": {"type": category}});
    if status == "sent" {
        let expires = ids::unix_now().as_secs() + 24 * 3600;
        conversation["expiration_timestamp"] = json!(expires.to_string());
    }
    s.insert("conversation".into(), conversation);
    s.insert(
        "pricing".into(),
        json!({"billable": billable, "pricing_model": "PMP", "category": category, "type": kind}),
    );
    payload
}
