//! The operator's subcommands. Each works on the same database as the server and fails with a
//! clear message (and a non-zero exit) on bad input.

use std::io::BufRead;

use anyhow::{Context, bail};
use store::Store;
use store::auth::{ApiTokenStatus, NewUser, Role};
use store::channels::ChannelUpdate;

use crate::app::{Application, open_store};
use crate::channels::{ChannelInput, ChannelView};
use crate::config::{
    ChannelAddArgs, ChannelCommand, Cli, Command, Config, InboxCommand, TokenCommand, UserCommand,
};
use crate::passwords;
use crate::secrets::SecretBox;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    let config = Config::resolve(&cli.global, &cli.serve)?;
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(cmd) => user(&open_store(&config).await?, cmd).await,
        Command::Token(cmd) => token(&config, cmd).await,
        Command::Channel(cmd) => {
            let store = open_store(&config).await?;
            let secrets =
                SecretBox::load_or_create(config.secret_key.as_deref(), &config.data_dir)?;
            channel(&store, &secrets, cmd).await
        }
        Command::Inbox(cmd) => inbox(&open_store(&config).await?, cmd).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config.clone()).await?;
    if let Some(password) = app.first_admin_password() {
        announce_first_admin(&config, password)?;
    }
    tracing::info!(
        listen = %config.listen,
        database = %crate::config::redact_url(&config.database_url),
        "atende is running on http://{}", config.listen
    );
    let token = app.shutdown_token();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    app.run_until_stopped().await
}

/// The first admin's one-time password goes to the person at the terminal, never to a log: printed
/// when standard output is a terminal, otherwise (a service manager, a container) written to a
/// file only the server's user can read, whose path is logged.
fn announce_first_admin(config: &Config, password: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        println!();
        println!("  First start: an admin account was created.");
        println!("    e-mail:   {}", config.admin_email);
        println!("    password: {password}");
        println!("  Change it after logging in. It will not be shown again.");
        println!();
        return Ok(());
    }
    let path = config.data_dir.join(FIRST_ADMIN_FILE);
    crate::app::write_private_file(
        &path,
        &format!("e-mail: {}\npassword: {password}\n", config.admin_email),
    )?;
    tracing::warn!(
        path = %path.display(),
        "first start: an admin account was created; its one-time password is in this file \
         (readable by this user only). Read it, log in, choose a new password and delete the file"
    );
    Ok(())
}

/// Where the first admin's password is written when no terminal is attached.
pub const FIRST_ADMIN_FILE: &str = "first-admin-password.txt";

fn read_stdin_lines(n: usize) -> anyhow::Result<Vec<String>> {
    let stdin = std::io::stdin();
    let mut lines = Vec::with_capacity(n);
    for line in stdin.lock().lines().take(n) {
        lines.push(
            line.context("cannot read standard input")?
                .trim()
                .to_owned(),
        );
    }
    Ok(lines)
}

async fn user(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { email, role, name } => {
            if !email.contains('@') {
                bail!("--email {email:?} is not an e-mail address");
            }
            let role = Role::parse(&role).context("--role must be admin, supervisor or agent")?;
            eprintln!("Password (from standard input):");
            let password = read_stdin_lines(1)?.into_iter().next().unwrap_or_default();
            if password.chars().count() < 8 {
                bail!("the password must have at least 8 characters");
            }
            let hash = passwords::hash_password(&password)?;
            let user = store
                .create_user(NewUser {
                    email: &email,
                    name: &name,
                    role,
                    password_hash: &hash,
                    must_change_password: false,
                })
                .await?;
            println!(
                "user {} created with id {} ({})",
                user.email,
                user.id,
                role.as_str()
            );
            Ok(())
        }
        UserCommand::List => {
            for u in store.users().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.id,
                    u.email,
                    u.role.as_str(),
                    if u.active { "active" } else { "inactive" }
                );
            }
            Ok(())
        }
    }
}

async fn token(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { name } => {
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let store = open_store(config).await?;
            let token = passwords::random_token();
            // The operator has no user: a CLI token is not tied to anyone's account.
            store
                .create_api_token(name.trim(), &passwords::token_hash(&token), None)
                .await?;
            println!("{token}");
            eprintln!("API token {name:?} created. It is shown only now: keep it safe.");
            Ok(())
        }
        TokenCommand::List => {
            let tokens = open_store(config).await?.api_tokens().await?;
            if tokens.is_empty() {
                println!("no API tokens");
            }
            for t in tokens {
                let status = match t.status {
                    ApiTokenStatus::Active => "active",
                    ApiTokenStatus::Revoked => "revoked",
                    ApiTokenStatus::CreatorInactive => "creator-inactive",
                };
                let creator = match (t.created_by, t.created_by_name) {
                    (Some(id), Some(name)) => format!("{name} (user {id})"),
                    (Some(id), None) => format!("user {id}"),
                    (None, _) => "cli".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\tlast used {}\t{}",
                    t.id,
                    t.name,
                    status,
                    timestamp(Some(t.created_at)),
                    timestamp(t.last_used_at),
                    creator
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let store = open_store(config).await?;
            let revoked = match store.revoke_api_token(id).await {
                Err(store::StoreError::NotFound) => bail!("no API token with id {id}"),
                other => other?,
            };
            println!("API token {} ({:?}) revoked", revoked.id, revoked.name);
            Ok(())
        }
    }
}

/// A unix-milliseconds instant as UTC RFC 3339, or "never".
fn timestamp(ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_second(ms.div_euclid(1000)).ok())
        .map_or_else(|| "never".to_owned(), |t| t.to_string())
}

async fn channel(store: &Store, secrets: &SecretBox, cmd: ChannelCommand) -> anyhow::Result<()> {
    match cmd {
        ChannelCommand::Add(args) => {
            let input = channel_input(args)?;
            let new = input.into_new_channel(secrets, false)?;
            let record = store.create_channel(&new).await?;
            println!(
                "channel {} created for phone number id {}",
                record.id, record.phone_number_id
            );
            Ok(())
        }
        ChannelCommand::List => {
            for c in store.channels().await? {
                let v = ChannelView::from(c);
                println!(
                    "{}\t{}\t{}\t{}\t{}/s\t{}",
                    v.id,
                    v.phone_number_id,
                    v.name,
                    if v.enabled { "enabled" } else { "disabled" },
                    v.rate_limit_per_sec,
                    v.graph_base_url
                );
            }
            Ok(())
        }
        ChannelCommand::Disable { channel } => {
            let all = store.channels().await?;
            let found = all
                .iter()
                .find(|c| c.phone_number_id == channel || c.id.to_string() == channel)
                .with_context(|| format!("no channel with id or phone number id {channel:?}"))?;
            let update = ChannelUpdate {
                enabled: Some(false),
                ..Default::default()
            };
            store.update_channel(found.id, &update).await?;
            println!("channel {} disabled", found.id);
            Ok(())
        }
    }
}

/// Secrets come from flags or, for those missing, from standard input (so they stay out of the
/// shell history and the process list).
fn channel_input(args: ChannelAddArgs) -> anyhow::Result<ChannelInput> {
    for (flag, value) in [
        ("--access-token", &args.access_token),
        ("--app-secret", &args.app_secret),
        ("--verify-token", &args.verify_token),
    ] {
        if value.is_some() {
            eprintln!(
                "warning: {flag} on the command line is visible to other users (ps) and kept in \
                 the shell history; give secrets on standard input instead"
            );
        }
    }
    let missing = [&args.access_token, &args.app_secret, &args.verify_token]
        .iter()
        .filter(|v| v.is_none())
        .count();
    let mut from_stdin = if missing > 0 {
        read_stdin_lines(missing)?
    } else {
        Vec::new()
    }
    .into_iter();
    let mut take = |flag: Option<String>, what: &str| -> anyhow::Result<String> {
        match flag {
            Some(v) => Ok(v),
            None => from_stdin
                .next()
                .filter(|v| !v.is_empty())
                .with_context(|| {
                    format!("{what} missing: pass --{what} or give it on standard input")
                }),
        }
    };
    let access_token = take(args.access_token, "access-token")?;
    let app_secret = take(args.app_secret, "app-secret")?;
    let verify_token = take(args.verify_token, "verify-token")?;
    Ok(ChannelInput {
        name: args.name,
        phone_number_id: args.phone_number_id,
        waba_id: args.waba_id,
        display_phone_number: args.display_phone_number,
        access_token,
        app_secret,
        verify_token,
        graph_base_url: args.graph_base_url,
        rate_limit_per_sec: Some(args.rate_limit),
        mark_read: None,
    })
}

async fn inbox(store: &Store, cmd: InboxCommand) -> anyhow::Result<()> {
    match cmd {
        InboxCommand::DeadLetters { limit } => {
            let dead = store.dead_letters(limit).await?;
            if dead.is_empty() {
                println!("no dead letters");
            }
            for d in dead {
                let preview: String = d.body.chars().take(120).collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    d.id,
                    d.received_at,
                    d.error.unwrap_or_default(),
                    preview
                );
            }
            Ok(())
        }
        InboxCommand::Replay { ids } => {
            let n = store.replay_dead_letters(&ids).await?;
            if !ids.is_empty() && n == 0 {
                bail!("none of the given ids is a dead letter");
            }
            println!(
                "{n} dead letter(s) queued again; a running server processes them within seconds"
            );
            Ok(())
        }
    }
}
