//! The durable webhook inbox: every signed webhook body is appended here, verbatim, before the
//! HTTP answer. Bodies are deduplicated by their SHA-256, so a redelivery is stored once. Bodies that
//! cannot be understood are kept as dead letters and can be replayed after an upgrade.

use serde::Serialize;

use crate::{Result, Store, now_ms, on_read, on_write};

/// One body to append.
#[derive(Debug, Clone)]
pub struct InboxAppend {
    pub body: Vec<u8>,
    pub sha256_hex: String,
    /// `Some(reason)` stores it directly as a dead letter.
    pub dead_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    New(i64),
    /// The same bytes were stored before.
    Duplicate,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub id: i64,
    pub received_at: i64,
    pub body: Vec<u8>,
    pub attempts: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub received_at: i64,
    pub error: Option<String>,
    pub attempts: i64,
    /// The body as text (lossy), for inspection.
    #[sqlx(skip)]
    pub body: String,
}

impl Store {
    /// Appends several bodies in ONE transaction (group commit): when this returns Ok, every body
    /// is durable.
    pub async fn append_inbox(&self, items: &[InboxAppend]) -> Result<Vec<Appended>> {
        let now = now_ms();
        let outcomes = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items {
                let (state, error) = match &item.dead_reason {
                    Some(reason) => ("dead", Some(reason.as_str())),
                    None => ("pending", None),
                };
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO inbox (received_at, body, body_sha256, state, error)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (body_sha256) DO NOTHING RETURNING id",
                )
                .bind(now)
                .bind(&item.body)
                .bind(&item.sha256_hex)
                .bind(state)
                .bind(error)
                .fetch_optional(&mut *tx)
                .await?;
                outcomes.push(id.map_or(Appended::Duplicate, Appended::New));
            }
            tx.commit().await?;
            outcomes
        });
        Ok(outcomes)
    }

    /// The oldest pending bodies, in arrival order.
    pub async fn pending_inbox(&self, limit: i64) -> Result<Vec<InboxRow>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, received_at, body, attempts FROM inbox
                 WHERE state = 'pending' ORDER BY id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn mark_inbox_dead(&self, id: i64, reason: &str) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE inbox SET state = 'dead', error = $2, attempts = attempts + 1, processed_at = $3
                 WHERE id = $1",
            )
            .bind(id)
            .bind(reason)
            .bind(now_ms())
            .execute(pool)
            .await?
                .rows_affected()
        });
        Ok(())
    }

    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            received_at: i64,
            error: Option<String>,
            attempts: i64,
            body: Vec<u8>,
        }
        let rows: Vec<Row> = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, received_at, error, attempts, body FROM inbox
                 WHERE state = 'dead' ORDER BY id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| DeadLetter {
                id: r.id,
                received_at: r.received_at,
                error: r.error,
                attempts: r.attempts,
                body: String::from_utf8_lossy(&r.body).into_owned(),
            })
            .collect())
    }

    /// Puts dead letters back in the queue (all of them when `ids` is empty). Returns how many.
    pub async fn replay_dead_letters(&self, ids: &[i64]) -> Result<u64> {
        let replayed = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut n = 0;
            if ids.is_empty() {
                n += sqlx::query("UPDATE inbox SET state = 'pending' WHERE state = 'dead'")
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            for id in ids {
                n += sqlx::query("UPDATE inbox SET state = 'pending' WHERE state = 'dead' AND id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            n
        });
        Ok(replayed)
    }

    /// Counts per state, for health and tests: (pending, done, dead).
    pub async fn inbox_counts(&self) -> Result<(i64, i64, i64)> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT
                    COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0)
                 FROM inbox",
            )
            .fetch_one(pool)
            .await?
        }))
    }
}
