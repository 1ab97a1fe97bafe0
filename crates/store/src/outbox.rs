//! The outbound road: a message row and its outbox job written together, claimed by sender workers
//! in per-recipient order, paced by a per-number token bucket that lives in the database so that
//! every worker of every instance shares it.

use domain::status::DeliveryStatus;
use serde_json::json;

use crate::conversations::{MESSAGE_COLUMNS, MessageRecord};
use crate::{Backend, Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

/// A message to send, as the API, the bot or a worker wrote it.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub conversation_id: i64,
    /// "agent", "bot", "system", "integration"
    pub author: String,
    pub author_user_id: Option<i64>,
    pub kind: String,
    pub body: Option<String>,
    /// `whatsapp::send::OutboundContent` as JSON.
    pub content_json: String,
    pub reply_to_wamid: Option<String>,
    pub media_id: Option<i64>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Enqueued {
    Created(MessageRecord),
    /// The idempotency key was used before: this is the first message, nothing new is sent.
    Existing(MessageRecord),
}

impl Enqueued {
    pub fn message(&self) -> &MessageRecord {
        match self {
            Enqueued::Created(m) | Enqueued::Existing(m) => m,
        }
    }
}

/// A job Meta accepted, with the wamid it answered.
#[derive(Debug, Clone)]
pub struct SentJob {
    pub job_id: i64,
    pub message_id: i64,
    pub wamid: String,
}

/// A claimed job with what the sender needs.
#[derive(Debug, Clone)]
pub struct OutboxJob {
    pub id: i64,
    pub recipient: String,
    pub attempts: i64,
    pub created_at: i64,
    /// 0: a conversation's message; above: bulk (broadcasts), sent after every 0.
    pub priority: i64,
    pub message: MessageRecord,
}

/// Which jobs a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Every lane, by (priority, id).
    All,
    /// Only conversations' messages (priority 0).
    Conversations,
    /// Only bulk messages (priority > 0).
    Bulk,
}

/// A status webhook stored before the sender knew the wamid: status, error code, title, detail.
type EarlyStatus = (String, Option<i64>, Option<String>, Option<String>);

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: i64,
    message_id: i64,
    recipient: String,
    attempts: i64,
    created_at: i64,
    priority: i64,
}

/// Writes an outbound message (state `queued`), its outbox job and its event inside the caller's
/// transaction (whose error type is `sqlx::Error`). Evaluates to `Ok(message id)`, or
/// `Err(RowNotFound)` when the conversation does not exist.
macro_rules! insert_outbound {
    ($tx:expr, $new:expr, $now:expr) => {{
        let new: &$crate::outbox::NewOutbound = $new;
        let now: i64 = $now;
        let target: Option<(i64, String)> = sqlx::query_as(
            "SELECT c.channel_id, ct.wa_id FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
             WHERE c.id = $1",
        )
        .bind(new.conversation_id)
        .fetch_optional(&mut *$tx)
        .await?;
        match target {
            None => Err(sqlx::Error::RowNotFound),
            Some((channel_id, recipient)) => {
                let message_id: i64 = sqlx::query_scalar(
                    "INSERT INTO messages (conversation_id, channel_id, direction, author, author_user_id, kind,
                        body, content, reply_to_wamid, status, media_id, idempotency_key, created_at, updated_at)
                     VALUES ($1, $2, 'out', $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11, $11) RETURNING id",
                )
                .bind(new.conversation_id)
                .bind(channel_id)
                .bind(&new.author)
                .bind(new.author_user_id)
                .bind(&new.kind)
                .bind(&new.body)
                .bind(&new.content_json)
                .bind(&new.reply_to_wamid)
                .bind(new.media_id)
                .bind(&new.idempotency_key)
                .bind(now)
                .fetch_one(&mut *$tx)
                .await?;
                sqlx::query(
                    "INSERT INTO outbox (message_id, channel_id, recipient, state, next_attempt_at, created_at)
                     VALUES ($1, $2, $3, 'pending', $4, $4)",
                )
                .bind(message_id)
                .bind(channel_id)
                .bind(&recipient)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
                sqlx::query("UPDATE conversations SET last_message_at = $2 WHERE id = $1")
                    .bind(new.conversation_id)
                    .bind(now)
                    .execute(&mut *$tx)
                    .await?;
                $crate::insert_event!($tx, now, "message.created", new.conversation_id, serde_json::json!({ "message_id": message_id }));
                Ok(message_id)
            }
        }
    }};
}
pub(crate) use insert_outbound;

impl Store {
    /// Writes the message (state `queued`) and its outbox job in one transaction.
    pub async fn enqueue_outbound(&self, new: &NewOutbound) -> Result<Enqueued> {
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = self
                .message_by_idempotency_key(new.conversation_id, key)
                .await?
        {
            return Ok(Enqueued::Existing(existing));
        }
        let now = now_ms();
        let result: Result<i64, sqlx::Error> = on_write!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let message_id = insert_outbound!(tx, new, now)?;
                tx.commit().await?;
                Ok(message_id)
            }
            .await
        });
        match result {
            Ok(id) => Ok(Enqueued::Created(
                self.message(id).await?.ok_or(StoreError::NotFound)?,
            )),
            Err(sqlx::Error::RowNotFound) => Err(StoreError::NotFound),
            // Two requests with one key raced: the loser returns the winner's message.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let key = new.idempotency_key.as_deref().unwrap_or_default();
                let existing = self
                    .message_by_idempotency_key(new.conversation_id, key)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok(Enqueued::Existing(existing))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn message_by_idempotency_key(
        &self,
        conversation_id: i64,
        key: &str,
    ) -> Result<Option<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND idempotency_key = $2"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(conversation_id)
                .bind(key)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Channels that have jobs due now.
    pub async fn outbox_ready_channels(&self) -> Result<Vec<i64>> {
        let now = now_ms();
        Ok(on_read!(self, pool => {
            sqlx::query_scalar(
                // The first term repeats the partial indexes' condition so SQLite uses one
                // instead of scanning every job ever sent.
                "SELECT ch.id FROM channels ch WHERE EXISTS (
                    SELECT 1 FROM outbox o
                    WHERE o.channel_id = ch.id AND o.state IN ('pending', 'inflight')
                      AND ((o.state = 'pending' AND o.next_attempt_at <= $1)
                           OR (o.state = 'inflight' AND o.locked_until < $1)))",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Claims up to `limit` due jobs of a channel, at most one per recipient and only the oldest
    /// unfinished one of each recipient, so a customer receives messages in the order written.
    /// A job whose lease expired (its worker died) is claimable again.
    ///
    /// Lanes are claimed by (priority, id): a conversation's message never waits behind a
    /// broadcast. A bulk job whose lease ran out is not claimed again here: whether Meta got it is
    /// unknown, and `Store::recover_bulk_jobs` decides (see `broadcasts::recovery`).
    pub async fn claim_outbox(
        &self,
        channel_id: i64,
        limit: i64,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Vec<OutboxJob>> {
        self.claim_outbox_lane(channel_id, Lane::All, limit, worker, lease_ms)
            .await
    }

    /// [`Store::claim_outbox`] restricted to one lane.
    pub async fn claim_outbox_lane(
        &self,
        channel_id: i64,
        lane: Lane,
        limit: i64,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Vec<OutboxJob>> {
        let now = now_ms();
        let lane = match lane {
            Lane::All => "",
            Lane::Conversations => " AND o.priority = 0",
            Lane::Bulk => " AND o.priority > 0",
        };
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET state = 'inflight', locked_by = $3, locked_until = $4, attempts = attempts + 1
             WHERE id IN (
                SELECT o.id FROM outbox o
                WHERE o.channel_id = $1 AND o.state IN ('pending', 'inflight')
                  AND o.next_attempt_at <= $5{lane}
                  AND (o.state = 'pending'
                       OR (o.state = 'inflight' AND o.locked_until < $5 AND o.priority = 0))
                  -- each recipient's oldest unfinished job is the only one that may go; probed
                  -- per candidate (outbox_recipient), not grouped over the whole backlog
                  AND NOT EXISTS (
                      SELECT 1 FROM outbox p
                      WHERE p.channel_id = o.channel_id AND p.recipient = o.recipient
                        AND p.state IN ('pending', 'inflight') AND p.id < o.id)
                ORDER BY o.priority, o.id LIMIT $2 {lock})
             RETURNING id, message_id, recipient, attempts, created_at, priority"
        );
        let mut rows: Vec<ClaimedRow> = on_write!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(channel_id)
                .bind(limit)
                .bind(worker)
                .bind(now + lease_ms)
                .bind(now)
                .fetch_all(pool)
                .await?
        });
        rows.sort_by_key(|r| (r.priority, r.id));
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // One read for all the claimed messages (ids are integers, so the list is safe to inline).
        let list = rows
            .iter()
            .map(|r| r.message_id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({list})");
        let messages: Vec<MessageRecord> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        let mut messages: std::collections::HashMap<i64, MessageRecord> =
            messages.into_iter().map(|m| (m.id, m)).collect();
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let message = messages
                .remove(&row.message_id)
                .ok_or(StoreError::NotFound)?;
            jobs.push(OutboxJob {
                id: row.id,
                recipient: row.recipient,
                attempts: row.attempts,
                created_at: row.created_at,
                priority: row.priority,
                message,
            });
        }
        Ok(jobs)
    }

    /// Hands claimed jobs back untouched (no send slot was available for them).
    pub async fn unclaim_outbox(&self, job_ids: &[i64]) -> Result<()> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in job_ids {
                sqlx::query(
                    "UPDATE outbox SET state = 'pending', attempts = attempts - 1, locked_until = NULL, locked_by = NULL
                     WHERE id = $1 AND state = 'inflight'",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records Meta's acceptance: the wamid, status `sent` (or further, when status webhooks for
    /// this wamid already arrived), job done. Returns the message's new status.
    pub async fn complete_outbox_sent(
        &self,
        job_id: i64,
        message_id: i64,
        wamid: &str,
    ) -> Result<DeliveryStatus> {
        let done = self
            .complete_outbox_sent_many(&[SentJob {
                job_id,
                message_id,
                wamid: wamid.to_owned(),
            }])
            .await?;
        done.into_iter()
            .next()
            .map(|(_, status)| status)
            .ok_or(StoreError::NotFound)
    }

    /// [`Store::complete_outbox_sent`] for several jobs in ONE transaction (the senders group their
    /// completions so that a commit is shared by many messages). Returns (conversation id, status)
    /// per job, in order.
    pub async fn complete_outbox_sent_many(
        &self,
        jobs: &[SentJob],
    ) -> Result<Vec<(i64, DeliveryStatus)>> {
        let now = now_ms();
        let done = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut done = Vec::with_capacity(jobs.len());
            for job in jobs {
                let (channel_id, conversation_id): (i64, i64) =
                    sqlx::query_as("SELECT channel_id, conversation_id FROM messages WHERE id = $1")
                        .bind(job.message_id)
                        .fetch_one(&mut *tx)
                        .await?;
                let early: Vec<EarlyStatus> = sqlx::query_as(
                    "SELECT status, error_code, error_title, error_detail FROM wa_statuses
                     WHERE channel_id = $1 AND wamid = $2",
                )
                .bind(channel_id)
                .bind(&job.wamid)
                .fetch_all(&mut *tx)
                .await?;
                let mut status = DeliveryStatus::Sent;
                let mut error = (None, None, None);
                for (s, code, title, detail) in early {
                    if let Some(s) = DeliveryStatus::parse(&s) {
                        status = status.advance(s);
                        if s == DeliveryStatus::Failed {
                            error = (code, title, detail);
                        }
                    }
                }
                sqlx::query(
                    "UPDATE messages SET wamid = $2, status = $3, updated_at = $4,
                        error_code = $5, error_title = $6, error_detail = $7 WHERE id = $1",
                )
                .bind(job.message_id)
                .bind(&job.wamid)
                .bind(status.as_str())
                .bind(now)
                .bind(error.0)
                .bind(&error.1)
                .bind(&error.2)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE outbox SET state = 'done', locked_until = NULL WHERE id = $1")
                    .bind(job.job_id)
                    .execute(&mut *tx)
                    .await?;
                let payload = json!({ "message_id": job.message_id, "status": status.as_str() });
                insert_event!(tx, now, "message.status", conversation_id, payload);
                done.push((conversation_id, status));
            }
            tx.commit().await?;
            done
        });
        Ok(done)
    }

    /// Puts a job back for another attempt at `next_attempt_at`.
    pub async fn retry_outbox(&self, job_id: i64, next_attempt_at: i64, error: &str) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE outbox SET state = 'pending', next_attempt_at = $2, last_error = $3, locked_until = NULL
                 WHERE id = $1",
            )
            .bind(job_id)
            .bind(next_attempt_at)
            .bind(error)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Gives up on a job: the message is failed with a reason the agent will read.
    pub async fn fail_outbox(
        &self,
        job_id: i64,
        message_id: i64,
        code: Option<i64>,
        title: &str,
        detail: &str,
    ) -> Result<()> {
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE outbox SET state = 'failed', last_error = $2, locked_until = NULL WHERE id = $1")
                .bind(job_id)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
            let conversation_id: i64 = sqlx::query_scalar(
                "UPDATE messages SET status = 'failed', error_code = $2, error_title = $3, error_detail = $4,
                    updated_at = $5 WHERE id = $1 RETURNING conversation_id",
            )
            .bind(message_id)
            .bind(code)
            .bind(title)
            .bind(detail)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            insert_event!(tx, now, "message.status", conversation_id, json!({ "message_id": message_id, "status": "failed" }));
            tx.commit().await?;
        });
        Ok(())
    }

    /// Reserves up to `want` send slots for a channel: the times (unix ms) at which each message
    /// may go, one every `1000 / rate_per_sec` ms, never more than `horizon_ms` ahead of now
    /// (GCRA, a token bucket written as "theoretical arrival time"). The schedule lives in the
    /// database, so every worker of every instance shares it; a worker that is slow to come back
    /// loses nothing, and senders that wait for their slot never exceed the rate in any window.
    /// An empty answer comes with how long to wait.
    pub async fn reserve_send_slots(
        &self,
        channel_id: i64,
        want: u32,
        rate_per_sec: f64,
        horizon_ms: f64,
    ) -> Result<(Vec<i64>, u64)> {
        let now = now_ms() as f64;
        let interval = 1000.0 / rate_per_sec.max(0.001);
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let select = format!("SELECT tokens FROM rate_buckets WHERE channel_id = $1{lock}");
        let outcome = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO rate_buckets (channel_id, tokens, updated_ms) VALUES ($1, 0, 0)
                 ON CONFLICT (channel_id) DO NOTHING",
            )
            .bind(channel_id)
            .execute(&mut *tx)
            .await?;
            // `tokens` holds the theoretical arrival time of the next send, in ms.
            let tat: f64 = sqlx::query_scalar(sqlx::AssertSqlSafe(select))
                .bind(channel_id)
                .fetch_one(&mut *tx)
                .await?;
            let mut next = tat.max(now);
            let mut slots = Vec::new();
            while slots.len() < want as usize && next - now <= horizon_ms {
                slots.push(next.ceil() as i64);
                next += interval;
            }
            if !slots.is_empty() {
                sqlx::query("UPDATE rate_buckets SET tokens = $2, updated_ms = $3 WHERE channel_id = $1")
                    .bind(channel_id)
                    .bind(next)
                    .bind(now as i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            let wait = if slots.is_empty() { (next - now - horizon_ms).max(1.0) as u64 } else { 0 };
            (slots, wait)
        });
        Ok(outcome)
    }

    /// How many send slots a channel's schedule has free within `horizon_ms` of now at
    /// `rate_per_sec` (a read, nothing reserved), and when it has one when it has none: the bulk
    /// lane claims no more than fits.
    pub async fn send_room(
        &self,
        channel_id: i64,
        rate_per_sec: f64,
        horizon_ms: f64,
    ) -> Result<(u32, u64)> {
        let now = now_ms() as f64;
        let interval = 1000.0 / rate_per_sec.max(0.001);
        let tat: Option<f64> = on_read!(self, pool => {
            sqlx::query_scalar("SELECT tokens FROM rate_buckets WHERE channel_id = $1")
                .bind(channel_id)
                .fetch_optional(pool)
                .await?
        });
        let next = tat.unwrap_or(0.0).max(now);
        let ahead = next - now;
        if ahead > horizon_ms {
            return Ok((0, (ahead - horizon_ms).ceil().max(1.0) as u64));
        }
        let room = ((horizon_ms - ahead) / interval).floor() as u32 + 1;
        Ok((room, 0))
    }

    /// (pending, inflight, done, failed) jobs, for tests and health.
    pub async fn outbox_counts(&self) -> Result<(i64, i64, i64, i64)> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT
                    COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN state = 'inflight' THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0)
                 FROM outbox",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    /// The last inbound message time of a conversation's contact on its channel (the 24 h window).
    pub async fn contact_last_inbound(&self, conversation_id: i64) -> Result<Option<i64>> {
        let row: Option<Option<i64>> = on_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT ct.last_inbound_at FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
                 WHERE c.id = $1",
            )
            .bind(conversation_id)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or(StoreError::NotFound)
    }
}
