//! The bot: drives every conversation in state `bot` through the flow version it started with,
//! using the pure interpreter in `domain::flow`, and executes what it decides.
//!
//! One turn = one customer message (or the conversation opening): build the context (contact,
//! protocol, saved answers, business hours of every queue), run the interpreter, then commit the
//! turn's messages (with their outbox jobs), the new session state, saved answers,
//! protocol-informed mark and hand-off/close in one transaction guarded by a compare-and-set on
//! the session. Two instances racing on one turn: one commit wins, the other writes nothing and
//! re-reads. Turns of different conversations that are ready together share one transaction (a
//! [`GroupCommit`]), so a busy bot pays one commit for many customers.
//!
//! Work arrives from the in-process bus (`Live`: conversation opened, message created) and from a
//! periodic sweep of the database (missed notices, other instances' webhooks, restarts, inactivity
//! reminders and closes). Each conversation is processed by at most one task of this instance at a
//! time, so its inputs are fed in order.

pub mod hours;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::flow::{
    self, Action, BotInput, BotState, Check, Flow, FlowContext, MediaKind, Outcome, Step,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::Store;
use store::bot::{
    BotConversation, BotFinish, BotOutcome, BotPhase, BotSession, BotTurn, ContactUpdate,
};
use store::conversations::{BOT_STATE, MessageRecord};
use store::queues::{NewQueue, QueueRecord};
use store::outbox::{Enqueued, NewOutbound};
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use whatsapp::send::{ListRow, ListSection, MediaRef, OutboundContent, ReplyButton};

use crate::config::Config;
use crate::group_commit::GroupCommit;
use crate::live::{Live, Notice};
use crate::outbound::Outbound;

/// Turns one task applies to a conversation before yielding to others (the sweep resumes it).
const MAX_TURNS_PER_PASS: usize = 50;
/// Ask steps answered from known data in one turn, at most (a guard against odd flows).
const MAX_SKIPPED_QUESTIONS: usize = 10;
const SWEEP_BATCH: i64 = 500;
/// Turns committed together at most.
const MAX_TURN_GROUP: usize = 64;
const DEFAULT_REMINDER_TEXT: &str =
    "Você ainda está aí? É só responder a mensagem acima para continuar o atendimento.";
const DEFAULT_CLOSE_TEXT: &str = "Como não recebemos sua resposta, encerramos este atendimento (protocolo {{protocolo}}). Se precisar, é só mandar uma nova mensagem.";

/// Per-flow settings stored beside the domain [`Flow`] in the same definition JSON (the
/// interpreter ignores them; the server reads them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowExtras {
    /// An Ask step whose field is already known and valid (the contact's CPF/CNPJ in "Código", a
    /// name, an answer saved earlier in the conversation) is answered with it instead of asked.
    pub skip_known_answers: bool,
    pub inactivity: InactivitySettings,
}

impl Default for FlowExtras {
    fn default() -> Self {
        FlowExtras {
            skip_known_answers: true,
            inactivity: InactivitySettings::default(),
        }
    }
}

/// Overrides of the server-wide inactivity timers for one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InactivitySettings {
    pub reminder_after_secs: Option<u64>,
    pub close_after_secs: Option<u64>,
    /// Template (`{{nome}}`, `{{protocolo}}`...) of the reminder.
    pub reminder_text: Option<String>,
    /// Template of the message sent when the bot closes the conversation.
    pub close_text: Option<String>,
}

/// A stored flow definition, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedFlow {
    pub flow: Flow,
    pub extras: FlowExtras,
}

/// One problem of a definition, for the editor.
#[derive(Debug, Clone, Serialize)]
pub struct DefinitionError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl DefinitionError {
    fn new(code: &str, message: String) -> DefinitionError {
        DefinitionError {
            code: code.to_owned(),
            message,
            detail: None,
        }
    }
}

/// Parses and validates a definition (the domain flow plus [`FlowExtras`]); all problems at once,
/// in pt-BR.
pub fn check_definition(definition: &Value) -> Result<LoadedFlow, Vec<DefinitionError>> {
    if !definition.is_object() {
        return Err(vec![DefinitionError::new(
            "invalid_json",
            "A definição do fluxo deve ser um objeto JSON.".into(),
        )]);
    }
    let flow: Flow = serde_json::from_value(definition.clone()).map_err(|e| {
        vec![DefinitionError::new(
            "invalid_json",
            format!("A definição do fluxo não pôde ser lida: {e}."),
        )]
    })?;
    let extras: FlowExtras = serde_json::from_value(definition.clone()).map_err(|e| {
        vec![DefinitionError::new(
            "invalid_json",
            format!("As configurações do fluxo (skip_known_answers, inactivity) não puderam ser lidas: {e}."),
        )]
    })?;
    let mut errors: Vec<DefinitionError> = match flow::validate_flow(&flow) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .into_iter()
            .map(|e| {
                let detail = serde_json::to_value(&e).ok();
                let code = detail
                    .as_ref()
                    .and_then(|d| d["error"].as_str())
                    .unwrap_or("invalid_flow")
                    .to_owned();
                DefinitionError {
                    code,
                    message: e.message_pt_br(),
                    detail,
                }
            })
            .collect(),
    };
    let i = &extras.inactivity;
    if i.reminder_after_secs == Some(0) || i.close_after_secs == Some(0) {
        errors.push(DefinitionError::new(
            "invalid_inactivity",
            "Os tempos de inatividade devem ser maiores que zero.".into(),
        ));
    }
    if let (Some(r), Some(c)) = (i.reminder_after_secs, i.close_after_secs)
        && r >= c
    {
        errors.push(DefinitionError::new(
            "invalid_inactivity",
            "O lembrete de inatividade deve vir antes do encerramento automático.".into(),
        ));
    }
    if errors.is_empty() {
        Ok(LoadedFlow { flow, extras })
    } else {
        Err(errors)
    }
}

/// The definition as stored: the flow with every default spelled out, plus the extras.
pub fn normalized_definition(loaded: &LoadedFlow) -> Value {
    let mut value = serde_json::to_value(&loaded.flow).unwrap_or(Value::Null);
    if let (Some(obj), Ok(Value::Object(extras))) =
        (value.as_object_mut(), serde_json::to_value(&loaded.extras))
    {
        obj.extend(extras);
    }
    value
}

/// Queue keys a flow hands off to (or checks the hours of), for warnings about missing queues.
pub fn referenced_queues(flow: &Flow) -> Vec<String> {
    let mut keys = vec![flow.human_queue.clone()];
    for step in flow.steps.values() {
        match step {
            Step::Handoff { queue, .. } => keys.push(queue.clone()),
            Step::Condition {
                check: Check::BusinessHours { queue },
                ..
            } => keys.push(queue.clone()),
            _ => {}
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The flow seeded on a first start: the domain's demo flow, greeting returning customers by name.
pub fn default_flow() -> Flow {
    let mut flow = flow::demo_flow();
    let first = flow.start.clone();
    flow.steps.insert(
        "boas_vindas".into(),
        Step::Condition {
            check: Check::ContactKnown,
            then_next: "boas_vindas_cliente".into(),
            else_next: first,
        },
    );
    flow.steps.insert(
        "boas_vindas_cliente".into(),
        Step::Message {
            text: "Olá{{#nome}}, {{nome}}{{/nome}}! Que bom falar com você de novo. Seu protocolo é {{protocolo}}.".into(),
            next: Some("menu".into()),
            send_protocol: true,
        },
    );
    flow.start = "boas_vindas".into();
    flow
}

/// The queues the default flow names, with pt-BR names: "atendimento" 24/7, the others Monday to
/// Friday 08:00–18:00 (São Paulo), waiting for the next shift outside it.
pub fn default_queues() -> Vec<NewQueue> {
    let hours = |h: hours::BusinessHours| serde_json::to_string(&h).ok();
    let business = |key: &str, name: &str| NewQueue {
        key: key.into(),
        name: name.into(),
        priority: 0,
        business_hours: hours(hours::BusinessHours::weekdays("08:00-18:00")),
        outside_hours_message: Some(format!(
            "Nossa equipe de {name} atende de segunda a sexta, das 8h às 18h. Sua solicitação foi registrada com o protocolo {{{{protocolo}}}} e será atendida no próximo horário de atendimento."
        )),
        outside_hours_action: "wait".into(),
    };
    vec![
        business("suporte", "Suporte"),
        business("financeiro", "Financeiro"),
        business("reclamacoes", "Reclamações e cancelamentos"),
        NewQueue {
            key: "atendimento".into(),
            name: "Atendimento".into(),
            priority: 0,
            business_hours: hours(hours::BusinessHours::always()),
            outside_hours_message: None,
            outside_hours_action: "wait".into(),
        },
    ]
}

/// On a first start without any flow: the default flow for every channel and its queues.
pub async fn seed_demo_flow(store: &Store) -> anyhow::Result<()> {
    if store.flow_count().await? > 0 {
        return Ok(());
    }
    for queue in default_queues() {
        store.ensure_queue(&queue).await?;
    }
    let loaded = LoadedFlow {
        flow: default_flow(),
        extras: FlowExtras::default(),
    };
    let definition = normalized_definition(&loaded).to_string();
    match store
        .create_flow(None, "Atendimento (padrão)", &definition, None)
        .await
    {
        Ok(_) => crate::desk::seed_desk_defaults(store).await,
        // Another instance seeded it at the same moment.
        Err(store::StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

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

fn plan_once(
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
fn asks_for_human(flow: &Flow, text: &str) -> bool {
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
fn absorb_saves(ctx: &mut FlowContext, actions: &[Action]) {
    for action in actions {
        if let Action::SaveField { field, value } = action {
            ctx.vars.insert(field.clone(), value.clone());
            ctx.fields.insert(field.clone(), value.clone());
        }
    }
}

fn handoff_of(out: &Outcome) -> Option<(&str, i32)> {
    out.actions.iter().find_map(|a| match a {
        Action::Handoff { queue, priority } => Some((queue.as_str(), *priority)),
        _ => None,
    })
}

fn saved_code(out: &Outcome) -> Option<&str> {
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
type Send = (OutboundContent, Option<String>, Option<i64>);

fn text_send(text: String) -> Send {
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
fn outbound_content(action: &Action) -> Option<Send> {
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
fn bot_message(
    conversation_id: i64,
    (content, body, media_id): Send,
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
fn unbound_session(conversation_id: i64, flow_version_id: i64, first_input: i64) -> BotSession {
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
async fn apply_turns(store: &Store, turns: &[BotTurn]) -> Vec<Result<Option<Vec<i64>>, String>> {
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

/// Timers of the bot, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct BotSettings {
    pub reminder_after: Duration,
    pub close_after: Duration,
}

impl BotSettings {
    pub fn from_config(config: &Config) -> BotSettings {
        BotSettings {
            reminder_after: Duration::from_secs(config.bot_reminder_after_secs),
            close_after: Duration::from_secs(config.bot_close_after_secs),
        }
    }

    /// How often the database is swept: often enough for the shortest timer to be on time.
    fn sweep_every(&self) -> Duration {
        (self.reminder_after.min(self.close_after) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

/// The background worker; cheap to clone.
#[derive(Clone)]
pub struct BotWorker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    outbound: Outbound,
    live: Live,
    settings: BotSettings,
    flows: Mutex<HashMap<i64, Arc<LoadedFlow>>>,
    /// Conversations being processed, and whether they were kicked again meanwhile.
    busy: Mutex<HashMap<i64, bool>>,
    /// Messages this worker enqueued: their "created" notices need no processing.
    own_messages: Mutex<HashSet<i64>>,
    permits: Semaphore,
    /// Applies turns, many per transaction; answers the turn's new message ids, or `None` when
    /// another worker applied it first.
    turns: GroupCommit<BotTurn, Option<Vec<i64>>>,
}

/// What a turn reacts to.
enum TurnInput {
    /// The flow starts; the message that opened the conversation, if it is still there.
    /// `binding`: the flow version this turn binds the conversation to (no session yet).
    Start {
        opening: Option<MessageRecord>,
        binding: Option<i64>,
    },
    /// A customer message while the flow waits in `state`.
    Message {
        state: BotState,
        message: MessageRecord,
    },
}

struct Timers {
    reminder_ms: i64,
    close_ms: i64,
}

impl BotWorker {
    pub fn new(store: Store, outbound: Outbound, live: Live, settings: BotSettings) -> BotWorker {
        // Turns mostly read and then wait for a shared commit, so many may be in flight; on
        // PostgreSQL they also share the connection pool with everything else.
        let (concurrency, writers) = match store.backend() {
            store::Backend::Sqlite => (32, 1),
            store::Backend::Postgres => (16, 2),
        };
        let turns = {
            let store = store.clone();
            GroupCommit::start(MAX_TURN_GROUP, writers, move |turns: Vec<BotTurn>| {
                let store = store.clone();
                async move { apply_turns(&store, &turns).await }
            })
        };
        BotWorker {
            inner: Arc::new(Inner {
                store,
                outbound,
                live,
                settings,
                flows: Mutex::new(HashMap::new()),
                busy: Mutex::new(HashMap::new()),
                own_messages: Mutex::new(HashSet::new()),
                permits: Semaphore::new(concurrency),
                turns,
            }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut notices = self.inner.live.subscribe();
        let mut sweep = tokio::time::interval(self.inner.settings.sweep_every());
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    // A conversation opens with a customer message, whose notice below kicks it.
                    Ok(Notice::MessageCreated { conversation_id, message_id }) => {
                        let own = self.inner.own_messages.lock().map(|mut m| m.remove(&message_id)).unwrap_or(false);
                        if !own {
                            self.kick(conversation_id);
                        }
                    }
                    Ok(_) => {}
                    // Too far behind the bus: the database knows what is pending.
                    Err(RecvError::Lagged(_)) => self.sweep().await,
                    Err(RecvError::Closed) => return,
                },
                _ = sweep.tick() => self.sweep().await,
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn sweep(&self) {
        let store = &self.inner.store;
        match store.bot_work(SWEEP_BATCH).await {
            Ok(ids) => ids.into_iter().for_each(|id| self.kick(id)),
            Err(e) => tracing::warn!(error = %e, "bot sweep failed"),
        }
        match store.bot_sessions_due(store::now_ms(), SWEEP_BATCH).await {
            Ok(due) => due.into_iter().for_each(|s| self.kick(s.conversation_id)),
            Err(e) => tracing::warn!(error = %e, "bot inactivity sweep failed"),
        }
        if let Ok(mut own) = self.inner.own_messages.lock()
            && own.len() > 100_000
        {
            // Notices we never saw (lagged): forget them rather than grow.
            own.clear();
        }
    }

    /// Processes the conversation now, or once more after the task already on it finishes.
    fn kick(&self, conversation_id: i64) {
        {
            let Ok(mut busy) = self.inner.busy.lock() else {
                return;
            };
            if let Some(again) = busy.get_mut(&conversation_id) {
                *again = true;
                return;
            }
            busy.insert(conversation_id, false);
        }
        let worker = self.clone();
        tokio::spawn(async move {
            let _permit = worker.inner.permits.acquire().await;
            loop {
                if let Err(e) = worker.process(conversation_id).await {
                    tracing::warn!(conversation_id, error = %format!("{e:#}"), "bot turn failed; the sweep retries it");
                }
                let Ok(mut busy) = worker.inner.busy.lock() else {
                    return;
                };
                match busy.get_mut(&conversation_id) {
                    Some(again) if *again => *again = false,
                    _ => {
                        busy.remove(&conversation_id);
                        return;
                    }
                }
            }
        });
    }

    /// Feeds the conversation's pending inputs to its flow, then checks its inactivity timers.
    pub async fn process(&self, conversation_id: i64) -> anyhow::Result<()> {
        let store = &self.inner.store;
        for _ in 0..MAX_TURNS_PER_PASS {
            let Some(conv) = store.bot_conversation(conversation_id).await? else {
                return Ok(());
            };
            if conv.state != BOT_STATE || conv.closed_at.is_some() {
                return Ok(());
            }
            let (session, binding) = match store.bot_session(conversation_id).await? {
                Some(session) => (session, None),
                None => match store.current_flow_version(conv.channel_id).await? {
                    // The first turn binds the conversation to the flow's current version.
                    Some(version) => {
                        let opening = store.next_bot_input(conversation_id, 0).await?;
                        let first_input = opening.as_ref().map_or(0, |m| m.id);
                        let session = unbound_session(conversation_id, version.id, first_input);
                        (session, Some((version.id, opening)))
                    }
                    None => {
                        tracing::warn!(
                            conversation_id,
                            "no enabled flow any more; the conversation goes to a person"
                        );
                        self.release(&conv).await?;
                        return Ok(());
                    }
                },
            };
            if session.finished_at.is_some() {
                return Ok(());
            }
            let loaded = match self.load_flow(session.flow_version_id).await? {
                Ok(loaded) => loaded,
                Err(e) => {
                    tracing::error!(conversation_id, error = %e, "stored flow unusable; the conversation goes to a person");
                    self.release(&conv).await?;
                    return Ok(());
                }
            };
            let consumed = match &session.state {
                None => {
                    let (binding, opening) = match binding {
                        Some((version, opening)) => (Some(version), opening),
                        None => match session.last_input_message_id {
                            0 => (None, None),
                            id => (None, store.message(id).await?),
                        },
                    };
                    let start = TurnInput::Start { opening, binding };
                    self.turn(&conv, &session, &loaded, start).await?;
                    session.last_input_message_id
                }
                Some(state_json) => match store
                    .next_bot_input(conversation_id, session.last_input_message_id)
                    .await?
                {
                    Some(message) => {
                        let consumed = message.id;
                        // An unreadable state restarts the flow (the interpreter does that for an
                        // unknown step) rather than stranding the customer.
                        let state: BotState =
                            serde_json::from_str(state_json).unwrap_or(BotState {
                                step: String::new(),
                                invalid_attempts: 0,
                                protocol_sent: conv.protocol_sent_at.is_some(),
                            });
                        self.turn(
                            &conv,
                            &session,
                            &loaded,
                            TurnInput::Message { state, message },
                        )
                        .await?;
                        consumed
                    }
                    None => {
                        self.check_inactivity(&conv, &session, &loaded).await?;
                        return Ok(());
                    }
                },
            };
            // The usual case: the customer has not written again yet, and the turn just reset
            // the inactivity clock; nothing more to read.
            if store
                .next_bot_input(conversation_id, consumed)
                .await?
                .is_none()
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Hands the conversation to a person without the flow, the protocol informed first (SAC).
    async fn release(&self, conv: &BotConversation) -> anyhow::Result<()> {
        let informing = conv.protocol_sent_at.is_none();
        if informing {
            let ctx = flow_context(conv, &[], &[], store::now_ms());
            let text = domain::text::render_template(flow::DEFAULT_PROTOCOL_TEXT, &ctx.vars);
            self.send(
                conv.id,
                text_send(text),
                format!("bot:{}:protocol", conv.id),
            )
            .await?;
        }
        self.inner
            .store
            .release_from_bot(conv.id, informing)
            .await?;
        Ok(())
    }

    /// The parsed flow version; the inner error says why a stored definition cannot run (the
    /// outer one is the database's).
    async fn load_flow(&self, version_id: i64) -> anyhow::Result<Result<Arc<LoadedFlow>, String>> {
        if let Some(found) = self
            .inner
            .flows
            .lock()
            .ok()
            .and_then(|m| m.get(&version_id).cloned())
        {
            return Ok(Ok(found));
        }
        let Some(version) = self.inner.store.flow_version(version_id).await? else {
            return Ok(Err(format!("flow version {version_id} does not exist")));
        };
        let value: Value = match serde_json::from_str(&version.definition) {
            Ok(value) => value,
            Err(e) => return Ok(Err(format!("flow definition is not JSON: {e}"))),
        };
        let loaded = match check_definition(&value) {
            Ok(loaded) => Arc::new(loaded),
            Err(errors) => {
                let messages: Vec<String> = errors.into_iter().map(|e| e.message).collect();
                return Ok(Err(format!(
                    "invalid flow definition: {}",
                    messages.join(" ")
                )));
            }
        };
        if let Ok(mut cache) = self.inner.flows.lock() {
            // Versions never change, so the cache only needs a bound.
            if cache.len() > 1000 {
                cache.clear();
            }
            cache.insert(version_id, loaded.clone());
        }
        Ok(Ok(loaded))
    }

    fn timers(&self, loaded: &LoadedFlow) -> Timers {
        let i = &loaded.extras.inactivity;
        let ms = |secs: Option<u64>, default: Duration| {
            i64::try_from(secs.map(Duration::from_secs).unwrap_or(default).as_millis())
                .unwrap_or(i64::MAX / 2)
        };
        Timers {
            reminder_ms: ms(i.reminder_after_secs, self.inner.settings.reminder_after),
            close_ms: ms(i.close_after_secs, self.inner.settings.close_after),
        }
    }

    /// Enqueues one bot message outside a turn; returns its id.
    async fn send(&self, conversation_id: i64, send: Send, key: String) -> anyhow::Result<i64> {
        let enqueued = self
            .inner
            .outbound
            .enqueue(bot_message(conversation_id, send, key)?)
            .await?;
        let id = enqueued.message().id;
        if let Enqueued::Created(_) = enqueued {
            self.remember_own(&[id]);
        }
        Ok(id)
    }

    fn remember_own(&self, message_ids: &[i64]) {
        if let Ok(mut own) = self.inner.own_messages.lock() {
            own.extend(message_ids);
        }
    }

    /// Commits a turn (with the turns of other conversations ready at the same time) and
    /// announces its messages; false when another worker applied it first.
    async fn commit(&self, turn: BotTurn) -> anyhow::Result<bool> {
        let conversation_id = turn.conversation_id;
        let applied = self
            .inner
            .turns
            .submit(turn)
            .await
            .map_err(|e| anyhow::anyhow!("cannot apply the bot turn: {e}"))?;
        let Some(created) = applied else {
            tracing::debug!(conversation_id, "bot turn applied elsewhere first");
            return Ok(false);
        };
        // Known as ours before anyone hears of them, so they do not wake this worker again.
        self.remember_own(&created);
        self.inner.outbound.announce(conversation_id, &created);
        Ok(true)
    }

    /// One turn: the flow start (`input` None) or one customer message.
    async fn turn(
        &self,
        conv: &BotConversation,
        session: &BotSession,
        loaded: &LoadedFlow,
        input: TurnInput,
    ) -> anyhow::Result<bool> {
        let store = &self.inner.store;
        let now = store::now_ms();
        let timers = self.timers(loaded);
        let (state, message, bot_input, binding) = match input {
            TurnInput::Start { opening, binding } => {
                (None, None, opening.as_ref().and_then(bot_input), binding)
            }
            TurnInput::Message { state, message } => {
                let input = bot_input(&message);
                (Some(state), Some(message), input, None)
            }
        };
        if let (Some(message), None) = (&message, &bot_input) {
            // Not an answer (a reaction, a system notice): consumed without a turn.
            return self
                .commit(BotTurn {
                    conversation_id: conv.id,
                    start_flow_version: None,
                    expect_last_input: session.last_input_message_id,
                    expect_started: true,
                    require_no_pending_input: false,
                    input_message_id: message.id,
                    state_json: session.state.clone(),
                    activity: false,
                    reminder_due_at: None,
                    close_due_at: None,
                    contact: ContactUpdate::default(),
                    fields: Vec::new(),
                    protocol_sent: false,
                    finish: None,
                    sends: Vec::new(),
                })
                .await;
        }
        let queues = store.queues().await?;
        let fields = store.conversation_fields(conv.id).await?;
        let mut ctx = flow_context(conv, &fields, &queues, now);
        let queue_names: HashMap<String, String> = queues
            .iter()
            .map(|q| (q.key.clone(), q.name.clone()))
            .collect();
        let mut outcome = plan_turn(
            loaded,
            &ctx,
            state.as_ref(),
            bot_input.as_ref(),
            &queue_names,
        );

        // Identification by Código: a CPF/CNPJ another contact already gave brings what we know of
        // that customer (name, e-mail), so the flow does not ask it again.
        let mut contact = ContactUpdate::default();
        if let Some(code) = saved_code(&outcome).map(str::to_owned)
            && conv.contact_code.as_deref() != Some(code.as_str())
            && let Some(other) = store
                .contacts_with_code(&code, conv.contact_id)
                .await?
                .into_iter()
                .next()
        {
            let mut recognized = false;
            if conv.contact_name.is_none()
                && let Some(name) = other.name.filter(|n| !n.trim().is_empty())
            {
                ctx.vars.insert("contact.name".into(), name.clone());
                ctx.fields.insert("contact.name".into(), name.clone());
                contact.name = Some(name);
                recognized = true;
            }
            if conv.contact_email.is_none()
                && let Some(email) = other.email.filter(|e| !e.trim().is_empty())
            {
                ctx.vars.insert("contact.email".into(), email.clone());
                ctx.fields.insert("contact.email".into(), email.clone());
                contact.email = Some(email);
                recognized = true;
            }
            if recognized {
                outcome = plan_turn(
                    loaded,
                    &ctx,
                    state.as_ref(),
                    bot_input.as_ref(),
                    &queue_names,
                );
            }
        }

        let key_base = match &message {
            Some(m) => format!("bot:{}:{}", conv.id, m.id),
            None => format!("bot:{}:start", conv.id),
        };
        let mut vars = ctx.vars.clone();
        let mut fields_out = Vec::new();
        let mut protocol_sent = false;
        let mut protocol_informed = conv.protocol_sent_at.is_some();
        let mut finish: Option<(BotOutcome, Option<(i64, i64)>)> = None;
        let mut sends = Vec::new();
        for action in &outcome.actions {
            if let Some(send) = outbound_content(action) {
                sends.push(send);
                continue;
            }
            match action {
                Action::SaveField { field, value } => {
                    vars.insert(field.clone(), value.clone());
                    match field.as_str() {
                        "contact.code" => contact.code = Some(value.clone()),
                        "contact.name" => contact.name = Some(value.clone()),
                        "contact.email" => contact.email = Some(value.clone()),
                        _ => fields_out.push((field.clone(), value.clone())),
                    }
                }
                Action::SendProtocol => {
                    protocol_sent = true;
                    protocol_informed = true;
                }
                Action::Handoff { queue, priority } => {
                    // The SAC rule, enforced here whatever the flow did: the customer knows the
                    // protocol before a person takes over.
                    if !protocol_informed {
                        let text = domain::text::render_template(&loaded.flow.protocol_text, &vars);
                        sends.push(text_send(text));
                        protocol_sent = true;
                    }
                    let q = self.queue_for(&queues, queue).await?;
                    if hours::queue_open(q.business_hours.as_deref(), now) {
                        finish = Some((BotOutcome::Handoff, Some((q.id, i64::from(*priority)))));
                    } else {
                        if let Some(text) = q
                            .outside_hours_message
                            .as_deref()
                            .filter(|t| !t.trim().is_empty())
                        {
                            let mut vars = vars.clone();
                            vars.insert("fila".into(), q.name.clone());
                            let text = domain::text::render_template(text, &vars);
                            sends.push(text_send(text));
                        }
                        finish = Some(if q.outside_hours_action == "end" {
                            (BotOutcome::OutsideHours, None)
                        } else {
                            (BotOutcome::Handoff, Some((q.id, i64::from(*priority))))
                        });
                    }
                    break;
                }
                Action::End => {
                    finish = Some((BotOutcome::Ended, None));
                    break;
                }
                _ => {}
            }
        }
        let input_message_id = message
            .as_ref()
            .map(|m| m.id)
            .unwrap_or(session.last_input_message_id);
        let sends = sends
            .into_iter()
            .enumerate()
            .map(|(n, send)| bot_message(conv.id, send, format!("{key_base}:{n}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let state_json = match (&finish, &outcome.state) {
            (None, Some(state)) => Some(serde_json::to_string(state)?),
            _ => None,
        };
        // The interpreter always ends a turn waiting or done; "neither" would strand the customer.
        let finish = match (finish, &state_json) {
            (None, None) => Some((BotOutcome::Ended, None)),
            (f, _) => f,
        };
        self.commit(BotTurn {
            conversation_id: conv.id,
            start_flow_version: binding,
            expect_last_input: session.last_input_message_id,
            expect_started: session.state.is_some(),
            require_no_pending_input: false,
            input_message_id,
            state_json,
            activity: true,
            reminder_due_at: Some(now + timers.reminder_ms),
            close_due_at: Some(now + timers.close_ms),
            contact,
            fields: fields_out,
            protocol_sent,
            finish: finish.map(|(outcome, handoff)| BotFinish {
                outcome,
                handoff,
                last_bot_message_id: Some(input_message_id),
            }),
            sends,
        })
        .await
    }

    /// The queue a hand-off names; created (always open) when an admin has not created it yet, so
    /// the customer still reaches a person.
    async fn queue_for(&self, queues: &[QueueRecord], key: &str) -> anyhow::Result<QueueRecord> {
        if let Some(q) = queues.iter().find(|q| q.key == key) {
            return Ok(q.clone());
        }
        tracing::warn!(
            queue = key,
            "a flow hands off to a queue that does not exist; creating it"
        );
        Ok(self
            .inner
            .store
            .ensure_queue(&NewQueue {
                key: key.to_owned(),
                name: key.to_owned(),
                priority: 0,
                business_hours: None,
                outside_hours_message: None,
                outside_hours_action: "wait".into(),
            })
            .await?)
    }

    /// Reminds a silent customer once, then closes the conversation as abandoned in the bot.
    async fn check_inactivity(
        &self,
        conv: &BotConversation,
        session: &BotSession,
        loaded: &LoadedFlow,
    ) -> anyhow::Result<()> {
        let now = store::now_ms();
        let close_due = session.close_due_at.is_some_and(|t| t <= now);
        let remind_due =
            session.reminder_sent_at.is_none() && session.reminder_due_at.is_some_and(|t| t <= now);
        if !close_due && !remind_due {
            return Ok(());
        }
        let ctx = flow_context(conv, &[], &[], now);
        let i = &loaded.extras.inactivity;
        if close_due {
            let template = i.close_text.as_deref().unwrap_or(DEFAULT_CLOSE_TEXT);
            let text = domain::text::render_template(template, &ctx.vars);
            let key = format!("bot:{}:close:{}", conv.id, session.last_input_message_id);
            let sends = match text.trim().is_empty() {
                true => Vec::new(),
                false => vec![bot_message(conv.id, text_send(text), key)?],
            };
            let closed = self
                .commit(BotTurn {
                    conversation_id: conv.id,
                    start_flow_version: None,
                    expect_last_input: session.last_input_message_id,
                    expect_started: true,
                    // The customer answered just now: not abandoned after all.
                    require_no_pending_input: true,
                    input_message_id: session.last_input_message_id,
                    state_json: session.state.clone(),
                    activity: false,
                    reminder_due_at: None,
                    close_due_at: None,
                    contact: ContactUpdate::default(),
                    fields: Vec::new(),
                    protocol_sent: false,
                    finish: Some(BotFinish {
                        outcome: BotOutcome::AbandonedInBot,
                        handoff: None,
                        last_bot_message_id: Some(session.last_input_message_id),
                    }),
                    sends,
                })
                .await?;
            if closed {
                tracing::info!(
                    conversation_id = conv.id,
                    "conversation closed: abandoned in the bot"
                );
            }
        } else {
            let template = i.reminder_text.as_deref().unwrap_or(DEFAULT_REMINDER_TEXT);
            let text = domain::text::render_template(template, &ctx.vars);
            let key = format!("bot:{}:reminder:{}", conv.id, session.last_input_message_id);
            if !text.trim().is_empty() {
                self.send(conv.id, text_send(text), key).await?;
            }
            self.inner
                .store
                .mark_bot_reminder(conv.id, session.last_activity_at)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> FlowContext {
        FlowContext {
            vars: BTreeMap::from([("protocolo".to_owned(), "20261125000001".to_owned())]),
            ..FlowContext::default()
        }
    }

    #[test]
    fn default_flow_is_valid_and_greets_returning_customers_by_name() {
        let loaded = LoadedFlow {
            flow: default_flow(),
            extras: FlowExtras::default(),
        };
        let normalized = normalized_definition(&loaded);
        assert_eq!(check_definition(&normalized).expect("valid"), loaded);
        let mut known = ctx();
        known.vars.insert("nome".into(), "Ana".into());
        known.contact_known = true;
        let out = plan_turn(&loaded, &known, None, None, &HashMap::new());
        assert_eq!(
            out.actions[1],
            Action::SendText(
                "Olá, Ana! Que bom falar com você de novo. Seu protocolo é 20261125000001.".into()
            )
        );
        let out = plan_turn(&loaded, &ctx(), None, None, &HashMap::new());
        assert_eq!(
            out.actions[1],
            Action::SendText(
                "Olá! Bem-vindo ao atendimento. Seu protocolo é 20261125000001.".into()
            )
        );
    }

    #[test]
    fn a_known_document_is_not_asked_again() {
        let loaded = LoadedFlow {
            flow: default_flow(),
            extras: FlowExtras::default(),
        };
        let mut c = ctx();
        c.vars.insert("contact.code".into(), "52998224725".into());
        let state = BotState {
            step: "menu".into(),
            invalid_attempts: 0,
            protocol_sent: true,
        };
        let names = HashMap::from([("suporte".to_owned(), "Suporte".to_owned())]);
        let out = plan_turn(
            &loaded,
            &c,
            Some(&state),
            Some(&BotInput::Text("1".into())),
            &names,
        );
        assert!(
            !out.actions
                .iter()
                .any(|a| matches!(a, Action::SendText(t) if t.contains("CPF"))),
            "{:?}",
            out.actions
        );
        assert!(out.actions.contains(&Action::Handoff {
            queue: "suporte".into(),
            priority: 0
        }));
        // Without the flag the question is asked.
        let asking = LoadedFlow {
            extras: FlowExtras {
                skip_known_answers: false,
                ..FlowExtras::default()
            },
            ..loaded
        };
        let out = plan_turn(
            &asking,
            &c,
            Some(&state),
            Some(&BotInput::Text("1".into())),
            &names,
        );
        assert_eq!(out.state.map(|s| s.step), Some("suporte_documento".into()));
    }

    #[test]
    fn fila_names_the_queue_the_turn_hands_off_to() {
        let mut flow = flow::demo_flow();
        if let Some(Step::Handoff { text, .. }) = flow.steps.get_mut("financeiro") {
            *text = Some("Transferindo para {{fila}}.".into());
        }
        let loaded = LoadedFlow {
            flow,
            extras: FlowExtras::default(),
        };
        let state = BotState {
            step: "menu".into(),
            invalid_attempts: 0,
            protocol_sent: true,
        };
        let names = HashMap::from([("financeiro".to_owned(), "Financeiro e cobrança".to_owned())]);
        let out = plan_turn(
            &loaded,
            &ctx(),
            Some(&state),
            Some(&BotInput::Text("financeiro".into())),
            &names,
        );
        assert!(
            out.actions.contains(&Action::SendText(
                "Transferindo para Financeiro e cobrança.".into()
            )),
            "{:?}",
            out.actions
        );
    }

    #[test]
    fn definitions_are_checked_with_pt_br_messages() {
        let mut bad = serde_json::to_value(flow::demo_flow()).unwrap();
        bad["start"] = "nada".into();
        bad["inactivity"] = serde_json::json!({"reminder_after_secs": 60, "close_after_secs": 30});
        let errors = check_definition(&bad).unwrap_err();
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        assert!(codes.contains(&"unknown_start"), "{codes:?}");
        assert!(codes.contains(&"invalid_inactivity"), "{codes:?}");
        assert!(errors.iter().all(|e| !e.message.is_empty()));
        let errors = check_definition(&serde_json::json!({"steps": 1})).unwrap_err();
        assert_eq!(errors[0].code, "invalid_json");
    }

    #[test]
    fn phases() {
        assert_eq!(message_phase(None, 5), "human");
        let running = BotPhase {
            running: true,
            last_bot_message_id: None,
        };
        assert_eq!(message_phase(Some(running), 5), "bot");
        let done = BotPhase {
            running: false,
            last_bot_message_id: Some(5),
        };
        assert_eq!(message_phase(Some(done), 5), "bot");
        assert_eq!(message_phase(Some(done), 6), "human");
    }
}
