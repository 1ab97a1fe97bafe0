//! Time-limited leases: "only one instance does this" without a coordinator. A holder renews its
//! lease while it works; if it dies, another instance takes over when the lease expires.

use crate::{Result, Store, now_ms, on_write};

impl Store {
    /// Takes or renews the lease `name` for `holder` for `ttl_ms`. False when someone else holds it.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        let now = now_ms();
        let affected = on_write!(self, pool => {
            sqlx::query(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
            )
            .bind(name)
            .bind(holder)
            .bind(now + ttl_ms)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected > 0)
    }
}

impl Store {
    /// Gives the lease up (at shutdown), so the next holder does not wait for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
