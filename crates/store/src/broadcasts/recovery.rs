//! What keeps a broadcast from sending anyone twice when a process dies mid-send, and what stops
//! it when Meta signals a quality problem.
//!
//! A bulk job (priority > 0) that a sender claimed is never claimed again because its lease ran
//! out ([`Store::claim_outbox`] leaves those alone): whether Meta received it is unknown. Each
//! sender worker keeps a heartbeat row in `leases` (`sender:<worker id>`); once it stops beating,
//! its unfinished bulk jobs are *orphaned*. An orphaned job is confirmed by its status webhook,
//! which Meta keeps retrying until we answer (matched by recipient: the outbox sends one message
//! at a time per customer, so an unknown wamid for that customer after the job was written is
//! this one), and only sent again when no status came within a grace period.

use domain::status::DeliveryStatus;
use serde::Serialize;

use crate::outbox::SentJob;
use crate::{Result, Store, now_ms, on_read, on_write};

/// Error codes that stop a broadcast: the account (spam rate limit, policy blocks) or the
/// template (paused, disabled) can no longer be used for bulk sends.
pub const ACCOUNT_STOP_CODES: &[i64] = &[131048, 368, 131031];
pub const TEMPLATE_STOP_CODES: &[i64] = &[132015, 132016];

/// A quality signal found among the failed messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopSignal {
    pub code: i64,
    pub title: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RecoveryOutcome {
    /// Jobs whose sender stopped beating, found this time.
    pub orphaned: u64,
    /// Orphaned jobs a status webhook confirmed: (conversation id, message id, status).
    pub confirmed: Vec<(i64, i64, DeliveryStatus)>,
    /// Orphaned jobs given back to the outbox (no status within the grace).
    pub resent: u64,
}

impl Store {
    /// Renews the heartbeat of these sender workers for `ttl_ms`.
    pub async fn beat_senders(&self, worker_ids: &[String], ttl_ms: i64) -> Result<()> {
        let expires = now_ms() + ttl_ms;
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in worker_ids {
                sqlx::query(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                )
                .bind(format!("sender:{id}"))
                .bind(id)
                .bind(expires)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Ends the heartbeats (graceful shutdown, after the senders stopped).
    pub async fn end_sender_beats(&self, worker_ids: &[String]) -> Result<()> {
        for id in worker_ids {
            self.release_lease(&format!("sender:{id}"), id).await?;
        }
        Ok(())
    }

    /// Finds orphaned bulk jobs, confirms those a status webhook vouches for and gives back to
    /// the outbox those orphaned for longer than `grace_ms` without one.
    pub async fn recover_bulk_jobs(&self, grace_ms: i64) -> Result<RecoveryOutcome> {
        let now = now_ms();
        let orphaned = on_write!(self, pool => {
            sqlx::query(
                // `state IN (...)` is the partial indexes' condition: SQLite then reads only the
                // unfinished jobs, not every job ever sent.
                "UPDATE outbox SET locked_by = 'orphaned', locked_until = $1
                 WHERE state IN ('pending', 'inflight') AND state = 'inflight' AND priority > 0
                   AND locked_by <> 'orphaned'
                   AND NOT EXISTS (SELECT 1 FROM leases l
                        WHERE l.name = 'sender:' || outbox.locked_by AND l.expires_at > $1)",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        let mut out = RecoveryOutcome {
            orphaned,
            ..Default::default()
        };
        let orphans: Vec<(i64, i64, Option<String>)> = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT o.id, o.message_id,
                    (SELECT s.wamid FROM wa_statuses s
                     WHERE s.channel_id = o.channel_id AND s.recipient_id = o.recipient
                       AND s.received_at >= o.created_at
                       AND NOT EXISTS (SELECT 1 FROM messages m
                            WHERE m.channel_id = s.channel_id AND m.wamid = s.wamid)
                     ORDER BY s.received_at LIMIT 1)
                 FROM outbox o WHERE o.state IN ('pending', 'inflight') AND o.state = 'inflight'
                   AND o.locked_by = 'orphaned'",
            )
            .fetch_all(pool)
            .await?
        });
        let confirmed: Vec<SentJob> = orphans
            .iter()
            .filter_map(|(job_id, message_id, wamid)| {
                wamid.as_ref().map(|w| SentJob {
                    job_id: *job_id,
                    message_id: *message_id,
                    wamid: w.clone(),
                })
            })
            .collect();
        if !confirmed.is_empty() {
            let done = self.complete_outbox_sent_many(&confirmed).await?;
            out.confirmed = confirmed
                .iter()
                .zip(done)
                .map(|(job, (conversation_id, status))| (conversation_id, job.message_id, status))
                .collect();
        }
        if orphans.len() > confirmed.len() {
            out.resent = on_write!(self, pool => {
                sqlx::query(
                    "UPDATE outbox SET state = 'pending', locked_by = NULL, locked_until = NULL,
                        next_attempt_at = $1, last_error = 'interrupted; no status from Meta, sent again'
                     WHERE state = 'inflight' AND locked_by = 'orphaned' AND locked_until < $2",
                )
                .bind(now)
                .bind(now - grace_ms)
                .execute(pool)
                .await?
                .rows_affected()
            });
        }
        Ok(out)
    }

    /// The first message failed since `since` with a code that stops a broadcast: an account
    /// signal on any message of the channel, a template signal on this broadcast's messages.
    pub async fn broadcast_stop_signal(
        &self,
        broadcast_id: i64,
        channel_id: i64,
        since: i64,
    ) -> Result<Option<StopSignal>> {
        let account = ACCOUNT_STOP_CODES
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let template = TEMPLATE_STOP_CODES
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // Integers of ours only, so the lists are safe to inline.
        let sql = format!(
            "SELECT m.error_code, m.error_title FROM messages m
             WHERE m.channel_id = $1 AND m.status = 'failed' AND m.updated_at >= $2
               AND (m.error_code IN ({account}) OR (m.error_code IN ({template}) AND EXISTS (
                    SELECT 1 FROM broadcast_recipients r WHERE r.message_id = m.id AND r.broadcast_id = $3)))
             ORDER BY m.updated_at LIMIT 1"
        );
        let row: Option<(Option<i64>, Option<String>)> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(channel_id)
                .bind(since)
                .bind(broadcast_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(code, title)| code.map(|code| StopSignal { code, title })))
    }
}
