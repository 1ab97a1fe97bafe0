//! The broadcast worker: turns pending recipients of running broadcasts into template messages on
//! the outbox's bulk lane, a batch per transaction (`Store::materialize_batch`), only as far ahead
//! as the sender can send (about [`LEAD_SECS`] of the channel's rate), so a broadcast never fills
//! the outbox and every conversation's message is claimed before it. The sender
//! (`workers::outbound`) stays the one place that paces sends.
//!
//! It also keeps each broadcast inside the account's messaging limit (unique customers reached
//! outside a service window per moving 24 h), stops it on Meta's quality signals (template
//! paused or disabled, spam rate limit), starts scheduled ones, completes finished ones, and runs
//! the recovery of bulk sends interrupted by a crash (`Store::recover_bulk_jobs`), with the
//! sender workers' heartbeats that recovery relies on.
//!
//! Only one instance drives broadcasts at a time (the `broadcasts` lease); every instance beats
//! for its own senders.

pub mod compose;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::template::{MediaValue, TemplateDefinition};
use store::Store;
use store::broadcasts::{self as b, BatchPlan, BroadcastRecord, PendingRecipient, Rendering};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::channels::ChannelRegistry;
use crate::live::{Live, Notice};
use crate::workers::outbound::Outbound;
use compose::{RecipientVariables, ReplySpec, compose};

/// How far ahead of the sender broadcasts write the outbox, in seconds of the channel's rate.
pub const LEAD_SECS: f64 = 1.0;
/// Never fewer jobs ahead than this (slow channels still keep the sender busy).
const MIN_LEAD: i64 = 10;
/// Recipients per transaction.
const BATCH: i64 = 50;
const TICK: Duration = Duration::from_millis(100);
const LEASE: &str = "broadcasts";
const LEASE_MS: i64 = 5_000;
const BEAT_EVERY: Duration = Duration::from_secs(2);
const BEAT_TTL_MS: i64 = 10_000;
/// The settings key of the grace before an interrupted bulk send without a status is sent again.
pub const RESEND_GRACE_SETTING: &str = "outbox_resend_grace_secs";
const DEFAULT_RESEND_GRACE_SECS: i64 = 600;

pub struct BroadcastWorker {
    pub store: Store,
    pub channels: ChannelRegistry,
    pub outbound: Outbound,
    pub live: Live,
    pub protocol: domain::protocol::ProtocolConfig,
    pub instance_id: String,
    /// This instance's sender workers, whose heartbeats this worker keeps.
    pub sender_ids: Vec<String>,
    /// Wakes it at once (a broadcast started or resumed).
    pub wake: Arc<Notify>,
}

/// A template as the worker uses it, cached per broadcast.
struct Prepared {
    definition: TemplateDefinition,
    header_media: Option<MediaValue>,
    route: Option<store::reply_routes::RouteTarget>,
    route_minutes: i64,
    button_actions: Option<String>,
}

impl BroadcastWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        let beats = {
            let (store, ids, shutdown) = (
                self.store.clone(),
                self.sender_ids.clone(),
                shutdown.clone(),
            );
            tokio::spawn(async move { beat(store, ids, shutdown).await })
        };
        let mut last_recovery = Instant::now() - Duration::from_secs(10);
        let mut last_completion_check: HashMap<i64, Instant> = HashMap::new();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self
                .store
                .try_lease(LEASE, &self.instance_id, LEASE_MS)
                .await
            {
                Ok(true) => {
                    if last_recovery.elapsed() >= Duration::from_secs(1) {
                        last_recovery = Instant::now();
                        self.recover().await;
                    }
                    if let Err(e) = self.tick(&mut last_completion_check).await {
                        tracing::error!(error = %e, "broadcast round failed");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the broadcasts lease"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if let Err(e) = self.store.release_lease(LEASE, &self.instance_id).await {
            tracing::warn!(error = %e, "cannot release the broadcasts lease");
        }
        let _ = beats.await;
    }

    /// Interrupted bulk sends: confirmed by their status, or sent again after the grace.
    async fn recover(&self) {
        let grace_secs = match self.store.setting(RESEND_GRACE_SETTING).await {
            Ok(Some(v)) => v.parse().unwrap_or(DEFAULT_RESEND_GRACE_SECS),
            _ => DEFAULT_RESEND_GRACE_SECS,
        };
        match self.store.recover_bulk_jobs(grace_secs * 1000).await {
            Ok(outcome) => {
                if outcome.orphaned > 0 || outcome.resent > 0 || !outcome.confirmed.is_empty() {
                    tracing::info!(
                        orphaned = outcome.orphaned,
                        confirmed = outcome.confirmed.len(),
                        resent = outcome.resent,
                        "bulk sends interrupted by a stopped sender"
                    );
                }
                for (conversation_id, message_id, status) in outcome.confirmed {
                    self.live.publish(Notice::MessageStatus {
                        conversation_id,
                        message_id,
                        status: status.as_str().to_owned(),
                    });
                }
                if outcome.resent > 0 {
                    self.outbound.wake_senders();
                }
            }
            Err(e) => tracing::warn!(error = %e, "bulk send recovery failed"),
        }
    }

    async fn tick(&self, completion: &mut HashMap<i64, Instant>) -> anyhow::Result<()> {
        let now = store::now_ms();
        // Bulk jobs already written per channel this round (broadcasts of one channel share it).
        let mut ahead: HashMap<i64, i64> = HashMap::new();
        for broadcast in self.store.active_broadcasts().await? {
            if broadcast.status == b::SCHEDULED {
                if broadcast.start_at.is_none_or(|at| at <= now) {
                    self.store
                        .transition_broadcast(broadcast.id, &[b::SCHEDULED], b::RUNNING, None, None)
                        .await?;
                    tracing::info!(broadcast_id = broadcast.id, "scheduled broadcast started");
                }
                continue;
            }
            let Some(p) = self.prepare(&broadcast).await? else {
                continue;
            };
            let done = self.drive(&broadcast, &p, &mut ahead).await?;
            if done {
                let due = completion
                    .get(&broadcast.id)
                    .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
                if due {
                    completion.insert(broadcast.id, Instant::now());
                    if self.store.broadcast_pending(broadcast.id).await? == 0
                        && self.store.broadcast_unsent(broadcast.id).await? == 0
                    {
                        self.store
                            .transition_broadcast(
                                broadcast.id,
                                &[b::RUNNING],
                                b::COMPLETED,
                                None,
                                None,
                            )
                            .await?;
                        tracing::info!(broadcast_id = broadcast.id, "broadcast completed");
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks the template and Meta's signals; `None` when the broadcast cannot go on now (it is
    /// paused with the reason shown).
    async fn prepare(&self, broadcast: &BroadcastRecord) -> anyhow::Result<Option<Prepared>> {
        let template = self.store.template(broadcast.template_id).await?;
        let stop = match &template {
            None => Some((
                "template_missing",
                "O template deste disparo não existe mais.".to_owned(),
            )),
            Some(t) if t.status == "APPROVED" => None,
            Some(t) if t.status == "PAUSED" => Some((
                "template_paused",
                format!(
                    "A Meta pausou o template «{}» por causa da qualidade (respostas negativas dos clientes). O disparo parou sozinho; retome quando o template voltar a ser aprovado.",
                    t.name
                ),
            )),
            Some(t) if t.status == "DISABLED" => Some((
                "template_disabled",
                format!(
                    "A Meta desativou o template «{}». O disparo parou sozinho.",
                    t.name
                ),
            )),
            Some(t) => Some((
                "template_not_approved",
                format!(
                    "O template «{}» não está aprovado (situação: {}). O disparo parou sozinho.",
                    t.name, t.status
                ),
            )),
        };
        let since = broadcast
            .signals_since
            .or(broadcast.started_at)
            .unwrap_or(0);
        let signal = match stop {
            Some(s) => Some(s),
            None => self
                .store
                .broadcast_stop_signal(broadcast.id, broadcast.channel_id, since)
                .await?
                .map(|s| match s.code {
                    131048 => (
                        "spam_limit",
                        "A Meta limitou o envio deste número por excesso de mensagens marcadas como spam (erro 131048). O disparo parou sozinho; reveja o conteúdo e o público antes de retomar.".to_owned(),
                    ),
                    132015 => (
                        "template_paused",
                        "A Meta pausou o template deste disparo (erro 132015). O disparo parou sozinho.".to_owned(),
                    ),
                    132016 => (
                        "template_disabled",
                        "A Meta desativou o template deste disparo (erro 132016). O disparo parou sozinho.".to_owned(),
                    ),
                    code => (
                        "account_blocked",
                        format!(
                            "A Meta bloqueou envios desta conta (erro {code}). O disparo parou sozinho."
                        ),
                    ),
                }),
        };
        if let Some((reason, detail)) = signal {
            tracing::warn!(
                broadcast_id = broadcast.id,
                reason,
                "broadcast stopped by itself"
            );
            self.store
                .transition_broadcast(
                    broadcast.id,
                    &[b::RUNNING],
                    b::PAUSED,
                    Some(reason),
                    Some(&detail),
                )
                .await?;
            return Ok(None);
        }
        let Some(template) = template else {
            return Ok(None);
        };
        let definition = template.definition()?;
        let header_media = match &broadcast.header_media {
            Some(j) => Some(serde_json::from_str::<MediaValue>(j)?),
            None => None,
        };
        let hsm = self
            .store
            .channel_hsm_settings(broadcast.channel_id)
            .await?;
        let spec = ReplySpec::parse(broadcast.reply_route.as_deref())
            .map_err(|e| anyhow::anyhow!("broadcast {}: reply route: {e}", broadcast.id))?;
        Ok(Some(Prepared {
            definition,
            header_media,
            route: spec.target(hsm.and_then(|h| h.hsm_queue_id), broadcast.queue_id),
            route_minutes: broadcast.reply_minutes.unwrap_or(
                hsm.map_or(store::reply_routes::DEFAULT_REPLY_MINUTES, |h| {
                    h.hsm_reply_minutes
                }),
            ),
            button_actions: template.button_actions,
        }))
    }

    /// Writes what the channel can send in the next [`LEAD_SECS`]; true when nothing is left to
    /// write (it may still be in the outbox).
    async fn drive(
        &self,
        broadcast: &BroadcastRecord,
        p: &Prepared,
        ahead: &mut HashMap<i64, i64>,
    ) -> anyhow::Result<bool> {
        let Some(channel) = self.channels.by_id(broadcast.channel_id) else {
            return Ok(false);
        };
        if !channel.enabled || !channel.healthy {
            return Ok(false);
        }
        let rate = channel.rate_limit_per_sec.max(1);
        let lead = ((rate as f64 * LEAD_SECS) as i64).max(MIN_LEAD);
        let backlog = match ahead.get(&channel.id) {
            Some(n) => *n,
            None => self.store.bulk_backlog(channel.id).await?,
        };
        // Refilled by halves: fewer, larger transactions than topping up every tick.
        let mut want = if backlog * 2 > lead {
            0
        } else {
            lead - backlog
        };
        if want <= 0 {
            ahead.insert(channel.id, backlog);
            return Ok(false);
        }
        let account = self.store.channel_account(channel.id).await?;
        let limit = account.as_ref().and_then(|a| a.messaging_limit);
        let mut written = 0;
        let mut done = false;
        while want > 0 {
            let (budget, frees_at) = match limit {
                None => (None, None),
                Some(limit) => {
                    let (reached, frees_at) = self.store.messaging_reach(&channel.waba_id).await?;
                    (Some(limit - reached), frees_at)
                }
            };
            let plan = BatchPlan {
                broadcast_id: broadcast.id,
                channel_id: channel.id,
                waba_id: &channel.waba_id,
                template_id: broadcast.template_id,
                queue_id: broadcast.queue_id,
                max: want.min(BATCH),
                reach_budget: budget,
                route: p.route,
                route_minutes: p.route_minutes,
                button_actions: p.button_actions.clone(),
                protocol: &self.protocol,
            };
            let outcome = self
                .store
                .materialize_batch(&plan, |r| render(p, r))
                .await?;
            for (conversation_id, message_id) in &outcome.queued {
                self.live.publish(Notice::MessageCreated {
                    conversation_id: *conversation_id,
                    message_id: *message_id,
                });
            }
            if !outcome.queued.is_empty() {
                self.outbound.wake_senders();
            }
            let moved = (outcome.queued.len() + outcome.skipped_opted_out + outcome.failed) as i64;
            written += outcome.queued.len() as i64;
            want -= moved;
            if outcome.limited {
                let detail = format!(
                    "Limite de mensagens da conta atingido ({} clientes únicos em 24 horas). O disparo continua sozinho quando a janela de 24 horas liberar espaço.",
                    limit.unwrap_or_default()
                );
                if broadcast.waiting_until.is_none() {
                    tracing::info!(
                        broadcast_id = broadcast.id,
                        "broadcast waits for the messaging limit"
                    );
                }
                self.store
                    .set_broadcast_waiting(
                        broadcast.id,
                        frees_at,
                        Some("messaging_limit"),
                        Some(&detail),
                    )
                    .await?;
                break;
            }
            if broadcast.waiting_until.is_some() && moved > 0 {
                self.store
                    .set_broadcast_waiting(broadcast.id, None, None, None)
                    .await?;
            }
            if outcome.not_running || outcome.exhausted || moved == 0 {
                done = outcome.exhausted;
                break;
            }
        }
        ahead.insert(channel.id, backlog + written);
        Ok(done)
    }
}

/// The renderer `materialize_batch` calls per recipient.
fn render(p: &Prepared, r: &PendingRecipient) -> Rendering {
    let variables: RecipientVariables = match serde_json::from_str(&r.variables) {
        Ok(v) => v,
        Err(e) => return Rendering::Invalid(format!("Variáveis ilegíveis: {e}")),
    };
    match compose(&p.definition, p.header_media.as_ref(), &variables) {
        Ok(c) => Rendering::Message {
            body: c.body,
            content_json: c.content_json,
        },
        Err(reason) => Rendering::Invalid(reason),
    }
}

/// Keeps this instance's sender workers' heartbeats until shutdown, then ends them.
async fn beat(store: Store, ids: Vec<String>, shutdown: CancellationToken) {
    loop {
        if let Err(e) = store.beat_senders(&ids, BEAT_TTL_MS).await {
            tracing::warn!(error = %e, "cannot renew the senders' heartbeat");
        }
        tokio::select! {
            _ = tokio::time::sleep(BEAT_EVERY) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    // The senders stop with the same token; their unfinished bulk jobs are recovered like a
    // crash's (confirmed by status, or sent again after the grace).
    if let Err(e) = store.end_sender_beats(&ids).await {
        tracing::debug!(error = %e, "cannot end the senders' heartbeat");
    }
}
