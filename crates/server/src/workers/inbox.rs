//! The webhook inbox: the group-commit writer that makes a webhook durable before it is answered,
//! and the processor that turns stored webhooks into contacts, conversations and messages.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use store::Store;
use store::conversations::{
    ApplyReport, InboundItem, InboundMedia, InboundMessageRecord, StatusRecord,
};
use store::inbox::{Appended, InboxAppend};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use whatsapp::webhook::{self, MessagesValue, StatusKind};

use crate::channels::ChannelRegistry;
use crate::group_commit::GroupCommit;
use crate::live::{Live, Notice};

/// Most bodies one transaction takes: enough to amortise a commit, small enough to keep latency flat.
const MAX_GROUP: usize = 256;

const INBOX_LEASE: &str = "inbox";
/// Webhooks with customers' messages applied in one transaction at most (a message may open a
/// conversation, meet the bot, route: the transaction must stay short).
const APPLY_BATCH: usize = 10;
/// Webhooks applied in one transaction at most when they carry only delivery statuses: a few
/// indexed statements each, and during a broadcast they arrive at the number's rate, so they are
/// applied many to a commit (and to each pause that lets acknowledgements go first).
const STATUS_BATCH: usize = 100;
/// Renewed before every batch (a batch takes well under a second); after a crash, another
/// instance (or the restarted one) takes over within this time.
const LEASE_MS: i64 = 5_000;

/// Appends webhook bodies durably. Concurrent callers are grouped into one transaction by a few
/// writer tasks, so the cost of a commit (an fsync) is shared by everyone waiting for it.
#[derive(Clone)]
pub struct InboxWriter {
    writer: GroupCommit<InboxAppend, Appended>,
}

impl InboxWriter {
    /// `writers` tasks commit in parallel (1 for SQLite, which has a single writer anyway). After
    /// `shutdown`, appends are refused rather than written while the database closes.
    pub fn start(
        store: Store,
        writers: usize,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> InboxWriter {
        let writer = GroupCommit::start(MAX_GROUP, writers, move |items: Vec<InboxAppend>| {
            let (store, wake, shutdown) = (store.clone(), wake.clone(), shutdown.clone());
            async move {
                if shutdown.is_cancelled() {
                    return items
                        .iter()
                        .map(|_| Err("the inbox writer has stopped".to_owned()))
                        .collect();
                }
                match store.append_inbox(&items).await {
                    Ok(outcomes) => {
                        wake.notify_one();
                        outcomes.into_iter().map(Ok).collect()
                    }
                    Err(e) => {
                        tracing::error!(error = %e, count = items.len(), "cannot store webhooks");
                        items.iter().map(|_| Err(e.to_string())).collect()
                    }
                }
            }
        });
        InboxWriter { writer }
    }

    /// Webhooks handed over and not yet picked up by a writer.
    pub fn waiting(&self) -> usize {
        self.writer.waiting()
    }

    /// Returns once the body is committed (or was already stored).
    pub async fn append(
        &self,
        body: Vec<u8>,
        dead_reason: Option<String>,
    ) -> Result<Appended, String> {
        let sha256_hex = hex::encode(Sha256::digest(&body));
        self.writer
            .submit(InboxAppend {
                body,
                sha256_hex,
                dead_reason,
            })
            .await
    }
}

/// Drains the inbox in arrival order. Only one instance processes at a time (a lease in the
/// database), which keeps per-contact order without cross-instance coordination of every row.
pub struct InboxProcessor {
    pub store: Store,
    pub channels: ChannelRegistry,
    pub protocol: domain::protocol::ProtocolConfig,
    pub live: Live,
    pub wake: Arc<Notify>,
    pub media_wake: Arc<Notify>,
    pub instance_id: String,
    /// With SQLite's single writer: this instance's writer, whose acknowledgements go first.
    pub yield_to: Option<InboxWriter>,
    /// Wakes the template sync worker when a webhook named a template Atende does not know.
    pub template_wake: Arc<Notify>,
}

/// Longest the processor stands aside for waiting acknowledgements before one batch, so a
/// sustained burst still gets processed (at least `APPLY_BATCH` webhooks per this much time).
const MAX_YIELD: Duration = Duration::from_millis(20);
const YIELD_STEP: Duration = Duration::from_millis(1);

impl InboxProcessor {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.drain(&shutdown).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "inbox processing failed; will retry")
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                // other instances append too; poll so their webhooks are not left waiting
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => {
                    if let Err(e) = self.store.release_lease(INBOX_LEASE, &self.instance_id).await {
                        tracing::warn!(error = %e, "cannot release the inbox lease");
                    }
                    return;
                }
            }
        }
    }

    /// Applies pending webhooks in order while this instance holds the lease; stops between two
    /// webhooks at shutdown (the rest stay pending for the next start or another instance).
    async fn drain(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if !self
                .store
                .try_lease(INBOX_LEASE, &self.instance_id, LEASE_MS)
                .await?
            {
                return Ok(());
            }
            self.let_acknowledgements_go_first().await;
            let rows = self.store.pending_inbox(100).await?;
            if rows.is_empty() {
                return Ok(());
            }
            // Consecutive good webhooks are applied together, in order, in one transaction: one
            // commit for many when they arrive faster than commits can be made.
            let mut batch: Vec<(i64, Vec<InboundItem>)> = Vec::new();
            let mut with_messages = 0;
            for row in rows {
                if shutdown.is_cancelled() {
                    break;
                }
                // Template webhooks set a template's state (idempotent), so they are applied before
                // the row is marked done: a crash in between applies them again, harmlessly.
                if mentions_templates(&row.body)
                    && crate::workers::template_sync::apply_webhook(&self.store, &row.body).await?
                {
                    self.template_wake.notify_one();
                }
                match self.understand(&row.body) {
                    Ok(items) => {
                        if items.iter().any(|i| matches!(i, InboundItem::Message(_))) {
                            with_messages += 1;
                        }
                        batch.push((row.id, items));
                    }
                    Err(reason) => {
                        self.apply(&mut batch).await?;
                        with_messages = 0;
                        tracing::warn!(inbox_id = row.id, %reason, "webhook kept as dead letter");
                        self.store.mark_inbox_dead(row.id, &reason).await?;
                        self.live
                            .publish(Notice::InboxProcessed { inbox_id: row.id });
                    }
                }
                if with_messages >= APPLY_BATCH || batch.len() >= STATUS_BATCH {
                    self.apply(&mut batch).await?;
                    with_messages = 0;
                    self.let_acknowledgements_go_first().await;
                }
            }
            self.apply(&mut batch).await?;
        }
    }

    /// Acknowledging a webhook (Meta waits for it) matters more than applying it, and on SQLite
    /// both need the one write connection: while appends are waiting, stand aside a little.
    async fn let_acknowledgements_go_first(&self) {
        let Some(writer) = &self.yield_to else {
            return;
        };
        let started = tokio::time::Instant::now();
        while writer.waiting() > 0 && started.elapsed() < MAX_YIELD {
            tokio::time::sleep(YIELD_STEP).await;
        }
    }

    /// Applies and empties `batch`. When the batch fails as a whole, each webhook is applied on
    /// its own, so one that cannot be applied holds up only itself (and what follows it).
    async fn apply(&self, batch: &mut Vec<(i64, Vec<InboundItem>)>) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.store.apply_inbound_batch(batch, &self.protocol).await {
            Ok(report) => self.announce(&report, batch.iter().map(|(id, _)| *id)),
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, rows = batch.len(), "batch failed; applying one by one");
                for (inbox_id, items) in batch.iter() {
                    let report = self
                        .store
                        .apply_inbound(*inbox_id, items, &self.protocol)
                        .await?;
                    self.announce(&report, [*inbox_id]);
                }
            }
            Err(e) => return Err(e.into()),
        }
        batch.clear();
        Ok(())
    }

    /// Tells whoever is watching what the applied webhooks changed.
    fn announce(&self, report: &ApplyReport, applied: impl IntoIterator<Item = i64>) {
        for conversation_id in &report.opened_conversations {
            self.live.publish(Notice::ConversationOpened {
                conversation_id: *conversation_id,
            });
        }
        for (conversation_id, message_id) in &report.new_messages {
            self.live.publish(Notice::MessageCreated {
                conversation_id: *conversation_id,
                message_id: *message_id,
            });
        }
        for (conversation_id, message_id, status) in &report.status_changes {
            self.live.publish(Notice::MessageStatus {
                conversation_id: *conversation_id,
                message_id: *message_id,
                status: status.as_str().to_owned(),
            });
        }
        if !report.new_media.is_empty() {
            self.media_wake.notify_one();
        }
        for inbox_id in applied {
            self.live.publish(Notice::InboxProcessed { inbox_id });
        }
    }

    /// Parses a stored body into store items; `Err(reason)` makes it a dead letter.
    fn understand(&self, body: &[u8]) -> Result<Vec<InboundItem>, String> {
        let envelope = webhook::parse_envelope(body).map_err(|e| e.to_string())?;
        let mut items = Vec::new();
        for entry in &envelope.entry {
            for change in &entry.changes {
                let Some(value) = change.messages() else {
                    // Template fields were applied by `template_sync::apply_webhook`; others
                    // (account updates...) are kept verbatim in the inbox.
                    if !webhook::templates::is_template_field(&change.field) {
                        tracing::debug!(field = %change.field, "webhook field stored without processing");
                    }
                    continue;
                };
                let value = value.map_err(|e| format!("invalid messages value: {e}"))?;
                let channel = self
                    .channels
                    .by_phone_number_id(&value.metadata.phone_number_id)
                    .ok_or_else(|| {
                        format!(
                            "no channel for phone number id {}",
                            value.metadata.phone_number_id
                        )
                    })?;
                for error in &value.errors {
                    tracing::warn!(channel_id = channel.id, code = error.code, title = ?error.title, "WhatsApp reported an error");
                }
                collect_items(channel.id, &value, &mut items);
            }
        }
        Ok(items)
    }
}

/// A cheap look before parsing a body a second time: most webhooks are messages and statuses.
fn mentions_templates(body: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 2] = [b"message_template_", b"template_category_update"];
    NEEDLES
        .iter()
        .any(|n| body.windows(n.len()).any(|w| w == *n))
}

fn collect_items(channel_id: i64, value: &MessagesValue, items: &mut Vec<InboundItem>) {
    for message in &value.messages {
        let profile_name = value
            .contacts
            .iter()
            .find(|c| c.wa_id.as_deref() == Some(message.from.as_str()))
            .or(value.contacts.first())
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.name.clone());
        items.push(InboundItem::Message(InboundMessageRecord {
            channel_id,
            wa_id: message.from.clone(),
            profile_name,
            wamid: message.id.clone(),
            kind: message.content.kind().to_owned(),
            body: message.content.preview_text(),
            content_json: message.raw.to_string(),
            reply_to_wamid: message.context.as_ref().and_then(|c| c.id.clone()),
            wa_timestamp_ms: message.timestamp_secs().map(|s| s.saturating_mul(1000)),
            media: message.content.media_id().map(|id| InboundMedia {
                wa_media_id: id.to_owned(),
                kind: message.content.kind().to_owned(),
                mime_type: message.content.mime_type().map(str::to_owned),
                sha256: message.content.sha256().map(str::to_owned),
                filename: message
                    .content
                    .filename()
                    .map(whatsapp::media::sanitize_filename),
            }),
        }));
    }
    for status in &value.statuses {
        let Some(kind) = delivery_status(&status.status) else {
            tracing::debug!(
                status = status.status.as_str(),
                "status kind without a delivery meaning"
            );
            continue;
        };
        let error = status.errors.first();
        items.push(InboundItem::Status(StatusRecord {
            channel_id,
            wamid: status.id.clone(),
            status: kind,
            wa_timestamp_ms: status.timestamp_secs().map(|s| s.saturating_mul(1000)),
            recipient_id: status.recipient_id.clone(),
            error_code: error.map(|e| e.code),
            error_title: error.and_then(|e| e.title.clone()),
            error_detail: error.and_then(|e| e.details.clone().or(e.message.clone())),
        }));
    }
}

fn delivery_status(kind: &StatusKind) -> Option<domain::status::DeliveryStatus> {
    use domain::status::DeliveryStatus;
    match kind {
        StatusKind::Sent => Some(DeliveryStatus::Sent),
        StatusKind::Delivered => Some(DeliveryStatus::Delivered),
        StatusKind::Read => Some(DeliveryStatus::Read),
        StatusKind::Failed => Some(DeliveryStatus::Failed),
        StatusKind::Deleted | StatusKind::Other(_) => None,
    }
}
