//! Sending a template (HSM) to one customer: [`send_template`] checks the template (approved, of
//! the channel's WABA) and the values against it before anything leaves, resolves the
//! conversation (the contact's open one, else a new one `awaiting_reply` with its protocol
//! number), and writes the message (body = the text as the customer sees it), its outbox job and
//! its reply route in one transaction. Agents in the desk, integrations, schedules and the bot
//! come through here; broadcasts write the same shapes in batches (`store::reply_routes`).
//!
//! `api` holds the HTTP side (`POST /api/messages`, the template form of
//! `POST /api/conversations/{id}/messages`, `GET /api/conversations/{id}/template_state`),
//! `values` the two request forms of a template's values.

pub mod api;
pub mod values;

use domain::template::{Rendered, TemplateDefinition, Values};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::conversations::MessageRecord;
use store::outbox::NewOutbound;
use store::reply_routes::{
    NewTemplateSend, RouteTarget, ScheduleClaim, SendTarget, TemplateRoute, TemplateSendOutcome,
};
use store::templates::TemplateRecord;
use whatsapp::send::OutboundContent;

use crate::error::{ApiError, ApiResult};
use crate::live::Notice;
use crate::state::AppState;

/// Who receives the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// An open conversation.
    Conversation(i64),
    /// A known contact: their open conversation, else a new one.
    Contact(i64),
    /// A phone number (normalized with `domain::phone::normalize_br`): the contact is created
    /// when new.
    Phone(String),
}

/// Where the customer's reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyRouteSpec {
    /// The channel's HSM response queue (`channels.hsm_queue_id`), else the conversation's queue.
    ChannelDefault,
    Queue(i64),
    /// The sending agent ("carteira"), or the fallback queue when they are offline or full.
    Agent {
        agent_id: i64,
        fallback_queue_id: Option<i64>,
    },
    /// No routing: the reply meets the bot as any message would.
    None,
}

impl ReplyRouteSpec {
    /// The route in the API's vocabulary (`{"target": "queue", "queue_id": 3}`...), the form a
    /// request gives it in.
    pub fn to_api(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            ReplyRouteSpec::ChannelDefault => json!({"target": "channel"}),
            ReplyRouteSpec::Queue(queue_id) => json!({"target": "queue", "queue_id": queue_id}),
            ReplyRouteSpec::Agent {
                agent_id,
                fallback_queue_id,
            } => json!({"target": "agent", "agent_id": agent_id,
                "fallback_queue_id": fallback_queue_id}),
            ReplyRouteSpec::None => json!({"target": "bot"}),
        }
    }
}

/// One template send.
#[derive(Debug, Clone)]
pub struct TemplateSend {
    pub channel_id: i64,
    pub to: Recipient,
    pub template_id: i64,
    pub values: Values,
    /// `agent`, `integration`, `schedule`, `broadcast` or `bot`.
    pub author: &'static str,
    pub author_user_id: Option<i64>,
    /// `None`: [`ReplyRouteSpec::ChannelDefault`].
    pub reply_route: Option<ReplyRouteSpec>,
    pub idempotency_key: Option<String>,
    /// Meta's send-side components exactly as the caller gave them (their values were read into
    /// `values` and checked); `None`: built from `values`.
    pub components: Option<Value>,
}

/// What a send did.
#[derive(Debug, Clone)]
pub struct TemplateSent {
    pub message: MessageRecord,
    /// False: the idempotency key was used before and this is the first message.
    pub created: bool,
    /// The send opened the conversation (state `awaiting_reply`).
    pub opened: bool,
}

/// Sends a template (see the module documentation). Errors: 404 unknown template or contact,
/// 409 template not usable (with its pt-BR reason) or conversation closed, 422 values that do
/// not fit the template (`{"problems": [...]}`), 400 a bad phone number.
pub async fn send_template(app: &AppState, req: TemplateSend) -> ApiResult<MessageRecord> {
    Ok(send_template_full(app, req, None).await?.message)
}

/// [`send_template`] with the details, and for a schedule its claim: the send commits only
/// while the claim is the caller's (then `409 schedule_lost`).
pub async fn send_template_full(
    app: &AppState,
    req: TemplateSend,
    schedule: Option<ScheduleClaim>,
) -> ApiResult<TemplateSent> {
    let channel = app
        .channels
        .by_id(req.channel_id)
        .filter(|c| c.enabled)
        .ok_or_else(|| {
            ApiError::Conflict(
                "channel_disabled",
                "O canal não existe ou está desativado.".into(),
            )
        })?;
    let template = usable_template(app, req.template_id, &channel.waba_id).await?;
    let def = definition(&template).map_err(|e| {
        ApiError::Conflict(
            "template_unreadable",
            format!("O template armazenado não pode ser lido: {e}"),
        )
    })?;
    let problems = domain::template::check_values(&def, &req.values);
    if !problems.is_empty() {
        return Err(ApiError::problems("invalid_template_values", &problems));
    }
    let rendered = domain::template::render(&def, &req.values);
    let components = req
        .components
        .clone()
        .unwrap_or_else(|| domain::template::send_components(&def, &req.values));
    let content = OutboundContent::Template {
        name: template.name.clone(),
        language: template.language.clone(),
        components,
    };
    content
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let content_json = stored_content(&content, &template, &rendered)?;

    let message = NewOutbound {
        conversation_id: 0,
        author: req.author.into(),
        author_user_id: req.author_user_id,
        kind: "template".into(),
        body: Some(rendered.body.clone()),
        content_json,
        reply_to_wamid: None,
        media_id: None,
        idempotency_key: req.idempotency_key.clone().filter(|k| !k.trim().is_empty()),
    };
    let delivery = Delivery {
        channel_id: channel.id,
        to: req.to.clone(),
        message,
        reply_route: req.reply_route.unwrap_or(ReplyRouteSpec::ChannelDefault),
        template_id: Some(template.id),
        button_actions: template.button_actions.clone(),
        schedule,
    };
    let sent = deliver(app, delivery).await?;
    if sent.created {
        tracing::info!(
            message_id = sent.message.id,
            conversation_id = sent.message.conversation_id,
            template_id = template.id,
            author = req.author,
            opened = sent.opened,
            "template enqueued"
        );
    }
    Ok(sent)
}

/// A message to a customer with the reply route it records: a template, or (for a schedule) a
/// free text inside the window.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub channel_id: i64,
    pub to: Recipient,
    /// Its `conversation_id` is resolved here.
    pub message: NewOutbound,
    pub reply_route: ReplyRouteSpec,
    pub template_id: Option<i64>,
    pub button_actions: Option<String>,
    pub schedule: Option<ScheduleClaim>,
}

/// Writes a [`Delivery`]: the conversation (the open one, else a new one `awaiting_reply`), the
/// message and its outbox job, the reply route, the schedule marked sent, in one transaction.
pub async fn deliver(app: &AppState, d: Delivery) -> ApiResult<TemplateSent> {
    let (target, conversation_queue) = resolve_target(app, &d.to, d.channel_id).await?;
    let settings = app
        .store
        .channel_hsm_settings(d.channel_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let author_queue = match d.message.author_user_id {
        Some(user) => app.store.user_queue_ids(user).await?.first().copied(),
        None => None,
    };
    let route_target = route_target(
        d.reply_route,
        &settings,
        conversation_queue.or(author_queue),
    );
    let new_queue = match route_target {
        RouteTarget::Queue { queue_id } => queue_id.or(author_queue),
        RouteTarget::Agent {
            fallback_queue_id, ..
        } => fallback_queue_id.or(author_queue),
        RouteTarget::Bot => author_queue,
    };
    let minutes = settings.hsm_reply_minutes.max(1);
    let owner = d
        .message
        .author_user_id
        .filter(|_| d.message.author == "agent" || d.message.author == "schedule");
    let send = NewTemplateSend {
        target,
        queue_id: new_queue,
        owner_agent_id: owner,
        message: d.message,
        route: Some(TemplateRoute {
            template_id: d.template_id,
            target: route_target,
            button_actions: d.button_actions,
            expires_at: store::now_ms().saturating_add(minutes.saturating_mul(60_000)),
        }),
        schedule: d.schedule,
    };
    match app
        .store
        .enqueue_template_send(&send, &app.config.protocol)
        .await?
    {
        TemplateSendOutcome::Created { message, opened } => {
            app.outbound
                .announce(message.conversation_id, &[message.id]);
            if opened {
                app.live.publish(Notice::ConversationOpened {
                    conversation_id: message.conversation_id,
                });
                app.live.publish(Notice::DeskChanged);
            }
            Ok(TemplateSent {
                message,
                created: true,
                opened,
            })
        }
        TemplateSendOutcome::Existing(message) => Ok(TemplateSent {
            message,
            created: false,
            opened: false,
        }),
        TemplateSendOutcome::ConversationClosed => Err(ApiError::Conflict(
            "conversation_closed",
            "this conversation is finalized; send the template to the contact instead".into(),
        )),
        TemplateSendOutcome::ScheduleLost => Err(ApiError::Conflict(
            "schedule_lost",
            "the schedule is no longer pending for this worker".into(),
        )),
    }
}

/// The template, when it can be sent on a channel of `waba_id` now; else 404 or 409 with the
/// reason in pt-BR.
pub async fn usable_template(
    app: &AppState,
    template_id: i64,
    waba_id: &str,
) -> ApiResult<TemplateRecord> {
    let template = app
        .store
        .template(template_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if template.waba_id != waba_id {
        return Err(ApiError::Conflict(
            "template_other_account",
            "O template pertence a outra conta do WhatsApp Business, não à deste canal.".into(),
        ));
    }
    if let Some(reason) = unusable_reason(&template.status) {
        return Err(ApiError::Conflict("template_not_approved", reason));
    }
    Ok(template)
}

/// Why a template in `status` cannot be sent (pt-BR); `None` when it can (APPROVED).
pub fn unusable_reason(status: &str) -> Option<String> {
    let reason = match status.to_ascii_uppercase().as_str() {
        "APPROVED" => return None,
        "PAUSED" => "O template está pausado pela Meta por baixa qualidade (erro 132015).",
        "DISABLED" => "O template foi desativado pela Meta (erro 132016).",
        "PENDING" | "IN_APPEAL" | "PENDING_DELETION" => {
            "O template ainda não foi aprovado pela Meta."
        }
        "REJECTED" => "O template foi rejeitado pela Meta.",
        "DELETED" => "O template foi excluído.",
        "LIMIT_EXCEEDED" => "A conta atingiu o limite de templates da Meta.",
        _ => {
            return Some(format!(
                "O template não pode ser enviado (situação {status})."
            ));
        }
    };
    Some(reason.to_owned())
}

/// The stored template as `domain::template`'s definition.
pub fn definition(t: &TemplateRecord) -> Result<TemplateDefinition, String> {
    t.definition().map_err(|e| e.to_string())
}

/// The outbox form of the template plus what the message view shows: which template, and the
/// message as the customer sees it (the sender ignores the extra fields).
fn stored_content(
    content: &OutboundContent,
    template: &TemplateRecord,
    rendered: &Rendered,
) -> ApiResult<String> {
    let mut value = serde_json::to_value(content).map_err(|e| ApiError::Internal(e.into()))?;
    value["template_id"] = template.id.into();
    value["category"] = template.category.clone().into();
    value["rendered"] = serde_json::to_value(rendered).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(value.to_string())
}

/// The `template` part of a message view: `{name, language, rendered: {header, body, footer,
/// buttons}}`, for messages of kind `template`.
pub fn template_view(kind: &str, content: &Value) -> Option<Value> {
    if kind != "template" {
        return None;
    }
    let rendered = content.get("rendered").cloned().unwrap_or_else(|| {
        json!({ "header": null, "header_media": null, "body": null, "footer": null, "buttons": [] })
    });
    Some(json!({
        "id": content.get("template_id"),
        "name": content.get("name"),
        "language": content.get("language"),
        "category": content.get("category"),
        "rendered": rendered,
    }))
}

/// Where the send goes, and the queue of the conversation it goes to (when it exists).
async fn resolve_target(
    app: &AppState,
    to: &Recipient,
    channel_id: i64,
) -> ApiResult<(SendTarget, Option<i64>)> {
    match to {
        Recipient::Conversation(id) => {
            let c = app
                .store
                .conversation(*id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if c.channel_id != channel_id {
                return Err(ApiError::bad_request(
                    "the conversation is on another channel",
                ));
            }
            Ok((SendTarget::Conversation(*id), c.queue_id))
        }
        Recipient::Contact(id) => {
            let contact = app
                .store
                .contact_brief(*id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if contact.channel_id != channel_id {
                return Err(ApiError::bad_request("the contact is on another channel"));
            }
            let queue = open_queue(app, contact.open_conversation_id).await?;
            Ok((
                SendTarget::Contact {
                    channel_id,
                    wa_id: contact.wa_id,
                },
                queue,
            ))
        }
        Recipient::Phone(raw) => {
            let wa_id = normalize_phone(raw)?;
            let queue = match app.store.contact_by_wa_id(channel_id, &wa_id).await? {
                Some(c) => open_queue(app, c.open_conversation_id).await?,
                None => None,
            };
            Ok((SendTarget::Contact { channel_id, wa_id }, queue))
        }
    }
}

async fn open_queue(app: &AppState, conversation_id: Option<i64>) -> ApiResult<Option<i64>> {
    Ok(match conversation_id {
        Some(id) => app.store.conversation(id).await?.and_then(|c| c.queue_id),
        None => None,
    })
}

/// The customer's number as WhatsApp wants it (E.164 digits), or 400 with the pt-BR reason.
pub fn normalize_phone(raw: &str) -> ApiResult<String> {
    domain::phone::normalize_br(raw).map_err(|e| {
        ApiError::BadRequest(
            "invalid_phone",
            format!("Número de telefone inválido: {e}."),
        )
    })
}

/// The stored route for a spec: the channel default is the channel's HSM queue, else the
/// conversation's (or the sender's) queue, else the shared line.
fn route_target(
    spec: ReplyRouteSpec,
    settings: &store::reply_routes::HsmSettings,
    fallback_queue: Option<i64>,
) -> RouteTarget {
    match spec {
        ReplyRouteSpec::ChannelDefault => RouteTarget::Queue {
            queue_id: settings.hsm_queue_id.or(fallback_queue),
        },
        ReplyRouteSpec::Queue(q) => RouteTarget::Queue { queue_id: Some(q) },
        ReplyRouteSpec::Agent {
            agent_id,
            fallback_queue_id,
        } => RouteTarget::Agent {
            agent_id,
            fallback_queue_id: fallback_queue_id
                .or(settings.hsm_fallback_queue_id)
                .or(settings.hsm_queue_id)
                .or(fallback_queue),
        },
        ReplyRouteSpec::None => RouteTarget::Bot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::reply_routes::HsmSettings;

    #[test]
    fn route_defaults() {
        let settings = HsmSettings {
            hsm_queue_id: Some(5),
            hsm_reply_minutes: 60,
            hsm_fallback_queue_id: None,
        };
        assert_eq!(
            route_target(ReplyRouteSpec::ChannelDefault, &settings, Some(1)),
            RouteTarget::Queue { queue_id: Some(5) }
        );
        let unset = HsmSettings {
            hsm_queue_id: None,
            ..settings
        };
        assert_eq!(
            route_target(ReplyRouteSpec::ChannelDefault, &unset, Some(1)),
            RouteTarget::Queue { queue_id: Some(1) }
        );
        assert_eq!(
            route_target(
                ReplyRouteSpec::Agent {
                    agent_id: 3,
                    fallback_queue_id: None
                },
                &settings,
                Some(1)
            ),
            RouteTarget::Agent {
                agent_id: 3,
                fallback_queue_id: Some(5)
            }
        );
        assert_eq!(
            route_target(ReplyRouteSpec::None, &settings, None),
            RouteTarget::Bot
        );
    }

    #[test]
    fn statuses_explained() {
        assert_eq!(unusable_reason("APPROVED"), None);
        assert!(unusable_reason("PAUSED").is_some_and(|r| r.contains("pausado")));
        assert!(unusable_reason("WEIRD").is_some_and(|r| r.contains("WEIRD")));
    }

    /// The inbound transaction writes texts in the outbox's form itself; they must stay readable
    /// by the sender.
    #[test]
    fn store_text_form_is_outbound_content() {
        let json = store::reply_routes::text_content_json("Seu protocolo é 1.");
        let content: OutboundContent = serde_json::from_str(&json).expect("outbound content");
        assert_eq!(
            content,
            OutboundContent::Text {
                body: "Seu protocolo é 1.".into(),
                preview_url: false
            }
        );
    }
}
