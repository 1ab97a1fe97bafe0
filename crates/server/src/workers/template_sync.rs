//! Keeps the stored templates equal to Meta's: the template webhooks (status, quality, category)
//! applied by the inbox processor ([`apply_webhook`]), a fetch of each template a webhook named
//! that Atende does not know (`GET /{template-id}`, queued durably in `template_fetches`), and a
//! full import of every WABA's templates with paging, periodically and on demand ([`sync_waba`]):
//! upsert by Meta's id, templates gone at Meta marked `DELETED`.
//!
//! Several instances may run this worker: the periodic import takes a lease and records when it
//! last ran (a setting), so it runs once per period in the whole installation.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use store::Store;
use store::templates::{TemplateChange, TemplateRecord, TemplateUpsert};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use whatsapp::errors::GraphError;
use whatsapp::graph::GraphClient;
use whatsapp::graph::management::MetaTemplate;
use whatsapp::webhook::templates::{TemplateEvent, TemplateEventKind};

use crate::channels::{Channel, ChannelRegistry};

const SYNC_LEASE: &str = "template_sync";
/// Longer than an import of a large WABA takes; renewed between WABAs.
const SYNC_LEASE_MS: i64 = 10 * 60 * 1000;
const LAST_SYNC_SETTING: &str = "template_sync.last_at";
/// The fetch queue is looked at this often even without a wake (other instances' webhooks).
const FETCH_SWEEP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no enabled channel serves WABA {0}")]
    NoChannel(String),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// What an import of one WABA did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub waba_id: String,
    /// Templates Meta listed.
    pub seen: usize,
    pub created: usize,
    pub updated: usize,
    /// Marked DELETED: stored, but no longer at Meta.
    pub deleted: usize,
}

/// The channel whose credentials speak for a WABA: an enabled one, healthy ones first.
pub fn channel_for_waba(channels: &ChannelRegistry, waba_id: &str) -> Option<Arc<Channel>> {
    let mut candidates: Vec<Arc<Channel>> = channels
        .all()
        .into_iter()
        .filter(|c| c.waba_id == waba_id && c.enabled)
        .collect();
    candidates.sort_by_key(|c| (!c.healthy, c.is_simulator, c.id));
    candidates.into_iter().next()
}

/// A template as Meta described it, ready to store.
pub fn upsert_of(
    waba_id: &str,
    t: &MetaTemplate,
    status_at: i64,
    created_by: Option<i64>,
) -> TemplateUpsert {
    TemplateUpsert {
        waba_id: waba_id.to_owned(),
        meta_id: Some(t.id.clone()),
        name: t.name.clone(),
        language: t.language.clone(),
        category: t.category.clone(),
        status: t.status.clone(),
        parameter_format: t.parameter_format.clone(),
        components: t.components.to_string(),
        quality: t.quality.clone(),
        rejected_reason: t.rejected_reason.clone(),
        created_by,
        status_at,
    }
}

/// Imports every template of the channel's WABA: upserts what Meta lists, marks `DELETED` what
/// it no longer lists.
pub async fn sync_waba(
    store: &Store,
    graph: &GraphClient,
    channel: &Channel,
) -> Result<SyncReport, SyncError> {
    let listed_at = store::now_ms();
    let templates = graph
        .all_templates(&channel.creds(), &channel.waba_id)
        .await?;
    let mut report = SyncReport {
        waba_id: channel.waba_id.clone(),
        seen: templates.len(),
        ..Default::default()
    };
    let mut seen = Vec::with_capacity(templates.len());
    for t in &templates {
        let known = store.template_by_meta_id(&t.id).await?.is_some()
            || store
                .template_by_name(&channel.waba_id, &t.name, &t.language)
                .await?
                .is_some();
        let (_, changed) = store
            .upsert_template(&upsert_of(&channel.waba_id, t, listed_at, None))
            .await?;
        match (known, changed) {
            (false, _) => report.created += 1,
            (true, true) => report.updated += 1,
            (true, false) => {}
        }
        seen.push(t.id.clone());
    }
    report.deleted = store
        .mark_templates_gone(&channel.waba_id, &seen, listed_at)
        .await?
        .len();
    tracing::info!(
        waba_id = %channel.waba_id,
        seen = report.seen,
        created = report.created,
        updated = report.updated,
        deleted = report.deleted,
        "templates synced"
    );
    Ok(report)
}

/// Every WABA of the enabled channels, once each.
pub fn wabas(channels: &ChannelRegistry) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in channels.all() {
        if c.enabled && !out.contains(&c.waba_id) {
            out.push(c.waba_id.clone());
        }
    }
    out
}

/// `GET /{template-id}` and store the answer. `Ok(None)` when Meta says there is no such template
/// (a stored one is then marked `DELETED`).
pub async fn fetch_template(
    store: &Store,
    graph: &GraphClient,
    channel: &Channel,
    meta_id: &str,
) -> Result<Option<TemplateRecord>, SyncError> {
    let started = store::now_ms();
    match graph.template(&channel.creds(), meta_id).await {
        Ok(t) => {
            let (record, _) = store
                .upsert_template(&upsert_of(&channel.waba_id, &t, started, None))
                .await?;
            Ok(Some(record))
        }
        // (#100) "Object with ID ... does not exist" (subcode 33) or (#803).
        Err(GraphError::Api { code, subcode, .. })
            if code == 803 || (code == 100 && subcode == Some(33)) =>
        {
            if let Some(r) = store.template_by_meta_id(meta_id).await? {
                store.mark_templates_deleted(&[r.id]).await?;
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// What applying one template webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Applied,
    /// Older than what is stored: nothing changed.
    Stale,
    /// Atende does not know the template (or not its current state): a fetch was queued.
    FetchQueued,
}

/// The status a `message_template_status_update` event leaves the template in; `None` when the
/// event does not say (UNARCHIVED, UNLOCKED: back to whatever it was, which only Meta knows).
fn status_after(event: &str) -> Option<&str> {
    match event {
        "REINSTATED" => Some("APPROVED"),
        "UNARCHIVED" | "UNLOCKED" | "UNPAUSED" => None,
        other => Some(other),
    }
}

/// Applies one template webhook to the stored template.
pub async fn apply_event(store: &Store, e: &TemplateEvent) -> Result<EventOutcome, SyncError> {
    let Some(record) = store.template_by_meta_id(&e.template_id).await? else {
        store
            .request_template_fetch(&e.template_id, &e.waba_id)
            .await?;
        tracing::info!(template_id = %e.template_id, waba_id = %e.waba_id, "webhook for an unknown template: fetch queued");
        return Ok(EventOutcome::FetchQueued);
    };
    // entry.time is in seconds; several events of one second keep their order of arrival.
    let at = e
        .time
        .map(|s| s.saturating_mul(1000))
        .unwrap_or_else(store::now_ms);
    let change = match &e.kind {
        TemplateEventKind::Status {
            event,
            reason,
            recommendation,
            category,
            ..
        } => {
            if record.status_at.is_some_and(|known| known > at + 999) {
                return Ok(EventOutcome::Stale);
            }
            let Some(status) = status_after(event) else {
                store
                    .request_template_fetch(&e.template_id, &e.waba_id)
                    .await?;
                return Ok(EventOutcome::FetchQueued);
            };
            let rejected = status == "REJECTED";
            TemplateChange {
                status: Some(status.to_owned()),
                category: category.clone(),
                rejected_reason: Some(if rejected { reason.clone() } else { None }),
                rejection_recommendation: Some(if rejected {
                    recommendation.clone()
                } else {
                    None
                }),
                status_at: Some(at),
                ..Default::default()
            }
        }
        TemplateEventKind::Quality { new, .. } => TemplateChange {
            quality: Some(new.clone()),
            ..Default::default()
        },
        TemplateEventKind::Category { previous, new } => TemplateChange {
            category: Some(new.clone()),
            previous_category: previous.clone().or_else(|| Some(record.category.clone())),
            ..Default::default()
        },
    };
    store.change_template(record.id, &change).await?;
    tracing::info!(template_id = record.id, meta_id = %e.template_id, kind = ?e.kind, "template webhook applied");
    Ok(EventOutcome::Applied)
}

/// Applies the template webhooks of a stored body; true when a fetch was queued (wake the
/// worker). Applying twice is harmless: each event sets a state.
pub async fn apply_webhook(store: &Store, body: &[u8]) -> Result<bool, SyncError> {
    let Ok(envelope) = whatsapp::webhook::parse_envelope(body) else {
        return Ok(false);
    };
    let mut fetch = false;
    for event in envelope.template_events() {
        fetch |= apply_event(store, &event).await? == EventOutcome::FetchQueued;
    }
    Ok(fetch)
}

/// The background side: queued fetches, and the periodic import.
pub struct TemplateSync {
    pub store: Store,
    pub channels: ChannelRegistry,
    pub graph: GraphClient,
    pub wake: Arc<Notify>,
    /// `None`: no periodic import.
    pub every: Option<Duration>,
    pub instance_id: String,
}

impl TemplateSync {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.fetch_queued().await {
                tracing::warn!(error = %e, "template fetches failed; will retry");
            }
            if let Err(e) = self.periodic().await {
                tracing::warn!(error = %e, "periodic template sync failed; will retry");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(FETCH_SWEEP) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn fetch_queued(&self) -> Result<(), SyncError> {
        for f in self.store.due_template_fetches(50).await? {
            let Some(channel) = channel_for_waba(&self.channels, &f.waba_id) else {
                tracing::warn!(waba_id = %f.waba_id, template_id = %f.meta_id, "template webhook for a WABA without an enabled channel");
                self.store.finish_template_fetch(&f.meta_id).await?;
                continue;
            };
            match fetch_template(&self.store, &self.graph, &channel, &f.meta_id).await {
                Ok(_) => self.store.finish_template_fetch(&f.meta_id).await?,
                Err(SyncError::Graph(e)) => {
                    let attempt = u32::try_from(f.attempts + 1).unwrap_or(u32::MAX);
                    // No jitter: one instance works the queue at a time in practice.
                    let delay =
                        domain::backoff::backoff_delay_ms(attempt, 2_000, 600_000, 2_000, 1.0);
                    self.store
                        .retry_template_fetch(
                            &f.meta_id,
                            &e.to_string(),
                            store::now_ms() + i64::try_from(delay).unwrap_or(600_000),
                        )
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn periodic(&self) -> Result<(), SyncError> {
        let Some(every) = self.every else {
            return Ok(());
        };
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        let last: i64 = self
            .store
            .setting(LAST_SYNC_SETTING)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if store::now_ms() - last < every_ms {
            return Ok(());
        }
        if !self
            .store
            .try_lease(SYNC_LEASE, &self.instance_id, SYNC_LEASE_MS)
            .await?
        {
            return Ok(());
        }
        // Recorded first: a WABA that keeps failing is tried again next period, not in a loop.
        self.store
            .set_setting(LAST_SYNC_SETTING, &store::now_ms().to_string())
            .await?;
        for waba in wabas(&self.channels) {
            let Some(channel) = channel_for_waba(&self.channels, &waba) else {
                continue;
            };
            if let Err(e) = sync_waba(&self.store, &self.graph, &channel).await {
                tracing::warn!(waba_id = %waba, error = %e, "template sync of a WABA failed");
            }
            self.store
                .try_lease(SYNC_LEASE, &self.instance_id, SYNC_LEASE_MS)
                .await?;
        }
        self.store
            .release_lease(SYNC_LEASE, &self.instance_id)
            .await?;
        Ok(())
    }
}
