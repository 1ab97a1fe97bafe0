//! Downloads inbound media from Meta as soon as a message arrives (media URLs live five minutes
//! and media ids seven days), independently of the message itself: the message is shown at once
//! with its file pending, and a failed download is retried here without ever touching the message.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use store::Store;
use store::media::MediaRecord;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use whatsapp::errors::GraphError;
use whatsapp::graph::GraphClient;

use crate::channels::ChannelRegistry;
use crate::live::{Live, Notice};
use crate::media_files::MediaFiles;

pub const MAX_ATTEMPTS: i64 = 5;
const ATTEMPT_LEASE_MS: i64 = 120_000;

#[derive(Clone)]
pub struct MediaDownloader {
    pub store: Store,
    pub channels: ChannelRegistry,
    pub graph: GraphClient,
    pub files: MediaFiles,
    pub live: Live,
    pub wake: Arc<Notify>,
}

impl MediaDownloader {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.store.due_media_downloads(16).await {
                Ok(due) => {
                    let mut tasks = tokio::task::JoinSet::new();
                    for media in due {
                        let this = self.clone();
                        tasks.spawn(async move { this.attempt(media).await });
                    }
                    while tasks.join_next().await.is_some() {}
                }
                Err(e) => tracing::error!(error = %e, "cannot list media downloads"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn attempt(&self, media: MediaRecord) {
        match self
            .store
            .start_media_attempt(media.id, ATTEMPT_LEASE_MS)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(media_id = media.id, error = %e, "cannot start media download");
                return;
            }
        }
        let attempt = media.attempts + 1;
        let outcome = match self.download(&media).await {
            Ok(()) => {
                return self
                    .live
                    .publish(Notice::MediaUpdated { media_id: media.id });
            }
            Err(reason) if attempt < MAX_ATTEMPTS => {
                let delay = domain::backoff::backoff_delay_ms(
                    u32::try_from(attempt).unwrap_or(u32::MAX),
                    1_000,
                    60_000,
                    0,
                    rand::random::<f64>(),
                );
                tracing::info!(media_id = media.id, attempt, %reason, "media download will be retried");
                let next = store::now_ms() + i64::try_from(delay).unwrap_or(60_000);
                self.store
                    .media_attempt_failed(media.id, &reason, Some(next))
                    .await
            }
            Err(reason) => {
                tracing::warn!(media_id = media.id, %reason, "media download failed for good");
                let result = self
                    .store
                    .media_attempt_failed(media.id, &reason, None)
                    .await;
                self.live
                    .publish(Notice::MediaUpdated { media_id: media.id });
                result
            }
        };
        if let Err(e) = outcome {
            tracing::error!(media_id = media.id, error = %e, "cannot record media attempt");
        }
    }

    async fn download(&self, media: &MediaRecord) -> Result<(), String> {
        let channel = media
            .channel_id
            .and_then(|id| self.channels.by_id(id))
            .ok_or("the channel of this file no longer exists")?;
        let wa_media_id = media.wa_media_id.as_deref().ok_or("no WhatsApp media id")?;
        let creds = channel.creds();
        let mut info = self
            .graph
            .media_info(&creds, wa_media_id)
            .await
            .map_err(describe)?;
        let bytes = match self.graph.download(&creds, &info.url).await {
            Ok(bytes) => bytes,
            // The URL lives five minutes: an expired one is fetched again, once.
            Err(e) if matches!(e.http_status(), Some(401 | 403 | 404 | 410)) => {
                info = self
                    .graph
                    .media_info(&creds, wa_media_id)
                    .await
                    .map_err(describe)?;
                self.graph
                    .download(&creds, &info.url)
                    .await
                    .map_err(describe)?
            }
            Err(e) => return Err(describe(e)),
        };
        if let Some(expected) = info.file_size
            && expected != bytes.len() as u64
        {
            return Err(format!(
                "expected {expected} bytes, received {}",
                bytes.len()
            ));
        }
        let digest = Sha256::digest(&bytes);
        let hex_digest = hex::encode(digest);
        // GET /{media-id} announces the file's SHA-256 in hex. The webhook's own `sha256` is
        // documented only loosely (base64 in Meta's samples), so it is kept but not enforced.
        if let Some(expected) = info.sha256.as_deref()
            && !expected.eq_ignore_ascii_case(&hex_digest)
            && expected != base64::engine::general_purpose::STANDARD.encode(digest)
        {
            return Err("the file's SHA-256 does not match what Meta announced".into());
        }
        let key = self
            .files
            .put(bytes.clone())
            .await
            .map_err(|e| format!("{e:#}"))?;
        // The name is whatever the customer's phone sent (control characters included); it is
        // cleaned as an upload's is before anything shows it or puts it in a header.
        let filename = media
            .filename
            .as_deref()
            .map(whatsapp::media::sanitize_filename);
        self.store
            .media_ready(
                media.id,
                &key,
                info.mime_type.as_deref(),
                bytes.len() as i64,
                &hex_digest,
                filename.as_deref(),
            )
            .await
            .map_err(|e| e.to_string())
    }
}

fn describe(e: GraphError) -> String {
    e.to_string()
}
