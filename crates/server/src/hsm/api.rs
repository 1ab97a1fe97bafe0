//! The HTTP side of template sends:
//!
//! - `POST /api/conversations/{id}/messages` with `"type": "template"` (see
//!   [`send_in_conversation`], called by `http::messages::send`), allowed outside the 24 h window;
//! - `POST /api/messages`: starts (or continues) a conversation with a phone number or a known
//!   contact with a template ([`start`]);
//! - `GET /api/conversations/{id}/template_state`: the window and the channel's approved
//!   templates, so the composer switches to template mode by itself ([`template_state`]).
//!
//! Every send needs the permission `send_template`; agents reach only customers of their queues.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::permissions::Permission;
use domain::template::Values;
use serde::Deserialize;
use serde_json::{Value, json};
use store::auth::Role;
use store::conversations::ConversationSummary;
use store::templates::{TemplateFilter, TemplateRecord};

use super::{
    Recipient, ReplyRouteSpec, TemplateSend, TemplateSent, definition, send_template_full,
};
use crate::access::{Access, require_permission};
use crate::error::{ApiError, ApiResult};
use crate::http::admin::message_view;
use crate::http::auth::Principal;
use crate::state::AppState;

const STAFF: &[Role] = &[Role::Admin, Role::Supervisor, Role::Agent];

/// The template part of a send request: which template (`template_id`, or `name` and
/// `language` in the channel's account), its values (Meta's `components`, or Atende's
/// `variables`) and where the reply goes.
#[derive(Debug, Default, Deserialize)]
pub struct TemplateBody {
    pub template_id: Option<i64>,
    pub name: Option<String>,
    pub language: Option<String>,
    /// Meta's send-side components, sent as given.
    pub components: Option<Value>,
    /// `{"1": "Ana"}` or `{"header": {...}, "body": {...}, "buttons": {"0": "..."}}`.
    pub variables: Option<Value>,
    pub reply_route: Option<ReplyRouteBody>,
}

/// `{"target": "channel"}` (the default), `{"target": "queue", "queue_id": 3}`,
/// `{"target": "agent"}` (the sender; or `"agent_id"`, with `"fallback_queue_id"`),
/// `{"target": "bot"}` (the reply meets the bot; `"none"` is the same). The same vocabulary as a
/// broadcast's `reply_route`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum ReplyRouteBody {
    #[serde(alias = "channel_default")]
    Channel,
    Queue {
        queue_id: i64,
    },
    Agent {
        agent_id: Option<i64>,
        fallback_queue_id: Option<i64>,
    },
    #[serde(alias = "bot")]
    None,
}

/// `POST /api/conversations/{id}/messages` with `"type": "template"`: for whoever may work the
/// conversation (checked by the caller) and has `send_template`. Any time, window or not.
pub async fn send_in_conversation(
    app: &AppState,
    who: &Principal,
    conversation: &ConversationSummary,
    body: TemplateBody,
    idempotency_key: Option<String>,
) -> ApiResult<Response> {
    require_permission(app, who, Permission::SendTemplate).await?;
    let req = build_send(
        app,
        who,
        conversation.channel_id,
        Recipient::Conversation(conversation.id),
        body,
        idempotency_key,
    )
    .await?;
    answer(app, send_template_full(app, req, None).await?).await
}

#[derive(Debug, Deserialize)]
pub struct StartRequest {
    /// Default: the first enabled channel.
    pub channel_id: Option<i64>,
    /// A phone number, normalized (Brazilian rules: the ninth digit, DDD...).
    pub to: Option<String>,
    pub contact_id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: String,
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub template: TemplateBody,
}

/// `POST /api/messages`: a template to a phone number (`to`) or a known contact (`contact_id`).
/// Goes into the customer's open conversation when the caller may work it (or it still awaits
/// a reply to a template), else opens one (`awaiting_reply`, in the sender's or the reply
/// route's queue). Staff with `send_template`; agents and supervisors only for customers of
/// their queues (a new number is theirs). 201 with `{message, conversation}`.
pub async fn start(
    State(app): State<AppState>,
    who: Principal,
    Json(req): Json<StartRequest>,
) -> ApiResult<Response> {
    who.require(STAFF)?;
    require_permission(&app, &who, Permission::SendTemplate).await?;
    if req.kind != "template" {
        return Err(ApiError::bad_request(
            "only a template (\"type\": \"template\") can start a conversation; inside the window, send to /api/conversations/{id}/messages",
        ));
    }
    let channel = match req.channel_id {
        Some(id) => app.channels.by_id(id),
        None => app.channels.all().into_iter().find(|c| c.enabled),
    }
    .filter(|c| c.enabled)
    .ok_or_else(|| ApiError::bad_request("no enabled channel to send on"))?;
    let contact = match (&req.contact_id, &req.to) {
        (Some(id), _) => {
            let c = app
                .store
                .contact_brief(*id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if c.channel_id != channel.id {
                return Err(ApiError::bad_request(
                    "the contact belongs to another channel",
                ));
            }
            Some(c)
        }
        (None, Some(to)) => {
            let wa_id = super::normalize_phone(to)?;
            app.store.contact_by_wa_id(channel.id, &wa_id).await?
        }
        (None, None) => return Err(ApiError::bad_request("give \"to\" or \"contact_id\"")),
    };
    let recipient = match &contact {
        Some(c) => match c.open_conversation_id {
            Some(open) => in_open_conversation(&app, &who, open).await?,
            None => {
                if let (Some(me), false) = (who.user_id(), who.role() == Role::Admin)
                    && !app.store.contact_in_reach(c.id, me).await?
                {
                    return Err(ApiError::Forbidden(
                        "Este cliente é atendido por outra fila.".into(),
                    ));
                }
                Recipient::Contact(c.id)
            }
        },
        None => Recipient::Phone(req.to.clone().unwrap_or_default()),
    };
    let send = build_send(
        &app,
        &who,
        channel.id,
        recipient,
        req.template,
        req.idempotency_key,
    )
    .await?;
    answer(&app, send_template_full(&app, send, None).await?).await
}

/// The open conversation a started template goes into: one the caller works, or one still
/// waiting for a reply to a template that the caller may see. Else 409.
async fn in_open_conversation(
    app: &AppState,
    who: &Principal,
    conversation_id: i64,
) -> ApiResult<Recipient> {
    let c = app
        .store
        .conversation(conversation_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let access = crate::access::access(app, who, &c).await?;
    let awaiting = c.state == store::reply_routes::AWAITING_REPLY_STATE;
    if access == Access::Work || (awaiting && access >= Access::Read) {
        return Ok(Recipient::Conversation(c.id));
    }
    if awaiting && let Some(me) = who.user_id() {
        // Waiting in a queue of theirs for the customer's answer to someone else's template.
        if let Some(q) = c.queue_id
            && app.store.user_queue_ids(me).await?.contains(&q)
        {
            return Ok(Recipient::Conversation(c.id));
        }
    }
    Err(ApiError::Conflict(
        "conversation_open_elsewhere",
        "this customer already has an open conversation with someone else".into(),
    ))
}

/// Reads the request into a [`TemplateSend`]: the template, its values (checked later) and
/// the reply route.
async fn build_send(
    app: &AppState,
    who: &Principal,
    channel_id: i64,
    to: Recipient,
    body: TemplateBody,
    idempotency_key: Option<String>,
) -> ApiResult<TemplateSend> {
    let channel = app
        .channels
        .by_id(channel_id)
        .ok_or_else(|| ApiError::bad_request("unknown channel"))?;
    let template = find_template(app, &channel.waba_id, &body).await?;
    let values = match (&body.components, &body.variables) {
        (Some(components), _) => {
            let def = definition(&template).map_err(|e| {
                ApiError::Conflict(
                    "template_unreadable",
                    format!("O template armazenado não pode ser lido: {e}"),
                )
            })?;
            super::values::from_components(&def, components).map_err(ApiError::bad_request)?
        }
        (None, Some(variables)) => {
            super::values::from_variables(variables).map_err(ApiError::bad_request)?
        }
        (None, None) => Values::default(),
    };
    let reply_route = checked_route(app, who, body.reply_route).await?;
    Ok(TemplateSend {
        channel_id,
        to,
        template_id: template.id,
        values,
        author: match who {
            Principal::User(_) => "agent",
            Principal::ApiToken { .. } => "integration",
        },
        author_user_id: who.user_id(),
        reply_route: Some(reply_route),
        idempotency_key: idempotency_key.filter(|k| !k.trim().is_empty()),
        components: body.components,
    })
}

/// Reads a request's reply route, checked as the caller may give it: the queues it names exist,
/// another agent's portfolio only for whoever may assign (supervisors, admins), and agents and
/// supervisors route only into their own queues and to agents who share one of them.
pub(crate) async fn checked_route(
    app: &AppState,
    who: &Principal,
    route: Option<ReplyRouteBody>,
) -> ApiResult<ReplyRouteSpec> {
    let mine = match (who.user_id(), who.role()) {
        (Some(me), Role::Agent | Role::Supervisor) => Some(app.store.user_queue_ids(me).await?),
        _ => None,
    };
    let own_queue = |q: i64| mine.as_ref().is_none_or(|m| m.contains(&q));
    let outside = || {
        ApiError::Forbidden(
            "As respostas só podem ir para as suas filas e os atendentes delas.".into(),
        )
    };
    Ok(match route {
        None | Some(ReplyRouteBody::Channel) => ReplyRouteSpec::ChannelDefault,
        Some(ReplyRouteBody::None) => ReplyRouteSpec::None,
        Some(ReplyRouteBody::Queue { queue_id }) => {
            known_queue(app, queue_id).await?;
            if !own_queue(queue_id) {
                return Err(outside());
            }
            ReplyRouteSpec::Queue(queue_id)
        }
        Some(ReplyRouteBody::Agent {
            agent_id,
            fallback_queue_id,
        }) => {
            let agent_id = agent_id.or(who.user_id()).ok_or_else(|| {
                ApiError::bad_request("an integration must name the agent (\"agent_id\")")
            })?;
            if Some(agent_id) != who.user_id() {
                // Someone else's portfolio: whoever may assign (supervisors, admins).
                who.require(&[Role::Admin, Role::Supervisor])?;
                if let Some(m) = &mine {
                    let theirs = app.store.user_queue_ids(agent_id).await?;
                    if !theirs.iter().any(|q| m.contains(q)) {
                        return Err(outside());
                    }
                }
            }
            match app.store.user(agent_id).await? {
                Some(u) if u.active => {}
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "no active user with id {agent_id}"
                    )));
                }
            }
            if let Some(q) = fallback_queue_id {
                known_queue(app, q).await?;
                if !own_queue(q) {
                    return Err(outside());
                }
            }
            ReplyRouteSpec::Agent {
                agent_id,
                fallback_queue_id,
            }
        }
    })
}

pub(crate) async fn known_queue(app: &AppState, queue_id: i64) -> ApiResult<()> {
    match app.store.queue(queue_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::bad_request(format!(
            "no queue with id {queue_id}"
        ))),
    }
}

/// The template a request names: by id, or by name and language in the channel's account.
async fn find_template(
    app: &AppState,
    waba_id: &str,
    body: &TemplateBody,
) -> ApiResult<TemplateRecord> {
    let found = match (&body.template_id, &body.name) {
        (Some(id), _) => app.store.template(*id).await?,
        (None, Some(name)) => {
            let language = body.language.as_deref().unwrap_or("pt_BR");
            app.store.template_by_name(waba_id, name, language).await?
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "name the template: \"template_id\", or \"name\" and \"language\"",
            ));
        }
    };
    found.ok_or_else(|| {
        ApiError::Unprocessable(
            "template_not_found",
            "O template não existe nesta conta.".into(),
            json!({}),
        )
    })
}

async fn answer(app: &AppState, sent: TemplateSent) -> ApiResult<Response> {
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let conversation = app.store.conversation(sent.message.conversation_id).await?;
    Ok((
        status,
        Json(json!({
            "message": message_view(sent.message),
            "conversation": conversation,
            "opened": sent.opened,
        })),
    )
        .into_response())
}

/// `GET /api/conversations/{id}/template_state`: whether the 24 h window is open (and until
/// when), whether the caller may send a template, and the approved templates of the channel's
/// account with the variables each needs. For whoever may see the conversation.
pub async fn template_state(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (conversation, access) = crate::access::visible_conversation(&app, &who, id).await?;
    let last_inbound = app.store.contact_last_inbound(id).await?;
    let now = store::now_ms();
    let window = domain::window::window_state(last_inbound, now);
    let closes_at = match window {
        domain::window::WindowState::Open { closes_at_ms } => Some(closes_at_ms),
        domain::window::WindowState::Closed { .. } => None,
    };
    let may_send = access == Access::Work
        && crate::access::has_permission(&app, &who, Permission::SendTemplate).await?;
    let templates = match app.channels.by_id(conversation.channel_id) {
        Some(channel) => approved_templates(&app, &channel.waba_id).await?,
        None => Vec::new(),
    };
    Ok(Json(json!({
        "window_open": window.is_open(),
        "closes_at": closes_at,
        "remaining_ms": window.remaining_ms(now),
        "last_inbound_at": last_inbound,
        "mode": if window.is_open() { "free" } else { "template" },
        "can_send_template": may_send,
        "templates": templates,
    })))
}

/// The approved templates of an account, each with what a send must supply.
pub async fn approved_templates(app: &AppState, waba_id: &str) -> ApiResult<Vec<Value>> {
    let filter = TemplateFilter {
        status: Some("APPROVED".into()),
        ..TemplateFilter::default()
    };
    let records = app.store.templates_of_waba(waba_id, &filter).await?;
    Ok(records
        .iter()
        .map(|t| {
            let parameters = definition(t)
                .ok()
                .map(|d| domain::template::parameters(&d));
            json!({
                "id": t.id, "name": t.name, "language": t.language, "category": t.category,
                "status": t.status, "parameter_format": t.parameter_format,
                "components": serde_json::from_str::<Value>(&t.components).unwrap_or(Value::Null),
                "parameters": parameters,
                "button_actions": t.button_actions.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()),
            })
        })
        .collect())
}

/// The routes of this module, mounted under `/api` by `http::router`.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/messages", post(start))
        .route("/conversations/{id}/template_state", get(template_state))
}

/// The HSM fields of `PATCH /api/channels/{id}` (admins).
#[derive(Debug, Default, Deserialize)]
pub struct HsmPatch {
    #[serde(default, deserialize_with = "present")]
    pub hsm_queue_id: Option<Option<i64>>,
    pub hsm_reply_minutes: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub hsm_fallback_queue_id: Option<Option<i64>>,
}

/// A field given as `null` is `Some(None)` (clear it); an absent one stays `None` (keep it).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// The longest a reply route may last: 30 days.
const MAX_REPLY_MINUTES: i64 = 30 * 24 * 60;

/// Applies the HSM fields of a channel patch (checked first); returns the settings now.
pub async fn apply_hsm_patch(
    app: &AppState,
    channel_id: i64,
    p: &HsmPatch,
) -> ApiResult<Option<store::reply_routes::HsmSettings>> {
    if let Some(minutes) = p.hsm_reply_minutes
        && !(1..=MAX_REPLY_MINUTES).contains(&minutes)
    {
        return Err(ApiError::bad_request(format!(
            "hsm_reply_minutes must be between 1 and {MAX_REPLY_MINUTES}"
        )));
    }
    for q in [p.hsm_queue_id, p.hsm_fallback_queue_id]
        .into_iter()
        .flatten()
        .flatten()
    {
        known_queue(app, q).await?;
    }
    if p.hsm_queue_id.is_none()
        && p.hsm_reply_minutes.is_none()
        && p.hsm_fallback_queue_id.is_none()
    {
        return Ok(app.store.channel_hsm_settings(channel_id).await?);
    }
    let patch = store::reply_routes::HsmSettingsPatch {
        hsm_queue_id: p.hsm_queue_id,
        hsm_reply_minutes: p.hsm_reply_minutes,
        hsm_fallback_queue_id: p.hsm_fallback_queue_id,
    };
    Ok(Some(
        app.store
            .set_channel_hsm_settings(channel_id, &patch)
            .await?,
    ))
}

/// Adds a channel's HSM settings to its view.
pub fn add_hsm_settings(view: &mut Value, hsm: Option<store::reply_routes::HsmSettings>) {
    if let (Some(obj), Some(hsm)) = (view.as_object_mut(), hsm) {
        obj.insert("hsm_queue_id".into(), hsm.hsm_queue_id.into());
        obj.insert("hsm_reply_minutes".into(), hsm.hsm_reply_minutes.into());
        obj.insert(
            "hsm_fallback_queue_id".into(),
            hsm.hsm_fallback_queue_id.into(),
        );
    }
}
