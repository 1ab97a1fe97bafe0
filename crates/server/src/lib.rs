//! The `atende` server: the WhatsApp webhook and inbox processor, the JSON API, authentication,
//! background workers and the operator CLI. It wires `store` (persistence), `domain` (rules) and
//! `whatsapp` (Meta's wire format and Graph client) together; HTTP lives here and nowhere else.

pub mod access;
pub mod app;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod group_commit;
pub mod hsm;
pub mod http;
pub mod live;
pub mod media_files;
pub mod passwords;
pub mod secrets;
pub mod state;
pub mod workers;
