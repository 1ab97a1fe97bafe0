//! Building and running the server: state shared by handlers, the router, background workers.

use std::ops::Deref;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post, put};
use store::Store;
use store::auth::{NewUser, Role};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;

use crate::channels::ChannelRegistry;
use crate::config::Config;
use crate::demo::DemoMode;
use crate::inbox::{InboxProcessor, InboxWriter};
use crate::live::Live;
use crate::media_files::MediaFiles;
use crate::media_worker::MediaDownloader;
use crate::outbound::{Outbound, SenderWorker};
use crate::secrets::SecretBox;
use crate::{api, auth, desk_api, flows_api, messages, passwords, people_api, ui, webhook, ws};
use whatsapp::graph::GraphClient;

pub struct AppContext {
    pub config: Config,
    pub store: Store,
    pub channels: ChannelRegistry,
    pub inbox: InboxWriter,
    pub inbox_wake: Arc<Notify>,
    pub live: Live,
    pub instance_id: String,
    pub outbound: Outbound,
    pub graph: GraphClient,
    pub files: MediaFiles,
    pub media_wake: Arc<Notify>,
    /// The built-in WhatsApp simulator, when the demo runs.
    pub simulator: Option<graph_sim::GraphSim>,
    /// The event log fanned out to this instance's WebSockets.
    pub feed: crate::ws::EventFeed,
    pub viewers: crate::ws::Viewers,
    pub sockets: crate::desk::Sockets,
    /// Wakes the desk worker (routing) at once.
    pub desk_wake: Arc<Notify>,
    /// Cancelled at shutdown (long-lived WebSockets end with it).
    pub shutdown: CancellationToken,
}

impl AppContext {
    pub fn cookies_secure(&self) -> bool {
        self.config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// What every handler receives; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<AppContext>);

impl Deref for AppState {
    type Target = AppContext;
    fn deref(&self) -> &AppContext {
        &self.0
    }
}

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
        let processor = InboxProcessor {
            store: store.clone(),
            channels: channels.clone(),
            protocol: config.protocol.clone(),
            live: live.clone(),
            wake: inbox_wake.clone(),
            media_wake: media_wake.clone(),
            instance_id: instance_id.clone(),
            yield_to: (store.backend() == store::Backend::Sqlite).then(|| inbox.clone()),
        };
        workers.spawn(processor.run(shutdown.clone()));

        let graph = GraphClient::new(std::time::Duration::from_secs(config.graph_timeout_secs));
        let files = MediaFiles::open(config.media_store.as_deref(), &config.data_dir)?;
        let send_wake = Arc::new(Notify::new());
        let outbound = Outbound::new(store.clone(), live.clone(), send_wake.clone());
        let completions = crate::outbound::Completions::start(store.clone());
        let late_slots = crate::outbound::LateSlots::start(store.clone());
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
            };
            workers.spawn(worker.run(shutdown.clone()));
        }
        let downloader = MediaDownloader {
            store: store.clone(),
            channels: channels.clone(),
            graph: graph.clone(),
            files: files.clone(),
            live: live.clone(),
            wake: media_wake.clone(),
        };
        workers.spawn(downloader.run(shutdown.clone()));
        // The bot: seeded before the listener serves, so the first webhook already meets the flow.
        if config.seed_demo_flow {
            crate::bot::seed_demo_flow(&store)
                .await
                .context("cannot install the demo bot flow")?;
        }
        let bot = crate::bot::BotWorker::new(
            store.clone(),
            outbound.clone(),
            live.clone(),
            crate::bot::BotSettings::from_config(&config),
        );
        workers.spawn(bot.run(shutdown.clone()));
        workers.spawn(refresh_channels(channels.clone(), shutdown.clone()));
        let feed = crate::ws::EventFeed::new();
        let sockets = crate::desk::Sockets::default();
        let desk_wake = Arc::new(Notify::new());
        let tailer = crate::ws::EventTailer {
            store: store.clone(),
            live: live.clone(),
            feed: feed.clone(),
            desk_wake: desk_wake.clone(),
        };
        workers.spawn(tailer.start(shutdown.clone()));
        let desk = crate::desk::DeskWorker {
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
            viewers: crate::ws::Viewers::default(),
            sockets,
            desk_wake,
            shutdown: shutdown.clone(),
        }));
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
        let app = router(self.state.clone());
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

pub fn router(state: AppState) -> Router {
    let webhook_limit = state.config.webhook_max_body;
    let webhooks = Router::new()
        .route(
            "/webhooks/whatsapp",
            get(webhook::verify).post(webhook::receive),
        )
        .layer(DefaultBodyLimit::max(webhook_limit));
    let api = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/auth/password", post(people_api::change_password))
        .route("/ws", get(ws::connect))
        .route(
            "/users",
            get(people_api::list_users).post(people_api::create_user),
        )
        .route("/users/{id}", patch(people_api::update_user))
        .route("/agents", get(people_api::list_agents))
        .route(
            "/users/{id}/reset-password",
            post(people_api::reset_password),
        )
        .route("/users/{id}/presence", put(people_api::set_user_presence))
        .route("/presence", put(people_api::set_own_presence))
        .route(
            "/pause-reasons",
            get(people_api::get_pause_reasons).put(people_api::put_pause_reasons),
        )
        .route(
            "/queues/{id}/members",
            get(people_api::get_members).put(people_api::put_members),
        )
        .route("/supervisor/overview", get(people_api::overview))
        .route("/channels/{id}/test", post(people_api::test_channel))
        .route(
            "/conversations",
            get(desk_api::list_conversations).post(desk_api::start_conversation),
        )
        .route("/conversations/{id}", get(desk_api::get_conversation))
        .route("/conversations/{id}/assign", post(desk_api::assign))
        .route("/conversations/{id}/transfer", post(desk_api::transfer))
        .route(
            "/conversations/{id}/transfers",
            get(desk_api::list_transfers),
        )
        .route("/conversations/{id}/finalize", post(desk_api::finalize))
        .route(
            "/conversations/{id}/notes",
            get(desk_api::list_notes).post(desk_api::add_note),
        )
        .route(
            "/conversations/{id}/form",
            get(desk_api::get_form).patch(desk_api::patch_form),
        )
        .route(
            "/contacts/{id}/conversations",
            get(desk_api::contact_conversations),
        )
        .route(
            "/dispositions",
            get(desk_api::list_dispositions).post(desk_api::create_disposition),
        )
        .route("/dispositions/{id}", delete(desk_api::delete_disposition))
        .route(
            "/custom-fields",
            get(desk_api::list_custom_fields).post(desk_api::create_custom_field),
        )
        .route(
            "/custom-fields/{id}",
            patch(desk_api::update_custom_field).delete(desk_api::delete_custom_field),
        )
        .route(
            "/canned-responses",
            get(desk_api::list_canned).post(desk_api::create_canned),
        )
        .route(
            "/canned-responses/{id}",
            patch(desk_api::update_canned).delete(desk_api::delete_canned),
        )
        .route(
            "/conversations/{id}/messages",
            get(api::list_messages).post(messages::send),
        )
        .route("/conversations/{id}/read", post(messages::mark_read))
        .route(
            "/media",
            post(messages::upload).layer(DefaultBodyLimit::max(101 * 1024 * 1024)),
        )
        .route("/media/{id}", get(messages::download))
        .route("/media/{id}/retry", post(messages::retry_media))
        .route(
            "/channels",
            get(api::list_channels).post(api::create_channel),
        )
        .route("/channels/{id}", patch(api::update_channel))
        .route("/channels/{id}/disable", post(api::disable_channel))
        .route("/admin/dead-letters", get(api::dead_letters))
        .route("/admin/dead-letters/replay", post(api::replay_dead_letters))
        .route("/tokens", get(api::list_tokens).post(api::create_token))
        .route("/tokens/{id}", delete(api::revoke_token))
        .route(
            "/flows",
            get(flows_api::list_flows).post(flows_api::create_flow),
        )
        .route("/flows/validate", post(flows_api::validate_flow))
        .route(
            "/flows/{id}",
            get(flows_api::get_flow).put(flows_api::update_flow),
        )
        .route(
            "/queues",
            get(flows_api::list_queues).post(flows_api::create_queue),
        )
        .route("/queues/{id}", patch(flows_api::update_queue))
        .route("/protocols/{number}", get(flows_api::get_protocol));
    let simulator = state.simulator.as_ref().map(|sim| {
        sim.router().layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::demo::guard,
        ))
    });
    let mut app = Router::new()
        .merge(webhooks)
        .nest("/api", api)
        .route("/health", get(health))
        // The web app (static files embedded in the binary).
        .route("/", get(ui::root))
        .route("/app", get(ui::root))
        .route("/app/", get(ui::app_index))
        .route("/app/{*path}", get(ui::app_path))
        .route("/simulator", get(ui::simulator))
        // The load generator's reference: the same server and connection handling, no work.
        .route("/noop", post(noop));
    if let Some(sim) = simulator {
        app = app.nest_service("/sim", sim);
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::headers::security_headers,
    ))
    .layer(
        TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            // The path only: query strings can carry secrets (the webhook handshake's
            // `hub.verify_token`, media URL signatures).
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }),
    )
    .with_state(state)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn noop(_body: axum::body::Bytes) -> &'static str {
    "OK"
}
