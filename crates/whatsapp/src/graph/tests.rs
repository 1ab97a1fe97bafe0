//! The client against a tiny fake Graph API on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes as AxumBytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::*;
use crate::errors::Disposition;
use crate::send::OutboundContent;

const TOKEN: &str = "EAAG-secret-token";

#[derive(Debug, Clone, Default)]
struct Recorded {
    method: String,
    path: String,
    authorization: Option<String>,
    user_agent: Option<String>,
    content_type: Option<String>,
    json: Option<Value>,
    parts: Vec<FormPart>,
}

#[derive(Debug, Clone)]
struct FormPart {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

struct Fake {
    base: String,
    seen: Mutex<Vec<Recorded>>,
}

type Shared = Arc<Fake>;

fn header_of(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn record(method: &str, path: String, headers: &HeaderMap) -> Recorded {
    Recorded {
        method: method.into(),
        path,
        authorization: header_of(headers, header::AUTHORIZATION),
        user_agent: header_of(headers, header::USER_AGENT),
        content_type: header_of(headers, header::CONTENT_TYPE),
        ..Recorded::default()
    }
}

fn push(fake: &Fake, r: Recorded) {
    fake.seen.lock().expect("lock").push(r);
}

fn graph_error(status: StatusCode, error: Value) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

async fn messages(
    State(fake): State<Shared>,
    Path(pnid): Path<String>,
    headers: HeaderMap,
    body: AxumBytes,
) -> Response {
    let mut r = record("POST", format!("/v23.0/{pnid}/messages"), &headers);
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.json = Some(json.clone());
    push(&fake, r);
    match pnid.as_str() {
        "window" => graph_error(
            StatusCode::BAD_REQUEST,
            json!({
                "message": "(#131047) Re-engagement message",
                "type": "OAuthException",
                "code": 131047,
                "error_subcode": 2494010,
                "error_data": { "messaging_product": "whatsapp", "details": "More than 24 hours have passed since the recipient last replied to the sender number." },
                "fbtrace_id": "AazTVYQ1"
            }),
        ),
        "expired" => graph_error(
            StatusCode::UNAUTHORIZED,
            json!({ "message": "Error validating access token", "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "B2" }),
        ),
        "boom" => (StatusCode::INTERNAL_SERVER_ERROR, "<html>Internal Server Error</html>").into_response(),
        "garbled" => (StatusCode::OK, "not json").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            axum::Json(json!({})).into_response()
        }
        _ if json["status"] == "read" => axum::Json(json!({ "success": true })).into_response(),
        _ => axum::Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": json["to"], "wa_id": "5511987654321" }],
            "messages": [{ "id": "wamid.HBgLNTUxMTk4NzY1NDMyMRUCABEYEjQ", "message_status": "accepted" }]
        }))
        .into_response(),
    }
}

async fn upload(
    State(fake): State<Shared>,
    Path(pnid): Path<String>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let mut r = record("POST", format!("/v23.0/{pnid}/media"), &headers);
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let data = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        r.parts.push(FormPart {
            name,
            filename,
            content_type,
            data,
        });
    }
    push(&fake, r);
    axum::Json(json!({ "id": "4490709327384033" })).into_response()
}

async fn object(
    State(fake): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    push(&fake, record("GET", format!("/v23.0/{id}"), &headers));
    match id.as_str() {
        "4490709327384033" => axum::Json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/files/photo.jpg?mid=1&hash=abc", fake.base),
            "mime_type": "image/jpeg",
            "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "file_size": "61901",
            "id": "4490709327384033"
        }))
        .into_response(),
        "106540352242922" => axum::Json(json!({
            "verified_name": "Loja Exemplo",
            "display_phone_number": "+55 11 5555-0000",
            "id": "106540352242922",
            "quality_rating": "GREEN"
        }))
        .into_response(),
        _ => graph_error(
            StatusCode::NOT_FOUND,
            json!({ "message": "Unsupported get request.", "type": "GraphMethodException", "code": 100, "error_subcode": 33 }),
        ),
    }
}

async fn file(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    push(&fake, record("GET", "/files/photo.jpg".into(), &headers));
    if header_of(&headers, header::AUTHORIZATION).as_deref() == Some(&format!("Bearer {TOKEN}")) {
        (StatusCode::OK, vec![0xFF_u8, 0xD8, 0xFF, 0xE0, 1, 2, 3]).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "<html>no</html>").into_response()
    }
}

async fn spawn() -> (Shared, ChannelCreds) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let fake = Arc::new(Fake {
        base: base.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/v23.0/{pnid}/messages", post(messages))
        .route("/v23.0/{pnid}/media", post(upload))
        .route("/v23.0/{id}", get(object))
        .route("/files/photo.jpg", get(file))
        .with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let creds = ChannelCreds {
        base_url: format!("{base}/v23.0"),
        phone_number_id: "106540352242922".into(),
        access_token: TOKEN.into(),
    };
    (fake, creds)
}

fn client() -> GraphClient {
    GraphClient::new(Duration::from_secs(5))
}

fn seen(fake: &Fake) -> Vec<Recorded> {
    fake.seen.lock().expect("lock").clone()
}

fn with_pnid(creds: &ChannelCreds, pnid: &str) -> ChannelCreds {
    ChannelCreds {
        phone_number_id: pnid.into(),
        ..creds.clone()
    }
}

fn text(body: &str) -> OutboundMessage {
    OutboundMessage {
        to: "+55 11 98765-4321".into(),
        reply_to: Some("wamid.QUOTED".into()),
        content: OutboundContent::Text {
            body: body.into(),
            preview_url: false,
        },
    }
}

#[tokio::test]
async fn send_message_posts_json_with_bearer_and_parses_the_answer() {
    let (fake, creds) = spawn().await;
    let msg = text("Olá!");
    let resp = client().send_message(&creds, &msg).await.expect("sent");
    assert_eq!(
        resp,
        SendResponse {
            wamid: "wamid.HBgLNTUxMTk4NzY1NDMyMRUCABEYEjQ".into(),
            wa_id: Some("5511987654321".into()),
            message_status: Some("accepted".into()),
        }
    );
    let requests = seen(&fake);
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v23.0/106540352242922/messages");
    assert_eq!(r.authorization.as_deref(), Some("Bearer EAAG-secret-token"));
    assert_eq!(
        r.user_agent.as_deref(),
        Some(concat!("atende/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.json.as_ref(), Some(&msg.to_json()));
}

#[tokio::test]
async fn base_url_with_trailing_slash_still_works() {
    let (fake, creds) = spawn().await;
    let creds = ChannelCreds {
        base_url: format!("{}/", creds.base_url),
        ..creds
    };
    client()
        .send_message(&creds, &text("x"))
        .await
        .expect("sent");
    assert_eq!(seen(&fake)[0].path, "/v23.0/106540352242922/messages");
}

#[tokio::test]
async fn graph_error_body_is_parsed() {
    let (_fake, creds) = spawn().await;
    let err = client()
        .send_message(&with_pnid(&creds, "window"), &text("fora da janela"))
        .await
        .expect_err("131047");
    assert_eq!(
        err,
        GraphError::Api {
            http_status: 400,
            code: 131047,
            subcode: Some(2494010),
            message: "(#131047) Re-engagement message".into(),
            details: Some(
                "More than 24 hours have passed since the recipient last replied to the sender number."
                    .into()
            ),
            fbtrace_id: Some("AazTVYQ1".into()),
            user: None,
        }
    );
    assert_eq!(err.code(), Some(131047));
    assert_eq!(err.disposition(), Disposition::Permanent);

    let expired = client()
        .send_message(&with_pnid(&creds, "expired"), &text("x"))
        .await
        .expect_err("190");
    assert_eq!(expired.code(), Some(190));
    assert_eq!(expired.disposition(), Disposition::InvalidToken);
}

#[tokio::test]
async fn http_500_without_graph_body_is_unexpected_and_retried() {
    let (_fake, creds) = spawn().await;
    let err = client()
        .send_message(&with_pnid(&creds, "boom"), &text("x"))
        .await
        .expect_err("500");
    assert_eq!(
        err,
        GraphError::Unexpected {
            http_status: 500,
            body: "<html>Internal Server Error</html>".into()
        }
    );
    assert!(matches!(err.disposition(), Disposition::Retry { .. }));
}

#[tokio::test]
async fn success_without_json_is_unexpected() {
    let (_fake, creds) = spawn().await;
    let err = client()
        .send_message(&with_pnid(&creds, "garbled"), &text("x"))
        .await
        .expect_err("not json");
    assert!(matches!(
        err,
        GraphError::Unexpected {
            http_status: 200,
            ..
        }
    ));
    assert_eq!(err.disposition(), Disposition::Permanent);
}

#[tokio::test]
async fn slow_server_times_out() {
    let (_fake, creds) = spawn().await;
    let quick = GraphClient::new(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let err = quick
        .send_message(&with_pnid(&creds, "slow"), &text("x"))
        .await
        .expect_err("timeout");
    assert_eq!(err, GraphError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err.disposition(), Disposition::Retry { .. }));
}

#[tokio::test]
async fn refused_connection_is_a_network_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let creds = ChannelCreds {
        base_url: format!("http://{addr}/v23.0"),
        phone_number_id: "1".into(),
        access_token: TOKEN.into(),
    };
    let err = client()
        .send_message(&creds, &text("x"))
        .await
        .expect_err("refused");
    let GraphError::Network(message) = &err else {
        panic!("expected a network error, got {err:?}");
    };
    assert!(!message.contains(TOKEN));
    assert!(matches!(err.disposition(), Disposition::Retry { .. }));
}

#[tokio::test]
async fn invalid_base_url_is_not_sent() {
    let creds = ChannelCreds {
        base_url: "not a url".into(),
        phone_number_id: "1".into(),
        access_token: TOKEN.into(),
    };
    let err = client()
        .send_message(&creds, &text("x"))
        .await
        .expect_err("bad url");
    assert!(matches!(err, GraphError::Unexpected { http_status: 0, .. }));
    assert_eq!(err.disposition(), Disposition::Permanent);
}

#[tokio::test]
async fn mark_read_posts_a_read_receipt() {
    let (fake, creds) = spawn().await;
    client()
        .mark_read(&creds, "wamid.THEIRS")
        .await
        .expect("marked");
    client()
        .mark_read_with_typing(&creds, "wamid.THEIRS")
        .await
        .expect("marked");
    let requests = seen(&fake);
    assert_eq!(requests[0].path, "/v23.0/106540352242922/messages");
    assert_eq!(
        requests[0].json,
        Some(
            json!({ "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.THEIRS" })
        )
    );
    assert_eq!(
        requests[1].json.as_ref().map(|j| &j["typing_indicator"]),
        Some(&json!({ "type": "text" }))
    );
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer EAAG-secret-token")
    );
}

#[tokio::test]
async fn upload_media_sends_multipart_fields() {
    let (fake, creds) = spawn().await;
    let pdf = Bytes::from_static(b"%PDF-1.7 fake");
    let id = client()
        .upload_media(&creds, pdf.clone(), "application/pdf", "boleto.pdf")
        .await
        .expect("uploaded");
    assert_eq!(id, "4490709327384033");
    let r = &seen(&fake)[0];
    assert_eq!(r.path, "/v23.0/106540352242922/media");
    assert_eq!(r.authorization.as_deref(), Some("Bearer EAAG-secret-token"));
    assert!(
        r.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("multipart/form-data; boundary="))
    );
    let part = |name: &str| {
        r.parts
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no {name} part in {:?}", r.parts))
    };
    assert_eq!(part("messaging_product").data, b"whatsapp");
    assert_eq!(part("type").data, b"application/pdf");
    let file = part("file");
    assert_eq!(file.filename.as_deref(), Some("boleto.pdf"));
    assert_eq!(file.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(file.data, pdf.to_vec());
}

#[tokio::test]
async fn upload_with_invalid_mime_is_not_sent() {
    let (fake, creds) = spawn().await;
    let err = client()
        .upload_media(&creds, Bytes::from_static(b"x"), "not a mime", "x.bin")
        .await
        .expect_err("bad mime");
    assert!(matches!(err, GraphError::Unexpected { http_status: 0, .. }));
    assert!(seen(&fake).is_empty());
}

#[tokio::test]
async fn media_info_then_download_with_bearer() {
    let (fake, creds) = spawn().await;
    let c = client();
    let info = c
        .media_info(&creds, "4490709327384033")
        .await
        .expect("info");
    assert_eq!(
        info.url,
        format!("{}/files/photo.jpg?mid=1&hash=abc", fake.base)
    );
    assert_eq!(info.mime_type.as_deref(), Some("image/jpeg"));
    assert_eq!(info.file_size, Some(61901));
    assert!(info.sha256.is_some());
    let bytes = c.download(&creds, &info.url).await.expect("downloaded");
    assert_eq!(&bytes[..], &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
    let requests = seen(&fake);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/v23.0/4490709327384033");
    assert_eq!(requests[1].path, "/files/photo.jpg");
    assert_eq!(
        requests[1].authorization.as_deref(),
        Some("Bearer EAAG-secret-token")
    );

    let wrong_token = ChannelCreds {
        access_token: "other".into(),
        ..creds.clone()
    };
    let err = c.download(&wrong_token, &info.url).await.expect_err("401");
    assert!(matches!(
        err,
        GraphError::Unexpected {
            http_status: 401,
            ..
        }
    ));
}

#[tokio::test]
async fn unknown_media_is_a_graph_error() {
    let (_fake, creds) = spawn().await;
    let err = client().media_info(&creds, "999").await.expect_err("404");
    assert_eq!(err.code(), Some(100));
    assert_eq!(err.http_status(), Some(404));
}

#[tokio::test]
async fn media_id_cannot_escape_its_path_segment() {
    let (fake, creds) = spawn().await;
    let _ = client().media_info(&creds, "../files/photo.jpg").await;
    let path = &seen(&fake)[0].path;
    assert!(path.starts_with("/v23.0/"), "{path}");
    assert!(!path.starts_with("/files"), "{path}");
}

#[tokio::test]
async fn phone_number_returns_the_profile() {
    let (fake, creds) = spawn().await;
    let profile = client().phone_number(&creds).await.expect("profile");
    assert_eq!(profile["verified_name"], "Loja Exemplo");
    assert_eq!(seen(&fake)[0].path, "/v23.0/106540352242922");
}

#[test]
fn debug_redacts_the_token() {
    let creds = ChannelCreds::new("106540352242922", TOKEN);
    assert_eq!(creds.base_url, DEFAULT_BASE_URL);
    let shown = format!("{creds:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("<redacted>") && shown.contains("106540352242922"));
}
