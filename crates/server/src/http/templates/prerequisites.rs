//! A channel's prerequisites for templates, checked against Meta and explained in pt-BR: the
//! token is valid and has `whatsapp_business_management` (and `whatsapp_business_messaging`) for
//! the WABA (`GET /debug_token`), the WABA answers (`GET /{WABA-ID}`), the app is subscribed to
//! the WABA's webhooks (`GET /{WABA-ID}/subscribed_apps`, fixed by `POST`), and the number's
//! messaging limit tier and quality rating (`GET /{Phone-Number-ID}?fields=...`), which are
//! stored on the channel (the broadcasts read the limit from there).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::permissions::Permission;
use serde::Serialize;
use serde_json::{Value, json};
use store::auth::Role;
use store::templates::AccountCheck;
use whatsapp::errors::GraphError;
use whatsapp::graph::management::{MANAGEMENT_SCOPE, MESSAGING_SCOPE, tier_limit};

use super::view::meta_api_error;
use crate::access::require_permission;
use crate::channels::Channel;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::state::AppState;

/// One line of the check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub key: &'static str,
    pub ok: bool,
    pub message_pt: String,
    /// The step that fixes it (`None` when it is fine).
    pub fix_pt: Option<String>,
}

fn ok(key: &'static str, message: String) -> Check {
    Check {
        key,
        ok: true,
        message_pt: message,
        fix_pt: None,
    }
}

fn missing(key: &'static str, message: String, fix: String) -> Check {
    Check {
        key,
        ok: false,
        message_pt: message,
        fix_pt: Some(fix),
    }
}

/// Meta's words after ours, so the admin can search for them.
fn because(e: &GraphError) -> String {
    match e {
        GraphError::Api { code, message, .. } => {
            format!("{} (Meta: erro {code}, «{message}»)", e.explain_pt_br())
        }
        _ => e.explain_pt_br(),
    }
}

fn token_fix() -> String {
    "No Gerenciador de Negócios da Meta, em Usuários do sistema, gere um token para o aplicativo \
     marcando as permissões whatsapp_business_management e whatsapp_business_messaging para esta \
     conta do WhatsApp Business, e salve-o no canal (Administração › Canais › Token de acesso)."
        .to_owned()
}

/// Runs every check, stores the outcome on the channel and returns the answer of the endpoint.
pub async fn run_checks(app: &AppState, channel: &Arc<Channel>) -> ApiResult<Value> {
    let creds = channel.creds();
    let waba = &channel.waba_id;
    let mut checks = Vec::new();
    let stored = app.store.channel_account(channel.id).await?;
    let mut app_id = stored
        .as_ref()
        .and_then(|a| a.app_id.clone())
        .filter(|a| !a.is_empty());
    let mut learned_app_id = None;

    match app.graph.debug_token(&creds).await {
        Ok(info) if info.is_valid => {
            checks.push(ok("token", "O token de acesso é válido.".into()));
            checks.push(if info.scope_covers(MANAGEMENT_SCOPE, waba) {
                ok(
                    "management_scope",
                    "O token tem a permissão whatsapp_business_management para esta conta.".into(),
                )
            } else {
                missing(
                    "management_scope",
                    "O token não tem a permissão whatsapp_business_management para esta conta: sem ela não é possível criar, editar nem sincronizar templates.".into(),
                    token_fix(),
                )
            });
            checks.push(if info.scope_covers(MESSAGING_SCOPE, waba) {
                ok(
                    "messaging_scope",
                    "O token tem a permissão whatsapp_business_messaging para esta conta.".into(),
                )
            } else {
                missing(
                    "messaging_scope",
                    "O token não tem a permissão whatsapp_business_messaging: sem ela não é possível enviar mensagens.".into(),
                    token_fix(),
                )
            });
            if app_id.is_none()
                && let Some(id) = info.app_id.filter(|a| !a.is_empty())
            {
                learned_app_id = Some(id.clone());
                app_id = Some(id);
            }
        }
        Ok(_) => checks.push(missing(
            "token",
            "O token de acesso do canal não é válido ou expirou.".into(),
            token_fix(),
        )),
        Err(e) => checks.push(missing(
            "token",
            format!("Não foi possível verificar o token: {}.", because(&e)),
            token_fix(),
        )),
    }

    match app.graph.waba(&creds, waba).await {
        Ok(v) => {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("sem nome");
            checks.push(ok(
                "waba",
                format!("A conta do WhatsApp Business {waba} responde ({name})."),
            ));
        }
        Err(e) => checks.push(missing(
            "waba",
            format!("A conta do WhatsApp Business {waba} não respondeu: {}.", because(&e)),
            "Confira o ID da conta do WhatsApp Business (WABA) no canal — no Gerenciador do WhatsApp, \
             em Configurações da conta — e se o token tem acesso a ela."
                .into(),
        )),
    }

    match app.graph.subscribed_apps(&creds, waba).await {
        Ok(apps) => {
            let subscribed = match &app_id {
                Some(id) => apps.iter().any(|a| a.id == *id),
                None => !apps.is_empty(),
            };
            checks.push(if subscribed {
                ok(
                    "app_subscribed",
                    "O aplicativo está inscrito nos webhooks desta conta.".into(),
                )
            } else {
                missing(
                    "app_subscribed",
                    "O aplicativo não está inscrito nos webhooks desta conta: o Atende não recebe as mensagens dos clientes nem as atualizações dos templates.".into(),
                    format!(
                        "Clique em «Inscrever aplicativo» (POST /api/channels/{}/subscribe), que chama POST /{waba}/subscribed_apps com o token do canal.",
                        channel.id
                    ),
                )
            });
        }
        Err(e) => checks.push(missing(
            "app_subscribed",
            format!(
                "Não foi possível ler as inscrições da conta: {}.",
                because(&e)
            ),
            token_fix(),
        )),
    }

    let mut tier = None;
    let mut quality = None;
    match app.graph.phone_health(&creds).await {
        Ok(h) => {
            tier = h.messaging_limit_tier.clone();
            quality = h.quality_rating.clone();
            checks.push(match tier.as_deref() {
                Some(t) => ok(
                    "messaging_limit",
                    match tier_limit(t) {
                        Some(n) => format!(
                            "Limite de mensagens: {n} clientes únicos a cada 24 horas ({t})."
                        ),
                        None => format!("Limite de mensagens: ilimitado ({t})."),
                    },
                ),
                None => missing(
                    "messaging_limit",
                    "A Meta não informou o limite de mensagens do número.".into(),
                    "Confira o número no Gerenciador do WhatsApp (Visão geral › Limites).".into(),
                ),
            });
            checks.push(match quality.as_deref() {
                Some("RED") => missing(
                    "quality_rating",
                    "A qualidade do número está baixa (vermelha): a Meta pode reduzir o limite e pausar templates.".into(),
                    "Reduza os envios de marketing, revise os templates com muitos bloqueios ou denúncias e acompanhe a qualidade no Gerenciador do WhatsApp antes de novos disparos.".into(),
                ),
                Some("YELLOW") => ok(
                    "quality_rating",
                    "A qualidade do número está média (amarela): acompanhe antes de grandes disparos.".into(),
                ),
                Some(q) => ok("quality_rating", format!("Qualidade do número: {q}.")),
                None => ok(
                    "quality_rating",
                    "A Meta ainda não avaliou a qualidade do número.".into(),
                ),
            });
        }
        Err(e) => checks.push(missing(
            "phone_number",
            format!("O número não respondeu: {}.", because(&e)),
            "Confira o ID do número de telefone (Phone Number ID) no canal e se o token tem acesso a ele.".into(),
        )),
    }

    checks.push(match &app_id {
        Some(id) => ok(
            "app_id",
            format!("Aplicativo da Meta: {id} (usado para enviar exemplos de mídia)."),
        ),
        None => missing(
            "app_id",
            "O ID do aplicativo da Meta não é conhecido: sem ele não é possível enviar o exemplo de um cabeçalho de mídia.".into(),
            format!(
                "Informe o app_id no canal (PATCH /api/channels/{} com {{\"app_id\": \"...\"}}); ele aparece no painel de desenvolvedores da Meta.",
                channel.id
            ),
        ),
    });

    let all_ok = checks.iter().all(|c| c.ok);
    let checked_at = store::now_ms();
    let summary = json!({ "ok": all_ok, "checks": checks, "checked_at": checked_at });
    app.store
        .record_account_check(
            channel.id,
            &AccountCheck {
                app_id: learned_app_id,
                messaging_limit_tier: tier.clone(),
                messaging_limit: tier.as_deref().and_then(tier_limit),
                quality_rating: quality.clone(),
                prerequisites: summary.to_string(),
            },
        )
        .await?;
    let account = app
        .store
        .channel_account(channel.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json!({
        "channel_id": channel.id,
        "ok": all_ok,
        "checks": checks,
        "tier": account.messaging_limit_tier,
        "messaging_limit": account.messaging_limit,
        "messaging_limit_manual": account.messaging_limit_manual,
        "quality": account.quality_rating,
        "app_id": account.app_id,
        "checked_at": checked_at,
    }))
}

async fn channel_for_check(app: &AppState, who: &Principal, id: i64) -> ApiResult<Arc<Channel>> {
    who.require(&[Role::Admin, Role::Supervisor, Role::Agent])?;
    require_permission(app, who, Permission::ManageTemplates).await?;
    app.channels.by_id(id).ok_or(ApiError::NotFound)
}

/// `GET /api/channels/{id}/prerequisites` (manage_templates): runs the checks now.
/// `{channel_id, ok, checks:[{key, ok, message_pt, fix_pt}], tier, messaging_limit,
/// messaging_limit_manual, quality, app_id, checked_at}`.
pub async fn check(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let channel = channel_for_check(&app, &who, id).await?;
    Ok(Json(run_checks(&app, &channel).await?))
}

/// `POST /api/channels/{id}/subscribe` (manage_templates): subscribes the app to the WABA's
/// webhooks (`POST /{WABA-ID}/subscribed_apps`), then answers the checks as the GET does.
pub async fn subscribe(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let channel = channel_for_check(&app, &who, id).await?;
    app.graph
        .subscribe_app(&channel.creds(), &channel.waba_id)
        .await
        .map_err(|e| meta_api_error(&e))?;
    tracing::info!(channel_id = channel.id, waba_id = %channel.waba_id, "app subscribed to the WABA");
    Ok(Json(run_checks(&app, &channel).await?))
}

/// What `PATCH /api/channels/{id}` may set of the account: `app_id` (the Meta app, for media
/// uploads; `null` or `""` clears it) and `messaging_limit` (unique customers per 24 h fixed by
/// an admin; `null` goes back to what the tier Meta reports allows).
#[derive(Debug, Default, serde::Deserialize)]
pub struct AccountPatch {
    #[serde(default, deserialize_with = "double_option")]
    pub app_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub messaging_limit: Option<Option<i64>>,
}

/// Absent → `None`, `null` → `Some(None)`, a value → `Some(Some(v))`.
fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Ok(Some(Option::<T>::deserialize(d)?))
}

use serde::Deserialize as _;

/// Applies an [`AccountPatch`] (validated first) and returns the account's fields for the
/// channel's view.
pub async fn apply_account_patch(app: &AppState, id: i64, p: &AccountPatch) -> ApiResult<Value> {
    let app_id = match &p.app_id {
        Some(Some(a)) if !a.trim().is_empty() => {
            let a = a.trim();
            if !a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad_request(
                    "app_id deve conter só os dígitos do ID do aplicativo da Meta",
                ));
            }
            Some(Some(a))
        }
        Some(_) => Some(None),
        None => None,
    };
    let limit = match p.messaging_limit {
        Some(Some(n)) if n < 1 => {
            return Err(ApiError::bad_request(
                "messaging_limit deve ser um número positivo de clientes por 24 horas",
            ));
        }
        Some(Some(n)) => Some(store::templates::MessagingLimit::Manual(n)),
        Some(None) => {
            let tier = app
                .store
                .channel_account(id)
                .await?
                .ok_or(ApiError::NotFound)?
                .messaging_limit_tier;
            Some(store::templates::MessagingLimit::FromTier(
                tier.as_deref().and_then(tier_limit),
            ))
        }
        None => None,
    };
    app.store.set_channel_account(id, app_id, limit).await?;
    account_fields(app, id).await
}

/// The account's fields as the channel's view shows them.
pub async fn account_fields(app: &AppState, id: i64) -> ApiResult<Value> {
    let a = app
        .store
        .channel_account(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json!({
        "app_id": a.app_id,
        "messaging_limit_tier": a.messaging_limit_tier,
        "messaging_limit": a.messaging_limit,
        "messaging_limit_manual": a.messaging_limit_manual,
        "quality_rating": a.quality_rating,
        "prerequisites_checked_at": a.prerequisites_checked_at,
    }))
}

/// Adds the account's fields to a channel's view.
pub fn add_account_fields(view: &mut Value, account: Value) {
    if let (Some(v), Value::Object(a)) = (view.as_object_mut(), account) {
        v.extend(a);
    }
}
