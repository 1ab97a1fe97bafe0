//! `outbound`: the sender under load. Two business numbers share one server: one limited to 80
//! msg/s, one to 1,000 msg/s, each with 500 customers. Phase 1 (throughput): a backlog is enqueued
//! for each number and drained; we report the achieved rate, the busiest one-second window seen by
//! graph-sim, and whether anything was lost or sent twice. Phase 2 (latency): messages are
//! enqueued at half the limit and we report enqueue-to-accepted-by-Meta latency.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use graph_sim::{AutoStatuses, Customer, GraphSim, PhoneNumber, SimConfig, WebhookBuilder};
use serde_json::{Value, json};
use store::outbox::NewOutbound;

use crate::harness::{Backend, BackendChoice, ChannelSpec, Harness};
use crate::report::{self, percentile, round, us_to_ms};

#[derive(Debug, Clone, Args)]
pub struct OutboundArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: BackendChoice,
    /// Messages for the 1,000 msg/s number (the scenario: 20,000).
    #[arg(long, default_value_t = 20_000)]
    pub fast_messages: usize,
    /// Messages for the 80 msg/s number (1,600 = 20 s at the limit).
    #[arg(long, default_value_t = 1_600)]
    pub slow_messages: usize,
    #[arg(long, default_value_t = 500)]
    pub customers: usize,
    /// Duration of the latency phase.
    #[arg(long, default_value_t = 5)]
    pub latency_seconds: u64,
}

struct Lane {
    spec: ChannelSpec,
    rate: i64,
    channel_id: i64,
    conversations: Vec<i64>,
}

pub async fn run(args: OutboundArgs) -> anyhow::Result<String> {
    let mut results = Vec::new();
    for backend in args.backend.backends() {
        eprintln!("outbound: {backend:?}");
        results.push(run_backend(backend, &args).await?);
    }
    Ok(serde_json::to_string_pretty(&json!({
        "scenario": "outbound",
        "machine": report::machine(),
        "note": "graph-sim (the fake Meta) and the server share the machine's cores; status webhooks are off so only sending is measured",
        "results": results,
    }))?)
}

fn spec(n: u8) -> ChannelSpec {
    ChannelSpec {
        name: format!("outbound-{n}"),
        phone_number_id: format!("30000000000000{n}"),
        waba_id: format!("40000000000000{n}"),
        display_phone_number: format!("551190000000{n}"),
        access_token: "bench-access-token".to_owned(),
        app_secret: "bench-app-secret".to_owned(),
    }
}

async fn run_backend(backend: Backend, args: &OutboundArgs) -> anyhow::Result<Value> {
    let harness = Harness::start(backend).await?;
    let (slow, fast) = (spec(1), spec(2));
    let mut sim_cfg = SimConfig::new(
        "bench-app-secret",
        "bench-access-token",
        &slow.phone_number_id,
    );
    sim_cfg.phone_numbers = [&slow, &fast]
        .iter()
        .map(|s| PhoneNumber::new(&s.phone_number_id, &s.display_phone_number, &s.waba_id))
        .collect();
    sim_cfg.auto_statuses = AutoStatuses::NONE;
    let sim = GraphSim::start(sim_cfg).await?;

    let mut lanes = Vec::new();
    for (s, rate) in [(slow, 80), (fast, 1000)] {
        let channel_id = harness.add_channel(&s).await?;
        let update = store::channels::ChannelUpdate {
            graph_base_url: Some(sim.base_url()),
            rate_limit_per_sec: Some(rate),
            ..Default::default()
        };
        harness
            .state
            .store
            .update_channel(channel_id, &update)
            .await?;
        let conversations = open_conversations(&harness, &s, args.customers).await?;
        lanes.push(Lane {
            spec: s,
            rate,
            channel_id,
            conversations,
        });
    }
    harness.state.channels.reload().await?;

    // Phase 1: a backlog written while the numbers are paused, then drained as fast as the limits
    // allow (so the enqueue speed cannot hide the sender's).
    let counts = [args.slow_messages, args.fast_messages];
    set_enabled(&harness, &lanes, false).await?;
    let started_ms = now_ms();
    for (lane, &count) in lanes.iter().zip(&counts) {
        enqueue(&harness, lane, count, "t").await?;
    }
    let enqueued_in = now_ms() - started_ms;
    set_enabled(&harness, &lanes, true).await?;
    let total: usize = counts.iter().sum();
    let deadline = Instant::now() + Duration::from_secs(600);
    while sim.sent_messages().len() < total {
        if Instant::now() > deadline {
            bail!(
                "only {} of {total} messages were sent",
                sim.sent_messages().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = sim.sent_messages();
    let mut throughput = Vec::new();
    for (lane, &count) in lanes.iter().zip(&counts) {
        let mine: Vec<_> = sent
            .iter()
            .filter(|s| s.phone_number_id == lane.spec.phone_number_id)
            .collect();
        let unique: HashSet<&str> = mine
            .iter()
            .filter_map(|s| s.body["text"]["body"].as_str())
            .collect();
        let first = mine.iter().map(|s| ms(s.received_at)).min().unwrap_or(0);
        let last = mine.iter().map(|s| ms(s.received_at)).max().unwrap_or(0);
        // n sends span n-1 intervals.
        let achieved = if last > first {
            (mine.len() as f64 - 1.0) * 1000.0 / (last - first) as f64
        } else {
            0.0
        };
        let max_window = sim.max_sends_in_any_second(&lane.spec.phone_number_id);
        throughput.push(json!({
            "configured_per_sec": lane.rate,
            "messages": count,
            "sent": mine.len(),
            "lost": count.saturating_sub(unique.len()),
            "duplicated": mine.len() - unique.len(),
            "achieved_per_sec": round(achieved, 1),
            "achieved_ratio": round(achieved / lane.rate as f64, 3),
            "max_in_any_1s_window": max_window,
            "never_above": max_window as i64 <= lane.rate,
        }));
    }

    // Phase 2: latency at half the limit of the fast number.
    let lane = &lanes[1];
    let before = sim.sent_messages().len();
    let per_sec = (lane.rate / 2) as usize;
    let n = per_sec * args.latency_seconds as usize;
    let tick = Duration::from_secs_f64(1.0 / per_sec as f64);
    let mut created = Vec::with_capacity(n);
    let phase_start = Instant::now();
    for i in 0..n {
        let target = phase_start + tick * i as u32;
        tokio::time::sleep_until(target.into()).await;
        let c = lane.conversations[i % lane.conversations.len()];
        let body = format!("l{i}");
        let m = harness.state.outbound.enqueue(text(c, &body)).await?;
        created.push((body, m.message().created_at));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.sent_messages().len() < before + n {
        if Instant::now() > deadline {
            bail!(
                "latency phase: only {} of {n} sent",
                sim.sent_messages().len() - before
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted: std::collections::HashMap<String, i64> = sim
        .sent_messages()
        .iter()
        .filter_map(|s| {
            Some((
                s.body["text"]["body"].as_str()?.to_owned(),
                ms(s.received_at),
            ))
        })
        .collect();
    let mut latencies: Vec<u32> = created
        .iter()
        .filter_map(|(body, at)| {
            accepted
                .get(body)
                .map(|r| u32::try_from((r - at).max(0) * 1000).unwrap_or(u32::MAX))
        })
        .collect();
    latencies.sort_unstable();
    harness.stop().await?;
    Ok(json!({
        "backend": backend,
        "enqueue_backlog_ms": enqueued_in,
        "throughput": throughput,
        "latency": {
            "rate_per_sec": per_sec,
            "messages": n,
            "p50_ms": us_to_ms(percentile(&latencies, 50.0)),
            "p99_ms": us_to_ms(percentile(&latencies, 99.0)),
            "max_ms": us_to_ms(latencies.last().copied().unwrap_or(0)),
        },
        "target": "achieved >= 95% of the configured rate, never above it, nothing lost or duplicated",
    }))
}

/// One inbound "Oi" per customer (batched like Meta does), so each has an open conversation with
/// an open 24 h window.
async fn open_conversations(
    harness: &Harness,
    spec: &ChannelSpec,
    customers: usize,
) -> anyhow::Result<Vec<i64>> {
    let builder = WebhookBuilder::new(
        &spec.waba_id,
        &spec.phone_number_id,
        &spec.display_phone_number,
    );
    let http = reqwest::Client::new();
    let prefix = &spec.phone_number_id[spec.phone_number_id.len() - 1..];
    for chunk in (0..customers).collect::<Vec<_>>().chunks(50) {
        let payloads = chunk
            .iter()
            .map(|i| {
                builder
                    .text(
                        &Customer::new(format!("55{prefix}9{i:08}"), "Cliente"),
                        "Oi",
                    )
                    .1
            })
            .collect();
        let body = graph_sim::to_meta_json(&builder.batch(payloads));
        let (status, text) = graph_sim::post_webhook(
            &http,
            &harness.url("/webhooks/whatsapp"),
            &spec.app_secret,
            &body,
        )
        .await?;
        if status != 200 {
            bail!("webhook refused ({status}): {text}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = harness.state.store.conversations(true, 100_000).await?;
        let channel = harness
            .state
            .channels
            .by_phone_number_id(&spec.phone_number_id)
            .context("channel")?;
        let mine: Vec<i64> = all
            .iter()
            .filter(|c| c.channel_id == channel.id)
            .map(|c| c.id)
            .collect();
        if mine.len() >= customers {
            return Ok(mine);
        }
        if Instant::now() > deadline {
            bail!("only {} of {customers} conversations opened", mine.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set_enabled(harness: &Harness, lanes: &[Lane], enabled: bool) -> anyhow::Result<()> {
    for lane in lanes {
        let update = store::channels::ChannelUpdate {
            enabled: Some(enabled),
            ..Default::default()
        };
        harness
            .state
            .store
            .update_channel(lane.channel_id, &update)
            .await?;
    }
    harness.state.channels.reload().await?;
    // A no-op enqueue-free nudge: the senders poll at least every second anyway.
    Ok(())
}

fn text(conversation_id: i64, body: &str) -> NewOutbound {
    let content = whatsapp::send::OutboundContent::Text {
        body: body.to_owned(),
        preview_url: false,
    };
    NewOutbound {
        conversation_id,
        author: "bench".into(),
        author_user_id: None,
        kind: "text".into(),
        body: Some(body.to_owned()),
        content_json: serde_json::to_string(&content).unwrap_or_default(),
        reply_to_wamid: None,
        media_id: None,
        idempotency_key: None,
    }
}

async fn enqueue(harness: &Harness, lane: &Lane, count: usize, tag: &str) -> anyhow::Result<()> {
    for i in 0..count {
        let c = lane.conversations[i % lane.conversations.len()];
        harness
            .state
            .outbound
            .enqueue(text(c, &format!("{tag}{}-{i}", lane.rate)))
            .await?;
    }
    Ok(())
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    ms(SystemTime::now())
}
