//! Everything Atende knows about Meta's WhatsApp Cloud API, and nothing else: the
//! webhook wire types and their tolerant parsing ([`webhook`]), the
//! `X-Hub-Signature-256` check ([`signature`]), outbound message bodies and their limits
//! ([`send`]), the Graph API HTTP client ([`graph`]), and the classification of Graph
//! error codes into retry decisions and agent-facing explanations ([`errors`]). It holds
//! no database and serves no HTTP: the server crate does both on top of these pieces.

pub mod errors;
pub mod graph;
mod lenient;
pub mod media;
pub mod send;
pub mod signature;
pub mod webhook;

pub use errors::{Disposition, GraphError};
pub use graph::{ChannelCreds, GraphClient};
pub use send::{OutboundContent, OutboundMessage};
