//! Queues: where the bot hands conversations to people, with their business hours and the
//! messages the desk sends to a waiting customer.

use serde::Serialize;

use crate::{Result, Store, StoreError, now_ms, on_read, on_write};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QueueRecord {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub priority: i64,
    /// JSON schedule (weekly intervals, holidays, time zone); `None` = always open.
    pub business_hours: Option<String>,
    pub outside_hours_message: Option<String>,
    /// `wait` (stay queued for the next shift) or `end` (close after the message).
    pub outside_hours_action: String,
    pub created_at: i64,
    pub updated_at: i64,
    #[sqlx(flatten)]
    pub desk: QueueDesk,
}

/// What the desk needs of a queue: the messages to a waiting customer and the agents' default
/// limit.
#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, PartialEq, Eq)]
pub struct QueueDesk {
    /// Sent when the customer starts waiting; `{{posicao}}`, `{{fila}}`, `{{protocolo}}`.
    pub waiting_message: Option<String>,
    /// The position is re-sent when it changed, at most this often; 0 = never.
    pub position_update_secs: i64,
    pub max_wait_secs: Option<i64>,
    pub max_wait_message: Option<String>,
    pub default_max_concurrent: i64,
    pub transfer_message: Option<String>,
    pub closing_message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewQueue {
    pub key: String,
    pub name: String,
    pub priority: i64,
    pub business_hours: Option<String>,
    pub outside_hours_message: Option<String>,
    pub outside_hours_action: String,
}

/// A partial update; `Some(None)` clears a nullable column.
#[derive(Debug, Clone, Default)]
pub struct QueuePatch {
    pub name: Option<String>,
    pub priority: Option<i64>,
    pub business_hours: Option<Option<String>>,
    pub outside_hours_message: Option<Option<String>>,
    pub outside_hours_action: Option<String>,
}

const QUEUE_COLUMNS: &str = "id, key, name, priority, business_hours, outside_hours_message,
    outside_hours_action, created_at, updated_at, waiting_message, position_update_secs,
    max_wait_secs, max_wait_message, default_max_concurrent, transfer_message, closing_message";

impl Store {
    pub async fn queues(&self) -> Result<Vec<QueueRecord>> {
        let sql = format!("SELECT {QUEUE_COLUMNS} FROM queues ORDER BY priority DESC, id");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }

    pub async fn queue(&self, id: i64) -> Result<Option<QueueRecord>> {
        let sql = format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        }))
    }

    pub async fn queue_by_key(&self, key: &str) -> Result<Option<QueueRecord>> {
        let sql = format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE key = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key).fetch_optional(pool).await?
        }))
    }

    /// Creates a queue; `Conflict` when the key is taken.
    pub async fn create_queue(&self, new: &NewQueue) -> Result<QueueRecord> {
        match self.insert_queue(new, false).await {
            Ok(Some(q)) => Ok(q),
            Ok(None) => Err(StoreError::NotFound),
            Err(StoreError::Database(e)) if crate::is_unique_violation(&e) => Err(
                StoreError::Conflict(format!("a queue with key {:?} already exists", new.key)),
            ),
            Err(e) => Err(e),
        }
    }

    /// The queue with `new.key`, created as given when missing (seeding, hand-off to a queue a flow
    /// names before an admin created it). Safe under concurrency.
    pub async fn ensure_queue(&self, new: &NewQueue) -> Result<QueueRecord> {
        if let Some(q) = self.insert_queue(new, true).await? {
            return Ok(q);
        }
        let sql = format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE key = $1");
        Ok(on_write!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&new.key).fetch_one(pool).await?
        }))
    }

    async fn insert_queue(
        &self,
        new: &NewQueue,
        ignore_existing: bool,
    ) -> Result<Option<QueueRecord>> {
        let now = now_ms();
        let conflict = if ignore_existing {
            "ON CONFLICT (key) DO NOTHING"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO queues (key, name, priority, business_hours, outside_hours_message,
                outside_hours_action, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) {conflict} RETURNING {QUEUE_COLUMNS}"
        );
        Ok(on_write!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&new.key)
                .bind(&new.name)
                .bind(new.priority)
                .bind(&new.business_hours)
                .bind(&new.outside_hours_message)
                .bind(&new.outside_hours_action)
                .bind(now)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn update_queue(&self, id: i64, p: &QueuePatch) -> Result<QueueRecord> {
        let sql = format!(
            "UPDATE queues SET
                name = COALESCE($2, name),
                priority = COALESCE($3, priority),
                business_hours = CASE WHEN $4 THEN $5 ELSE business_hours END,
                outside_hours_message = CASE WHEN $6 THEN $7 ELSE outside_hours_message END,
                outside_hours_action = COALESCE($8, outside_hours_action),
                updated_at = $9
             WHERE id = $1 RETURNING {QUEUE_COLUMNS}"
        );
        let row: Option<QueueRecord> = on_write!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(&p.name)
                .bind(p.priority)
                .bind(p.business_hours.is_some())
                .bind(p.business_hours.clone().flatten())
                .bind(p.outside_hours_message.is_some())
                .bind(p.outside_hours_message.clone().flatten())
                .bind(&p.outside_hours_action)
                .bind(now_ms())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)
    }
}

impl Store {
    /// Replaces a queue's desk settings.
    pub async fn update_queue_desk(&self, id: i64, d: &QueueDesk) -> Result<QueueRecord> {
        let sql = format!(
            "UPDATE queues SET waiting_message = $2, position_update_secs = $3, max_wait_secs = $4,
                max_wait_message = $5, default_max_concurrent = $6, transfer_message = $7,
                closing_message = $8, updated_at = $9
             WHERE id = $1 RETURNING {QUEUE_COLUMNS}"
        );
        let row: Option<QueueRecord> = on_write!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(&d.waiting_message)
                .bind(d.position_update_secs)
                .bind(d.max_wait_secs)
                .bind(&d.max_wait_message)
                .bind(d.default_max_concurrent)
                .bind(&d.transfer_message)
                .bind(&d.closing_message)
                .bind(now_ms())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(StoreError::NotFound)
    }
}
