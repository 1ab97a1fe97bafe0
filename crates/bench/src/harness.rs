//! The system under test: Atende started in-process (exactly as `atende serve` builds it) on a
//! throwaway database, either SQLite in a temporary directory or a freshly created PostgreSQL
//! database that is dropped afterwards.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde::Serialize;
use sqlx::Connection;
use store::channels::NewChannel;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where the PostgreSQL scenarios create their database (the same variable as the test suites).
pub const PG_URL_ENV: &str = "ATENDE_TEST_DATABASE_URL";
pub const PG_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The `--backend` option of every scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

impl BackendChoice {
    pub fn backends(self) -> Vec<Backend> {
        match self {
            BackendChoice::Sqlite => vec![Backend::Sqlite],
            BackendChoice::Postgres => vec![Backend::Postgres],
            BackendChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
        }
    }
}

/// A business phone number as the benchmark registers it, with its secrets in clear.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub name: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: String,
    pub access_token: String,
    pub app_secret: String,
}

impl ChannelSpec {
    pub fn bench_default() -> ChannelSpec {
        ChannelSpec {
            name: "bench".to_owned(),
            phone_number_id: "109876543210001".to_owned(),
            waba_id: "209876543210001".to_owned(),
            display_phone_number: "5511900000000".to_owned(),
            access_token: "bench-access-token".to_owned(),
            app_secret: "bench-app-secret-0123456789abcdef".to_owned(),
        }
    }
}

enum Database {
    Sqlite {
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

/// A running server; call [`Harness::stop`] to shut it down and drop its database.
pub struct Harness {
    pub backend: Backend,
    pub port: u16,
    pub state: server::state::AppState,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    database: Database,
    _data_dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(backend: Backend) -> anyhow::Result<Harness> {
        let data_dir = tempfile::Builder::new()
            .prefix("atende-bench-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let database = match backend {
            Backend::Sqlite => Database::Sqlite {
                url: format!("sqlite://{}", data_dir.path().join("atende.db").display()),
            },
            Backend::Postgres => create_pg_database().await?,
        };
        let config = server::config::Config::for_tests(data_dir.path(), database.url());
        let app = match server::app::Application::build(config).await {
            Ok(app) => app,
            Err(e) => {
                drop_database(&database).await;
                return Err(e.context("cannot build the server"));
            }
        };
        let port = app.port();
        let state = app.state();
        let stop = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(Harness {
            backend,
            port,
            state,
            stop,
            task,
            database,
            _data_dir: data_dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Registers the channel (encrypting its secrets like the API does) and reloads the cache, so
    /// its webhooks are accepted.
    pub async fn add_channel(&self, spec: &ChannelSpec) -> anyhow::Result<i64> {
        let secrets = self.state.channels.secrets();
        let record = self
            .state
            .store
            .create_channel(&new_channel(spec, secrets))
            .await?;
        self.state.channels.reload().await?;
        Ok(record.id)
    }

    /// Stops the server and its workers, then drops the PostgreSQL database (the SQLite directory
    /// goes with `self`).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        let served = match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(anyhow::anyhow!("server task failed: {join}")),
            Err(_) => Err(anyhow::anyhow!("server did not stop within 30 s")),
        };
        // The inbox processor may still hold a pool connection for a moment after the HTTP side
        // stopped; closing is idempotent.
        self.state.store.close().await;
        drop_database(&self.database).await;
        served
    }
}

/// The channel row for `spec`, its secrets encrypted with `secrets` (as the API does).
pub fn new_channel(spec: &ChannelSpec, secrets: &server::secrets::SecretBox) -> NewChannel {
    NewChannel {
        name: spec.name.clone(),
        phone_number_id: spec.phone_number_id.clone(),
        waba_id: spec.waba_id.clone(),
        display_phone_number: Some(spec.display_phone_number.clone()),
        access_token_enc: secrets.encrypt(&spec.access_token),
        app_secret_enc: secrets.encrypt(&spec.app_secret),
        verify_token_enc: secrets.encrypt("bench-verify"),
        // Nothing listens there: ingest never calls the Graph API (mark_read is off).
        graph_base_url: "http://127.0.0.1:9/v23.0".to_owned(),
        rate_limit_per_sec: 80,
        mark_read: false,
        is_simulator: false,
    }
}

impl Harness {
    /// Runs a read-only query returning pairs of integers on a separate connection (for
    /// measurements the store API does not expose).
    pub async fn query_pairs(
        &self,
        sql: &'static str,
        a: i64,
        b: i64,
    ) -> anyhow::Result<Vec<(i64, i64)>> {
        self.database.query_pairs(sql, a, b).await
    }
}

impl Database {
    async fn query_pairs(
        &self,
        sql: &'static str,
        a: i64,
        b: i64,
    ) -> anyhow::Result<Vec<(i64, i64)>> {
        let rows = match self {
            Database::Sqlite { url } => {
                let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
                let mut conn =
                    sqlx::SqliteConnection::connect_with(&options.read_only(true)).await?;
                let rows = sqlx::query_as(sql)
                    .bind(a)
                    .bind(b)
                    .fetch_all(&mut conn)
                    .await?;
                let _ = conn.close().await;
                rows
            }
            Database::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                let rows = sqlx::query_as(sql)
                    .bind(a)
                    .bind(b)
                    .fetch_all(&mut conn)
                    .await?;
                let _ = conn.close().await;
                rows
            }
        };
        Ok(rows)
    }
}

impl Harness {
    /// Gives the lease `name` to `holder` until `expires_at` (unix ms) whoever holds it now: a
    /// diagnostic lever to keep a worker idle (the inbox processor skips its work while another
    /// holder has the "inbox" lease). `expires_at = 0` hands it back. On SQLite this is a second
    /// writer: use it only while the worker is idle, or its read-then-write transaction in flight
    /// fails with SQLITE_BUSY (and is retried).
    pub async fn force_lease(
        &self,
        name: &str,
        holder: &str,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        const SQL: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at";
        match &self.database {
            Database::Sqlite { url } => {
                let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
                let options = options.busy_timeout(Duration::from_secs(10));
                let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
                sqlx::query(SQL)
                    .bind(name)
                    .bind(holder)
                    .bind(expires_at)
                    .execute(&mut conn)
                    .await?;
                let _ = conn.close().await;
            }
            Database::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await?;
                sqlx::query(SQL)
                    .bind(name)
                    .bind(holder)
                    .bind(expires_at)
                    .execute(&mut conn)
                    .await?;
                let _ = conn.close().await;
            }
        }
        Ok(())
    }
}

/// A throwaway database with no server attached, for scenarios that run the real `atende serve`
/// binary as a child process (so its memory and CPU can be measured apart from the load
/// generator). SQLite lives in a temporary directory (which is also the server's data directory);
/// PostgreSQL in a fresh database dropped by [`ScratchDatabase::drop`].
pub struct ScratchDatabase {
    database: Database,
    data_dir: tempfile::TempDir,
}

impl ScratchDatabase {
    pub async fn create(backend: Backend) -> anyhow::Result<ScratchDatabase> {
        let data_dir = tempfile::Builder::new()
            .prefix("atende-bench-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let database = match backend {
            Backend::Sqlite => Database::Sqlite {
                url: format!("sqlite://{}", data_dir.path().join("atende.db").display()),
            },
            Backend::Postgres => create_pg_database().await?,
        };
        Ok(ScratchDatabase { database, data_dir })
    }

    pub fn url(&self) -> &str {
        self.database.url()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// See [`Harness::query_pairs`].
    pub async fn query_pairs(
        &self,
        sql: &'static str,
        a: i64,
        b: i64,
    ) -> anyhow::Result<Vec<(i64, i64)>> {
        self.database.query_pairs(sql, a, b).await
    }

    /// Drops the PostgreSQL database (best effort); the SQLite directory goes with `self`.
    pub async fn drop(self) {
        drop_database(&self.database).await;
    }
}

/// `atende serve` running as a child process on a [`ScratchDatabase`], listening on loopback.
/// The demo (simulator channel) and the demo bot flow are off; the server's stderr is ours.
pub struct ServerProcess {
    child: tokio::process::Child,
    pub pid: u32,
    pub port: u16,
}

/// The `atende` binary to run: `explicit`, else `atende` next to this program (`cargo build
/// --release -p server` puts it in target/release with the bench).
pub fn server_binary(explicit: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    let bin = match explicit {
        Some(bin) => bin.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory for the current executable")?
            .join("atende"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it (`cargo build --release -p server`) or pass --server-bin",
            bin.display()
        );
    }
    Ok(bin)
}

impl ServerProcess {
    /// Starts `bin serve` with the database, data directory and secret key given, and waits
    /// until `/health` answers (at most 60 s).
    pub async fn spawn(
        bin: &std::path::Path,
        db: &ScratchDatabase,
        secret_key: &str,
    ) -> anyhow::Result<ServerProcess> {
        // A free port: bind, read it, release it (the child binds it a moment later).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::env::var("ATENDE_LOG").unwrap_or_else(|_| "warn".to_owned());
        let mut child = tokio::process::Command::new(bin)
            .arg("serve")
            .env("DATABASE_URL", db.url())
            .env("ATENDE_DATA_DIR", db.data_dir())
            .env("ATENDE_SECRET_KEY", secret_key)
            .env("ATENDE_LISTEN", format!("127.0.0.1:{port}"))
            .env("ATENDE_DEMO", "off")
            .env("ATENDE_SEED_DEMO_FLOW", "false")
            .env("ATENDE_LOG", log)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let http = reqwest::Client::new();
        let health = format!("http://127.0.0.1:{port}/health");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the server exited during start-up ({status})");
            }
            if let Ok(resp) = http.get(&health).send().await
                && resp.status().is_success()
            {
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.start_kill();
                bail!("the server did not answer /health within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(ServerProcess { child, pid, port })
    }

    /// Interrupts the server (SIGINT, like Ctrl-C: it drains its workers) and waits up to 30 s,
    /// then kills it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let interrupted = tokio::process::Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success());
        if interrupted
            && let Ok(status) =
                tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await
        {
            status?;
            return Ok(());
        }
        self.child.start_kill()?;
        self.child.wait().await?;
        bail!("the server did not stop within 30 s of SIGINT and was killed")
    }
}

impl Database {
    fn url(&self) -> &str {
        match self {
            Database::Sqlite { url } => url,
            Database::Postgres { url, .. } => url,
        }
    }
}

async fn create_pg_database() -> anyhow::Result<Database> {
    let admin_url = std::env::var(PG_URL_ENV).unwrap_or_else(|_| PG_URL_DEFAULT.to_owned());
    let name = format!("atende_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .with_context(|| {
            format!("cannot connect to PostgreSQL ({PG_URL_ENV} or {PG_URL_DEFAULT})")
        })?;
    // The name is ours (a UUID), never user input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot create database {name}"))?;
    let _ = conn.close().await;
    let url = with_database(&admin_url, &name)?;
    Ok(Database::Postgres {
        admin_url,
        name,
        url,
    })
}

/// Best effort: a failure is reported on stderr, never hides the benchmark's own result.
async fn drop_database(database: &Database) {
    let Database::Postgres {
        admin_url, name, ..
    } = database
    else {
        return;
    };
    let dropped = async {
        let mut conn = sqlx::PgConnection::connect(admin_url).await?;
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        conn.close().await
    }
    .await;
    if let Err(e) = dropped {
        eprintln!("warning: cannot drop benchmark database {name}: {e}");
    }
}

/// `postgres://user@host:port/anything?opts` with the database name replaced.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let Some(scheme_end) = base.find("://") else {
        bail!("not a URL: {url:?}");
    };
    let authority_start = scheme_end + 3;
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_postgres_url() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/b",
            ),
            (
                "postgres://u:p@h/db?sslmode=disable",
                "postgres://u:p@h/b?sslmode=disable",
            ),
            ("postgresql://h", "postgresql://h/b"),
        ];
        for (input, expected) in cases {
            assert_eq!(with_database(input, "b").unwrap(), expected);
        }
        assert!(with_database("nonsense", "b").is_err());
    }
}
