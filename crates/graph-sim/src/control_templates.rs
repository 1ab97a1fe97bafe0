//! The `/_sim` control routes for templates, permissions and the account checks: what Meta's
//! reviewers and quality systems do, as JSON, for the demo and non-Rust tests. Each template
//! change posts the matching signed webhook and answers `{"template": {...}, "webhook":
//! {"status", "body"} | null}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::control::bad_request;
use crate::templates::review::TemplateChange;
use crate::{AutoReview, GraphSim, MarketingFault, PhoneSettings, SimError};

pub(crate) fn router() -> Router<GraphSim> {
    Router::new()
        .route("/templates", get(templates))
        .route("/templates/settings", post(settings))
        .route("/templates/review", post(review))
        .route("/templates/{id}/status", post(status))
        .route("/templates/{id}/approve", post(approve))
        .route("/templates/{id}/reject", post(reject))
        .route("/templates/{id}/pause", post(pause))
        .route("/templates/{id}/disable", post(disable))
        .route("/templates/{id}/reinstate", post(reinstate))
        .route("/templates/{id}/quality", post(quality))
        .route("/templates/{id}/category", post(category))
        .route("/template_requests", get(template_requests))
        .route("/template_webhooks", get(template_webhooks))
        .route("/tokens", post(tokens))
        .route("/wabas/{waba}/subscription", post(subscription))
        .route("/phone_numbers/{pnid}", post(phone_settings))
        .route("/phone_numbers/{pnid}/spam", post(spam))
        .route("/recipients/{to}/marketing", post(marketing))
        .route("/clock", post(clock))
}

/// An empty body reads as `{}`, so `POST .../approve` needs none.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, serde_json::Error> {
    let raw: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(raw)
}

async fn templates(State(sim): State<GraphSim>) -> Json<Value> {
    Json(json!(sim.templates()))
}

async fn template_requests(State(sim): State<GraphSim>) -> Json<Value> {
    Json(json!(sim.template_requests()))
}

async fn template_webhooks(State(sim): State<GraphSim>) -> Json<Value> {
    Json(json!(sim.template_webhooks()))
}

async fn apply(sim: &GraphSim, id: &str, change: TemplateChange) -> Response {
    match sim.change_template(id, change).await {
        Ok(answer) => Json(json!({
            "template": sim.template(id),
            "webhook": answer.map(|(status, body)| json!({"status": status, "body": body})),
        }))
        .into_response(),
        Err(e @ SimError::Invalid(_)) => bad_request(e),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// `{"status": "REJECTED", "reason"?: "INVALID_FORMAT", "recommendation"?: "...",
/// "description"?: "..."}`.
#[derive(Deserialize)]
struct StatusBody {
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    recommendation: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

async fn status(State(sim): State<GraphSim>, Path(id): Path<String>, body: Bytes) -> Response {
    let req: StatusBody = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let change = TemplateChange::Status {
        status: req.status.to_ascii_uppercase(),
        reason: req.reason.map(|r| r.to_ascii_uppercase()),
        recommendation: req.recommendation,
        description: req.description,
    };
    apply(&sim, &id, change).await
}

#[derive(Deserialize, Default)]
struct Details {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    recommendation: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

async fn with_status(sim: &GraphSim, id: &str, status: &str, body: &Bytes) -> Response {
    let d: Details = match parse(body) {
        Ok(d) => d,
        Err(e) => return bad_request(e),
    };
    let change = TemplateChange::Status {
        status: status.to_owned(),
        reason: d.reason.map(|r| r.to_ascii_uppercase()),
        recommendation: d.recommendation,
        description: d.description,
    };
    apply(sim, id, change).await
}

async fn approve(State(sim): State<GraphSim>, Path(id): Path<String>, body: Bytes) -> Response {
    with_status(&sim, &id, "APPROVED", &body).await
}

/// `{"reason": "PROMOTIONAL", "recommendation": "..."}`.
async fn reject(State(sim): State<GraphSim>, Path(id): Path<String>, body: Bytes) -> Response {
    with_status(&sim, &id, "REJECTED", &body).await
}

async fn pause(State(sim): State<GraphSim>, Path(id): Path<String>, body: Bytes) -> Response {
    with_status(&sim, &id, "PAUSED", &body).await
}

async fn disable(State(sim): State<GraphSim>, Path(id): Path<String>, body: Bytes) -> Response {
    with_status(&sim, &id, "DISABLED", &body).await
}

async fn reinstate(State(sim): State<GraphSim>, Path(id): Path<String>, body: Bytes) -> Response {
    with_status(&sim, &id, "REINSTATED", &body).await
}

#[derive(Deserialize)]
struct QualityBody {
    quality: String,
}

async fn quality(State(sim): State<GraphSim>, Path(id): Path<String>, body: Bytes) -> Response {
    match parse::<QualityBody>(&body) {
        Ok(q) => {
            apply(
                &sim,
                &id,
                TemplateChange::Quality(q.quality.to_ascii_uppercase()),
            )
            .await
        }
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
struct CategoryBody {
    category: String,
}

async fn category(State(sim): State<GraphSim>, Path(id): Path<String>, body: Bytes) -> Response {
    match parse::<CategoryBody>(&body) {
        Ok(c) => {
            apply(
                &sim,
                &id,
                TemplateChange::Category(c.category.to_ascii_uppercase()),
            )
            .await
        }
        Err(e) => bad_request(e),
    }
}

/// `{"enforce"?: bool, "new_status"?: "PENDING", "limit"?: 250, "record_requests"?: bool}`.
#[derive(Deserialize)]
struct Settings {
    #[serde(default)]
    enforce: Option<bool>,
    #[serde(default)]
    new_status: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    record_requests: Option<bool>,
}

async fn settings(State(sim): State<GraphSim>, body: Bytes) -> Response {
    let s: Settings = match parse(&body) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    if let Some(on) = s.enforce {
        sim.set_enforce_templates(on);
    }
    if let Some(status) = s.new_status {
        sim.set_new_template_status(&status);
    }
    if let Some(limit) = s.limit {
        sim.set_template_limit(limit);
    }
    if let Some(on) = s.record_requests {
        sim.set_record_template_requests(on);
    }
    let st = sim.shared.lock();
    Json(json!({
        "enforce": st.enforce_templates,
        "new_status": st.new_template_status,
        "limit": st.template_limit,
        "record_requests": st.record_template_requests,
        "review": st.review,
    }))
    .into_response()
}

/// `{"status": "APPROVED", "after": 500, "reason"?: "..."}` (after in ms), or `null` to stop.
async fn review(State(sim): State<GraphSim>, body: Bytes) -> Response {
    let raw: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        &body
    };
    match serde_json::from_slice::<Option<AutoReview>>(raw) {
        Ok(r) => {
            sim.set_template_review(r.clone());
            Json(json!({ "review": r })).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// `{"token"?: "...", "scopes": ["whatsapp_business_messaging"]}`; without `token`, every
/// configured token.
#[derive(Deserialize)]
struct TokenScopes {
    #[serde(default)]
    token: Option<String>,
    scopes: Vec<String>,
}

async fn tokens(State(sim): State<GraphSim>, body: Bytes) -> Response {
    let req: TokenScopes = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let scopes: Vec<&str> = req.scopes.iter().map(String::as_str).collect();
    let tokens = match req.token {
        Some(t) => vec![t],
        None => sim.shared.access_tokens.clone(),
    };
    for t in &tokens {
        sim.set_token_scopes(t, &scopes);
    }
    Json(json!({"tokens": tokens.len(), "scopes": scopes})).into_response()
}

#[derive(Deserialize)]
struct SubscriptionBody {
    subscribed: bool,
}

async fn subscription(
    State(sim): State<GraphSim>,
    Path(waba): Path<String>,
    body: Bytes,
) -> Response {
    match parse::<SubscriptionBody>(&body) {
        Ok(s) => {
            sim.set_subscribed(&waba, s.subscribed);
            Json(json!({"waba_id": waba, "subscribed": sim.is_subscribed(&waba)})).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// [`PhoneSettings`] as JSON: `{"messaging_limit_tier": "TIER_250", "quality_rating": "YELLOW"}`.
async fn phone_settings(
    State(sim): State<GraphSim>,
    Path(pnid): Path<String>,
    body: Bytes,
) -> Response {
    if sim.shared.phone(&pnid).is_none() {
        return bad_request(SimError::UnknownPhoneNumber(pnid));
    }
    match parse::<PhoneSettings>(&body) {
        Ok(s) => {
            sim.set_phone_settings(&pnid, s);
            let now = sim.shared.lock().phone_settings.get(&pnid).cloned();
            Json(json!({ "phone_number_id": pnid, "settings": now })).into_response()
        }
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
struct OnBody {
    on: bool,
}

async fn spam(State(sim): State<GraphSim>, Path(pnid): Path<String>, body: Bytes) -> Response {
    match parse::<OnBody>(&body) {
        Ok(b) => {
            sim.set_spam_rate_limited(&pnid, b.on);
            Json(json!({"phone_number_id": pnid, "spam_rate_limited": b.on})).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// `{"fault": "ecosystem_cap" | "stopped_marketing" | null}`.
#[derive(Deserialize)]
struct MarketingBody {
    #[serde(default)]
    fault: Option<MarketingFault>,
}

async fn marketing(State(sim): State<GraphSim>, Path(to): Path<String>, body: Bytes) -> Response {
    match parse::<MarketingBody>(&body) {
        Ok(b) => {
            sim.set_marketing_fault(&to, b.fault);
            Json(json!({"to": to, "fault": b.fault})).into_response()
        }
        Err(e) => bad_request(e),
    }
}

/// `{"advance_secs": 86400}`.
#[derive(Deserialize)]
struct ClockBody {
    advance_secs: u64,
}

async fn clock(State(sim): State<GraphSim>, body: Bytes) -> Response {
    match parse::<ClockBody>(&body) {
        Ok(c) => {
            sim.advance_clock(std::time::Duration::from_secs(c.advance_secs));
            Json(json!({"now": sim.rule_now()})).into_response()
        }
        Err(e) => bad_request(e),
    }
}
