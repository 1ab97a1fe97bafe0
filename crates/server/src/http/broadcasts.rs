//! Broadcasts ("disparos"): `GET/POST /api/broadcasts`, `GET/PATCH /api/broadcasts/{id}`, the
//! audience (`POST /api/broadcasts/{id}/audience`, see `upload`), the actions
//! (`POST /api/broadcasts/{id}/{start|pause|resume|cancel}`), the live report and the CSV export
//! of results; and a contact's consent (`GET/POST /api/contacts/{id}/consent`).
//!
//! Every route needs the permission `run_broadcasts` (`access::require_permission`). Admins and
//! integrations see every broadcast; anyone else (supervisors by default) only those of their
//! queues, which they must name when creating one, and their replies can only be routed to their
//! queues or to members of them.

mod audience;
mod upload;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::permissions::Permission;
use serde::Deserialize;
use serde_json::{Value, json};
use store::auth::Role;
use store::broadcasts::{self as b, BroadcastPatch, BroadcastRecord, NewBroadcast};
use store::consent::{ConsentKind, NewConsent};

use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::state::AppState;
use crate::workers::broadcasts::compose::ReplySpec;

/// Who may act on broadcasts, and where: `None` = everywhere (admins, integrations), else the
/// caller's queues.
async fn scope(app: &AppState, who: &Principal) -> ApiResult<Option<Vec<i64>>> {
    crate::access::require_permission(app, who, Permission::RunBroadcasts).await?;
    match (who.role(), who.user_id()) {
        (Role::Admin, _) | (_, None) => Ok(None),
        (_, Some(me)) => Ok(Some(app.store.user_queue_ids(me).await?)),
    }
}

/// The broadcast if the caller may see it (404 otherwise).
async fn visible(app: &AppState, who: &Principal, id: i64) -> ApiResult<BroadcastRecord> {
    let queues = scope(app, who).await?;
    let broadcast = app.store.broadcast(id).await?.ok_or(ApiError::NotFound)?;
    match (&queues, broadcast.queue_id) {
        (None, _) => Ok(broadcast),
        (Some(mine), Some(q)) if mine.contains(&q) => Ok(broadcast),
        _ => Err(ApiError::NotFound),
    }
}

fn parsed(json: &Option<String>) -> Value {
    json.as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or(Value::Null)
}

/// The broadcast as the API shows it (JSON columns as objects).
pub fn view(b: &BroadcastRecord) -> Value {
    let mut v = serde_json::to_value(b).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("reply_route".into(), parsed(&b.reply_route));
        o.insert("header_media".into(), parsed(&b.header_media));
        o.insert("audience_columns".into(), parsed(&b.audience_columns));
        o.insert("audience_mapping".into(), parsed(&b.audience_mapping));
        o.insert("audience_filter".into(), parsed(&b.audience_filter));
    }
    v
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub limit: Option<i64>,
}

/// `GET /api/broadcasts`: run_broadcasts; supervisors see their queues' broadcasts.
pub async fn list(
    State(app): State<AppState>,
    who: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let queues = scope(&app, &who).await?;
    let list = app
        .store
        .broadcasts(queues.as_deref(), q.limit.unwrap_or(100).clamp(1, 500))
        .await?;
    // A list names its templates (few distinct ones: fetched once each).
    let mut names: std::collections::HashMap<i64, Option<String>> = Default::default();
    let mut out = Vec::with_capacity(list.len());
    for b in &list {
        let name = match names.get(&b.template_id) {
            Some(name) => name.clone(),
            None => {
                let name = app.store.template(b.template_id).await?.map(|t| t.name);
                names.insert(b.template_id, name.clone());
                name
            }
        };
        let mut v = view(b);
        if let Some(o) = v.as_object_mut() {
            o.insert("template_name".into(), json!(name));
        }
        out.push(v);
    }
    Ok(Json(json!({ "broadcasts": out })))
}

#[derive(Debug, Deserialize)]
pub struct CreateRequest {
    pub name: String,
    pub channel_id: i64,
    pub template_id: i64,
    pub queue_id: Option<i64>,
    pub reply_route: Option<Value>,
    pub reply_minutes: Option<i64>,
    pub header_media: Option<Value>,
    /// Unix ms; `None`: starts when told to.
    pub start_at: Option<i64>,
}

/// Checks what a create or a change names: the channel, an approved template of its WABA, the
/// queue and the reply route within the caller's reach. Returns the JSON columns.
#[allow(clippy::too_many_arguments)] // the broadcast's settings, checked together before any write
async fn check_setup(
    app: &AppState,
    queues: &Option<Vec<i64>>,
    channel_id: i64,
    template_id: i64,
    queue_id: Option<i64>,
    reply_route: &Option<Value>,
    header_media: &Option<Value>,
    reply_minutes: Option<i64>,
) -> ApiResult<(Option<String>, Option<String>)> {
    let unprocessable = |code: &'static str, message: &str| {
        ApiError::Unprocessable(code, message.to_owned(), json!({}))
    };
    let channel = app
        .channels
        .by_id(channel_id)
        .ok_or_else(|| unprocessable("unknown_channel", "Canal inexistente."))?;
    let template = app
        .store
        .template(template_id)
        .await?
        .ok_or_else(|| unprocessable("unknown_template", "Template inexistente."))?;
    if template.waba_id != channel.waba_id {
        return Err(unprocessable(
            "template_of_another_account",
            "Este template pertence a outra conta do WhatsApp (WABA) que não a do canal.",
        ));
    }
    if template.status != "APPROVED" {
        return Err(unprocessable(
            "template_not_approved",
            &format!(
                "O template «{}» não está aprovado pela Meta (situação: {}).",
                template.name, template.status
            ),
        ));
    }
    let in_reach = |q: Option<i64>| match (queues, q) {
        (None, _) => true,
        (Some(mine), Some(q)) => mine.contains(&q),
        (Some(_), None) => false,
    };
    if queues.is_some() && !in_reach(queue_id) {
        return Err(ApiError::Forbidden(
            "Escolha uma das suas filas para o disparo.".into(),
        ));
    }
    if let Some(q) = queue_id
        && app.store.queue(q).await?.is_none()
    {
        return Err(unprocessable("unknown_queue", "Fila inexistente."));
    }
    let spec: ReplySpec = match reply_route {
        None | Some(Value::Null) => ReplySpec::ChannelDefault,
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            unprocessable(
                "invalid_reply_route",
                &format!("Destino das respostas inválido: {e}"),
            )
        })?,
    };
    match spec {
        ReplySpec::Queue { queue_id: target } if queues.is_some() && !in_reach(target) => {
            return Err(ApiError::Forbidden(
                "As respostas só podem ir para uma das suas filas.".into(),
            ));
        }
        ReplySpec::Agent {
            agent_id,
            fallback_queue_id,
        } => {
            if let Some(mine) = queues {
                let theirs = app.store.user_queue_ids(agent_id).await?;
                if !theirs.iter().any(|q| mine.contains(q))
                    || fallback_queue_id.is_some_and(|q| !mine.contains(&q))
                {
                    return Err(ApiError::Forbidden(
                        "As respostas só podem ir para atendentes e filas das suas filas.".into(),
                    ));
                }
            }
        }
        _ => {}
    }
    let media = match header_media {
        Some(v) if !v.is_null() => {
            serde_json::from_value::<domain::template::MediaValue>(v.clone()).map_err(|_| {
                unprocessable(
                    "invalid_header_media",
                    "A mídia do cabeçalho deve ser {\"link\": \"https://...\"} ou {\"id\": \"...\"}.",
                )
            })?;
            Some(v.to_string())
        }
        _ => None,
    };
    if reply_minutes.is_some_and(|m| !(1..=7 * 24 * 60).contains(&m)) {
        return Err(unprocessable(
            "invalid_reply_minutes",
            "O prazo das respostas deve ficar entre 1 minuto e 7 dias.",
        ));
    }
    let route = match reply_route {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.to_string()),
    };
    Ok((route, media))
}

/// `POST /api/broadcasts`: run_broadcasts; a supervisor names one of their queues. Creates a
/// draft; the audience comes next.
pub async fn create(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<CreateRequest>,
) -> ApiResult<Response> {
    let queues = scope(&app, &who).await?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::Unprocessable(
            "invalid_name",
            "Dê ao disparo um nome de até 200 caracteres.".into(),
            json!({}),
        ));
    }
    let (reply_route, header_media) = check_setup(
        &app,
        &queues,
        req.channel_id,
        req.template_id,
        req.queue_id,
        &req.reply_route,
        &req.header_media,
        req.reply_minutes,
    )
    .await?;
    let broadcast = app
        .store
        .create_broadcast(&NewBroadcast {
            name: name.to_owned(),
            channel_id: req.channel_id,
            template_id: req.template_id,
            queue_id: req.queue_id,
            reply_route,
            reply_minutes: req.reply_minutes,
            header_media,
            start_at: req.start_at,
            created_by: who.user_id(),
        })
        .await?;
    tracing::info!(broadcast_id = broadcast.id, "broadcast created");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "broadcast": view(&broadcast) })),
    )
        .into_response())
}

/// `GET /api/broadcasts/{id}`: run_broadcasts, within reach. The broadcast, its live report and
/// its audience summary.
pub async fn show(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let broadcast = visible(&app, &who, id).await?;
    let report = app.store.broadcast_report(id).await?;
    let audience = upload::summary(&app, &broadcast).await?;
    Ok(Json(json!({
        "broadcast": view(&broadcast),
        "report": report,
        "audience": audience,
    })))
}

#[derive(Debug, Deserialize)]
pub struct PatchRequest {
    pub name: Option<String>,
    pub template_id: Option<i64>,
    #[serde(default, with = "double_option")]
    pub queue_id: Option<Option<i64>>,
    #[serde(default, with = "double_option")]
    pub reply_route: Option<Option<Value>>,
    #[serde(default, with = "double_option")]
    pub reply_minutes: Option<Option<i64>>,
    #[serde(default, with = "double_option")]
    pub header_media: Option<Option<Value>>,
    #[serde(default, with = "double_option")]
    pub start_at: Option<Option<i64>>,
}

/// `{"x": null}` is `Some(None)` (clear), a missing key is `None` (keep).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `PATCH /api/broadcasts/{id}`: run_broadcasts, within reach; a draft only.
pub async fn patch(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<PatchRequest>,
) -> ApiResult<Json<Value>> {
    let current = visible(&app, &who, id).await?;
    let queues = scope(&app, &who).await?;
    let queue_id = req.queue_id.unwrap_or(current.queue_id);
    let reply_route = req.reply_route.clone().unwrap_or_else(|| {
        current
            .reply_route
            .as_deref()
            .map(|j| parsed(&Some(j.into())))
    });
    let header_media = req.header_media.clone().unwrap_or_else(|| {
        current
            .header_media
            .as_deref()
            .map(|j| parsed(&Some(j.into())))
    });
    let reply_minutes = req.reply_minutes.unwrap_or(current.reply_minutes);
    let (route_json, media_json) = check_setup(
        &app,
        &queues,
        current.channel_id,
        req.template_id.unwrap_or(current.template_id),
        queue_id,
        &reply_route,
        &header_media,
        reply_minutes,
    )
    .await?;
    let updated = app
        .store
        .update_broadcast(
            id,
            &BroadcastPatch {
                name: req
                    .name
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty()),
                template_id: req.template_id,
                queue_id: Some(queue_id),
                reply_route: Some(route_json),
                reply_minutes: Some(reply_minutes),
                header_media: Some(media_json),
                start_at: req.start_at,
            },
        )
        .await?;
    Ok(Json(json!({ "broadcast": view(&updated) })))
}

/// `POST /api/broadcasts/{id}/start`: run_broadcasts, within reach. A draft (or a scheduled one,
/// to start now) with an audience starts, or waits for its `start_at`.
pub async fn start(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let broadcast = visible(&app, &who, id).await?;
    if broadcast.accepted_rows == 0 {
        return Err(ApiError::Conflict(
            "no_audience",
            "Este disparo ainda não tem destinatários: envie o público primeiro.".into(),
        ));
    }
    // The template may have changed at Meta since the draft was made.
    check_setup(
        &app,
        &None,
        broadcast.channel_id,
        broadcast.template_id,
        broadcast.queue_id,
        &None,
        &None,
        None,
    )
    .await?;
    let now = store::now_ms();
    let later = broadcast.status == b::DRAFT && broadcast.start_at.is_some_and(|at| at > now);
    let to = if later { b::SCHEDULED } else { b::RUNNING };
    let moved = app
        .store
        .transition_broadcast(id, &[b::DRAFT, b::SCHEDULED], to, None, None)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "not_startable",
                format!(
                    "Um disparo na situação «{}» não pode ser iniciado.",
                    broadcast.status
                ),
            )
        })?;
    tracing::info!(broadcast_id = id, status = to, "broadcast started");
    Ok(Json(json!({ "broadcast": view(&moved) })))
}

/// `POST /api/broadcasts/{id}/pause`: run_broadcasts, within reach. No new message is written
/// after the answer; what is already in the outbox (about a second's worth) still goes.
pub async fn pause(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let pt = "Pausado por quem acompanha o disparo.";
    act(
        &app,
        &who,
        id,
        &[b::RUNNING, b::SCHEDULED],
        b::PAUSED,
        Some(("user", pt)),
    )
    .await
}

/// `POST /api/broadcasts/{id}/resume`: run_broadcasts, within reach (also after Meta's quality
/// stop: the worker stops it again while the signal persists). One paused before its start time
/// goes back to waiting for it.
pub async fn resume(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let broadcast = visible(&app, &who, id).await?;
    let later = broadcast.start_at.is_some_and(|at| at > store::now_ms());
    let to = if later { b::SCHEDULED } else { b::RUNNING };
    act(&app, &who, id, &[b::PAUSED], to, None).await
}

/// `POST /api/broadcasts/{id}/cancel`: run_broadcasts, within reach. Who has not been sent to
/// yet is skipped.
pub async fn cancel(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let from = [b::DRAFT, b::SCHEDULED, b::RUNNING, b::PAUSED];
    let pt = "Cancelado por quem acompanha o disparo.";
    act(&app, &who, id, &from, b::CANCELLED, Some(("user", pt))).await
}

async fn act(
    app: &AppState,
    who: &Principal,
    id: i64,
    from: &[&str],
    to: &str,
    reason: Option<(&str, &str)>,
) -> ApiResult<Json<Value>> {
    let broadcast = visible(app, who, id).await?;
    let moved = app
        .store
        .transition_broadcast(id, from, to, reason.map(|r| r.0), reason.map(|r| r.1))
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "invalid_transition",
                format!(
                    "Um disparo na situação «{}» não pode passar a «{to}».",
                    broadcast.status
                ),
            )
        })?;
    tracing::info!(broadcast_id = id, from = %broadcast.status, to, "broadcast status changed");
    Ok(Json(json!({ "broadcast": view(&moved) })))
}

/// `GET /api/broadcasts/{id}/report`: run_broadcasts, within reach.
pub async fn report(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let broadcast = visible(&app, &who, id).await?;
    let report = app.store.broadcast_report(id).await?;
    Ok(Json(json!({
        "status": broadcast.status,
        "status_reason": broadcast.status_reason,
        "status_detail": broadcast.status_detail,
        "waiting_until": broadcast.waiting_until,
        "report": report,
    })))
}

/// `GET /api/broadcasts/{id}/export.csv`: run_broadcasts, within reach. One line per recipient
/// (then the rejected rows), `;`-separated with a BOM so spreadsheets in Brazil open it as is.
pub async fn export(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    visible(&app, &who, id).await?;
    let store = app.store.clone();
    // (after id, rejections written)
    let pages = futures::stream::unfold(Some((0i64, true)), move |state| {
        let store = store.clone();
        async move {
            let (after, first) = state?;
            let mut out = String::new();
            if first {
                out.push('\u{feff}');
                out.push_str(
                    "linha;telefone;nome;situacao;motivo;erro_codigo;erro;protocolo;enviado_em;respondeu;descadastrado\n",
                );
            }
            match store.broadcast_export_page(id, after, 2000).await {
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
                Ok(rows) if rows.is_empty() => {
                    let rejected = store
                        .audience_rejections(id, i64::MAX)
                        .await
                        .unwrap_or_default();
                    for r in rejected {
                        line(
                            &mut out,
                            &[
                                r.row_number.to_string(),
                                r.phone.unwrap_or_default(),
                                String::new(),
                                "rejeitado".into(),
                                r.code,
                                String::new(),
                                r.reason,
                                String::new(),
                                String::new(),
                                String::new(),
                                String::new(),
                            ],
                        );
                    }
                    Some((Ok(out), None))
                }
                Ok(rows) => {
                    let last = rows.last().map_or(after, |r| r.id);
                    for r in &rows {
                        line(
                            &mut out,
                            &[
                                r.row_number.to_string(),
                                r.wa_id.clone(),
                                r.name.clone().unwrap_or_default(),
                                r.outcome().to_owned(),
                                r.skip_reason.clone().unwrap_or_default(),
                                r.error_code.map(|c| c.to_string()).unwrap_or_default(),
                                r.error_detail
                                    .clone()
                                    .or(r.error_title.clone())
                                    .unwrap_or_default(),
                                r.protocol.clone().unwrap_or_default(),
                                r.queued_at.map(iso).unwrap_or_default(),
                                if r.replied { "sim" } else { "não" }.into(),
                                r.opted_out_at.map(iso).unwrap_or_default(),
                            ],
                        );
                    }
                    Some((Ok::<String, std::io::Error>(out), Some((last, false))))
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(pages));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"disparo-{id}.csv\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// One CSV line; cells quoted when needed, and a leading `=`/`+`/`-`/`@` defused (a spreadsheet
/// would run it as a formula).
fn line(out: &mut String, cells: &[String]) {
    let cells: Vec<String> = cells
        .iter()
        .map(|c| {
            let c = if c.starts_with(['=', '+', '-', '@']) && c.parse::<f64>().is_err() {
                format!("'{c}")
            } else {
                c.clone()
            };
            if c.contains([';', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c
            }
        })
        .collect();
    out.push_str(&cells.join(";"));
    out.push('\n');
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct ConsentRequest {
    /// opt_in | opt_out
    pub kind: String,
    pub note: Option<String>,
}

/// Supervisors reach the consent of their queues' customers only (404 otherwise, as for a
/// contact that does not exist).
async fn consent_scope(app: &AppState, who: &Principal, contact_id: i64) -> ApiResult<()> {
    if scope(app, who).await?.is_none() {
        return Ok(());
    }
    match who.user_id() {
        Some(me) if app.store.contact_in_reach(contact_id, me).await? => Ok(()),
        _ => Err(ApiError::NotFound),
    }
}

/// `GET /api/contacts/{id}/consent`: run_broadcasts, customers within reach. The contact's
/// consent history.
pub async fn consent_history(
    State(app): State<AppState>,
    who: Principal,
    Path(contact_id): Path<i64>,
) -> ApiResult<Json<Value>> {
    consent_scope(&app, &who, contact_id).await?;
    let events = app.store.consent_events(contact_id).await?;
    Ok(Json(json!({ "events": events })))
}

/// `POST /api/contacts/{id}/consent`: run_broadcasts, customers within reach. Records an opt-in
/// (the customer agreed, e.g. on a form) or an opt-out made by a person or an integration.
pub async fn record_consent(
    State(app): State<AppState>,
    who: Principal,
    Path(contact_id): Path<i64>,
    Json(req): Json<ConsentRequest>,
) -> ApiResult<Response> {
    consent_scope(&app, &who, contact_id).await?;
    let kind = match req.kind.as_str() {
        "opt_in" => ConsentKind::OptIn,
        "opt_out" => ConsentKind::OptOut,
        _ => {
            return Err(ApiError::Unprocessable(
                "invalid_kind",
                "Informe \"opt_in\" ou \"opt_out\".".into(),
                json!({}),
            ));
        }
    };
    let source = match who {
        Principal::User(_) => "agent",
        Principal::ApiToken { .. } => "api",
    };
    let event = app
        .store
        .record_consent(&NewConsent {
            contact_id,
            kind,
            source: source.into(),
            detail: req.note.filter(|n| !n.trim().is_empty()),
            user_id: who.user_id(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "event": event }))).into_response())
}

pub fn routes() -> axum::Router<AppState> {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/broadcasts", get(list).post(create))
        .route("/broadcasts/{id}", get(show).patch(patch))
        .route(
            "/broadcasts/{id}/audience",
            post(upload::audience).layer(DefaultBodyLimit::max(upload::MAX_BODY)),
        )
        .route("/broadcasts/{id}/start", post(start))
        .route("/broadcasts/{id}/pause", post(pause))
        .route("/broadcasts/{id}/resume", post(resume))
        .route("/broadcasts/{id}/cancel", post(cancel))
        .route("/broadcasts/{id}/report", get(report))
        .route("/broadcasts/{id}/export.csv", get(export))
        .route(
            "/contacts/{id}/consent",
            get(consent_history).post(record_consent),
        )
}
