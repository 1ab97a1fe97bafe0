//! Scheduled messages: `GET/POST /api/schedules`, `GET/PATCH/DELETE /api/schedules/{id}`.
//!
//! A schedule is a template (or, while the customer's 24 h window is open, a free text) for one
//! contact at a date and time. Every route needs the permission `schedule_messages` (a template
//! also `send_template`); admins and integrations see every schedule, supervisors and agents
//! those they made and those of their queues' customers. The worker that fires them is
//! `workers::schedules`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::permissions::Permission;
use domain::template::Values;
use serde::Deserialize;
use serde_json::{Value, json};
use store::auth::Role;
use store::schedules::{NewSchedule, ScheduleFilter, SchedulePatch, ScheduleRecord};

use crate::access::{Access, require_permission};
use crate::error::{ApiError, ApiResult};
use crate::hsm::api::{ReplyRouteBody, TemplateBody};
use crate::hsm::{self, ReplyRouteSpec};
use crate::http::auth::Principal;
use crate::state::AppState;

const STAFF: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];
/// The furthest ahead a message may be scheduled.
const MAX_AHEAD_MS: i64 = 366 * 24 * 60 * 60 * 1000;
const MAX_TEXT: usize = 4096;

#[derive(Debug, Deserialize)]
pub struct ScheduleRequest {
    /// Scheduled from a conversation: its contact, and where a failure is shown.
    pub conversation_id: Option<i64>,
    pub contact_id: Option<i64>,
    /// A phone number (the contact is created when new).
    pub to: Option<String>,
    pub channel_id: Option<i64>,
    /// `template` (default) or `text`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Unix milliseconds, or `at` as RFC 3339 (`2026-05-04T09:00:00-03:00`).
    pub due_at: Option<i64>,
    pub at: Option<String>,
    /// For `type: text`.
    pub body: Option<String>,
    pub note: Option<String>,
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub template: TemplateBody,
}

/// `POST /api/schedules` (staff with `schedule_messages`): 201 with the schedule; the same
/// `idempotency_key` again answers 200 with the first one. A template and its values are checked
/// now (422 with the problems), and again when it fires.
pub async fn create(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<ScheduleRequest>,
) -> ApiResult<Response> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::ScheduleMessages).await?;
    let kind = req.kind.as_deref().unwrap_or("template");
    let due_at = due_at(req.due_at, req.at.as_deref())?;
    let (channel_id, contact_id, conversation_id, queue_id) = recipient(&app, &who, &req).await?;
    let mut new = NewSchedule {
        channel_id,
        contact_id,
        conversation_id,
        queue_id,
        kind: kind.to_owned(),
        due_at,
        created_via: match who {
            Principal::User(_) => "agent".into(),
            Principal::ApiToken { .. } => "integration".into(),
        },
        created_by: who.user_id(),
        idempotency_key: req.idempotency_key.clone().filter(|k| !k.trim().is_empty()),
        note: req.note.clone().filter(|n| !n.trim().is_empty()),
        reply_route: route_json(&app, &who, req.template.reply_route.clone()).await?,
        ..NewSchedule::default()
    };
    match kind {
        "template" => {
            require_permission(&app, &who, Permission::SendTemplate).await?;
            let (template_id, values) =
                checked_template(&app, channel_id, &req.template, None).await?;
            new.template_id = Some(template_id);
            new.template_values = Some(to_json(&values)?);
        }
        "text" => new.body = Some(checked_text(req.body.as_deref())?),
        other => {
            return Err(ApiError::bad_request(format!(
                "type must be template or text, not {other:?}"
            )));
        }
    }
    let (record, created) = app.store.create_schedule(&new).await?;
    tracing::info!(
        schedule_id = record.id,
        kind,
        due_at,
        created,
        "message scheduled"
    );
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "schedule": view(&app, &record).await? })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub contact_id: Option<i64>,
    pub conversation_id: Option<i64>,
    /// `pending`, `sending`, `sent`, `failed`, `cancelled`.
    pub state: Option<String>,
    pub limit: Option<i64>,
}

/// `GET /api/schedules?contact_id&conversation_id&state&limit` (staff with
/// `schedule_messages`), soonest first.
pub async fn list(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::ScheduleMessages).await?;
    if let Some(state) = &q.state
        && ![
            store::schedules::PENDING,
            store::schedules::SENDING,
            store::schedules::SENT,
            store::schedules::FAILED,
            store::schedules::CANCELLED,
        ]
        .contains(&state.as_str())
    {
        return Err(ApiError::bad_request(format!("unknown state {state:?}")));
    }
    let records = app
        .store
        .schedules(&ScheduleFilter {
            contact_id: q.contact_id,
            conversation_id: q.conversation_id,
            state: q.state,
            visible_to: scoped(&who),
            limit: q.limit.unwrap_or(100).clamp(1, 500),
        })
        .await?;
    let mut schedules = Vec::with_capacity(records.len());
    for r in &records {
        schedules.push(view(&app, r).await?);
    }
    Ok(Json(json!({ "schedules": schedules })))
}

/// `GET /api/schedules/{id}`: 404 for a schedule the caller may not see.
pub async fn get_one(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let record = visible(&app, &who, id).await?;
    Ok(Json(json!({ "schedule": view(&app, &record).await? })))
}

#[derive(Debug, Deserialize)]
pub struct PatchRequest {
    pub due_at: Option<i64>,
    pub at: Option<String>,
    pub body: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub note: Option<Option<String>>,
    #[serde(flatten)]
    pub template: TemplateBody,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/schedules/{id}`: a pending schedule's time, template and values, text, reply
/// route or note (409 `not_pending` once it is sending, sent, failed or cancelled).
pub async fn update(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<PatchRequest>,
) -> ApiResult<Json<Value>> {
    let current = visible(&app, &who, id).await?;
    let mut patch = SchedulePatch {
        due_at: match (req.due_at, &req.at) {
            (None, None) => None,
            (d, a) => Some(due_at(d, a.as_deref())?),
        },
        note: req.note.clone(),
        ..SchedulePatch::default()
    };
    if req.template.reply_route.is_some() {
        patch.reply_route = Some(route_json(&app, &who, req.template.reply_route.clone()).await?);
    }
    let t = &req.template;
    let template_changed = t.template_id.is_some()
        || t.name.is_some()
        || t.variables.is_some()
        || t.components.is_some();
    if current.kind == "template" && template_changed {
        require_permission(&app, &who, Permission::SendTemplate).await?;
        let (template_id, values) =
            checked_template(&app, current.channel_id, t, current.template_id).await?;
        patch.template_id = Some(template_id);
        patch.template_values = Some(to_json(&values)?);
    }
    if current.kind == "text" && req.body.is_some() {
        patch.body = Some(checked_text(req.body.as_deref())?);
    }
    let record = app
        .store
        .update_schedule(id, &patch)
        .await?
        .ok_or_else(not_pending)?;
    Ok(Json(json!({ "schedule": view(&app, &record).await? })))
}

/// `DELETE /api/schedules/{id}`: cancels a pending schedule; it never fires (409 `not_pending`
/// when a worker already took it, or it was sent, failed or cancelled).
pub async fn cancel(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    visible(&app, &who, id).await?;
    if !app.store.cancel_schedule(id).await? {
        return Err(not_pending());
    }
    tracing::info!(schedule_id = id, by_user = ?who.user_id(), "schedule cancelled");
    let record = app.store.schedule(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!({ "schedule": view(&app, &record).await? })))
}

fn not_pending() -> ApiError {
    ApiError::Conflict(
        "not_pending",
        "Este agendamento não está mais pendente (já foi enviado, falhou ou foi cancelado).".into(),
    )
}

/// Whose schedules a list shows: `None` for admins and integrations (all), else the person.
fn scoped(who: &Principal) -> Option<i64> {
    match who.role() {
        Role::Admin => None,
        _ => who.user_id(),
    }
}

/// The schedule, when the caller may act on it (permission and scope); else 403 / 404.
async fn visible(app: &AppState, who: &Principal, id: i64) -> ApiResult<ScheduleRecord> {
    who.require(STAFF)?;
    require_permission(app, who, Permission::ScheduleMessages).await?;
    let record = app.store.schedule(id).await?.ok_or(ApiError::NotFound)?;
    if let Some(me) = scoped(who) {
        let mine = record.created_by == Some(me);
        let my_queue = match record.queue_id {
            Some(q) => app.store.user_queue_ids(me).await?.contains(&q),
            None => false,
        };
        if !(mine || my_queue) {
            return Err(ApiError::NotFound);
        }
    }
    Ok(record)
}

/// (channel, contact, conversation, queue) of a new schedule, with the caller's reach checked:
/// from a conversation they may see, or a contact of their queues (a new number is theirs).
async fn recipient(
    app: &AppState,
    who: &Principal,
    req: &ScheduleRequest,
) -> ApiResult<(i64, i64, Option<i64>, Option<i64>)> {
    let my_queue = match who.user_id() {
        Some(me) => app.store.user_queue_ids(me).await?.first().copied(),
        None => None,
    };
    if let Some(id) = req.conversation_id {
        let (c, access) = crate::access::visible_conversation(app, who, id).await?;
        access.require(Access::Read)?;
        // Seeing a conversation (a supervisor sees unqueued ones) is not reaching its customer.
        require_reach(app, who, c.contact_id).await?;
        return Ok((
            c.channel_id,
            c.contact_id,
            Some(c.id),
            c.queue_id.or(my_queue),
        ));
    }
    let channel = match req.channel_id {
        Some(id) => app.channels.by_id(id),
        None => app.channels.all().into_iter().find(|c| c.enabled),
    }
    .ok_or_else(|| ApiError::bad_request("no channel to send on"))?;
    let contact_id = match (req.contact_id, &req.to) {
        (Some(id), _) => {
            let c = app
                .store
                .contact_brief(id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if req.channel_id.is_some_and(|ch| ch != c.channel_id) {
                return Err(ApiError::bad_request(
                    "the contact belongs to another channel",
                ));
            }
            c.id
        }
        (None, Some(to)) => {
            let wa_id = hsm::normalize_phone(to)?;
            app.store.ensure_contact(channel.id, &wa_id).await?
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "give \"conversation_id\", \"contact_id\" or \"to\"",
            ));
        }
    };
    let contact = app
        .store
        .contact_brief(contact_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    require_reach(app, who, contact.id).await?;
    let queue = match contact.open_conversation_id {
        Some(open) => app.store.conversation(open).await?.and_then(|c| c.queue_id),
        None => None,
    };
    Ok((
        contact.channel_id,
        contact.id,
        contact.open_conversation_id,
        queue.or(my_queue),
    ))
}

/// Agents and supervisors schedule only for customers of their queues.
async fn require_reach(app: &AppState, who: &Principal, contact_id: i64) -> ApiResult<()> {
    if let (Some(me), false) = (who.user_id(), who.role() == Role::Admin)
        && !app.store.contact_in_reach(contact_id, me).await?
    {
        return Err(ApiError::Forbidden(
            "Este cliente é atendido por outra fila.".into(),
        ));
    }
    Ok(())
}

/// The template a schedule names (or keeps) and its values, checked against it now.
async fn checked_template(
    app: &AppState,
    channel_id: i64,
    body: &TemplateBody,
    current: Option<i64>,
) -> ApiResult<(i64, Values)> {
    let channel = app
        .channels
        .by_id(channel_id)
        .ok_or_else(|| ApiError::bad_request("unknown channel"))?;
    let template_id = match (&body.template_id, &body.name, current) {
        (Some(id), _, _) => *id,
        (None, Some(name), _) => {
            let language = body.language.as_deref().unwrap_or("pt_BR");
            app.store
                .template_by_name(&channel.waba_id, name, language)
                .await?
                .map(|t| t.id)
                .ok_or_else(|| {
                    ApiError::Unprocessable(
                        "template_not_found",
                        "O template não existe nesta conta.".into(),
                        json!({}),
                    )
                })?
        }
        (None, None, Some(id)) => id,
        (None, None, None) => {
            return Err(ApiError::bad_request(
                "name the template: \"template_id\", or \"name\" and \"language\"",
            ));
        }
    };
    let template = hsm::usable_template(app, template_id, &channel.waba_id).await?;
    let def = hsm::definition(&template).map_err(|e| {
        ApiError::Conflict(
            "template_unreadable",
            format!("O template armazenado não pode ser lido: {e}"),
        )
    })?;
    let values = match (&body.components, &body.variables) {
        (Some(c), _) => hsm::values::from_components(&def, c).map_err(ApiError::bad_request)?,
        (None, Some(v)) => hsm::values::from_variables(v).map_err(ApiError::bad_request)?,
        (None, None) => Values::default(),
    };
    let problems = domain::template::check_values(&def, &values);
    if !problems.is_empty() {
        return Err(ApiError::problems("invalid_template_values", &problems));
    }
    Ok((template.id, values))
}

fn checked_text(body: Option<&str>) -> ApiResult<String> {
    let body = body.map(str::trim).unwrap_or_default();
    if body.is_empty() {
        return Err(ApiError::bad_request("a text schedule needs its \"body\""));
    }
    if body.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_request(format!(
            "the text is longer than {MAX_TEXT} characters"
        )));
    }
    Ok(body.to_owned())
}

/// The reply route as stored (`None`: the channel's default when it fires).
async fn route_json(
    app: &AppState,
    who: &Principal,
    route: Option<ReplyRouteBody>,
) -> ApiResult<Option<String>> {
    // Checked now as for a send; the queues it names must still exist when it fires.
    let spec = match crate::hsm::api::checked_route(app, who, route).await? {
        ReplyRouteSpec::ChannelDefault => return Ok(None),
        spec => spec,
    };
    Ok(Some(to_json(&spec)?))
}

fn to_json<T: serde::Serialize>(v: &T) -> ApiResult<String> {
    serde_json::to_string(v).map_err(|e| ApiError::Internal(e.into()))
}

/// When it fires: `due_at` (unix ms) or `at` (RFC 3339), not more than a year ahead.
fn due_at(due_at: Option<i64>, at: Option<&str>) -> ApiResult<i64> {
    let ms = match (due_at, at) {
        (Some(ms), _) => ms,
        (None, Some(at)) => at
            .parse::<jiff::Timestamp>()
            .map_err(|e| ApiError::bad_request(format!("at must be an RFC 3339 time: {e}")))?
            .as_millisecond(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "give the time: \"due_at\" (unix ms) or \"at\" (RFC 3339)",
            ));
        }
    };
    if ms > store::now_ms() + MAX_AHEAD_MS {
        return Err(ApiError::bad_request(
            "a message may be scheduled at most a year ahead",
        ));
    }
    Ok(ms)
}

/// A schedule as the API shows it: the row, its values and reply route as JSON, and its
/// template's name and language.
async fn view(app: &AppState, r: &ScheduleRecord) -> ApiResult<Value> {
    let mut v = serde_json::to_value(r).map_err(|e| ApiError::Internal(e.into()))?;
    v["template_values"] = r
        .template_values
        .as_deref()
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .unwrap_or(Value::Null);
    // Stored only when not the channel's default.
    v["reply_route"] = match r.reply_route.as_deref() {
        None => json!({"target": "channel"}),
        Some(j) => serde_json::from_str::<ReplyRouteSpec>(j)
            .map(|spec| spec.to_api())
            .unwrap_or(Value::Null),
    };
    v["template"] = match r.template_id {
        Some(id) => match app.store.template(id).await? {
            Some(t) => {
                json!({ "id": t.id, "name": t.name, "language": t.language, "status": t.status })
            }
            None => Value::Null,
        },
        None => Value::Null,
    };
    Ok(v)
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/schedules", get(list).post(create))
        .route("/schedules/{id}", get(get_one).patch(update).delete(cancel))
}
