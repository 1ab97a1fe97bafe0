//! One place for what every API test needs: `spawn_app`, signed webhooks, authenticated API calls
//! and deadline-bounded waits.

use std::future::Future;
use std::time::{Duration, Instant};

use graph_sim::{Customer, GraphSim, SimConfig, WebhookBuilder};
use serde_json::Value;
use server::app::Application;
use server::config::Config;
use server::state::AppState;
use store::Store;
use store::channels::NewChannel;

pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const WABA_ID: &str = "102290129340398";
pub const APP_SECRET: &str = "test-app-secret";
pub const ACCESS_TOKEN: &str = "EAAtest-access-token";
pub const VERIFY_TOKEN: &str = "verify-me";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend for each async fn taking a `TestApp`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub store: Store,
    pub sim: GraphSim,
    pub channel_id: i64,
    pub builder: WebhookBuilder,
    pub http: reqwest::Client,
    /// An admin API token, for calls that are not about authentication itself.
    pub token: String,
    pub admin_email: String,
    pub admin_password: String,
    pub database_url: String,
    _data_dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
}

/// The PostgreSQL URL tests use, or None (with a printed notice) when PostgreSQL is unreachable and
/// this is not CI. Under CI=true an unreachable PostgreSQL fails the test.
pub async fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("ATENDE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(&url)).await {
        Ok(Ok(pool)) => {
            pool.close().await;
            Some(url)
        }
        outcome => {
            let why = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PostgreSQL is required under CI=true but {url} is unreachable: {why}");
            }
            eprintln!("NOTICE: skipping a PostgreSQL test: {url} is unreachable ({why})");
            None
        }
    }
}

/// A fresh database for one test, dropped when the test ends.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> PgDatabase {
        let name = format!("atende_test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(admin_url)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .expect("create test database");
        pool.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(admin_url);
        PgDatabase {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop cannot await; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                        pool.close().await;
                    }
                });
            }
        })
        .join();
    }
}

/// The database URL for a fresh test database of `backend`, or None when skipped.
pub async fn fresh_database(
    backend: Backend,
    dir: &std::path::Path,
) -> Option<(String, Option<PgDatabase>)> {
    match backend {
        Backend::Sqlite => Some((
            format!("sqlite://{}", dir.join("atende.db").display()),
            None,
        )),
        Backend::Postgres => {
            let admin = postgres_admin_url().await?;
            let db = PgDatabase::create(&admin).await;
            Some((db.url.clone(), Some(db)))
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a child process that must be told its
/// port (`atende serve` does not print the one it got). Another process may take it in between:
/// callers retry when the child cannot listen.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// `spawn_app` with the test configuration adjusted first (bot timers, seeding...).
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    init_tracing();
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg) = fresh_database(backend, data_dir.path()).await?;
    let mut config = Config::for_tests(data_dir.path(), &database_url);
    adjust(&mut config);
    let admin_email = config.admin_email.clone();
    let application = Application::build(config).await.expect("build app");
    let admin_password = application
        .first_admin_password()
        .expect("first admin")
        .to_owned();
    let address = format!("http://127.0.0.1:{}", application.port());
    let state = application.state();
    tokio::spawn(application.run_until_stopped());

    let mut sim_config = SimConfig::new(APP_SECRET, ACCESS_TOKEN, PHONE_NUMBER_ID);
    sim_config.webhook_url = Some(format!("{address}/webhooks/whatsapp"));
    sim_config.phone_numbers[0].waba_id = WABA_ID.to_owned();
    let sim = GraphSim::start(sim_config).await.expect("start graph-sim");
    let secrets = state.channels.secrets();
    let channel = state
        .store
        .create_channel(&NewChannel {
            name: "Atendimento".into(),
            phone_number_id: PHONE_NUMBER_ID.into(),
            waba_id: WABA_ID.into(),
            display_phone_number: Some("5511900000000".into()),
            access_token_enc: secrets.encrypt(ACCESS_TOKEN),
            app_secret_enc: secrets.encrypt(APP_SECRET),
            verify_token_enc: secrets.encrypt(VERIFY_TOKEN),
            graph_base_url: sim.base_url(),
            rate_limit_per_sec: 80,
            mark_read: true,
            is_simulator: false,
        })
        .await
        .expect("create channel");
    state.channels.reload().await.expect("reload channels");
    let token = server::passwords::random_token();
    state
        .store
        .create_api_token("tests", &server::passwords::token_hash(&token), None)
        .await
        .expect("token");

    Some(TestApp {
        address,
        store: state.store.clone(),
        state,
        sim,
        channel_id: channel.id,
        builder: WebhookBuilder::new(WABA_ID, PHONE_NUMBER_ID, "5511900000000"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        token,
        admin_email,
        admin_password,
        database_url,
        _data_dir: data_dir,
        _pg: pg,
    })
}

fn init_tracing() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .try_init();
        }
    });
}

impl TestApp {
    /// Another Atende instance on the same database (and data dir, hence the same secret key), as
    /// when several processes run behind a load balancer. Returns its base URL.
    pub async fn spawn_second_instance(&self) -> String {
        let config = Config::for_tests(self._data_dir.path(), &self.database_url);
        let application = Application::build(config)
            .await
            .expect("build second instance");
        let address = format!("http://127.0.0.1:{}", application.port());
        tokio::spawn(application.run_until_stopped());
        address
    }

    pub fn customer(&self, wa_id: &str, name: &str) -> Customer {
        Customer::new(wa_id, name)
    }

    /// POSTs `payload` to the webhook as Meta does (Meta's JSON escaping, signed with the app secret).
    pub async fn post_webhook(&self, payload: &Value) -> reqwest::Response {
        let body = graph_sim::to_meta_json(payload);
        self.post_webhook_bytes(&body, Some(&graph_sim::sign(APP_SECRET, &body)))
            .await
    }

    pub async fn post_webhook_bytes(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.address))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send().await.expect("webhook request")
    }

    /// GET an API path with the admin token; panics unless 200.
    pub async fn api_get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("api request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn api_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.address))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("api request")
    }

    /// Waits (bounded) until every stored webhook has been processed.
    pub async fn inbox_drained(&self) {
        let store = self.store.clone();
        wait_until("the inbox to drain", Duration::from_secs(20), || {
            let store = store.clone();
            async move {
                store
                    .inbox_counts()
                    .await
                    .map(|(pending, _, _)| pending == 0)
                    .unwrap_or(false)
            }
        })
        .await;
    }

    /// The messages of the (single open) conversation of `wa_id`.
    pub async fn messages_of(&self, wa_id: &str) -> Vec<Value> {
        let list = self.api_get("/api/conversations?limit=500").await;
        let conversation = list["conversations"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["contact_wa_id"] == wa_id))
            .unwrap_or_else(|| panic!("no conversation for {wa_id}: {list}"))
            .clone();
        let page = self
            .api_get(&format!(
                "/api/conversations/{}/messages?limit=200",
                conversation["id"]
            ))
            .await;
        page["messages"].as_array().cloned().unwrap_or_default()
    }
}

/// Polls `check` until it is true or `timeout` passes (then panics naming `what`). Not a sleep:
/// it returns as soon as the condition holds.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

impl TestApp {
    /// A customer writes "Oi" and the conversation is open; returns its id.
    pub async fn open_conversation(&self, wa_id: &str) -> i64 {
        let customer = self.customer(wa_id, "Cliente Teste");
        let (_, payload) = self.builder.text(&customer, "Oi");
        assert_eq!(self.post_webhook(&payload).await.status(), 200);
        self.inbox_drained().await;
        let list = self.api_get("/api/conversations?open=true&limit=500").await;
        list["conversations"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["contact_wa_id"] == wa_id))
            .and_then(|c| c["id"].as_i64())
            .unwrap_or_else(|| panic!("no open conversation for {wa_id}: {list}"))
    }

    pub async fn send(&self, conversation_id: i64, body: &Value) -> reqwest::Response {
        self.api_post(
            &format!("/api/conversations/{conversation_id}/messages"),
            body,
        )
        .await
    }

    /// Sends and returns the created message (asserting 201).
    pub async fn send_ok(&self, conversation_id: i64, body: &Value) -> Value {
        let resp = self.send(conversation_id, body).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "send: {body}");
        body["message"].clone()
    }

    pub async fn message(&self, conversation_id: i64, message_id: i64) -> Value {
        let page = self
            .api_get(&format!(
                "/api/conversations/{conversation_id}/messages?limit=200"
            ))
            .await;
        page["messages"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["id"] == message_id))
            .cloned()
            .unwrap_or_else(|| panic!("message {message_id} not found: {page}"))
    }

    /// Waits (bounded) until the message has `status`, returning it.
    pub async fn wait_status(&self, conversation_id: i64, message_id: i64, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = self.message(conversation_id, message_id).await;
            if m["status"] == status {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "message {message_id} never became {status}: {m}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn upload(&self, bytes: &[u8], filename: &str) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(filename.to_owned());
        self.http
            .post(format!("{}/api/media", self.address))
            .bearer_auth(&self.token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .expect("upload")
    }

    /// Uploads and returns the media id (asserting 201).
    pub async fn upload_ok(&self, bytes: &[u8], filename: &str) -> i64 {
        let resp = self.upload(bytes, filename).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "upload {filename}: {body}");
        body["media"]["id"].as_i64().expect("media id")
    }

    pub async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
        let resp = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, resp.bytes().await.expect("body").to_vec(), headers)
    }
}

/// Each customer received the texts "0", "1", ... `per_customer - 1`, in that order.
pub fn assert_each_customer_got_in_order(sent: &[graph_sim::SentMessage], per_customer: usize) {
    let mut by_customer: std::collections::HashMap<&str, Vec<i64>> = Default::default();
    for s in sent {
        let n = s.body["text"]["body"].as_str().and_then(|b| b.parse().ok());
        by_customer
            .entry(s.to.as_str())
            .or_default()
            .push(n.expect("numbered text"));
    }
    for (to, seq) in by_customer {
        assert_eq!(
            seq,
            (0..per_customer as i64).collect::<Vec<_>>(),
            "order kept for {to}"
        );
    }
}

/// Someone signed in to the web app: their session cookie and CSRF token, and calls made as them.
pub struct Person {
    pub id: i64,
    pub email: String,
    cookie: String,
    csrf: String,
    address: String,
    http: reqwest::Client,
}

pub const PERSON_PASSWORD: &str = "senha-segura-123";

impl TestApp {
    /// Creates a user of `role` named `name` (e-mail derived from the name) and signs them in.
    pub async fn person(&self, role: store::auth::Role, name: &str) -> Person {
        let email = format!(
            "{}@atende.test",
            name.to_lowercase().replace(char::is_whitespace, ".")
        );
        let hash = server::passwords::hash_password_async(PERSON_PASSWORD.into())
            .await
            .expect("hash");
        let user = self
            .store
            .create_user(store::auth::NewUser {
                email: &email,
                name,
                role,
                password_hash: &hash,
                must_change_password: false,
            })
            .await
            .expect("create user");
        self.sign_in(user.id, &email, PERSON_PASSWORD).await
    }

    pub async fn sign_in(&self, id: i64, email: &str, password: &str) -> Person {
        let login = self.login(email, password).await;
        assert_eq!(login.status(), 200, "login of {email}");
        self.person_from(id, email, login).await
    }

    /// `POST /api/auth/login` as a browser sends it.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/auth/login", self.address))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login")
    }

    /// The person whose session a successful answer (login, password change) just set: its
    /// cookie and the CSRF token of its body.
    pub async fn person_from(&self, id: i64, email: &str, answer: reqwest::Response) -> Person {
        let cookie = answer.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let body: Value = answer.json().await.expect("answer body");
        Person {
            id,
            email: email.to_owned(),
            cookie,
            csrf: body["csrf_token"].as_str().unwrap_or_default().to_owned(),
            address: self.address.clone(),
            http: self.http.clone(),
        }
    }
}

impl Person {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.address))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// A multipart POST with one file field (`file`), as the browser uploads one.
    pub async fn upload_to(&self, path: &str, file_name: &str, bytes: Vec<u8>) -> (u16, Value) {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
        );
        let resp = self
            .http
            .post(format!("{}{path}", self.address))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// GET that must answer 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path} as {}: {body}", self.email);
        body
    }

    /// POST that must answer 2xx.
    pub async fn post_ok(&self, path: &str, body: &Value) -> Value {
        let (status, answer) = self.post(path, body).await;
        assert!(
            (200..300).contains(&status),
            "POST {path} as {}: {status} {answer}",
            self.email
        );
        answer
    }

    pub async fn set_presence(&self, presence: &str) {
        let body = serde_json::json!({ "presence": presence, "reason": "Almoço" });
        let (status, answer) = self.put("/api/presence", &body).await;
        assert_eq!(status, 200, "presence {presence}: {answer}");
    }

    /// Uploads a file as this person; returns its media id (asserting 201).
    pub async fn upload(&self, bytes: &[u8], filename: &str) -> i64 {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(filename.to_owned());
        let resp = self
            .http
            .post(format!("{}/api/media", self.address))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 201, "upload {filename}: {body}");
        body["media"]["id"].as_i64().expect("media id")
    }

    /// The cookie header, for clients other than reqwest (WebSocket).
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The session's CSRF token, for requests built by hand.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// A request with this person's cookie and nothing else (no CSRF header), as another site's
    /// page would make it.
    pub fn bare(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.address))
            .header("cookie", &self.cookie)
    }
}

/// A browser tab's live WebSocket, as a test sees it.
pub struct LiveSocket {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The id of the last event received.
    pub last_event_id: i64,
}

impl Person {
    /// Opens `/api/ws` with this person's cookie (and `since`, for a reconnect).
    pub async fn socket(&self, since: Option<i64>) -> LiveSocket {
        let (socket, status) = self.try_socket(since, None).await;
        assert_eq!(status, 101, "WebSocket handshake");
        socket.expect("socket")
    }

    /// The handshake's status, and the socket when it succeeded.
    pub async fn try_socket(
        &self,
        since: Option<i64>,
        origin: Option<&str>,
    ) -> (Option<LiveSocket>, u16) {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let ws = self.address.replacen("http://", "ws://", 1);
        let url = match since {
            Some(id) => format!("{ws}/api/ws?since={id}"),
            None => format!("{ws}/api/ws"),
        };
        let mut request = url.into_client_request().expect("request");
        let headers = request.headers_mut();
        headers.insert("cookie", self.cookie.parse().expect("cookie header"));
        if let Some(origin) = origin {
            headers.insert("origin", origin.parse().expect("origin header"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, response)) => {
                let mut socket = LiveSocket {
                    stream,
                    last_event_id: 0,
                };
                let hello = socket.next_message(Duration::from_secs(10)).await;
                assert_eq!(hello["type"], "hello", "{hello}");
                socket.last_event_id = hello["last_event_id"].as_i64().unwrap_or(0);
                (Some(socket), response.status().as_u16())
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                (None, response.status().as_u16())
            }
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }
}

impl LiveSocket {
    /// The next JSON message, or a panic after `timeout`.
    pub async fn next_message(&mut self, timeout: Duration) -> Value {
        self.try_next_message(timeout)
            .await
            .expect("timed out waiting for a WebSocket message")
    }

    /// The next JSON message, or None after `timeout`.
    pub async fn try_next_message(&mut self, timeout: Duration) -> Option<Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.stream.next()).await.ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("JSON message");
                    if value["type"] == "event" {
                        self.last_event_id = value["id"].as_i64().unwrap_or(self.last_event_id);
                    }
                    return Some(value);
                }
                Some(Ok(_)) => continue,
                other => panic!("WebSocket ended: {other:?}"),
            }
        }
    }

    /// Skips messages until one matches `wanted`; returns it and the skipped ones.
    pub async fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(message) = self.try_next_message(left).await else {
                panic!("timed out waiting for {what}; got {skipped:?}");
            };
            if wanted(&message) {
                return (message, skipped);
            }
            skipped.push(message);
        }
    }

    /// Whether the server closes the socket within `timeout` (messages before that are skipped).
    pub async fn ends_within(&mut self, timeout: Duration) -> bool {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn send_json(&mut self, value: &Value) {
        use futures::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::Text(
                value.to_string().into(),
            ))
            .await
            .expect("send on WebSocket");
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
