//! The Graph API routes.
//!
//! Every handler follows Meta's order of checks: the scripted fault (if
//! any) first, then the access token, then the object, then the body. That
//! order matters to clients: a bad token must win over a bad body.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::account::{self, MANAGEMENT, MESSAGING, authorize_scope};
use crate::delivery::{self, StatusJob};
use crate::errors::GraphError;
use crate::openapi::RequestKind;
use crate::server::ConnKill;
use crate::validate::{SendRequest, parse_send};
use crate::{
    Endpoint, Fault, GraphSim, SentMessage, StoredMedia, control, digits, ids, templates, uploads,
};

/// Largest accepted upload (Meta: 100 MB for documents) plus multipart framing.
const MAX_UPLOAD_BODY: usize = 101 * 1024 * 1024;

pub(crate) type Kill = Option<Extension<ConnKill>>;

pub(crate) fn router(sim: GraphSim) -> Router {
    Router::new()
        .route("/_media/{media_id}", get(download_media))
        .nest("/_sim", control::router())
        .route("/{version}/{node}/messages", post(send_message))
        .route(
            "/{version}/{node}/media",
            post(upload_media).layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY)),
        )
        .route(
            "/{version}/{node}/message_templates",
            get(templates::list)
                .post(templates::create)
                .delete(templates::delete),
        )
        .route(
            "/{version}/{node}/subscribed_apps",
            get(account::subscribed_apps_get)
                .post(account::subscribed_apps_post)
                .delete(account::subscribed_apps_delete),
        )
        .route(
            "/{version}/{node}/uploads",
            post(uploads::start).layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY)),
        )
        .route(
            "/{version}/{node}",
            get(get_node)
                .post(post_node)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY))
                .delete(delete_node),
        )
        .fallback(unknown_path)
        .with_state(sim)
}

/// Graph versions look like "v23.0".
pub(crate) fn valid_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|r| r.strip_suffix(".0"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

async fn unknown_path(uri: OriginalUri) -> Response {
    GraphError::unknown_path(uri.path()).into_response()
}

/// Counts the request and applies the next fault. `Ok(Some(..))` carries an
/// asynchronous failure for a send to report later.
pub(crate) async fn gate(
    sim: &GraphSim,
    endpoint: Endpoint,
    kill: &Kill,
) -> Result<Option<(i64, String)>, Response> {
    let fault = sim.shared.update(|s| {
        *s.requests.entry(endpoint).or_default() += 1;
        s.next_fault(endpoint)
    });
    match fault {
        None => Ok(None),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(None)
        }
        Some(Fault::ServerError) => Err(GraphError::server_error().into_response()),
        Some(Fault::RateLimited) => Err(GraphError::rate_limited().into_response()),
        Some(Fault::GraphError {
            http_status,
            code,
            message,
        }) => Err(GraphError::custom(http_status, code, &message).into_response()),
        Some(Fault::DropConnection) => Err(drop_connection(kill).await),
        Some(Fault::AcceptThenFail { code, message }) => Ok(Some((code, message))),
    }
}

async fn drop_connection(kill: &Kill) -> Response {
    if let Some(Extension(k)) = kill {
        k.kill();
        // The connection task drops this future together with the socket.
        return std::future::pending().await;
    }
    // Embedded in a foreign server: the closest thing is a body that fails,
    // which makes hyper abort the connection mid-response.
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("graph-sim: connection dropped"))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(failing),
    )
        .into_response()
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth");
    (known && !token.is_empty()).then_some(token)
}

pub(crate) fn authorize(sim: &GraphSim, headers: &HeaderMap) -> Result<(), GraphError> {
    match bearer(headers) {
        None => Err(GraphError::invalid_token(true)),
        Some(t) if sim.shared.access_tokens.iter().any(|a| a == t) => Ok(()),
        Some(_) => Err(GraphError::invalid_token(false)),
    }
}

async fn send_message(
    State(sim): State<GraphSim>,
    Path((version, pnid)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let is_read = parsed
        .as_ref()
        .and_then(|v| v.get("status"))
        .and_then(Value::as_str)
        == Some("read");
    let endpoint = if is_read {
        Endpoint::MarkRead
    } else {
        Endpoint::SendMessage
    };
    let is_template = parsed
        .as_ref()
        .and_then(|v| v.get("type"))
        .and_then(Value::as_str)
        == Some("template");
    let mut failure = match gate(&sim, endpoint, &kill).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if let Err(e) = authorize_scope(&sim, &headers, MESSAGING) {
        return e.into_response();
    }
    let Some(phone) = sim.shared.phone(&pnid).cloned() else {
        return GraphError::unknown_object("post", &pnid).into_response();
    };
    let Some(body) = parsed else {
        return GraphError::invalid_param("Invalid parameter: the request body is not valid JSON")
            .into_response();
    };
    // Checked against the document and recorded before anything can refuse the body; Meta's
    // own answers for a missing or invalid parameter (131008, 131009) still come first.
    let conformance = if is_template {
        templates::check_value_and_record(&sim, RequestKind::TemplateSend, uri.path(), &body)
    } else {
        Ok(())
    };
    let out = match parse_send(&body) {
        Ok(SendRequest::MarkRead { message_id }) => {
            sim.shared.update(|s| s.mark_read.push(message_id));
            return Json(json!({"success": true})).into_response();
        }
        Ok(SendRequest::Message(out)) => out,
        Err(e) => return e.into_response(),
    };

    if let Err(e) = conformance {
        return e.into_response();
    }
    let mut rendered = None;
    let mut category = None;
    if is_template {
        match templates::send::check_send(&sim, &phone.waba_id, &body["template"]) {
            Ok(info) => {
                rendered = info.rendered;
                category = info.category;
            }
            Err(e) => return e.into_response(),
        }
    }

    let wa_id = {
        let st = sim.shared.lock();
        let d = digits(&out.to);
        st.wa_id_overrides.get(&d).cloned().unwrap_or(d)
    };
    let wamid = ids::wamid(&wa_id);
    let accepted = sim.shared.update(|s| {
        // Taking the instant under the lock keeps each per-number list sorted.
        let now = Instant::now();
        if let Some(limit) = s.throughput_limit
            && s.sends_in_last_second(&pnid, now) >= limit as usize
        {
            return None;
        }
        s.send_times.entry(pnid.clone()).or_default().push(now);
        s.sent.push(SentMessage {
            wamid: wamid.clone(),
            phone_number_id: pnid.clone(),
            to: out.to.clone(),
            body: body.clone(),
            received_at: std::time::SystemTime::now(),
            template: rendered.clone(),
        });
        let missing_media = out.media_ids.iter().any(|id| !s.media.contains_key(id));
        let spam = s.spam_limited.contains(&pnid);
        let marketing = (category.as_deref() == Some("MARKETING"))
            .then(|| s.marketing_faults.get(&digits(&out.to)).copied())
            .flatten();
        Some((s.webhook_url.is_some(), missing_media, spam, marketing))
    });
    let Some((has_webhook, missing_media, spam, marketing)) = accepted else {
        return GraphError::rate_limited().into_response();
    };
    // Quality and marketing refusals arrive asynchronously, in a failed status, as on Meta.
    if failure.is_none() && spam {
        failure = Some((131048, crate::errors::error_title(131048).to_owned()));
    }
    if failure.is_none()
        && let Some(code) = marketing
    {
        failure = Some((code, crate::errors::error_title(code).to_owned()));
    }

    // Meta takes unknown media ids and fails the message afterwards.
    let auto = sim.shared.auto_statuses;
    let any_auto = auto.sent || auto.delivered || auto.read;
    if failure.is_none() && missing_media && any_auto {
        failure = Some((131053, "Media upload error".to_owned()));
    }
    let template = out.kind == "template";
    if has_webhook && (any_auto || failure.is_some()) {
        delivery::spawn(
            sim.clone(),
            StatusJob {
                phone,
                wamid: wamid.clone(),
                recipient: wa_id.clone(),
                template,
                category: category.clone(),
                biz_opaque: out.biz_opaque,
                failure,
            },
        );
    }

    let mut message = json!({"id": wamid});
    if template {
        message["message_status"] = json!("accepted");
    }
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": out.to, "wa_id": wa_id}],
        "messages": [message],
    }))
    .into_response()
}

/// Meta's list of accepted upload types, with the per-kind size limits.
fn upload_limit(mime: &str) -> Option<usize> {
    const MB: usize = 1024 * 1024;
    let base = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let limit = match base.as_str() {
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" | "audio/opus" => {
            16 * MB
        }
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => 100 * MB,
        "image/jpeg" | "image/png" => 5 * MB,
        // Stickers: 100 KB static, 500 KB animated; the upload cannot tell.
        "image/webp" => 500 * 1024,
        "video/mp4" | "video/3gpp" => 16 * MB,
        _ => return None,
    };
    Some(limit)
}

const ACCEPTED_TYPES: &str = "audio/aac, audio/mp4, audio/mpeg, audio/amr, audio/ogg, audio/opus, application/vnd.ms-powerpoint, application/msword, application/vnd.openxmlformats-officedocument.wordprocessingml.document, application/vnd.openxmlformats-officedocument.presentationml.presentation, application/vnd.ms-excel, application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, application/pdf, text/plain, image/jpeg, image/png, image/webp, video/mp4, video/3gpp";

struct FilePart {
    bytes: Bytes,
    filename: Option<String>,
    content_type: Option<String>,
}

async fn upload_media(
    State(sim): State<GraphSim>,
    Path((version, pnid)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    if let Err(resp) = gate(&sim, Endpoint::UploadMedia, &kill).await {
        return resp;
    }
    if let Err(e) = authorize_scope(&sim, &headers, MESSAGING) {
        return e.into_response();
    }
    if sim.shared.phone(&pnid).is_none() {
        return GraphError::unknown_object("post", &pnid).into_response();
    }
    let Ok(mut multipart) = multipart else {
        return GraphError::param_required("file").into_response();
    };

    let mut file: Option<FilePart> = None;
    let mut kind: Option<String> = None;
    let mut product: Option<String> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return GraphError::invalid_param(&format!("Invalid multipart body: {e}"))
                    .into_response();
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let filename = field.file_name().map(str::to_owned);
                let content_type = field.content_type().map(str::to_owned);
                match field.bytes().await {
                    Ok(bytes) => {
                        file = Some(FilePart {
                            bytes,
                            filename,
                            content_type,
                        });
                    }
                    Err(e) => {
                        return GraphError::media_upload(&format!("Could not read the file: {e}"))
                            .into_response();
                    }
                }
            }
            "type" => kind = field.text().await.ok(),
            "messaging_product" => product = field.text().await.ok(),
            _ => {}
        }
    }

    match product.as_deref().map(str::trim) {
        None | Some("") => return GraphError::param_required("messaging_product").into_response(),
        Some(p) if p.eq_ignore_ascii_case("whatsapp") => {}
        Some(p) => {
            return GraphError::invalid_param(&format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got \"{p}\""
            ))
            .into_response();
        }
    }
    let Some(file) = file else {
        return GraphError::param_required("file").into_response();
    };
    let Some(mime) = kind
        .filter(|k| !k.trim().is_empty())
        .or(file.content_type)
        .map(|m| m.trim().to_owned())
    else {
        return GraphError::param_required("type").into_response();
    };
    let Some(limit) = upload_limit(&mime) else {
        return GraphError::invalid_param(&format!(
            "Param file must be a file with one of the following types: {ACCEPTED_TYPES}. Received file of type '{mime}'."
        ))
        .into_response();
    };
    if file.bytes.len() > limit {
        return GraphError::media_upload(&format!(
            "File of type {mime} is too large: {} bytes, max {limit}",
            file.bytes.len()
        ))
        .into_response();
    }

    let id = ids::media_id();
    let media = StoredMedia::new(file.bytes, &mime, file.filename);
    sim.shared.update(|s| {
        s.media.insert(id.clone(), media);
        s.upload_order.push(id.clone());
    });
    Json(json!({ "id": id })).into_response()
}

async fn get_node(
    State(sim): State<GraphSim>,
    Path((version, node)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    let fields = query.get("fields").map(String::as_str);
    if let Some(phone) = sim.shared.phone(&node).cloned() {
        if let Err(resp) = gate(&sim, Endpoint::PhoneNumber, &kill).await {
            return resp;
        }
        // Either permission reads a number (the document's 403 example says so).
        if let Err(e) = authorize_scope(&sim, &headers, MESSAGING)
            .or_else(|_| authorize_scope(&sim, &headers, MANAGEMENT))
        {
            return e.into_response();
        }
        return account::phone_info(&sim, &phone, fields);
    }
    if node == "debug_token" {
        if let Err(resp) = gate(&sim, Endpoint::Account, &kill).await {
            return resp;
        }
        return account::debug_token(&sim, &headers, &query);
    }
    if uploads::is_upload_node(&node) {
        if let Err(resp) = gate(&sim, Endpoint::Uploads, &kill).await {
            return resp;
        }
        if let Err(e) = uploads::authorize_node(&sim, &headers, &query) {
            return e.into_response();
        }
        return uploads::status(&sim, &node);
    }
    if account::waba_known(&sim, &node) {
        if let Err(resp) = gate(&sim, Endpoint::Account, &kill).await {
            return resp;
        }
        if let Err(e) = authorize_scope(&sim, &headers, MANAGEMENT) {
            return e.into_response();
        }
        return account::waba_info(&sim, &node, fields);
    }
    if sim.template(&node).is_some() {
        if let Err(resp) = gate(&sim, Endpoint::Templates, &kill).await {
            return resp;
        }
        if let Err(e) = authorize_scope(&sim, &headers, MANAGEMENT) {
            return e.into_response();
        }
        return templates::get_one(&sim, &node, fields)
            .unwrap_or_else(|| GraphError::unknown_object("get", &node).into_response());
    }

    if let Err(resp) = gate(&sim, Endpoint::MediaInfo, &kill).await {
        return resp;
    }
    if let Err(e) = authorize_scope(&sim, &headers, MESSAGING) {
        return e.into_response();
    }
    let info = sim
        .shared
        .lock()
        .media
        .get(&node)
        .map(|m| (m.mime_type.clone(), m.sha256_hex.clone(), m.bytes.len()));
    let Some((mime_type, sha256, size)) = info else {
        return GraphError::unknown_object("get", &node).into_response();
    };
    let url = download_url(&sim, &headers, &uri.0, &version, &node);
    Json(json!({
        "messaging_product": "whatsapp",
        "url": url,
        "mime_type": mime_type,
        "sha256": sha256,
        "file_size": size,
        "id": node,
    }))
    .into_response()
}

/// A POST on a node: an upload session's bytes, or a template edit.
async fn post_node(
    State(sim): State<GraphSim>,
    Path((version, node)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    if uploads::is_upload_node(&node) {
        if let Err(resp) = gate(&sim, Endpoint::Uploads, &kill).await {
            return resp;
        }
        if let Err(e) = uploads::authorize_node(&sim, &headers, &query) {
            return e.into_response();
        }
        return uploads::upload(&sim, &node, &headers, &body);
    }
    if let Err(resp) = gate(&sim, Endpoint::Templates, &kill).await {
        return resp;
    }
    if let Err(e) = authorize_scope(&sim, &headers, MANAGEMENT) {
        return e.into_response();
    }
    templates::edit(&sim, &node, uri.path(), &body)
        .unwrap_or_else(|| GraphError::unknown_object("post", &node).into_response())
}

async fn delete_node(
    State(sim): State<GraphSim>,
    Path((version, node)): Path<(String, String)>,
    uri: OriginalUri,
    kill: Kill,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return GraphError::unknown_path(uri.path()).into_response();
    }
    if let Err(resp) = gate(&sim, Endpoint::DeleteMedia, &kill).await {
        return resp;
    }
    if let Err(e) = authorize_scope(&sim, &headers, MESSAGING) {
        return e.into_response();
    }
    let removed = sim.shared.update(|s| {
        s.upload_order.retain(|id| id != &node);
        s.media.remove(&node).is_some()
    });
    if !removed {
        return GraphError::unknown_object("delete", &node).into_response();
    }
    Json(json!({"success": true})).into_response()
}

fn url_signature(key: &[u8], media_id: &str, exp: u128) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(format!("{media_id}.{exp}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The download URL is built from the request itself (Host, and whatever
/// prefix the router is nested under), so it points back at this server
/// however the simulator is mounted.
fn download_url(
    sim: &GraphSim,
    headers: &HeaderMap,
    uri: &Uri,
    version: &str,
    node: &str,
) -> String {
    // Milliseconds, not Meta's seconds, so tests can use sub-second TTLs.
    let exp = (ids::unix_now() + sim.shared.media_url_ttl).as_millis();
    let sig = url_signature(&sim.shared.url_key, node, exp);
    let origin = request_origin(sim, headers);
    let path = uri.path();
    let prefix = path
        .strip_suffix(&format!("/{version}/{node}"))
        .unwrap_or("");
    format!("{origin}{prefix}/_media/{node}?exp={exp}&sig={sig}")
}

/// "scheme://host[:port]" as the client reached us.
pub(crate) fn request_origin(sim: &GraphSim, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    match host {
        Some(h) => format!("{scheme}://{h}"),
        None => origin_of(&sim.base_url()),
    }
}

/// "http://host:port/v23.0" -> "http://host:port".
fn origin_of(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url[..after_scheme + i].to_owned(),
        None => url.to_owned(),
    }
}

fn lookaside_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!DOCTYPE html><html><body>URL signature expired</body></html>",
    )
        .into_response()
}

async fn download_media(
    State(sim): State<GraphSim>,
    Path(media_id): Path<String>,
    kill: Kill,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(resp) = gate(&sim, Endpoint::MediaDownload, &kill).await {
        return resp;
    }
    if let Err(e) = authorize_scope(&sim, &headers, MESSAGING) {
        return e.into_response();
    }
    let exp = query.get("exp").and_then(|e| e.parse::<u128>().ok());
    let sig = query.get("sig");
    let valid = match (exp, sig) {
        (Some(exp), Some(sig)) => {
            *sig == url_signature(&sim.shared.url_key, &media_id, exp)
                && ids::unix_now().as_millis() < exp
        }
        _ => false,
    };
    if !valid {
        return lookaside_not_found();
    }
    let media = sim.shared.lock().media.get(&media_id).cloned();
    let Some(media) = media else {
        return lookaside_not_found();
    };
    let mut resp = (StatusCode::OK, media.bytes).into_response();
    let content_type = HeaderValue::from_str(&media.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(valid_version("v23.0"));
        assert!(valid_version("v9.0"));
        assert!(!valid_version("v23.1"));
        assert!(!valid_version("v.0"));
        assert!(!valid_version("23.0"));
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("http://127.0.0.1:80/v23.0"),
            "http://127.0.0.1:80"
        );
        assert_eq!(origin_of("http://h"), "http://h");
    }

    #[test]
    fn upload_types() {
        assert!(upload_limit("audio/ogg; codecs=opus").is_some());
        assert!(upload_limit("IMAGE/JPEG").is_some());
        assert!(upload_limit("application/zip").is_none());
    }
}
