//! Runs the fake Graph API next to a real Atende: point Atende's Graph base
//! URL at the printed address and its webhook secret at `--app-secret`.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use graph_sim::{AutoReview, AutoStatuses, GraphSim, PhoneNumber, SimConfig};

#[derive(Parser, Debug)]
#[command(
    name = "graph-sim",
    about = "A fake Meta WhatsApp Cloud API (Graph API) server"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "GRAPH_SIM_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 = any free port).
    #[arg(long, env = "GRAPH_SIM_PORT", default_value_t = 8089)]
    port: u16,
    /// App secret used to sign webhooks (X-Hub-Signature-256).
    #[arg(long, env = "GRAPH_SIM_APP_SECRET", default_value = "sim-app-secret")]
    app_secret: String,
    /// Accepted access token (repeat for several).
    #[arg(long = "token", env = "GRAPH_SIM_TOKEN", default_value = "sim-token")]
    tokens: Vec<String>,
    /// Business phone number id.
    #[arg(
        long,
        env = "GRAPH_SIM_PHONE_NUMBER_ID",
        default_value = "100000000000001"
    )]
    phone_number_id: String,
    /// Display phone number of that id.
    #[arg(long, default_value = "5511900000000")]
    display_phone_number: String,
    /// WABA id (default "WABA-<phone number id>").
    #[arg(long)]
    waba_id: Option<String>,
    /// Atende's webhook URL, e.g. http://127.0.0.1:8080/webhooks/whatsapp.
    #[arg(long, env = "GRAPH_SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Do not send automatic sent/delivered/read statuses.
    #[arg(long)]
    no_statuses: bool,
    /// Validity of media download URLs, in seconds.
    #[arg(long, default_value_t = 300)]
    media_url_ttl_secs: u64,
    /// Pause before each automatic status webhook, in milliseconds.
    #[arg(long, default_value_t = 10)]
    status_delay_ms: u64,
    /// Answer 429/130429 beyond this many sends per second per number.
    #[arg(long)]
    throughput_limit: Option<u32>,
    /// Meta app id (`POST /{app-id}/uploads`).
    #[arg(long, default_value = graph_sim::DEFAULT_APP_ID)]
    app_id: String,
    /// Approve templates waiting for review after this many milliseconds (with the webhook);
    /// without it they stay PENDING until the control API decides.
    #[arg(long)]
    auto_approve_ms: Option<u64>,
    /// Enforce Meta's template send checks (132000, 132001, 132012, 132015...).
    #[arg(long)]
    enforce_templates: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();

    let mut cfg = SimConfig::new(&args.app_secret, "", &args.phone_number_id);
    cfg.access_tokens = args.tokens.clone();
    cfg.webhook_url = args.webhook_url.clone();
    cfg.media_url_ttl = Duration::from_secs(args.media_url_ttl_secs);
    cfg.app_id = args.app_id.clone();
    cfg.phone_numbers = vec![PhoneNumber::new(
        &args.phone_number_id,
        &args.display_phone_number,
        args.waba_id
            .clone()
            .unwrap_or_else(|| format!("WABA-{}", args.phone_number_id)),
    )];
    if args.no_statuses {
        cfg.auto_statuses = AutoStatuses::NONE;
    }

    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let sim = GraphSim::serve(cfg, listener).await?;
    sim.set_status_delay(Duration::from_millis(args.status_delay_ms));
    sim.set_throughput_limit(args.throughput_limit);
    sim.set_enforce_templates(args.enforce_templates);
    if let Some(ms) = args.auto_approve_ms {
        sim.set_template_review(Some(AutoReview::approve_after(Duration::from_millis(ms))));
    }

    tracing::info!(
        base_url = %sim.base_url(),
        phone_number_id = %args.phone_number_id,
        webhook_url = ?args.webhook_url,
        "graph-sim listening; control API under /_sim"
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    Ok(())
}
