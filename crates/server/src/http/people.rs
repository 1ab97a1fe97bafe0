//! People and their availability: users (admin), presence, pause reasons, password change and
//! reset, queue membership, the supervisor's overview, and a channel's connection test.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use store::auth::{NewUser, Role};
use store::desk::DEFAULT_LIMIT;
use store::people::{Presence, UserPatch};

use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::http::flows::nullable;
use crate::live::Notice;
use crate::passwords;
use crate::state::AppState;

const ADMIN: &[Role] = &[Role::Admin];
const MANAGERS: &[Role] = &[Role::Admin, Role::Supervisor];
const STAFF: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];
const PAUSE_REASONS_KEY: &str = "desk.pause_reasons";
const DEFAULT_PAUSE_REASONS: &[&str] = &["Almoço", "Pausa", "Treinamento", "Reunião"];
const MIN_PASSWORD: usize = 8;
const MAX_LIMIT: i64 = 100;

/// `GET /api/users`: people with presence, limit and load.
pub async fn list_users(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    let users = app.store.desk_users().await?;
    let queues = app.store.queues().await?;
    let list: Vec<Value> = users
        .iter()
        .map(|u| {
            let mut v = serde_json::to_value(u).unwrap_or_else(|_| json!({}));
            v["limit"] = effective_limit(u, &queues).into();
            v
        })
        .collect();
    Ok(Json(json!({ "users": list })))
}

/// The limit shown for a person: their own, else the smallest default of their queues.
fn effective_limit(u: &store::people::DeskUser, queues: &[store::queues::QueueRecord]) -> i64 {
    u.max_concurrent.unwrap_or_else(|| {
        queues
            .iter()
            .filter(|q| u.queue_ids.contains(&q.id))
            .map(|q| q.desk.default_max_concurrent)
            .min()
            .unwrap_or(DEFAULT_LIMIT)
    })
}

#[derive(Deserialize)]
pub struct NewUserRequest {
    email: String,
    name: String,
    role: String,
    password: String,
    max_concurrent: Option<i64>,
    #[serde(default)]
    queue_ids: Vec<i64>,
}

/// `POST /api/users` (admin).
pub async fn create_user(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<NewUserRequest>,
) -> ApiResult<Response> {
    who.require(ADMIN)?;
    let role = checked_role(&req.role)?;
    let email = req.email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 200 {
        return Err(ApiError::bad_request("a valid e-mail is required"));
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must have 1 to 100 characters"));
    }
    checked_password(&req.password)?;
    let limit = req.max_concurrent.map(checked_limit).transpose()?;
    let mut queue_ids = req.queue_ids;
    queue_ids.sort_unstable();
    queue_ids.dedup();
    // Everything is checked before anything is written: a bad queue id is the caller's mistake
    // (400 naming it), not a half-created user and a 500.
    let known: Vec<i64> = app.store.queues().await?.iter().map(|q| q.id).collect();
    let unknown: Vec<String> = queue_ids
        .iter()
        .filter(|q| !known.contains(q))
        .map(i64::to_string)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::BadRequest(
            "unknown_queue",
            format!("no queue with id {}", unknown.join(", ")),
        ));
    }
    let hash = passwords::hash_password_async(req.password).await?;
    let user = app
        .store
        .create_desk_user(
            NewUser {
                email: &email,
                name,
                role,
                password_hash: &hash,
                must_change_password: false,
            },
            limit,
            &queue_ids,
        )
        .await?;
    tracing::info!(user_id = user.id, role = role.as_str(), "user created");
    let user = app
        .store
        .desk_user(user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))).into_response())
}

fn checked_role(role: &str) -> ApiResult<Role> {
    Role::parse(role)
        .ok_or_else(|| ApiError::bad_request("role must be admin, supervisor or agent"))
}

fn checked_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ApiError::BadRequest(
            "weak_password",
            format!("a password needs at least {MIN_PASSWORD} characters"),
        ));
    }
    Ok(())
}

fn checked_limit(n: i64) -> ApiResult<i64> {
    if (0..=MAX_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::bad_request(format!(
            "max_concurrent must be between 0 and {MAX_LIMIT}"
        )))
    }
}

#[derive(Deserialize)]
pub struct UserPatchRequest {
    name: Option<String>,
    role: Option<String>,
    active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    max_concurrent: Option<Option<i64>>,
    queue_ids: Option<Vec<i64>>,
}

/// `PATCH /api/users/{id}`: admins change anything; a supervisor only the limit of an agent of
/// one of their queues.
pub async fn update_user(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<UserPatchRequest>,
) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    app.store.desk_user(id).await?.ok_or(ApiError::NotFound)?;
    if who.role() == Role::Supervisor {
        let only_limit = req.name.is_none()
            && req.role.is_none()
            && req.active.is_none()
            && req.queue_ids.is_none();
        if !only_limit {
            return Err(ApiError::Forbidden(
                "a supervisor may only change the limit of agents of their queues".into(),
            ));
        }
        supervises(&app, &who, id).await?;
    }
    if who.user_id() == Some(id) && (req.active == Some(false) || req.role.is_some()) {
        return Err(ApiError::Forbidden(
            "you cannot deactivate yourself or change your own role".into(),
        ));
    }
    let patch = UserPatch {
        name: req
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
        role: req
            .role
            .as_deref()
            .map(checked_role)
            .transpose()?
            .map(|r| r.as_str().to_owned()),
        active: req.active,
        max_concurrent: req
            .max_concurrent
            .map(|l| l.map(checked_limit).transpose())
            .transpose()?,
    };
    app.store.update_user(id, &patch).await?;
    if let Some(queue_ids) = &req.queue_ids {
        app.store.set_user_queues(id, queue_ids).await?;
    }
    app.live.publish(Notice::DeskChanged);
    let user = app.store.desk_user(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!({ "user": user })))
}

/// `POST /api/users/{id}/reset-password` (admin): a temporary password, shown once; the person
/// must choose a new one at their next login, and their sessions end.
pub async fn reset_password(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    app.store.user(id).await?.ok_or(ApiError::NotFound)?;
    let temporary = passwords::random_token()[..12].to_owned();
    let hash = passwords::hash_password_async(temporary.clone()).await?;
    app.store.set_password_hash(id, &hash, true).await?;
    app.store.delete_sessions_of(id).await?;
    tracing::info!(user_id = id, "password reset by an admin");
    Ok(Json(json!({ "temporary_password": temporary })))
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /api/auth/password`: one's own password.
pub async fn change_password(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    who: Principal,
    Json(req): Json<PasswordChange>,
) -> ApiResult<Response> {
    let Principal::User(user) = who else {
        return Err(ApiError::Forbidden("API tokens have no password".into()));
    };
    checked_password(&req.new_password)?;
    // The same throttle as the login: a stolen session cannot guess the password either.
    let client = crate::http::auth::client_ip(peer.ip(), &headers, &app.config.trusted_proxies);
    if let Err(refused) = crate::http::auth::check_password(
        &app,
        client,
        &user.email,
        Some(&user),
        req.current_password,
    )
    .await
    {
        if refused.status() == StatusCode::UNAUTHORIZED {
            return Err(ApiError::BadRequest(
                "wrong_password",
                "the current password is wrong".into(),
            ));
        }
        return Ok(refused);
    }
    let hash = passwords::hash_password_async(req.new_password).await?;
    app.store.set_password_hash(user.id, &hash, false).await?;
    // Other sessions (perhaps the thief's) end; this one continues under a new id.
    let (cookie, csrf) =
        crate::http::auth::new_session(&app, user.id, store::auth::EndSessions::AllOfUser).await?;
    tracing::info!(user_id = user.id, "password changed");
    let mut response = Json(json!({ "ok": true, "csrf_token": csrf })).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize)]
pub struct PresenceRequest {
    presence: String,
    reason: Option<String>,
}

/// `PUT /api/presence`: one's own presence.
pub async fn set_own_presence(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<PresenceRequest>,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let id = who
        .user_id()
        .ok_or_else(|| ApiError::Forbidden("API tokens have no presence".into()))?;
    set_presence(&app, id, req).await
}

/// `PUT /api/users/{id}/presence` (admin, supervisor).
pub async fn set_user_presence(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<PresenceRequest>,
) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    if who.role() == Role::Supervisor && who.user_id() != Some(id) {
        supervises(&app, &who, id).await?;
    }
    set_presence(&app, id, req).await
}

/// 403 unless `id` is an agent sharing one of the supervisor's queues.
async fn supervises(app: &AppState, who: &Principal, id: i64) -> ApiResult<()> {
    let target = app.store.desk_user(id).await?.ok_or(ApiError::NotFound)?;
    let mine = app.store.user_queue_ids(who.user_id().unwrap_or(0)).await?;
    let shares_a_queue = target.queue_ids.iter().any(|q| mine.contains(q));
    if target.role != Role::Agent.as_str() || !shares_a_queue {
        return Err(ApiError::Forbidden(
            "a supervisor acts only on agents of their queues".into(),
        ));
    }
    Ok(())
}

async fn set_presence(app: &AppState, id: i64, req: PresenceRequest) -> ApiResult<Json<Value>> {
    let presence = Presence::parse(&req.presence)
        .ok_or_else(|| ApiError::bad_request("presence must be available, paused or offline"))?;
    let reason = req
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if presence == Presence::Paused {
        let reasons = pause_reasons(app).await?;
        if !reason.is_some_and(|r| reasons.iter().any(|x| x == r)) {
            return Err(ApiError::BadRequest(
                "pause_reason_required",
                format!("a pause needs one of the reasons: {}", reasons.join(", ")),
            ));
        }
    }
    if !app.store.set_presence(id, presence, reason).await? {
        return Err(ApiError::NotFound);
    }
    app.live.publish(Notice::DeskChanged);
    let user = app.store.desk_user(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(json!({ "user": user })))
}

async fn pause_reasons(app: &AppState) -> ApiResult<Vec<String>> {
    let stored = app.store.setting(PAUSE_REASONS_KEY).await?;
    Ok(stored
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| {
            DEFAULT_PAUSE_REASONS
                .iter()
                .map(|r| r.to_string())
                .collect()
        }))
}

/// `GET /api/pause-reasons`.
pub async fn get_pause_reasons(
    State(app): State<AppState>,
    who: Principal,
) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    Ok(Json(json!({ "reasons": pause_reasons(&app).await? })))
}

#[derive(Deserialize)]
pub struct PauseReasons {
    reasons: Vec<String>,
}

/// `PUT /api/pause-reasons` (admin).
pub async fn put_pause_reasons(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<PauseReasons>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let mut reasons: Vec<String> = req
        .reasons
        .iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty() && r.chars().count() <= 60)
        .collect();
    reasons.dedup();
    if reasons.is_empty() {
        return Err(ApiError::bad_request("give at least one pause reason"));
    }
    let json = serde_json::to_string(&reasons).map_err(|e| ApiError::Internal(e.into()))?;
    app.store.set_setting(PAUSE_REASONS_KEY, &json).await?;
    Ok(Json(json!({ "reasons": reasons })))
}

/// `GET /api/queues/{id}/members` (admin, supervisor).
pub async fn get_members(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    app.store.queue(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(
        json!({ "user_ids": app.store.queue_member_ids(id).await? }),
    ))
}

#[derive(Deserialize)]
pub struct Members {
    user_ids: Vec<i64>,
}

/// `PUT /api/queues/{id}/members` (admin).
pub async fn put_members(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(req): Json<Members>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    app.store.queue(id).await?.ok_or(ApiError::NotFound)?;
    for user_id in &req.user_ids {
        app.store
            .user(*user_id)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("no user with id {user_id}")))?;
    }
    app.store.set_queue_members(id, &req.user_ids).await?;
    app.live.publish(Notice::DeskChanged);
    Ok(Json(json!({ "user_ids": req.user_ids })))
}

/// `GET /api/supervisor/overview`: waiting counts and longest wait per queue, agents' presence
/// and load. A supervisor sees their queues and their members.
pub async fn overview(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(MANAGERS)?;
    let mine = match (who.role(), who.user_id()) {
        (Role::Supervisor, Some(id)) => Some(app.store.user_queue_ids(id).await?),
        _ => None,
    };
    let in_scope = |q: i64| mine.as_ref().is_none_or(|m| m.contains(&q));
    let now = store::now_ms();
    let waiting = app.store.waiting_conversations().await?;
    let assigned = app.store.assigned_per_queue().await?;
    let all_queues = app.store.queues().await?;
    let queues: Vec<Value> = all_queues
        .iter()
        .filter(|q| in_scope(q.id))
        .map(|q| {
            let here: Vec<_> = waiting.iter().filter(|w| w.queue_id == Some(q.id)).collect();
            let longest = here
                .iter()
                .filter_map(|w| w.queued_at)
                .map(|at| now - at)
                .max()
                .unwrap_or(0);
            json!({
                "id": q.id, "key": q.key, "name": q.name, "waiting": here.len(),
                "longest_wait_ms": longest,
                "assigned": assigned.iter().find(|(id, _)| *id == Some(q.id)).map_or(0, |(_, n)| *n),
            })
        })
        .collect();
    let unqueued = waiting.iter().filter(|w| w.queue_id.is_none()).count();
    let users = app.store.desk_users().await?;
    let agents: Vec<Value> = users
        .iter()
        .filter(|u| u.active)
        .filter(|u| mine.is_none() || u.queue_ids.iter().any(|q| in_scope(*q)))
        .map(|u| agent_view(u, &all_queues))
        .collect();
    Ok(Json(
        json!({ "queues": queues, "waiting_without_queue": unqueued, "agents": agents }),
    ))
}

/// What colleagues may know of a person: name, presence, load and limit (no e-mail).
fn agent_view(u: &store::people::DeskUser, queues: &[store::queues::QueueRecord]) -> Value {
    json!({
        "id": u.id, "name": u.name, "role": u.role, "presence": u.presence,
        "pause_reason": u.pause_reason, "load": u.load,
        "limit": effective_limit(u, queues), "queue_ids": u.queue_ids,
    })
}

/// `GET /api/agents` (staff): the active people one may transfer to, with presence and load.
pub async fn list_agents(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(STAFF)?;
    let queues = app.store.queues().await?;
    let agents: Vec<Value> = app
        .store
        .desk_users()
        .await?
        .iter()
        .filter(|u| u.active)
        .map(|u| agent_view(u, &queues))
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

/// `POST /api/channels/{id}/test` (admin): asks Graph for the phone number with the channel's
/// credentials.
pub async fn test_channel(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let channel = app.channels.by_id(id).ok_or(ApiError::NotFound)?;
    match app.graph.phone_number(&channel.creds()).await {
        Ok(info) => Ok(Json(json!({
            "ok": true,
            "display_phone_number": info.get("display_phone_number"),
            "verified_name": info.get("verified_name"),
            "quality_rating": info.get("quality_rating"),
        }))),
        Err(e) => Ok(Json(json!({
            "ok": false,
            "error": e.to_string(),
            "explanation": e.explain_pt_br(),
        }))),
    }
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    use axum::routing::{get, patch, post, put};
    axum::Router::new()
        .route("/auth/password", post(change_password))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", patch(update_user))
        .route("/agents", get(list_agents))
        .route("/users/{id}/reset-password", post(reset_password))
        .route("/users/{id}/presence", put(set_user_presence))
        .route("/presence", put(set_own_presence))
        .route(
            "/pause-reasons",
            get(get_pause_reasons).put(put_pause_reasons),
        )
        .route("/queues/{id}/members", get(get_members).put(put_members))
        .route("/supervisor/overview", get(overview))
        .route("/channels/{id}/test", post(test_channel))
}
