//! `POST /api/templates/media`: the example of a media header. Meta wants it as a handle of its
//! Resumable Upload API (not a messages media id), so the file is checked here (type from its
//! bytes, Meta's size limit) and uploaded through `POST /{app-id}/uploads` + `POST /upload:{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::permissions::Permission;
use domain::template::Problem;
use serde_json::json;
use store::auth::Role;
use whatsapp::media::{MediaError, MediaKind};

use super::channel_of;
use super::view::meta_api_error;
use crate::access::require_permission;
use crate::channels::Channel;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::state::AppState;

/// Meta's largest header example (a document) plus multipart framing.
pub const MAX_BODY: usize = 101 * 1024 * 1024;

/// What Meta takes as a header example.
const ACCEPTED: &[&str] = &["image/jpeg", "image/png", "video/mp4", "application/pdf"];

fn problem(code: &'static str, pt: String, en: String) -> ApiError {
    ApiError::problems("invalid_media", &[Problem::new("file", code, pt, en)])
}

/// `POST /api/templates/media` (manage_templates), multipart: `file`, and optionally
/// `channel_id` and `format` (IMAGE, VIDEO or DOCUMENT, checked against the file). Answers
/// `{handle, format, mime_type, size_bytes}`; the handle goes into the header's
/// `example.header_handle`.
pub async fn upload(
    State(app): State<AppState>,
    who: Principal,
    mut multipart: Multipart,
) -> ApiResult<Response> {
    who.require(&[Role::Admin, Role::Supervisor, Role::Agent])?;
    require_permission(&app, &who, Permission::ManageTemplates).await?;
    let mut file: Option<(Option<String>, Bytes)> = None;
    let mut channel_id = None;
    let mut format = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?
    {
        match field.name() {
            Some("file") => {
                let name = field.file_name().map(whatsapp::media::sanitize_filename);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::bad_request(format!("cannot read the file: {e}")))?;
                file = Some((name, bytes));
            }
            Some("channel_id") => {
                let text = field.text().await.unwrap_or_default();
                channel_id = Some(
                    text.trim()
                        .parse::<i64>()
                        .map_err(|_| ApiError::bad_request("channel_id must be a number"))?,
                );
            }
            Some("format") => {
                format = Some(field.text().await.unwrap_or_default().trim().to_uppercase());
            }
            _ => {}
        }
    }
    let (filename, bytes) = file.ok_or_else(|| {
        ApiError::bad_request("send the file in a multipart field named \"file\"")
    })?;
    let detected =
        whatsapp::media::validate_upload(&bytes, filename.as_deref()).map_err(|e| match e {
            MediaError::Empty => problem(
                "file_empty",
                "O arquivo está vazio.".into(),
                "The file is empty.".into(),
            ),
            MediaError::TooLarge { max_bytes, .. } => problem(
                "file_too_large",
                format!(
                    "O arquivo passa do limite da Meta para este tipo ({} MB).",
                    max_bytes / (1024 * 1024)
                ),
                format!("The file exceeds Meta's limit for this type ({max_bytes} bytes)."),
            ),
            MediaError::Unsupported { .. } => unsupported(),
        })?;
    if !ACCEPTED.contains(&detected.mime_type) {
        return Err(unsupported());
    }
    let kind = match detected.kind {
        MediaKind::Image => "IMAGE",
        MediaKind::Video => "VIDEO",
        _ => "DOCUMENT",
    };
    if let Some(f) = format.as_deref().filter(|f| !f.is_empty())
        && f != kind
    {
        return Err(problem(
            "format_mismatch",
            format!("O cabeçalho é do tipo {f}, mas o arquivo é {kind}."),
            format!("The header is {f} but the file is {kind}."),
        ));
    }
    let channel = channel_of(&app, channel_id)?;
    let app_id = app_id_of(&app, &channel).await?;
    let name = filename.unwrap_or_else(|| format!("exemplo.{}", detected.extension));
    let size = bytes.len();
    let handle = app
        .graph
        .resumable_upload(&channel.creds(), &app_id, &name, detected.mime_type, bytes)
        .await
        .map_err(|e| meta_api_error(&e))?;
    tracing::info!(
        channel_id = channel.id,
        size,
        mime = detected.mime_type,
        "template header example uploaded"
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "handle": handle,
            "format": kind,
            "mime_type": detected.mime_type,
            "size_bytes": size,
        })),
    )
        .into_response())
}

fn unsupported() -> ApiError {
    problem(
        "file_type",
        "Para o exemplo do cabeçalho a Meta aceita JPEG ou PNG (imagem), MP4 (vídeo) ou PDF (documento).".into(),
        "Meta takes JPEG or PNG (image), MP4 (video) or PDF (document) as a header example.".into(),
    )
}

/// The Meta app the uploads go to: the channel's `app_id`, else the one the token belongs to
/// (from `debug_token`, then remembered on the channel).
pub async fn app_id_of(app: &AppState, channel: &Arc<Channel>) -> ApiResult<String> {
    if let Some(id) = app
        .store
        .channel_account(channel.id)
        .await?
        .and_then(|a| a.app_id)
        .filter(|a| !a.is_empty())
    {
        return Ok(id);
    }
    let info = app
        .graph
        .debug_token(&channel.creds())
        .await
        .map_err(|e| meta_api_error(&e))?;
    let Some(id) = info.app_id.filter(|a| !a.is_empty()) else {
        return Err(ApiError::Conflict(
            "no_app_id",
            "Informe o ID do aplicativo da Meta (app_id) no canal: ele é necessário para enviar o exemplo de mídia.".into(),
        ));
    };
    app.store
        .set_channel_account(channel.id, Some(Some(&id)), None)
        .await?;
    Ok(id)
}
