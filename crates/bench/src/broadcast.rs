//! `broadcast`: a broadcast ("disparo") of `--recipients` (default 100,000) at `--rate` msg/s
//! (default 1,000) against graph-sim while `--agents` (default 200) conversations of the same
//! number keep talking: agents send `--agent-rate` texts per second in total over HTTP
//! (`POST /api/conversations/{id}/messages`) and their customers write `--customer-rate` messages
//! per second (signed webhooks).
//!
//! The server is the real `atende serve` binary in a child process (so its RSS and CPU are its
//! own); graph-sim runs in this process and is the channel's Graph API. Before the server starts,
//! the scratch database gets the channel (graph base URL = graph-sim, rate limit = `--rate`, no
//! messaging limit: the column stays empty and graph-sim reports TIER_UNLIMITED), an API token and
//! the approved template (also known to graph-sim, which checks every template send against it).
//! Then, over the API: the agents' conversations are opened by an inbound "Oi" each, the broadcast
//! is created, its audience uploaded as a CSV (`telefone;nome;pedido`), started, and watched at
//! graph-sim until every recipient got its template.
//!
//! Reported: the upload's HTTP time and the time until the report shows every recipient pending
//! (the audience is accepted when the upload answers, so both are close); the broadcast's rate at
//! graph-sim (n-1 intervals over the first-to-last span), the busiest one-second window of the
//! number (every send) and of the broadcast's own sends, duplicates and losses; each agent
//! message's latency from just before its POST to graph-sim's receipt of it (matched by its unique
//! body); the server's peak RSS (VmHWM), the highest RSS sampled during the broadcast and the cores
//! it used meanwhile.

mod load;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use graph_sim::{AutoStatuses, GraphSim, PhoneNumber, SimConfig, WebhookBuilder};
use serde::Serialize;
use serde_json::{Value, json};
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::harness::{
    Backend, BackendChoice, ChannelSpec, ScratchDatabase, ServerProcess, new_channel, server_binary,
};
use crate::procstat::{CpuMark, clock_ticks_per_sec, cpu_between, mb, proc_sample, sample_rss};
use crate::report::{self, round};
use load::{Api, Sends};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Statuses {
    /// No status webhooks: only sending is measured (the report then counts nothing as sent).
    None,
    /// One `sent` webhook per accepted send.
    Sent,
    /// `sent`, `delivered` and `read` for every send (three webhooks each).
    All,
}

#[derive(Debug, Clone, Args)]
pub struct BroadcastArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: BackendChoice,
    /// Rows of the audience CSV (all valid and distinct).
    #[arg(long, default_value_t = 100_000)]
    pub recipients: usize,
    /// The channel's rate limit, msg/s.
    #[arg(long, default_value_t = 1_000)]
    pub rate: i64,
    /// Agent conversations open during the broadcast.
    #[arg(long, default_value_t = 200)]
    pub agents: usize,
    /// Agents' texts per second in total (round robin over the conversations, open loop).
    #[arg(long, default_value_t = 20.0)]
    pub agent_rate: f64,
    /// Customers' messages per second in total in those conversations (0: none).
    #[arg(long, default_value_t = 20.0)]
    pub customer_rate: f64,
    /// Status webhooks graph-sim sends back for every accepted message.
    #[arg(long, value_enum, default_value = "sent")]
    pub statuses: Statuses,
    /// The `atende` binary; default: `atende` next to this program.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
}

/// Base64 of a fixed 32-byte key: the child server decrypts the channel written before it started.
const SECRET_KEY: &str = "YmVuY2gtYnJvYWRjYXN0LWtleS0zMi1ieXRlcy0hISE=";
const TEMPLATE: &str = "pedido_enviado";
const BODY: &str = "Olá {{1}}, seu pedido {{2}} saiu para entrega.";
/// Agents' customer `i` has wa_id `AGENT_WA_BASE + i`; recipient `i` is `RECIPIENT_WA_BASE + i`.
const AGENT_WA_BASE: i64 = 5_511_988_000_000;
const RECIPIENT_WA_BASE: i64 = 5_511_910_000_000;
const ACCEPT_TARGET_S: f64 = 10.0;
const RATE_RATIO_TARGET: f64 = 0.97;
const AGENT_P99_TARGET_MS: f64 = 100.0;
const RSS_TARGET_MB: f64 = 150.0;
/// No new broadcast send at graph-sim for this long: the run is given up.
const STALL: Duration = Duration::from_secs(60);
/// How long the agents' last messages may take to reach graph-sim after the load stops.
const DRAIN: Duration = Duration::from_secs(5);

pub async fn run(args: BroadcastArgs) -> anyhow::Result<String> {
    if args.recipients == 0 || args.rate <= 0 || args.agents == 0 || args.agent_rate <= 0.0 {
        bail!("--recipients, --rate, --agents and --agent-rate must be positive");
    }
    if args.customer_rate < 0.0 {
        bail!("--customer-rate must not be negative");
    }
    let bin = server_binary(args.server_bin.as_deref())?;
    let mut results = Vec::new();
    for backend in args.backend.backends() {
        eprintln!("broadcast: {backend:?}, {} recipients", args.recipients);
        results.push(run_backend(backend, &args, &bin).await?);
    }
    let statuses = match args.statuses {
        Statuses::None => {
            "status webhooks are off (graph-sim sends none), so the server only sends"
        }
        Statuses::Sent => {
            "graph-sim posts one signed `sent` status webhook per accepted send back to the server (about --rate webhooks/s more for it to ingest), so the broadcast report counts what was sent"
        }
        Statuses::All => {
            "graph-sim posts `sent`, `delivered` and `read` status webhooks for every send (three times --rate webhooks/s for the server to ingest)"
        }
    };
    Ok(serde_json::to_string_pretty(&json!({
        "scenario": "broadcast",
        "machine": report::machine(),
        "config": {
            "recipients": args.recipients,
            "rate": args.rate,
            "agents": args.agents,
            "agent_rate": args.agent_rate,
            "customer_rate": args.customer_rate,
            "statuses": args.statuses,
        },
        "note": [
            format!("The server is the real `atende serve` binary in a child process; graph-sim, the HTTP clients and the webhook senders run in the benchmark process on the same cores. Status webhooks: {statuses}."),
            "Audience: upload_http_s is the CSV POST until its answer (the answer carries the accepted count: the recipients are stored by then); ready_s is until GET /report shows every recipient pending. The target is held against ready_s.",
            "Rate: the agents' texts go out on the same number and share its limit, so the number's total during the broadcast (number_per_sec, first to last broadcast send) is held against 97% of the configured rate and the busiest 1 s window of every send of the number against the rate itself; the broadcast's own rate is reported beside it.",
            "Agent latency: from just before each agent's POST /api/conversations/{id}/messages to graph-sim's receipt of that text (matched by its unique body), for messages posted while the broadcast was sending. RSS target: the server's peak VmHWM over its whole life (the upload included); CPU: the broadcast window.",
        ],
        "results": results,
    }))?)
}

fn spec() -> ChannelSpec {
    ChannelSpec {
        name: "disparos".to_owned(),
        phone_number_id: "710000000000001".to_owned(),
        waba_id: "810000000000001".to_owned(),
        display_phone_number: "5511971000000".to_owned(),
        access_token: "bench-access-token".to_owned(),
        app_secret: "bench-broadcast-app-secret".to_owned(),
    }
}

fn components() -> Value {
    json!([{ "type": "BODY", "text": BODY, "example": { "body_text": [["Ana", "A1"]] } }])
}

/// What the database holds before the server starts.
struct Seeded {
    channel_id: i64,
    template_id: i64,
    token: String,
}

async fn seed(
    db: &ScratchDatabase,
    spec: &ChannelSpec,
    sim: &GraphSim,
    meta_id: &str,
    rate: i64,
) -> anyhow::Result<Seeded> {
    let store = Store::connect(db.url()).await?;
    let seeded = async {
        store.migrate().await?;
        let secrets = server::secrets::SecretBox::from_base64(SECRET_KEY)?;
        let mut channel = new_channel(spec, &secrets);
        channel.graph_base_url = sim.base_url();
        channel.rate_limit_per_sec = rate;
        let channel_id = store.create_channel(&channel).await?.id;
        let token = server::passwords::random_token();
        store
            .create_api_token("bench", &server::passwords::token_hash(&token), None)
            .await?;
        let (template, _) = store
            .upsert_template(&store::templates::TemplateUpsert {
                waba_id: spec.waba_id.clone(),
                meta_id: Some(meta_id.to_owned()),
                name: TEMPLATE.into(),
                language: "pt_BR".into(),
                category: "UTILITY".into(),
                status: "APPROVED".into(),
                parameter_format: "POSITIONAL".into(),
                components: components().to_string(),
                quality: Some("GREEN".into()),
                rejected_reason: None,
                created_by: None,
                status_at: store::now_ms(),
            })
            .await?;
        anyhow::Ok(Seeded {
            channel_id,
            template_id: template.id,
            token,
        })
    }
    .await;
    store.close().await;
    seeded
}

async fn run_backend(
    backend: Backend,
    args: &BroadcastArgs,
    bin: &std::path::Path,
) -> anyhow::Result<Value> {
    let spec = spec();
    let mut cfg = SimConfig::new(&spec.app_secret, &spec.access_token, &spec.phone_number_id);
    cfg.phone_numbers = vec![PhoneNumber::new(
        &spec.phone_number_id,
        &spec.display_phone_number,
        &spec.waba_id,
    )];
    cfg.auto_statuses = match args.statuses {
        Statuses::None => AutoStatuses::NONE,
        Statuses::Sent => AutoStatuses {
            sent: true,
            delivered: false,
            read: false,
        },
        Statuses::All => AutoStatuses::ALL,
    };
    let sim = GraphSim::start(cfg).await?;
    // 100,000 recorded request bodies would only cost this process memory.
    sim.set_record_template_requests(false);
    sim.set_messaging_limit_tier(&spec.phone_number_id, "TIER_UNLIMITED");
    let meta_id = sim.add_template(
        &spec.waba_id,
        TEMPLATE,
        "pt_BR",
        "UTILITY",
        "APPROVED",
        components(),
    );
    sim.set_enforce_templates(true);

    let db = ScratchDatabase::create(backend).await?;
    let started = async {
        let seeded = seed(&db, &spec, &sim, &meta_id, args.rate).await?;
        eprintln!("broadcast: starting {}", bin.display());
        let server = ServerProcess::spawn(bin, &db, SECRET_KEY).await?;
        anyhow::Ok((seeded, server))
    }
    .await;
    let (seeded, server) = match started {
        Ok(s) => s,
        Err(e) => {
            db.drop().await;
            return Err(e);
        }
    };
    let measured = measure(&sim, &db, &server, &seeded, &spec, args).await;
    let stopped = server.stop().await;
    db.drop().await;
    sim.shutdown();
    let mut result = measured?;
    if let Err(e) = stopped {
        eprintln!("warning: {e:#}");
    }
    result["backend"] = json!(backend);
    Ok(result)
}

/// The audience: `telefone;nome;pedido`, one valid distinct mobile per row.
fn csv_of(n: usize) -> Vec<u8> {
    let mut out = String::with_capacity(n * 32 + 32);
    out.push_str("telefone;nome;pedido\n");
    for i in 0..n {
        let phone = RECIPIENT_WA_BASE + i64::try_from(i).unwrap_or(0);
        out.push_str(&format!("{phone};Cliente {i};P{i}\n"));
    }
    out.into_bytes()
}

/// One inbound "Oi" per agent customer; returns their conversations' ids, in customer order.
async fn open_conversations(
    api: &Api,
    db: &ScratchDatabase,
    builder: &WebhookBuilder,
    secret: &str,
    n: usize,
) -> anyhow::Result<Vec<i64>> {
    use futures::StreamExt;
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| load::customer_webhook(builder, AGENT_WA_BASE, i, "Oi"))
        .collect();
    let errors: Vec<String> = futures::stream::iter(bodies)
        .map(|body| api.webhook(secret, body))
        .buffer_unordered(16)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    if let Some(e) = errors.first() {
        bail!("{} webhooks refused, e.g. {e}", errors.len());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = db
            .query_pairs(
                "SELECT c.id, CAST(ct.wa_id AS BIGINT) FROM conversations c
                 JOIN contacts ct ON ct.id = c.contact_id
                 WHERE c.closed_at IS NULL AND CAST(ct.wa_id AS BIGINT) >= $1
                   AND CAST(ct.wa_id AS BIGINT) < $2",
                AGENT_WA_BASE,
                AGENT_WA_BASE + i64::try_from(n).unwrap_or(i64::MAX),
            )
            .await?;
        let by_customer: HashMap<i64, i64> = rows.into_iter().map(|(c, wa)| (wa, c)).collect();
        if by_customer.len() >= n {
            return Ok((0..n)
                .filter_map(|i| by_customer.get(&(AGENT_WA_BASE + i as i64)).copied())
                .collect());
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} conversations opened", by_customer.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn measure(
    sim: &GraphSim,
    db: &ScratchDatabase,
    server: &ServerProcess,
    seeded: &Seeded,
    spec: &ChannelSpec,
    args: &BroadcastArgs,
) -> anyhow::Result<Value> {
    let pid = Some(server.pid);
    let tck = clock_ticks_per_sec();
    let api = Api::new(server.port, &seeded.token)?;
    sim.set_webhook_url(Some(api.url("/webhooks/whatsapp")));
    let builder = WebhookBuilder::new(
        &spec.waba_id,
        &spec.phone_number_id,
        &spec.display_phone_number,
    );
    let rss_started = proc_sample(pid).unwrap_or_default();

    // 1. The agents' conversations.
    let t = Instant::now();
    let conversations =
        open_conversations(&api, db, &builder, &spec.app_secret, args.agents).await?;
    let opened_s = t.elapsed().as_secs_f64();
    eprintln!(
        "broadcast: {} agent conversations open in {opened_s:.1} s",
        conversations.len()
    );

    // 2. The broadcast and its audience.
    let n = args.recipients;
    let created = api
        .post_json(
            "/api/broadcasts",
            &json!({"name": "Aviso de entrega", "channel_id": seeded.channel_id,
                "template_id": seeded.template_id}),
        )
        .await?;
    let id = created["broadcast"]["id"]
        .as_i64()
        .with_context(|| format!("no broadcast id in {created}"))?;
    let csv = csv_of(n);
    let csv_bytes = csv.len();
    let rss_before_upload = proc_sample(pid).unwrap_or_default();
    let t = Instant::now();
    let answer = api.upload(id, csv).await?;
    let upload_http_s = t.elapsed().as_secs_f64();
    let accepted = answer["accepted"].as_i64().unwrap_or(-1);
    if accepted != n as i64 {
        bail!(
            "the upload accepted {accepted} of {n}: {}",
            abbreviated(&answer)
        );
    }
    let ready = loop {
        let r = api.get(&format!("/api/broadcasts/{id}/report")).await?;
        if r["report"]["recipients"] == n && r["report"]["pending"] == n {
            break r;
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("the audience was not ready after 120 s: {r}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ready_s = t.elapsed().as_secs_f64();
    let rss_after_upload = proc_sample(pid).unwrap_or_default();
    eprintln!(
        "broadcast: {n} recipients accepted in {upload_http_s:.2} s, ready after {ready_s:.2} s ({})",
        ready["status"]
    );

    // 3. The run, with the agents' conversations going on.
    let baseline = sim.sent_messages().len();
    let mark = CpuMark::take(pid, "");
    let sampler_stop = CancellationToken::new();
    let sampler = tokio::spawn(sample_rss(pid, sampler_stop.clone()));
    let load_stop = CancellationToken::new();
    let t_start = Instant::now();
    let started_at = SystemTime::now();
    api.post_json(&format!("/api/broadcasts/{id}/start"), &json!({}))
        .await?;
    let start_http_ms = t_start.elapsed().as_secs_f64() * 1000.0;
    let agents = tokio::spawn(load::drive(
        api.clone(),
        conversations.clone(),
        builder.clone(),
        spec.app_secret.clone(),
        AGENT_WA_BASE,
        args.agent_rate,
        args.customer_rate,
        load_stop.clone(),
    ));
    let mut sends = Sends::default();
    let mut seen = baseline;
    let mut last_progress = Instant::now();
    let mut last_print = Instant::now();
    let expected_secs = n as f64 / (args.rate as f64 * 0.9);
    let deadline = Instant::now() + Duration::from_secs_f64(expected_secs + 120.0);
    let mut stalled = false;
    let mut inbox = InboxBacklog::default();
    while sends.templates() < n {
        if inbox.due() {
            inbox.sample(db).await;
        }
        let new = sim.wait_for_sent_after(seen, Duration::from_secs(1)).await;
        seen += new.len();
        let before = sends.templates();
        sends.add(&new);
        if sends.templates() > before {
            last_progress = Instant::now();
        }
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            eprintln!(
                "broadcast: {} of {n} sent after {:.0} s",
                sends.templates(),
                t_start.elapsed().as_secs_f64()
            );
        }
        if last_progress.elapsed() > STALL || Instant::now() > deadline {
            stalled = true;
            eprintln!("broadcast: gave up at {} of {n} sends", sends.templates());
            break;
        }
    }
    let broadcast_s = t_start.elapsed().as_secs_f64();
    let ended_at = SystemTime::now();
    let cpu = cpu_between(mark, pid, tck);
    sampler_stop.cancel();
    let rss_window_max_kb = sampler.await.unwrap_or(0);
    load_stop.cancel();
    let agent_outcome = agents.await?;
    // The agents' last texts, and anything sent twice late.
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until {
        let new = sim
            .wait_for_sent_after(seen, Duration::from_millis(200))
            .await;
        seen += new.len();
        sends.add(&new);
    }
    // 4. The broadcast completes on its own.
    let t_done = Instant::now();
    let mut final_report = Value::Null;
    while t_done.elapsed() < Duration::from_secs(60) {
        final_report = api.get(&format!("/api/broadcasts/{id}/report")).await?;
        if final_report["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let completed = final_report["status"] == "completed";
    let new = sim
        .wait_for_sent_after(seen, Duration::from_millis(500))
        .await;
    sends.add(&new);
    let rss_end = proc_sample(pid).unwrap_or_default();

    // 5. The numbers.
    let templates = sends.template_times();
    let unique: HashSet<&str> = sends.template_recipients().collect();
    let (first, last) = (templates.first().copied(), templates.last().copied());
    let span_s = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default().as_secs_f64(),
        _ => 0.0,
    };
    let per_sec = |count: usize| {
        if span_s > 0.0 && count > 1 {
            (count as f64 - 1.0) / span_s
        } else {
            0.0
        }
    };
    let broadcast_per_sec = per_sec(templates.len());
    let on_number = match (first, last) {
        (Some(a), Some(b)) => sends.all_between(a, b),
        _ => Vec::new(),
    };
    let number_per_sec = per_sec(on_number.len());
    let rate = args.rate as f64;
    let max_number = sim.max_sends_in_any_second(&spec.phone_number_id);
    let max_broadcast = load::max_in_any_second(&templates);
    let agent = agent_outcome.report(&sends, started_at, last.unwrap_or(ended_at));
    let agent_p99 = agent["latency"]["p99_ms"].as_f64().unwrap_or(f64::MAX);
    let agent_delivered = agent["latency"]["samples"].as_u64().unwrap_or(0);
    let peak_rss_mb = mb(rss_end.hwm_kb);
    let lost = n.saturating_sub(unique.len());
    let duplicated = templates.len() - unique.len();

    let accept_met = ready_s < ACCEPT_TARGET_S;
    let rate_met = !stalled
        && number_per_sec >= RATE_RATIO_TARGET * rate
        && max_number as f64 <= rate
        && lost == 0
        && duplicated == 0;
    let agent_met =
        agent_p99 < AGENT_P99_TARGET_MS && agent_delivered > 0 && agent["lost"].as_u64() == Some(0);
    let rss_met = peak_rss_mb < RSS_TARGET_MB;
    Ok(json!({
        "setup": {
            "agent_conversations": conversations.len(),
            "conversations_opened_s": round(opened_s, 2),
            "sends_before_broadcast": baseline,
        },
        "audience": {
            "rows": n,
            "csv_bytes": csv_bytes,
            "accepted": accepted,
            "upload_http_s": round(upload_http_s, 3),
            "ready_s": round(ready_s, 3),
        },
        "broadcast": {
            "start_http_ms": round(start_http_ms, 1),
            "sent_at_graph_sim": templates.len(),
            "recipients_reached": unique.len(),
            "lost": lost,
            "duplicated": duplicated,
            "gave_up": stalled,
            "start_to_last_send_s": round(broadcast_s, 2),
            "first_to_last_send_s": round(span_s, 2),
            "configured_per_sec": args.rate,
            "broadcast_per_sec": round(broadcast_per_sec, 1),
            "broadcast_ratio": round(broadcast_per_sec / rate, 4),
            "number_sends_in_span": on_number.len(),
            "number_per_sec": round(number_per_sec, 1),
            "number_ratio": round(number_per_sec / rate, 4),
            "max_in_any_1s_window_number": max_number,
            "max_in_any_1s_window_broadcast": max_broadcast,
            "broadcast_sends_per_second": load::per_second(&templates),
            "number_idle_gaps": load::idle_gaps(&on_number),
            "never_above": max_number as f64 <= rate,
            "completed": completed,
            "completed_after_last_send_s": round(t_done.elapsed().as_secs_f64(), 1),
            "inbox_backlog": inbox.report(),
            "report": final_report,
        },
        "agents": agent,
        "server": {
            "pid": server.pid,
            "rss_mb": {
                "started": mb(rss_started.rss_kb),
                "before_upload": mb(rss_before_upload.rss_kb),
                "after_upload": mb(rss_after_upload.rss_kb),
                "broadcast_window_max": mb(rss_window_max_kb),
                "end": mb(rss_end.rss_kb),
                "peak_hwm": peak_rss_mb,
            },
            "threads": rss_end.threads,
            "cpu": cpu,
        },
        "targets": {
            "accept_s_under": ACCEPT_TARGET_S,
            "rate_ratio_at_least": RATE_RATIO_TARGET,
            "agent_p99_ms_under": AGENT_P99_TARGET_MS,
            "rss_mb_under": RSS_TARGET_MB,
            "accept_met": accept_met,
            "rate_met": rate_met,
            "agent_p99_met": agent_met,
            "rss_met": rss_met,
            "met": accept_met && rate_met && agent_met && rss_met,
        },
    }))
}

/// The upload's answer without its long lists.
fn abbreviated(answer: &Value) -> Value {
    let mut a = answer.clone();
    if let Some(o) = a.as_object_mut() {
        for k in ["invalid", "duplicate_rows", "opted_out_rows", "preview"] {
            o.remove(k);
        }
    }
    a
}

/// The server's inbox (webhooks stored, not processed yet: status webhooks and the customers'
/// messages wait in the same line), sampled about once a second during the broadcast.
#[derive(Default)]
struct InboxBacklog {
    last: Option<Instant>,
    samples: usize,
    max_pending: i64,
    max_oldest_age_ms: i64,
    last_pending: i64,
}

impl InboxBacklog {
    fn due(&self) -> bool {
        self.last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
    }

    async fn sample(&mut self, db: &ScratchDatabase) {
        self.last = Some(Instant::now());
        let rows = db
            .query_pairs(
                "SELECT COUNT(*), COALESCE(MIN(received_at), 0) FROM inbox
                 WHERE state = 'pending' AND $1 = $2",
                0,
                0,
            )
            .await;
        let Ok(Some(&(pending, oldest))) = rows.as_ref().map(|r| r.first()) else {
            return;
        };
        self.samples += 1;
        self.last_pending = pending;
        self.max_pending = self.max_pending.max(pending);
        if pending > 0 {
            self.max_oldest_age_ms = self.max_oldest_age_ms.max(store::now_ms() - oldest);
        }
    }

    fn report(&self) -> Value {
        json!({
            "samples": self.samples,
            "max_pending": self.max_pending,
            "max_oldest_age_s": round(self.max_oldest_age_ms as f64 / 1000.0, 1),
            "pending_at_last_sample": self.last_pending,
        })
    }
}
