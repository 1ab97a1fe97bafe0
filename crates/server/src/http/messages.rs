//! Sending messages and files: `POST /api/conversations/{id}/messages`, uploads and downloads of
//! media, marking a conversation read on WhatsApp.

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use store::auth::Role;
use store::outbox::{Enqueued, NewOutbound};
use whatsapp::media::MediaError;
use whatsapp::send::{ListSection, MediaRef, OutboundContent, ReplyButton};

use crate::error::{ApiError, ApiResult};
use crate::http::admin::message_view;
use crate::http::auth::Principal;
use crate::http::media::{file_response, sandboxed};
use crate::state::AppState;
use whatsapp::media::sanitize_filename;

const STAFF: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];

#[derive(Debug, Deserialize)]
pub struct SendRequest {
    /// The same key twice returns the first message and sends once (double clicks, retries).
    pub idempotency_key: Option<String>,
    /// Quote one of the conversation's messages.
    pub reply_to_message_id: Option<i64>,
    #[serde(flatten)]
    pub content: SendContent,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SendContent {
    Text {
        body: String,
        #[serde(default)]
        preview_url: bool,
    },
    /// A file uploaded with `POST /api/media` (or received), sent as image/audio/video/document.
    Media {
        media_id: i64,
        caption: Option<String>,
    },
    Reaction {
        message_id: i64,
        emoji: String,
    },
    Buttons {
        body: String,
        buttons: Vec<ReplyButton>,
        header: Option<String>,
        footer: Option<String>,
    },
    List {
        body: String,
        button: String,
        sections: Vec<ListSection>,
        header: Option<String>,
        footer: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    /// An approved template (HSM), the only kind allowed outside the 24 h window.
    Template(crate::hsm::api::TemplateBody),
}

pub async fn send(
    State(app): State<AppState>,
    who: Principal,
    Path(conversation_id): Path<i64>,
    Json(req): Json<SendRequest>,
) -> ApiResult<Response> {
    let (conversation, access) =
        crate::access::visible_conversation(&app, &who, conversation_id).await?;
    if conversation.closed_at.is_some() {
        return Err(ApiError::Conflict(
            "conversation_closed",
            "this conversation is finalized; a new customer message opens a new one".into(),
        ));
    }
    access.require(crate::access::Access::Work)?;
    if let SendContent::Template(body) = req.content {
        return crate::hsm::api::send_in_conversation(
            &app,
            &who,
            &conversation,
            body,
            req.idempotency_key,
        )
        .await;
    }
    let last_inbound = app.store.contact_last_inbound(conversation_id).await?;
    if !domain::window::window_state(last_inbound, store::now_ms()).is_open() {
        return Err(ApiError::Conflict(
            "outside_service_window",
            "more than 24 hours since the customer's last message: only an approved template (HSM) can be sent"
                .into(),
        ));
    }
    let reply_to_wamid = match req.reply_to_message_id {
        Some(id) => Some(wamid_in(&app, conversation_id, id).await?),
        None => None,
    };
    let (content, media_id, body) = build_content(&app, &who, conversation_id, req.content).await?;
    content
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let author = match &who {
        Principal::User(_) => "agent",
        Principal::ApiToken { .. } => "integration",
    };
    let new = NewOutbound {
        conversation_id,
        author: author.into(),
        author_user_id: who.user_id(),
        kind: content.kind().into(),
        body,
        content_json: serde_json::to_string(&content).map_err(|e| ApiError::Internal(e.into()))?,
        reply_to_wamid,
        media_id,
        idempotency_key: req.idempotency_key.filter(|k| !k.trim().is_empty()),
    };
    let (status, message) = match app.outbound.enqueue(new).await? {
        Enqueued::Created(m) => (StatusCode::CREATED, m),
        Enqueued::Existing(m) => (StatusCode::OK, m),
    };
    Ok((status, Json(json!({ "message": message_view(message) }))).into_response())
}

/// The wamid of a message of this conversation (for replies and reactions).
async fn wamid_in(app: &AppState, conversation_id: i64, message_id: i64) -> ApiResult<String> {
    let message = app
        .store
        .message(message_id)
        .await?
        .filter(|m| m.conversation_id == conversation_id)
        .ok_or_else(|| {
            ApiError::bad_request(format!("message {message_id} is not in this conversation"))
        })?;
    message.wamid.ok_or_else(|| {
        ApiError::bad_request(format!("message {message_id} has not reached WhatsApp yet"))
    })
}

async fn build_content(
    app: &AppState,
    who: &Principal,
    conversation_id: i64,
    content: SendContent,
) -> ApiResult<(OutboundContent, Option<i64>, Option<String>)> {
    Ok(match content {
        SendContent::Text { body, preview_url } => (
            OutboundContent::Text {
                body: body.clone(),
                preview_url,
            },
            None,
            Some(body),
        ),
        SendContent::Media { media_id, caption } => {
            // The sender replaces this reference with Meta's id once the file is uploaded there.
            let pending = || MediaRef::Id(format!("atende-media-{media_id}"));
            let media = app
                .store
                .media(media_id)
                .await?
                .filter(|m| m.state == "ready")
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "media {media_id} does not exist or is not ready"
                    ))
                })?;
            // Only one's own upload, or a file already in this conversation: a media id is not a
            // way to reach another customer's files.
            let own = media.uploaded_by.is_some() && media.uploaded_by == who.user_id();
            let here = app
                .store
                .media_conversations(media_id)
                .await?
                .contains(&conversation_id);
            if !(own || here || who.role() == Role::Admin) {
                return Err(ApiError::NotFound);
            }
            let content = match media.kind.as_str() {
                "image" => OutboundContent::Image {
                    media: pending(),
                    caption: caption.clone(),
                },
                "video" => OutboundContent::Video {
                    media: pending(),
                    caption: caption.clone(),
                },
                "audio" => OutboundContent::Audio { media: pending() },
                "sticker" => OutboundContent::Sticker { media: pending() },
                _ => OutboundContent::Document {
                    media: pending(),
                    caption: caption.clone(),
                    filename: media.filename.clone(),
                },
            };
            let body = caption.or(media.filename);
            (content, Some(media_id), body)
        }
        SendContent::Reaction { message_id, emoji } => {
            let wamid = wamid_in(app, conversation_id, message_id).await?;
            (
                OutboundContent::Reaction {
                    message_id: wamid,
                    emoji: emoji.clone(),
                },
                None,
                Some(emoji),
            )
        }
        SendContent::Buttons {
            body,
            buttons,
            header,
            footer,
        } => (
            OutboundContent::Buttons {
                header,
                body: body.clone(),
                footer,
                buttons,
            },
            None,
            Some(body),
        ),
        SendContent::List {
            body,
            button,
            sections,
            header,
            footer,
        } => (
            OutboundContent::List {
                header,
                body: body.clone(),
                footer,
                button,
                sections,
            },
            None,
            Some(body),
        ),
        // Handled before (`hsm::api::send_in_conversation`): a template ignores the window.
        SendContent::Template(_) => {
            return Err(ApiError::bad_request("a template is sent on its own"));
        }
        SendContent::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            let body = name.clone();
            (
                OutboundContent::Location {
                    latitude,
                    longitude,
                    name,
                    address,
                },
                None,
                body,
            )
        }
    })
}

/// Marks the conversation read: unread count back to zero and, when the channel wants it, the
/// customer's messages marked read on WhatsApp (blue ticks).
pub async fn mark_read(
    State(app): State<AppState>,
    who: Principal,
    Path(conversation_id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (conversation, access) =
        crate::access::visible_conversation(&app, &who, conversation_id).await?;
    access.require(crate::access::Access::Work)?;
    let latest = app.store.mark_conversation_read(conversation_id).await?;
    let channel = app.channels.by_id(conversation.channel_id);
    let mut marked = false;
    if let (Some(wamid), Some(channel)) = (latest, channel)
        && channel.mark_read
        && channel.enabled
    {
        // Marking the latest message read marks every earlier one too.
        match app.graph.mark_read(&channel.creds(), &wamid).await {
            Ok(()) => marked = true,
            Err(e) => tracing::warn!(conversation_id, error = %e, "cannot mark read on WhatsApp"),
        }
    }
    Ok(Json(json!({ "ok": true, "marked_on_whatsapp": marked })))
}

pub async fn upload(
    State(app): State<AppState>,
    who: Principal,
    mut multipart: Multipart,
) -> ApiResult<Response> {
    who.require(STAFF)?;
    let mut file = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?
    {
        if field.name() == Some("file") {
            let filename = field.file_name().map(sanitize_filename);
            let bytes = field
                .bytes()
                .await
                .map_err(|e| ApiError::bad_request(format!("cannot read the file: {e}")))?;
            file = Some((filename, bytes));
        }
    }
    let (filename, bytes) = file.ok_or_else(|| {
        ApiError::bad_request("send the file in a multipart field named \"file\"")
    })?;
    let detected = match whatsapp::media::validate_upload(&bytes, filename.as_deref()) {
        Ok(d) => d,
        Err(MediaError::Empty) => return Err(ApiError::bad_request("the file is empty")),
        Err(e @ MediaError::TooLarge { .. }) => {
            return Ok((
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": {"code": "too_large", "message": e.to_string()}})),
            )
                .into_response());
        }
        Err(e @ MediaError::Unsupported { .. }) => {
            return Err(ApiError::Unsupported(
                "unsupported_media_type",
                e.to_string(),
            ));
        }
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as i64;
    let key = app.files.put(bytes).await?;
    let filename = filename.or_else(|| Some(format!("arquivo.{}", detected.extension)));
    let record = app
        .store
        .create_upload(&store::media::NewUpload {
            kind: detected.kind.as_str(),
            mime_type: detected.mime_type,
            filename: filename.as_deref(),
            size_bytes: size,
            sha256: &sha256,
            storage_key: &key,
            uploaded_by: who.user_id(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "media": record }))).into_response())
}

/// `GET /api/media/{id}`. Every answer, errors included, carries the media sandbox policy; how
/// the bytes themselves go out is `media_http::file_response`.
pub async fn download(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Response {
    sandboxed(serve_media(&app, &who, id).await.into_response())
}

async fn serve_media(app: &AppState, who: &Principal, id: i64) -> ApiResult<Response> {
    let media = app.store.media(id).await?.ok_or(ApiError::NotFound)?;
    authorize_media(app, who, &media).await?;
    let Some(key) = media
        .storage_key
        .as_deref()
        .filter(|_| media.state == "ready")
    else {
        return Ok((
            StatusCode::CONFLICT,
            Json(json!({ "error": { "code": "media_not_ready", "message": "the file is not available", "state": media.state, "last_error": media.last_error } })),
        )
            .into_response());
    };
    let bytes = app.files.get(key).await?;
    Ok(file_response(&media, bytes))
}

/// A file is for whoever may see a conversation it was sent in; a fresh upload not sent yet, for
/// its uploader and admins. Anyone else gets a 404.
async fn authorize_media(
    app: &AppState,
    who: &Principal,
    media: &store::media::MediaRecord,
) -> ApiResult<()> {
    who.require(STAFF)?;
    let conversations = app.store.media_conversations(media.id).await?;
    if conversations.is_empty() {
        let own = media.uploaded_by.is_some() && media.uploaded_by == who.user_id();
        return if own || who.role() == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::NotFound)
        };
    }
    for id in conversations {
        if crate::access::visible_conversation(app, who, id)
            .await
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(ApiError::NotFound)
}

pub async fn retry_media(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let media = app.store.media(id).await?.ok_or(ApiError::NotFound)?;
    authorize_media(&app, &who, &media).await?;
    if !app.store.retry_media(id).await? {
        return Err(ApiError::Conflict(
            "not_failed",
            "only a failed download can be retried".into(),
        ));
    }
    app.media_wake.notify_one();
    Ok(Json(json!({ "ok": true })))
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/conversations/{id}/messages",
            get(crate::http::admin::list_messages).post(send),
        )
        .route("/conversations/{id}/read", post(mark_read))
        .route(
            "/media",
            post(upload).layer(DefaultBodyLimit::max(101 * 1024 * 1024)),
        )
        .route("/media/{id}", get(download))
        .route("/media/{id}/retry", post(retry_media))
}
