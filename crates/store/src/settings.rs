//! Small key/value settings that belong to the installation (e.g. whether the first admin exists).

use crate::{Result, Store, on_read, on_write};

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let value = on_read!(self, pool => {
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        Ok(value)
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?
                .rows_affected()
        });
        Ok(())
    }
}
