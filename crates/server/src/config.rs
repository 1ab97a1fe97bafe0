//! Command line, environment and TOML configuration. Precedence: flags, then `ATENDE_*`
//! environment variables (clap reads both), then the optional TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "atende",
    version,
    about = "Atende: a self-hosted WhatsApp contact center"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand understands.
#[derive(Debug, Args, Default, Clone)]
pub struct GlobalArgs {
    /// TOML file with any of the options below (keys in snake_case, e.g. `listen = "0.0.0.0:8080"`).
    #[arg(long, global = true, env = "ATENDE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder for the SQLite database, media and the secret key. [default: ./data]
    #[arg(long, global = true, env = "ATENDE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: postgres://user@host/db for PostgreSQL. [default: sqlite://<data-dir>/atende.db]
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Base64 of 32 random bytes used to encrypt channel credentials at rest. Instances sharing one
    /// PostgreSQL must share it. [default: generated into <data-dir>/secret.key on first run]
    #[arg(long, global = true, env = "ATENDE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Log filter, tracing-subscriber syntax. [default: info]
    #[arg(long, global = true, env = "ATENDE_LOG")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for integrations.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage WhatsApp channels (business phone numbers).
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Inspect and replay the webhook inbox.
    #[command(subcommand)]
    Inbox(InboxCommand),
}

#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, global = true, env = "ATENDE_LISTEN")]
    pub listen: Option<String>,
    /// Public base URL (e.g. https://atende.example.com), used to show the webhook URL and to mark
    /// cookies Secure.
    #[arg(long, global = true, env = "ATENDE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Largest webhook body accepted, in bytes; larger ones get 413. [default: 1048576]
    #[arg(long, global = true, env = "ATENDE_WEBHOOK_MAX_BODY")]
    pub webhook_max_body: Option<usize>,
    /// Prefix of protocol numbers (letters, digits, '-'). [default: none]
    #[arg(long, global = true, env = "ATENDE_PROTOCOL_PREFIX")]
    pub protocol_prefix: Option<String>,
    /// Time zone of the protocol number's date. [default: America/Sao_Paulo]
    #[arg(long, global = true, env = "ATENDE_TIME_ZONE")]
    pub time_zone: Option<String>,
    /// E-mail of the admin account created on first start. [default: admin@atende.local]
    #[arg(long, global = true, env = "ATENDE_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Where media files are kept: file:///path or s3://bucket/prefix (AWS_* variables for
    /// credentials and endpoint). [default: <data-dir>/media]
    #[arg(long, global = true, env = "ATENDE_MEDIA_STORE")]
    pub media_store: Option<String>,
    /// Sender workers per instance (they share the per-number rate limit). [default: 2]
    #[arg(long, global = true, env = "ATENDE_SENDER_WORKERS")]
    pub sender_workers: Option<usize>,
    /// Timeout of one Graph API call, in seconds. [default: 20]
    #[arg(long, global = true, env = "ATENDE_GRAPH_TIMEOUT")]
    pub graph_timeout: Option<u64>,
    /// The built-in WhatsApp simulator ("Simulador"): auto runs it while no real channel exists.
    /// [default: auto]
    #[arg(long, global = true, env = "ATENDE_DEMO", value_enum)]
    pub demo: Option<crate::demo::DemoMode>,
    /// On a first start without any bot flow, install the pt-BR demo flow (greeting with the
    /// protocol, menu, CPF/CNPJ identification, hand-off) and its queues. [default: true]
    #[arg(
        long,
        global = true,
        env = "ATENDE_SEED_DEMO_FLOW",
        value_name = "BOOL"
    )]
    pub seed_demo_flow: Option<bool>,
    /// Seconds without an answer before the bot reminds the customer (a flow may override it).
    /// [default: 300]
    #[arg(
        long,
        global = true,
        env = "ATENDE_BOT_REMINDER_AFTER",
        value_name = "SECS"
    )]
    pub bot_reminder_after: Option<u64>,
    /// Seconds after an agent's last browser tab disconnected before they become offline (their
    /// personal line goes back to the queues). [default: 120]
    #[arg(
        long,
        global = true,
        env = "ATENDE_PRESENCE_GRACE",
        value_name = "SECS"
    )]
    pub presence_grace: Option<u64>,
    /// Seconds without an answer before the bot closes the conversation as abandoned (a flow may
    /// override it). [default: 900]
    #[arg(
        long,
        global = true,
        env = "ATENDE_BOT_CLOSE_AFTER",
        value_name = "SECS"
    )]
    pub bot_close_after: Option<u64>,
    /// Reverse proxies whose `X-Forwarded-For` is believed for the client's address (login
    /// throttling, logs): comma-separated addresses or CIDR ranges, e.g. `127.0.0.1,10.0.0.0/8`.
    /// [default: none, the TCP peer is the client]
    #[arg(
        long,
        global = true,
        env = "ATENDE_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "ADDRS"
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// Seconds between two full imports of every WABA's templates from Meta (the safety net of
    /// the template webhooks); 0 = only on demand. [default: 3600]
    #[arg(
        long,
        global = true,
        env = "ATENDE_TEMPLATE_SYNC_EVERY",
        value_name = "SECS"
    )]
    pub template_sync_every: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "supervisor", "agent"])]
        role: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List users.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it once.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List API tokens (never the tokens themselves): who made them, last use, revocation.
    List,
    /// Revoke an API token by id; it is refused from the next request on.
    Revoke {
        /// token id (see `token list`)
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Add a channel. Secrets not given as flags are read from standard input, one per line, in the
    /// order: access token, app secret, verify token.
    Add(ChannelAddArgs),
    /// List channels (secrets are never printed).
    List,
    /// Disable a channel by id or phone number id.
    Disable {
        /// channel id or phone number id
        channel: String,
    },
}

#[derive(Debug, Args, Clone)]
pub struct ChannelAddArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub phone_number_id: String,
    #[arg(long)]
    pub waba_id: String,
    #[arg(long)]
    pub display_phone_number: Option<String>,
    #[arg(long, hide_env_values = true)]
    pub access_token: Option<String>,
    #[arg(long, hide_env_values = true)]
    pub app_secret: Option<String>,
    #[arg(long, hide_env_values = true)]
    pub verify_token: Option<String>,
    /// Graph API base URL. [default: https://graph.facebook.com/v23.0]
    #[arg(long)]
    pub graph_base_url: Option<String>,
    /// Outbound messages per second allowed by Meta for this number (1..=1000).
    #[arg(long, default_value_t = 80)]
    pub rate_limit: i64,
}

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// List webhook bodies that could not be processed, with the reason.
    DeadLetters {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put dead letters back in the queue (all of them, or the given ids).
    Replay { ids: Vec<i64> },
}

/// The TOML file: the same options, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    secret_key: Option<String>,
    log: Option<String>,
    listen: Option<String>,
    public_url: Option<String>,
    webhook_max_body: Option<usize>,
    protocol_prefix: Option<String>,
    time_zone: Option<String>,
    admin_email: Option<String>,
    media_store: Option<String>,
    sender_workers: Option<usize>,
    graph_timeout: Option<u64>,
    demo: Option<crate::demo::DemoMode>,
    seed_demo_flow: Option<bool>,
    bot_reminder_after: Option<u64>,
    bot_close_after: Option<u64>,
    presence_grace: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    template_sync_every: Option<u64>,
}

/// Everything the program needs, resolved.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub secret_key: Option<String>,
    pub log: String,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub webhook_max_body: usize,
    pub protocol: domain::protocol::ProtocolConfig,
    pub admin_email: String,
    pub media_store: Option<String>,
    pub sender_workers: usize,
    pub graph_timeout_secs: u64,
    pub demo: crate::demo::DemoMode,
    /// Install the demo bot flow and its queues when no flow exists (off in tests, which create
    /// their flows through the API).
    pub seed_demo_flow: bool,
    pub bot_reminder_after_secs: u64,
    pub bot_close_after_secs: u64,
    pub presence_grace_secs: u64,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// 0: no periodic template sync.
    pub template_sync_secs: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("webhook_max_body", &self.webhook_max_body)
            .finish_non_exhaustive()
    }
}

/// Hides the password of a database URL before it is printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Config {
    pub fn resolve(global: &GlobalArgs, serve: &ServeArgs) -> anyhow::Result<Config> {
        let file = match &global.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let data_dir = global
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let database_url = global
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("atende.db").display()));
        let listen_text = serve
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen_text
            .parse()
            .with_context(|| format!("invalid listen address {listen_text:?}"))?;
        let protocol = domain::protocol::ProtocolConfig {
            prefix: serve
                .protocol_prefix
                .clone()
                .or(file.protocol_prefix)
                .unwrap_or_default(),
            time_zone: serve
                .time_zone
                .clone()
                .or(file.time_zone)
                .unwrap_or_else(|| "America/Sao_Paulo".to_owned()),
            ..Default::default()
        };
        if let Err(e) = domain::protocol::validate_config(&protocol) {
            bail!("invalid protocol settings: {e}");
        }
        let bot_reminder_after_secs = serve
            .bot_reminder_after
            .or(file.bot_reminder_after)
            .unwrap_or(300);
        let bot_close_after_secs = serve
            .bot_close_after
            .or(file.bot_close_after)
            .unwrap_or(900);
        if bot_reminder_after_secs == 0 || bot_close_after_secs <= bot_reminder_after_secs {
            bail!(
                "invalid bot inactivity settings: the reminder ({bot_reminder_after_secs} s) must be positive and come before the close ({bot_close_after_secs} s)"
            );
        }
        Ok(Config {
            data_dir,
            database_url,
            secret_key: global.secret_key.clone().or(file.secret_key),
            log: global
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".to_owned()),
            listen,
            public_url: serve.public_url.clone().or(file.public_url),
            webhook_max_body: serve
                .webhook_max_body
                .or(file.webhook_max_body)
                .unwrap_or(1 << 20),
            protocol,
            admin_email: serve
                .admin_email
                .clone()
                .or(file.admin_email)
                .unwrap_or_else(|| "admin@atende.local".to_owned()),
            media_store: serve.media_store.clone().or(file.media_store),
            sender_workers: serve.sender_workers.or(file.sender_workers).unwrap_or(2),
            graph_timeout_secs: serve.graph_timeout.or(file.graph_timeout).unwrap_or(20),
            demo: serve
                .demo
                .or(file.demo)
                .unwrap_or(crate::demo::DemoMode::Auto),
            seed_demo_flow: serve.seed_demo_flow.or(file.seed_demo_flow).unwrap_or(true),
            bot_reminder_after_secs,
            bot_close_after_secs,
            presence_grace_secs: serve
                .presence_grace
                .or(file.presence_grace)
                .unwrap_or(120)
                .max(1),
            trusted_proxies: parse_proxies(
                serve
                    .trusted_proxies
                    .clone()
                    .or(file.trusted_proxies)
                    .unwrap_or_default(),
            )?,
            template_sync_secs: serve
                .template_sync_every
                .or(file.template_sync_every)
                .unwrap_or(3600),
        })
    }

    /// A configuration for tests and benchmarks: given database, random port, temporary data dir.
    pub fn for_tests(data_dir: &Path, database_url: &str) -> Config {
        Config {
            data_dir: data_dir.to_owned(),
            database_url: database_url.to_owned(),
            secret_key: None,
            log: "warn".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            webhook_max_body: 1 << 20,
            protocol: domain::protocol::ProtocolConfig::default(),
            admin_email: "admin@atende.local".to_owned(),
            media_store: None,
            sender_workers: 2,
            graph_timeout_secs: 5,
            demo: crate::demo::DemoMode::Off,
            seed_demo_flow: false,
            bot_reminder_after_secs: 300,
            bot_close_after_secs: 900,
            presence_grace_secs: 120,
            trusted_proxies: Vec::new(),
            // Tests sync on demand; a periodic import would race their assertions.
            template_sync_secs: 0,
        }
    }
}

/// `10.0.0.0/8` or a single address (`127.0.0.1`, `::1`).
fn parse_proxies(list: Vec<String>) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .with_context(|| {
                    format!("invalid trusted proxy {s:?}: use an address or a CIDR range")
                })
        })
        .collect()
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_database_password() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/a.db"), "sqlite://data/a.db");
    }

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("atende-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("atende.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\nprotocol_prefix = \"AT\"\n",
        )
        .unwrap();
        let global = GlobalArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let from_file = Config::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(from_file.listen.port(), 9999);
        assert_eq!(from_file.protocol.prefix, "AT");
        let flags = ServeArgs {
            listen: Some("127.0.0.1:7777".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::resolve(&global, &flags).unwrap().listen.port(),
            7777
        );
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(
            Config::resolve(&global, &ServeArgs::default()).is_err(),
            "typos are refused"
        );
    }
}
