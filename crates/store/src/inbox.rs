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
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // One multi-row statement per group: the per-statement cost, not the commit, is what
        // bounds a single SQLite writer.
        let inserted: Vec<(i64, String)> = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO inbox (received_at, body, body_sha256, state, error) ",
            );
            insert.push_values(items, |mut row, item| {
                let (state, error) = match &item.dead_reason {
                    Some(reason) => ("dead", Some(reason.clone())),
                    None => ("pending", None),
                };
                row.push_bind(now)
                    .push_bind(item.body.clone())
                    .push_bind(item.sha256_hex.clone())
                    .push_bind(state)
                    .push_bind(error);
            });
            insert.push(" ON CONFLICT (body_sha256) DO NOTHING RETURNING id, body_sha256");
            let rows = insert.build_query_as().fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        });
        let mut new_ids: std::collections::HashMap<String, i64> =
            inserted.into_iter().map(|(id, sha)| (sha, id)).collect();
        // The first of identical bodies in a group is the new one; the rest are duplicates.
        let outcomes = items
            .iter()
            .map(|item| match new_ids.remove(&item.sha256_hex) {
                Some(id) => Appended::New(id),
                None => Appended::Duplicate,
            })
            .collect();
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
