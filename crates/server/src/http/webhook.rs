//! `GET/POST /webhooks/whatsapp`: Meta's verification handshake and event delivery. A POST is
//! answered 200 only after its body is durably in the inbox.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use store::inbox::Appended;

use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

pub async fn verify(State(app): State<AppState>, Query(q): Query<Handshake>) -> Response {
    let token = q.verify_token.unwrap_or_default();
    let matches = app
        .channels
        .all()
        .iter()
        .any(|c| c.enabled && constant_time_eq(c.verify_token.as_bytes(), token.as_bytes()));
    match (q.mode.as_deref(), matches, q.challenge) {
        (Some("subscribe"), true, Some(challenge)) => (StatusCode::OK, challenge).into_response(),
        (Some("subscribe"), true, None) => {
            (StatusCode::BAD_REQUEST, "missing hub.challenge").into_response()
        }
        (Some("subscribe"), false, _) => {
            tracing::warn!("webhook verification with a wrong verify token");
            (
                StatusCode::FORBIDDEN,
                "verify token does not match any channel's webhook verify token",
            )
                .into_response()
        }
        _ => (StatusCode::FORBIDDEN, "hub.mode must be subscribe").into_response(),
    }
}

pub async fn receive(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(signature) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
    else {
        tracing::warn!(
            bytes = body.len(),
            "webhook without X-Hub-Signature-256 refused"
        );
        return (StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256").into_response();
    };
    let Some(secret) = app
        .channels
        .app_secrets()
        .into_iter()
        .find(|s| whatsapp::signature::verify(s.as_bytes(), &body, signature))
    else {
        tracing::warn!(
            bytes = body.len(),
            "webhook with an invalid signature refused"
        );
        return (StatusCode::UNAUTHORIZED, "invalid signature").into_response();
    };

    let dead_reason = match whatsapp::webhook::parse_envelope(&body) {
        Ok(envelope) => {
            // Several numbers of one Meta app share its secret; a number of another app must not
            // ride on this signature.
            let foreign = envelope.phone_number_ids().into_iter().find(|id| {
                app.channels
                    .by_phone_number_id(id)
                    .is_none_or(|c| c.app_secret != secret)
            });
            if let Some(id) = foreign {
                tracing::warn!(phone_number_id = %id, "webhook for a number not served with this app secret refused");
                return (
                    StatusCode::UNAUTHORIZED,
                    "signature does not match the app secret of every phone number in the payload",
                )
                    .into_response();
            }
            None
        }
        // Signed by Meta but not understood: keep it (and stop Meta's retries) for a later replay.
        Err(e) => Some(e.to_string()),
    };

    match app.inbox.append(body.to_vec(), dead_reason).await {
        Ok(Appended::New(id)) => {
            tracing::debug!(inbox_id = id, "webhook stored");
            (StatusCode::OK, "EVENT_RECEIVED").into_response()
        }
        Ok(Appended::Duplicate) => (StatusCode::OK, "EVENT_RECEIVED").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "webhook not stored; Meta will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unable to store the webhook",
            )
                .into_response()
        }
    }
}

/// Compares secrets without leaking where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
