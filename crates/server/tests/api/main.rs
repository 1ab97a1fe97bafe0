//! API tests: each spawns Atende on a random port with a fresh database (SQLite file or a new
//! PostgreSQL database) and a graph-sim standing in for Meta, and drives it over real HTTP.

mod helpers;
mod samples;

mod bot;
mod broadcasts;
mod browser;
mod browser_templates;
mod desk;
mod hsm_send;
mod live;
mod outbound;
mod permissions;
mod processes;
mod reply_routing;
mod schedules;
mod security_access;
mod security_auth;
mod security_media;
mod security_tokens;
mod templates;
mod webhook;

mod cli;
mod crash;
