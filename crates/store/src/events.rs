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

/// Where a conversation is now (who may see its events).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConversationPlace {
    pub id: i64,
    pub state: String,
    pub queue_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub waiting_agent_id: Option<i64>,
}

impl Store {
    pub async fn latest_event_id(&self) -> Result<i64> {
        let (id,): (Option<i64>,) = on_read!(self, pool => {
            sqlx::query_as("SELECT MAX(id) FROM events").fetch_one(pool).await?
        });
        Ok(id.unwrap_or(0))
    }

    /// The current place of each of these conversations.
    pub async fn conversation_places(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, ConversationPlace>> {
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(Default::default());
        }
        // Integers only, so formatting them into the statement is safe.
        let list = unique
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT id, state, queue_id, agent_id, waiting_agent_id FROM conversations WHERE id IN ({list})"
        );
        let rows: Vec<ConversationPlace> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|p| (p.id, p)).collect())
    }
}
