//! The closed-loop HTTP load generator shared by the scenarios.
//!
//! `connections` tasks each own a reqwest client limited to one HTTP/1.1 keep-alive connection and
//! send one request after the other (the next only after the previous answer) for `warmup` +
//! `duration`. Only answers that arrive inside the measured window (after the warmup, before the
//! end) count for throughput and latency; every 200, whenever it arrives, counts in `ok_total`, so
//! a scenario can compare acknowledgements with what the server stored.
//!
//! The generator runs on its own tokio runtime in its own OS threads, like a separate load process
//! would, so it does not queue behind the server's tasks on the server's runtime (they still
//! share the machine's cores).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue};

/// One request body with its extra headers.
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Produces the `seq`-th request of a run (`seq` counts from 0 across all connections). Called on
/// the hot path, so implementations should hand out pre-built requests.
pub trait Source: Send + Sync + 'static {
    fn request(&self, seq: u64) -> Request;
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// Every request is `POST url`.
    pub url: String,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Per-request timeout; a timeout counts as an error.
    pub timeout: Duration,
}

/// What happened during one run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Length of the measured window.
    pub window: Duration,
    /// Unix milliseconds of the window's start and end (to match server-side timestamps).
    pub window_start_unix_ms: i64,
    pub window_end_unix_ms: i64,
    /// Latency of every 200 answered inside the window, in microseconds (unsorted).
    pub latencies_us: Vec<u32>,
    /// Answers inside the window: 200s and everything else (other statuses, transport errors).
    pub ok: u64,
    pub errors: u64,
    /// Every 200 of the run, warmup and the last in-flight answers included.
    pub ok_total: u64,
    /// Every failed request of the run.
    pub errors_total: u64,
    /// Every request sent.
    pub sent_total: u64,
    /// The first error seen, for diagnosis.
    pub first_error: Option<String>,
}

/// Runs the plan on a dedicated runtime with as many worker threads as the machine has cores and
/// returns once every connection finished its last request.
pub async fn run(plan: Plan, source: Arc<dyn Source>) -> anyhow::Result<Outcome> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load-driver".to_owned())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(crate::report::cpus())
                .thread_name("load")
                .enable_all()
                .build()
                .context("cannot start the load runtime")
                .and_then(|rt| rt.block_on(drive(plan, source)));
            let _ = tx.send(result);
        })
        .context("cannot start the load thread")?;
    rx.await.context("the load thread panicked")?
}

async fn drive(plan: Plan, source: Arc<dyn Source>) -> anyhow::Result<Outcome> {
    let clients = (0..plan.connections)
        .map(|_| {
            reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .timeout(plan.timeout)
                .build()
                .context("cannot build an HTTP client")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let start_unix_ms = unix_ms();
    let window_start = start + plan.warmup;
    let end = window_start + plan.duration;
    let url: Arc<str> = Arc::from(plan.url.as_str());

    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let source = source.clone();
            let seq = seq.clone();
            let url = url.clone();
            tokio::spawn(connection(client, url, source, seq, window_start, end))
        })
        .collect();

    let mut total = Outcome {
        window: plan.duration,
        window_start_unix_ms: start_unix_ms + millis(plan.warmup),
        window_end_unix_ms: start_unix_ms + millis(plan.warmup + plan.duration),
        ..Outcome::default()
    };
    for task in tasks {
        let part = task.await.context("a load connection panicked")?;
        total.latencies_us.extend_from_slice(&part.latencies_us);
        total.ok += part.ok;
        total.errors += part.errors;
        total.ok_total += part.ok_total;
        total.errors_total += part.errors_total;
        total.sent_total += part.sent_total;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    Ok(total)
}

async fn connection(
    client: reqwest::Client,
    url: Arc<str>,
    source: Arc<dyn Source>,
    seq: Arc<std::sync::atomic::AtomicU64>,
    window_start: Instant,
    end: Instant,
) -> Outcome {
    let mut out = Outcome::default();
    loop {
        let sent_at = Instant::now();
        if sent_at >= end {
            break;
        }
        let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = source.request(n);
        let mut builder = client.post(&*url).body(request.body);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        out.sent_total += 1;
        let result = match builder.send().await {
            // Read the whole answer so the connection can be reused.
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Ok(_) if status == reqwest::StatusCode::OK => Ok(()),
                    Ok(body) => Err(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )),
                    Err(e) => Err(format!("reading the answer: {e}")),
                }
            }
            Err(e) => Err(format!("{e}")),
        };
        let answered_at = Instant::now();
        let in_window = answered_at >= window_start && answered_at <= end;
        match result {
            Ok(()) => {
                out.ok_total += 1;
                if in_window {
                    out.ok += 1;
                    let us = answered_at.duration_since(sent_at).as_micros();
                    out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Err(e) => {
                out.errors_total += 1;
                if in_window {
                    out.errors += 1;
                }
                if out.first_error.is_none() {
                    out.first_error = Some(e);
                }
                // A refused connection fails instantly; do not spin on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    out
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
