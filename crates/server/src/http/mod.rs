//! The HTTP surface: one module per resource, each with its handlers and its `routes()`, and the
//! router that composes them with the layers every response gets.
//!
//! - `webhook`: Meta's webhook (handshake and POST);
//! - `auth`: who is calling (sessions, CSRF, API tokens), login and logout;
//! - `people`: users, presence, passwords, queue members, the supervisor's overview;
//! - `desk`: conversations worked by people (assign, transfer, finalize, notes, form) and the
//!   desk's catalogs (dispositions, custom fields, canned responses);
//! - `messages` and `media`: sending, reading, uploading and serving files;
//! - `flows`: bot flows, queues, protocol lookup;
//! - `admin`: channels, dead letters, API tokens;
//! - `broadcasts`: broadcasts (audience, actions, report, export) and contacts' consent;
//! - `ui`: the embedded web app; `headers`: security headers on every response.
//!
//! **Architecture Invariant:** handlers depend on `crate::state`, never on `crate::app`.

pub mod admin;
pub mod auth;
pub mod broadcasts;
pub mod desk;
pub mod flows;
pub mod headers;
pub mod media;
pub mod messages;
pub mod people;
pub mod permissions;
pub mod schedules;
pub mod templates;
pub mod ui;
pub mod webhook;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let webhooks = Router::new()
        .route(
            "/webhooks/whatsapp",
            get(webhook::verify).post(webhook::receive),
        )
        .layer(DefaultBodyLimit::max(state.config.webhook_max_body));
    let api = Router::new()
        .merge(auth::routes())
        .merge(people::routes())
        .merge(desk::routes())
        .merge(messages::routes())
        .merge(broadcasts::routes())
        .merge(admin::routes())
        .merge(templates::routes())
        .merge(permissions::routes())
        .merge(flows::routes())
        .merge(crate::hsm::api::routes())
        .merge(schedules::routes())
        .merge(crate::live::ws::routes());
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
        headers::security_headers,
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
