//! The `atende` server: the WhatsApp webhook and inbox processor, the JSON API, authentication,
//! background workers and the operator CLI. It wires `store` (persistence), `domain` (rules) and
//! `whatsapp` (Meta's wire format and Graph client) together; HTTP lives here and nowhere else.

pub mod api;
pub mod app;
pub mod auth;
pub mod bot;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod desk;
pub mod desk_api;
pub mod error;
pub mod flows_api;
pub mod group_commit;
pub mod headers;
pub mod inbox;
pub mod live;
pub mod media_files;
pub mod media_http;
pub mod media_worker;
pub mod messages;
pub mod outbound;
pub mod passwords;
pub mod people_api;
pub mod secrets;
pub mod ui;
pub mod webhook;
pub mod ws;
