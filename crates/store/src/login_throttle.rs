//! The login throttle's state, shared by every instance. The rules are `domain::throttle`'s; this
//! module only reads and writes a key's state in one transaction, so two instances (or two
//! parallel requests) never both take the last free attempt.

use domain::throttle::{self, KeyState, Policy, Verdict};

use crate::{Backend, Result, Store, on_write};

#[derive(sqlx::FromRow)]
struct Row {
    attempts: i64,
    last_attempt_at: i64,
    blocked_until: i64,
}

impl From<Row> for KeyState {
    fn from(r: Row) -> Self {
        KeyState {
            attempts: r.attempts,
            last_attempt_at: r.last_attempt_at,
            blocked_until: r.blocked_until,
        }
    }
}

impl Store {
    /// Reserves an attempt for `key` before its password is checked.
    pub async fn reserve_login_attempt(
        &self,
        key: &str,
        policy: &Policy,
        now: i64,
    ) -> Result<Verdict> {
        let (verdict, _) = self
            .update_throttle(key, policy, now, |state| {
                throttle::reserve(policy, state, now)
            })
            .await?;
        Ok(verdict)
    }

    /// Counts a failure of `key` and returns how many it has now.
    pub async fn record_login_failure(&self, key: &str, policy: &Policy, now: i64) -> Result<i64> {
        let (_, next) = self
            .update_throttle(key, policy, now, |state| {
                (
                    Verdict::Proceed,
                    throttle::record_failure(policy, state, now),
                )
            })
            .await?;
        Ok(next.attempts)
    }

    /// A successful login forgets the account's attempts.
    pub async fn clear_login_attempts(&self, key: &str) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query("DELETE FROM login_throttle WHERE key = $1")
                .bind(key)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    async fn update_throttle(
        &self,
        key: &str,
        policy: &Policy,
        now: i64,
        decide: impl FnOnce(Option<KeyState>) -> (Verdict, KeyState),
    ) -> Result<(Verdict, KeyState)> {
        // SQLite has one writer, so the read below cannot interleave; PostgreSQL locks the row.
        let lock = match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        };
        let select = format!(
            "SELECT attempts, last_attempt_at, blocked_until FROM login_throttle WHERE key = $1{lock}"
        );
        let decided = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            // Keys quiet for a whole window after their back-off ended are forgotten.
            sqlx::query("DELETE FROM login_throttle WHERE last_attempt_at < $1 AND blocked_until < $1")
                .bind(now - policy.window_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO login_throttle (key, attempts, last_attempt_at, blocked_until)
                 VALUES ($1, 0, $2, 0) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(select.as_str()))
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            let state = Some(KeyState::from(row)).filter(|s| s.attempts > 0);
            let (verdict, next) = decide(state);
            sqlx::query(
                "UPDATE login_throttle SET attempts = $2, last_attempt_at = $3, blocked_until = $4
                 WHERE key = $1",
            )
            .bind(key)
            .bind(next.attempts)
            .bind(next.last_attempt_at)
            .bind(next.blocked_until)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            (verdict, next)
        });
        Ok(decided)
    }
}
