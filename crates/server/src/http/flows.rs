//! The bot's admin API: flows (with versions, validation and a preview of what the customer would
//! see), queues (with business hours) and the protocol lookup. Admins write; all staff read.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::flow::{Action, FlowContext};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use store::auth::Role;
use store::flows::FlowRecord;
use store::queues::{NewQueue, QueueDesk, QueuePatch, QueueRecord};

use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::state::AppState;
use crate::workers::bot::{self, DefinitionError, LoadedFlow, hours};

const STAFF: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];
const ADMIN: &[Role] = &[Role::Admin];

/// `Some(None)` for an explicit `null`, `None` for a missing field.
pub(crate) fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn invalid_flow(errors: Vec<DefinitionError>) -> Response {
    let summary: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    let message = format!(
        "O fluxo tem {} problema(s): {}",
        errors.len(),
        summary.join(" ")
    );
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": { "code": "invalid_flow", "message": message, "errors": errors } })),
    )
        .into_response()
}

fn flow_view(f: FlowRecord) -> Value {
    let definition: Value = serde_json::from_str(&f.definition).unwrap_or(Value::Null);
    json!({
        "id": f.id,
        "channel_id": f.channel_id,
        "name": f.name,
        "enabled": f.enabled,
        "version": f.version,
        "version_id": f.version_id,
        "version_created_by": f.version_created_by,
        "created_at": f.created_at,
        "updated_at": f.updated_at,
        "definition": definition,
    })
}

/// Problems that do not stop a flow from being saved.
fn warnings(loaded: &LoadedFlow, queues: &[QueueRecord]) -> Vec<String> {
    bot::referenced_queues(&loaded.flow)
        .into_iter()
        .filter(|key| !key.trim().is_empty() && !queues.iter().any(|q| &q.key == key))
        .map(|key| {
            format!("A fila \"{key}\" ainda não existe: crie-a em Filas, ou ela será criada (sempre aberta) na primeira transferência.")
        })
        .collect()
}

pub async fn list_flows(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let flows: Vec<Value> = app
        .store
        .flows()
        .await?
        .into_iter()
        .map(flow_view)
        .collect();
    Ok(Json(json!({ "flows": flows })))
}

pub async fn get_flow(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let flow = app.store.flow(id).await?.ok_or(ApiError::NotFound)?;
    let versions: Vec<Value> = app
        .store
        .flow_versions(id)
        .await?
        .into_iter()
        .map(|v| json!({ "id": v.id, "version": v.version, "created_at": v.created_at, "created_by": v.created_by }))
        .collect();
    Ok(Json(
        json!({ "flow": flow_view(flow), "versions": versions }),
    ))
}

#[derive(Deserialize)]
pub struct NewFlowRequest {
    name: Option<String>,
    /// The channel this flow serves; none for the default of every channel.
    channel_id: Option<i64>,
    definition: Value,
}

pub async fn create_flow(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<NewFlowRequest>,
) -> ApiResult<Response> {
    who.require(ADMIN)?;
    if let Some(channel_id) = req.channel_id {
        app.store
            .channel(channel_id)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("channel {channel_id} does not exist")))?;
    }
    let loaded = match bot::check_definition(&req.definition) {
        Ok(loaded) => loaded,
        Err(errors) => return Ok(invalid_flow(errors)),
    };
    let name = req
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Fluxo de atendimento".to_owned());
    let definition = bot::normalized_definition(&loaded).to_string();
    let flow = app
        .store
        .create_flow(req.channel_id, &name, &definition, who.user_id())
        .await?;
    tracing::info!(flow_id = flow.id, channel_id = ?flow.channel_id, "bot flow created");
    let warnings = warnings(&loaded, &app.store.queues().await?);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "flow": flow_view(flow), "warnings": warnings })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct UpdateFlowRequest {
    name: Option<String>,
    enabled: Option<bool>,
    /// A new definition becomes a new version; conversations already running keep theirs.
    definition: Option<Value>,
}

pub async fn update_flow(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<UpdateFlowRequest>,
) -> ApiResult<Response> {
    who.require(ADMIN)?;
    let loaded = match req
        .definition
        .as_ref()
        .map(bot::check_definition)
        .transpose()
    {
        Ok(loaded) => loaded,
        Err(errors) => return Ok(invalid_flow(errors)),
    };
    let name = req.name.map(|n| n.trim().to_owned());
    if name.as_deref() == Some("") {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    let definition = loaded
        .as_ref()
        .map(|l| bot::normalized_definition(l).to_string());
    let flow = app
        .store
        .update_flow(
            id,
            name.as_deref(),
            req.enabled,
            definition.as_deref(),
            who.user_id(),
        )
        .await?;
    tracing::info!(
        flow_id = flow.id,
        version = flow.version,
        "bot flow updated"
    );
    let warnings = match &loaded {
        Some(l) => warnings(l, &app.store.queues().await?),
        None => Vec::new(),
    };
    Ok(Json(json!({ "flow": flow_view(flow), "warnings": warnings })).into_response())
}

#[derive(Deserialize)]
pub struct ValidateRequest {
    definition: Value,
}

/// Validation plus a preview: what a new customer would receive first, and where the flow then
/// waits (or hands off, or ends).
pub async fn validate_flow(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<ValidateRequest>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let loaded = match bot::check_definition(&req.definition) {
        Ok(loaded) => loaded,
        Err(errors) => {
            return Ok(Json(
                json!({ "valid": false, "errors": errors, "warnings": [], "preview": null }),
            ));
        }
    };
    let queues = app.store.queues().await?;
    let now = store::now_ms();
    let sample_protocol = domain::protocol::protocol_for(&app.config.protocol, now, 1)
        .unwrap_or_else(|_| "20260101000001".to_owned());
    let mut ctx = FlowContext {
        business_hours_open: queues
            .iter()
            .map(|q| {
                (
                    q.key.clone(),
                    hours::queue_open(q.business_hours.as_deref(), now),
                )
            })
            .collect(),
        ..FlowContext::default()
    };
    ctx.vars.insert("nome".into(), "Maria".into());
    ctx.vars.insert("protocolo".into(), sample_protocol);
    ctx.fields = ctx.vars.clone();
    let names: HashMap<String, String> = queues
        .iter()
        .map(|q| (q.key.clone(), q.name.clone()))
        .collect();
    let outcome = bot::plan_turn(&loaded, &ctx, None, None, &names);
    let messages: Vec<Value> = outcome.actions.iter().filter_map(preview_message).collect();
    let then = match (&outcome.state, outcome.actions.last()) {
        (Some(state), _) => json!({ "waits_at": state.step }),
        (None, Some(Action::Handoff { queue, priority })) => {
            json!({ "handoff": { "queue": queue, "priority": priority } })
        }
        _ => json!({ "end": true }),
    };
    Ok(Json(json!({
        "valid": true,
        "errors": [],
        "warnings": warnings(&loaded, &queues),
        "preview": { "messages": messages, "then": then },
    })))
}

fn preview_message(action: &Action) -> Option<Value> {
    Some(match action {
        Action::SendText(body) => json!({ "type": "text", "body": body }),
        Action::SendButtons { body, buttons } => json!({
            "type": "buttons",
            "body": body,
            "buttons": buttons.iter().map(|(id, title)| json!({ "id": id, "title": title })).collect::<Vec<_>>(),
        }),
        Action::SendList {
            body,
            button_label,
            rows,
        } => json!({
            "type": "list",
            "body": body,
            "button": button_label,
            "rows": rows.iter().map(|(id, title, description)| json!({ "id": id, "title": title, "description": description })).collect::<Vec<_>>(),
        }),
        Action::SendMedia {
            media_url_or_id,
            kind,
            caption,
            filename,
        } => json!({
            "type": kind,
            "media": media_url_or_id,
            "caption": caption,
            "filename": filename,
        }),
        _ => return None,
    })
}

fn queue_view(q: QueueRecord) -> Value {
    let open_now = hours::queue_open(q.business_hours.as_deref(), store::now_ms());
    let business_hours: Value = q
        .business_hours
        .as_deref()
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": q.id,
        "key": q.key,
        "name": q.name,
        "priority": q.priority,
        "business_hours": business_hours,
        "outside_hours_message": q.outside_hours_message,
        "outside_hours_action": q.outside_hours_action,
        "open_now": open_now,
        "waiting_message": q.desk.waiting_message,
        "position_update_secs": q.desk.position_update_secs,
        "max_wait_secs": q.desk.max_wait_secs,
        "max_wait_message": q.desk.max_wait_message,
        "default_max_concurrent": q.desk.default_max_concurrent,
        "transfer_message": q.desk.transfer_message,
        "closing_message": q.desk.closing_message,
        "created_at": q.created_at,
        "updated_at": q.updated_at,
    })
}

pub async fn list_queues(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let queues: Vec<Value> = app
        .store
        .queues()
        .await?
        .into_iter()
        .map(queue_view)
        .collect();
    Ok(Json(json!({ "queues": queues })))
}

fn checked_hours(value: Option<Value>) -> ApiResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let hours = hours::BusinessHours::parse(&v).map_err(ApiError::bad_request)?;
            Ok(Some(
                serde_json::to_string(&hours).map_err(|e| ApiError::Internal(e.into()))?,
            ))
        }
    }
}

fn checked_action(action: &str) -> ApiResult<String> {
    match action {
        "wait" | "end" => Ok(action.to_owned()),
        other => Err(ApiError::bad_request(format!(
            "outside_hours_action must be \"wait\" (stay in the queue for the next shift) or \"end\", not {other:?}"
        ))),
    }
}

fn checked_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must have 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

#[derive(Deserialize)]
pub struct NewQueueRequest {
    key: String,
    name: String,
    #[serde(default)]
    priority: i64,
    business_hours: Option<Value>,
    outside_hours_message: Option<String>,
    outside_hours_action: Option<String>,
    #[serde(flatten)]
    desk: DeskSettingsRequest,
}

/// The desk's settings of a queue, each optional in a request (`null` clears a message).
#[derive(Deserialize, Default)]
pub struct DeskSettingsRequest {
    #[serde(default, deserialize_with = "nullable")]
    waiting_message: Option<Option<String>>,
    position_update_secs: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    max_wait_secs: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    max_wait_message: Option<Option<String>>,
    default_max_concurrent: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    transfer_message: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    closing_message: Option<Option<String>>,
}

impl DeskSettingsRequest {
    fn is_empty(&self) -> bool {
        self.waiting_message.is_none()
            && self.position_update_secs.is_none()
            && self.max_wait_secs.is_none()
            && self.max_wait_message.is_none()
            && self.default_max_concurrent.is_none()
            && self.transfer_message.is_none()
            && self.closing_message.is_none()
    }

    /// `current` with this request's changes, checked.
    fn apply(self, current: &QueueDesk) -> ApiResult<QueueDesk> {
        let text = |v: Option<Option<String>>, old: &Option<String>| match v {
            None => old.clone(),
            Some(m) => m.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()),
        };
        let desk = QueueDesk {
            waiting_message: text(self.waiting_message, &current.waiting_message),
            position_update_secs: self
                .position_update_secs
                .unwrap_or(current.position_update_secs),
            max_wait_secs: self.max_wait_secs.unwrap_or(current.max_wait_secs),
            max_wait_message: text(self.max_wait_message, &current.max_wait_message),
            default_max_concurrent: self
                .default_max_concurrent
                .unwrap_or(current.default_max_concurrent),
            transfer_message: text(self.transfer_message, &current.transfer_message),
            closing_message: text(self.closing_message, &current.closing_message),
        };
        if desk.position_update_secs < 0 || desk.max_wait_secs.is_some_and(|s| s <= 0) {
            return Err(ApiError::bad_request(
                "position_update_secs must be 0 or more and max_wait_secs positive",
            ));
        }
        if !(0..=100).contains(&desk.default_max_concurrent) {
            return Err(ApiError::bad_request(
                "default_max_concurrent must be between 0 and 100",
            ));
        }
        Ok(desk)
    }
}

pub async fn create_queue(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<NewQueueRequest>,
) -> ApiResult<Response> {
    who.require(ADMIN)?;
    let key = req.key.trim().to_owned();
    let key_ok = !key.is_empty()
        && key.len() <= 50
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !key_ok {
        return Err(ApiError::bad_request(
            "key must have 1 to 50 characters among a-z, 0-9, '_' and '-' (flows name the queue by it)",
        ));
    }
    let new = NewQueue {
        key,
        name: checked_name(&req.name)?,
        priority: req.priority,
        business_hours: checked_hours(req.business_hours)?,
        outside_hours_message: req.outside_hours_message.filter(|m| !m.trim().is_empty()),
        outside_hours_action: checked_action(
            req.outside_hours_action.as_deref().unwrap_or("wait"),
        )?,
    };
    let mut queue = app.store.create_queue(&new).await?;
    if !req.desk.is_empty() {
        let desk = req.desk.apply(&queue.desk)?;
        queue = app.store.update_queue_desk(queue.id, &desk).await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({ "queue": queue_view(queue) })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct QueuePatchRequest {
    name: Option<String>,
    priority: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    business_hours: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    outside_hours_message: Option<Option<String>>,
    outside_hours_action: Option<String>,
    #[serde(flatten)]
    desk: DeskSettingsRequest,
}

pub async fn update_queue(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<QueuePatchRequest>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let patch = QueuePatch {
        name: req.name.as_deref().map(checked_name).transpose()?,
        priority: req.priority,
        business_hours: req.business_hours.map(checked_hours).transpose()?,
        outside_hours_message: req
            .outside_hours_message
            .map(|m| m.filter(|m| !m.trim().is_empty())),
        outside_hours_action: req
            .outside_hours_action
            .as_deref()
            .map(checked_action)
            .transpose()?,
    };
    let mut queue = app.store.update_queue(id, &patch).await?;
    if !req.desk.is_empty() {
        let desk = req.desk.apply(&queue.desk)?;
        queue = app.store.update_queue_desk(id, &desk).await?;
    }
    Ok(Json(json!({ "queue": queue_view(queue) })))
}

/// `GET /api/protocols/{number}`: the demand behind a protocol number.
pub async fn get_protocol(
    State(app): State<AppState>,
    who: Principal,
    Path(number): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    // Protocols are digits and an optional upper-case prefix; people type spaces and dots.
    let number: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .collect::<String>()
        .to_uppercase();
    let p = app
        .store
        .conversation_by_protocol(&number)
        .await?
        .ok_or(ApiError::NotFound)?;
    // Only what the caller may see (an agent: their own and their queues' waiting ones).
    crate::access::visible_conversation(&app, &who, p.conversation_id).await?;
    let code_formatted = p
        .contact_code
        .as_deref()
        .and_then(|c| domain::document::Document::parse(c).ok())
        .map(|d| d.formatted());
    let queue = p
        .queue_id
        .map(|id| json!({ "id": id, "key": p.queue_key, "name": p.queue_name }));
    let bot = p
        .flow_version_id
        .map(|v| json!({ "flow_version_id": v, "outcome": p.bot_outcome, "finished_at": p.bot_finished_at }));
    Ok(Json(json!({
        "protocol": p.protocol,
        "conversation": {
            "id": p.conversation_id,
            "channel_id": p.channel_id,
            "state": p.state,
            "opened_at": p.opened_at,
            "closed_at": p.closed_at,
            "protocol_sent_at": p.protocol_sent_at,
            "priority": p.priority,
            "queued_at": p.queued_at,
            "subject": p.subject,
            "agent_id": p.agent_id,
        },
        "queue": queue,
        "contact": {
            "id": p.contact_id,
            "wa_id": p.contact_wa_id,
            "name": p.contact_name,
            "profile_name": p.contact_profile_name,
            "code": p.contact_code,
            "code_formatted": code_formatted,
            "email": p.contact_email,
        },
        "bot": bot,
    })))
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    use axum::routing::{get, patch, post};
    axum::Router::new()
        .route("/flows", get(list_flows).post(create_flow))
        .route("/flows/validate", post(validate_flow))
        .route("/flows/{id}", get(get_flow).put(update_flow))
        .route("/queues", get(list_queues).post(create_queue))
        .route("/queues/{id}", patch(update_queue))
        .route("/protocols/{number}", get(get_protocol))
}
