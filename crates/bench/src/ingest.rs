//! `ingest`: how fast Atende acknowledges WhatsApp webhooks durably, compared with a handler that
//! does nothing on the same server.
//!
//! For each backend: start the server on a fresh database and register one channel; pre-build
//! distinct signed single-text-message webhook bodies (every one a new wamid, so nothing is
//! deduplicated). Then two phases of the same closed-loop load with the same bodies: first
//! `POST /noop` (reads the body, answers 200), the reference; then `POST /webhooks/whatsapp`, where
//! each 200 means the body was committed to the inbox. Afterwards wait (bounded) for the inbox
//! processor to drain and check that the inbox holds exactly as many bodies as were acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use graph_sim::{Customer, WebhookBuilder};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;

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
    /// Measured seconds of each phase (noop, then webhook).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections, each sending one request after the other.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Unmeasured seconds before each phase's window.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Distinct customers (wa_ids) the messages come from; each customer's first message opens a
    /// conversation, the next ones join it.
    #[arg(long, default_value_t = 1000)]
    customers: usize,
    /// Longest wait, in seconds, for the inbox processor to drain what the webhook phase stored.
    /// The processor is slower than ingest, so the short default usually ends with rows still
    /// pending (they are stored, so `lost` is exact either way); use 180 for a full drain.
    #[arg(long, default_value_t = 3)]
    drain_timeout: u64,
    /// Diagnostic: keep the inbox processor idle during the webhook phase (by holding its lease)
    /// to measure ingest alone; it drains afterwards.
    #[arg(long)]
    pause_processing: bool,
    /// Webhook bodies signed before the run (more are built on the fly if the run outpaces them,
    /// counted in `bodies_built_during_run`). [default: 12000 per second of warmup + load]
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
    drain_timeout: u64,
    pause_processing: bool,
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
    /// Every 200 of the webhook phase, warmup and last in-flight answers included.
    acks_total: u64,
    /// Inbox rows pending + done after the drain wait.
    stored: i64,
    /// acks_total - stored: acknowledged but not stored (must be 0).
    lost: i64,
    /// Rows the processor turned into dead letters (expected 0).
    dead: i64,
    /// Rows the processor finished while the webhook load was running.
    processed_during_load: i64,
    /// Rows still pending when the drain wait ended (0 when drained).
    pending_after_drain: i64,
    drained: bool,
    /// Time from the end of the webhook phase until nothing was pending (or the timeout).
    drain_secs: f64,
    /// Processor throughput during the drain wait, rows per second.
    processed_per_sec: f64,
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
    /// transactions starting in the same millisecond count as one).
    commits: usize,
    commits_per_sec: f64,
    rows_per_commit_mean: f64,
    rows_per_commit_p50: u32,
    rows_per_commit_p90: u32,
    rows_per_commit_max: u32,
}

/// Runs the scenario and returns its JSON (keys in the documented order).
pub async fn run(args: IngestArgs) -> anyhow::Result<String> {
    let channel = ChannelSpec::bench_default();
    let prebuilt = args
        .bodies
        .unwrap_or(12_000 * usize::try_from(args.warmup + args.seconds).unwrap_or(usize::MAX));
    eprintln!("signing {prebuilt} webhook bodies");
    // Each backend gets its own fresh database, so both can use the same bodies.
    let bodies = WebhookBodies::build(&channel, args.customers, prebuilt).await?;

    let mut results = Vec::new();
    for backend in args.backend.backends() {
        let bodies = Arc::new(bodies.clone_unused());
        eprintln!("[{backend:?}] starting the server");
        let harness = Harness::start(backend).await?;
        let result = measure(&args, &harness, &channel, bodies).await;
        let stopped = harness.stop().await;
        results.push(result?);
        if let Err(e) = stopped {
            eprintln!("warning: {e:#}");
        }
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
            drain_timeout: args.drain_timeout,
            pause_processing: args.pause_processing,
        },
        note: format!(
            "The load generator (its own tokio runtime) and the server (another runtime, same \
             process) share this machine's {cpus} cores, and PostgreSQL runs on the same machine \
             too: absolute numbers understate a dedicated server; compare the ratio. The noop \
             reference runs first, on the fresh server, so the inbox processor's backlog cannot \
             slow it down."
        ),
        results,
    };
    Ok(serde_json::to_string_pretty(&output)?)
}

const PAUSE_HOLDER: &str = "bench-pause";

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

    // The reference first: nothing is pending yet, so no background work competes with it.
    eprintln!(
        "[{backend:?}] noop: {} connections, {} s warmup + {} s",
        args.connections, args.warmup, args.seconds
    );
    let cpu = CpuSampler::start();
    let noop = load::run(plan("/noop"), Arc::new(Reuse(bodies.clone()))).await?;
    let noop_report = PhaseReport::new(&noop, cpu.finish());
    eprintln!(
        "[{backend:?}] noop: {} req/s, p99 {} ms",
        noop_report.acks_per_sec, noop_report.p99_ms
    );

    if args.pause_processing {
        let hour_later = store::now_ms() + 3_600_000;
        harness
            .force_lease("inbox", PAUSE_HOLDER, hour_later)
            .await?;
    }
    eprintln!("[{backend:?}] webhook: same load on POST /webhooks/whatsapp");
    let cpu = CpuSampler::start();
    let webhook = load::run(plan("/webhooks/whatsapp"), bodies.clone()).await?;
    let webhook_report = PhaseReport::new(&webhook, cpu.finish());
    let (_, processed_during_load, _) = harness.state.store.inbox_counts().await?;
    if args.pause_processing {
        harness.force_lease("inbox", PAUSE_HOLDER, 0).await?;
        harness.state.inbox_wake.notify_one();
    }
    eprintln!(
        "[{backend:?}] webhook: {} acks/s, p99 {} ms; {processed_during_load} processed during \
         the load; waiting up to {} s for the inbox to drain",
        webhook_report.acks_per_sec, webhook_report.p99_ms, args.drain_timeout
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
    let drain_elapsed = drain_started.elapsed().as_secs_f64();
    let processed_per_sec = if drain_elapsed > 0.0 {
        round((done - processed_during_load) as f64 / drain_elapsed, 1)
    } else {
        0.0
    };
    let stored = pending + done;
    let lost = i64::try_from(webhook.ok_total).unwrap_or(i64::MAX) - stored;
    eprintln!(
        "[{backend:?}] inbox after {drain_elapsed:.1} s: pending {pending}, done {done}, dead \
         {dead}; acks {} -> lost {lost}",
        webhook.ok_total
    );
    if pending > 0 {
        if backend == Backend::Postgres {
            // Park the processor between two batches, so stopping the server does not pull the
            // pool from under a transaction (which it would log as an error).
            harness
                .force_lease("inbox", PAUSE_HOLDER, store::now_ms() + 3_600_000)
                .await?;
            quiesce(harness).await?;
        } else {
            // On SQLite a second writer would break the processor's read-then-write transaction
            // (SQLITE_BUSY), so the processor is left running until the server stops.
            eprintln!(
                "[{backend:?}] stopping with {pending} webhooks still pending: the inbox processor \
                 may log one \"closed pool\" error while the server shuts down; that is expected"
            );
        }
    }
    let commit_groups = match commit_groups(harness, &webhook).await {
        Ok(groups) => Some(groups),
        Err(e) => {
            eprintln!("warning: cannot read commit groups: {e:#}");
            None
        }
    };

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
        processed_during_load,
        pending_after_drain: pending,
        drained: pending == 0,
        drain_secs: round(drain_elapsed, 2),
        processed_per_sec,
        commit_groups,
        body_bytes_avg: bodies.average_len(),
        bodies_built_during_run: bodies.built_during_run.load(Ordering::Relaxed),
        first_error: webhook.first_error.or(noop.first_error),
    })
}

/// Waits (at most 5 s) until the processor stops finishing rows.
async fn quiesce(harness: &Harness) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = harness.state.store.inbox_counts().await?.1;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let done = harness.state.store.inbox_counts().await?.1;
        if done == last {
            break;
        }
        last = done;
    }
    Ok(())
}

/// Reads how the inbox rows of the measured window were grouped into transactions: the writer
/// stamps every row of one transaction with the same `received_at`.
async fn commit_groups(harness: &Harness, webhook: &load::Outcome) -> anyhow::Result<GroupStats> {
    const SQL: &str = "SELECT received_at, COUNT(*) FROM inbox
                       WHERE received_at >= $1 AND received_at < $2 GROUP BY received_at";
    let rows = harness
        .query_pairs(
            SQL,
            webhook.window_start_unix_ms,
            webhook.window_end_unix_ms,
        )
        .await?;
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
        commits_per_sec: if secs > 0.0 {
            round(commits as f64 / secs, 1)
        } else {
            0.0
        },
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
    prebuilt: Arc<Vec<Request>>,
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
        Request {
            body: Bytes::from(body),
            headers,
        }
    }
}

impl WebhookBodies {
    async fn build(
        channel: &ChannelSpec,
        customers: usize,
        count: usize,
    ) -> anyhow::Result<WebhookBodies> {
        let customers: Vec<Customer> = (0..customers.max(1))
            .map(|i| {
                Customer::new(
                    format!("55119{:08}", 10_000_000 + i),
                    format!("Cliente {i}"),
                )
            })
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
                            (from..to)
                                .map(|seq| maker.make(seq as u64))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .map_err(|_| anyhow::anyhow!("body builder panicked"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
                    .map(|parts| parts.concat())
            })
        })
        .await
        .context("body builder task failed")??;
        Ok(WebhookBodies {
            prebuilt: Arc::new(prebuilt),
            maker,
            built_during_run: AtomicU64::new(0),
        })
    }

    /// The same pre-built bodies (shared, not copied) with a fresh on-the-fly counter.
    fn clone_unused(&self) -> WebhookBodies {
        WebhookBodies {
            prebuilt: self.prebuilt.clone(),
            maker: self.maker.clone(),
            built_during_run: AtomicU64::new(0),
        }
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
