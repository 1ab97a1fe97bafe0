//! Planning one turn: the flow interpreter run on the customer's input with the context the bot
//! gathered (contact, protocol, saved answers, business hours), and what its actions become as
//! WhatsApp messages.

use super::*;

/// Whether a message belongs to the bot part of its conversation (`"bot"`) or the human part.
pub fn message_phase(phase: Option<BotPhase>, message_id: i64) -> &'static str {
    match phase {
        None => "human",
        Some(p) if p.running => "bot",
        Some(p) => match p.last_bot_message_id {
            Some(last) if message_id <= last => "bot",
            _ => "human",
        },
    }
}

/// What a customer message means to the flow; `None` for messages that are not an answer
/// (reactions, system notices), which the bot skips.
pub fn bot_input(message: &MessageRecord) -> Option<BotInput> {
    let content: Value = serde_json::from_str(&message.content).unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match message.kind.as_str() {
        "reaction" | "system" | "request_welcome" => None,
        "text" => Some(BotInput::Text(text(&content["text"]["body"]))),
        "interactive" => {
            let i = &content["interactive"];
            match i["type"].as_str() {
                Some("button_reply") => Some(BotInput::ButtonReply {
                    id: text(&i["button_reply"]["id"]),
                    title: text(&i["button_reply"]["title"]),
                }),
                Some("list_reply") => Some(BotInput::ListReply {
                    id: text(&i["list_reply"]["id"]),
                    title: text(&i["list_reply"]["title"]),
                }),
                _ => Some(BotInput::Text(String::new())),
            }
        }
        // A quick-reply button of a template: its payload is the id.
        "button" => Some(BotInput::ButtonReply {
            id: text(&content["button"]["payload"]),
            title: text(&content["button"]["text"]),
        }),
        _ => Some(BotInput::Text(String::new())),
    }
}

/// Runs one turn of the interpreter and applies the server-side rules around it: questions already
/// answered are skipped (when the flow allows), and `{{fila}}` names the queue the turn hands off to.
pub fn plan_turn(
    loaded: &LoadedFlow,
    ctx: &FlowContext,
    state: Option<&BotState>,
    input: Option<&BotInput>,
    queue_names: &HashMap<String, String>,
) -> Outcome {
    let mut ctx = ctx.clone();
    let out = plan_once(loaded, &ctx, state, input);
    let Some(queue) = handoff_of(&out).map(|(q, _)| q.to_owned()) else {
        return out;
    };
    let name = queue_names.get(&queue).cloned().unwrap_or(queue);
    if ctx.vars.get("fila") == Some(&name) {
        return out;
    }
    // The interpreter is pure: run it again knowing where the turn ends up.
    ctx.vars.insert("fila".into(), name.clone());
    ctx.fields.insert("fila".into(), name);
    plan_once(loaded, &ctx, state, input)
}

pub(super) fn plan_once(
    loaded: &LoadedFlow,
    ctx: &FlowContext,
    state: Option<&BotState>,
    input: Option<&BotInput>,
) -> Outcome {
    let flow = &loaded.flow;
    let mut out = match (state, input) {
        (Some(state), Some(input)) => flow::on_input(flow, state, input, ctx),
        // The flow starts; `input` is then the message that opened the conversation. It only
        // counts when it already asks for a person ("quero falar com um atendente"): the greeting
        // (with the protocol) goes out and the customer is transferred at once.
        (None, opening) => {
            let mut out = flow::start(flow, ctx);
            if let (Some(BotInput::Text(text)), Some(waiting)) = (opening, out.state.clone())
                && asks_for_human(flow, text)
            {
                let more = flow::on_input(flow, &waiting, &BotInput::Text(text.clone()), ctx);
                out.actions.extend(more.actions);
                out.state = more.state;
            }
            out
        }
        (Some(_), None) => flow::start(flow, ctx),
    };
    if !loaded.extras.skip_known_answers {
        return out;
    }
    let mut ctx = ctx.clone();
    for _ in 0..MAX_SKIPPED_QUESTIONS {
        absorb_saves(&mut ctx, &out.actions);
        let Some(state) = out.state.clone() else {
            break;
        };
        if state.invalid_attempts > 0 {
            break;
        }
        let Some(Step::Ask {
            text,
            validator,
            save_to,
            ..
        }) = flow.steps.get(&state.step)
        else {
            break;
        };
        let Some(value) = ctx
            .vars
            .get(save_to)
            .filter(|v| !v.trim().is_empty())
            .cloned()
        else {
            break;
        };
        if flow::validate_answer(*validator, &value).is_err() {
            break;
        }
        // Not asked after all: drop the question and answer it with what we know.
        let question = Action::SendText(domain::text::render_template(text, &ctx.vars));
        if out.actions.last() == Some(&question) {
            out.actions.pop();
        }
        let next = flow::on_input(flow, &state, &BotInput::Text(value), &ctx);
        out.actions.extend(next.actions);
        out.state = next.state;
    }
    out
}

/// Whether the text contains one of the flow's human keywords as whole words (accents and case
/// ignored), the way the interpreter matches them at a menu.
pub(super) fn asks_for_human(flow: &Flow, text: &str) -> bool {
    fn words(s: &str) -> Vec<String> {
        domain::text::fold_for_match(s)
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }
    let said = words(text);
    flow.human_keywords.iter().any(|keyword| {
        let keyword = words(keyword);
        !keyword.is_empty() && said.windows(keyword.len()).any(|w| w == keyword.as_slice())
    })
}

/// Answers saved during the turn are visible to what follows in it.
pub(super) fn absorb_saves(ctx: &mut FlowContext, actions: &[Action]) {
    for action in actions {
        if let Action::SaveField { field, value } = action {
            ctx.vars.insert(field.clone(), value.clone());
            ctx.fields.insert(field.clone(), value.clone());
        }
    }
}

pub(super) fn handoff_of(out: &Outcome) -> Option<(&str, i32)> {
    out.actions.iter().find_map(|a| match a {
        Action::Handoff { queue, priority } => Some((queue.as_str(), *priority)),
        _ => None,
    })
}

pub(super) fn saved_code(out: &Outcome) -> Option<&str> {
    out.actions.iter().rev().find_map(|a| match a {
        Action::SaveField { field, value } if field == "contact.code" => Some(value.as_str()),
        _ => None,
    })
}

/// The flow context of a conversation: template variables, field values, business hours.
pub fn flow_context(
    conv: &BotConversation,
    fields: &[(String, String)],
    queues: &[QueueRecord],
    now: i64,
) -> FlowContext {
    let mut vars = BTreeMap::new();
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            vars.insert(k.to_owned(), v.clone());
        }
    };
    put(
        "nome",
        conv.contact_name.as_ref().or(conv.profile_name.as_ref()),
    );
    put("protocolo", Some(&conv.protocol));
    put("contact.name", conv.contact_name.as_ref());
    put("contact.code", conv.contact_code.as_ref());
    put("contact.email", conv.contact_email.as_ref());
    put("contact.wa_id", Some(&conv.wa_id));
    put("contact.profile_name", conv.profile_name.as_ref());
    if let Some(q) = conv
        .queue_id
        .and_then(|id| queues.iter().find(|q| q.id == id))
    {
        put("fila", Some(&q.name));
    }
    for (key, value) in fields {
        vars.insert(key.clone(), value.clone());
    }
    FlowContext {
        fields: vars.clone(),
        vars,
        business_hours_open: queues
            .iter()
            .map(|q| {
                (
                    q.key.clone(),
                    hours::queue_open(q.business_hours.as_deref(), now),
                )
            })
            .collect(),
        contact_known: conv.contact_code.is_some() || conv.previous_conversations > 0,
    }
}

/// A message to enqueue: the content, the text shown in lists, our media id.
/// One bot message to send: the WhatsApp content, its text for the transcript, its media.
pub(super) type BotSend = (OutboundContent, Option<String>, Option<i64>);

pub(super) fn text_send(text: String) -> BotSend {
    (
        OutboundContent::Text {
            body: text.clone(),
            preview_url: false,
        },
        Some(text),
        None,
    )
}

/// How a flow action travels to WhatsApp; `None` for actions that send nothing.
pub(super) fn outbound_content(action: &Action) -> Option<BotSend> {
    Some(match action {
        Action::SendText(text) => text_send(text.clone()),
        Action::SendButtons { body, buttons } => (
            OutboundContent::Buttons {
                header: None,
                body: body.clone(),
                footer: None,
                buttons: buttons
                    .iter()
                    .map(|(id, title)| ReplyButton {
                        id: id.clone(),
                        title: title.clone(),
                    })
                    .collect(),
            },
            Some(body.clone()),
            None,
        ),
        Action::SendList {
            body,
            button_label,
            rows,
        } => (
            OutboundContent::List {
                header: None,
                body: body.clone(),
                footer: None,
                button: button_label.clone(),
                sections: vec![ListSection {
                    title: None,
                    rows: rows
                        .iter()
                        .map(|(id, title, description)| ListRow {
                            id: id.clone(),
                            title: title.clone(),
                            description: description.clone(),
                        })
                        .collect(),
                }],
            },
            Some(body.clone()),
            None,
        ),
        Action::SendMedia {
            media_url_or_id,
            kind,
            caption,
            filename,
        } => {
            // A URL Meta fetches itself, `media:<id>` for a file uploaded to Atende (the sender
            // uploads it), anything else a media id already at Meta.
            let reference = media_url_or_id.trim();
            let (media, media_id) =
                if reference.starts_with("https://") || reference.starts_with("http://") {
                    (MediaRef::Link(reference.to_owned()), None)
                } else if let Some(id) = reference
                    .strip_prefix("media:")
                    .and_then(|n| n.trim().parse::<i64>().ok())
                {
                    (MediaRef::Id(format!("atende-media-{id}")), Some(id))
                } else {
                    (MediaRef::Id(reference.to_owned()), None)
                };
            let caption = caption.clone();
            let body = caption.clone().or_else(|| filename.clone());
            let content = match kind {
                MediaKind::Image => OutboundContent::Image { media, caption },
                MediaKind::Video => OutboundContent::Video { media, caption },
                MediaKind::Audio => OutboundContent::Audio { media },
                MediaKind::Sticker => OutboundContent::Sticker { media },
                MediaKind::Document => OutboundContent::Document {
                    media,
                    caption,
                    filename: filename.clone(),
                },
            };
            (content, body, media_id)
        }
        _ => return None,
    })
}

/// A bot message for the outbox, keyed so that a turn re-planned after a failure reuses it.
pub(super) fn bot_message(
    conversation_id: i64,
    (content, body, media_id): BotSend,
    key: String,
) -> anyhow::Result<NewOutbound> {
    Ok(NewOutbound {
        conversation_id,
        author: "bot".into(),
        author_user_id: None,
        kind: content.kind().into(),
        body,
        content_json: serde_json::to_string(&content)?,
        reply_to_wamid: None,
        media_id,
        idempotency_key: Some(key),
    })
}

/// The session a conversation's first turn starts from, before it is stored (the turn stores it).
pub(super) fn unbound_session(
    conversation_id: i64,
    flow_version_id: i64,
    first_input: i64,
) -> BotSession {
    let now = store::now_ms();
    BotSession {
        conversation_id,
        flow_version_id,
        state: None,
        last_input_message_id: first_input,
        started_at: now,
        last_activity_at: now,
        reminder_due_at: None,
        close_due_at: None,
        reminder_sent_at: None,
        finished_at: None,
        outcome: None,
        last_bot_message_id: None,
    }
}

/// The group writer's work: all turns in one transaction; if that fails, each on its own, so one
/// turn that cannot be applied holds up only itself.
pub(super) async fn apply_turns(
    store: &Store,
    turns: &[BotTurn],
) -> Vec<Result<Option<Vec<i64>>, String>> {
    match store.apply_bot_turns(turns).await {
        Ok(applied) => applied.into_iter().map(Ok).collect(),
        Err(e) if turns.len() > 1 => {
            tracing::warn!(error = %e, turns = turns.len(), "bot turn group failed; applying one by one");
            let mut results = Vec::with_capacity(turns.len());
            for turn in turns {
                results.push(store.apply_bot_turn(turn).await.map_err(|e| e.to_string()));
            }
            results
        }
        Err(e) => vec![Err(e.to_string())],
    }
}
