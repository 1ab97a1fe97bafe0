//! The demo without Meta: when no real channel is configured, a simulated WhatsApp number
//! ("Simulador") served by graph-sim inside this very process, under `/sim`. Atende talks to it
//! over HTTP exactly as it talks to Meta, and it posts signed webhooks back, so the whole product
//! can be tried (and is exercised) without credentials.

use graph_sim::{GraphSim, PhoneNumber, SimConfig};

use crate::channels::{ChannelInput, ChannelRegistry};

pub const SIM_PHONE_NUMBER_ID: &str = "100000000000001";
pub const SIM_DISPLAY_NUMBER: &str = "5511999990000";
pub const SIM_WABA_ID: &str = "100000000000009";

/// Whether the simulated channel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DemoMode {
    /// Only while no real channel is configured.
    Auto,
    On,
    Off,
}

/// Creates (first run) or refreshes the simulator channel and returns the simulator to mount.
pub async fn start(
    channels: &ChannelRegistry,
    store: &store::Store,
    port: u16,
) -> anyhow::Result<GraphSim> {
    let base_url = format!("http://127.0.0.1:{port}/sim/v23.0");
    let channel = match channels.by_phone_number_id(SIM_PHONE_NUMBER_ID) {
        Some(existing) => {
            let update = store::channels::ChannelUpdate {
                graph_base_url: Some(base_url.clone()),
                enabled: Some(true),
                ..Default::default()
            };
            store.update_channel(existing.id, &update).await?;
            existing
        }
        None => {
            let input = ChannelInput {
                name: "Simulador".into(),
                phone_number_id: SIM_PHONE_NUMBER_ID.into(),
                waba_id: SIM_WABA_ID.into(),
                display_phone_number: Some(SIM_DISPLAY_NUMBER.into()),
                access_token: crate::passwords::random_token(),
                app_secret: crate::passwords::random_token(),
                verify_token: crate::passwords::random_token(),
                graph_base_url: Some(base_url.clone()),
                rate_limit_per_sec: Some(80),
                mark_read: Some(true),
            };
            store
                .create_channel(&input.into_new_channel(channels.secrets(), true)?)
                .await?;
            channels.reload().await?;
            channels
                .by_phone_number_id(SIM_PHONE_NUMBER_ID)
                .ok_or_else(|| anyhow::anyhow!("the simulator channel was not created"))?
        }
    };
    channels.reload().await?;
    let mut cfg = SimConfig::new(
        channel.app_secret.clone(),
        channel.access_token.clone(),
        SIM_PHONE_NUMBER_ID,
    );
    cfg.phone_numbers = vec![PhoneNumber::new(
        SIM_PHONE_NUMBER_ID,
        SIM_DISPLAY_NUMBER,
        SIM_WABA_ID,
    )];
    cfg.webhook_url = Some(format!("http://127.0.0.1:{port}/webhooks/whatsapp"));
    let sim = GraphSim::new(cfg)?;
    sim.set_base_url(base_url);
    Ok(sim)
}
