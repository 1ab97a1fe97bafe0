//! Persistence for Atende. One [`Store`] value is the only way the rest of the program touches the
//! database; it owns the connection pools and the migrations of two backends, SQLite (the embedded
//! default, a file in the data directory) and PostgreSQL (for several instances sharing one
//! database). Every capability lives in its own module (`inbox`, `channels`, `users`,
//! `conversations`, ...) as methods on [`Store`]. Where the two SQL dialects agree the SQL text is
//! written once and run on either pool (sqlx binds `$1` placeholders on SQLite too); where they differ
//! (job claiming, counters) each backend gets its own statement. Timestamps are unix milliseconds and
//! ids are 64-bit integers, so the schemas stay parallel. The crate knows nothing of HTTP.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub mod auth;
pub mod bot;
pub mod broadcasts;
pub mod channels;
pub mod consent;
pub mod conversations;
pub mod desk;
pub mod desk_records;
pub mod events;
pub mod flows;
pub mod inbox;
pub mod leases;
pub mod login_throttle;
pub mod media;
pub mod outbox;
pub mod people;
pub mod permissions;
pub mod protocols;
pub mod queues;
pub mod reply_routes;
pub mod schedules;
pub mod settings;
mod statuses;
pub mod templates;

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("unsupported database URL {0:?}: use sqlite://path or postgres://...")]
    UnsupportedUrl(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which engine a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) enum Db {
    /// SQLite allows one writer at a time; a dedicated single-connection pool for writes avoids
    /// SQLITE_BUSY storms, while reads use their own pool and never wait for a writer (WAL).
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
    },
    Postgres(PgPool),
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
}

/// Runs the same code on whichever pool backs the store, for writes.
macro_rules! on_write {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { write: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs the same code on whichever pool backs the store, for reads.
macro_rules! on_read {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { read: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
/// Appends to the event log inside the caller's transaction, so the change and its event commit
/// together.
macro_rules! insert_event {
    ($tx:expr, $at:expr, $kind:expr, $conversation_id:expr, $payload:expr) => {
        sqlx::query(
            "INSERT INTO events (at, kind, conversation_id, payload) VALUES ($1, $2, $3, $4)",
        )
        .bind($at)
        .bind($kind)
        .bind($conversation_id)
        .bind($payload.to_string())
        .execute(&mut *$tx)
        .await?
    };
}
/// [`insert_event!`] for many rows of one kind: `$rows` is `&[(conversation_id, payload)]`,
/// written in multi-row inserts.
macro_rules! insert_events {
    ($tx:expr, $now:expr, $kind:expr, $rows:expr) => {{
        let rows: &[(i64, String)] = $rows;
        for chunk in rows.chunks($crate::broadcasts::CHUNK) {
            let sql = format!(
                "INSERT INTO events (at, kind, conversation_id, payload) VALUES {}",
                $crate::broadcasts::placeholders(chunk.len(), 4, 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (conversation_id, payload) in chunk {
                query = query
                    .bind($now)
                    .bind($kind)
                    .bind(*conversation_id)
                    .bind(payload);
            }
            query.execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use {insert_event, insert_events, on_read, on_write};

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// Connects to `url` (`sqlite://path/to/file.db` or `postgres://...`), creating the SQLite file
    /// when missing. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Store {
                db: Db::Postgres(pool),
            })
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit is on disk (WAL fsynced) before we acknowledge a webhook. Group
                // commit amortises the fsync over concurrent requests.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options.read_only(true))
                .await?;
            Ok(Store {
                db: Db::Sqlite { write, read },
            })
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the backend's pending migrations (embedded in the binary).
    pub async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite { write, .. } => sqlx::migrate!("./migrations/sqlite").run(write).await?,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Closes every pool; used by tests and at shutdown.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read } => {
                write.close().await;
                read.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// One day in milliseconds: the service window and the messaging limit's moving window.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Current time as unix milliseconds, the unit of every timestamp column.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
