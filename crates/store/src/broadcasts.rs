//! Broadcasts: one approved template sent to an audience (a CSV or contacts filtered by fields),
//! with variables per recipient. The audience is stored set-based ([`Store::replace_audience`]:
//! chunked multi-row INSERTs in one transaction, so 100,000 rows take seconds); the broadcast
//! worker turns pending recipients into messages a batch at a time
//! ([`Store::materialize_batch`]: the recipients' state and their messages, outbox jobs, new
//! conversations and reply routes commit together, so a crash never sends anyone twice) on the
//! outbox's bulk lane ([`BULK_PRIORITY`]), behind every conversation's messages.
//!
//! A recipient's own `state` is `pending`, `queued` (its message exists), `skipped` or `failed`
//! (never sent: its variables did not fit the template); once queued, the message's delivery
//! status (statuses flow into messages as for any message) is its progress, read by join in the
//! report and the export.

mod audience;
mod materialize;
mod recovery;

pub use audience::{
    AudienceContact, AudienceCounts, AudienceSpec, ContactFilter, NewRecipient, Rejection,
};
pub use materialize::{BatchOutcome, BatchPlan, PendingRecipient, Rendering};
pub use recovery::{RecoveryOutcome, StopSignal};

use serde::Serialize;
use serde_json::json;

use crate::{Backend, Result, Store, StoreError, now_ms, on_read, on_write};

/// Outbox priority of broadcast messages; conversations' messages have 0 and are claimed first.
pub const BULK_PRIORITY: i64 = 10;

pub const DRAFT: &str = "draft";
pub const SCHEDULED: &str = "scheduled";
pub const RUNNING: &str = "running";
pub const PAUSED: &str = "paused";
pub const COMPLETED: &str = "completed";
pub const CANCELLED: &str = "cancelled";

/// Rows per multi-row INSERT: well under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
pub(crate) const CHUNK: usize = 1000;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BroadcastRecord {
    pub id: i64,
    pub name: String,
    pub channel_id: i64,
    pub template_id: i64,
    pub queue_id: Option<i64>,
    pub status: String,
    pub status_reason: Option<String>,
    pub status_detail: Option<String>,
    /// JSON, see the migration.
    pub reply_route: Option<String>,
    pub reply_minutes: Option<i64>,
    pub header_media: Option<String>,
    pub audience_source: Option<String>,
    pub audience_columns: Option<String>,
    pub audience_mapping: Option<String>,
    pub audience_filter: Option<String>,
    pub audience_rows: i64,
    pub invalid_rows: i64,
    pub duplicate_rows: i64,
    pub opted_out_rows: i64,
    pub accepted_rows: i64,
    pub start_at: Option<i64>,
    pub waiting_until: Option<i64>,
    /// Failures after this time (the start, the last resume) stop it.
    pub signals_since: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, name, channel_id, template_id, queue_id, status, status_reason,
    status_detail, reply_route, reply_minutes, header_media, audience_source, audience_columns,
    audience_mapping, audience_filter, audience_rows, invalid_rows, duplicate_rows, opted_out_rows,
    accepted_rows, start_at, waiting_until, signals_since, created_by, created_at, updated_at, started_at,
    finished_at";

#[derive(Debug, Clone, Default)]
pub struct NewBroadcast {
    pub name: String,
    pub channel_id: i64,
    pub template_id: i64,
    pub queue_id: Option<i64>,
    pub reply_route: Option<String>,
    pub reply_minutes: Option<i64>,
    pub header_media: Option<String>,
    pub start_at: Option<i64>,
    pub created_by: Option<i64>,
}

/// A change of a draft; the outer `None` keeps a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct BroadcastPatch {
    pub name: Option<String>,
    pub template_id: Option<i64>,
    pub queue_id: Option<Option<i64>>,
    pub reply_route: Option<Option<String>>,
    pub reply_minutes: Option<Option<i64>>,
    pub header_media: Option<Option<String>>,
    pub start_at: Option<Option<i64>>,
}

/// The live report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BroadcastReport {
    pub recipients: i64,
    /// Not sent yet (waiting for their turn, or for the messaging limit).
    pub pending: i64,
    /// In the outbox, not accepted by Meta yet.
    pub queued: i64,
    /// Accepted by Meta and not (yet) delivered.
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    /// Skipped because the contact had opted out before their turn.
    pub skipped_opted_out: i64,
    /// Skipped because the broadcast was cancelled first.
    pub skipped_cancelled: i64,
    /// Wrote back after the broadcast's message.
    pub replied: i64,
    /// Opted out after the broadcast started (e.g. answered "SAIR").
    pub opted_out: i64,
    pub failed_by_code: Vec<FailureCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureCount {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub count: i64,
}

/// One line of the results export.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ExportRow {
    pub id: i64,
    pub row_number: i64,
    pub wa_id: String,
    pub name: Option<String>,
    pub state: String,
    pub skip_reason: Option<String>,
    pub message_status: Option<String>,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_detail: Option<String>,
    pub message_id: Option<i64>,
    pub protocol: Option<String>,
    pub queued_at: Option<i64>,
    pub replied: bool,
    pub opted_out_at: Option<i64>,
}

impl ExportRow {
    /// What happened to this recipient, as one word: pending, queued, sent, delivered, read,
    /// failed or skipped.
    pub fn outcome(&self) -> &str {
        match (&self.state[..], self.message_status.as_deref()) {
            ("queued", Some(status)) => status,
            (state, _) => state,
        }
    }
}

/// Inside a cancel's transaction: pending recipients are skipped, and the broadcast's messages
/// still waiting in the outbox (at most about a second's worth) are failed as cancelled.
macro_rules! cancel_unsent {
    ($tx:expr, $id:expr, $now:expr) => {{
        sqlx::query(
            "UPDATE broadcast_recipients SET state = 'skipped', skip_reason = 'cancelled', updated_at = $2
             WHERE broadcast_id = $1 AND state = 'pending'",
        )
        .bind($id)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
        let waiting: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT o.id, m.id, m.conversation_id FROM outbox o
             JOIN broadcast_recipients r ON r.message_id = o.message_id
             JOIN messages m ON m.id = o.message_id
             WHERE r.broadcast_id = $1 AND o.state = 'pending'",
        )
        .bind($id)
        .fetch_all(&mut *$tx)
        .await?;
        for (job_id, message_id, conversation_id) in waiting {
            sqlx::query("UPDATE outbox SET state = 'failed', last_error = 'cancelled' WHERE id = $1")
                .bind(job_id)
                .execute(&mut *$tx)
                .await?;
            sqlx::query(
                "UPDATE messages SET status = 'failed', error_title = 'cancelled',
                    error_detail = 'O disparo foi cancelado antes do envio desta mensagem.', updated_at = $2
                 WHERE id = $1",
            )
            .bind(message_id)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
            $crate::insert_event!($tx, $now, "message.status", conversation_id,
                json!({ "message_id": message_id, "status": "failed" }));
        }
    }};
}

impl Store {
    pub async fn create_broadcast(&self, new: &NewBroadcast) -> Result<BroadcastRecord> {
        let now = now_ms();
        let id: i64 = on_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO broadcasts (name, channel_id, template_id, queue_id, reply_route,
                    reply_minutes, header_media, start_at, created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
            )
            .bind(&new.name)
            .bind(new.channel_id)
            .bind(new.template_id)
            .bind(new.queue_id)
            .bind(&new.reply_route)
            .bind(new.reply_minutes)
            .bind(&new.header_media)
            .bind(new.start_at)
            .bind(new.created_by)
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        self.broadcast(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn broadcast(&self, id: i64) -> Result<Option<BroadcastRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM broadcasts WHERE id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Newest first; `queue_ids`: only those of these queues (a supervisor's), `None`: all.
    pub async fn broadcasts(
        &self,
        queue_ids: Option<&[i64]>,
        limit: i64,
    ) -> Result<Vec<BroadcastRecord>> {
        let filter = match queue_ids {
            None => String::new(),
            Some([]) => " WHERE FALSE".to_owned(),
            // Integers only, so the list is safe to inline.
            Some(ids) => format!(
                " WHERE queue_id IN ({})",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ),
        };
        let sql = format!("SELECT {COLUMNS} FROM broadcasts{filter} ORDER BY id DESC LIMIT $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(pool).await?
        }))
    }

    /// Broadcasts the worker drives: running, and scheduled ones (which it starts when due).
    pub async fn active_broadcasts(&self) -> Result<Vec<BroadcastRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM broadcasts WHERE status IN ('scheduled', 'running') ORDER BY id"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }

    /// Changes a draft. `Conflict` once it started.
    pub async fn update_broadcast(
        &self,
        id: i64,
        patch: &BroadcastPatch,
    ) -> Result<BroadcastRecord> {
        let current = self.broadcast(id).await?.ok_or(StoreError::NotFound)?;
        if current.status != DRAFT {
            return Err(StoreError::Conflict(
                "only a draft broadcast can be changed".into(),
            ));
        }
        let name = patch.name.clone().unwrap_or(current.name);
        let template_id = patch.template_id.unwrap_or(current.template_id);
        let queue_id = patch.queue_id.unwrap_or(current.queue_id);
        let reply_route = patch.reply_route.clone().unwrap_or(current.reply_route);
        let reply_minutes = patch.reply_minutes.unwrap_or(current.reply_minutes);
        let header_media = patch.header_media.clone().unwrap_or(current.header_media);
        let start_at = patch.start_at.unwrap_or(current.start_at);
        let changed = on_write!(self, pool => {
            sqlx::query(
                "UPDATE broadcasts SET name = $2, template_id = $3, queue_id = $4, reply_route = $5,
                    reply_minutes = $6, header_media = $7, start_at = $8, updated_at = $9
                 WHERE id = $1 AND status = 'draft'",
            )
            .bind(id)
            .bind(&name)
            .bind(template_id)
            .bind(queue_id)
            .bind(&reply_route)
            .bind(reply_minutes)
            .bind(&header_media)
            .bind(start_at)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::Conflict(
                "only a draft broadcast can be changed".into(),
            ));
        }
        self.broadcast(id).await?.ok_or(StoreError::NotFound)
    }

    /// Moves a broadcast from one of `from` to `to` with the reason shown; `None` when it was in
    /// none of them (someone else moved it first). Sets `started_at` on the first run and
    /// `finished_at` at the end.
    pub async fn transition_broadcast(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        reason: Option<&str>,
        detail: Option<&str>,
    ) -> Result<Option<BroadcastRecord>> {
        let now = now_ms();
        let allowed = from
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "UPDATE broadcasts SET status = $2, status_reason = $3, status_detail = $4, updated_at = $5,
                waiting_until = NULL,
                started_at = CASE WHEN $2 = 'running' AND started_at IS NULL THEN $5 ELSE started_at END,
                signals_since = CASE WHEN $2 = 'running' THEN $5 ELSE signals_since END,
                finished_at = CASE WHEN $2 IN ('completed', 'cancelled') THEN $5 ELSE finished_at END
             WHERE id = $1 AND status IN ({allowed})"
        );
        let changed = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(to)
                .bind(reason)
                .bind(detail)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed > 0 && to == CANCELLED {
                cancel_unsent!(tx, id, now);
            }
            tx.commit().await?;
            changed
        });
        if changed == 0 {
            return Ok(None);
        }
        self.broadcast(id).await
    }

    /// While running: why it waits (the messaging limit) and until about when; `None` clears it.
    pub async fn set_broadcast_waiting(
        &self,
        id: i64,
        until: Option<i64>,
        reason: Option<&str>,
        detail: Option<&str>,
    ) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE broadcasts SET waiting_until = $2, status_reason = $3, status_detail = $4,
                    updated_at = $5 WHERE id = $1 AND status = 'running'",
            )
            .bind(id)
            .bind(until)
            .bind(reason)
            .bind(detail)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Counts for the live report (one grouped join over the broadcast's recipients).
    pub async fn broadcast_report(&self, id: i64) -> Result<BroadcastReport> {
        let started_at: Option<i64> = self
            .broadcast(id)
            .await?
            .ok_or(StoreError::NotFound)?
            .started_at;
        type Group = (
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            i64,
        );
        let (groups, replied, opted_out): (Vec<Group>, i64, i64) = on_read!(self, pool => {
            let groups: Vec<Group> = sqlx::query_as(
                "SELECT r.state, r.skip_reason, m.status, COALESCE(m.error_code, r.error_code),
                    COALESCE(m.error_title, r.error_title), COUNT(*)
                 FROM broadcast_recipients r LEFT JOIN messages m ON m.id = r.message_id
                 WHERE r.broadcast_id = $1
                 GROUP BY r.state, r.skip_reason, m.status, COALESCE(m.error_code, r.error_code),
                    COALESCE(m.error_title, r.error_title)",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            let replied: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM broadcast_recipients r
                 WHERE r.broadcast_id = $1 AND r.message_id IS NOT NULL AND EXISTS (
                    SELECT 1 FROM messages mi WHERE mi.conversation_id = r.conversation_id
                      AND mi.id > r.message_id AND mi.direction = 'in')",
            )
            .bind(id)
            .fetch_one(pool)
            .await?;
            let opted_out: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM broadcast_recipients r JOIN contacts ct ON ct.id = r.contact_id
                 WHERE r.broadcast_id = $1 AND r.state = 'queued' AND ct.opted_out_at >= $2",
            )
            .bind(id)
            .bind(started_at.unwrap_or(i64::MAX))
            .fetch_one(pool)
            .await?;
            (groups, replied, opted_out)
        });
        let mut report = BroadcastReport {
            replied,
            opted_out,
            ..BroadcastReport::default()
        };
        let mut failures: std::collections::BTreeMap<(Option<i64>, Option<String>), i64> =
            Default::default();
        for (state, skip_reason, status, code, title, count) in groups {
            report.recipients += count;
            let outcome = match (state.as_str(), status.as_deref()) {
                ("queued", Some(status)) => status.to_owned(),
                _ => state,
            };
            match outcome.as_str() {
                "pending" => report.pending += count,
                "queued" => report.queued += count,
                "sent" => report.sent += count,
                "delivered" => report.delivered += count,
                "read" => report.read += count,
                "failed" => {
                    report.failed += count;
                    *failures.entry((code, title)).or_default() += count;
                }
                "skipped" if skip_reason.as_deref() == Some("opted_out") => {
                    report.skipped_opted_out += count
                }
                _ => report.skipped_cancelled += count,
            }
        }
        report.failed_by_code = failures
            .into_iter()
            .map(|((code, title), count)| FailureCount { code, title, count })
            .collect();
        report
            .failed_by_code
            .sort_by_key(|f| std::cmp::Reverse(f.count));
        Ok(report)
    }

    /// A page of the results (recipients with id > `after`, in order), for the CSV export.
    pub async fn broadcast_export_page(
        &self,
        id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT r.id, r.row_number, r.wa_id, r.name, r.state, r.skip_reason,
                    m.status AS message_status, COALESCE(m.error_code, r.error_code) AS error_code,
                    COALESCE(m.error_title, r.error_title) AS error_title, m.error_detail,
                    r.message_id, c.protocol, r.queued_at,
                    (r.message_id IS NOT NULL AND EXISTS (SELECT 1 FROM messages mi
                        WHERE mi.conversation_id = r.conversation_id AND mi.id > r.message_id
                          AND mi.direction = 'in')) AS replied,
                    ct.opted_out_at
                 FROM broadcast_recipients r
                 LEFT JOIN messages m ON m.id = r.message_id
                 LEFT JOIN conversations c ON c.id = r.conversation_id
                 LEFT JOIN contacts ct ON ct.id = r.contact_id
                 WHERE r.broadcast_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
            )
            .bind(id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Recipients not sent yet; none left means the broadcast is done once its queue drains.
    pub async fn broadcast_pending(&self, id: i64) -> Result<i64> {
        Ok(on_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM broadcast_recipients WHERE broadcast_id = $1 AND state = 'pending'",
            )
            .bind(id)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Bulk jobs of a channel not finished yet (how far ahead the broadcasts are of the sender).
    pub async fn bulk_backlog(&self, channel_id: i64) -> Result<i64> {
        Ok(on_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM outbox
                 WHERE channel_id = $1 AND state IN ('pending', 'inflight') AND priority > 0",
            )
            .bind(channel_id)
            .fetch_one(pool)
            .await?
        }))
    }

    /// The broadcast's messages still in the outbox (not accepted nor failed yet).
    pub async fn broadcast_unsent(&self, id: i64) -> Result<i64> {
        Ok(on_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM broadcast_recipients r JOIN outbox o ON o.message_id = r.message_id
                 WHERE r.broadcast_id = $1 AND r.state = 'queued' AND o.state IN ('pending', 'inflight')",
            )
            .bind(id)
            .fetch_one(pool)
            .await?
        }))
    }

    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

/// `($s, $s+1, ...), (...)`: placeholders for `rows` rows of `cols` values, numbered from `start`.
pub(crate) fn placeholders(rows: usize, cols: usize, start: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 6);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(start + r * cols + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `$s, $s+1, ...`: a list of `n` placeholders.
pub(crate) fn list(n: usize, start: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_and_columns() {
        assert_eq!(placeholders(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 2, 4), "($4, $5)");
        assert_eq!(list(3, 2), "$2, $3, $4");
    }
}
