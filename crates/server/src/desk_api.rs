//! The desk's JSON API around a conversation: scoped lists, assign, transfer, finalize, notes,
//! the protocol form, a contact's history, and the desk's configuration (dispositions, custom
//! fields, canned responses). Authorization is decided by [`crate::desk::access`].

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

use crate::app::AppState;
use crate::auth::Principal;
use crate::desk::{Access, send_system_text, template_vars, visible_conversation};
use crate::error::{ApiError, ApiResult};
use crate::live::Notice;

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
        StartOutcome::Created(id) => (id, true),
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
    let access = crate::desk::access(&app, &who, &conversation).await?;
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
                .is_none_or(|u| u.presence == store::desk::Presence::Offline.as_str());
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

/// `GET /api/conversations/{id}/transfers`.
pub async fn list_transfers(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    visible_conversation(&app, &who, id).await?;
    Ok(Json(json!({ "transfers": app.store.transfers(id).await? })))
}

/// `GET /api/conversations/{id}/notes`.
pub async fn list_notes(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    visible_conversation(&app, &who, id).await?;
    Ok(Json(json!({ "notes": app.store.notes(id).await? })))
}

#[derive(Deserialize)]
pub struct NoteRequest {
    body: String,
}

/// `POST /api/conversations/{id}/notes`: private, for staff only.
pub async fn add_note(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<NoteRequest>,
) -> ApiResult<Response> {
    let (_, access) = visible_conversation(&app, &who, id).await?;
    access.require(Access::Take)?;
    let user_id = who.user_id().ok_or_else(|| {
        ApiError::Forbidden("notes are written by people; use a user session".into())
    })?;
    let body = req.body.trim();
    if body.is_empty() || body.chars().count() > 4000 {
        return Err(ApiError::bad_request("a note has 1 to 4000 characters"));
    }
    let note_id = app.store.add_note(id, user_id, body).await?;
    app.live.publish(Notice::DeskChanged);
    Ok((StatusCode::CREATED, Json(json!({ "id": note_id }))).into_response())
}

/// `GET /api/conversations/{id}/form`.
pub async fn get_form(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    visible_conversation(&app, &who, id).await?;
    Ok(Json(form_view(&app, id).await?))
}

async fn form_view(app: &AppState, id: i64) -> ApiResult<Value> {
    let form = app.store.form(id).await?.ok_or(ApiError::NotFound)?;
    let values = app.store.conversation_fields(id).await?;
    let value_of = |key: &str| {
        values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let definitions = app.store.custom_fields(form.queue_id.or(Some(0))).await?;
    let definitions: Vec<&CustomFieldRecord> = definitions
        .iter()
        .filter(|f| f.queue_id.is_none_or(|q| Some(q) == form.queue_id))
        .collect();
    let mut custom = Map::new();
    for f in &definitions {
        if let Some(v) = value_of(&format!("custom.{}", f.key)) {
            custom.insert(f.key.clone(), v.into());
        }
    }
    let document = form.code.as_deref().and_then(|c| Document::parse(c).ok());
    Ok(json!({
        "conversation_id": form.conversation_id,
        "protocol": form.protocol,
        "contact_id": form.contact_id,
        "name": form.name.or(form.profile_name),
        "code": form.code,
        "code_formatted": document.as_ref().map(Document::formatted),
        "code_kind": document.as_ref().map(|d| d.kind().as_str()),
        "email": form.email,
        "phone": form.phone,
        "subject": form.subject,
        "notes": value_of("protocol.notes"),
        "custom": custom,
        "fields": definitions.iter().map(|f| field_view(f)).collect::<Vec<_>>(),
    }))
}

fn field_view(f: &CustomFieldRecord) -> Value {
    json!({
        "id": f.id, "queue_id": f.queue_id, "key": f.key, "label": f.label, "kind": f.kind,
        "options": f.option_list(), "required": f.required, "position": f.position,
    })
}

#[derive(Deserialize)]
pub struct FormRequest {
    name: Option<String>,
    code: Option<String>,
    email: Option<String>,
    subject: Option<String>,
    notes: Option<String>,
    #[serde(default)]
    custom: Map<String, Value>,
}

/// `PATCH /api/conversations/{id}/form`: saves what was sent; the Código is validated (CPF,
/// CNPJ, alphanumeric CNPJ) and stored normalized.
pub async fn patch_form(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<FormRequest>,
) -> ApiResult<Json<Value>> {
    let (conversation, access) = visible_conversation(&app, &who, id).await?;
    if conversation.closed_at.is_some() {
        return Err(ApiError::Conflict(
            "conversation_closed",
            "a finalized conversation is read-only".into(),
        ));
    }
    access.require(Access::Work)?;
    let code = match req.code.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(String::new()),
        Some(raw) => Some(
            Document::parse(raw)
                .map_err(|e| ApiError::BadRequest("invalid_document", e.message_pt_br().into()))?
                .normalized()
                .to_owned(),
        ),
    };
    let email = req.email.as_deref().map(str::trim).map(str::to_owned);
    if let Some(e) = email.as_deref().filter(|e| !e.is_empty())
        && !plausible_email(e)
    {
        return Err(ApiError::BadRequest(
            "invalid_email",
            "E-mail inválido.".into(),
        ));
    }
    let mut fields = Vec::new();
    if let Some(notes) = req.notes {
        fields.push(("protocol.notes".to_owned(), notes));
    }
    let definitions = app
        .store
        .custom_fields(conversation.queue_id.or(Some(0)))
        .await?;
    for (key, value) in req.custom {
        let def = definitions.iter().find(|f| f.key == key).ok_or_else(|| {
            ApiError::bad_request(format!("no custom field {key:?} in this queue"))
        })?;
        let value = custom_value(def, &value)?;
        fields.push((format!("custom.{key}"), value));
    }
    let patch = FormPatch {
        name: req.name.map(|n| n.trim().to_owned()),
        code,
        email,
        subject: req.subject.map(|s| s.trim().to_owned()),
        fields,
    };
    app.store.save_form(id, &patch).await?;
    app.live.publish(Notice::DeskChanged);
    Ok(Json(form_view(&app, id).await?))
}

fn plausible_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !e.contains(' ')
}

/// A custom field's value as stored (text), checked against its kind.
fn custom_value(def: &CustomFieldRecord, value: &Value) -> ApiResult<String> {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    if text.is_empty() {
        return Ok(text);
    }
    let bad = |what: &str| ApiError::BadRequest("invalid_field", format!("{}: {what}", def.label));
    match def.kind.as_str() {
        "number" => text
            .replace(',', ".")
            .parse::<f64>()
            .map(|_| text.clone())
            .map_err(|_| bad("informe um número")),
        "date" => text
            .parse::<jiff::civil::Date>()
            .map(|_| text.clone())
            .map_err(|_| bad("informe uma data (AAAA-MM-DD)")),
        "choice" if !def.option_list().contains(&text) => Err(bad("escolha uma das opções")),
        _ => Ok(text),
    }
}

/// `GET /api/contacts/{id}/conversations`: the contact's history, for whoever may see one of
/// its conversations.
pub async fn contact_conversations(
    State(app): State<AppState>,
    who: Principal,
    Path(contact_id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let all = app.store.contact_conversations(contact_id).await?;
    let mut visible = Vec::new();
    for c in all {
        if crate::desk::access(&app, &who, &c).await? != Access::Hidden {
            visible.push(c);
        }
    }
    if visible.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({ "conversations": visible })))
}

// ---------------------------------------------------------------------------- configuration

#[derive(Deserialize)]
pub struct QueueFilter {
    queue_id: Option<i64>,
}

pub async fn list_dispositions(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<QueueFilter>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    Ok(Json(
        json!({ "dispositions": app.store.dispositions(q.queue_id).await? }),
    ))
}

#[derive(Deserialize)]
pub struct DispositionRequest {
    label: String,
    queue_id: Option<i64>,
}

pub async fn create_disposition(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<DispositionRequest>,
) -> ApiResult<Response> {
    who.require(ADMIN)?;
    let label = checked_text("label", &req.label, 100)?;
    known_queue(&app, req.queue_id).await?;
    let d = app.store.create_disposition(req.queue_id, &label).await?;
    Ok((StatusCode::CREATED, Json(json!({ "disposition": d }))).into_response())
}

pub async fn delete_disposition(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    removed(app.store.deactivate_disposition(id).await?)
}

/// The answer to a DELETE: 404 when there was nothing to remove.
fn removed(found: bool) -> ApiResult<Json<Value>> {
    if found {
        Ok(Json(json!({ "ok": true })))
    } else {
        Err(ApiError::NotFound)
    }
}

/// 400 unless the queue a piece of configuration is for exists (`None`: every queue).
async fn known_queue(app: &AppState, queue_id: Option<i64>) -> ApiResult<()> {
    match queue_id {
        Some(q) if app.store.queue(q).await?.is_none() => {
            Err(ApiError::bad_request(format!("no queue with id {q}")))
        }
        _ => Ok(()),
    }
}

/// 403 unless the caller may write the canned responses of `queue_id` (`None`: the global ones,
/// offered in every queue). Admins (and integrations) write any; a supervisor only those of the
/// queues they supervise, since the global ones reach every other queue's customers.
async fn may_write_canned(app: &AppState, who: &Principal, queue_id: Option<i64>) -> ApiResult<()> {
    match (who.role(), queue_id) {
        (Role::Admin, _) => Ok(()),
        (Role::Supervisor, Some(q)) => {
            let me = who.user_id().unwrap_or(0);
            if app.store.user_queue_ids(me).await?.contains(&q) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "a supervisor writes only the canned responses of the queues they supervise"
                        .into(),
                ))
            }
        }
        (Role::Supervisor, None) => Err(ApiError::Forbidden(
            "canned responses for every queue (no queue_id) are written by admins".into(),
        )),
        (Role::Agent, _) => Err(ApiError::Forbidden("your role does not allow this".into())),
    }
}

fn checked_text(what: &str, text: &str, max: usize) -> ApiResult<String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{what} must have 1 to {max} characters"
        )));
    }
    Ok(text.to_owned())
}

pub async fn list_custom_fields(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<QueueFilter>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let fields = app.store.custom_fields(q.queue_id).await?;
    Ok(Json(
        json!({ "custom_fields": fields.iter().map(field_view).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
pub struct CustomFieldRequest {
    queue_id: Option<i64>,
    key: Option<String>,
    label: String,
    kind: Option<String>,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    position: i64,
}

fn checked_field(
    req: CustomFieldRequest,
    existing: Option<&CustomFieldRecord>,
) -> ApiResult<NewCustomField> {
    let key = match existing {
        Some(f) => f.key.clone(),
        None => req.key.unwrap_or_default().trim().to_owned(),
    };
    let key_ok = !key.is_empty()
        && key.len() <= 40
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !key_ok {
        return Err(ApiError::bad_request(
            "key must have 1 to 40 characters among a-z, 0-9 and '_'",
        ));
    }
    let kind = match existing {
        Some(f) => f.kind.clone(),
        None => req.kind.unwrap_or_else(|| "text".into()),
    };
    if !["text", "number", "date", "choice"].contains(&kind.as_str()) {
        return Err(ApiError::bad_request(
            "kind must be text, number, date or choice",
        ));
    }
    let options: Vec<String> = req
        .options
        .iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if kind == "choice" && options.is_empty() {
        return Err(ApiError::bad_request("a choice field needs options"));
    }
    Ok(NewCustomField {
        queue_id: existing.map_or(req.queue_id, |f| f.queue_id),
        key,
        label: checked_text("label", &req.label, 100)?,
        kind,
        options,
        required: req.required,
        position: req.position,
    })
}

pub async fn create_custom_field(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<CustomFieldRequest>,
) -> ApiResult<Response> {
    who.require(ADMIN)?;
    let new = checked_field(req, None)?;
    known_queue(&app, new.queue_id).await?;
    let taken = app
        .store
        .custom_fields(new.queue_id.or(Some(0)))
        .await?
        .iter()
        .any(|f| f.key == new.key && f.queue_id == new.queue_id);
    if taken {
        return Err(ApiError::Conflict(
            "conflict",
            format!("the field {:?} already exists", new.key),
        ));
    }
    let f = app.store.create_custom_field(&new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "custom_field": field_view(&f) })),
    )
        .into_response())
}

pub async fn update_custom_field(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<CustomFieldRequest>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let existing = app
        .store
        .custom_field(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let new = checked_field(req, Some(&existing))?;
    let f = app.store.update_custom_field(id, &new).await?;
    Ok(Json(json!({ "custom_field": field_view(&f) })))
}

pub async fn delete_custom_field(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    removed(app.store.deactivate_custom_field(id).await?)
}

#[derive(Deserialize)]
pub struct CannedQuery {
    conversation_id: Option<i64>,
}

/// `GET /api/canned-responses?conversation_id=`: with a conversation, each response also comes
/// `rendered` for it, and only those of its queue (and the global ones).
pub async fn list_canned(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<CannedQuery>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let all = app.store.canned_responses().await?;
    let Some(id) = q.conversation_id else {
        return Ok(Json(json!({ "canned_responses": all })));
    };
    let (conversation, _) = visible_conversation(&app, &who, id).await?;
    let mut vars = template_vars(&conversation, None);
    if let Principal::User(u) = &who {
        vars.insert("agente".into(), u.name.clone());
    }
    let list: Vec<Value> = all
        .into_iter()
        .filter(|c| c.queue_id.is_none() || c.queue_id == conversation.queue_id)
        .map(|c| {
            let rendered = domain::text::render_template(&c.body, &vars);
            let mut v = serde_json::to_value(&c).unwrap_or_else(|_| json!({}));
            v["rendered"] = rendered.into();
            v
        })
        .collect();
    Ok(Json(json!({ "canned_responses": list })))
}

#[derive(Deserialize)]
pub struct CannedRequest {
    shortcut: String,
    title: String,
    body: String,
    queue_id: Option<i64>,
}

async fn save_canned(app: &AppState, id: Option<i64>, req: CannedRequest) -> ApiResult<Value> {
    let shortcut = req.shortcut.trim().trim_start_matches('/').to_lowercase();
    if shortcut.is_empty() || shortcut.len() > 30 || shortcut.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "shortcut must have 1 to 30 characters and no spaces",
        ));
    }
    let title = checked_text("title", &req.title, 100)?;
    let body = checked_text("body", &req.body, 4096)?;
    let saved = app
        .store
        .save_canned_response(id, &shortcut, &title, &body, req.queue_id)
        .await?;
    Ok(json!({ "canned_response": saved }))
}

pub async fn create_canned(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<CannedRequest>,
) -> ApiResult<Response> {
    who.require(MANAGERS)?;
    known_queue(&app, req.queue_id).await?;
    may_write_canned(&app, &who, req.queue_id).await?;
    let saved = save_canned(&app, None, req).await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

pub async fn update_canned(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<CannedRequest>,
) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    let existing = app
        .store
        .canned_response(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    // Both where it is and where it would go: a supervisor may neither edit a global or another
    // queue's response nor move their own to every queue.
    may_write_canned(&app, &who, existing.queue_id).await?;
    known_queue(&app, req.queue_id).await?;
    may_write_canned(&app, &who, req.queue_id).await?;
    Ok(Json(save_canned(&app, Some(id), req).await?))
}

pub async fn delete_canned(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    let existing = app
        .store
        .canned_response(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    may_write_canned(&app, &who, existing.queue_id).await?;
    removed(app.store.delete_canned_response(id).await?)
}
