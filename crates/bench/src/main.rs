//! Atende's load scenarios. Each scenario starts the server on a throwaway database (in-process,
//! or the real `atende serve` binary as a child process for `desk` and `broadcast`), drives load
//! against it over real HTTP and prints ONE JSON object on stdout; progress goes to stderr. Run
//! with `cargo run --release -p bench -- <scenario> [options]`.
//!
//! Layout: one module per scenario (`ingest`, `outbound`, `bot`, `desk`, `broadcast`), sharing
//! `harness` (server + database lifecycle, the `atende serve` child process), `load` (the
//! closed-loop HTTP load generator), `procstat` (a process's RSS and CPU from `/proc`) and
//! `report` (percentiles, machine description, JSON shapes).

mod bot;
mod broadcast;
mod desk;
mod harness;
mod ingest;
mod load;
mod outbound;
mod procstat;
mod report;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Atende load scenarios; each prints one JSON object on stdout"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Durable webhook ingest (POST /webhooks/whatsapp) against the no-op reference (POST /noop).
    Ingest(ingest::IngestArgs),
    /// Sending under per-number rate limits (80 and 1,000 msg/s) through graph-sim.
    Outbound(outbound::OutboundArgs),
    /// The chatbot: customers walk the demo flow to the hand-off; webhook-to-reply latency.
    Bot(bot::BotArgs),
    /// The agent desk: agents on WebSockets, open conversations, inbound messages;
    /// webhook-to-WebSocket latency, server RSS and CPU.
    Desk(desk::DeskArgs),
    /// A broadcast (100,000 recipients at 1,000 msg/s) while agents' conversations go on:
    /// audience acceptance, achieved rate, agents' send latency, server RSS and CPU.
    Broadcast(broadcast::BroadcastArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The server's own logs (warnings and errors only by default) go to stderr with ours.
    let filter = std::env::var("ATENDE_LOG").unwrap_or_else(|_| "warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("server")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.scenario {
            Scenario::Ingest(args) => ingest::run(args).await,
            Scenario::Outbound(args) => outbound::run(args).await,
            Scenario::Bot(args) => bot::run(args).await,
            Scenario::Desk(args) => desk::run(args).await,
            Scenario::Broadcast(args) => broadcast::run(args).await,
        }
    });
    match result {
        Ok(text) => {
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
