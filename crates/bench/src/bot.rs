//! `bot`: the chatbot under load. The demo flow is seeded (as on a first start) and N customers
//! walk it to the hand-off: each sends "Oi" (one signed webhook), waits until graph-sim has
//! received the bot's greeting (with the protocol number) and its menu, reads it for the think
//! time, then picks "Falar com atendente" from the list (queue "atendimento", open 24/7) and waits
//! for the hand-off message. Latency is measured per step, from the moment the webhook POST
//! returned 200 to graph-sim's `received_at` of the first bot message to that customer after it.
//!
//! Two load models. Open loop (the default): customers arrive on a fixed schedule whatever the
//! bot's speed, as people do; with the defaults (200 arrivals/s, 25 s think time) the last one
//! arrives as the first one chooses, so all 5,000 are in the flow at once. Closed loop
//! (`--closed-loop N`): N customers at a time, each replaced as soon as one finishes, with no think
//! time: how many conversations per second the bot sustains, and the latency at that saturation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;
use clap::Args;
use graph_sim::{AutoStatuses, Customer, GraphSim, PhoneNumber, SimConfig, WebhookBuilder};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::harness::{Backend, BackendChoice, ChannelSpec, Harness};
use crate::report::{self, percentile, round, us_to_ms};

#[derive(Debug, Clone, Args)]
pub struct BotArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: BackendChoice,
    /// Customers walked through the demo flow to the hand-off.
    #[arg(long, default_value_t = 5_000)]
    pub customers: usize,
    /// Open loop: new customers per second, on schedule.
    #[arg(long, default_value_t = 200.0)]
    pub arrivals_per_sec: f64,
    /// Open loop: how long a customer reads the menu before choosing, in ms.
    #[arg(long, default_value_t = 25_000)]
    pub think_ms: u64,
    /// Closed loop instead: this many customers at once, no think time (saturation).
    #[arg(long)]
    pub closed_loop: Option<usize>,
}

impl BotArgs {
    fn think(&self) -> Duration {
        match self.closed_loop {
            Some(_) => Duration::ZERO,
            None => Duration::from_millis(self.think_ms),
        }
    }

    fn load(&self) -> Value {
        match self.closed_loop {
            Some(n) => json!({ "model": "closed", "concurrency": n, "think_ms": 0 }),
            None => json!({
                "model": "open",
                "arrivals_per_sec": self.arrivals_per_sec,
                "think_ms": self.think_ms,
            }),
        }
    }
}

/// How long a customer waits for each bot answer before counting an error.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The demo flow's "Falar com atendente" row (domain::flow::demo_flow).
const HANDOFF_ID: &str = "atendente";
const HANDOFF_TITLE: &str = "Falar com atendente";

pub async fn run(args: BotArgs) -> anyhow::Result<String> {
    if args.customers == 0 || args.closed_loop == Some(0) || args.arrivals_per_sec <= 0.0 {
        bail!("--customers, --closed-loop and --arrivals-per-sec must be positive");
    }
    let mut results = Vec::new();
    for backend in args.backend.backends() {
        eprintln!("bot: {backend:?}");
        results.push(run_backend(backend, &args).await?);
    }
    Ok(serde_json::to_string_pretty(&json!({
        "scenario": "bot",
        "machine": report::machine(),
        "note": "graph-sim (the fake Meta), the customers and the server share the machine's cores; status webhooks are off and the channel's rate limit is 1,000 msg/s so the outbound limiter is not what is measured; latency uses graph-sim's own received_at of each bot message",
        "results": results,
    }))?)
}

/// One message graph-sim accepted for a customer.
struct Seen {
    at: SystemTime,
    kind: String,
    text: String,
}

/// What graph-sim has received, by recipient, fed by one following task; `generation` ticks on every
/// batch of new messages so waiting customers re-check.
struct Tracker {
    by_to: Mutex<HashMap<String, Vec<Seen>>>,
    generation: watch::Sender<u64>,
}

/// Customers between their first message and their last answer, and the most there ever were.
#[derive(Default)]
struct InFlow {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlow {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Outcome {
    /// Webhook-200 to first bot message, microseconds.
    greeting_us: Vec<u32>,
    handoff_us: Vec<u32>,
    greeted: usize,
    handed_off: usize,
    webhook_errors: usize,
    greeting_timeouts: usize,
    handoff_timeouts: usize,
}

fn spec() -> ChannelSpec {
    ChannelSpec {
        name: "bot".to_owned(),
        phone_number_id: "500000000000001".to_owned(),
        waba_id: "600000000000001".to_owned(),
        display_phone_number: "5511950000000".to_owned(),
        access_token: "bench-access-token".to_owned(),
        app_secret: "bench-app-secret".to_owned(),
    }
}

async fn run_backend(backend: Backend, args: &BotArgs) -> anyhow::Result<Value> {
    let harness = Harness::start(backend).await?;
    let spec = spec();
    let mut sim_cfg = SimConfig::new(&spec.app_secret, &spec.access_token, &spec.phone_number_id);
    sim_cfg.phone_numbers = vec![PhoneNumber::new(
        &spec.phone_number_id,
        &spec.display_phone_number,
        &spec.waba_id,
    )];
    sim_cfg.auto_statuses = AutoStatuses::NONE;
    let sim = GraphSim::start(sim_cfg).await?;

    // The demo flow and its queues, exactly as a first start seeds them.
    server::workers::bot::seed_demo_flow(&harness.state.store).await?;
    let channel_id = harness.add_channel(&spec).await?;
    let update = store::channels::ChannelUpdate {
        graph_base_url: Some(sim.base_url()),
        rate_limit_per_sec: Some(1000),
        ..Default::default()
    };
    harness
        .state
        .store
        .update_channel(channel_id, &update)
        .await?;
    harness.state.channels.reload().await?;

    let (generation, _) = watch::channel(0u64);
    let tracker = Arc::new(Tracker {
        by_to: Mutex::new(HashMap::new()),
        generation,
    });
    let stop_poll = CancellationToken::new();
    let follower = tokio::spawn(follow(sim.clone(), tracker.clone(), stop_poll.clone()));

    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.closed_loop.unwrap_or(256))
        .build()?;
    let url = harness.url("/webhooks/whatsapp");
    let spec = Arc::new(spec);
    // Closed loop: a permit per customer in flight. Open loop: arrivals follow the clock.
    let permits = Arc::new(Semaphore::new(
        args.closed_loop.unwrap_or(Semaphore::MAX_PERMITS),
    ));
    let in_flow = Arc::new(InFlow::default());
    let think = args.think();
    let cpu = report::CpuSampler::start();
    let started = Instant::now();
    let schedule = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(args.customers);
    for i in 0..args.customers {
        if args.closed_loop.is_none() {
            let due = Duration::from_secs_f64(i as f64 / args.arrivals_per_sec);
            tokio::time::sleep_until(schedule + due).await;
        }
        let permit = permits.clone().acquire_owned().await?;
        let (tracker, outcome, http, url, spec, in_flow) = (
            tracker.clone(),
            outcome.clone(),
            http.clone(),
            url.clone(),
            spec.clone(),
            in_flow.clone(),
        );
        tasks.push(tokio::spawn(async move {
            in_flow.enter();
            customer(i, think, &tracker, &outcome, &http, &url, &spec).await;
            in_flow.leave();
            drop(permit);
        }));
        if (i + 1) % 1000 == 0 {
            eprintln!("bot: {} customers started", i + 1);
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let wall = started.elapsed();
    let cpu = cpu.finish();
    stop_poll.cancel();
    let _ = follower.await;

    let protocols = harness
        .query_pairs(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state <> 'bot' THEN 1 ELSE 0 END), 0)
             FROM conversations WHERE $1 = $2",
            0,
            0,
        )
        .await
        .ok()
        .and_then(|rows| rows.first().copied());
    harness.stop().await?;
    sim.shutdown();

    let o = std::mem::take(&mut *outcome.lock().unwrap_or_else(|e| e.into_inner()));
    let secs = wall.as_secs_f64();
    let summary = |v: &[u32]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        json!({
            "samples": v.len(),
            "p50_ms": us_to_ms(percentile(&v, 50.0)),
            "p99_ms": us_to_ms(percentile(&v, 99.0)),
            "max_ms": us_to_ms(v.last().copied().unwrap_or(0)),
        })
    };
    let mut both: Vec<u32> = o.greeting_us.iter().chain(&o.handoff_us).copied().collect();
    both.sort_unstable();
    let p99_both = us_to_ms(percentile(&both, 99.0));
    let errors = o.webhook_errors + o.greeting_timeouts + o.handoff_timeouts;
    Ok(json!({
        "backend": backend,
        "customers": args.customers,
        "load": args.load(),
        "peak_customers_in_flow": in_flow.peak.load(Ordering::Relaxed),
        "wall_s": round(secs, 2),
        "conversations_opened": o.greeted,
        "conversations_in_db": protocols.map(|(n, _)| n),
        "conversations_handed_off_in_db": protocols.map(|(_, n)| n),
        "protocols_per_sec": round(o.greeted as f64 / secs, 1),
        "reached_handoff": o.handed_off,
        "handoffs_per_sec": round(o.handed_off as f64 / secs, 1),
        "errors": {
            "total": errors,
            "webhook_not_200": o.webhook_errors,
            "no_greeting_menu_within_30s": o.greeting_timeouts,
            "no_handoff_within_30s": o.handoff_timeouts,
        },
        "latency": {
            "oi_to_greeting": summary(&o.greeting_us),
            "choice_to_handoff": summary(&o.handoff_us),
            "both_steps": summary(&both),
        },
        "cpu": cpu,
        "target": "webhook-to-bot-reply p99 < 100 ms (both steps)",
        "target_met": errors == 0 && p99_both < 100.0,
    }))
}

/// Appends graph-sim's new sends to the tracker as they are accepted, until `stop`.
async fn follow(sim: GraphSim, tracker: Arc<Tracker>, stop: CancellationToken) {
    let mut seen = 0usize;
    while !stop.is_cancelled() {
        let new = tokio::select! {
            new = sim.wait_for_sent_after(seen, Duration::from_millis(200)) => new,
            _ = stop.cancelled() => return,
        };
        if new.is_empty() {
            continue;
        }
        seen += new.len();
        {
            let mut by_to = tracker.by_to.lock().unwrap_or_else(|e| e.into_inner());
            for m in &new {
                let text = m.body["text"]["body"]
                    .as_str()
                    .or_else(|| m.body["interactive"]["body"]["text"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                by_to.entry(digits(&m.to)).or_default().push(Seen {
                    at: m.received_at,
                    kind: m.kind().to_owned(),
                    text,
                });
            }
        }
        tracker.generation.send_modify(|g| *g += 1);
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Waits until `check` finds what it looks for in this customer's messages, or the timeout.
async fn wait_for<R>(
    tracker: &Tracker,
    to: &str,
    check: impl Fn(&[Seen]) -> Option<R>,
) -> Option<R> {
    let mut rx = tracker.generation.subscribe();
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        rx.borrow_and_update();
        {
            let by_to = tracker.by_to.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = by_to.get(to).and_then(|msgs| check(msgs)) {
                return Some(r);
            }
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => return None,
        }
    }
}

fn since_us(at: SystemTime, from: SystemTime) -> u32 {
    // A reply can beat the client reading its 200: that counts as 0.
    at.duration_since(from)
        .map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

async fn post(http: &reqwest::Client, url: &str, spec: &ChannelSpec, payload: Value) -> bool {
    let builder = WebhookBuilder::new(
        &spec.waba_id,
        &spec.phone_number_id,
        &spec.display_phone_number,
    );
    let body = graph_sim::to_meta_json(&builder.batch(vec![payload]));
    matches!(
        graph_sim::post_webhook(http, url, &spec.app_secret, &body).await,
        Ok((200, _))
    )
}

async fn customer(
    i: usize,
    think: Duration,
    tracker: &Tracker,
    outcome: &Mutex<Outcome>,
    http: &reqwest::Client,
    url: &str,
    spec: &ChannelSpec,
) {
    let record =
        |f: &dyn Fn(&mut Outcome)| f(&mut outcome.lock().unwrap_or_else(|e| e.into_inner()));
    let wa_id = format!("55119{i:08}");
    let who = Customer::new(wa_id.clone(), "Cliente");
    let builder = WebhookBuilder::new(
        &spec.waba_id,
        &spec.phone_number_id,
        &spec.display_phone_number,
    );

    // Step 1: "Oi" -> greeting with the protocol number + the menu.
    if !post(http, url, spec, builder.text(&who, "Oi").1).await {
        record(&|o| o.webhook_errors += 1);
        return;
    }
    let t1 = SystemTime::now();
    let step1 = wait_for(tracker, &wa_id, |msgs| {
        msgs.iter().any(|m| m.kind == "interactive").then(|| {
            let first = msgs.iter().map(|m| m.at).min().unwrap_or(t1);
            (since_us(first, t1), msgs.len())
        })
    })
    .await;
    let Some((greeting_us, before)) = step1 else {
        record(&|o| o.greeting_timeouts += 1);
        return;
    };
    record(&|o| {
        o.greeted += 1;
        o.greeting_us.push(greeting_us);
    });

    // Step 2, after reading the menu: "Falar com atendente" from the list -> the hand-off message.
    tokio::time::sleep(think).await;
    let choice = builder.list_reply(&who, HANDOFF_ID, HANDOFF_TITLE, None).1;
    if !post(http, url, spec, choice).await {
        record(&|o| o.webhook_errors += 1);
        return;
    }
    let t2 = SystemTime::now();
    let step2 = wait_for(tracker, &wa_id, |msgs| {
        let after = msgs.get(before..)?;
        after
            .iter()
            .any(|m| m.text.contains("transferir") || m.text.contains("encaminhar"))
            .then(|| {
                let first = after.iter().map(|m| m.at).min().unwrap_or(t2);
                since_us(first, t2)
            })
    })
    .await;
    match step2 {
        Some(us) => record(&|o| {
            o.handed_off += 1;
            o.handoff_us.push(us);
        }),
        None => record(&|o| o.handoff_timeouts += 1),
    }
}
