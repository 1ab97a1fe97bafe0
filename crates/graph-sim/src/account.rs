//! The account side Atende checks before it uses templates: the token's permissions
//! (`GET /debug_token`), the WABA (`GET /{WABA-ID}`), the app's subscription to it
//! (`/{WABA-ID}/subscribed_apps`) and the phone number's quality and messaging limit
//! (`GET /{Phone-Number-ID}?fields=...`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::errors::GraphError;
use crate::graph::{Kill, bearer, gate, valid_version};
use crate::{Endpoint, GraphSim, PhoneNumber};

pub(crate) const MESSAGING: &str = "whatsapp_business_messaging";
pub(crate) const MANAGEMENT: &str = "whatsapp_business_management";
/// What every configured token is granted unless a test says otherwise.
pub(crate) const DEFAULT_SCOPES: &[&str] = &[MESSAGING, MANAGEMENT];

/// The app's subscription to a WABA's webhooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub subscribed: bool,
    pub override_callback_uri: Option<String>,
}

/// What `GET /{Phone-Number-ID}` reports for a number; `None` fields keep their default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneSettings {
    /// GREEN, YELLOW, RED or NA (default GREEN).
    #[serde(default)]
    pub quality_rating: Option<String>,
    /// TIER_250, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED... reported both as
    /// `whatsapp_business_manager_messaging_limit` and as the deprecated `messaging_limit_tier`
    /// (defaults TIER_2K and TIER_1K).
    #[serde(default)]
    pub messaging_limit_tier: Option<String>,
    #[serde(default)]
    pub verified_name: Option<String>,
    /// VERIFIED or UNVERIFIED (default VERIFIED).
    #[serde(default)]
    pub code_verification_status: Option<String>,
    /// STANDARD or HIGH (default STANDARD).
    #[serde(default)]
    pub throughput_level: Option<String>,
    /// APPROVED, PENDING_REVIEW, DECLINED... (default APPROVED).
    #[serde(default)]
    pub name_status: Option<String>,
}

impl PhoneSettings {
    /// Overwrites the fields `other` sets.
    pub(crate) fn merge(&mut self, other: PhoneSettings) {
        let take = |mine: &mut Option<String>, theirs: Option<String>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        take(&mut self.quality_rating, other.quality_rating);
        take(&mut self.messaging_limit_tier, other.messaging_limit_tier);
        take(&mut self.verified_name, other.verified_name);
        take(
            &mut self.code_verification_status,
            other.code_verification_status,
        );
        take(&mut self.throughput_level, other.throughput_level);
        take(&mut self.name_status, other.name_status);
    }
}

/// The token is valid and carries `scope`; Meta's order: an invalid token (190) wins over a
/// missing permission (200 / 10).
pub(crate) fn authorize_scope(
    sim: &GraphSim,
    headers: &HeaderMap,
    scope: &str,
) -> Result<(), GraphError> {
    crate::graph::authorize(sim, headers)?;
    let token = bearer(headers).unwrap_or_default();
    let granted = sim
        .shared
        .lock()
        .token_scopes
        .get(token)
        .is_some_and(|s| s.iter().any(|g| g == scope));
    if granted {
        Ok(())
    } else {
        Err(GraphError::missing_permission(scope))
    }
}

pub(crate) fn waba_known(sim: &GraphSim, waba_id: &str) -> bool {
    sim.shared
        .phone_numbers
        .iter()
        .any(|p| p.waba_id == waba_id)
}

fn wabas(sim: &GraphSim) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in &sim.shared.phone_numbers {
        if !out.contains(&p.waba_id) {
            out.push(p.waba_id.clone());
        }
    }
    out
}

/// Picks the requested fields (plus `id`) out of `all`, or `default` without `fields`; an
/// unknown field is Meta's (#100) "nonexisting field" error.
pub(crate) fn select(
    all: &Map<String, Value>,
    fields: Option<&str>,
    default: &[&str],
    node_type: &str,
) -> Result<Value, GraphError> {
    let wanted: Vec<&str> = match fields {
        Some(f) => f
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .chain(["id"])
            .collect(),
        None => default.to_vec(),
    };
    let mut out = Map::new();
    for f in wanted {
        match all.get(f) {
            Some(v) => {
                out.insert(f.to_owned(), v.clone());
            }
            None => {
                return Err(GraphError::invalid_param(&format!(
                    "Tried accessing nonexisting field ({f}) on node type ({node_type})"
                )));
            }
        }
    }
    Ok(Value::Object(out))
}

/// `GET /{Phone-Number-ID}`; the document's default fields are id, display_phone_number,
/// verified_name and quality_rating.
pub(crate) fn phone_info(sim: &GraphSim, phone: &PhoneNumber, fields: Option<&str>) -> Response {
    let s = sim
        .shared
        .lock()
        .phone_settings
        .get(&phone.phone_number_id)
        .cloned()
        .unwrap_or_default();
    let tier = s.messaging_limit_tier.clone();
    let all = json!({
        "verified_name": s.verified_name.unwrap_or_else(|| "Atende Simulado".to_owned()),
        "code_verification_status": s.code_verification_status.unwrap_or_else(|| "VERIFIED".to_owned()),
        "display_phone_number": phone.display_phone_number,
        "quality_rating": s.quality_rating.unwrap_or_else(|| "GREEN".to_owned()),
        "platform_type": "CLOUD_API",
        "throughput": {"level": s.throughput_level.unwrap_or_else(|| "STANDARD".to_owned())},
        "name_status": s.name_status.unwrap_or_else(|| "APPROVED".to_owned()),
        "status": "CONNECTED",
        "account_mode": "LIVE",
        "is_official_business_account": false,
        "messaging_limit_tier": tier.clone().unwrap_or_else(|| "TIER_1K".to_owned()),
        "whatsapp_business_manager_messaging_limit": tier.unwrap_or_else(|| "TIER_2K".to_owned()),
        "id": phone.phone_number_id,
    });
    const DEFAULT: &[&str] = &[
        "id",
        "display_phone_number",
        "verified_name",
        "quality_rating",
    ];
    let Value::Object(all) = all else {
        unreachable!("built as an object")
    };
    match select(&all, fields, DEFAULT, "WhatsAppBusinessPhoneNumber") {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /{WABA-ID}`; default fields id and name.
pub(crate) fn waba_info(sim: &GraphSim, waba: &str, fields: Option<&str>) -> Response {
    let count = sim
        .shared
        .lock()
        .templates
        .iter()
        .filter(|t| t.waba_id == waba)
        .count();
    let all = json!({
        "id": waba,
        "name": "Atende Simulado",
        "timezone_id": "25",
        "message_template_namespace": format!("graph_sim_{}", crate::digits(waba)),
        "account_review_status": "APPROVED",
        "business_verification_status": "VERIFIED",
        "country": "BR",
        "currency": "BRL",
        "ownership_type": "SELF_OWNED",
        "primary_business_location": "BR",
        "is_enabled_for_insights": true,
        "template_count": count,
    });
    let Value::Object(all) = all else {
        unreachable!("built as an object")
    };
    match select(&all, fields, &["id", "name"], "WhatsAppBusinessAccount") {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

fn app_data(sim: &GraphSim) -> Value {
    json!({
        "id": sim.shared.app_id,
        "name": "Atende",
        "link": format!("https://www.facebook.com/games/?app_id={}", sim.shared.app_id),
    })
}

async fn waba_gate(
    sim: &GraphSim,
    version: &str,
    waba: &str,
    method: &str,
    uri: &OriginalUri,
    kill: &Kill,
    headers: &HeaderMap,
) -> Result<(), Response> {
    if !valid_version(version) {
        return Err(GraphError::unknown_path(uri.path()).into_response());
    }
    gate(sim, Endpoint::Account, kill).await?;
    authorize_scope(sim, headers, MANAGEMENT).map_err(IntoResponse::into_response)?;
    if !waba_known(sim, waba) {
        return Err(GraphError::unknown_object(method, waba).into_response());
    }
    Ok(())
}

pub(crate) async fn subscribed_apps_get(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = waba_gate(&sim, &version, &waba, "get", &uri, &kill, &headers).await {
        return r;
    }
    let sub = sim.subscription(&waba);
    let data = if sub.subscribed {
        let mut entry = json!({"whatsapp_business_api_data": app_data(&sim)});
        if let Some(uri) = sub.override_callback_uri {
            entry["override_callback_uri"] = json!(uri);
        }
        vec![entry]
    } else {
        Vec::new()
    };
    Json(json!({ "data": data })).into_response()
}

pub(crate) async fn subscribed_apps_post(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = waba_gate(&sim, &version, &waba, "post", &uri, &kill, &headers).await {
        return r;
    }
    // The body is optional; Graph also takes the same fields as query parameters.
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return GraphError::invalid_param(
                    "Invalid parameter: the body must be a JSON object",
                )
                .into_response();
            }
        }
    };
    let callback = req
        .get("override_callback_uri")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if callback.is_some() && req.get("verify_token").and_then(Value::as_str).is_none() {
        return GraphError::param_required("verify_token").into_response();
    }
    sim.shared.update(|s| {
        s.subscriptions.insert(
            waba.clone(),
            Subscription {
                subscribed: true,
                override_callback_uri: callback.clone(),
            },
        );
    });
    let mut answer = json!({"success": true});
    if let Some(uri) = callback {
        answer["data"] =
            json!([{"override_callback_uri": uri, "whatsapp_business_api_data": app_data(&sim)}]);
    }
    Json(answer).into_response()
}

pub(crate) async fn subscribed_apps_delete(
    State(sim): State<GraphSim>,
    Path((version, waba)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = waba_gate(&sim, &version, &waba, "delete", &uri, &kill, &headers).await {
        return r;
    }
    sim.shared.update(|s| {
        s.subscriptions
            .insert(waba.clone(), Subscription::default());
    });
    Json(json!({"success": true})).into_response()
}

/// `GET /debug_token?input_token=...`: what the token may do. Any valid token may ask.
pub(crate) fn debug_token(
    sim: &GraphSim,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Response {
    if let Err(e) = crate::graph::authorize(sim, headers) {
        return e.into_response();
    }
    let Some(input) = query.get("input_token").filter(|t| !t.is_empty()) else {
        return GraphError::param_required("input_token").into_response();
    };
    let scopes = sim.shared.lock().token_scopes.get(input).cloned();
    let now = crate::ids::unix_now().as_secs();
    let data = match scopes {
        Some(scopes) => {
            let targets = wabas(sim);
            let granular: Vec<Value> = scopes
                .iter()
                .map(|s| {
                    if s == MESSAGING || s == MANAGEMENT {
                        json!({"scope": s, "target_ids": targets})
                    } else {
                        json!({"scope": s})
                    }
                })
                .collect();
            json!({
                "app_id": sim.shared.app_id,
                "type": "SYSTEM_USER",
                "application": "Atende",
                "data_access_expires_at": 0,
                "expires_at": 0,
                "is_valid": true,
                "issued_at": now.saturating_sub(86_400),
                "scopes": scopes,
                "granular_scopes": granular,
                "user_id": "100000000000777",
            })
        }
        None => json!({
            "app_id": sim.shared.app_id,
            "is_valid": false,
            "error": {"code": 190, "message": "Invalid OAuth access token - Cannot parse access token"},
            "scopes": [],
        }),
    };
    Json(json!({ "data": data })).into_response()
}

impl GraphSim {
    pub(crate) fn subscription(&self, waba: &str) -> Subscription {
        self.shared
            .lock()
            .subscriptions
            .get(waba)
            .cloned()
            .unwrap_or(Subscription {
                subscribed: true,
                override_callback_uri: None,
            })
    }
}
