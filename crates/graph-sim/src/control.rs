//! The `/_sim` control API: the simulator's Rust API over JSON, for
//! non-Rust clients and the demo page. No authentication: it is a test
//! double bound to loopback or mounted by the demo.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::customer::{CustomerMessage, CustomerSend, CustomerSent, messages_mut, sha256_base64};
use crate::{Customer, Endpoint, Fault, GraphSim, SimError, builder_for};

pub(crate) fn router() -> Router<GraphSim> {
    Router::new()
        .route("/config", get(config))
        .route("/sent", get(sent))
        .route("/mark_read", get(mark_read))
        .route("/uploads", get(uploads))
        .route("/deliveries", get(deliveries))
        .route("/stats", get(stats))
        .route("/faults", post(faults))
        .route("/webhook_url", post(webhook_url))
        .route("/reset", post(reset))
        .route("/customer/media", post(customer_media))
        .route("/customer/send", post(customer_send_route))
        .route("/customer/status", post(customer_status))
        .merge(crate::control_templates::router())
}

pub(crate) fn bad_request(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.to_string()})),
    )
        .into_response()
}

async fn config(State(sim): State<GraphSim>) -> Json<Value> {
    Json(json!({
        "base_url": sim.base_url(),
        "webhook_url": sim.webhook_url(),
        "phone_numbers": sim.phone_numbers(),
        "auto_statuses": sim.shared.auto_statuses,
        "media_url_ttl_ms": u64::try_from(sim.shared.media_url_ttl.as_millis()).unwrap_or(u64::MAX),
    }))
}

async fn sent(State(sim): State<GraphSim>) -> Json<Value> {
    Json(json!(sim.sent_messages()))
}

async fn mark_read(State(sim): State<GraphSim>) -> Json<Value> {
    Json(json!(sim.mark_read_calls()))
}

async fn uploads(State(sim): State<GraphSim>) -> Json<Value> {
    let list: Vec<Value> = sim
        .uploads()
        .into_iter()
        .map(|(id, m)| {
            json!({
                "id": id,
                "mime_type": m.mime_type,
                "filename": m.filename,
                "sha256": m.sha256_hex,
                "file_size": m.bytes.len(),
            })
        })
        .collect();
    Json(json!(list))
}

async fn deliveries(State(sim): State<GraphSim>) -> Json<Value> {
    Json(json!(sim.status_deliveries()))
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint::SendMessage,
    Endpoint::MarkRead,
    Endpoint::UploadMedia,
    Endpoint::MediaInfo,
    Endpoint::MediaDownload,
    Endpoint::DeleteMedia,
    Endpoint::PhoneNumber,
    Endpoint::Templates,
    Endpoint::Account,
    Endpoint::Uploads,
    Endpoint::Any,
];

async fn stats(State(sim): State<GraphSim>) -> Json<Value> {
    let mut requests = serde_json::Map::new();
    for e in ENDPOINTS {
        if let Ok(Value::String(name)) = serde_json::to_value(e) {
            requests.insert(name, json!(sim.request_count(*e)));
        }
    }
    let mut max = serde_json::Map::new();
    for p in sim.phone_numbers() {
        max.insert(
            p.phone_number_id.clone(),
            json!(sim.max_sends_in_any_second(&p.phone_number_id)),
        );
    }
    Json(json!({
        "requests": requests,
        "sent": sim.shared.lock().sent.len(),
        "max_sends_in_any_second": max,
    }))
}

/// JSON form of [`Fault`]: `{"kind":"graph_error","http_status":400,"code":131047,"message":"..."}`,
/// `{"kind":"delay","ms":500}`, `{"kind":"server_error"}`...
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum FaultSpec {
    ServerError,
    RateLimited,
    GraphError {
        http_status: u16,
        code: i64,
        #[serde(default)]
        message: Option<String>,
    },
    Delay {
        ms: u64,
    },
    DropConnection,
    AcceptThenFail {
        code: i64,
        #[serde(default)]
        message: Option<String>,
    },
}

impl From<FaultSpec> for Fault {
    fn from(f: FaultSpec) -> Fault {
        let text = |code: i64, m: Option<String>| {
            m.unwrap_or_else(|| crate::errors::error_title(code).to_owned())
        };
        match f {
            FaultSpec::ServerError => Fault::ServerError,
            FaultSpec::RateLimited => Fault::RateLimited,
            FaultSpec::GraphError {
                http_status,
                code,
                message,
            } => Fault::GraphError {
                http_status,
                code,
                message: text(code, message),
            },
            FaultSpec::Delay { ms } => Fault::Delay(Duration::from_millis(ms)),
            FaultSpec::DropConnection => Fault::DropConnection,
            FaultSpec::AcceptThenFail { code, message } => Fault::AcceptThenFail {
                code,
                message: text(code, message),
            },
        }
    }
}

#[derive(Deserialize)]
struct FaultsRequest {
    endpoint: Endpoint,
    faults: Vec<FaultSpec>,
}

async fn faults(State(sim): State<GraphSim>, body: Bytes) -> Response {
    let req: FaultsRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let n = req.faults.len();
    sim.inject(
        req.endpoint,
        req.faults.into_iter().map(Fault::from).collect(),
    );
    Json(json!({"queued": n, "pending": sim.pending_faults(req.endpoint)})).into_response()
}

#[derive(Deserialize)]
struct WebhookUrl {
    url: Option<String>,
}

async fn webhook_url(State(sim): State<GraphSim>, body: Bytes) -> Response {
    match serde_json::from_slice::<WebhookUrl>(&body) {
        Ok(w) => {
            sim.set_webhook_url(w.url);
            Json(json!({"webhook_url": sim.webhook_url()})).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn reset(State(sim): State<GraphSim>) -> Json<Value> {
    sim.reset();
    Json(json!({"ok": true}))
}

/// Raw bytes in the body, MIME type in Content-Type.
async fn customer_media(State(sim): State<GraphSim>, headers: HeaderMap, body: Bytes) -> Response {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/octet-stream");
    let id = sim.add_customer_media(body, mime);
    Json(json!({"id": id})).into_response()
}

async fn customer_send_route(State(sim): State<GraphSim>, body: Bytes) -> Response {
    let req: CustomerSend = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    match customer_send(&sim, req).await {
        Ok(sent) => Json(json!(sent)).into_response(),
        Err(e @ (SimError::Invalid(_) | SimError::UnknownPhoneNumber(_))) => bad_request(e),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct StatusRequest {
    wamid: String,
    recipient: String,
    status: String,
    #[serde(default)]
    phone_number_id: Option<String>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    error_title: Option<String>,
}

/// Posts one status webhook by hand (e.g. a `failed` for the demo).
async fn customer_status(State(sim): State<GraphSim>, body: Bytes) -> Response {
    let req: StatusRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let builder = match req.phone_number_id.as_deref() {
        Some(id) => match sim.webhook_builder_for(id) {
            Some(b) => b,
            None => return bad_request(SimError::UnknownPhoneNumber(id.to_owned())),
        },
        None => sim.webhook_builder(),
    };
    let error = req
        .error_code
        .map(|c| (c, req.error_title.as_deref().unwrap_or("")));
    let payload = builder.status(&req.wamid, &req.recipient, &req.status, error);
    match sim.post_to_webhook(&payload).await {
        Ok((status, body)) => {
            Json(json!({"status": status, "body": body, "payload": payload})).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

/// A 1x1 transparent PNG, so placeholder images render in a browser.
const PLACEHOLDER_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x00, 0x02, 0x00,
    0x00, 0x05, 0x00, 0x01, 0xe9, 0xfa, 0xdc, 0xd8, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44,
    0xae, 0x42, 0x60, 0x82,
];

/// Resolves a media variant to a stored media id: an existing id, bytes
/// given in base64, or a placeholder.
fn resolve_media(
    sim: &GraphSim,
    media_id: Option<String>,
    data_base64: Option<String>,
    mime: &str,
) -> Result<String, SimError> {
    if let Some(id) = media_id {
        return Ok(id);
    }
    let bytes = match data_base64 {
        Some(b64) => STANDARD
            .decode(b64.trim())
            .map_err(|e| SimError::Invalid(format!("data_base64: {e}")))?,
        None if mime.starts_with("image/png") => PLACEHOLDER_PNG.to_vec(),
        None => format!("graph-sim placeholder for {mime}").into_bytes(),
    };
    Ok(sim.add_customer_media(bytes.into(), mime))
}

pub(crate) async fn customer_send(
    sim: &GraphSim,
    req: CustomerSend,
) -> Result<CustomerSent, SimError> {
    let builder = match req.phone_number_id.as_deref() {
        Some(id) => sim
            .shared
            .phone(id)
            .map(builder_for)
            .ok_or_else(|| SimError::UnknownPhoneNumber(id.to_owned()))?,
        None => sim
            .shared
            .phone_numbers
            .first()
            .map(builder_for)
            .ok_or_else(|| SimError::Invalid("the simulator has no phone number".into()))?,
    };
    let from_digits = crate::digits(&req.from);
    if from_digits.is_empty() {
        return Err(SimError::Invalid("`from` must be a phone number".into()));
    }
    let name = req.name.clone().unwrap_or_else(|| {
        let tail = &from_digits[from_digits.len().saturating_sub(4)..];
        format!("Cliente {tail}")
    });
    let customer = Customer::new(from_digits, name);

    let (wamid, mut payload, media) = build(sim, &builder, &customer, &req)?;
    if let Some(media_id) = media
        && let Some(stored) = sim.uploaded_media(&media_id)
    {
        // The builder cannot know the bytes; the real digest makes the
        // payload consistent with what GET /{media-id} will report.
        let digest = sha256_base64(&stored.bytes);
        for m in messages_mut(&mut payload) {
            let kind = m["type"].as_str().unwrap_or_default().to_owned();
            if let Some(o) = m.get_mut(&kind).and_then(Value::as_object_mut) {
                o.insert("sha256".into(), json!(digest));
            }
        }
    }
    if let Some(ctx) = &req.context
        && !matches!(req.message, CustomerMessage::TemplateButton { .. })
    {
        payload = builder.reply_to(payload, ctx);
    }
    if req.referral {
        payload = builder.with_referral(payload);
    }
    let (status, body) = sim.post_to_webhook(&payload).await?;
    Ok(CustomerSent {
        wamid,
        status,
        body,
        payload,
    })
}

type Built = (Option<String>, Value, Option<String>);

fn build(
    sim: &GraphSim,
    b: &crate::WebhookBuilder,
    c: &Customer,
    req: &CustomerSend,
) -> Result<Built, SimError> {
    let with_media = |(w, p): (String, Value), id: String| (Some(w), p, Some(id));
    let plain = |(w, p): (String, Value)| (Some(w), p, None);
    Ok(match &req.message {
        CustomerMessage::Text { text } => plain(b.text(c, text)),
        CustomerMessage::Image {
            media_id,
            data_base64,
            mime_type,
            caption,
        } => {
            let mime = mime_type.as_deref().unwrap_or(if data_base64.is_some() {
                "image/jpeg"
            } else {
                "image/png"
            });
            let id = resolve_media(sim, media_id.clone(), data_base64.clone(), mime)?;
            with_media(b.image(c, &id, mime, caption.as_deref()), id)
        }
        CustomerMessage::Audio {
            media_id,
            data_base64,
            voice,
        } => {
            let mime = if *voice {
                "audio/ogg; codecs=opus"
            } else {
                "audio/mpeg"
            };
            let id = resolve_media(sim, media_id.clone(), data_base64.clone(), mime)?;
            with_media(b.audio(c, &id, *voice), id)
        }
        CustomerMessage::Video {
            media_id,
            data_base64,
            mime_type,
            caption,
        } => {
            let mime = mime_type.as_deref().unwrap_or("video/mp4");
            let id = resolve_media(sim, media_id.clone(), data_base64.clone(), mime)?;
            with_media(b.video(c, &id, mime, caption.as_deref()), id)
        }
        CustomerMessage::Document {
            media_id,
            data_base64,
            mime_type,
            filename,
            caption,
        } => {
            let mime = mime_type.as_deref().unwrap_or("application/pdf");
            let id = resolve_media(sim, media_id.clone(), data_base64.clone(), mime)?;
            let filename = filename.as_deref().unwrap_or("documento.pdf");
            with_media(b.document(c, &id, mime, filename, caption.as_deref()), id)
        }
        CustomerMessage::Sticker {
            media_id,
            data_base64,
            animated,
        } => {
            let id = resolve_media(sim, media_id.clone(), data_base64.clone(), "image/webp")?;
            with_media(b.sticker(c, &id, *animated), id)
        }
        CustomerMessage::Location {
            latitude,
            longitude,
            name,
            address,
        } => plain(b.location(
            c,
            *latitude,
            *longitude,
            name.as_deref(),
            address.as_deref(),
        )),
        CustomerMessage::Contacts {
            formatted_name,
            phone,
        } => plain(b.contacts(c, formatted_name, phone)),
        CustomerMessage::ButtonReply { id, title } => plain(b.button_reply(c, id, title)),
        CustomerMessage::ListReply {
            id,
            title,
            description,
        } => plain(b.list_reply(c, id, title, description.as_deref())),
        CustomerMessage::NfmReply { response_json } => plain(b.nfm_reply(c, response_json)),
        CustomerMessage::TemplateButton { payload, text } => {
            let Some(ctx) = req.context.as_deref() else {
                return Err(SimError::Invalid(
                    "template_button needs `context` (the template's wamid)".into(),
                ));
            };
            plain(b.template_button(c, payload, text, ctx))
        }
        CustomerMessage::Reaction { message_id, emoji } => {
            plain(b.reaction(c, message_id, emoji.as_deref()))
        }
        CustomerMessage::Order { catalog_id, items } => plain(b.order(c, catalog_id, items)),
        CustomerMessage::SystemNumberChange { new_wa_id } => {
            plain(b.system_number_change(c, new_wa_id))
        }
        CustomerMessage::Unsupported => plain(b.unsupported(c)),
        CustomerMessage::UnknownFutureType { kind } => plain(b.unknown_future_type(c, kind)),
        CustomerMessage::Raw { payload } => (None, payload.clone(), None),
    })
}
