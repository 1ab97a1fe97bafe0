//! WhatsApp channels (one per business phone number). Credentials are stored as opaque encrypted
//! strings; encrypting and decrypting them is the server's job.

use crate::{Result, Store, StoreError, now_ms, on_read, on_write};

/// A channel row as stored: the `*_enc` fields are ciphertexts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelRecord {
    pub id: i64,
    pub name: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: Option<String>,
    pub access_token_enc: String,
    pub app_secret_enc: String,
    pub verify_token_enc: String,
    pub graph_base_url: String,
    pub rate_limit_per_sec: i64,
    pub mark_read: bool,
    pub enabled: bool,
    pub healthy: bool,
    pub health_note: Option<String>,
    pub is_simulator: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: Option<String>,
    pub access_token_enc: String,
    pub app_secret_enc: String,
    pub verify_token_enc: String,
    pub graph_base_url: String,
    pub rate_limit_per_sec: i64,
    pub mark_read: bool,
    pub is_simulator: bool,
}

/// Fields an admin may change; `None` leaves the stored value.
#[derive(Debug, Clone, Default)]
pub struct ChannelUpdate {
    pub name: Option<String>,
    pub waba_id: Option<String>,
    pub display_phone_number: Option<String>,
    pub access_token_enc: Option<String>,
    pub app_secret_enc: Option<String>,
    pub verify_token_enc: Option<String>,
    pub graph_base_url: Option<String>,
    pub rate_limit_per_sec: Option<i64>,
    pub mark_read: Option<bool>,
    pub enabled: Option<bool>,
}

const COLUMNS: &str = "id, name, phone_number_id, waba_id, display_phone_number, access_token_enc,
    app_secret_enc, verify_token_enc, graph_base_url, rate_limit_per_sec, mark_read, enabled,
    healthy, health_note, is_simulator, created_at, updated_at";

impl Store {
    pub async fn create_channel(&self, new: &NewChannel) -> Result<ChannelRecord> {
        let now = now_ms();
        let result = on_write!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO channels (name, phone_number_id, waba_id, display_phone_number,
                    access_token_enc, app_secret_enc, verify_token_enc, graph_base_url,
                    rate_limit_per_sec, mark_read, is_simulator, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
            )
            .bind(&new.name)
            .bind(&new.phone_number_id)
            .bind(&new.waba_id)
            .bind(&new.display_phone_number)
            .bind(&new.access_token_enc)
            .bind(&new.app_secret_enc)
            .bind(&new.verify_token_enc)
            .bind(&new.graph_base_url)
            .bind(new.rate_limit_per_sec)
            .bind(new.mark_read)
            .bind(new.is_simulator)
            .bind(now)
            .fetch_one(pool)
            .await
        });
        match result {
            Ok(id) => self.channel(id).await?.ok_or(StoreError::NotFound),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!(
                    "phone number id {} already has a channel",
                    new.phone_number_id
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn channel(&self, id: i64) -> Result<Option<ChannelRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM channels WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn channels(&self) -> Result<Vec<ChannelRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM channels ORDER BY id")))
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn update_channel(&self, id: i64, u: &ChannelUpdate) -> Result<ChannelRecord> {
        let done = on_write!(self, pool => {
            sqlx::query(
                "UPDATE channels SET
                    name = COALESCE($2, name),
                    waba_id = COALESCE($3, waba_id),
                    display_phone_number = COALESCE($4, display_phone_number),
                    access_token_enc = COALESCE($5, access_token_enc),
                    app_secret_enc = COALESCE($6, app_secret_enc),
                    verify_token_enc = COALESCE($7, verify_token_enc),
                    graph_base_url = COALESCE($8, graph_base_url),
                    rate_limit_per_sec = COALESCE($9, rate_limit_per_sec),
                    mark_read = COALESCE($10, mark_read),
                    enabled = COALESCE($11, enabled),
                    -- new credentials deserve a new chance
                    healthy = CASE WHEN $5 IS NULL THEN healthy ELSE TRUE END,
                    updated_at = $12
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&u.name)
            .bind(&u.waba_id)
            .bind(&u.display_phone_number)
            .bind(&u.access_token_enc)
            .bind(&u.app_secret_enc)
            .bind(&u.verify_token_enc)
            .bind(&u.graph_base_url)
            .bind(u.rate_limit_per_sec)
            .bind(u.mark_read)
            .bind(u.enabled)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.channel(id).await?.ok_or(StoreError::NotFound)
    }

    /// Records whether Meta accepts the channel's token; an unhealthy channel sends nothing.
    pub async fn set_channel_health(
        &self,
        id: i64,
        healthy: bool,
        note: Option<&str>,
    ) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query("UPDATE channels SET healthy = $2, health_note = $3, updated_at = $4 WHERE id = $1")
                .bind(id)
                .bind(healthy)
                .bind(note)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
