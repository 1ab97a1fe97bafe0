//! Building and running the server: the state (`crate::state`), the background workers
//! (`crate::workers`), the listener and the router (`crate::http::router`).

use std::sync::Arc;

use anyhow::Context;
use store::Store;
use store::auth::{NewUser, Role};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channels::ChannelRegistry;
use crate::config::Config;
use crate::demo::DemoMode;
use crate::live::Live;
use crate::media_files::MediaFiles;
use crate::passwords;
use crate::secrets::SecretBox;
use crate::state::{AppContext, AppState};
use crate::workers::inbox::{InboxProcessor, InboxWriter};
use crate::workers::media_download::MediaDownloader;
use crate::workers::outbound::{Outbound, SenderWorker};
use whatsapp::graph::GraphClient;

/// Opens the database named by the configuration and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    // Always: besides SQLite's file it holds the secret key and the local media.
    create_private_dir(&config.data_dir)?;
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                crate::config::redact_url(&config.database_url)
            )
        })?;
    store
        .migrate()
        .await
        .context("cannot apply database migrations")?;
    Ok(store)
}

/// The data folder holds the database, media and keys: only the server's user may enter it.
pub fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict data directory {}", dir.display()))?;
    }
    Ok(())
}

/// Writes a file that only the server's user can read (created 0600, never widened).
pub fn write_private_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// On an empty installation, creates the first admin and returns its one-time password.
pub async fn ensure_first_admin(store: &Store, email: &str) -> anyhow::Result<Option<String>> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let password = passwords::random_token()[..16].to_owned();
    let hash = passwords::hash_password_async(password.clone()).await?;
    store
        .create_user(NewUser {
            email,
            name: "Administrador",
            role: Role::Admin,
            password_hash: &hash,
            must_change_password: true,
        })
        .await?;
    Ok(Some(password))
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    workers: TaskTracker,
    first_admin_password: Option<String>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = open_store(&config).await?;
        let secrets = SecretBox::load_or_create(config.secret_key.as_deref(), &config.data_dir)?;
        let first_admin_password = ensure_first_admin(&store, &config.admin_email).await?;
        let channels = ChannelRegistry::new(store.clone(), secrets);
        channels.reload().await?;

        let shutdown = CancellationToken::new();
        // Background workers, awaited at shutdown before the database pools close.
        let workers = TaskTracker::new();
        let inbox_wake = Arc::new(Notify::new());
        let writers = match store.backend() {
            store::Backend::Sqlite => 1,
            store::Backend::Postgres => 4,
        };
        let inbox =
            InboxWriter::start(store.clone(), writers, inbox_wake.clone(), shutdown.clone());
        let live = Live::default();
        let instance_id = passwords::random_token();

        let media_wake = Arc::new(Notify::new());
        let template_wake = Arc::new(Notify::new());
        let processor = InboxProcessor {
            store: store.clone(),
            channels: channels.clone(),
            protocol: config.protocol.clone(),
            live: live.clone(),
            wake: inbox_wake.clone(),
            media_wake: media_wake.clone(),
            instance_id: instance_id.clone(),
            yield_to: (store.backend() == store::Backend::Sqlite).then(|| inbox.clone()),
            template_wake: template_wake.clone(),
        };
        workers.spawn(processor.run(shutdown.clone()));

        let graph = GraphClient::new(std::time::Duration::from_secs(config.graph_timeout_secs));
        let files = MediaFiles::open(config.media_store.as_deref(), &config.data_dir)?;
        let send_wake = Arc::new(Notify::new());
        let outbound = Outbound::new(store.clone(), live.clone(), send_wake.clone());
        let completions = crate::workers::outbound::Completions::start(store.clone());
        let late_slots = crate::workers::outbound::LateSlots::start(store.clone());
        let bulk_slots = crate::workers::outbound::BulkSlots::default();
        for n in 0..config.sender_workers.max(1) {
            let worker = SenderWorker {
                store: store.clone(),
                channels: channels.clone(),
                graph: graph.clone(),
                files: files.clone(),
                live: live.clone(),
                wake: send_wake.clone(),
                worker_id: format!("{instance_id}-{n}"),
                completions: completions.clone(),
                late_slots: late_slots.clone(),
                bulk_slots: bulk_slots.clone(),
            };
            workers.spawn(worker.run(shutdown.clone()));
        }
        let broadcasts = crate::workers::broadcasts::BroadcastWorker {
            store: store.clone(),
            channels: channels.clone(),
            outbound: outbound.clone(),
            live: live.clone(),
            protocol: config.protocol.clone(),
            instance_id: instance_id.clone(),
            sender_ids: (0..config.sender_workers.max(1))
                .map(|n| format!("{instance_id}-{n}"))
                .collect(),
            wake: Arc::new(Notify::new()),
        };
        workers.spawn(broadcasts.run(shutdown.clone()));
        let downloader = MediaDownloader {
            store: store.clone(),
            channels: channels.clone(),
            graph: graph.clone(),
            files: files.clone(),
            live: live.clone(),
            wake: media_wake.clone(),
        };
        workers.spawn(downloader.run(shutdown.clone()));
        let template_sync = crate::workers::template_sync::TemplateSync {
            store: store.clone(),
            channels: channels.clone(),
            graph: graph.clone(),
            wake: template_wake,
            every: (config.template_sync_secs > 0)
                .then(|| std::time::Duration::from_secs(config.template_sync_secs)),
            instance_id: instance_id.clone(),
        };
        workers.spawn(template_sync.run(shutdown.clone()));
        // The bot: seeded before the listener serves, so the first webhook already meets the flow.
        if config.seed_demo_flow {
            crate::workers::bot::seed_demo_flow(&store)
                .await
                .context("cannot install the demo bot flow")?;
        }
        let bot = crate::workers::bot::BotWorker::new(
            store.clone(),
            outbound.clone(),
            live.clone(),
            crate::workers::bot::BotSettings::from_config(&config),
        );
        workers.spawn(bot.run(shutdown.clone()));
        workers.spawn(refresh_channels(channels.clone(), shutdown.clone()));
        let feed = crate::live::ws::EventFeed::new();
        let sockets = crate::workers::routing::Sockets::default();
        let desk_wake = Arc::new(Notify::new());
        let tailer = crate::live::ws::EventTailer {
            store: store.clone(),
            live: live.clone(),
            feed: feed.clone(),
            desk_wake: desk_wake.clone(),
        };
        workers.spawn(tailer.start(shutdown.clone()));
        let desk = crate::workers::routing::DeskWorker {
            store: store.clone(),
            outbound: outbound.clone(),
            live: live.clone(),
            wake: desk_wake.clone(),
            sockets: sockets.clone(),
            presence_grace: std::time::Duration::from_secs(config.presence_grace_secs),
        };
        workers.spawn(desk.run(shutdown.clone()));

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let has_real_channel = channels.all().iter().any(|c| !c.is_simulator && c.enabled);
        let simulator = match config.demo {
            DemoMode::On => Some(crate::demo::start(&channels, &store, port).await?),
            DemoMode::Auto if !has_real_channel => {
                Some(crate::demo::start(&channels, &store, port).await?)
            }
            _ => None,
        };
        let state = AppState(Arc::new(AppContext {
            config,
            store,
            channels,
            inbox,
            inbox_wake,
            live,
            instance_id,
            outbound,
            graph,
            files,
            media_wake,
            simulator,
            feed,
            viewers: crate::live::ws::Viewers::default(),
            sockets,
            desk_wake,
            shutdown: shutdown.clone(),
        }));
        // Scheduled messages go through the same road as a person's template (`hsm`), which
        // needs the whole state.
        let schedules = crate::workers::schedules::ScheduleWorker {
            app: state.clone(),
            worker_id: format!("{}-schedules", state.instance_id),
        };
        workers.spawn(schedules.run(shutdown.clone()));
        Ok(Application {
            listener,
            state,
            shutdown,
            workers,
            first_admin_password,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The password of the admin created on this first start, if any (print it once).
    pub fn first_admin_password(&self) -> Option<&str> {
        self.first_admin_password.as_deref()
    }

    /// Cancel it to stop the server and its workers gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let app = crate::http::router(self.state.clone());
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
        // The workers saw the same cancellation; let them finish their current step (and release
        // their leases) before the pools close under them.
        self.workers.close();
        if tokio::time::timeout(std::time::Duration::from_secs(10), self.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!("background workers did not stop within 10 s");
        }
        self.state.store.close().await;
        Ok(())
    }
}

async fn refresh_channels(channels: ChannelRegistry, shutdown: CancellationToken) {
    // Another instance may have changed a channel; this instance's cache catches up within seconds.
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = channels.reload().await {
            tracing::warn!(error = %e, "cannot refresh channels");
        }
    }
}
