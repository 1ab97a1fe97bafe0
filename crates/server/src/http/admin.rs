//! The JSON API under `/api`: message history, channels, dead letters, API tokens.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use store::auth::Role;
use store::channels::ChannelUpdate;
use store::conversations::MessageRecord;

use crate::channels::{ChannelInput, ChannelView, validate_base_url, validate_rate};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::passwords;
use crate::state::AppState;

const ADMIN: &[Role] = &[Role::Admin];

#[derive(Deserialize)]
pub struct MessagePage {
    before: Option<i64>,
    limit: Option<i64>,
}

/// A message as the API shows it: the stored row plus its WhatsApp content as JSON; a template
/// with `template: {name, language, rendered: {header, body, footer, buttons}}` (as the customer
/// sees it); a failure with Meta's code explained in pt-BR in `error_detail` (Meta's own text,
/// when it differs, in `error_meta_detail`).
pub fn message_view(m: MessageRecord) -> Value {
    let content: Value = serde_json::from_str(&m.content).unwrap_or(Value::Null);
    let template = crate::hsm::template_view(&m.kind, &content);
    let mut view = serde_json::to_value(&m).unwrap_or_else(|_| json!({}));
    if let Some(obj) = view.as_object_mut() {
        obj.insert("content".into(), content);
        obj.insert("template".into(), template.unwrap_or(Value::Null));
        if let Some(code) = m.error_code {
            let explained = whatsapp::errors::explain_pt_br(code);
            if m.error_detail.as_deref() != Some(explained.as_str()) {
                obj.insert("error_meta_detail".into(), m.error_detail.clone().into());
                obj.insert("error_detail".into(), explained.into());
            }
        }
    }
    view
}

pub async fn list_messages(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Query(q): Query<MessagePage>,
) -> ApiResult<Json<Value>> {
    crate::access::visible_conversation(&app, &who, id).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let messages = app.store.messages(id, q.before, limit).await?;
    // The client asks for the next page with before = the first id it has.
    let next_before = (messages.len() as i64 == limit)
        .then(|| messages.first().map(|m| m.id))
        .flatten();
    // "bot" for the bot part of the transcript (shown above the human part), "human" after it.
    let phase = app.store.bot_phase(id).await?;
    // Each file's name, size and type, so the page can show them without another request.
    let media_ids: Vec<i64> = messages.iter().filter_map(|m| m.media_id).collect();
    let files = app.store.media_many(&media_ids).await?;
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|m| {
            let p = crate::workers::bot::message_phase(phase, m.id);
            let file = m.media_id.and_then(|id| files.iter().find(|f| f.id == id));
            let file = file.map(|f| {
                json!({
                    "id": f.id, "kind": f.kind, "mime_type": f.mime_type, "filename": f.filename,
                    "size_bytes": f.size_bytes, "state": f.state,
                })
            });
            let mut view = message_view(m);
            view["phase"] = p.into();
            view["media"] = file.unwrap_or(Value::Null);
            view
        })
        .collect();
    Ok(Json(
        json!({ "messages": messages, "next_before": next_before }),
    ))
}

pub async fn list_channels(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(&[Role::Admin, Role::Supervisor])?;
    let mut channels = Vec::new();
    for record in app.store.channels().await? {
        let hsm = app.store.channel_hsm_settings(record.id).await?;
        let account =
            crate::http::templates::prerequisites::account_fields(&app, record.id).await?;
        let mut view = serde_json::to_value(ChannelView::from(record)).unwrap_or_default();
        crate::hsm::api::add_hsm_settings(&mut view, hsm);
        crate::http::templates::prerequisites::add_account_fields(&mut view, account);
        channels.push(view);
    }
    Ok(Json(json!({ "channels": channels })))
}

pub async fn create_channel(
    State(app): State<AppState>,
    who: Principal,
    Json(input): Json<ChannelInput>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let new = input
        .into_new_channel(app.channels.secrets(), false)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let record = app.store.create_channel(&new).await?;
    app.channels.reload().await?;
    tracing::info!(channel_id = record.id, phone_number_id = %record.phone_number_id, "channel created");
    Ok(Json(json!({ "channel": ChannelView::from(record) })))
}

#[derive(Deserialize)]
pub struct ChannelPatch {
    name: Option<String>,
    waba_id: Option<String>,
    display_phone_number: Option<String>,
    access_token: Option<String>,
    app_secret: Option<String>,
    verify_token: Option<String>,
    graph_base_url: Option<String>,
    rate_limit_per_sec: Option<i64>,
    mark_read: Option<bool>,
    enabled: Option<bool>,
    /// The HSM response queue (`null` clears it), how long a reply route lasts, and the
    /// fallback queue of replies meant for an offline or full agent.
    #[serde(flatten)]
    hsm: crate::hsm::api::HsmPatch,
    /// The Meta app id (media examples of templates) and an admin's messaging limit.
    #[serde(flatten)]
    account: crate::http::templates::prerequisites::AccountPatch,
}

pub async fn update_channel(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(p): Json<ChannelPatch>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let secrets = app.channels.secrets();
    let bad = |e: crate::channels::ChannelInputError| ApiError::bad_request(e.to_string());
    let update = ChannelUpdate {
        name: p.name,
        waba_id: p.waba_id,
        display_phone_number: p.display_phone_number,
        access_token_enc: p.access_token.map(|t| secrets.encrypt(t.trim())),
        app_secret_enc: p.app_secret.map(|t| secrets.encrypt(t.trim())),
        verify_token_enc: p.verify_token.map(|t| secrets.encrypt(t.trim())),
        graph_base_url: p
            .graph_base_url
            .map(|u| validate_base_url(&u))
            .transpose()
            .map_err(bad)?,
        rate_limit_per_sec: p
            .rate_limit_per_sec
            .map(validate_rate)
            .transpose()
            .map_err(bad)?,
        mark_read: p.mark_read,
        enabled: p.enabled,
    };
    let hsm = crate::hsm::api::apply_hsm_patch(&app, id, &p.hsm).await?;
    let account =
        crate::http::templates::prerequisites::apply_account_patch(&app, id, &p.account).await?;
    let record = app.store.update_channel(id, &update).await?;
    app.channels.reload().await?;
    let mut view = serde_json::to_value(ChannelView::from(record)).unwrap_or_default();
    crate::hsm::api::add_hsm_settings(&mut view, hsm);
    crate::http::templates::prerequisites::add_account_fields(&mut view, account);
    Ok(Json(json!({ "channel": view })))
}

pub async fn disable_channel(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let update = ChannelUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    let record = app.store.update_channel(id, &update).await?;
    app.channels.reload().await?;
    Ok(Json(json!({ "channel": ChannelView::from(record) })))
}

pub async fn dead_letters(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let dead = app.store.dead_letters(200).await?;
    Ok(Json(json!({ "dead_letters": dead })))
}

#[derive(Deserialize)]
pub struct ReplayRequest {
    #[serde(default)]
    ids: Vec<i64>,
}

pub async fn replay_dead_letters(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<ReplayRequest>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let replayed = app.store.replay_dead_letters(&req.ids).await?;
    app.inbox_wake.notify_one();
    Ok(Json(json!({ "replayed": replayed })))
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
}

pub async fn create_token(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<NewToken>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    // A token made with a token answers to the same person as the token that made it, so a
    // deactivated admin's token cannot mint a successor that outlives them.
    let created_by = match &who {
        Principal::User(u) => Some(u.id),
        Principal::ApiToken { id, .. } => app
            .store
            .api_token_by_id(*id)
            .await?
            .and_then(|t| t.created_by),
    };
    let token = passwords::random_token();
    let id = app
        .store
        .create_api_token(req.name.trim(), &passwords::token_hash(&token), created_by)
        .await?;
    let record = app
        .store
        .api_token_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(token_id = id, created_by = ?created_by, "API token created");
    // The raw token is in this answer only; the store keeps its hash.
    let mut view = token_view(&record)?;
    view["token"] = token.into();
    Ok(Json(view))
}

fn token_view(t: &store::auth::ApiToken) -> ApiResult<Value> {
    serde_json::to_value(t).map_err(|e| ApiError::Internal(e.into()))
}

/// `GET /api/tokens` (admin): every token with who made it, its last use and whether it works;
/// never a token or its hash.
pub async fn list_tokens(State(app): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let tokens = app
        .store
        .api_tokens()
        .await?
        .iter()
        .map(token_view)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({ "tokens": tokens })))
}

/// `DELETE /api/tokens/{id}` (admin): revokes the token; it gets 401 from the next request on.
/// The row stays, so the list still shows who made it and when it was revoked.
pub async fn revoke_token(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    who.require(ADMIN)?;
    let record = app.store.revoke_api_token(id).await?;
    tracing::info!(token_id = id, by_user = ?who.user_id(), "API token revoked");
    Ok(Json(token_view(&record)?))
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    use axum::routing::{delete, get, patch, post};
    axum::Router::new()
        .route("/channels", get(list_channels).post(create_channel))
        .route("/channels/{id}", patch(update_channel))
        .route("/channels/{id}/disable", post(disable_channel))
        .route("/admin/dead-letters", get(dead_letters))
        .route("/admin/dead-letters/replay", post(replay_dead_letters))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
}
