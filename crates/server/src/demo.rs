//! The demo without Meta: when no real channel is configured, a simulated WhatsApp number
//! ("Simulador") served by graph-sim inside this very process, under `/sim`. Atende talks to it
//! over HTTP exactly as it talks to Meta, and it posts signed webhooks back, so the whole product
//! can be tried (and is exercised) without credentials.
//!
//! The simulator's Graph API part (`/sim/v23.0/...`) answers only with the simulated channel's
//! access token, as Meta does. Its control API (`/sim/_sim/...`, the customer's side) is guarded
//! here ([`guard`]): an admin session (CSRF on writes, JSON bodies only), a short allow-list of
//! what the phone page needs (never the webhook URL, faults or reset), and nothing at all once a
//! real channel exists in `auto` mode.

use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

use graph_sim::{AutoReview, GraphSim, PhoneNumber, RestoredTemplate, SimConfig};
use store::auth::Role;

use crate::channels::{ChannelInput, ChannelRegistry};
use crate::error::ApiError;
use crate::http::auth::Principal;
use crate::state::AppState;

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
    // Meta reviews a new template in minutes; the simulator approves it after a few seconds (and
    // says so with the signed webhook), so the whole template journey can be tried.
    sim.set_template_review(Some(AutoReview::approve_after(DEMO_REVIEW_TIME)));
    store
        .set_channel_account(channel.id, Some(Some(sim.app_id())), None)
        .await?;
    restore_templates(&sim, store).await?;
    Ok(sim)
}

const DEMO_REVIEW_TIME: Duration = Duration::from_secs(5);

/// The simulator keeps nothing on disk: what Atende stored of the simulated WABA is put back
/// (same ids, same states), so the periodic sync does not see the templates as deleted at "Meta".
/// On the first run, two pt-BR templates are there already approved, ready to send.
async fn restore_templates(sim: &GraphSim, store: &store::Store) -> anyhow::Result<()> {
    let stored = store
        .templates_of_waba(SIM_WABA_ID, &store::templates::TemplateFilter::default())
        .await?;
    let mut restored = 0;
    for t in stored {
        let Some(id) = t.meta_id.clone() else {
            continue;
        };
        sim.restore_template(RestoredTemplate {
            id,
            waba_id: t.waba_id,
            name: t.name,
            language: t.language,
            category: t.category,
            status: t.status,
            components: serde_json::from_str(&t.components)?,
            parameter_format: t.parameter_format,
        });
        restored += 1;
    }
    if restored == 0 {
        for (name, components) in demo_templates() {
            sim.add_template(
                SIM_WABA_ID,
                name,
                "pt_BR",
                "UTILITY",
                "APPROVED",
                components,
            );
        }
    }
    Ok(())
}

fn demo_templates() -> [(&'static str, serde_json::Value); 2] {
    [
        (
            "retorno_atendimento",
            serde_json::json!([
                {"type": "BODY",
                 "text": "Olá, {{1}}! Aqui é {{2}}, sobre o seu atendimento de protocolo {{3}}. Podemos continuar a conversa por aqui?",
                 "example": {"body_text": [["Ana", "Carla", "20261202000123"]]}},
                {"type": "FOOTER", "text": "Atende, demonstração"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Falar com atendente"},
                    {"type": "QUICK_REPLY", "text": "Não, obrigado"}]}
            ]),
        ),
        (
            "lembrete_pagamento",
            serde_json::json!([
                {"type": "HEADER", "format": "TEXT", "text": "Lembrete de pagamento"},
                {"type": "BODY",
                 "text": "Olá, {{1}}. Sua fatura de {{2}} vence em {{3}}. Se já pagou, desconsidere esta mensagem.",
                 "example": {"body_text": [["Ana", "R$ 120,00", "10/12"]]}},
                {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Já paguei"},
                    {"type": "QUICK_REPLY", "text": "Falar com atendente"}]}
            ]),
        ),
    ]
}

/// The control endpoints the simulator page uses; every other `/_sim` path is a 404 here.
const ALLOWED_CONTROL: &[(Method, &str)] = &[
    (Method::GET, "/_sim/config"),
    (Method::GET, "/_sim/sent"),
    (Method::GET, "/_sim/mark_read"),
    (Method::POST, "/_sim/customer/send"),
];

/// Whether the simulator is still served: in `auto` mode it goes away as soon as a real channel
/// is enabled, without waiting for a restart.
pub fn simulator_active(app: &AppState) -> bool {
    app.simulator.is_some()
        && (app.config.demo == DemoMode::On
            || !app
                .channels
                .all()
                .iter()
                .any(|c| !c.is_simulator && c.enabled))
}

/// Whether the request's bearer token is the simulator channel's (the only token graph-sim
/// accepts in the demo).
fn carries_sim_token(app: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let expected = app
        .channels
        .by_phone_number_id(SIM_PHONE_NUMBER_ID)
        .map(|c| c.access_token.clone());
    match (given, expected) {
        (Some(given), Some(expected)) => {
            crate::http::webhook::constant_time_eq(given.as_bytes(), expected.as_bytes())
        }
        _ => false,
    }
}

/// Middleware on everything under `/sim`.
pub async fn guard(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if !simulator_active(&app) {
        return ApiError::NotFound.into_response();
    }
    // The path the simulator's router will route on (the `/sim` prefix stripped). It routes
    // `//_sim/x` as `/_sim/x`, so an empty segment anywhere is refused rather than normalised.
    let path = request.uri().path().to_owned();
    let original = request
        .extensions()
        .get::<OriginalUri>()
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    if path.contains("//") || original.contains("//") {
        return ApiError::NotFound.into_response();
    }
    let path = path.strip_prefix("/sim").unwrap_or(&path);
    let is_control = path
        .split('/')
        .find(|s| !s.is_empty())
        .is_some_and(|first| first.eq_ignore_ascii_case("_sim"));
    if !is_control {
        // The Graph API side: graph-sim checks the channel's access token itself, but only after
        // reading a body of up to 100 MB; a stranger is turned away before that.
        if !carries_sim_token(&app, request.headers()) {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": {
                    "message": "Invalid OAuth access token - Cannot parse access token",
                    "type": "OAuthException", "code": 190}})),
            )
                .into_response();
        }
        return next.run(request).await;
    }
    if !ALLOWED_CONTROL
        .iter()
        .any(|(m, p)| m == request.method() && *p == path)
    {
        return ApiError::NotFound.into_response();
    }
    let (mut parts, body) = request.into_parts();
    // A session cookie needs the CSRF header on writes; the extractor checks both.
    let who = match Principal::from_request_parts(&mut parts, &app).await {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = who.require(&[Role::Admin]) {
        return e.into_response();
    }
    if parts.method == Method::POST && !is_json(&parts.headers) {
        return ApiError::Unsupported(
            "unsupported_media_type",
            "the body must be application/json".into(),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}
