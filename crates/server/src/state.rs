//! What every handler and socket shares: the application's state, built once by `app`.
//! Kept apart from `app` (which builds it and needs every handler for the router) so that the
//! handlers depend on this small module and not on the wiring.

use std::ops::Deref;
use std::sync::Arc;

use store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use whatsapp::graph::GraphClient;

use crate::channels::ChannelRegistry;
use crate::config::Config;
use crate::live::Live;
use crate::media_files::MediaFiles;
use crate::workers::inbox::InboxWriter;
use crate::workers::outbound::Outbound;

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
    pub feed: crate::live::ws::EventFeed,
    pub viewers: crate::live::ws::Viewers,
    pub sockets: crate::workers::routing::Sockets,
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
pub struct AppState(pub(crate) Arc<AppContext>);

impl Deref for AppState {
    type Target = AppContext;
    fn deref(&self) -> &AppContext {
        &self.0
    }
}
