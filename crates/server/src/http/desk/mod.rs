//! The desk's JSON API around a conversation: scoped lists, assign, transfer, finalize, notes,
//! the protocol form and a contact's history (`records`), and the desk's catalogs (dispositions,
//! custom fields, canned responses: `catalog`). Authorization is decided by [`crate::access::access`].

mod catalog;
mod records;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::document::Document;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use store::auth::Role;
use store::conversations::ConversationSummary;
use store::desk::{AssignOutcome, StartOutcome, TransferTarget};
use store::desk_records::{
    ConversationQuery, CustomFieldRecord, FormPatch, NewCustomField, Scope, Viewer,
};

use crate::access::{Access, visible_conversation};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::live::Notice;
use crate::state::AppState;
use crate::workers::routing::{send_system_text, template_vars};

pub use catalog::*;
pub use records::*;

const STAFF: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];
const ADMIN: &[Role] = &[Role::Admin];
const MANAGERS: &[Role] = &[Role::Admin, Role::Supervisor];

fn viewer(who: &Principal) -> Viewer {
    match (who.role(), who.user_id()) {
        (Role::Supervisor, Some(id)) => Viewer::Supervisor(id),
        (Role::Agent, Some(id)) => Viewer::Agent(id),
        _ => Viewer::Everything,
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    scope: Option<String>,
    #[serde(default)]
    open: bool,
    limit: Option<i64>,
}

/// `GET /api/conversations?scope=mine|waiting|all&open=true`.
pub async fn list_conversations(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let scope = match q.scope.as_deref().unwrap_or("all") {
        "mine" => Scope::Mine,
        "waiting" => Scope::Waiting,
        "all" => Scope::All,
        other => {
            return Err(ApiError::bad_request(format!(
                "scope must be mine, waiting or all, not {other:?}"
            )));
        }
    };
    let conversations = app
        .store
        .desk_conversations(ConversationQuery {
            viewer: viewer(&who),
            me: who.user_id().unwrap_or(0),
            scope,
            open_only: q.open,
            limit: q.limit.unwrap_or(100).clamp(1, 500),
        })
        .await?;
    Ok(Json(json!({ "conversations": conversations })))
}

#[derive(Deserialize)]
pub struct StartRequest {
    wa_id: String,
    channel_id: Option<i64>,
    /// For supervisors, admins and integrations: whose it is (default: the caller; an
    /// integration's waits for routing).
    agent_id: Option<i64>,
    /// Supervisors and admins: open it even above the agent's limit.
    #[serde(default)]
    exceed_limit: bool,
    /// The queue it belongs to (default: the agent's first queue).
    queue_id: Option<i64>,
}

/// `POST /api/conversations`: starts a conversation with a customer (active contact), with its
/// protocol number, or returns the one already open (200). Free-form messages still need the
/// customer's 24 h window; outside it only a template may be sent.
pub async fn start_conversation(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<StartRequest>,
) -> ApiResult<Response> {
    who.require(STAFF)?;
    let wa_id: String = req.wa_id.chars().filter(char::is_ascii_digit).collect();
    if !(8..=15).contains(&wa_id.len()) {
        return Err(ApiError::bad_request(
            "wa_id must be the customer's number with country code (8 to 15 digits)",
        ));
    }
    let channel = match req.channel_id {
        Some(id) => app.channels.by_id(id),
        None => app.channels.all().into_iter().find(|c| c.enabled),
    }
    .filter(|c| c.enabled)
    .ok_or_else(|| ApiError::bad_request("no enabled channel to start the conversation on"))?;
    let agent_id = match (req.agent_id, who.user_id()) {
        (Some(other), me) if Some(other) != me => {
            who.require(MANAGERS)?;
            active_user(&app, other).await?;
            Some(other)
        }
        (_, me) => me,
    };
    if req.exceed_limit {
        who.require(MANAGERS)?;
    }
    if let Some(q) = req.queue_id
        && app.store.queue(q).await?.is_none()
    {
        return Err(ApiError::bad_request(format!("no queue with id {q}")));
    }
    let outcome = app
        .store
        .start_conversation(
            channel.id,
            &wa_id,
            agent_id,
            req.exceed_limit,
            &app.config.protocol,
        )
        .await?;
    let (id, created) = match outcome {
        StartOutcome::Created(id) => {
            // Its queue's supervisors oversee it, as with any other conversation.
            let queue = match (req.queue_id, agent_id) {
                (Some(q), _) => Some(q),
                (None, Some(agent)) => app.store.user_queue_ids(agent).await?.first().copied(),
                (None, None) => None,
            };
            if let Some(q) = queue {
                app.store.set_queue_if_unset(id, q).await?;
            }
            (id, true)
        }
        StartOutcome::Existing(id) => (id, false),
        StartOutcome::AtCapacity => {
            return Err(ApiError::Conflict(
                "agent_at_capacity",
                "the agent is at their limit of simultaneous conversations".into(),
            ));
        }
    };
    app.live.publish(Notice::DeskChanged);
    let conversation = app
        .store
        .conversation(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let access = crate::access::access(&app, &who, &conversation).await?;
    if access == Access::Hidden {
        return Err(ApiError::Conflict(
            "conversation_open_elsewhere",
            "this customer already has an open conversation with someone else".into(),
        ));
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "conversation": conversation_view(&conversation, access) })),
    )
        .into_response())
}

fn conversation_view(c: &ConversationSummary, access: Access) -> Value {
    let mut view = serde_json::to_value(c).unwrap_or_else(|_| json!({}));
    view["can_act"] = (access == Access::Work).into();
    view["can_take"] = (access >= Access::Take && c.closed_at.is_none()).into();
    view["can_manage"] = (access.may_manage()).into();
    view
}

/// `GET /api/conversations/{id}`.
pub async fn get_conversation(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (conversation, access) = visible_conversation(&app, &who, id).await?;
    Ok(Json(
        json!({ "conversation": conversation_view(&conversation, access) }),
    ))
}

#[derive(Deserialize)]
pub struct AssignRequest {
    agent_id: Option<i64>,
    #[serde(default)]
    exceed_limit: bool,
}

/// `POST /api/conversations/{id}/assign`: an agent takes a waiting conversation of their queue
/// (within their limit); a supervisor or admin gives it to anyone, above the limit only when
/// asked explicitly.
pub async fn assign(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<AssignRequest>,
) -> ApiResult<Json<Value>> {
    let (_, access) = visible_conversation(&app, &who, id).await?;
    let me = who.user_id();
    let agent_id = req
        .agent_id
        .or(me)
        .ok_or_else(|| ApiError::bad_request("agent_id is required"))?;
    let for_someone_else = Some(agent_id) != me;
    if for_someone_else || req.exceed_limit {
        access.require(Access::Supervise)?;
        who.require(MANAGERS)?;
    } else {
        access.require(Access::Take)?;
    }
    active_user(&app, agent_id).await?;
    match app
        .store
        .assign_conversation(
            id,
            agent_id,
            me,
            req.exceed_limit,
            access < Access::Supervise,
        )
        .await?
    {
        AssignOutcome::Assigned => {}
        AssignOutcome::AtCapacity => {
            return Err(ApiError::Conflict(
                "agent_at_capacity",
                "the agent is at their limit of simultaneous conversations".into(),
            ));
        }
        AssignOutcome::NotAssignable => {
            return Err(ApiError::Conflict(
                "not_assignable",
                "this conversation is no longer waiting (someone else took it, or it is closed)"
                    .into(),
            ));
        }
    }
    app.live.publish(Notice::DeskChanged);
    let conversation = app
        .store
        .conversation(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({ "conversation": conversation })))
}

async fn active_user(app: &AppState, id: i64) -> ApiResult<()> {
    match app.store.user(id).await? {
        Some(u) if u.active => Ok(()),
        _ => Err(ApiError::bad_request(format!(
            "no active user with id {id}"
        ))),
    }
}

#[derive(Deserialize)]
pub struct TransferRequest {
    to_agent_id: Option<i64>,
    to_queue_id: Option<i64>,
    note: Option<String>,
}

/// `POST /api/conversations/{id}/transfer`.
pub async fn transfer(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<TransferRequest>,
) -> ApiResult<Json<Value>> {
    let (_, access) = visible_conversation(&app, &who, id).await?;
    if !access.may_manage() {
        return Err(ApiError::Forbidden(
            "only the agent working this conversation or a supervisor may transfer it".into(),
        ));
    }
    let target = match (req.to_agent_id, req.to_queue_id) {
        (Some(agent), None) => {
            active_user(&app, agent).await?;
            // Their personal line would wait for someone who is not coming (offline people are
            // never routed to); paused people come back.
            let offline = app
                .store
                .desk_user(agent)
                .await?
                .is_none_or(|u| u.presence == store::people::Presence::Offline.as_str());
            if offline {
                return Err(ApiError::Conflict(
                    "agent_offline",
                    "this agent is offline: transfer to a queue or to someone available".into(),
                ));
            }
            TransferTarget::Agent(agent)
        }
        (None, Some(queue)) => {
            app.store
                .queue(queue)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("no queue with id {queue}")))?;
            TransferTarget::Queue(queue)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of to_agent_id and to_queue_id",
            ));
        }
    };
    let note = req.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let outcome = app
        .store
        .transfer_conversation(id, who.user_id(), target, note)
        .await?
        .ok_or(ApiError::Conflict(
            "not_transferable",
            "only a waiting or assigned conversation can be transferred".into(),
        ))?;
    app.live.publish(Notice::DeskChanged);
    let conversation = app
        .store
        .conversation(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tell_customer_of_transfer(&app, &conversation, outcome.transfer_id).await;
    Ok(Json(
        json!({ "state": outcome.state, "transfer_id": outcome.transfer_id, "conversation": conversation }),
    ))
}

/// The transfer message of the queue the conversation is in now (the destination queue, or its
/// queue when it went to an agent), when it has one; once per transfer.
async fn tell_customer_of_transfer(app: &AppState, c: &ConversationSummary, transfer_id: i64) {
    let template = match c.queue_id {
        Some(q) => app
            .store
            .queue(q)
            .await
            .ok()
            .flatten()
            .and_then(|q| q.desk.transfer_message),
        None => None,
    };
    let Some(template) = template else { return };
    let text = domain::text::render_template(&template, &template_vars(c, None));
    let key = format!("transfer-{transfer_id}");
    if let Err(e) = send_system_text(&app.store, &app.outbound, c.id, &text, key).await {
        tracing::warn!(conversation_id = c.id, error = %format!("{e:#}"), "cannot send the transfer message");
    }
}

#[derive(Deserialize)]
pub struct FinalizeRequest {
    disposition_id: Option<i64>,
    note: Option<String>,
    send_closing_message: Option<bool>,
}

/// `POST /api/conversations/{id}/finalize`.
pub async fn finalize(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<FinalizeRequest>,
) -> ApiResult<Json<Value>> {
    let (conversation, access) = visible_conversation(&app, &who, id).await?;
    if conversation.closed_at.is_some() {
        return Err(ApiError::Conflict(
            "conversation_closed",
            "this conversation is already finalized".into(),
        ));
    }
    if !access.may_manage() {
        return Err(ApiError::Forbidden(
            "only the agent working this conversation or a supervisor may finalize it".into(),
        ));
    }
    let offered = app.store.dispositions(conversation.queue_id).await?;
    let disposition = req
        .disposition_id
        .and_then(|d| offered.iter().find(|o| o.id == d))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "disposition_required",
                "choose one of this queue's dispositions (tabulação)".into(),
            )
        })?;
    let missing = missing_required_fields(&app, &conversation).await?;
    if !missing.is_empty() {
        let labels: Vec<&str> = missing.iter().map(|f| f.label.as_str()).collect();
        return Err(ApiError::Unprocessable(
            "required_fields_missing",
            format!("fill in the required fields: {}", labels.join(", ")),
            json!({
                "fields": labels,
                "keys": missing.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
            }),
        ));
    }
    let note = req.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let closed = app
        .store
        .finalize_conversation(id, who.user_id(), disposition.id, note)
        .await?;
    if !closed {
        return Err(ApiError::Conflict(
            "conversation_closed",
            "this conversation is already finalized".into(),
        ));
    }
    app.live.publish(Notice::DeskChanged);
    if req.send_closing_message.unwrap_or(true) {
        send_closing_message(&app, &conversation).await;
    }
    let conversation = app
        .store
        .conversation(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({ "conversation": conversation })))
}

async fn send_closing_message(app: &AppState, c: &ConversationSummary) {
    let Some(queue_id) = c.queue_id else { return };
    let Ok(Some(queue)) = app.store.queue(queue_id).await else {
        return;
    };
    let Some(template) = queue.desk.closing_message else {
        return;
    };
    let text = domain::text::render_template(&template, &template_vars(c, None));
    let key = format!("closing-{}", c.id);
    if let Err(e) = send_system_text(&app.store, &app.outbound, c.id, &text, key).await {
        tracing::warn!(conversation_id = c.id, error = %format!("{e:#}"), "cannot send the closing message");
    }
}

/// Labels of the required custom fields of the conversation's queue still empty.
async fn missing_required_fields(
    app: &AppState,
    c: &ConversationSummary,
) -> ApiResult<Vec<CustomFieldRecord>> {
    let fields = app.store.custom_fields(c.queue_id.or(Some(0))).await?;
    let values = app.store.conversation_fields(c.id).await?;
    Ok(fields
        .into_iter()
        .filter(|f| f.required && f.queue_id.is_none_or(|q| Some(q) == c.queue_id))
        .filter(|f| {
            let key = format!("custom.{}", f.key);
            !values
                .iter()
                .any(|(k, v)| *k == key && !v.trim().is_empty())
        })
        .collect())
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    use axum::routing::{delete, get, patch, post};
    axum::Router::new()
        .route(
            "/conversations",
            get(list_conversations).post(start_conversation),
        )
        .route("/conversations/{id}", get(get_conversation))
        .route("/conversations/{id}/assign", post(assign))
        .route("/conversations/{id}/transfer", post(transfer))
        .route("/conversations/{id}/transfers", get(list_transfers))
        .route("/conversations/{id}/finalize", post(finalize))
        .route("/conversations/{id}/notes", get(list_notes).post(add_note))
        .route("/conversations/{id}/form", get(get_form).patch(patch_form))
        .route("/contacts/{id}/conversations", get(contact_conversations))
        .route(
            "/dispositions",
            get(list_dispositions).post(create_disposition),
        )
        .route("/dispositions/{id}", delete(delete_disposition))
        .route(
            "/custom-fields",
            get(list_custom_fields).post(create_custom_field),
        )
        .route(
            "/custom-fields/{id}",
            patch(update_custom_field).delete(delete_custom_field),
        )
        .route("/canned-responses", get(list_canned).post(create_canned))
        .route(
            "/canned-responses/{id}",
            patch(update_canned).delete(delete_canned),
        )
}
