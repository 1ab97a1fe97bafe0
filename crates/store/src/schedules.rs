//! Scheduled messages: a template (or, while the 24 h window is open, a free text) for one
//! contact at a date and time. A schedule goes `pending` → `sending` (claimed by one worker, with a
//! lease: `FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite) → `sent` in the
//! same transaction that writes its message and outbox job, so it fires exactly once across
//! restarts and instances; or → `failed` with its reason. A pending one may be edited or
//! `cancelled`.

use serde::Serialize;
use serde_json::json;

use crate::reply_routes::ScheduleClaim;
use crate::{Backend, Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

pub const PENDING: &str = "pending";
pub const SENDING: &str = "sending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";

/// A schedule to create.
#[derive(Debug, Clone, Default)]
pub struct NewSchedule {
    pub channel_id: i64,
    pub contact_id: i64,
    pub conversation_id: Option<i64>,
    pub queue_id: Option<i64>,
    /// `template` or `text`.
    pub kind: String,
    pub template_id: Option<i64>,
    /// `domain::template::Values` as JSON.
    pub template_values: Option<String>,
    pub body: Option<String>,
    /// The reply route spec as JSON (`None`: the channel's default).
    pub reply_route: Option<String>,
    pub due_at: i64,
    /// `agent`, `integration` or `bot`.
    pub created_via: String,
    pub created_by: Option<i64>,
    pub idempotency_key: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ScheduleRecord {
    pub id: i64,
    pub channel_id: i64,
    pub contact_id: i64,
    pub conversation_id: Option<i64>,
    pub queue_id: Option<i64>,
    pub kind: String,
    pub template_id: Option<i64>,
    pub template_values: Option<String>,
    pub body: Option<String>,
    pub reply_route: Option<String>,
    pub due_at: i64,
    pub state: String,
    pub attempts: i64,
    #[serde(skip)]
    pub claimed_by: Option<String>,
    #[serde(skip)]
    pub locked_until: Option<i64>,
    pub message_id: Option<i64>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub created_via: String,
    pub created_by: Option<i64>,
    #[serde(skip)]
    pub idempotency_key: Option<String>,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub contact_wa_id: String,
    pub contact_name: Option<String>,
    pub created_by_name: Option<String>,
}

const SELECT: &str = "SELECT s.id, s.channel_id, s.contact_id, s.conversation_id, s.queue_id, s.kind,
    s.template_id, s.template_values, s.body, s.reply_route, s.due_at, s.state, s.attempts,
    s.claimed_by, s.locked_until, s.message_id, s.error_code, s.error, s.created_via, s.created_by,
    s.idempotency_key, s.note, s.created_at, s.updated_at, s.sent_at, s.cancelled_at,
    ct.wa_id AS contact_wa_id, COALESCE(ct.name, ct.profile_name) AS contact_name,
    u.name AS created_by_name
    FROM schedules s JOIN contacts ct ON ct.id = s.contact_id LEFT JOIN users u ON u.id = s.created_by";

/// Which schedules a list shows.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFilter {
    pub contact_id: Option<i64>,
    pub conversation_id: Option<i64>,
    pub state: Option<String>,
    /// Only those this person made or that belong to one of their queues (`None`: all).
    pub visible_to: Option<i64>,
    pub limit: i64,
}

/// A change of a pending schedule; `None` leaves a field.
#[derive(Debug, Clone, Default)]
pub struct SchedulePatch {
    pub due_at: Option<i64>,
    pub template_id: Option<i64>,
    pub template_values: Option<String>,
    pub body: Option<String>,
    pub reply_route: Option<Option<String>>,
    pub note: Option<Option<String>>,
}

/// Inside the caller's transaction: marks the claimed schedule sent with its message, only while
/// the claim is still the caller's. Evaluates to the rows changed (0: the claim was lost).
macro_rules! mark_schedule_sent {
    ($tx:expr, $claim:expr, $message_id:expr, $conversation_id:expr, $now:expr) => {{
        let claim: &$crate::reply_routes::ScheduleClaim = $claim;
        sqlx::query(
            "UPDATE schedules SET state = 'sent', message_id = $3, sent_at = $5, updated_at = $5,
                conversation_id = $4, error = NULL, error_code = NULL, locked_until = NULL
             WHERE id = $1 AND state = 'sending' AND claimed_by = $2",
        )
        .bind(claim.schedule_id)
        .bind(&claim.claimed_by)
        .bind($message_id)
        .bind($conversation_id)
        .bind($now)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
    }};
}
pub(crate) use mark_schedule_sent;

/// What firing a free-text schedule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextFired {
    Sent {
        message_id: i64,
    },
    /// The claim was lost (cancelled, or fired elsewhere after the lease ran out).
    Lost,
}

impl Store {
    /// Creates a schedule; with an idempotency key used before, returns the first one (and
    /// `false`).
    pub async fn create_schedule(&self, new: &NewSchedule) -> Result<(ScheduleRecord, bool)> {
        if let Some(key) = &new.idempotency_key
            && let Some(existing) = self.schedule_by_key(key).await?
        {
            return Ok((existing, false));
        }
        let now = now_ms();
        let inserted: std::result::Result<i64, sqlx::Error> = on_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO schedules (channel_id, contact_id, conversation_id, queue_id, kind, template_id,
                    template_values, body, reply_route, due_at, state, created_via, created_by,
                    idempotency_key, note, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $13, $14, $15, $15)
                 RETURNING id",
            )
            .bind(new.channel_id)
            .bind(new.contact_id)
            .bind(new.conversation_id)
            .bind(new.queue_id)
            .bind(&new.kind)
            .bind(new.template_id)
            .bind(&new.template_values)
            .bind(&new.body)
            .bind(&new.reply_route)
            .bind(new.due_at)
            .bind(&new.created_via)
            .bind(new.created_by)
            .bind(&new.idempotency_key)
            .bind(&new.note)
            .bind(now)
            .fetch_one(pool)
            .await
        });
        match inserted {
            Ok(id) => Ok((self.schedule(id).await?.ok_or(StoreError::NotFound)?, true)),
            Err(e) if crate::is_unique_violation(&e) => {
                let key = new.idempotency_key.as_deref().unwrap_or_default();
                let existing = self
                    .schedule_by_key(key)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok((existing, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn schedule_by_key(&self, key: &str) -> Result<Option<ScheduleRecord>> {
        let sql = format!("{SELECT} WHERE s.idempotency_key = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(pool).await?
        }))
    }

    pub async fn schedule(&self, id: i64) -> Result<Option<ScheduleRecord>> {
        let sql = format!("{SELECT} WHERE s.id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Schedules by due date (soonest first), filtered.
    pub async fn schedules(&self, filter: &ScheduleFilter) -> Result<Vec<ScheduleRecord>> {
        let sql = format!(
            "{SELECT} WHERE ($1 IS NULL OR s.contact_id = $1) AND ($2 IS NULL OR s.conversation_id = $2)
               AND ($3 IS NULL OR s.state = $3)
               AND ($4 IS NULL OR s.created_by = $4
                    OR s.queue_id IN (SELECT queue_id FROM queue_members WHERE user_id = $4))
             ORDER BY s.due_at, s.id LIMIT $5"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(filter.contact_id)
                .bind(filter.conversation_id)
                .bind(&filter.state)
                .bind(filter.visible_to)
                .bind(filter.limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Changes a pending schedule; `None` when it is no longer pending (sending, sent, failed,
    /// cancelled).
    pub async fn update_schedule(
        &self,
        id: i64,
        patch: &SchedulePatch,
    ) -> Result<Option<ScheduleRecord>> {
        let now = now_ms();
        let (set_route, route) = match &patch.reply_route {
            Some(r) => (true, r.clone()),
            None => (false, None),
        };
        let (set_note, note) = match &patch.note {
            Some(n) => (true, n.clone()),
            None => (false, None),
        };
        let changed = on_write!(self, pool => {
            sqlx::query(
                "UPDATE schedules SET due_at = COALESCE($2, due_at), template_id = COALESCE($3, template_id),
                    template_values = COALESCE($4, template_values), body = COALESCE($5, body),
                    reply_route = CASE WHEN $6 THEN $7 ELSE reply_route END,
                    note = CASE WHEN $8 THEN $9 ELSE note END, updated_at = $10
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(patch.due_at)
            .bind(patch.template_id)
            .bind(&patch.template_values)
            .bind(&patch.body)
            .bind(set_route)
            .bind(route)
            .bind(set_note)
            .bind(note)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Ok(None);
        }
        self.schedule(id).await
    }

    /// Cancels a pending schedule; false when it is not pending any more (a worker claimed it,
    /// or it was sent, failed or cancelled already).
    pub async fn cancel_schedule(&self, id: i64) -> Result<bool> {
        let now = now_ms();
        let changed = on_write!(self, pool => {
            sqlx::query(
                "UPDATE schedules SET state = 'cancelled', cancelled_at = $2, updated_at = $2
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Claims up to `limit` schedules that are due (or whose claim's lease ran out) for `worker`,
    /// soonest first: each is `sending`, leased until now + `lease_ms`. On PostgreSQL rows another
    /// instance is claiming are skipped, not waited for.
    pub async fn claim_due_schedules(
        &self,
        worker: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ScheduleRecord>> {
        let now = now_ms();
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE schedules SET state = 'sending', claimed_by = $1, locked_until = $2,
                attempts = attempts + 1, updated_at = $3
             WHERE id IN (
                SELECT id FROM schedules
                WHERE (state = 'pending' AND due_at <= $3) OR (state = 'sending' AND locked_until < $3)
                ORDER BY due_at, id LIMIT $4 {lock})
             RETURNING id"
        );
        let ids: Vec<i64> = on_write!(self, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(now + lease_ms)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Integer ids: safe to inline.
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!("{SELECT} WHERE s.id IN ({list}) ORDER BY s.due_at, s.id");
        Ok(on_write!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }

    /// Gives a claimed schedule back (a passing trouble): pending again, due at `retry_at`.
    pub async fn release_schedule(&self, claim: &ScheduleClaim, retry_at: i64) -> Result<bool> {
        let now = now_ms();
        let changed = on_write!(self, pool => {
            sqlx::query(
                "UPDATE schedules SET state = 'pending', due_at = $3, claimed_by = NULL, locked_until = NULL,
                    updated_at = $4
                 WHERE id = $1 AND state = 'sending' AND claimed_by = $2",
            )
            .bind(claim.schedule_id)
            .bind(&claim.claimed_by)
            .bind(retry_at)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Fails a claimed schedule with its reason (pt-BR), visibly: in the list, and in the
    /// conversation it came from (else the contact's latest) as a failed system message and a
    /// `schedule.failed` event. False when the claim was lost.
    pub async fn fail_schedule(
        &self,
        claim: &ScheduleClaim,
        code: &str,
        reason: &str,
    ) -> Result<bool> {
        let now = now_ms();
        Ok(on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE schedules SET state = 'failed', error_code = $3, error = $4, updated_at = $5,
                    locked_until = NULL
                 WHERE id = $1 AND state = 'sending' AND claimed_by = $2",
            )
            .bind(claim.schedule_id)
            .bind(&claim.claimed_by)
            .bind(code)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            let place: Option<(i64, i64)> = sqlx::query_as::<_, (Option<i64>, i64)>(
                "SELECT COALESCE(s.conversation_id,
                        (SELECT MAX(c.id) FROM conversations c WHERE c.contact_id = s.contact_id)), s.channel_id
                 FROM schedules s WHERE s.id = $1",
            )
            .bind(claim.schedule_id)
            .fetch_optional(&mut *tx)
            .await?
            .and_then(|(c, ch)| c.map(|c| (c, ch)));
            if let Some((conversation_id, channel_id)) = place {
                let body = format!("Mensagem agendada não enviada: {reason}");
                let message_id: i64 = sqlx::query_scalar(
                    "INSERT INTO messages (conversation_id, channel_id, direction, author, kind, body, content,
                        status, error_title, error_detail, created_at, updated_at)
                     VALUES ($1, $2, 'out', 'system', 'system', $3, $4, 'failed', $5, $6, $7, $7)
                     RETURNING id",
                )
                .bind(conversation_id)
                .bind(channel_id)
                .bind(&body)
                .bind(json!({ "type": "system", "schedule_id": claim.schedule_id }).to_string())
                .bind(code)
                .bind(reason)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                insert_event!(tx, now, "message.created", conversation_id, json!({ "message_id": message_id }));
                let payload = json!({ "schedule_id": claim.schedule_id, "code": code, "reason": reason });
                insert_event!(tx, now, "schedule.failed", conversation_id, payload);
            }
            tx.commit().await?;
            true
        }))
    }
}
