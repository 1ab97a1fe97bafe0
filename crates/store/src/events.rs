//! The event log: every state change that someone may watch (a browser, an integration, a report)
//! is written here in the same transaction as the change itself.

use serde::Serialize;

use crate::{Result, Store, on_read};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRecord {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub conversation_id: Option<i64>,
    pub payload: String,
}

impl Store {
    /// Events with id greater than `after`, oldest first (catch-up after a reconnect).
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, at, kind, conversation_id, payload FROM events WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
