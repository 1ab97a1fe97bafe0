//! graph-sim is an independent, in-process stand-in for the parts of Meta's
//! WhatsApp Cloud API that Atende talks to: a real HTTP server speaking the
//! Graph API (`/v{N}.0/{phone-number-id}/messages`, media upload, media info,
//! authenticated and expiring media downloads, phone number info) with
//! Meta-shaped answers and errors, which after each accepted send posts
//! signed `sent`/`delivered`/`read` status webhooks back to the system under
//! test; plus a customer simulator ([`customer`]) that builds inbound webhook
//! payloads in Meta's exact shape, signs them with the app secret and posts
//! them. Tests drive it through Rust ([`GraphSim`]) or through the JSON
//! control API under `/_sim`; fault injection ([`GraphSim::inject`]) scripts
//! errors, delays and dropped connections.
//!
//! Templates are managed as Meta's OpenAPI document describes
//! (`/{WABA-ID}/message_templates`, `/{TEMPLATE_ID}`), reviewed by a test or
//! automatically ([`AutoReview`]) with the signed template webhooks, and every
//! template-related request body is checked against that document
//! ([`openapi`], copied into `openapi/`) and recorded
//! ([`GraphSim::template_requests`]). The account side Atende checks first is
//! there too: `debug_token` with per-token permissions, the WABA node,
//! `subscribed_apps`, the number's quality and messaging limit, and the
//! Resumable Upload API for media header examples. It deliberately shares no code
//! with the rest of the workspace: it encodes its own reading of Meta's
//! behaviour, so a bug in Atende's wire types cannot hide behind the same bug
//! in the double.

mod account;
mod control;
mod control_templates;
pub mod customer;
mod delivery;
pub mod errors;
mod graph;
mod ids;
pub mod openapi;
mod server;
mod sim_api;
mod state;
mod templates;
mod uploads;
mod validate;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use customer::{
    Customer, CustomerMessage, CustomerSend, CustomerSent, OrderItem, WebhookBuilder, post_webhook,
    sign, to_meta_json,
};

pub use account::PhoneSettings;
pub use openapi::{RequestKind, Violation};
pub use sim_api::{MarketingFault, RestoredTemplate};
pub use templates::review::TemplateChange;
pub use templates::{AutoReview, RecordedRequest, RenderedButton, RenderedTemplate, Template};

use state::{Shared, State};

const DEFAULT_STATUS_DELAY: Duration = Duration::from_millis(10);
const DEFAULT_WEBHOOK_RETRIES: u32 = 3;
/// App id of [`SimConfig::new`].
pub const DEFAULT_APP_ID: &str = "100000000000999";

/// A business phone number owned by the simulated WhatsApp Business Account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub waba_id: String,
}

impl PhoneNumber {
    pub fn new(
        phone_number_id: impl Into<String>,
        display_phone_number: impl Into<String>,
        waba_id: impl Into<String>,
    ) -> PhoneNumber {
        PhoneNumber {
            phone_number_id: phone_number_id.into(),
            display_phone_number: display_phone_number.into(),
            waba_id: waba_id.into(),
        }
    }
}

/// Which status webhooks follow an accepted send (each is its own POST,
/// in the order sent, delivered, read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoStatuses {
    pub sent: bool,
    pub delivered: bool,
    pub read: bool,
}

impl AutoStatuses {
    pub const ALL: AutoStatuses = AutoStatuses {
        sent: true,
        delivered: true,
        read: true,
    };
    pub const NONE: AutoStatuses = AutoStatuses {
        sent: false,
        delivered: false,
        read: false,
    };
}

impl Default for AutoStatuses {
    fn default() -> Self {
        AutoStatuses::ALL
    }
}

/// How the simulator is set up. Build with [`SimConfig::new`] and adjust the
/// public fields.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to POST webhooks (Atende's /webhooks/whatsapp); None = do not
    /// deliver statuses.
    pub webhook_url: Option<String>,
    pub app_secret: String,
    /// Tokens accepted in "Authorization: Bearer"; anything else gets Meta's
    /// 401 with code 190.
    pub access_tokens: Vec<String>,
    /// Phone numbers this fake business owns.
    pub phone_numbers: Vec<PhoneNumber>,
    /// Statuses sent automatically after an accepted send.
    pub auto_statuses: AutoStatuses,
    /// Validity of media download URLs (Meta: 5 minutes); tests shorten it.
    pub media_url_ttl: Duration,
    /// The Meta app: `POST /{app-id}/uploads` (Resumable Upload API) and `debug_token`'s
    /// `app_id`.
    pub app_id: String,
}

impl SimConfig {
    /// One phone number (display "5511900000000", WABA `WABA-<pnid>`), all
    /// automatic statuses on, 5-minute media URLs, no webhook URL yet.
    pub fn new(
        app_secret: impl Into<String>,
        access_token: impl Into<String>,
        phone_number_id: impl Into<String>,
    ) -> SimConfig {
        let pnid = phone_number_id.into();
        SimConfig {
            webhook_url: None,
            app_secret: app_secret.into(),
            access_tokens: vec![access_token.into()],
            phone_numbers: vec![PhoneNumber::new(
                pnid.clone(),
                "5511900000000",
                format!("WABA-{pnid}"),
            )],
            auto_statuses: AutoStatuses::ALL,
            media_url_ttl: Duration::from_secs(300),
            app_id: DEFAULT_APP_ID.to_owned(),
        }
    }
}

/// A message accepted on `POST /{phone-number-id}/messages`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentMessage {
    pub wamid: String,
    pub phone_number_id: String,
    /// The `to` exactly as the client sent it.
    pub to: String,
    /// The full request body.
    pub body: Value,
    #[serde(serialize_with = "serialize_unix_millis")]
    pub received_at: SystemTime,
    /// For a template of a template the simulator knows: what the customer sees.
    pub template: Option<RenderedTemplate>,
}

impl SentMessage {
    /// The message `type` (Meta defaults a missing type to "text").
    pub fn kind(&self) -> &str {
        self.body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("text")
    }

    /// The text the customer sees: a text message's body, or a known template's header, body
    /// and footer filled in.
    pub fn rendered_text(&self) -> Option<String> {
        match &self.template {
            Some(t) => Some(t.text()),
            None => self
                .body
                .pointer("/text/body")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

/// A media object held by the simulator (uploaded by the business or sent by
/// a customer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    pub bytes: Bytes,
    pub mime_type: String,
    /// Filename of the multipart part; None for customer media.
    pub filename: Option<String>,
    pub sha256_hex: String,
}

impl StoredMedia {
    pub(crate) fn new(bytes: Bytes, mime_type: &str, filename: Option<String>) -> StoredMedia {
        let sha256_hex = hex::encode(Sha256::digest(&bytes));
        StoredMedia {
            bytes,
            mime_type: mime_type.to_owned(),
            filename,
            sha256_hex,
        }
    }
}

/// One automatic status webhook and how the receiver answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusDelivery {
    pub wamid: String,
    /// sent, delivered, read or failed.
    pub status: String,
    /// Last HTTP status answered; None if every attempt failed to connect.
    pub http_status: Option<u16>,
    pub attempts: u32,
}

/// A Graph API endpoint, for fault injection and request counting.
///
/// `MarkRead` and `DeleteMedia` are separate from `SendMessage` and
/// `MediaInfo` (although Meta serves them on the same paths) so that a fault
/// meant for a send is never eaten by a background read receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// POST /{pnid}/messages carrying a message.
    SendMessage,
    /// POST /{pnid}/messages with `"status":"read"`.
    MarkRead,
    /// POST /{pnid}/media.
    UploadMedia,
    /// GET /{media-id}.
    MediaInfo,
    /// GET of a media download URL.
    MediaDownload,
    /// DELETE /{media-id}.
    DeleteMedia,
    /// GET /{pnid}.
    PhoneNumber,
    /// Template management: /{waba-id}/message_templates and /{template-id}.
    Templates,
    /// The WABA node, /{waba-id}/subscribed_apps and /debug_token.
    Account,
    /// The Resumable Upload API: /{app-id}/uploads and /upload:{id}.
    Uploads,
    /// Faults: whichever Graph request comes next. Counts: all of them.
    Any,
}

/// A scripted answer, consumed by the next matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500, code 131000 "Something went wrong".
    ServerError,
    /// HTTP 429, code 130429 "Rate limit hit".
    RateLimited,
    /// Any Graph error, e.g. 400/131047, 401/190, 400/131026, 400/132001.
    GraphError {
        http_status: u16,
        code: i64,
        message: String,
    },
    /// Answers normally after the delay (for client timeouts).
    Delay(Duration),
    /// Closes the connection without answering. Through [`GraphSim::router`]
    /// embedded in another server the simulator cannot reach the socket, so
    /// it sends a response whose body fails instead.
    DropConnection,
    /// Only for sends: answers 200 with a wamid, then the status webhook is
    /// `failed` with this error instead of sent/delivered/read, which is how
    /// Meta reports 131047, 131026, 131049 and friends.
    AcceptThenFail { code: i64, message: String },
}

/// Errors of the simulator's own client-side operations.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("no webhook URL configured")]
    NoWebhookUrl,
    #[error("unknown phone number id {0}")]
    UnknownPhoneNumber(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("webhook delivery failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// A running (or embeddable) fake Graph API. Cheap to clone; clones share
/// state.
#[derive(Clone)]
pub struct GraphSim {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GraphSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSim")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl GraphSim {
    /// A simulator that serves nothing yet: mount [`GraphSim::router`]
    /// somewhere and call [`GraphSim::set_base_url`].
    pub fn new(cfg: SimConfig) -> std::io::Result<GraphSim> {
        // Parsing Meta's document takes a moment; doing it now keeps it off the first
        // template request. A failure surfaces there, as a 500, not here.
        std::thread::spawn(|| {
            if let Err(e) = openapi::preload() {
                tracing::error!(error = %e, "graph-sim: Meta's OpenAPI document did not load");
            }
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let state = State {
            webhook_url: cfg.webhook_url,
            webhook_retries: DEFAULT_WEBHOOK_RETRIES,
            status_delay: DEFAULT_STATUS_DELAY,
            new_template_status: "PENDING".to_owned(),
            template_limit: templates::DEFAULT_TEMPLATE_LIMIT,
            record_template_requests: true,
            token_scopes: cfg
                .access_tokens
                .iter()
                .map(|t| {
                    (
                        t.clone(),
                        account::DEFAULT_SCOPES
                            .iter()
                            .map(|s| (*s).to_owned())
                            .collect(),
                    )
                })
                .collect(),
            ..State::default()
        };
        let shared = Shared::new(
            cfg.app_id,
            cfg.app_secret,
            cfg.access_tokens,
            cfg.phone_numbers,
            cfg.auto_statuses,
            cfg.media_url_ttl,
            state,
            client,
        );
        Ok(GraphSim {
            shared: Arc::new(shared),
        })
    }

    /// Binds 127.0.0.1 on a free port and serves in a tokio task.
    pub async fn start(cfg: SimConfig) -> std::io::Result<GraphSim> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        GraphSim::serve(cfg, listener).await
    }

    /// Serves on the given listener in a tokio task.
    pub async fn serve(
        cfg: SimConfig,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<GraphSim> {
        let sim = GraphSim::new(cfg)?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            // A wildcard bind is reachable on loopback, while "0.0.0.0" or
            // "[::]" in a URL is not portable.
            let loopback: std::net::IpAddr = if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            addr.set_ip(loopback);
        }
        sim.set_base_url(format!("http://{addr}/v23.0"));
        let task = server::spawn_accept_loop(listener, sim.router());
        *sim.shared
            .accept_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task.abort_handle());
        Ok(sim)
    }

    /// The Graph API (any `/v{N}.0` prefix), the media download route and
    /// the `/_sim` control API, sharing this simulator's state. Media URLs
    /// are built from each request's Host and path prefix, so the router can
    /// be nested under any prefix.
    pub fn router(&self) -> axum::Router {
        graph::router(self.clone())
    }

    /// "http://127.0.0.1:PORT/v23.0" once serving; empty for an unserved
    /// [`GraphSim::new`] until [`GraphSim::set_base_url`].
    pub fn base_url(&self) -> String {
        self.shared.lock().base_url.clone().unwrap_or_default()
    }

    pub fn set_base_url(&self, url: impl Into<String>) {
        self.shared.update(|s| s.base_url = Some(url.into()));
    }

    /// Stops accepting connections (open ones finish their requests).
    pub fn shutdown(&self) {
        let task = self
            .shared
            .accept_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = task {
            t.abort();
        }
    }

    pub fn set_webhook_url(&self, url: Option<String>) {
        self.shared.update(|s| s.webhook_url = url);
    }

    pub fn webhook_url(&self) -> Option<String> {
        self.shared.lock().webhook_url.clone()
    }

    pub fn app_secret(&self) -> &str {
        &self.shared.app_secret
    }

    pub fn phone_numbers(&self) -> &[PhoneNumber] {
        &self.shared.phone_numbers
    }

    /// Everything accepted on POST /{pnid}/messages, in arrival order
    /// (mark-as-read calls are in [`GraphSim::mark_read_calls`]).
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.lock().sent.clone()
    }

    /// Waits until at least `n` sends were accepted or the timeout passes;
    /// returns all sends so far either way.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<SentMessage> {
        self.shared
            .wait_until(timeout, |s| s.sent.len() >= n, |s| s.sent.clone())
            .await
    }

    /// Waits until more than `seen` sends were accepted or the timeout passes; returns the sends
    /// after the first `seen` (empty on timeout). Copies only what is new, so a watcher of a long
    /// run does not slow the server it watches.
    pub async fn wait_for_sent_after(&self, seen: usize, timeout: Duration) -> Vec<SentMessage> {
        self.shared
            .wait_until(
                timeout,
                |s| s.sent.len() > seen,
                |s| s.sent.get(seen..).map(<[_]>::to_vec).unwrap_or_default(),
            )
            .await
    }

    /// Any stored media by id: business uploads and customer media alike.
    pub fn uploaded_media(&self, media_id: &str) -> Option<StoredMedia> {
        self.shared.lock().media.get(media_id).cloned()
    }

    /// Business uploads still stored, in upload order.
    pub fn uploads(&self) -> Vec<(String, StoredMedia)> {
        let st = self.shared.lock();
        st.upload_order
            .iter()
            .filter_map(|id| st.media.get(id).map(|m| (id.clone(), m.clone())))
            .collect()
    }

    /// Registers media a customer "sends"; the returned id works with
    /// GET /{media-id} and the download URL, as a webhook media id does.
    pub fn add_customer_media(&self, bytes: Bytes, mime_type: &str) -> String {
        let id = ids::media_id();
        let media = StoredMedia::new(bytes, mime_type, None);
        self.shared.update(|s| s.media.insert(id.clone(), media));
        id
    }

    /// The next matching requests get these answers, in order; then normal
    /// behaviour resumes. Faults for a specific endpoint are used before
    /// faults for [`Endpoint::Any`].
    pub fn inject(&self, endpoint: Endpoint, faults: Vec<Fault>) {
        self.shared
            .update(|s| s.faults.entry(endpoint).or_default().extend(faults));
    }

    /// Faults injected but not consumed yet.
    pub fn pending_faults(&self, endpoint: Endpoint) -> usize {
        self.shared
            .lock()
            .faults
            .get(&endpoint)
            .map_or(0, |q| q.len())
    }

    /// wamids marked read, in arrival order.
    pub fn mark_read_calls(&self) -> Vec<String> {
        self.shared.lock().mark_read.clone()
    }

    pub async fn wait_for_mark_read(&self, n: usize, timeout: Duration) -> Vec<String> {
        self.shared
            .wait_until(timeout, |s| s.mark_read.len() >= n, |s| s.mark_read.clone())
            .await
    }

    /// The most sends of this phone number accepted within any sliding
    /// one-second window.
    pub fn max_sends_in_any_second(&self, phone_number_id: &str) -> usize {
        self.shared
            .lock()
            .send_times
            .get(phone_number_id)
            .map_or(0, |t| state::max_in_any_second(t))
    }

    /// Graph requests received for the endpoint, including those answered
    /// with an error or a fault. `Any` counts every Graph request.
    pub fn request_count(&self, endpoint: Endpoint) -> usize {
        let st = self.shared.lock();
        match endpoint {
            Endpoint::Any => st.requests.values().sum(),
            e => st.requests.get(&e).copied().unwrap_or(0),
        }
    }

    /// Automatic status webhooks posted so far, in completion order.
    pub fn status_deliveries(&self) -> Vec<StatusDelivery> {
        self.shared.lock().deliveries.clone()
    }

    pub async fn wait_for_status_deliveries(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<StatusDelivery> {
        self.shared
            .wait_until(
                timeout,
                |s| s.deliveries.len() >= n,
                |s| s.deliveries.clone(),
            )
            .await
    }

    /// Enforces Meta's throughput limit: sends beyond `limit` within one
    /// second get 429/130429. None (the default) accepts everything, so the
    /// histogram can show by how much a client overshoots.
    pub fn set_throughput_limit(&self, limit: Option<u32>) {
        self.shared.update(|s| s.throughput_limit = limit);
    }

    /// Pause before each automatic status webhook (default 10 ms). The
    /// default lets the send's HTTP answer reach the client before its first
    /// status, as it practically always does with Meta; zero provokes the
    /// race a robust client must survive anyway.
    pub fn set_status_delay(&self, delay: Duration) {
        self.shared.update(|s| s.status_delay = delay);
    }

    /// Extra attempts for a status webhook answered with a non-2xx or not
    /// at all (default 3; Meta keeps retrying for days).
    pub fn set_webhook_retries(&self, retries: u32) {
        self.shared.update(|s| s.webhook_retries = retries);
    }

    /// Makes sends to `to` answer `contacts[0].wa_id = wa_id`, the way Meta
    /// normalises some numbers (e.g. Brazilian mobiles without the ninth
    /// digit). Matched on the digits of `to`.
    pub fn set_wa_id_for(&self, to: &str, wa_id: &str) {
        let key = digits(to);
        self.shared
            .update(|s| s.wa_id_overrides.insert(key, wa_id.to_owned()));
    }

    /// Forgets recorded traffic (sends, reads, deliveries, counts, faults);
    /// keeps media and settings.
    pub fn reset(&self) {
        self.shared.update(|s| {
            s.sent.clear();
            s.send_times.clear();
            s.mark_read.clear();
            s.deliveries.clear();
            s.requests.clear();
            s.faults.clear();
            s.template_requests.clear();
            s.template_webhooks.clear();
        });
    }

    /// A payload builder for the first phone number.
    pub fn webhook_builder(&self) -> WebhookBuilder {
        match self.shared.phone_numbers.first() {
            Some(p) => builder_for(p),
            None => WebhookBuilder::new("", "", ""),
        }
    }

    pub fn webhook_builder_for(&self, phone_number_id: &str) -> Option<WebhookBuilder> {
        self.shared.phone(phone_number_id).map(builder_for)
    }

    /// Encodes `payload` like Meta, signs it and POSTs it to the webhook URL.
    pub async fn post_to_webhook(&self, payload: &Value) -> Result<(u16, String), SimError> {
        let url = self.webhook_url().ok_or(SimError::NoWebhookUrl)?;
        let body = to_meta_json(payload);
        Ok(post_webhook(&self.shared.client, &url, &self.shared.app_secret, &body).await?)
    }

    /// Builds the described customer message, registers its media if any,
    /// and posts it signed to the webhook URL.
    pub async fn customer_send(&self, req: CustomerSend) -> Result<CustomerSent, SimError> {
        control::customer_send(self, req).await
    }
}

fn builder_for(p: &PhoneNumber) -> WebhookBuilder {
    WebhookBuilder::new(&p.waba_id, &p.phone_number_id, &p.display_phone_number)
}

pub(crate) fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

pub(crate) fn serialize_unix_millis<S: serde::Serializer>(
    t: &SystemTime,
    s: S,
) -> Result<S::Ok, S::Error> {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    s.serialize_u64(ms)
}
