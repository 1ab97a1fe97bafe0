//! The one road out: every sender (agents through the API, the bot, surveys, broadcasts) enqueues
//! through [`Outbound::enqueue`]; sender workers drain the outbox through the per-number rate
//! limiter into the Graph API, retrying what Meta says may succeed later and failing the rest with a
//! reason the agent can read.

use std::sync::Arc;
use std::time::Duration;

use domain::status::DeliveryStatus;
use store::Store;
use store::outbox::{Enqueued, Lane, NewOutbound, OutboxJob, SentJob};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use whatsapp::errors::{Disposition, GraphError, explain_pt_br};
use whatsapp::graph::GraphClient;
use whatsapp::send::{MediaRef, OutboundContent, OutboundMessage};

use crate::channels::{Channel, ChannelRegistry};
use crate::group_commit::GroupCommit;
use crate::live::{Live, Notice};
use crate::media_files::MediaFiles;

mod bulk_slots;
pub use bulk_slots::BulkSlots;

/// A job that keeps failing in a retryable way gives up after this long (Meta keeps a customer
/// waiting no better than a clear failure would).
const MAX_RETRY_AGE_MS: i64 = 60 * 60 * 1000;
const LEASE_MS: i64 = 120_000;
const MAX_IN_FLIGHT: usize = 1024;

/// Enqueues messages and wakes the senders.
#[derive(Clone)]
pub struct Outbound {
    store: Store,
    live: Live,
    wake: Arc<Notify>,
}

impl Outbound {
    pub fn new(store: Store, live: Live, wake: Arc<Notify>) -> Outbound {
        Outbound { store, live, wake }
    }

    /// Writes the message and its job in one transaction and wakes a sender. With an idempotency
    /// key, a repeated call returns the first message and sends nothing.
    pub async fn enqueue(&self, new: NewOutbound) -> store::Result<Enqueued> {
        let enqueued = self.store.enqueue_outbound(&new).await?;
        if let Enqueued::Created(m) = &enqueued {
            self.announce(m.conversation_id, &[m.id]);
        }
        Ok(enqueued)
    }

    /// Wakes a sender at once (jobs were written or given back elsewhere).
    pub fn wake_senders(&self) {
        self.wake.notify_one();
    }

    /// Tells watchers and the senders about messages written to the outbox elsewhere (the bot
    /// writes its messages in the transaction of its turn).
    pub fn announce(&self, conversation_id: i64, message_ids: &[i64]) {
        for &message_id in message_ids {
            self.live.publish(Notice::MessageCreated {
                conversation_id,
                message_id,
            });
        }
        if !message_ids.is_empty() {
            self.wake.notify_one();
        }
    }
}

/// The rate the sender schedules at: slightly under the configured one, so that network jitter
/// between our clock and Meta's count cannot make a one-second window exceed the limit, while the
/// sustained rate stays above 97% of it (the broadcast benchmark's target).
pub fn pacing(configured: i64) -> f64 {
    configured.clamp(1, 1000) as f64 * 0.98
}

/// How far ahead send slots are reserved: enough for a worker that comes back late to keep the
/// pace, short enough that a new message does not wait behind a long schedule.
const HORIZON_MS: f64 = 250.0;

/// How far ahead bulk (broadcast) jobs may take the schedule. A conversation's message does not
/// wait behind it, it takes the earliest slot a bulk job holds ([`BulkSlots`]); a longer horizon
/// lets the pace survive slower rounds of claims (200 ms gave 97 % of the rate on SQLite in the
/// broadcast bench) but measured worse for agents (p50 121 ms against 22 ms), so it stays short.
const BULK_HORIZON_MS: f64 = 40.0;

/// How late after its slot a send may still go: late sends bunch up, and this bounds by how much
/// (8 ms of a 1,000/s number is 8 sends, inside the 2% the pacing leaves).
const LATE_MS: i64 = 8;

/// Records accepted sends in shared transactions (one commit for many messages).
#[derive(Clone)]
pub struct Completions {
    writer: GroupCommit<SentJob, (i64, DeliveryStatus)>,
}

impl Completions {
    pub fn start(store: Store) -> Completions {
        let writer = GroupCommit::start(256, 1, move |jobs: Vec<SentJob>| {
            let store = store.clone();
            async move {
                match store.complete_outbox_sent_many(&jobs).await {
                    Ok(done) => done.into_iter().map(Ok).collect(),
                    Err(e) => {
                        tracing::error!(error = %e, count = jobs.len(), "cannot record sent messages");
                        jobs.iter().map(|_| Err(e.to_string())).collect()
                    }
                }
            }
        });
        Completions { writer }
    }

    pub async fn record(&self, job: SentJob) -> store::Result<(i64, DeliveryStatus)> {
        self.writer
            .submit(job)
            .await
            .map_err(store::StoreError::Conflict)
    }
}

/// New send slots for senders that woke up after theirs, reserved together: under load many wake
/// late at once, and one reservation each would crowd the database that made them late.
#[derive(Clone)]
pub struct LateSlots {
    writer: GroupCommit<(i64, f64, f64), Result<i64, u64>>,
}

impl LateSlots {
    pub fn start(store: Store) -> LateSlots {
        let writer = GroupCommit::start(256, 1, move |wanted: Vec<(i64, f64, f64)>| {
            let store = store.clone();
            async move { reserve_together(&store, &wanted).await }
        });
        LateSlots { writer }
    }

    /// A slot on the channel's schedule, or how long to wait (ms) before asking again.
    pub async fn reserve(
        &self,
        channel_id: i64,
        rate: f64,
        horizon_ms: f64,
    ) -> store::Result<Result<i64, u64>> {
        self.writer
            .submit((channel_id, rate, horizon_ms))
            .await
            .map_err(store::StoreError::Conflict)
    }
}

/// One reservation per channel (and horizon) for everyone in `wanted`, slots handed out in
/// arrival order.
async fn reserve_together(
    store: &Store,
    wanted: &[(i64, f64, f64)],
) -> Vec<Result<Result<i64, u64>, String>> {
    let mut answers: Vec<Result<Result<i64, u64>, String>> = Vec::with_capacity(wanted.len());
    let mut by_channel: std::collections::BTreeMap<(i64, i64), (f64, f64, Vec<usize>)> =
        Default::default();
    for (i, (channel_id, rate, horizon)) in wanted.iter().enumerate() {
        by_channel
            .entry((*channel_id, *horizon as i64))
            .or_insert((*rate, *horizon, Vec::new()))
            .2
            .push(i);
        answers.push(Err("not reserved".into()));
    }
    for ((channel_id, _), (rate, horizon, waiting)) in by_channel {
        let want = u32::try_from(waiting.len()).unwrap_or(u32::MAX);
        match store
            .reserve_send_slots(channel_id, want, rate, horizon)
            .await
        {
            Ok((slots, wait_ms)) => {
                let mut slots = slots.into_iter();
                for i in waiting {
                    answers[i] = Ok(slots.next().ok_or(wait_ms.max(1)));
                }
            }
            Err(e) => {
                for i in waiting {
                    answers[i] = Err(e.to_string());
                }
            }
        }
    }
    answers
}

#[derive(Clone)]
pub struct SenderWorker {
    pub store: Store,
    pub channels: ChannelRegistry,
    pub graph: GraphClient,
    pub files: MediaFiles,
    pub live: Live,
    pub wake: Arc<Notify>,
    pub worker_id: String,
    pub completions: Completions,
    pub late_slots: LateSlots,
    pub bulk_slots: BulkSlots,
}

impl SenderWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let pause = match self.round(&permits).await {
                Ok(pause) => pause,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "sender round failed");
                    Duration::from_secs(1)
                }
            };
            if pause.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Claims what the rate limits allow and starts each job at its send slot; returns how long to
    /// wait before the next round. Conversations' messages first, then bulk (broadcasts) only as
    /// far as [`BULK_HORIZON_MS`] of the schedule: whatever a broadcast reserved, a conversation's
    /// next message finds the schedule at most that far ahead.
    async fn round(&self, permits: &Arc<Semaphore>) -> anyhow::Result<Duration> {
        let mut pause = Duration::from_secs(1);
        for channel_id in self.store.outbox_ready_channels().await? {
            let Some(channel) = self.channels.by_id(channel_id) else {
                continue;
            };
            if !channel.enabled || !channel.healthy {
                continue;
            }
            let free = permits.available_permits().min(128) as u32;
            if free == 0 {
                return Ok(Duration::from_millis(5));
            }
            let rate = pacing(channel.rate_limit_per_sec);
            let lane = self
                .claim_and_start(&channel, permits, Lane::Conversations, free, HORIZON_MS)
                .await?;
            pause = pause.min(lane);
            let free = permits.available_permits().min(128) as u32;
            let (room, wait_ms) = self
                .store
                .send_room(channel.id, rate, BULK_HORIZON_MS)
                .await?;
            if room == 0 {
                pause = pause.min(Duration::from_millis(wait_ms.clamp(1, 1000)));
                continue;
            }
            let lane = self
                .claim_and_start(
                    &channel,
                    permits,
                    Lane::Bulk,
                    free.min(room),
                    BULK_HORIZON_MS,
                )
                .await?;
            pause = pause.min(lane);
        }
        Ok(pause)
    }

    /// One lane of a round: claim first, then reserve exactly one slot per claimed job (reserving
    /// ahead of the queue would push the shared schedule forward and delay everyone's next
    /// message), hand back what got no slot, start the rest.
    async fn claim_and_start(
        &self,
        channel: &Channel,
        permits: &Arc<Semaphore>,
        lane: Lane,
        limit: u32,
        horizon_ms: f64,
    ) -> anyhow::Result<Duration> {
        if limit == 0 {
            return Ok(Duration::from_millis(5));
        }
        let rate = pacing(channel.rate_limit_per_sec);
        let mut jobs = self
            .store
            .claim_outbox_lane(
                channel.id,
                lane,
                i64::from(limit),
                &self.worker_id,
                LEASE_MS,
            )
            .await?;
        if jobs.is_empty() {
            return Ok(Duration::from_secs(1));
        }
        let claimed = jobs.len();
        let (slots, wait_ms) = self
            .store
            .reserve_send_slots(channel.id, claimed as u32, rate, horizon_ms)
            .await?;
        let mut pause = Duration::from_secs(1);
        if slots.len() < claimed {
            let back: Vec<i64> = jobs.split_off(slots.len()).iter().map(|j| j.id).collect();
            self.store.unclaim_outbox(&back).await?;
            let wait = if slots.is_empty() { wait_ms } else { 1 };
            pause = Duration::from_millis(wait.clamp(1, 1000));
        } else if claimed == limit as usize {
            // There may be more to claim: at once for conversations, when the bulk horizon has
            // room again for bulk.
            pause = match lane {
                Lane::Bulk => Duration::from_millis((BULK_HORIZON_MS / 2.0) as u64),
                _ => Duration::ZERO,
            };
        }
        for (job, slot) in jobs.into_iter().zip(slots) {
            let permit = permits.clone().acquire_owned().await?;
            let worker = self.clone();
            let channel = channel.clone();
            tokio::spawn(async move {
                let horizon = if job.priority > 0 {
                    BULK_HORIZON_MS
                } else {
                    HORIZON_MS
                };
                let bulk = job.priority > 0;
                let slot = if bulk {
                    let held = worker.bulk_slots.hold(channel.id, slot, job.id);
                    sleep_until_ms(slot).await;
                    worker.bulk_slots.settle(held)
                } else {
                    worker
                        .bulk_slots
                        .take_earlier(channel.id, slot, slot, store::now_ms())
                };
                if !worker.wait_for_slot(&channel, slot, horizon, !bulk).await {
                    return;
                }
                worker.send(&channel, job).await;
                drop(permit);
                // The recipient's next message may now go.
                worker.wake.notify_one();
            });
        }
        Ok(pause)
    }

    /// Sleeps until the slot. A task that wakes up late (an overloaded machine) takes a new slot
    /// instead of sending at once: late sends bunched together could exceed the rate in a window.
    ///
    /// A conversation's job that is late first takes a slot a bulk job holds (the bulk job gets
    /// the missed slot and so reserves anew itself); it reserves from the schedule only when no
    /// bulk job holds one, and still trades that slot for an earlier bulk one.
    async fn wait_for_slot(
        &self,
        channel: &Channel,
        mut slot: i64,
        horizon_ms: f64,
        conversation: bool,
    ) -> bool {
        let rate = pacing(channel.rate_limit_per_sec);
        loop {
            sleep_until_ms(slot).await;
            let now = store::now_ms();
            if now - slot <= LATE_MS {
                return true;
            }
            if conversation {
                let taken = self
                    .bulk_slots
                    .take_earlier(channel.id, slot, i64::MAX, now);
                if taken != slot {
                    slot = taken;
                    continue;
                }
            }
            slot = loop {
                match self.late_slots.reserve(channel.id, rate, horizon_ms).await {
                    Ok(Ok(slot)) if conversation => {
                        break self.bulk_slots.take_earlier(
                            channel.id,
                            slot,
                            slot,
                            store::now_ms(),
                        );
                    }
                    Ok(Ok(slot)) => break slot,
                    Ok(Err(wait_ms)) => {
                        tokio::time::sleep(Duration::from_millis(wait_ms.clamp(1, 1000))).await
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reserve a send slot; the job's lease will expire and it will be retried");
                        return false;
                    }
                }
            };
        }
    }

    async fn send(&self, channel: &Channel, job: OutboxJob) {
        let message_id = job.message.id;
        let conversation_id = job.message.conversation_id;
        match self.try_send(channel, &job).await {
            Ok(wamid) => match self
                .completions
                .record(SentJob {
                    job_id: job.id,
                    message_id,
                    wamid,
                })
                .await
            {
                Ok((_, status)) => self.publish_status(conversation_id, message_id, status),
                Err(e) => tracing::error!(message_id, error = %e, "sent but not recorded"),
            },
            Err(SendFailure::Graph(e)) => self.handle_graph_error(channel, &job, e).await,
            Err(SendFailure::Local(reason)) => {
                tracing::warn!(message_id, %reason, "message cannot be sent");
                let detail = format!("Não foi possível enviar: {reason}");
                if let Err(e) = self
                    .store
                    .fail_outbox(job.id, message_id, None, "invalid_message", &detail)
                    .await
                {
                    tracing::error!(message_id, error = %e, "cannot record failure");
                }
                self.publish_status(conversation_id, message_id, DeliveryStatus::Failed);
            }
        }
    }

    async fn try_send(&self, channel: &Channel, job: &OutboxJob) -> Result<String, SendFailure> {
        let mut content: OutboundContent = serde_json::from_str(&job.message.content)
            .map_err(|e| SendFailure::Local(format!("stored content is not a message: {e}")))?;
        if let Some(media_id) = job.message.media_id {
            let wa_media_id = self.uploaded_media_id(channel, media_id).await?;
            set_media(&mut content, wa_media_id);
        }
        let message = OutboundMessage {
            to: job.recipient.clone(),
            reply_to: job.message.reply_to_wamid.clone(),
            content,
        };
        let response = self
            .graph
            .send_message(&channel.creds(), &message)
            .await
            .map_err(SendFailure::Graph)?;
        Ok(response.wamid)
    }

    /// Meta's id for our file on this channel, uploading it the first time.
    async fn uploaded_media_id(
        &self,
        channel: &Channel,
        media_id: i64,
    ) -> Result<String, SendFailure> {
        let media = self
            .store
            .media(media_id)
            .await
            .map_err(|e| SendFailure::Local(e.to_string()))?
            .ok_or_else(|| SendFailure::Local("the attached file no longer exists".into()))?;
        if let (Some(wa_id), Some(ch)) = (&media.wa_media_id, media.channel_id)
            && ch == channel.id
        {
            return Ok(wa_id.clone());
        }
        let key = media
            .storage_key
            .as_deref()
            .ok_or_else(|| SendFailure::Local("the attached file is not stored".into()))?;
        let bytes = self
            .files
            .get(key)
            .await
            .map_err(|e| SendFailure::Local(e.to_string()))?;
        let mime = media
            .mime_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let filename = media.filename.as_deref().unwrap_or("arquivo");
        let wa_id = self
            .graph
            .upload_media(&channel.creds(), bytes, mime, filename)
            .await
            .map_err(SendFailure::Graph)?;
        self.store
            .set_media_upload(media_id, channel.id, &wa_id)
            .await
            .map_err(|e| SendFailure::Local(e.to_string()))?;
        Ok(wa_id)
    }

    async fn handle_graph_error(&self, channel: &Channel, job: &OutboxJob, error: GraphError) {
        let message_id = job.message.id;
        let code = error.code();
        let now = store::now_ms();
        let outcome = match error.disposition() {
            Disposition::Retry {
                min_delay_secs,
                max_attempts,
            } if job.attempts < i64::from(max_attempts)
                && now - job.created_at < MAX_RETRY_AGE_MS =>
            {
                let delay = domain::backoff::backoff_delay_ms(
                    u32::try_from(job.attempts).unwrap_or(u32::MAX),
                    500,
                    60_000,
                    min_delay_secs * 1000,
                    rand::random::<f64>(),
                );
                tracing::info!(message_id, attempt = job.attempts, delay_ms = delay, error = %error, "send will be retried");
                self.store
                    .retry_outbox(
                        job.id,
                        now + i64::try_from(delay).unwrap_or(60_000),
                        &error.to_string(),
                    )
                    .await
            }
            disposition => {
                if disposition == Disposition::InvalidToken {
                    tracing::error!(
                        channel_id = channel.id,
                        "Meta refused the channel's access token; channel marked unhealthy"
                    );
                    let note = "O token de acesso foi recusado pela Meta (expirado ou inválido). Atualize-o no canal.";
                    if let Err(e) = self
                        .store
                        .set_channel_health(channel.id, false, Some(note))
                        .await
                    {
                        tracing::error!(error = %e, "cannot mark channel unhealthy");
                    }
                    if let Err(e) = self.channels.reload().await {
                        tracing::error!(error = %e, "cannot reload channels");
                    }
                }
                tracing::warn!(message_id, code = ?code, error = %error, "message failed");
                let title = code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "error".into());
                let detail = code.map(explain_pt_br).unwrap_or_else(|| {
                    format!(
                        "Falha ao enviar depois de {} tentativas: {error}",
                        job.attempts
                    )
                });
                let result = self
                    .store
                    .fail_outbox(job.id, message_id, code, &title, &detail)
                    .await;
                self.publish_status(
                    job.message.conversation_id,
                    message_id,
                    DeliveryStatus::Failed,
                );
                result
            }
        };
        if let Err(e) = outcome {
            tracing::error!(message_id, error = %e, "cannot record send outcome");
        }
    }

    fn publish_status(&self, conversation_id: i64, message_id: i64, status: DeliveryStatus) {
        self.live.publish(Notice::MessageStatus {
            conversation_id,
            message_id,
            status: status.as_str().to_owned(),
        });
    }
}

enum SendFailure {
    Graph(GraphError),
    /// Our side cannot build the request; retrying will not help.
    Local(String),
}

/// Sleeps until the unix-ms moment `at` (at once when it has passed).
async fn sleep_until_ms(at: i64) {
    let wait = at - store::now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

fn set_media(content: &mut OutboundContent, wa_media_id: String) {
    let id = MediaRef::Id(wa_media_id);
    match content {
        OutboundContent::Image { media, .. }
        | OutboundContent::Video { media, .. }
        | OutboundContent::Audio { media }
        | OutboundContent::Document { media, .. }
        | OutboundContent::Sticker { media } => *media = id,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::pacing;

    #[test]
    fn pacing_stays_under_the_limit_and_above_97_percent() {
        for configured in [1, 2, 10, 80, 250, 1000] {
            let rate = pacing(configured);
            let c = configured as f64;
            assert!(rate < c && rate >= 0.97 * c, "{configured}: {rate}");
        }
        assert_eq!(pacing(5000), 980.0, "Meta's maximum is 1000/s");
    }
}
