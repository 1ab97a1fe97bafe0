//! `ingest`: how fast Atende acknowledges WhatsApp webhooks durably, compared with a handler that
//! does nothing on the same server.
//!
//! For each backend: start the server on a fresh database, register one channel, pre-build
//! distinct signed single-text-message webhook bodies (every one a new wamid, so nothing is
//! deduplicated), then drive closed-loop load on `POST /webhooks/whatsapp` (each 200 means the body
//! was committed to the inbox). Wait until the inbox processor has drained what was stored and
//! check that the number of stored bodies equals the number of 200s. Then the same load, with the
//! same bodies, on `POST /noop` (reads the body, answers 200) as the reference.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use graph_sim::{Customer, WebhookBuilder};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;
use sqlx::Connection;

use crate::harness::{Backend, BackendChoice, ChannelSpec, Harness};
use crate::load::{self, Plan, Request, Source};
use crate::report::{self, CpuSampler, PhaseReport, percentile, round};

/// Durable ingest must reach this share of the no-op reference's throughput (SQLite).
const TARGET_RATIO: f64 = 0.30;

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Database(s) to run against. PostgreSQL: a fresh database is created on
    /// $ATENDE_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) and dropped.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendChoice,
    /// Measured seconds of each phase (webhook, then noop).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections, each sending one request after the other.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Unmeasured seconds before each phase's window.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Distinct customers (wa_ids) the messages come from; each customer's first message opens a
    /// conversation, the next ones join it.
    #[arg(long, default_value_t = 1000)]
    customers: usize,
    /// Longest wait for the inbox processor to drain the stored webhooks, in seconds.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
    /// Webhook bodies signed before the run (more are built on the fly if the run outpaces them,
    /// counted in `bodies_built_during_run`). [default: 6000 per second of warmup + load]
    #[arg(long)]
    bodies: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Output {
    scenario: &'static str,
    machine: report::Machine,
    config: RunConfig,
    note: String,
    results: Vec<BackendResult>,
}

#[derive(Debug, Serialize)]
struct RunConfig {
    seconds: u64,
    warmup: u64,
    connections: usize,
    customers: usize,
}

#[derive(Debug, Serialize)]
struct BackendResult {
    backend: Backend,
    webhook: PhaseReport,
    noop: PhaseReport,
    /// webhook.acks_per_sec / noop.acks_per_sec
    ratio: f64,
    /// Only SQLite has a target; PostgreSQL is reported.
    target_ratio: Option<f64>,
    meets_target: Option<bool>,
    /// Every 200 of the webhook phase, warmup and tail included.
    acks_total: u64,
    /// Inbox rows pending + done after the drain wait.
    stored: i64,
    /// acks_total - stored: acknowledged but not stored (must be 0).
    lost: i64,
    /// Rows the processor turned into dead letters (expected 0).
    dead: i64,
    /// Rows still pending when the drain wait ended (0 when drained).
    pending_after_drain: i64,
    drained: bool,
    /// Time from the end of the webhook phase until nothing was pending.
    drain_secs: f64,
    /// Group commit as seen in the inbox: rows of one transaction share `received_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_groups: Option<GroupStats>,
    body_bytes_avg: usize,
    bodies_built_during_run: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct GroupStats {
    /// Distinct `received_at` milliseconds in the measured window (≈ committed transactions;
    /// two transactions starting in the same millisecond count as one).
    commits: usize,
    commits_per_sec: f64,
    rows_per_commit_mean: f64,
    rows_per_commit_p50: u32,
    rows_per_commit_p90: u32,
    rows_per_commit_max: u32,
}

pub async fn run(args: IngestArgs) -> anyhow::Result<serde_json::Value> {
    let mut results = Vec::new();
    for backend in args.backend.backends() {
        results.push(run_backend(&args, backend).await?);
    }
    let cpus = report::cpus();
    let output = Output {
        scenario: "ingest",
        machine: report::machine(),
        config: RunConfig {
            seconds: args.seconds,
            warmup: args.warmup,
            connections: args.connections,
            customers: args.customers,
        },
        note: format!(
            "The load generator (its own tokio runtime) and the server (another runtime, same \
             process) share the machine's {cpus} cores, and PostgreSQL runs on the same machine \
             too: absolute numbers understate a dedicated server; compare the ratio."
        ),
        results,
    };
    Ok(serde_json::to_value(output)?)
}

async fn run_backend(args: &IngestArgs, backend: Backend) -> anyhow::Result<BackendResult> {
    let channel = ChannelSpec::bench_default();
    let prebuilt = args
        .bodies
        .unwrap_or(6000 * usize::try_from(args.warmup + args.seconds).unwrap_or(usize::MAX));
    eprintln!("[{backend:?}] signing {prebuilt} webhook bodies");
    let bodies = Arc::new(WebhookBodies::build(&channel, args.customers, prebuilt).await?);

    eprintln!("[{backend:?}] starting the server");
    let harness = Harness::start(backend).await?;
    let result = measure(args, &harness, &channel, bodies).await;
    let stopped = harness.stop().await;
    let result = result?;
    if let Err(e) = stopped {
        eprintln!("warning: {e:#}");
    }
    Ok(result)
}

async fn measure(
    args: &IngestArgs,
    harness: &Harness,
    channel: &ChannelSpec,
    bodies: Arc<WebhookBodies>,
) -> anyhow::Result<BackendResult> {
    let backend = harness.backend;
    harness.add_channel(channel).await?;
    let plan = |path: &str| Plan {
        url: harness.url(path),
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.seconds),
        timeout: Duration::from_secs(30),
    };

    eprintln!(
        "[{backend:?}] webhook: {} connections, {} s warmup + {} s",
        args.connections, args.warmup, args.seconds
    );
    let cpu = CpuSampler::start();
    let webhook = load::run(plan("/webhooks/whatsapp"), bodies.clone()).await?;
    let webhook_cpu = cpu.finish();
    let webhook_report = PhaseReport::new(&webhook, webhook_cpu);
    eprintln!(
        "[{backend:?}] webhook: {} acks/s, p99 {} ms; waiting for the inbox to drain",
        webhook_report.acks_per_sec, webhook_report.p99_ms
    );

    let drain_started = Instant::now();
    let deadline = drain_started + Duration::from_secs(args.drain_timeout);
    let (pending, done, dead) = loop {
        let counts = harness.state.store.inbox_counts().await?;
        if counts.0 == 0 || Instant::now() >= deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drain_secs = round(drain_started.elapsed().as_secs_f64(), 2);
    let stored = pending + done;
    let lost = i64::try_from(webhook.ok_total).unwrap_or(i64::MAX) - stored;
    eprintln!(
        "[{backend:?}] inbox after {drain_secs} s: pending {pending}, done {done}, dead {dead}; \
         acks {} -> lost {lost}",
        webhook.ok_total
    );
    let commit_groups = match commit_groups(harness, &webhook).await {
        Ok(groups) => Some(groups),
        Err(e) => {
            eprintln!("warning: cannot read commit groups: {e:#}");
            None
        }
    };

    eprintln!("[{backend:?}] noop: same load on POST /noop");
    let reference = Arc::new(Reuse(bodies.clone()));
    let cpu = CpuSampler::start();
    let noop = load::run(plan("/noop"), reference).await?;
    let noop_report = PhaseReport::new(&noop, cpu.finish());
    eprintln!(
        "[{backend:?}] noop: {} req/s, p99 {} ms",
        noop_report.acks_per_sec, noop_report.p99_ms
    );

    let ratio = if noop_report.acks_per_sec > 0.0 {
        round(webhook_report.acks_per_sec / noop_report.acks_per_sec, 3)
    } else {
        0.0
    };
    let target_ratio = (backend == Backend::Sqlite).then_some(TARGET_RATIO);
    Ok(BackendResult {
        backend,
        webhook: webhook_report,
        noop: noop_report,
        ratio,
        target_ratio,
        meets_target: target_ratio.map(|t| ratio >= t),
        acks_total: webhook.ok_total,
        stored,
        lost,
        dead,
        pending_after_drain: pending,
        drained: pending == 0,
        drain_secs,
        commit_groups,
        body_bytes_avg: bodies.average_len(),
        bodies_built_during_run: bodies.built_during_run.load(Ordering::Relaxed),
        first_error: webhook.first_error.or(noop.first_error),
    })
}

/// Reads how the inbox rows of the measured window were grouped into transactions: the writer
/// stamps every row of one transaction with the same `received_at`.
async fn commit_groups(harness: &Harness, webhook: &load::Outcome) -> anyhow::Result<GroupStats> {
    const SQL: &str = "SELECT received_at, COUNT(*) FROM inbox
                       WHERE received_at >= $1 AND received_at < $2 GROUP BY received_at";
    let (from, to) = (webhook.window_start_unix_ms, webhook.window_end_unix_ms);
    let rows: Vec<(i64, i64)> = match harness.backend {
        Backend::Sqlite => {
            let options: sqlx::sqlite::SqliteConnectOptions = harness.database_url().parse()?;
            let mut conn = sqlx::SqliteConnection::connect_with(&options.read_only(true)).await?;
            let rows = sqlx::query_as(SQL).bind(from).bind(to).fetch_all(&mut conn).await?;
            let _ = conn.close().await;
            rows
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(harness.database_url()).await?;
            let rows = sqlx::query_as(SQL).bind(from).bind(to).fetch_all(&mut conn).await?;
            let _ = conn.close().await;
            rows
        }
    };
    let mut sizes: Vec<u32> = rows
        .iter()
        .map(|(_, n)| u32::try_from(*n).unwrap_or(u32::MAX))
        .collect();
    sizes.sort_unstable();
    let rows_total: u64 = sizes.iter().map(|n| u64::from(*n)).sum();
    let commits = sizes.len();
    let secs = webhook.window.as_secs_f64();
    Ok(GroupStats {
        commits,
        commits_per_sec: if secs > 0.0 { round(commits as f64 / secs, 1) } else { 0.0 },
        rows_per_commit_mean: if commits > 0 {
            round(rows_total as f64 / commits as f64, 2)
        } else {
            0.0
        },
        rows_per_commit_p50: percentile(&sizes, 50.0),
        rows_per_commit_p90: percentile(&sizes, 90.0),
        rows_per_commit_max: sizes.last().copied().unwrap_or(0),
    })
}

/// Distinct signed webhook bodies: request `seq` gets body `seq`, built before the run; past the
/// pre-built ones, bodies are built on the fly (and counted).
struct WebhookBodies {
    prebuilt: Vec<Request>,
    maker: BodyMaker,
    built_during_run: AtomicU64,
}

#[derive(Clone)]
struct BodyMaker {
    builder: WebhookBuilder,
    customers: Arc<Vec<Customer>>,
    app_secret: String,
}

impl BodyMaker {
    fn make(&self, seq: u64) -> Request {
        let index = usize::try_from(seq).unwrap_or(usize::MAX) % self.customers.len();
        let customer = &self.customers[index];
        let text = format!("Olá! Preciso de ajuda com o pedido nº {seq}, por favor.");
        let (_wamid, payload) = self.builder.text(customer, &text);
        let body = graph_sim::to_meta_json(&payload);
        let signature = graph_sim::sign(&self.app_secret, &body);
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        if let Ok(value) = HeaderValue::from_str(&signature) {
            headers.push((HeaderName::from_static("x-hub-signature-256"), value));
        }
        Request { body: Bytes::from(body), headers }
    }
}

impl WebhookBodies {
    async fn build(
        channel: &ChannelSpec,
        customers: usize,
        count: usize,
    ) -> anyhow::Result<WebhookBodies> {
        let customers: Vec<Customer> = (0..customers.max(1))
            .map(|i| Customer::new(format!("55119{:08}", 10_000_000 + i), format!("Cliente {i}")))
            .collect();
        let maker = BodyMaker {
            builder: WebhookBuilder::new(
                &channel.waba_id,
                &channel.phone_number_id,
                &channel.display_phone_number,
            ),
            customers: Arc::new(customers),
            app_secret: channel.app_secret.clone(),
        };
        let threads = report::cpus();
        let chunk = count.div_ceil(threads).max(1);
        let worker_maker = maker.clone();
        let prebuilt = tokio::task::spawn_blocking(move || {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..count)
                    .step_by(chunk)
                    .map(|from| {
                        let maker = worker_maker.clone();
                        let to = (from + chunk).min(count);
                        scope.spawn(move || {
                            (from..to).map(|seq| maker.make(seq as u64)).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().map_err(|_| anyhow::anyhow!("body builder panicked")))
                    .collect::<anyhow::Result<Vec<_>>>()
                    .map(|parts| parts.concat())
            })
        })
        .await
        .context("body builder task failed")??;
        Ok(WebhookBodies { prebuilt, maker, built_during_run: AtomicU64::new(0) })
    }

    fn average_len(&self) -> usize {
        let total: usize = self.prebuilt.iter().map(|r| r.body.len()).sum();
        total.checked_div(self.prebuilt.len()).unwrap_or(0)
    }
}

impl Source for WebhookBodies {
    fn request(&self, seq: u64) -> Request {
        match usize::try_from(seq).ok().and_then(|i| self.prebuilt.get(i)) {
            Some(request) => request.clone(),
            None => {
                self.built_during_run.fetch_add(1, Ordering::Relaxed);
                self.maker.make(seq)
            }
        }
    }
}

/// The reference phase: the same pre-built requests, reused round-robin (nothing is stored, so
/// repeats do not matter).
struct Reuse(Arc<WebhookBodies>);

impl Source for Reuse {
    fn request(&self, seq: u64) -> Request {
        let bodies = &self.0.prebuilt;
        if bodies.is_empty() {
            return self.0.maker.make(seq);
        }
        let index = usize::try_from(seq).unwrap_or(0) % bodies.len();
        bodies[index].clone()
    }
}
