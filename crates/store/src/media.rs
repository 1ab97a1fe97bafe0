//! Media files' metadata: inbound downloads waiting to be fetched from Meta, and files agents
//! uploaded to send. The bytes live in the server's media storage under `storage_key`.

use serde::Serialize;

use crate::{Result, Store, StoreError, now_ms, on_read, on_write};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MediaRecord {
    pub id: i64,
    pub channel_id: Option<i64>,
    pub direction: String,
    #[serde(skip)]
    pub wa_media_id: Option<String>,
    pub kind: String,
    pub mime_type: Option<String>,
    pub filename: Option<String>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    #[serde(skip)]
    pub expected_sha256: Option<String>,
    #[serde(skip)]
    pub storage_key: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Who uploaded it (outbound files).
    #[serde(skip)]
    pub uploaded_by: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, channel_id, direction, wa_media_id, kind, mime_type, filename, size_bytes,
    sha256, expected_sha256, storage_key, state, attempts, last_error, uploaded_by, created_at";

/// A file an agent uploaded, already stored and validated.
pub struct NewUpload<'a> {
    pub kind: &'a str,
    pub mime_type: &'a str,
    pub filename: Option<&'a str>,
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub storage_key: &'a str,
    pub uploaded_by: Option<i64>,
}

impl Store {
    pub async fn create_upload(&self, u: &NewUpload<'_>) -> Result<MediaRecord> {
        let now = now_ms();
        let id: i64 = on_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO media (direction, kind, mime_type, filename, size_bytes, sha256, storage_key,
                    state, uploaded_by, created_at, updated_at)
                 VALUES ('out', $1, $2, $3, $4, $5, $6, 'ready', $7, $8, $8) RETURNING id",
            )
            .bind(u.kind)
            .bind(u.mime_type)
            .bind(u.filename)
            .bind(u.size_bytes)
            .bind(u.sha256)
            .bind(u.storage_key)
            .bind(u.uploaded_by)
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        self.media(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn media(&self, id: i64) -> Result<Option<MediaRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM media WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Inbound media due for a download attempt.
    pub async fn due_media_downloads(&self, limit: i64) -> Result<Vec<MediaRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM media
                 WHERE state = 'pending' AND direction = 'in' AND next_attempt_at <= $1
                 ORDER BY id LIMIT $2"
            )))
            .bind(now_ms())
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Reserves a download attempt so that no other worker starts the same one meanwhile.
    pub async fn start_media_attempt(&self, id: i64, lease_ms: i64) -> Result<bool> {
        let now = now_ms();
        let claimed = on_write!(self, pool => {
            sqlx::query(
                "UPDATE media SET attempts = attempts + 1, next_attempt_at = $3, updated_at = $2
                 WHERE id = $1 AND state = 'pending' AND next_attempt_at <= $2",
            )
            .bind(id)
            .bind(now)
            .bind(now + lease_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(claimed == 1)
    }

    /// A download finished. `filename`, when given, replaces the stored name (the worker passes
    /// the customer's name cleaned).
    pub async fn media_ready(
        &self,
        id: i64,
        storage_key: &str,
        mime_type: Option<&str>,
        size_bytes: i64,
        sha256: &str,
        filename: Option<&str>,
    ) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE media SET state = 'ready', storage_key = $2, mime_type = COALESCE($3, mime_type),
                    size_bytes = $4, sha256 = $5, last_error = NULL, updated_at = $6,
                    filename = COALESCE($7, filename) WHERE id = $1",
            )
            .bind(id)
            .bind(storage_key)
            .bind(mime_type)
            .bind(size_bytes)
            .bind(sha256)
            .bind(now_ms())
            .bind(filename)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Schedules another attempt, or gives up (`next_attempt_at` None) with the reason.
    pub async fn media_attempt_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<()> {
        let state = if next_attempt_at.is_some() {
            "pending"
        } else {
            "failed"
        };
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE media SET state = $2, last_error = $3, next_attempt_at = $4, updated_at = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(state)
            .bind(error)
            .bind(next_attempt_at.unwrap_or(0))
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// A failed download gets a fresh set of attempts (the agent's "try again").
    pub async fn retry_media(&self, id: i64) -> Result<bool> {
        let changed = on_write!(self, pool => {
            sqlx::query(
                "UPDATE media SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = $2
                 WHERE id = $1 AND direction = 'in' AND state = 'failed'",
            )
            .bind(id)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Remembers Meta's id for an outbound file uploaded to a channel (reused by later sends).
    pub async fn set_media_upload(
        &self,
        id: i64,
        channel_id: i64,
        wa_media_id: &str,
    ) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query("UPDATE media SET channel_id = $2, wa_media_id = $3, updated_at = $4 WHERE id = $1")
                .bind(id)
                .bind(channel_id)
                .bind(wa_media_id)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}

impl Store {
    /// The conversations whose messages carry this file.
    pub async fn media_conversations(&self, media_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = on_read!(self, pool => {
            sqlx::query_as("SELECT DISTINCT conversation_id FROM messages WHERE media_id = $1")
                .bind(media_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// These files, in no particular order (unknown ids are skipped).
    pub async fn media_many(&self, ids: &[i64]) -> Result<Vec<MediaRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Integers only, so formatting them into the statement is safe.
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!("SELECT {COLUMNS} FROM media WHERE id IN ({list})");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }
}
