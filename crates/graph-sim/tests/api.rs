//! End-to-end tests over real HTTP on 127.0.0.1: a simulator, a reqwest
//! client playing Atende's Graph client, and a tiny axum webhook receiver.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use graph_sim::{AutoStatuses, Customer, Endpoint, Fault, GraphSim, PhoneNumber, SimConfig, sign};
use serde_json::{Value, json};
use tokio::sync::watch;

const SECRET: &str = "app-secret";
const TOKEN: &str = "good-token";
const PNID: &str = "106540352242922";
const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
struct Hit {
    signature: Option<String>,
    body: Bytes,
    json: Value,
}

#[derive(Clone)]
struct ReceiverState {
    hits: Arc<Mutex<Vec<Hit>>>,
    changed: Arc<watch::Sender<usize>>,
    /// Statuses to answer, in order; 200 once exhausted.
    answers: Arc<Mutex<Vec<u16>>>,
    answered: Arc<AtomicU16>,
}

/// Stands in for Atende's webhook endpoint: records raw bodies and headers.
struct Receiver {
    url: String,
    state: ReceiverState,
}

async fn receive(State(st): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let json: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
    let signature = headers
        .get("x-hub-signature-256")
        .map(|v| v.to_str().unwrap().to_owned());
    let n = {
        let mut hits = st.hits.lock().unwrap();
        hits.push(Hit {
            signature,
            body,
            json,
        });
        hits.len()
    };
    st.changed.send_replace(n);
    let code = {
        let mut answers = st.answers.lock().unwrap();
        if answers.is_empty() {
            200
        } else {
            answers.remove(0)
        }
    };
    st.answered.store(code, Ordering::SeqCst);
    StatusCode::from_u16(code).unwrap()
}

impl Receiver {
    async fn start() -> Receiver {
        let state = ReceiverState {
            hits: Arc::default(),
            changed: Arc::new(watch::Sender::new(0)),
            answers: Arc::default(),
            answered: Arc::default(),
        };
        let app = Router::new()
            .route("/webhooks/whatsapp", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/webhooks/whatsapp",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }

    async fn wait(&self, n: usize) -> Vec<Hit> {
        let mut rx = self.state.changed.subscribe();
        let _ = tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n)).await;
        self.hits()
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }
}

fn config() -> SimConfig {
    SimConfig::new(SECRET, TOKEN, PNID)
}

async fn sim_with_receiver() -> (GraphSim, Receiver) {
    let rx = Receiver::start().await;
    let mut cfg = config();
    cfg.webhook_url = Some(rx.url.clone());
    (GraphSim::start(cfg).await.unwrap(), rx)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn post_json(sim: &GraphSim, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}/{path}", sim.base_url()))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn send(sim: &GraphSim, body: Value) -> (u16, Value) {
    post_json(sim, &format!("{PNID}/messages"), Some(TOKEN), body).await
}

fn text_to(to: &str, body: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
    })
}

fn status_of(hit: &Hit) -> &Value {
    &hit.json["entry"][0]["changes"][0]["value"]["statuses"][0]
}

#[tokio::test]
async fn send_text_answers_like_meta_and_posts_signed_statuses_in_order() {
    let (sim, rx) = sim_with_receiver().await;
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert!(sim.base_url().ends_with("/v23.0"));

    let (status, body) = send(&sim, text_to("+55 11 98765-4321", "Olá, tudo bem? 😀")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"][0]["input"], "+55 11 98765-4321");
    assert_eq!(body["contacts"][0]["wa_id"], "5511987654321");
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    assert!(wamid.starts_with("wamid.HBgM"), "{wamid}");
    assert!(body["messages"][0].get("message_status").is_none());

    let sent = sim.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].wamid, wamid);
    assert_eq!(sent[0].phone_number_id, PNID);
    assert_eq!(sent[0].to, "+55 11 98765-4321");
    assert_eq!(sent[0].body["text"]["body"], "Olá, tudo bem? 😀");

    let hits = rx.wait(3).await;
    assert_eq!(hits.len(), 3);
    let order: Vec<&str> = hits
        .iter()
        .map(|h| status_of(h)["status"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["sent", "delivered", "read"]);
    for h in &hits {
        assert_eq!(
            h.signature.as_deref(),
            Some(sign(SECRET, &h.body).as_str()),
            "signature over the raw body"
        );
        let s = status_of(h);
        assert_eq!(s["id"], wamid.as_str());
        assert_eq!(s["recipient_id"], "5511987654321");
        assert!(s["timestamp"].as_str().unwrap().parse::<u64>().is_ok());
        assert_eq!(s["pricing"]["pricing_model"], "PMP");
        let value = &h.json["entry"][0]["changes"][0]["value"];
        assert_eq!(value["metadata"]["phone_number_id"], PNID);
        assert_eq!(h.json["entry"][0]["id"], format!("WABA-{PNID}"));
    }
    assert!(status_of(&hits[0])["conversation"]["expiration_timestamp"].is_string());

    let deliveries = sim.wait_for_status_deliveries(3, WAIT).await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.http_status == Some(200) && d.attempts == 1)
    );
}

#[tokio::test]
async fn auth_errors_are_meta_shaped() {
    let sim = GraphSim::start(config()).await.unwrap();
    let path = format!("{PNID}/messages");

    let (status, body) = post_json(&sim, &path, Some("wrong"), text_to("5511987654321", "x")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid OAuth access token")
    );
    assert!(body["error"]["fbtrace_id"].is_string());

    let (status, body) = post_json(&sim, &path, None, text_to("5511987654321", "x")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 190);

    // The token is checked before the body, as on the real API.
    let (status, _) = post_json(&sim, &path, Some("wrong"), json!({})).await;
    assert_eq!(status, 401);
    assert!(sim.sent_messages().is_empty());
}

#[tokio::test]
async fn unknown_phone_number_and_unknown_paths() {
    let sim = GraphSim::start(config()).await.unwrap();
    let (status, body) = post_json(
        &sim,
        "999/messages",
        Some(TOKEN),
        text_to("5511987654321", "x"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(body["error"]["error_subcode"], 33);
    assert_eq!(body["error"]["type"], "GraphMethodException");

    let resp = client()
        .get(format!("{}/{PNID}/nothing/here", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 2500);

    // Any /v{N}.0 works.
    let url = sim.base_url().replace("/v23.0", "/v21.0");
    let resp = client()
        .post(format!("{url}/{PNID}/messages"))
        .bearer_auth(TOKEN)
        .json(&text_to("5511987654321", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn send_validation_errors() {
    let sim = GraphSim::start(config()).await.unwrap();
    let cases = [
        (
            json!({"to": "5511987654321", "type": "text", "text": {"body": "x"}}),
            100,
        ),
        (
            json!({"messaging_product": "sms", "to": "5511987654321", "text": {"body": "x"}}),
            100,
        ),
        (
            json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
            100,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "image"}),
            131008,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "text", "text": {}}),
            131008,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "poll", "poll": {}}),
            131009,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "not a number", "type": "text", "text": {"body": "x"}}),
            131009,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "image", "image": {}}),
            131008,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "template",
                "template": {"name": "hello"}}),
            131008,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "interactive",
                "interactive": {"type": "button", "body": {"text": "Escolha"}, "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "1", "title": "Um"}},
                    {"type": "reply", "reply": {"id": "2", "title": "Dois"}},
                    {"type": "reply", "reply": {"id": "3", "title": "Três"}},
                    {"type": "reply", "reply": {"id": "4", "title": "Quatro"}}]}}}),
            131009,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "interactive",
                "interactive": {"type": "button", "body": {"text": "Escolha"}, "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "1", "title": "Um título longo demais aqui"}}]}}}),
            131009,
        ),
        (
            json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "interactive",
                "interactive": {"type": "list", "body": {"text": "Menu"}, "action": {"button": "Ver",
                    "sections": [{"rows": (0..11).map(|i| json!({"id": i.to_string(), "title": "r"})).collect::<Vec<_>>()}]}}}),
            131009,
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = send(&sim, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} -> {answer}");
    }
    assert!(sim.sent_messages().is_empty());

    // `type` defaults to text.
    let (status, _) = send(
        &sim,
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "text": {"body": "x"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sim.sent_messages()[0].kind(), "text");

    // A valid list and reply buttons pass.
    let (status, answer) = send(
        &sim,
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "interactive",
               "interactive": {"type": "list", "header": {"type": "text", "text": "Atende"},
                   "body": {"text": "Menu"}, "footer": {"text": "rodapé"},
                   "action": {"button": "Ver opções", "sections": [
                       {"title": "A", "rows": [{"id": "a1", "title": "Financeiro", "description": "boletos"}]},
                       {"title": "B", "rows": [{"id": "b1", "title": "Suporte"}]}]}}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn template_sends_are_accepted_with_status() {
    let sim = GraphSim::start(config()).await.unwrap();
    let (status, body) = send(
        &sim,
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "template",
               "template": {"name": "pedido_atualizado", "language": {"code": "pt_BR"},
                   "components": [{"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["message_status"], "accepted");
}

async fn upload(sim: &GraphSim, bytes: &[u8], mime: &str, filename: &str) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name(filename.to_owned())
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", mime.to_owned())
        .part("file", part);
    let resp = client()
        .post(format!("{}/{PNID}/media", sim.base_url()))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn media_info(sim: &GraphSim, id: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}/{id}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn upload_info_download_round_trip() {
    let sim = GraphSim::start(config()).await.unwrap();
    let pdf: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();

    let (status, body) = upload(&sim, &pdf, "application/pdf", "boleto.pdf").await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.bytes().all(|b| b.is_ascii_digit()));

    let stored = sim.uploaded_media(&id).unwrap();
    assert_eq!(stored.bytes.as_ref(), pdf.as_slice());
    assert_eq!(stored.mime_type, "application/pdf");
    assert_eq!(stored.filename.as_deref(), Some("boleto.pdf"));
    assert_eq!(sim.uploads().len(), 1);

    let (status, info) = media_info(&sim, &id).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["messaging_product"], "whatsapp");
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["mime_type"], "application/pdf");
    assert_eq!(info["file_size"], pdf.len());
    assert_eq!(info["sha256"], stored.sha256_hex.as_str());
    assert_eq!(stored.sha256_hex.len(), 64);
    let url = info["url"].as_str().unwrap();
    assert!(url.contains(&format!("/_media/{id}?exp=")), "{url}");

    let resp = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), pdf.as_slice());

    let resp = client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client().get(url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let tampered = url.replace("sig=", "sig=0");
    let resp = client()
        .get(tampered)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Delete, then the id is gone.
    let resp = client()
        .delete(format!("{}/{id}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["success"], true);
    let (status, body) = media_info(&sim, &id).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 100);
    assert!(sim.uploads().is_empty());
    let resp = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn upload_rejects_bad_requests() {
    let sim = GraphSim::start(config()).await.unwrap();
    let (status, body) = upload(&sim, b"PK..", "application/zip", "a.zip").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 100);

    let big = vec![0u8; 5 * 1024 * 1024 + 1];
    let (status, body) = upload(&sim, &big, "image/jpeg", "big.jpg").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 131053);

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![1, 2, 3])
            .file_name("a.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let resp = client()
        .post(format!("{}/{PNID}/media", sim.base_url()))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 100);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messaging_product")
    );
    assert!(sim.uploads().is_empty());
}

#[tokio::test]
async fn media_urls_expire() {
    let mut cfg = config();
    cfg.media_url_ttl = Duration::from_millis(400);
    let sim = GraphSim::start(cfg).await.unwrap();
    let id = sim.add_customer_media(Bytes::from_static(b"OggS voice"), "audio/ogg; codecs=opus");

    let (_, info) = media_info(&sim, &id).await;
    let url = info["url"].as_str().unwrap().to_owned();
    assert_eq!(info["mime_type"], "audio/ogg; codecs=opus");
    let resp = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"OggS voice");

    tokio::time::sleep(Duration::from_millis(450)).await;
    let resp = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // A fresh GET /{media-id} gives a fresh URL.
    let (_, info) = media_info(&sim, &id).await;
    let resp = client()
        .get(info["url"].as_str().unwrap())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn faults_are_consumed_in_order_then_normal_behaviour_resumes() {
    let sim = GraphSim::start(config()).await.unwrap();
    sim.inject(
        Endpoint::SendMessage,
        vec![
            Fault::ServerError,
            Fault::RateLimited,
            Fault::GraphError {
                http_status: 400,
                code: 131047,
                message: "Re-engagement message".into(),
            },
            Fault::Delay(Duration::from_millis(60)),
        ],
    );
    let msg = text_to("5511987654321", "x");

    let (status, body) = send(&sim, msg.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (500, Some(131000))
    );
    let (status, body) = send(&sim, msg.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (429, Some(130429))
    );
    let (status, body) = send(&sim, msg.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(131047))
    );
    assert_eq!(
        body["error"]["error_data"]["details"],
        "Re-engagement message"
    );

    let started = std::time::Instant::now();
    let (status, _) = send(&sim, msg.clone()).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(60));

    let (status, _) = send(&sim, msg.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(sim.sent_messages().len(), 2);
    assert_eq!(sim.request_count(Endpoint::SendMessage), 5);
    assert_eq!(sim.pending_faults(Endpoint::SendMessage), 0);

    // Faults for Any hit whichever endpoint comes next.
    sim.inject(
        Endpoint::Any,
        vec![Fault::GraphError {
            http_status: 401,
            code: 190,
            message: "Error validating access token: Session has expired".into(),
        }],
    );
    let (status, body) = media_info(&sim, "123").await;
    assert_eq!((status, body["error"]["code"].as_i64()), (401, Some(190)));
    let (status, _) = send(&sim, msg).await;
    assert_eq!(status, 200);
    assert_eq!(sim.request_count(Endpoint::Any), 7);
}

#[tokio::test]
async fn drop_connection_closes_without_answer() {
    let sim = GraphSim::start(config()).await.unwrap();
    sim.inject(Endpoint::SendMessage, vec![Fault::DropConnection]);
    let err = client()
        .post(format!("{}/{PNID}/messages", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&text_to("5511987654321", "x"))
        .send()
        .await
        .expect_err("the connection must close unanswered");
    assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    assert!(sim.sent_messages().is_empty());

    let (status, _) = send(&sim, text_to("5511987654321", "x")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn accept_then_fail_reports_failed_status() {
    let (sim, rx) = sim_with_receiver().await;
    sim.inject(
        Endpoint::SendMessage,
        vec![Fault::AcceptThenFail {
            code: 131047,
            message: "Re-engagement message".into(),
        }],
    );
    let (status, body) = send(&sim, text_to("5511987654321", "fora da janela")).await;
    assert_eq!(status, 200);
    let wamid = body["messages"][0]["id"].as_str().unwrap();

    let hits = rx.wait(1).await;
    let s = status_of(&hits[0]);
    assert_eq!(s["id"], wamid);
    assert_eq!(s["status"], "failed");
    assert_eq!(s["errors"][0]["code"], 131047);
    assert_eq!(s["errors"][0]["title"], "Re-engagement message");
    assert!(s.get("pricing").is_none());

    // An unknown media id is accepted and then fails with 131053.
    let (status, _) = send(
        &sim,
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "image",
               "image": {"id": "404404404"}}),
    )
    .await;
    assert_eq!(status, 200);
    let hits = rx.wait(2).await;
    assert_eq!(status_of(&hits[1])["errors"][0]["code"], 131053);
    assert_eq!(hits.len(), 2);
}

#[tokio::test]
async fn mark_as_read_is_recorded_apart_from_sends() {
    let sim = GraphSim::start(config()).await.unwrap();
    sim.inject(Endpoint::SendMessage, vec![Fault::ServerError]);
    let (status, body) = send(
        &sim,
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1",
               "typing_indicator": {"type": "text"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"success": true}));
    assert_eq!(sim.mark_read_calls(), ["wamid.IN1"]);
    assert_eq!(sim.wait_for_mark_read(1, WAIT).await.len(), 1);
    assert!(sim.sent_messages().is_empty());
    assert_eq!(sim.request_count(Endpoint::MarkRead), 1);
    assert_eq!(sim.request_count(Endpoint::SendMessage), 0);
    assert_eq!(sim.pending_faults(Endpoint::SendMessage), 1);

    let (status, body) = send(
        &sim,
        json!({"messaging_product": "whatsapp", "status": "read"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 100);
}

#[tokio::test]
async fn send_histogram_and_throughput_limit() {
    let sim = GraphSim::start(config()).await.unwrap();
    for i in 0..5 {
        let (status, _) = send(&sim, text_to("5511987654321", &format!("m{i}"))).await;
        assert_eq!(status, 200);
    }
    assert_eq!(sim.max_sends_in_any_second(PNID), 5);
    assert_eq!(sim.max_sends_in_any_second("other"), 0);

    sim.set_throughput_limit(Some(6));
    let (status, _) = send(&sim, text_to("5511987654321", "6th")).await;
    assert_eq!(status, 200);
    let (status, body) = send(&sim, text_to("5511987654321", "7th")).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], 130429);
    assert_eq!(sim.max_sends_in_any_second(PNID), 6);
    assert_eq!(sim.sent_messages().len(), 6);
}

#[tokio::test]
async fn wait_for_sent_wakes_on_sends_and_times_out() {
    let sim = GraphSim::start(config()).await.unwrap();
    let waiter = {
        let sim = sim.clone();
        tokio::spawn(async move { sim.wait_for_sent(2, WAIT).await })
    };
    send(&sim, text_to("5511987654321", "a")).await;
    send(&sim, text_to("5511987654321", "b")).await;
    let got = waiter.await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body["text"]["body"], "b");

    let started = std::time::Instant::now();
    let got = sim.wait_for_sent(3, Duration::from_millis(50)).await;
    assert_eq!(got.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn phone_number_info_and_wa_id_normalisation() {
    let mut cfg = config();
    cfg.phone_numbers
        .push(PhoneNumber::new("2002", "5521900000000", "WABA-RJ"));
    cfg.auto_statuses = AutoStatuses::NONE;
    let sim = GraphSim::start(cfg).await.unwrap();

    let resp = client()
        .get(format!("{}/{PNID}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], PNID);
    assert_eq!(body["display_phone_number"], "5511900000000");
    assert_eq!(body["quality_rating"], "GREEN");
    assert!(body["verified_name"].is_string());

    let resp = client()
        .get(format!(
            "{}/2002?fields=display_phone_number",
            sim.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"display_phone_number": "5521900000000", "id": "2002"})
    );
    assert_eq!(sim.request_count(Endpoint::PhoneNumber), 2);

    sim.set_wa_id_for("+55 11 98765-4321", "551187654321");
    let (_, body) = send(&sim, text_to("+5511987654321", "x")).await;
    assert_eq!(body["contacts"][0]["wa_id"], "551187654321");
}

#[tokio::test]
async fn failing_receiver_gets_retries() {
    let (sim, rx) = sim_with_receiver().await;
    sim.set_webhook_retries(2);
    rx.state.answers.lock().unwrap().extend([500, 503]);
    let (status, _) = send(&sim, text_to("5511987654321", "x")).await;
    assert_eq!(status, 200);
    // sent x3 (500, 503, 200), then delivered, read.
    let hits = rx.wait(5).await;
    let order: Vec<&str> = hits
        .iter()
        .map(|h| status_of(h)["status"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["sent", "sent", "sent", "delivered", "read"]);
    let d = sim.wait_for_status_deliveries(3, WAIT).await;
    assert_eq!((d[0].attempts, d[0].http_status), (3, Some(200)));
}

#[tokio::test]
async fn customer_messages_through_rust_and_control_api() {
    let (sim, rx) = sim_with_receiver().await;
    let maria = Customer::new("5511987654321", "Maria");

    // Rust API: builder + post.
    let (wamid, payload) = sim
        .webhook_builder()
        .text(&maria, "Quero falar com atendente ✋");
    let (status, _) = sim.post_to_webhook(&payload).await.unwrap();
    assert_eq!(status, 200);
    let hit = &rx.wait(1).await[0];
    assert_eq!(
        hit.signature.as_deref(),
        Some(sign(SECRET, &hit.body).as_str())
    );
    assert!(hit.body.is_ascii(), "non-ASCII escaped like Meta");
    assert_eq!(
        hit.json["entry"][0]["changes"][0]["value"]["messages"][0]["id"],
        wamid.as_str()
    );

    // Control API: an image with real bytes, replying to something.
    let jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3];
    use base64::Engine;
    let resp = client()
        .post(format!("{}/_sim/customer/send", origin(&sim)))
        .json(&json!({
            "from": "5511987654321", "name": "Maria", "type": "image",
            "data_base64": base64::engine::general_purpose::STANDARD.encode(&jpeg),
            "caption": "comprovante", "context": "wamid.ORIGINAL"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["status"], 200);
    let hits = rx.wait(2).await;
    let m = &hits[1].json["entry"][0]["changes"][0]["value"]["messages"][0];
    assert_eq!(m["id"], answer["wamid"]);
    assert_eq!(m["type"], "image");
    assert_eq!(m["image"]["caption"], "comprovante");
    assert_eq!(m["context"]["id"], "wamid.ORIGINAL");
    let media_id = m["image"]["id"].as_str().unwrap();
    let (status, info) = media_info(&sim, media_id).await;
    assert_eq!(status, 200);
    let bytes = client()
        .get(info["url"].as_str().unwrap())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), jpeg.as_slice());

    // Control API: faults and the sent list.
    let resp = client()
        .post(format!("{}/_sim/faults", origin(&sim)))
        .json(&json!({"endpoint": "send_message", "faults": [
            {"kind": "graph_error", "http_status": 400, "code": 131026},
            {"kind": "delay", "ms": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["pending"], 2);
    let (status, body) = send(&sim, text_to("5511987654321", "x")).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(131026))
    );
    let (status, _) = send(&sim, text_to("5511987654321", "x")).await;
    assert_eq!(status, 200);
    let sent: Value = client()
        .get(format!("{}/_sim/sent", origin(&sim)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent.as_array().unwrap().len(), 1);
    assert!(sent[0]["received_at"].as_u64().unwrap() > 1_700_000_000_000);

    let bad = client()
        .post(format!("{}/_sim/customer/send", origin(&sim)))
        .json(&json!({"from": "5511987654321", "type": "template_button", "payload": "P", "text": "T"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

fn origin(sim: &GraphSim) -> String {
    sim.base_url().trim_end_matches("/v23.0").to_owned()
}

#[tokio::test]
async fn router_can_be_nested_under_a_prefix() {
    let sim = GraphSim::new(config()).unwrap();
    let app = Router::new().nest("/graph", sim.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    sim.set_base_url(format!("http://{addr}/graph/v23.0"));

    let (status, _) = send(&sim, text_to("5511987654321", "x")).await;
    assert_eq!(status, 200);
    let id = sim.add_customer_media(Bytes::from_static(b"%PDF-1.4"), "application/pdf");
    let (status, info) = media_info(&sim, &id).await;
    assert_eq!(status, 200);
    let url = info["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{addr}/graph/_media/")),
        "{url}"
    );
    let resp = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"%PDF-1.4");

    // Without our accept loop a dropped connection is a broken body.
    sim.inject(Endpoint::SendMessage, vec![Fault::DropConnection]);
    let result = client()
        .post(format!("{}/{PNID}/messages", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&text_to("5511987654321", "x"))
        .send()
        .await;
    let failed = match result {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed);
}

#[tokio::test]
async fn templates_can_be_managed_and_enforced() {
    let (sim, rx) = sim_with_receiver().await;
    let waba = format!("WABA-{PNID}");
    let path = format!("{waba}/message_templates");
    sim.set_new_template_status("pending");

    let create = |name: &str, lang: &str| {
        json!({"name": name, "language": lang, "category": "utility", "components": [
            {"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} saiu para entrega.",
             "example": {"body_text": [["Maria", "#123"]]}},
            {"type": "FOOTER", "text": "Atende"}]})
    };
    let (status, body) =
        post_json(&sim, &path, Some(TOKEN), create("pedido_enviado", "pt_BR")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["category"], "UTILITY");
    let id = body["id"].as_str().unwrap().to_owned();

    let (status, body) =
        post_json(&sim, &path, Some(TOKEN), create("pedido_enviado", "pt_BR")).await;
    assert_eq!(
        (status, body["error"]["error_subcode"].as_i64()),
        (400, Some(2388024))
    );
    let (status, _) = post_json(&sim, &path, Some(TOKEN), create("Nome Ruim", "pt_BR")).await;
    assert_eq!(status, 400);
    for (name, lang) in [
        ("pedido_enviado", "en_US"),
        ("boas_vindas", "pt_BR"),
        ("cobranca", "pt_BR"),
    ] {
        let (status, _) = post_json(&sim, &path, Some(TOKEN), create(name, lang)).await;
        assert_eq!(status, 200);
    }

    // Listing pages through all four with a cursor.
    let list_url = format!(
        "{}/{path}?limit=3&fields=name,status,language",
        sim.base_url()
    );
    let page: Value = client()
        .get(&list_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(
        page["data"][0],
        json!({"name": "pedido_enviado", "status": "PENDING", "language": "pt_BR", "id": id})
    );
    let next = page["paging"]["next"].as_str().unwrap();
    let page: Value = client()
        .get(next)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert!(page["paging"].get("next").is_none());
    let filtered: Value = client()
        .get(format!("{}/{path}?name=pedido", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["data"].as_array().unwrap().len(), 2);

    // Approval posts the status webhook.
    let answer = sim
        .set_template_status(&id, "APPROVED", None)
        .await
        .unwrap();
    assert_eq!(answer.map(|a| a.0), Some(200));
    let hit = &rx.wait(1).await[0];
    assert_eq!(
        hit.signature.as_deref(),
        Some(sign(SECRET, &hit.body).as_str())
    );
    let change = &hit.json["entry"][0]["changes"][0];
    assert_eq!(change["field"], "message_template_status_update");
    assert_eq!(change["value"]["event"], "APPROVED");
    assert_eq!(
        change["value"]["message_template_id"]
            .as_u64()
            .unwrap()
            .to_string(),
        id
    );
    let one: Value = client()
        .get(format!("{}/{id}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["status"], "APPROVED");
    assert_eq!(one["components"][0]["type"], "BODY");

    // Enforcement.
    sim.set_enforce_templates(true);
    let tpl = |name: &str, params: usize| {
        let parameters: Vec<Value> = (0..params)
            .map(|i| json!({"type": "text", "text": format!("p{i}")}))
            .collect();
        json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "template",
               "template": {"name": name, "language": {"code": "pt_BR"},
                            "components": [{"type": "body", "parameters": parameters}]}})
    };
    let (status, body) = send(&sim, tpl("nao_existe", 0)).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (404, Some(132001))
    );
    let (status, body) = send(&sim, tpl("boas_vindas", 2)).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (404, Some(132001)),
        "pending is not sendable"
    );
    let (status, body) = send(&sim, tpl("pedido_enviado", 1)).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(132000))
    );
    let (status, body) = send(&sim, tpl("pedido_enviado", 2)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    sim.set_template_status(&id, "PAUSED", Some("LOW_QUALITY"))
        .await
        .unwrap();
    let (status, body) = send(&sim, tpl("pedido_enviado", 2)).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(132015))
    );

    // Deleting by name removes every language.
    let resp = client()
        .delete(format!("{}/{path}?name=pedido_enviado", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sim.templates().len(), 2);
    assert_eq!(sim.request_count(Endpoint::Templates), 11);
}
