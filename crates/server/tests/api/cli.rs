//! The `atende` binary as an operator uses it: subcommands on a fresh installation, the way they
//! refuse bad input, and `atende serve` running with what they created. Also the harness that
//! drives the real binary (an installation and a running server), shared with `crash`.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::helpers::{Backend, PgDatabase, free_port, fresh_database, wait_until};

pub const ATENDE: &str = env!("CARGO_BIN_EXE_atende");

/// What one run of a subcommand gave back.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// An installation driven only through the binary: its own data dir and database.
pub struct Install {
    root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub database_url: String,
    starts: AtomicUsize,
    _pg: Option<PgDatabase>,
}

impl Install {
    /// None when the backend is PostgreSQL and it is unreachable outside CI (a notice is printed).
    pub async fn new(backend: Backend) -> Option<Install> {
        let root = tempfile::tempdir().expect("temp dir");
        let data_dir = root.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let (database_url, pg) = fresh_database(backend, &data_dir).await?;
        Some(Install {
            root,
            data_dir,
            database_url,
            starts: AtomicUsize::new(0),
            _pg: pg,
        })
    }

    /// Scratch space beside the data dir (config files, server logs).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `atende --data-dir .. --database-url .. ARGS`, shielded from the caller's `ATENDE_*` and
    /// `DATABASE_URL` variables and run from the scratch folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(ATENDE);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("ATENDE_") || key_text == "DATABASE_URL" {
                cmd.env_remove(&key);
            }
        }
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--database-url")
            .arg(&self.database_url)
            .args(["--log", "warn"])
            .args(args)
            .current_dir(self.root.path())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a subcommand to completion (bounded) with `stdin` as its standard input.
    pub async fn run(&self, args: &[&str], stdin: &str) -> Run {
        run(self.command(args), args, stdin).await
    }

    /// Runs a subcommand that must succeed; returns its standard output.
    pub async fn ok(&self, args: &[&str], stdin: &str) -> String {
        let run = self.run(args, stdin).await;
        assert!(
            run.status.success(),
            "atende {args:?} failed ({}): {}",
            run.status,
            run.stderr
        );
        run.stdout
    }

    /// Runs a subcommand that must fail; returns its standard error.
    pub async fn fails(&self, args: &[&str], stdin: &str) -> String {
        let run = self.run(args, stdin).await;
        assert!(
            !run.status.success(),
            "atende {args:?} should have failed; stdout: {}; stderr: {}",
            run.stdout,
            run.stderr
        );
        assert!(
            !run.stderr.trim().is_empty(),
            "atende {args:?} failed without saying why"
        );
        run.stderr
    }

    /// Starts `atende serve` on a free port and waits (bounded) until GET /health answers.
    pub async fn serve(&self) -> Server {
        for attempt in 1.. {
            let n = self.starts.fetch_add(1, Ordering::SeqCst);
            let port = free_port();
            let stdout_path = self.root().join(format!("serve-{n}.stdout"));
            let stderr_path = self.root().join(format!("serve-{n}.stderr"));
            let child = self
                // No demo bot flow: these scenarios count the messages they send themselves.
                .command(&[
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--seed-demo-flow",
                    "false",
                ])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
                .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
                .spawn()
                .expect("spawn atende serve");
            let mut server = Server {
                child,
                address: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client"),
                stdout_path,
                stderr_path,
            };
            match server.ready().await {
                Ok(()) => return server,
                // Someone took the port between free_port and the bind: try another one.
                Err(_) if attempt < 3 && server.stderr().contains("cannot listen") => continue,
                Err(status) => {
                    panic!(
                        "atende serve exited ({status}) before answering /health:\n{}",
                        server.stderr()
                    )
                }
            }
        }
        unreachable!()
    }
}

/// Runs `cmd` to completion (60 s at most), feeding it `stdin`.
pub async fn run(mut cmd: Command, args: &[&str], stdin: &str) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn atende");
    let mut input = child.stdin.take().expect("stdin");
    // It may exit without reading (a usage error): a broken pipe here is not the test's concern.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("atende {args:?} did not finish within 60 s"))
        .expect("wait for atende");
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running `atende serve`; killed (SIGKILL) when dropped. On a failing test its log is printed.
pub struct Server {
    child: Child,
    pub address: String,
    pub http: reqwest::Client,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Server {
    /// Waits for GET /health; Err(status) when the process exits first.
    async fn ready(&mut self) -> Result<(), ExitStatus> {
        let url = format!("{}/health", self.address);
        let (child, http) = (&mut self.child, &self.http);
        let mut exited = None;
        wait_until(
            "atende serve to answer GET /health",
            Duration::from_secs(30),
            || {
                if exited.is_none() {
                    exited = child.try_wait().expect("try_wait");
                }
                let request = exited.is_none().then(|| http.get(&url).send());
                async move {
                    match request {
                        None => true,
                        Some(request) => request.await.is_ok_and(|r| r.status() == 200),
                    }
                }
            },
        )
        .await;
        match exited {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }

    /// What it printed on standard output so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Its log so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/whatsapp", self.address)
    }

    /// SIGKILL (no graceful shutdown) and reap.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL atende");
        self.child.wait().await.expect("reap atende");
    }

    /// POSTs `body` to the webhook signed with `app_secret`, as Meta does.
    pub async fn post_webhook(
        &self,
        body: &[u8],
        app_secret: &str,
    ) -> reqwest::Result<reqwest::Response> {
        post_webhook(&self.http, &self.webhook_url(), body, app_secret).await
    }

    /// GET an API path with a bearer token; panics unless 200.
    pub async fn api_get(&self, token: &str, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("api request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Every conversation (at most 499, checked) and every message of each, paging through
    /// `next_before`.
    pub async fn all_messages(&self, token: &str) -> (Vec<Value>, Vec<Value>) {
        let list = self.api_get(token, "/api/conversations?limit=500").await;
        let conversations = list["conversations"]
            .as_array()
            .cloned()
            .expect("conversations");
        assert!(
            conversations.len() < 500,
            "more conversations than one page"
        );
        let mut messages = Vec::new();
        for conversation in &conversations {
            let id = conversation["id"].as_i64().expect("conversation id");
            let mut before: Option<i64> = None;
            loop {
                let path = match before {
                    Some(b) => format!("/api/conversations/{id}/messages?limit=200&before={b}"),
                    None => format!("/api/conversations/{id}/messages?limit=200"),
                };
                let page = self.api_get(token, &path).await;
                messages.extend(page["messages"].as_array().cloned().expect("messages"));
                match page["next_before"].as_i64() {
                    Some(b) => before = Some(b),
                    None => break,
                }
            }
        }
        (conversations, messages)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- atende serve log ({}) ---\n{}",
                self.stderr_path.display(),
                self.stderr()
            );
        }
    }
}

pub async fn post_webhook(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    app_secret: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", graph_sim::sign(app_secret, body))
        .body(body.to_vec())
        .send()
        .await
}

const PNID: &str = "106540352242922";
const WABA: &str = "102290129340398";
const ACCESS_TOKEN: &str = "EAAcli-access-token-0123";
const APP_SECRET: &str = "cli-app-secret-4567";
const VERIFY_TOKEN: &str = "cli-verify-token-89ab";
/// Nothing listens there: no test may reach Meta.
const NO_GRAPH: &str = "http://127.0.0.1:9/v23.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_an_installation_from_the_command_line_sqlite() {
    if let Some(install) = Install::new(Backend::Sqlite).await {
        an_operator_sets_up_an_installation_from_the_command_line(install).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_an_installation_from_the_command_line_postgres() {
    if let Some(install) = Install::new(Backend::Postgres).await {
        an_operator_sets_up_an_installation_from_the_command_line(install).await;
    }
}

async fn an_operator_sets_up_an_installation_from_the_command_line(install: Install) {
    let out = install.ok(&["migrate"], "").await;
    assert!(out.contains("migrations applied"), "{out}");

    // Users: the password comes from standard input.
    let user_add = |email: &'static str, role: &'static str| {
        [
            "user", "add", "--email", email, "--role", role, "--name", "Ana Lima",
        ]
    };
    let out = install
        .ok(
            &user_add("Ana@Example.com", "supervisor"),
            "senha-forte-123\n",
        )
        .await;
    assert!(out.contains("user ana@example.com created"), "{out}");
    let list = install.ok(&["user", "list"], "").await;
    let fields: Vec<&str> = list.trim().split('\t').collect();
    assert_eq!(
        fields[1..],
        ["ana@example.com", "supervisor", "active"],
        "{list}"
    );

    let err = install
        .fails(&user_add("ana@example.com", "agent"), "outra-senha-456\n")
        .await;
    assert!(
        err.contains("already exists") && err.contains("ana@example.com"),
        "{err}"
    );
    let err = install
        .fails(&user_add("bia@example.com", "boss"), "senha-forte-123\n")
        .await;
    assert!(
        err.contains("'boss'") && err.contains("admin, supervisor, agent"),
        "{err}"
    );
    let err = install
        .fails(&user_add("bia@example.com", "agent"), "curta\n")
        .await;
    assert!(err.contains("at least 8 characters"), "{err}");
    let err = install
        .fails(&user_add("bia@example.com", "agent"), "")
        .await;
    assert!(
        err.contains("at least 8 characters"),
        "no password at all: {err}"
    );
    let err = install
        .fails(&user_add("not-an-email", "agent"), "senha-forte-123\n")
        .await;
    assert!(err.contains("not an e-mail address"), "{err}");
    let list = install.ok(&["user", "list"], "").await;
    assert_eq!(
        list.lines().count(),
        1,
        "refused users are not created: {list}"
    );

    // An API token, printed once and alone on standard output (scripts capture it).
    let out = install.ok(&["token", "create", "--name", "crm"], "").await;
    assert_eq!(out.lines().count(), 1, "{out}");
    let token = out.trim().to_owned();
    assert!(
        token.len() >= 20 && !token.contains(char::is_whitespace),
        "{token:?}"
    );
    install
        .fails(&["token", "create", "--name", "  "], "")
        .await;

    // Channels: secrets from standard input, never printed back.
    let add = install
        .run(
            &[
                "channel",
                "add",
                "--name",
                "Vendas",
                "--phone-number-id",
                PNID,
                "--waba-id",
                WABA,
                "--display-phone-number",
                "5511900000000",
                "--graph-base-url",
                NO_GRAPH,
            ],
            &format!("{ACCESS_TOKEN}\n{APP_SECRET}\n{VERIFY_TOKEN}\n"),
        )
        .await;
    assert!(add.status.success(), "{}", add.stderr);
    assert!(
        add.stdout
            .contains(&format!("created for phone number id {PNID}")),
        "{}",
        add.stdout
    );
    // A second number: one secret as a flag, the others (in order) from standard input.
    let old = [
        "channel",
        "add",
        "--name",
        "Antigo",
        "--phone-number-id",
        "200300400",
        "--waba-id",
        "9",
        "--graph-base-url",
        NO_GRAPH,
        "--access-token",
        "old-access-token",
    ];
    let err = install.fails(&old, "old-app-secret\n").await;
    assert!(err.contains("verify-token missing"), "{err}");
    install.ok(&old, "old-app-secret\nold-verify-token\n").await;
    let out = install.ok(&["channel", "disable", "200300400"], "").await;
    assert!(out.contains("disabled"), "{out}");
    let err = install.fails(&["channel", "disable", "777"], "").await;
    assert!(err.contains("no channel") && err.contains("777"), "{err}");

    let list = install.ok(&["channel", "list"], "").await;
    let secrets = [
        ACCESS_TOKEN,
        APP_SECRET,
        VERIFY_TOKEN,
        "old-access-token",
        "old-app-secret",
        "old-verify-token",
    ];
    for secret in secrets {
        assert!(
            !list.contains(secret),
            "channel list shows a secret: {list}"
        );
        assert!(
            !add.stdout.contains(secret) && !add.stderr.contains(secret),
            "channel add echoes a secret"
        );
    }
    let line_of = |pnid: &str| {
        list.lines()
            .find(|l| l.split('\t').nth(1) == Some(pnid))
            .unwrap_or_else(|| panic!("{pnid} not listed: {list}"))
            .to_owned()
    };
    assert!(
        line_of(PNID).contains("\tVendas\tenabled\t80/s\t"),
        "{list}"
    );
    assert!(
        line_of("200300400").contains("\tAntigo\tdisabled\t"),
        "{list}"
    );

    // The server runs on all of it. Users exist, so no first admin is created.
    let server = install.serve().await;
    assert!(!server.stdout().contains("password"), "{}", server.stdout());
    let url = format!("{}/api/conversations", server.address);
    assert_eq!(server.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        server
            .http
            .get(&url)
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let list = server.api_get(&token, "/api/conversations").await;
    assert_eq!(list["conversations"], json!([]));

    // The app secret typed on standard input is the one webhooks are checked with.
    let builder = graph_sim::WebhookBuilder::new(WABA, PNID, "5511900000000");
    let (wamid, payload) = builder.text(&graph_sim::Customer::new("5511987654321", "Maria"), "oi");
    let body = graph_sim::to_meta_json(&payload);
    assert_eq!(
        server
            .post_webhook(&body, "wrong-secret")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        server
            .post_webhook(&body, APP_SECRET)
            .await
            .unwrap()
            .status(),
        200
    );
    wait_until(
        "the message through the API",
        Duration::from_secs(20),
        || async {
            let (_, messages) = server.all_messages(&token).await;
            messages.iter().any(|m| m["wamid"] == wamid.as_str())
        },
    )
    .await;

    // Signed garbage is kept; the CLI shows it while the server runs, and replays it by id.
    let garbage = b"not json at all";
    assert_eq!(
        server
            .post_webhook(garbage, APP_SECRET)
            .await
            .unwrap()
            .status(),
        200
    );
    wait_until(
        "the dead letter in `atende inbox dead-letters`",
        Duration::from_secs(20),
        || async {
            install
                .ok(&["inbox", "dead-letters"], "")
                .await
                .contains("not json at all")
        },
    )
    .await;
    let dead = install
        .ok(&["inbox", "dead-letters", "--limit", "10"], "")
        .await;
    let line = dead
        .lines()
        .find(|l| l.ends_with("not json at all"))
        .expect("dead letter line");
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 4, "id, received at, error, body: {line:?}");
    assert!(fields[2].contains("JSON"), "the reason is shown: {line:?}");
    let dead_id = fields[0];
    dead_id.parse::<i64>().expect("numeric id");

    let err = install.fails(&["inbox", "replay", "987654"], "").await;
    assert!(
        err.contains("none of the given ids is a dead letter"),
        "{err}"
    );
    let err = install.fails(&["inbox", "replay", "abc"], "").await;
    assert!(err.contains("abc"), "{err}");
    let out = install.ok(&["inbox", "replay", dead_id], "").await;
    assert!(out.starts_with("1 dead letter(s) queued again"), "{out}");
    let err = install.fails(&["inbox", "replay", "987654"], "").await;
    assert!(err.contains("none of the given ids"), "{err}");

    let log = server.stderr();
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "the server log shows a secret: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_writes_the_admin_password_to_a_private_file() {
    // The test's server has no terminal, as under a service manager: the password must not go to
    // stdout or the log, but to a file only the server's user can read.
    let install = Install::new(Backend::Sqlite).await.expect("sqlite");
    let server = install.serve().await;
    let file = install.data_dir.join(server::cli::FIRST_ADMIN_FILE);
    let text = std::fs::read_to_string(&file).expect("the password file");
    let password = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .unwrap_or_else(|| panic!("no password in the file: {text}"))
        .trim()
        .to_owned();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
        };
        assert_eq!(mode(&file), 0o600, "the password file is private");
        assert_eq!(mode(&install.data_dir), 0o700, "the data folder is private");
    }
    assert!(text.contains("admin@atende.local"), "{text}");
    let stdout = server.stdout();
    assert!(!stdout.contains(&password), "not on stdout: {stdout}");
    assert!(
        !server.stderr().contains(&password),
        "the password is not a log line"
    );
    assert!(
        server.stderr().contains(server::cli::FIRST_ADMIN_FILE),
        "the log says where the password is: {}",
        server.stderr()
    );
    assert!(password.len() >= 12, "{password:?}");
    let login = |server: &Server| {
        server
            .http
            .post(format!("{}/api/auth/login", server.address))
            .json(&json!({ "email": "admin@atende.local", "password": password }))
            .send()
    };
    assert_eq!(login(&server).await.unwrap().status(), 200);
    server.kill().await;

    std::fs::remove_file(&file).expect("the admin deletes the file");
    let again = install.serve().await;
    assert!(!file.exists(), "written only on the first start");
    assert!(
        !again.stderr().contains(server::cli::FIRST_ADMIN_FILE),
        "announced only once: {}",
        again.stderr()
    );
    assert_eq!(
        login(&again).await.unwrap().status(),
        200,
        "the same password after a restart"
    );
    let list = install.ok(&["user", "list"], "").await;
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("admin@atende.local\tadmin\tactive"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_names_every_subcommand_and_bad_settings_are_refused() {
    let install = Install::new(Backend::Sqlite).await.expect("sqlite");
    let help = install.ok(&["--help"], "").await;
    let subcommands = [
        ("serve", &[][..]),
        ("migrate", &[]),
        ("user", &["add", "list"]),
        ("token", &["create", "list", "revoke"]),
        ("channel", &["add", "list", "disable"]),
        ("inbox", &["dead-letters", "replay"]),
    ];
    let lists = |help: &str, name: &str| {
        help.lines()
            .any(|l| l.trim_start().starts_with(&format!("{name} ")))
    };
    for (name, nested) in subcommands {
        assert!(
            lists(&help, name),
            "`atende --help` does not mention {name}: {help}"
        );
        if !nested.is_empty() {
            let sub_help = install.ok(&[name, "--help"], "").await;
            for sub in nested {
                assert!(
                    lists(&sub_help, sub),
                    "`atende {name} --help` does not mention {sub}: {sub_help}"
                );
            }
        }
    }
    for flag in ["--data-dir", "--database-url", "--secret-key", "--config"] {
        assert!(help.contains(flag), "{flag} missing from --help: {help}");
    }
    let serve_help = install.ok(&["serve", "--help"], "").await;
    assert!(
        serve_help.contains("--listen") && serve_help.contains("ATENDE_LISTEN"),
        "{serve_help}"
    );

    let err = install
        .fails(&["serve", "--listen", "not-an-address"], "")
        .await;
    assert!(
        err.contains("invalid listen address \"not-an-address\""),
        "{err}"
    );
    let err = install
        .fails(&["serve", "--listen", "127.0.0.1:99999"], "")
        .await;
    assert!(err.contains("invalid listen address"), "{err}");
    let mut from_env = install.command(&["serve"]);
    from_env.env("ATENDE_LISTEN", "localhost-ish");
    let run = run(from_env, &["serve"], "").await;
    assert!(
        !run.status.success() && run.stderr.contains("\"localhost-ish\""),
        "{}",
        run.stderr
    );

    let config = install.root().join("atende.toml");
    let config_arg = config.to_str().expect("utf-8 path");
    std::fs::write(&config, "listen = [\"127.0.0.1:8080\"\n").unwrap();
    let err = install.fails(&["--config", config_arg, "serve"], "").await;
    assert!(
        err.contains("invalid config file") && err.contains("atende.toml"),
        "{err}"
    );
    std::fs::write(&config, "lisen = \"127.0.0.1:8080\"\n").unwrap();
    let err = install.fails(&["--config", config_arg, "serve"], "").await;
    assert!(
        err.contains("invalid config file") && err.contains("lisen"),
        "a typo is named: {err}"
    );
    std::fs::write(&config, "listen = \"nowhere\"\n").unwrap();
    let err = install.fails(&["--config", config_arg, "serve"], "").await;
    assert!(err.contains("invalid listen address \"nowhere\""), "{err}");
    let missing = install.root().join("missing.toml");
    let err = install
        .fails(&["--config", missing.to_str().unwrap(), "migrate"], "")
        .await;
    assert!(err.contains("cannot read config file"), "{err}");

    let unknown = install.run(&["frobnicate"], "").await;
    assert_eq!(
        unknown.status.code(),
        Some(2),
        "usage errors exit 2: {}",
        unknown.stderr
    );
    assert!(unknown.stderr.contains("frobnicate"), "{}", unknown.stderr);
}
