//! `desk`: the agent desk under load. `--agents` agents (default 1,000) are available with a
//! limit of `--limit` conversations each (default: conversations / agents, rounded up) and each
//! has one live WebSocket (`GET /api/ws`, session cookie); `--conversations` customers (default
//! 10,000) each open a conversation with one signed webhook and routing assigns them all (the
//! sockets connect once that is done, or before with `--sockets-first`). Then
//! customers of those conversations write at `--rate` messages per second (default 500, open
//! loop) for `--warmup-secs` + `--duration-secs`, and for every message we measure the time from
//! just before its webhook POST was handed to the HTTP client to the moment the WebSocket of the
//! agent the conversation is assigned to received the matching `message.created` event
//! (`from_send`, the number held against the target), and from the webhook's 200 to that same
//! moment (`from_ack`, clamped at 0 when the event beat the 200 to the client). At most one
//! message per conversation is in flight, so a conversation id identifies the message.
//!
//! The server runs as a child process by default (`atende serve`, the release binary next to
//! this one), so its RSS and CPU are read from `/proc/<pid>` apart from the load generator and
//! the 1,000 WebSocket clients; the agents, their limits, presence and sessions are written to the
//! database before it starts. `--server in-process` runs it inside this process instead (like the
//! other scenarios); then RSS includes the clients, and the server's CPU is the process's minus
//! the client threads'.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use graph_sim::{Customer, WebhookBuilder};
use serde::Serialize;
use serde_json::{Value, json};
use store::Store;
use store::auth::{NewUser, Role};
use store::people::{Presence, UserPatch};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::COOKIE};
use tokio_util::sync::CancellationToken;

use crate::harness::{
    Backend, BackendChoice, ChannelSpec, Harness, ScratchDatabase, ServerProcess, new_channel,
    server_binary,
};
use crate::procstat::{
    CpuMark, ProcSample, clock_ticks_per_sec, cpu_between, mb, proc_sample, sample_rss,
};
use crate::report::{self, percentile, round, us_to_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerMode {
    /// `atende serve` as a child process: its RSS and CPU are measured alone.
    Process,
    /// Inside this process, with the clients: RSS includes them.
    InProcess,
}

#[derive(Debug, Clone, Args)]
pub struct DeskArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: BackendChoice,
    /// Agents, each available with one WebSocket.
    #[arg(long, default_value_t = 1_000)]
    pub agents: usize,
    /// Open conversations (one customer each), all assigned before the load starts.
    #[arg(long, default_value_t = 10_000)]
    pub conversations: usize,
    /// Inbound customer messages per second during the load (open loop).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Measured seconds of load.
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// Unmeasured seconds of load before the measured window.
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Each agent's limit; default: conversations / agents, rounded up.
    #[arg(long)]
    pub limit: Option<i64>,
    /// Where the server runs.
    #[arg(long, value_enum, default_value = "process")]
    pub server: ServerMode,
    /// The `atende` binary for `--server process`; default: `atende` next to this program
    /// (`cargo build --release -p server` puts it in target/release).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Connect the agents' WebSockets before opening the conversations (default: after they are
    /// all assigned). Then every agent is told of every new conversation while it waits
    /// unassigned (no queue: anyone may take it), i.e. agents x conversations x ~3 frames.
    #[arg(long)]
    pub sockets_first: bool,
    /// Webhooks in flight while the conversations are opened.
    #[arg(long, default_value_t = 32)]
    pub open_concurrency: usize,
}

/// Base64 of a fixed 32-byte key: the child server decrypts the channel written before it started.
const SECRET_KEY: &str = "YmVuY2gtZGVzay1zZWNyZXQta2V5LTMyLWJ5dGVzISE=";
/// Customer `i` has wa_id `WA_BASE + i` (13 digits, Brazilian mobile shape).
const WA_BASE: i64 = 5_511_900_000_000;
const P99_TARGET_MS: f64 = 50.0;
const RSS_TARGET_MB: f64 = 200.0;
/// How long the last messages may take to arrive after the load stops.
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// How long routing may take to assign every conversation.
const ASSIGN_TIMEOUT: Duration = Duration::from_secs(600);
/// Thread name of the client runtime (WebSockets and webhook senders); at most 15 characters, the
/// kernel's `comm`, so the in-process mode can tell its CPU apart.
const CLIENT_THREADS: &str = "desk-client";

pub async fn run(args: DeskArgs) -> anyhow::Result<String> {
    if args.agents == 0 || args.conversations == 0 || args.rate <= 0.0 || args.duration_secs == 0 {
        bail!("--agents, --conversations, --rate and --duration-secs must be positive");
    }
    let limit = args
        .limit
        .unwrap_or_else(|| i64::try_from(args.conversations.div_ceil(args.agents)).unwrap_or(1));
    if limit <= 0 {
        bail!("--limit must be positive");
    }
    let mut results = Vec::new();
    for backend in args.backend.backends() {
        eprintln!("desk: {backend:?}, server {:?}", args.server);
        results.push(run_backend(backend, &args, limit).await?);
    }
    let mut notes = vec![
        "latency.from_send: from just before the webhook POST was handed to the HTTP client to the moment the assigned agent's WebSocket received the message.created event; latency.from_ack: from the 200 to the same moment (0 when the event arrived first). Targets are held against from_send p99 and the server's peak RSS (VmHWM).".to_owned(),
        "All on one machine: the server, the 1,000 WebSocket clients, the webhook sender (its own tokio runtime) and, for PostgreSQL, the database share its cores; machine_cpu is the whole machine (every process) during the measured window.".to_owned(),
    ];
    notes.push(match args.server {
        ServerMode::Process => "The server is the real `atende serve` binary in a child process: server.rss_mb and server.cpu are that process alone (PostgreSQL's own processes are not in it).".to_owned(),
        ServerMode::InProcess => "The server runs inside the benchmark process: server.rss_mb includes the WebSocket clients and the load generator (an upper bound); server.cpu is the process minus the client runtime's threads.".to_owned(),
    });
    Ok(serde_json::to_string_pretty(&json!({
        "scenario": "desk",
        "machine": report::machine(),
        "config": {
            "agents": args.agents,
            "conversations": args.conversations,
            "limit_per_agent": limit,
            "rate": args.rate,
            "warmup_secs": args.warmup_secs,
            "duration_secs": args.duration_secs,
            "server": args.server,
            "open_concurrency": args.open_concurrency,
        },
        "notes": notes,
        "results": results,
    }))?)
}

fn spec() -> ChannelSpec {
    ChannelSpec {
        name: "desk".to_owned(),
        phone_number_id: "700000000000001".to_owned(),
        waba_id: "800000000000001".to_owned(),
        display_phone_number: "5511970000000".to_owned(),
        access_token: "bench-access-token".to_owned(),
        app_secret: "bench-desk-app-secret".to_owned(),
    }
}

/// The system under test.
enum Sut {
    InProcess(Harness),
    Process {
        db: ScratchDatabase,
        server: ServerProcess,
    },
}

impl Sut {
    fn port(&self) -> u16 {
        match self {
            Sut::InProcess(h) => h.port,
            Sut::Process { server, .. } => server.port,
        }
    }

    /// The server's process id; `None` = this process.
    fn pid(&self) -> Option<u32> {
        match self {
            Sut::InProcess(_) => None,
            Sut::Process { server, .. } => Some(server.pid),
        }
    }

    async fn query_pairs(&self, sql: &'static str) -> anyhow::Result<Vec<(i64, i64)>> {
        match self {
            Sut::InProcess(h) => h.query_pairs(sql, 0, 0).await,
            Sut::Process { db, .. } => db.query_pairs(sql, 0, 0).await,
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Sut::InProcess(h) => h.stop().await,
            Sut::Process { db, server } => {
                let stopped = server.stop().await;
                db.drop().await;
                stopped
            }
        }
    }
}

struct AgentLogin {
    user_id: i64,
    token: String,
}

/// Starts the server with `agents` agents ready (limit set, available, one session each).
async fn start(
    backend: Backend,
    args: &DeskArgs,
    limit: i64,
    spec: &ChannelSpec,
) -> anyhow::Result<(Sut, Vec<AgentLogin>)> {
    match args.server {
        ServerMode::InProcess => {
            let harness = Harness::start(backend).await?;
            let ready = async {
                harness.add_channel(spec).await?;
                create_agents(&harness.state.store, args.agents, limit).await
            }
            .await;
            match ready {
                Ok(agents) => Ok((Sut::InProcess(harness), agents)),
                Err(e) => {
                    let _ = harness.stop().await;
                    Err(e)
                }
            }
        }
        ServerMode::Process => {
            let bin = server_binary(args.server_bin.as_deref())
                .map_err(|e| anyhow::anyhow!("{e:#}, or use --server in-process"))?;
            let db = ScratchDatabase::create(backend).await?;
            let ready = async {
                let store = Store::connect(db.url()).await?;
                store.migrate().await?;
                let secrets = server::secrets::SecretBox::from_base64(SECRET_KEY)?;
                store.create_channel(&new_channel(spec, &secrets)).await?;
                let agents = create_agents(&store, args.agents, limit).await;
                store.close().await;
                let agents = agents?;
                eprintln!("desk: starting {}", bin.display());
                let server = ServerProcess::spawn(&bin, &db, SECRET_KEY).await?;
                anyhow::Ok((server, agents))
            }
            .await;
            match ready {
                Ok((server, agents)) => Ok((Sut::Process { db, server }, agents)),
                Err(e) => {
                    db.drop().await;
                    Err(e)
                }
            }
        }
    }
}

/// Agents written straight to the store: one Argon2 hash shared by all (nobody logs in), the
/// limit, presence `available` and a session whose cookie the WebSocket presents.
async fn create_agents(store: &Store, n: usize, limit: i64) -> anyhow::Result<Vec<AgentLogin>> {
    let started = Instant::now();
    let hash = server::passwords::hash_password("bench-agent-password")?;
    let expires_at = store::now_ms() + 24 * 3600 * 1000;
    let created: Vec<anyhow::Result<AgentLogin>> = futures::stream::iter(0..n)
        .map(|i| {
            let hash = hash.as_str();
            async move {
                let email = format!("agent{i}@desk.bench");
                let name = format!("Agente {i}");
                let user = store
                    .create_user(NewUser {
                        email: &email,
                        name: &name,
                        role: Role::Agent,
                        password_hash: hash,
                        must_change_password: false,
                    })
                    .await?;
                let patch = UserPatch {
                    max_concurrent: Some(Some(limit)),
                    ..Default::default()
                };
                store.update_user(user.id, &patch).await?;
                store
                    .set_presence(user.id, Presence::Available, None)
                    .await?;
                let token = server::passwords::random_token();
                let csrf = server::passwords::random_token();
                let session = store::auth::NewSession {
                    token_hash: &server::passwords::token_hash(&token),
                    user_id: user.id,
                    csrf_token: &csrf,
                    expires_at,
                };
                store
                    .start_session(&session, store::auth::EndSessions::None)
                    .await?;
                Ok(AgentLogin {
                    user_id: user.id,
                    token,
                })
            }
        })
        .buffered(16)
        .collect()
        .await;
    let agents = created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!(
        "desk: {n} agents created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(agents)
}

async fn run_backend(backend: Backend, args: &DeskArgs, limit: i64) -> anyhow::Result<Value> {
    let spec = spec();
    let (sut, agents) = start(backend, args, limit, &spec).await?;
    // The clients get their own runtime and threads, like a separate load process would.
    let clients = ClientRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(report::cpus())
            .thread_name(CLIENT_THREADS)
            .enable_all()
            .build()
            .context("cannot start the client runtime")?,
    ));
    let stop_sockets = CancellationToken::new();
    let measured = measure(&sut, &clients, &agents, &spec, args, stop_sockets.clone()).await;
    stop_sockets.cancel();
    // Let the sockets say goodbye before the server goes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(clients);
    let stopped = sut.stop().await;
    let mut result = measured?;
    if let Err(e) = stopped {
        eprintln!("warning: {e:#}");
    }
    result["backend"] = json!(backend);
    Ok(result)
}

/// Shuts its runtime down without blocking (a runtime may not be dropped inside another).
struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl ClientRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => unreachable!("the runtime lives until drop"),
        }
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// One message in flight, keyed by its conversation.
struct Flight {
    sent: Instant,
    acked: Option<Instant>,
    delivered: Option<Instant>,
    in_window: bool,
}

#[derive(Default)]
struct Counters {
    /// Text frames received by all sockets.
    frames: AtomicU64,
    /// `message.created` frames received by all sockets.
    message_frames: AtomicU64,
    /// `message.created` frames received by an agent other than the conversation's.
    other_agent_frames: AtomicU64,
    /// `message.created` at the right agent with no message of ours in flight (during the load).
    unmatched: AtomicU64,
    /// `reset` frames (the socket lagged behind the server's broadcast).
    resets: AtomicU64,
    disconnects: AtomicU64,
    webhook_errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 7] {
        [
            &self.frames,
            &self.message_frames,
            &self.other_agent_frames,
            &self.unmatched,
            &self.resets,
            &self.disconnects,
            &self.webhook_errors,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

#[derive(Default)]
struct Samples {
    from_send_us: Vec<u32>,
    from_ack_us: Vec<u32>,
    /// Delivered before its 200 reached the client.
    before_ack: u64,
}

struct Tracker {
    /// Conversation id -> index of the agent it is assigned to; set when the load starts.
    owner: OnceLock<HashMap<i64, usize>>,
    flights: Mutex<HashMap<i64, Flight>>,
    samples: Mutex<Samples>,
    counters: Counters,
    first_error: Mutex<Option<String>>,
}

impl Tracker {
    fn new() -> Tracker {
        Tracker {
            owner: OnceLock::new(),
            flights: Mutex::new(HashMap::new()),
            samples: Mutex::new(Samples::default()),
            counters: Counters::default(),
            first_error: Mutex::new(None),
        }
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Flight>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_frame(&self, agent: usize, text: &str, at: Instant) {
        let c = &self.counters;
        c.frames.fetch_add(1, Ordering::Relaxed);
        match scan_frame(text) {
            Frame::MessageCreated(conversation_id) => {
                c.message_frames.fetch_add(1, Ordering::Relaxed);
                self.on_message_created(agent, conversation_id, at);
            }
            Frame::Reset => {
                c.resets.fetch_add(1, Ordering::Relaxed);
            }
            Frame::Other => {}
        }
    }

    fn on_message_created(&self, agent: usize, conversation_id: i64, at: Instant) {
        // Before the load (the conversations' first messages) there is nothing to match.
        let Some(owner) = self.owner.get() else {
            return;
        };
        if owner.get(&conversation_id) != Some(&agent) {
            self.counters
                .other_agent_frames
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut flights = self.flights();
        match flights.get_mut(&conversation_id) {
            Some(f) if f.delivered.is_none() => {
                f.delivered = Some(at);
                if f.acked.is_some()
                    && let Some(f) = flights.remove(&conversation_id)
                {
                    drop(flights);
                    self.finish(&f);
                }
            }
            _ => {
                self.counters.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_answer(&self, conversation_id: i64, at: Instant, result: Result<(), String>) {
        let mut flights = self.flights();
        if let Err(e) = result {
            flights.remove(&conversation_id);
            drop(flights);
            self.counters.webhook_errors.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(e);
            return;
        }
        let Some(f) = flights.get_mut(&conversation_id) else {
            return;
        };
        f.acked = Some(at);
        if f.delivered.is_some()
            && let Some(f) = flights.remove(&conversation_id)
        {
            drop(flights);
            self.finish(&f);
        }
    }

    fn finish(&self, f: &Flight) {
        if !f.in_window {
            return;
        }
        let (Some(acked), Some(delivered)) = (f.acked, f.delivered) else {
            return;
        };
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.from_send_us
            .push(us(delivered.saturating_duration_since(f.sent)));
        s.from_ack_us
            .push(us(delivered.saturating_duration_since(acked)));
        if delivered < acked {
            s.before_ack += 1;
        }
    }
}

enum Frame {
    MessageCreated(i64),
    Reset,
    Other,
}

/// What a server frame is, found by scanning rather than parsing: every socket may receive many
/// frames, and the clients share the server's cores. The server writes compact JSON
/// (`serde_json::to_string`), so `"key":value` has no spaces.
fn scan_frame(text: &str) -> Frame {
    if text.contains(r#""kind":"message.created""#) {
        const KEY: &str = r#""conversation_id":"#;
        if let Some(at) = text.find(KEY) {
            let digits: String = text[at + KEY.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(id) = digits.parse() {
                return Frame::MessageCreated(id);
            }
        }
        return Frame::Other;
    }
    if text.contains(r#""type":"reset""#) {
        return Frame::Reset;
    }
    Frame::Other
}

fn summary(v: &mut [u32]) -> Value {
    v.sort_unstable();
    json!({
        "samples": v.len(),
        "p50_ms": us_to_ms(percentile(v, 50.0)),
        "p90_ms": us_to_ms(percentile(v, 90.0)),
        "p99_ms": us_to_ms(percentile(v, 99.0)),
        "max_ms": us_to_ms(v.last().copied().unwrap_or(0)),
    })
}

async fn measure(
    sut: &Sut,
    clients: &ClientRuntime,
    agents: &[AgentLogin],
    spec: &ChannelSpec,
    args: &DeskArgs,
    stop_sockets: CancellationToken,
) -> anyhow::Result<Value> {
    let pid = sut.pid();
    let tck = clock_ticks_per_sec();
    let rt = clients.handle();
    let tracker = Arc::new(Tracker::new());
    let rss_started = proc_sample(pid).unwrap_or_default();

    let connect = || connect_sockets(&rt, sut.port(), agents, &tracker, &stop_sockets);
    let (mut sockets_secs, mut rss_sockets) = (0.0, ProcSample::default());
    if args.sockets_first {
        sockets_secs = connect().await?;
        rss_sockets = proc_sample(pid).unwrap_or_default();
    }

    // 2. Every customer opens a conversation; routing assigns them.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let url: Arc<str> = Arc::from(format!("http://127.0.0.1:{}/webhooks/whatsapp", sut.port()));
    let builder = Arc::new(WebhookBuilder::new(
        &spec.waba_id,
        &spec.phone_number_id,
        &spec.display_phone_number,
    ));
    let secret: Arc<str> = Arc::from(spec.app_secret.as_str());
    let n = args.conversations;
    let t1 = Instant::now();
    let open_errors = {
        let (http, url, builder, secret) =
            (http.clone(), url.clone(), builder.clone(), secret.clone());
        let concurrency = args.open_concurrency.max(1);
        rt.spawn(async move {
            let done = AtomicU64::new(0);
            let errors: Vec<String> = futures::stream::iter(0..n)
                .map(|i| {
                    let body = webhook_body(&builder, i, "Oi");
                    let (http, url, secret, done) = (&http, &url, &secret, &done);
                    async move {
                        let r = post(http, url, secret, body).await;
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if d % 2000 == 0 {
                            eprintln!("desk: {d} conversations posted");
                        }
                        r.err()
                    }
                })
                .buffer_unordered(concurrency)
                .filter_map(|e| async move { e })
                .collect()
                .await;
            errors
        })
        .await?
    };
    let posted_secs = t1.elapsed().as_secs_f64();
    if let Some(e) = open_errors.first() {
        eprintln!(
            "desk: {} webhooks failed while opening, e.g.: {e}",
            open_errors.len()
        );
    }
    let deadline = Instant::now() + ASSIGN_TIMEOUT;
    let mut last_print = Instant::now();
    let mut opened_at = None;
    let (opened, assigned) = loop {
        let counts = sut
            .query_pairs(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'assigned' THEN 1 ELSE 0 END), 0)
                 FROM conversations WHERE $1 = $2",
            )
            .await?;
        let (opened, assigned) = counts.first().copied().unwrap_or((0, 0));
        let want = i64::try_from(n).unwrap_or(i64::MAX);
        if opened >= want && opened_at.is_none() {
            opened_at = Some(t1.elapsed().as_secs_f64());
        }
        if assigned >= want || Instant::now() > deadline {
            break (opened, assigned);
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!("desk: {opened} conversations opened, {assigned} assigned");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let assigned_secs = t1.elapsed().as_secs_f64();
    eprintln!("desk: {opened} opened, {assigned} assigned after {assigned_secs:.1} s");
    let rss_conversations = proc_sample(pid).unwrap_or_default();
    if !args.sockets_first {
        sockets_secs = connect().await?;
        rss_sockets = proc_sample(pid).unwrap_or_default();
    }

    // Who works which conversation, and which customer writes in it.
    let agent_index: HashMap<i64, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.user_id, i))
        .collect();
    let owner: HashMap<i64, usize> = sut
        .query_pairs("SELECT id, agent_id FROM conversations WHERE state = 'assigned' AND $1 = $2")
        .await?
        .into_iter()
        .filter_map(|(c, a)| agent_index.get(&a).map(|i| (c, *i)))
        .collect();
    let mut loads: HashMap<usize, i64> = HashMap::new();
    for agent in owner.values() {
        *loads.entry(*agent).or_default() += 1;
    }
    let max_load = loads.values().copied().max().unwrap_or(0);
    let targets: Vec<(i64, usize)> = sut
        .query_pairs(
            "SELECT c.id, CAST(ct.wa_id AS BIGINT) FROM conversations c
             JOIN contacts ct ON ct.id = c.contact_id
             WHERE c.state = 'assigned' AND $1 = $2 ORDER BY c.id",
        )
        .await?
        .into_iter()
        .filter(|(c, _)| owner.contains_key(c))
        .filter_map(|(c, wa)| usize::try_from(wa - WA_BASE).ok().map(|i| (c, i)))
        .collect();
    if targets.is_empty() {
        bail!("no conversation was assigned: nothing to load");
    }
    let _ = tracker.owner.set(owner);

    // 3. The load: `rate` inbound messages per second, open loop.
    let settle_frames = tracker.counters.snapshot();
    let warmup = Duration::from_secs(args.warmup_secs);
    let duration = Duration::from_secs(args.duration_secs);
    eprintln!(
        "desk: load {} msg/s for {} + {} s over {} conversations",
        args.rate,
        args.warmup_secs,
        args.duration_secs,
        targets.len()
    );
    let load = rt.spawn(drive(
        tracker.clone(),
        Arc::new(targets),
        http.clone(),
        url.clone(),
        builder.clone(),
        secret.clone(),
        args.rate,
        warmup,
        duration,
    ));
    tokio::time::sleep(warmup).await;
    let window_start_counters = tracker.counters.snapshot();
    let mark = CpuMark::take(pid, CLIENT_THREADS);
    let sampler_stop = CancellationToken::new();
    let sampler = tokio::spawn(sample_rss(pid, sampler_stop.clone()));
    let outcome = load.await?;
    let cpu = cpu_between(mark, pid, tck);
    sampler_stop.cancel();
    let rss_window_max_kb = sampler.await.unwrap_or(0);
    let window_end_counters = tracker.counters.snapshot();

    // 4. The last deliveries.
    let drain_deadline = Instant::now() + DRAIN_GRACE;
    while !tracker.flights().is_empty() && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_end = proc_sample(pid).unwrap_or_default();
    let end_counters = tracker.counters.snapshot();
    let (undelivered, unanswered) = {
        let flights = tracker.flights();
        let in_window = flights.values().filter(|f| f.in_window);
        let undelivered = in_window.clone().filter(|f| f.delivered.is_none()).count();
        let unanswered = in_window.filter(|f| f.acked.is_none()).count();
        (undelivered, unanswered)
    };
    let mut samples =
        std::mem::take(&mut *tracker.samples.lock().unwrap_or_else(|e| e.into_inner()));
    let first_error = tracker
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();

    let delta = |a: [u64; 7], b: [u64; 7], i: usize| b[i].saturating_sub(a[i]);
    let window_secs = duration.as_secs_f64();
    let sent_in_window = outcome.sent_in_window;
    let message_frames_window = delta(window_start_counters, window_end_counters, 1);
    let from_send = summary(&mut samples.from_send_us);
    let from_ack = summary(&mut samples.from_ack_us);
    let p99 = from_send["p99_ms"].as_f64().unwrap_or(f64::MAX);
    let peak_rss_mb = mb(rss_end.hwm_kb);
    let delivered = samples.from_send_us.len();
    let errors_total = delta(settle_frames, end_counters, 6);
    let p99_met = p99 < P99_TARGET_MS && undelivered == 0 && delivered > 0;
    let rss_met = peak_rss_mb < RSS_TARGET_MB;
    let mut out = json!({
        "setup": {
            "sockets": agents.len(),
            "sockets_first": args.sockets_first,
            "sockets_connect_s": round(sockets_secs, 2),
            "conversations_posted_s": round(posted_secs, 2),
            "conversations_opened": opened,
            "all_opened_s": opened_at.map(|s| round(s, 2)),
            "conversations_assigned": assigned,
            "all_assigned_s": round(assigned_secs, 2),
            "open_webhook_errors": open_errors.len(),
            "max_agent_load": max_load,
            "agents_with_conversations": loads.len(),
        },
        "load": {
            "target_rate": args.rate,
            "sent_in_window": sent_in_window,
            "achieved_rate": round(sent_in_window as f64 / window_secs, 1),
            "skipped_conversation_busy": outcome.skipped,
            "webhook_errors": errors_total,
        },
        "latency": {
            "from_send": from_send,
            "from_ack": from_ack,
            "delivered_before_ack": samples.before_ack,
        },
        "delivery": {
            "delivered_in_window": delivered,
            "undelivered_after_grace": undelivered,
            "unanswered_webhooks_after_grace": unanswered,
            "unmatched_message_events": delta(settle_frames, end_counters, 3),
            "message_frames_in_window": message_frames_window,
            "message_frames_to_other_agents_in_window": delta(window_start_counters, window_end_counters, 2),
            "message_frames_per_message": if sent_in_window > 0 {
                round(message_frames_window as f64 / sent_in_window as f64, 2)
            } else {
                0.0
            },
            "frames_in_window": delta(window_start_counters, window_end_counters, 0),
            "frames_while_opening": settle_frames[0],
            "resets": end_counters[4],
            "socket_disconnects": end_counters[5],
        },
        "server": {
            "pid": pid,
            "rss_mb": {
                "started": mb(rss_started.rss_kb),
                "after_sockets": mb(rss_sockets.rss_kb),
                "after_conversations": mb(rss_conversations.rss_kb),
                "window_max": mb(rss_window_max_kb),
                "end": mb(rss_end.rss_kb),
                "peak_hwm": peak_rss_mb,
            },
            "threads": rss_end.threads,
            "cpu": cpu,
        },
        "targets": {
            "p99_ms_under": P99_TARGET_MS,
            "rss_mb_under": RSS_TARGET_MB,
            "p99_met": p99_met,
            "rss_met": rss_met,
            "met": p99_met && rss_met,
        },
    });
    if let Some(e) = first_error {
        out["first_error"] = json!(e);
    }
    Ok(out)
}

/// Opens every agent's WebSocket (64 handshakes at a time), each waiting for its hello; returns
/// the seconds it took.
async fn connect_sockets(
    rt: &tokio::runtime::Handle,
    port: u16,
    agents: &[AgentLogin],
    tracker: &Arc<Tracker>,
    stop: &CancellationToken,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let url = format!("ws://127.0.0.1:{port}/api/ws");
    let logins: Vec<(usize, String)> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (i, a.token.clone()))
        .collect();
    let (tracker, stop, rt2) = (tracker.clone(), stop.clone(), rt.clone());
    let connected: Vec<Result<(), String>> = rt
        .spawn(async move {
            futures::stream::iter(logins)
                .map(|(i, token)| {
                    let (tx, rx) = oneshot::channel();
                    rt2.spawn(socket(
                        i,
                        url.clone(),
                        token,
                        tracker.clone(),
                        stop.clone(),
                        tx,
                    ));
                    async move { rx.await.unwrap_or_else(|_| Err("socket task died".into())) }
                })
                .buffer_unordered(64)
                .collect()
                .await
        })
        .await?;
    let errors: Vec<String> = connected.into_iter().filter_map(Result::err).collect();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "desk: {} sockets connected in {secs:.1} s ({} failed)",
        agents.len() - errors.len(),
        errors.len()
    );
    if let Some(e) = errors.first() {
        bail!("{} WebSockets failed, e.g.: {e}", errors.len());
    }
    Ok(secs)
}

fn webhook_body(builder: &WebhookBuilder, customer: usize, text: &str) -> Vec<u8> {
    let wa_id = (WA_BASE + i64::try_from(customer).unwrap_or(0)).to_string();
    let who = Customer::new(wa_id, "Cliente");
    graph_sim::to_meta_json(&builder.text(&who, text).1)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    match graph_sim::post_webhook(http, url, secret, &body).await {
        Ok((200, _)) => Ok(()),
        Ok((status, text)) => Err(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// One agent's tab: connects with the session cookie, reports once the hello arrived, then
/// records every frame until `stop`.
async fn socket(
    agent: usize,
    url: String,
    token: String,
    tracker: Arc<Tracker>,
    stop: CancellationToken,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let request = url.into_client_request().map_err(|e| e.to_string());
    let cookie = HeaderValue::from_str(&format!("{}={token}", server::http::auth::SESSION_COOKIE))
        .map_err(|e| e.to_string());
    let mut request = match (request, cookie) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(e), _) | (_, Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    request.0.headers_mut().insert(COOKIE, request.1);
    let mut ws = match tokio_tungstenite::connect_async(request.0).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            let _ = ready.send(Err(format!("connect: {e}")));
            return;
        }
    };
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"hello""#) => {
            let _ = ready.send(Ok(()));
        }
        other => {
            let _ = ready.send(Err(format!("expected hello, got {other:?}")));
            return;
        }
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws.close(None).await;
                return;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => tracker.on_frame(agent, t.as_str(), Instant::now()),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    tracker.counters.disconnects.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        }
    }
}

struct LoadOutcome {
    sent_in_window: u64,
    skipped: u64,
}

/// Sends `rate` messages per second (open loop: each POST is its own task, so a slow answer
/// does not slow the schedule) from customers of random conversations with nothing in flight.
#[allow(clippy::too_many_arguments)]
async fn drive(
    tracker: Arc<Tracker>,
    targets: Arc<Vec<(i64, usize)>>,
    http: reqwest::Client,
    url: Arc<str>,
    builder: Arc<WebhookBuilder>,
    secret: Arc<str>,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> LoadOutcome {
    let start = Instant::now();
    let window_start = start + warmup;
    let end = window_start + duration;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let (mut scheduled, mut sent_in_window, mut skipped) = (0u64, 0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = (now.duration_since(start).as_secs_f64() * rate) as u64;
        while scheduled < due {
            scheduled += 1;
            let in_window = now >= window_start;
            // A conversation with no message of ours in flight, reserved under the lock.
            let picked = {
                let mut flights = tracker.flights();
                (0..32)
                    .map(|_| targets[rng.below(targets.len())])
                    .find(|(c, _)| !flights.contains_key(c))
                    .inspect(|(c, _)| {
                        flights.insert(
                            *c,
                            Flight {
                                sent: now,
                                acked: None,
                                delivered: None,
                                in_window,
                            },
                        );
                    })
            };
            let Some((conversation_id, customer)) = picked else {
                skipped += 1;
                continue;
            };
            if in_window {
                sent_in_window += 1;
            }
            let body = webhook_body(&builder, customer, &format!("Mensagem {scheduled}"));
            let (tracker, http, url, secret) =
                (tracker.clone(), http.clone(), url.clone(), secret.clone());
            tokio::spawn(async move {
                if let Some(f) = tracker.flights().get_mut(&conversation_id) {
                    f.sent = Instant::now();
                }
                let result = post(&http, &url, &secret, body).await;
                tracker.on_answer(conversation_id, Instant::now(), result);
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    LoadOutcome {
        sent_in_window,
        skipped,
    }
}

/// A small deterministic generator (no `rand` dependency for one random index).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_server_frames() {
        let event = r#"{"at":1,"conversation_id":42,"id":7,"kind":"message.created","payload":{"message_id":9},"type":"event"}"#;
        assert!(matches!(scan_frame(event), Frame::MessageCreated(42)));
        let other = r#"{"at":1,"conversation_id":42,"id":8,"kind":"conversation.assigned","payload":{},"type":"event"}"#;
        assert!(matches!(scan_frame(other), Frame::Other));
        assert!(matches!(scan_frame(r#"{"type":"reset"}"#), Frame::Reset));
        assert!(matches!(
            scan_frame(r#"{"type":"hello","last_event_id":3}"#),
            Frame::Other
        ));
    }
}
