//! The bot flow: a JSON-serializable graph of steps and a pure interpreter.
//!
//! The interpreter never talks to WhatsApp or the database: it returns the
//! [`Action`]s to perform and the [`BotState`] to persist, and the server
//! executes them in order. Every customer-visible text is produced here,
//! already rendered with the context variables.
//!
//! SAC rules baked in (Decreto 11.034/2022): the human keywords work at any
//! step; a customer is informed of the protocol number before any transfer to
//! a human; [`validate_flow`] refuses flows whose first menu cannot reach a
//! human without asking for data; and when the bot gets stuck (broken flow,
//! too many invalid answers on a menu) it hands the customer to a person
//! rather than looping.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::document::Document;
use crate::text::{fold_for_match, render_template, words};

/// Automatic steps (Message, Condition, SendMedia) run in one turn before the
/// interpreter gives up and hands off; guards flows that were not validated.
pub const MAX_CHAIN_STEPS: usize = 50;
pub const DEFAULT_PROTOCOL_TEXT: &str = "Seu número de protocolo é {{protocolo}}.";
pub const DEFAULT_MENU_INVALID_TEXT: &str =
    "Não entendi sua resposta. Escolha uma das opções ou digite o número correspondente.";
pub const DEFAULT_LIST_BUTTON_LABEL: &str = "Ver opções";

/// WhatsApp Cloud API limits for interactive messages; exceeding any of them
/// makes the Graph API reject the message, so the menu falls back to text.
pub const MAX_BUTTONS: usize = 3;
pub const MAX_BUTTON_TITLE_CHARS: usize = 20;
pub const MAX_LIST_ROWS: usize = 10;
pub const MAX_LIST_ROW_TITLE_CHARS: usize = 24;
pub const MAX_LIST_ROW_DESCRIPTION_CHARS: usize = 72;
pub const MAX_LIST_BUTTON_LABEL_CHARS: usize = 20;
pub const MAX_INTERACTIVE_BODY_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub steps: BTreeMap<String, Step>,
    pub start: String,
    /// Typed anywhere, they send the customer straight to `human_queue`.
    #[serde(default = "default_human_keywords")]
    pub human_keywords: Vec<String>,
    pub human_queue: String,
    #[serde(default)]
    pub human_priority: i32,
    /// Said before a keyword (or fallback) handoff.
    #[serde(default)]
    pub human_text: Option<String>,
    /// Informs the protocol when a handoff happens before any step did.
    #[serde(default = "default_protocol_text")]
    pub protocol_text: String,
    #[serde(default = "default_max_invalid_attempts")]
    pub max_invalid_attempts: u32,
}

fn default_human_keywords() -> Vec<String> {
    vec!["atendente".to_owned(), "humano".to_owned()]
}

fn default_protocol_text() -> String {
    DEFAULT_PROTOCOL_TEXT.to_owned()
}

fn default_max_invalid_attempts() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    Message {
        text: String,
        /// `None` ends the bot.
        #[serde(default)]
        next: Option<String>,
        /// This step's text informs the protocol (put `{{protocolo}}` in it).
        #[serde(default)]
        send_protocol: bool,
    },
    Menu {
        text: String,
        options: Vec<MenuOption>,
        #[serde(default)]
        invalid_text: String,
        /// Label of the button that opens a list (at most 20 characters).
        #[serde(default)]
        button_label: Option<String>,
        #[serde(default)]
        send_protocol: bool,
        /// Where to go after `max_invalid_attempts`; `None` hands off to the
        /// human queue, since a customer who cannot use the menu needs a person.
        #[serde(default)]
        on_fail: Option<String>,
    },
    Ask {
        text: String,
        validator: Validator,
        /// `contact.<field>`, `protocol.<field>` or `custom.<key>`.
        save_to: String,
        /// Empty uses a default message per validator. For `cpf_cnpj` the
        /// precise document error is always said first.
        #[serde(default)]
        invalid_text: String,
        next: String,
        on_fail: String,
    },
    Condition {
        check: Check,
        then_next: String,
        else_next: String,
    },
    Handoff {
        queue: String,
        #[serde(default)]
        priority: i32,
        #[serde(default)]
        text: Option<String>,
    },
    SendMedia {
        media_url_or_id: String,
        kind: MediaKind,
        #[serde(default)]
        caption: Option<String>,
        /// Shown for documents (PDFs), otherwise WhatsApp says "Untitled".
        #[serde(default)]
        filename: Option<String>,
        #[serde(default)]
        next: Option<String>,
    },
    End {
        #[serde(default)]
        text: Option<String>,
    },
    /// "Agendar lembrete": schedules an approved template for this customer, `delay_minutes`
    /// from now or on the date an earlier step collected (`date_field`, e.g. `custom.vencimento`,
    /// at `time` São Paulo time, `days_before` it). The server creates the schedule; the flow
    /// goes on without waiting.
    ScheduleReminder {
        /// The template's name in the channel's account.
        template: String,
        #[serde(default = "default_reminder_language")]
        language: String,
        #[serde(default)]
        delay_minutes: Option<u32>,
        #[serde(default)]
        date_field: Option<String>,
        /// `HH:MM`; 09:00 when absent.
        #[serde(default)]
        time: Option<String>,
        #[serde(default)]
        days_before: u32,
        /// The template's body variables by name ("1", "nome"), rendered with `{{...}}`.
        #[serde(default)]
        variables: BTreeMap<String, String>,
        /// Said to the customer after scheduling (e.g. "Vamos lembrar você no dia {{...}}").
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        next: Option<String>,
    },
}

fn default_reminder_language() -> String {
    "pt_BR".to_owned()
}

/// When a reminder the flow schedules goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReminderWhen {
    AfterMinutes {
        minutes: u32,
    },
    /// `date` as collected (ISO `AAAA-MM-DD` from the date validator), `time` `HH:MM`.
    OnDate {
        date: String,
        time: String,
        days_before: u32,
    },
}

impl Step {
    /// Steps where the bot stops and waits for the customer.
    pub fn waits_for_input(&self) -> bool {
        matches!(self, Step::Menu { .. } | Step::Ask { .. })
    }

    /// Every step id this step may lead to.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            Step::Message { next, .. }
            | Step::SendMedia { next, .. }
            | Step::ScheduleReminder { next, .. } => next.iter().map(String::as_str).collect(),
            Step::Menu {
                options, on_fail, ..
            } => options
                .iter()
                .map(|o| o.next.as_str())
                .chain(on_fail.as_deref())
                .collect(),
            Step::Ask { next, on_fail, .. } => vec![next.as_str(), on_fail.as_str()],
            Step::Condition {
                then_next,
                else_next,
                ..
            } => vec![then_next.as_str(), else_next.as_str()],
            Step::Handoff { .. } | Step::End { .. } => Vec::new(),
        }
    }

    /// Targets reached without the customer saying anything.
    fn automatic_targets(&self) -> Vec<&str> {
        match self {
            Step::Message { .. }
            | Step::SendMedia { .. }
            | Step::Condition { .. }
            | Step::ScheduleReminder { .. } => self.targets(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuOption {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub next: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    CpfCnpj,
    Email,
    Phone,
    Date,
    FreeText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Check {
    /// Whether the queue is within business hours now (supplied by the
    /// caller in [`FlowContext::business_hours_open`]; unknown = closed).
    BusinessHours {
        queue: String,
    },
    /// Case- and accent-insensitive comparison with a field of the context
    /// (or one saved earlier in the same turn).
    FieldEquals {
        field: String,
        value: String,
    },
    ContactKnown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotState {
    /// The Menu or Ask step waiting for the customer.
    pub step: String,
    #[serde(default)]
    pub invalid_attempts: u32,
    #[serde(default)]
    pub protocol_sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotInput {
    Text(String),
    ButtonReply { id: String, title: String },
    ListReply { id: String, title: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowContext {
    /// Template variables: `nome`, `protocolo` (must be set before the flow
    /// runs: the protocol exists from the moment the conversation opens),
    /// `fila`, `contact.*`, `custom.*`.
    pub vars: BTreeMap<String, String>,
    /// Per queue key: whether it is within business hours now.
    pub business_hours_open: BTreeMap<String, bool>,
    pub contact_known: bool,
    /// Values `Check::FieldEquals` looks at.
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// `None`: the bot is done with this conversation (handed off or ended).
    pub state: Option<BotState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    SendText(String),
    /// At most 3 buttons, titles up to 20 characters: `(id, title)`.
    SendButtons {
        body: String,
        buttons: Vec<(String, String)>,
    },
    /// One section of at most 10 rows: `(id, title, description)`.
    SendList {
        body: String,
        button_label: String,
        rows: Vec<(String, String, Option<String>)>,
    },
    SendMedia {
        media_url_or_id: String,
        kind: MediaKind,
        caption: Option<String>,
        filename: Option<String>,
    },
    /// Persist a validated answer; `value` is normalized (a document's
    /// normalized form, an ISO date, a phone with country code).
    SaveField {
        field: String,
        value: String,
    },
    Handoff {
        queue: String,
        priority: i32,
    },
    /// The protocol number is being informed to the customer now. The text
    /// carrying the number is the `SendText` right after it (already rendered
    /// from `{{protocolo}}`), so the server must not send another one: it only
    /// makes sure the protocol exists and records that it was informed.
    SendProtocol,
    /// The bot finished without a handoff; the conversation can be closed.
    End,
    /// Schedule `template` for this customer (see [`Step::ScheduleReminder`]); `variables`
    /// already rendered.
    ScheduleReminder {
        template: String,
        language: String,
        when: ReminderWhen,
        variables: BTreeMap<String, String>,
    },
}

/// Runs the flow from its start step for a new conversation.
pub fn start(flow: &Flow, ctx: &FlowContext) -> Outcome {
    Run::new(flow, ctx, false).run_from(&flow.start)
}

/// Feeds one customer message to a conversation waiting at `state.step`.
pub fn on_input(flow: &Flow, state: &BotState, input: &BotInput, ctx: &FlowContext) -> Outcome {
    let run = Run::new(flow, ctx, state.protocol_sent);
    let (text, reply_id) = match input {
        BotInput::Text(t) => (t.as_str(), None),
        BotInput::ButtonReply { id, title } | BotInput::ListReply { id, title } => {
            (title.as_str(), Some(id.as_str()))
        }
    };
    match flow.steps.get(&state.step) {
        Some(Step::Menu { options, .. }) => {
            // A button of this menu is an explicit choice and wins over any
            // keyword its title may contain.
            if let Some(idx) = reply_id.and_then(|id| options.iter().position(|o| o.id == id)) {
                return run.run_from(&options[idx].next);
            }
            if run.asks_for_human(text, false) {
                return run.human_handoff();
            }
            match match_option(options, text) {
                Some(idx) => run.run_from(&options[idx].next),
                None => run.menu_invalid(&state.step, state.invalid_attempts),
            }
        }
        Some(Step::Ask {
            validator,
            save_to,
            invalid_text,
            next,
            on_fail,
            ..
        }) => run.answer(
            &state.step,
            state.invalid_attempts,
            text,
            AskStep {
                validator: *validator,
                save_to,
                invalid_text,
                next,
                on_fail,
            },
        ),
        Some(_) => {
            // A state never rests on an automatic step; if one was stored
            // anyway, carry on from it.
            if run.asks_for_human(text, false) {
                return run.human_handoff();
            }
            run.run_from(&state.step)
        }
        None => {
            // The flow was edited and the step is gone: start over rather
            // than strand the customer.
            if run.asks_for_human(text, false) {
                return run.human_handoff();
            }
            run.run_from(&flow.start)
        }
    }
}

struct AskStep<'a> {
    validator: Validator,
    save_to: &'a str,
    invalid_text: &'a str,
    next: &'a str,
    on_fail: &'a str,
}

/// One turn of the interpreter: accumulates actions and the context updates
/// made during the turn (saved fields are visible to later steps at once).
struct Run<'a> {
    flow: &'a Flow,
    ctx: &'a FlowContext,
    vars: BTreeMap<String, String>,
    saved: BTreeMap<String, String>,
    actions: Vec<Action>,
    protocol_sent: bool,
}

impl<'a> Run<'a> {
    fn new(flow: &'a Flow, ctx: &'a FlowContext, protocol_sent: bool) -> Self {
        Run {
            flow,
            ctx,
            vars: ctx.vars.clone(),
            saved: BTreeMap::new(),
            actions: Vec::new(),
            protocol_sent,
        }
    }

    fn render(&self, template: &str) -> String {
        render_template(template, &self.vars)
    }

    fn say(&mut self, template: &str) {
        let text = self.render(template);
        if !text.trim().is_empty() {
            self.actions.push(Action::SendText(text));
        }
    }

    fn save(&mut self, field: &str, value: String) {
        self.vars.insert(field.to_owned(), value.clone());
        self.saved.insert(field.to_owned(), value.clone());
        self.actions.push(Action::SaveField {
            field: field.to_owned(),
            value,
        });
    }

    /// For steps flagged `send_protocol`: their own text carries the number.
    fn mark_protocol(&mut self) {
        if !self.protocol_sent {
            self.actions.push(Action::SendProtocol);
            self.protocol_sent = true;
        }
    }

    fn ensure_protocol_informed(&mut self) {
        if !self.protocol_sent {
            self.actions.push(Action::SendProtocol);
            let text = self.render(&self.flow.protocol_text);
            self.actions.push(Action::SendText(text));
            self.protocol_sent = true;
        }
    }

    fn handoff(mut self, queue: &str, priority: i32, text: Option<&str>) -> Outcome {
        self.ensure_protocol_informed();
        if let Some(t) = text {
            self.say(t);
        }
        self.actions.push(Action::Handoff {
            queue: queue.to_owned(),
            priority,
        });
        self.done()
    }

    fn human_handoff(self) -> Outcome {
        let flow = self.flow;
        self.handoff(
            &flow.human_queue,
            flow.human_priority,
            flow.human_text.as_deref(),
        )
    }

    fn finish(mut self) -> Outcome {
        self.actions.push(Action::End);
        self.done()
    }

    fn done(self) -> Outcome {
        Outcome {
            actions: self.actions,
            state: None,
        }
    }

    fn wait_at(self, step: &str, invalid_attempts: u32) -> Outcome {
        Outcome {
            state: Some(BotState {
                step: step.to_owned(),
                invalid_attempts,
                protocol_sent: self.protocol_sent,
            }),
            actions: self.actions,
        }
    }

    fn run_from(mut self, step_id: &str) -> Outcome {
        let flow = self.flow;
        let mut current = step_id;
        for _ in 0..MAX_CHAIN_STEPS {
            let Some(step) = flow.steps.get(current) else {
                return self.human_handoff();
            };
            match step {
                Step::Message {
                    text,
                    next,
                    send_protocol,
                } => {
                    if *send_protocol {
                        self.mark_protocol();
                    }
                    self.say(text);
                    match next {
                        Some(n) => current = n,
                        None => return self.finish(),
                    }
                }
                Step::Menu { send_protocol, .. } => {
                    if *send_protocol {
                        self.mark_protocol();
                    }
                    self.show_menu(step);
                    return self.wait_at(current, 0);
                }
                Step::Ask { text, .. } => {
                    self.say(text);
                    return self.wait_at(current, 0);
                }
                Step::Condition {
                    check,
                    then_next,
                    else_next,
                } => {
                    current = if self.check(check) {
                        then_next
                    } else {
                        else_next
                    };
                }
                Step::Handoff {
                    queue,
                    priority,
                    text,
                } => {
                    return self.handoff(queue, *priority, text.as_deref());
                }
                Step::SendMedia {
                    media_url_or_id,
                    kind,
                    caption,
                    filename,
                    next,
                } => {
                    let caption = caption
                        .as_deref()
                        .map(|c| self.render(c))
                        .filter(|c| !c.trim().is_empty());
                    self.actions.push(Action::SendMedia {
                        media_url_or_id: media_url_or_id.clone(),
                        kind: *kind,
                        caption,
                        filename: filename.clone(),
                    });
                    match next {
                        Some(n) => current = n,
                        None => return self.finish(),
                    }
                }
                Step::ScheduleReminder {
                    template,
                    language,
                    delay_minutes,
                    date_field,
                    time,
                    days_before,
                    variables,
                    text,
                    next,
                } => {
                    let when = match (date_field, delay_minutes) {
                        (Some(field), _) => ReminderWhen::OnDate {
                            date: self.vars.get(field).cloned().unwrap_or_default(),
                            time: time.clone().unwrap_or_else(|| "09:00".to_owned()),
                            days_before: *days_before,
                        },
                        (None, minutes) => ReminderWhen::AfterMinutes {
                            minutes: minutes.unwrap_or(0),
                        },
                    };
                    let variables = variables
                        .iter()
                        .map(|(k, v)| (k.clone(), self.render(v)))
                        .collect();
                    self.actions.push(Action::ScheduleReminder {
                        template: template.clone(),
                        language: language.clone(),
                        when,
                        variables,
                    });
                    if let Some(t) = text {
                        self.say(t);
                    }
                    match next {
                        Some(n) => current = n,
                        None => return self.finish(),
                    }
                }
                Step::End { text } => {
                    if let Some(t) = text {
                        self.say(t);
                    }
                    return self.finish();
                }
            }
        }
        self.human_handoff()
    }

    fn check(&self, check: &Check) -> bool {
        match check {
            Check::BusinessHours { queue } => self
                .ctx
                .business_hours_open
                .get(queue)
                .copied()
                .unwrap_or(false),
            Check::FieldEquals { field, value } => self
                .saved
                .get(field)
                .or_else(|| self.ctx.fields.get(field))
                .is_some_and(|v| fold_for_match(v) == fold_for_match(value)),
            Check::ContactKnown => self.ctx.contact_known,
        }
    }

    fn show_menu(&mut self, step: &Step) {
        let Step::Menu {
            text,
            options,
            button_label,
            ..
        } = step
        else {
            return;
        };
        let body = self.render(text);
        let action = render_menu(
            body,
            options,
            button_label.as_deref().map(|l| self.render(l)),
        );
        self.actions.push(action);
    }

    fn menu_invalid(mut self, step_id: &str, previous_attempts: u32) -> Outcome {
        let flow = self.flow;
        let attempts = previous_attempts.saturating_add(1);
        let Some(
            step @ Step::Menu {
                invalid_text,
                on_fail,
                ..
            },
        ) = flow.steps.get(step_id)
        else {
            return self.human_handoff();
        };
        if attempts >= flow.max_invalid_attempts {
            return match on_fail {
                Some(target) => self.run_from(target),
                None => self.human_handoff(),
            };
        }
        let invalid = if invalid_text.trim().is_empty() {
            DEFAULT_MENU_INVALID_TEXT
        } else {
            invalid_text
        };
        self.say(invalid);
        self.show_menu(step);
        self.wait_at(step_id, attempts)
    }

    fn answer(
        mut self,
        step_id: &str,
        previous_attempts: u32,
        text: &str,
        ask: AskStep<'_>,
    ) -> Outcome {
        // Free text is the customer's own words ("o atendente não resolveu"),
        // so only a message that is exactly a keyword counts there. Other
        // validators get first say, so "humano@exemplo.com" is an e-mail.
        let result = if ask.validator == Validator::FreeText {
            if self.asks_for_human(text, true) {
                return self.human_handoff();
            }
            validate_answer(ask.validator, text)
        } else {
            let result = validate_answer(ask.validator, text);
            if result.is_err() && self.asks_for_human(text, false) {
                return self.human_handoff();
            }
            result
        };
        match result {
            Ok(value) => {
                self.save(ask.save_to, value);
                self.run_from(ask.next)
            }
            Err(reason) => {
                let attempts = previous_attempts.saturating_add(1);
                if attempts >= self.flow.max_invalid_attempts {
                    return self.run_from(ask.on_fail);
                }
                let message = match (ask.validator, ask.invalid_text.trim().is_empty()) {
                    (Validator::CpfCnpj, false) => {
                        format!("{reason}\n{}", self.render(ask.invalid_text))
                    }
                    (_, false) => self.render(ask.invalid_text),
                    (_, true) => reason,
                };
                self.actions.push(Action::SendText(message));
                self.wait_at(step_id, attempts)
            }
        }
    }

    fn asks_for_human(&self, text: &str, whole_message_only: bool) -> bool {
        let folded = fold_for_match(text);
        let said = words(&folded);
        self.flow.human_keywords.iter().any(|keyword| {
            let folded_kw = fold_for_match(keyword);
            let kw = words(&folded_kw);
            if kw.is_empty() {
                return false;
            }
            if whole_message_only {
                said == kw
            } else {
                said.windows(kw.len()).any(|w| w == kw.as_slice())
            }
        })
    }
}

/// Buttons for up to 3 short options, a list for up to 10, numbered text
/// otherwise. Interactive messages are only used when every text fits the
/// Cloud API limits, because an oversized title makes the whole message fail.
pub fn render_menu(body: String, options: &[MenuOption], button_label: Option<String>) -> Action {
    let body_fits = body.chars().count() <= MAX_INTERACTIVE_BODY_CHARS && !body.trim().is_empty();
    let chars = |s: &str| s.chars().count();
    let all_titles_fit = |max: usize| {
        options
            .iter()
            .all(|o| !o.title.trim().is_empty() && chars(&o.title) <= max)
    };
    if body_fits && !options.is_empty() {
        if options.len() <= MAX_BUTTONS && all_titles_fit(MAX_BUTTON_TITLE_CHARS) {
            return Action::SendButtons {
                body,
                buttons: options
                    .iter()
                    .map(|o| (o.id.clone(), o.title.clone()))
                    .collect(),
            };
        }
        let descriptions_fit = options.iter().all(|o| {
            o.description
                .as_deref()
                .is_none_or(|d| chars(d) <= MAX_LIST_ROW_DESCRIPTION_CHARS)
        });
        if options.len() <= MAX_LIST_ROWS
            && all_titles_fit(MAX_LIST_ROW_TITLE_CHARS)
            && descriptions_fit
        {
            let label = button_label
                .filter(|l| !l.trim().is_empty() && chars(l) <= MAX_LIST_BUTTON_LABEL_CHARS)
                .unwrap_or_else(|| DEFAULT_LIST_BUTTON_LABEL.to_owned());
            return Action::SendList {
                body,
                button_label: label,
                rows: options
                    .iter()
                    .map(|o| {
                        let desc = o.description.clone().filter(|d| !d.trim().is_empty());
                        (o.id.clone(), o.title.clone(), desc)
                    })
                    .collect(),
            };
        }
    }
    let mut text = body;
    if !options.is_empty() {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        for (i, o) in options.iter().enumerate() {
            text.push_str(&format!("{}. {}", i + 1, o.title));
            if let Some(d) = o.description.as_deref().filter(|d| !d.trim().is_empty()) {
                text.push_str(&format!(" ({d})"));
            }
            text.push('\n');
        }
        text.push_str("\nResponda com o número da opção.");
    }
    Action::SendText(text)
}

/// Words that carry no choice ("quero", "opção 2") and would otherwise make a
/// typed sentence match several options.
const FILLER_WORDS: &[&str] = &[
    "opcao", "numero", "num", "quero", "queria", "gostaria", "preciso", "sobre", "para", "pelo",
    "pela", "como", "minha", "meus", "minhas", "esse", "essa", "isso", "este", "esta", "isto",
    "favor", "obrigado", "obrigada",
];

/// Which option a typed answer (or a reply from another message) picks:
/// its number ("2", "2.", "opção 2", "2️⃣"), its title ignoring case and
/// accents, its id, or, failing those, the only option sharing a significant
/// word with the answer ("quero cancelar" → "Reclamação/cancelamento").
pub fn match_option(options: &[MenuOption], answer: &str) -> Option<usize> {
    let folded = fold_for_match(answer);
    let said: Vec<&str> = words(&folded);
    let significant: Vec<&str> = said
        .iter()
        .copied()
        .filter(|w| !FILLER_WORDS.contains(w))
        .collect();
    if let [n] = significant.as_slice()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        // Leading zeros and huge numbers fail the parse or the range check.
        return n
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=options.len()).contains(&n))
            .map(|n| n - 1);
    }
    if said.is_empty() {
        return None;
    }
    let title_words: Vec<Vec<String>> = options
        .iter()
        .map(|o| {
            words(&fold_for_match(&o.title))
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    if let Some(idx) = title_words.iter().position(|t| *t == said) {
        return Some(idx);
    }
    if let Some(idx) = options.iter().position(|o| fold_for_match(&o.id) == folded) {
        return Some(idx);
    }
    let matching: BTreeSet<usize> = title_words
        .iter()
        .enumerate()
        .filter(|(_, title)| {
            significant
                .iter()
                .filter(|w| w.chars().count() >= 4)
                .any(|w| {
                    title
                        .iter()
                        .any(|t| t.chars().count() >= 4 && words_match(w, t))
                })
        })
        .map(|(i, _)| i)
        .collect();
    match matching.len() {
        1 => matching.into_iter().next(),
        _ => None,
    }
}

/// Same word, or a shared stem of 6+ letters ("cancelar"/"cancelamento",
/// "reclamar"/"reclamacao"); shorter stems collide too easily ("conta"/"contato").
fn words_match(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count() >= 6
}

/// Validates and normalizes an answer to an Ask step. The error is the pt-BR
/// message to show.
pub fn validate_answer(validator: Validator, input: &str) -> Result<String, String> {
    let input = input.trim();
    match validator {
        Validator::CpfCnpj => Document::parse(input)
            .map(|d| d.normalized().to_owned())
            .map_err(|e| e.message_pt_br().to_owned()),
        Validator::Email => normalize_email(input).ok_or_else(|| {
            "E-mail inválido. Digite um endereço como nome@exemplo.com.br.".to_owned()
        }),
        Validator::Phone => normalize_phone(input).ok_or_else(|| {
            "Telefone inválido. Digite o número com DDD, por exemplo (11) 98765-4321.".to_owned()
        }),
        Validator::Date => normalize_date(input)
            .ok_or_else(|| "Data inválida. Use o formato DD/MM/AAAA.".to_owned()),
        Validator::FreeText => {
            if input.is_empty() {
                Err("Não recebi nenhum texto. Pode escrever sua mensagem?".to_owned())
            } else {
                Ok(input.to_owned())
            }
        }
    }
}

/// A pragmatic check (one `@`, a dotted domain with an alphabetic TLD), not
/// RFC 5322: the goal is to catch typos, and the domain is lower-cased so the
/// same address typed twice matches.
fn normalize_email(input: &str) -> Option<String> {
    if input.len() > 254
        || input
            .chars()
            .any(|c| c.is_whitespace() || !c.is_ascii_graphic())
    {
        return None;
    }
    let (local, domain) = input.split_once('@')?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
    {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()));
    if labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
        return None;
    }
    Some(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// Returns digits with country code, the form WhatsApp uses as `wa_id`.
/// Numbers without `+` are Brazilian: 10 or 11 digits (DDD + number, an
/// optional trunk `0` in front) get `55`; with `+`, any 8–15 digit E.164.
fn normalize_phone(input: &str) -> Option<String> {
    let (international, rest) = match input.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, input),
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '(' | ')' | '.' => {}
            _ => return None,
        }
    }
    if international {
        return ((8..=15).contains(&digits.len()) && !digits.starts_with('0')).then_some(digits);
    }
    let national = digits.strip_prefix('0').unwrap_or(&digits);
    if (10..=11).contains(&national.len()) && !national.starts_with('0') {
        return Some(format!("55{national}"));
    }
    if digits.starts_with("55") && (12..=13).contains(&digits.len()) {
        return Some(digits);
    }
    None
}

/// `DD/MM/AAAA` (also with `-` or `.`, one-digit day/month allowed),
/// `DDMMAAAA` or ISO `AAAA-MM-DD`; two-digit years are refused because the
/// century would be a guess. Returns ISO `AAAA-MM-DD`.
fn normalize_date(input: &str) -> Option<String> {
    let parts: Vec<&str> = if input.len() == 8 && input.bytes().all(|b| b.is_ascii_digit()) {
        vec![&input[0..2], &input[2..4], &input[4..8]]
    } else {
        input.split(['/', '-', '.']).map(str::trim).collect()
    };
    let [a, b, c] = parts.as_slice() else {
        return None;
    };
    if ![a, b, c]
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|x| x.is_ascii_digit()))
    {
        return None;
    }
    let (y, m, d) = if a.len() == 4 && b.len() <= 2 && c.len() <= 2 {
        (a, b, c)
    } else if c.len() == 4 && a.len() <= 2 && b.len() <= 2 {
        (c, b, a)
    } else {
        return None;
    };
    let date = jiff::civil::Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month(),
        date.day()
    ))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum FlowError {
    #[error("start step {start:?} does not exist")]
    UnknownStart { start: String },
    #[error("step {step:?} points to missing step {target:?}")]
    DanglingReference { step: String, target: String },
    #[error("steps {steps:?} form a loop that never waits for the customer")]
    AutomaticCycle { steps: Vec<String> },
    #[error("first menu {menu:?} has no option reaching a human without asking for data")]
    NoHumanFromFirstMenu { menu: String },
    #[error("step {step:?} asks for data before the customer can choose a human")]
    DataBeforeHuman { step: String },
    #[error("menu {step:?} repeats option id {id:?}")]
    DuplicateOptionId { step: String, id: String },
    #[error("menu {step:?} has an option with an empty id")]
    EmptyOptionId { step: String },
    #[error("human_queue is empty")]
    MissingHumanQueue,
    #[error("handoff step {step:?} has no queue")]
    EmptyHandoffQueue { step: String },
    #[error("step {step:?} saves to {save_to:?}; use contact.*, protocol.* or custom.<key>")]
    InvalidSaveTo { step: String, save_to: String },
    #[error("reminder step {step:?} needs a template and delay_minutes or date_field")]
    InvalidReminder { step: String },
}

impl FlowError {
    /// For the flow editor.
    pub fn message_pt_br(&self) -> String {
        match self {
            FlowError::UnknownStart { start } => format!("A etapa inicial \"{start}\" não existe."),
            FlowError::DanglingReference { step, target } => {
                format!("A etapa \"{step}\" aponta para \"{target}\", que não existe.")
            }
            FlowError::AutomaticCycle { steps } => format!(
                "As etapas {} formam um ciclo sem nenhuma pergunta ao cliente; o robô ficaria em laço.",
                steps.join(" → ")
            ),
            FlowError::NoHumanFromFirstMenu { menu } => format!(
                "O primeiro menu (\"{menu}\") precisa de uma opção que leve a um atendente sem pedir dados (Decreto 11.034/2022, art. 4º, § 4º)."
            ),
            FlowError::DataBeforeHuman { step } => format!(
                "A etapa \"{step}\" pede dados antes de o cliente poder escolher falar com um atendente (Decreto 11.034/2022, art. 4º, § 4º); ofereça antes um menu com essa opção."
            ),
            FlowError::DuplicateOptionId { step, id } => {
                format!("O menu \"{step}\" tem mais de uma opção com o identificador \"{id}\".")
            }
            FlowError::EmptyOptionId { step } => {
                format!("O menu \"{step}\" tem uma opção sem identificador.")
            }
            FlowError::MissingHumanQueue => {
                "Informe a fila de atendimento humano do fluxo.".to_owned()
            }
            FlowError::EmptyHandoffQueue { step } => {
                format!("A transferência \"{step}\" não tem fila.")
            }
            FlowError::InvalidSaveTo { step, save_to } => format!(
                "A etapa \"{step}\" grava em \"{save_to}\"; use contact.*, protocol.* ou custom.<chave>."
            ),
            FlowError::InvalidReminder { step } => format!(
                "O lembrete \"{step}\" precisa de um template e de um prazo (minutos ou campo de data)."
            ),
        }
    }
}

/// Checks a flow before it is saved. All problems are reported at once so
/// the editor can show them together.
pub fn validate_flow(flow: &Flow) -> Result<(), Vec<FlowError>> {
    let mut errors = Vec::new();
    if flow.human_queue.trim().is_empty() {
        errors.push(FlowError::MissingHumanQueue);
    }
    if !flow.steps.contains_key(&flow.start) {
        errors.push(FlowError::UnknownStart {
            start: flow.start.clone(),
        });
    }
    for (id, step) in &flow.steps {
        for target in step.targets() {
            if !flow.steps.contains_key(target) {
                errors.push(FlowError::DanglingReference {
                    step: id.clone(),
                    target: target.to_owned(),
                });
            }
        }
        match step {
            Step::Menu { options, .. } => {
                let mut seen = BTreeSet::new();
                for o in options {
                    if o.id.trim().is_empty() {
                        errors.push(FlowError::EmptyOptionId { step: id.clone() });
                    } else if !seen.insert(o.id.as_str()) {
                        errors.push(FlowError::DuplicateOptionId {
                            step: id.clone(),
                            id: o.id.clone(),
                        });
                    }
                }
            }
            Step::Handoff { queue, .. } if queue.trim().is_empty() => {
                errors.push(FlowError::EmptyHandoffQueue { step: id.clone() });
            }
            Step::Ask { save_to, .. } if !valid_save_to(save_to) => {
                errors.push(FlowError::InvalidSaveTo {
                    step: id.clone(),
                    save_to: save_to.clone(),
                });
            }
            Step::ScheduleReminder {
                template,
                delay_minutes,
                date_field,
                ..
            } if template.trim().is_empty()
                || (delay_minutes.is_none() && date_field.is_none()) =>
            {
                errors.push(FlowError::InvalidReminder { step: id.clone() });
            }
            _ => {}
        }
    }
    errors.extend(
        automatic_cycles(flow)
            .into_iter()
            .map(|steps| FlowError::AutomaticCycle { steps }),
    );
    errors.extend(first_input_errors(flow));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn valid_save_to(save_to: &str) -> bool {
    ["contact.", "protocol.", "custom."].iter().any(|prefix| {
        save_to.strip_prefix(prefix).is_some_and(|key| {
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        })
    })
}

/// Loops made only of steps that run without input, each reported once,
/// rotated to start at its smallest id.
fn automatic_cycles(flow: &Flow) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Gray,
        Black,
    }
    let auto_next = |id: &str| -> Vec<&str> {
        flow.steps
            .get(id)
            .map(|s| {
                s.automatic_targets()
                    .into_iter()
                    .filter(|t| flow.steps.get(*t).is_some_and(is_automatic))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut color: BTreeMap<&str, Color> = flow
        .steps
        .keys()
        .map(|k| (k.as_str(), Color::White))
        .collect();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for root in flow.steps.keys() {
        if color.get(root.as_str()) != Some(&Color::White)
            || !flow.steps.get(root).is_some_and(is_automatic)
        {
            continue;
        }
        // Iterative DFS: path holds (node, its successors, next index).
        let mut path: Vec<(&str, Vec<&str>, usize)> = vec![(root.as_str(), auto_next(root), 0)];
        color.insert(root.as_str(), Color::Gray);
        while let Some((node, succ, idx)) = path.last_mut() {
            if *idx >= succ.len() {
                color.insert(node, Color::Black);
                path.pop();
                continue;
            }
            let child = succ[*idx];
            *idx += 1;
            match color.get(child).copied().unwrap_or(Color::Black) {
                Color::White => {
                    color.insert(child, Color::Gray);
                    let next = auto_next(child);
                    path.push((child, next, 0));
                }
                Color::Gray => {
                    let from = path.iter().position(|(n, _, _)| *n == child).unwrap_or(0);
                    let mut cycle: Vec<String> = path[from..]
                        .iter()
                        .map(|(n, _, _)| (*n).to_owned())
                        .collect();
                    let min = cycle
                        .iter()
                        .enumerate()
                        .min_by(|a, b| a.1.cmp(b.1))
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    cycle.rotate_left(min);
                    found.insert(cycle);
                }
                Color::Black => {}
            }
        }
    }
    found.into_iter().collect()
}

fn is_automatic(step: &Step) -> bool {
    matches!(
        step,
        Step::Message { .. }
            | Step::Condition { .. }
            | Step::SendMedia { .. }
            | Step::ScheduleReminder { .. }
    )
}

/// The input steps the customer can meet first (every Condition branch
/// counts). An Ask there demands data before a human is offered; a Menu there
/// must offer a path to a Handoff that needs no Ask.
fn first_input_errors(flow: &Flow) -> Vec<FlowError> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([flow.start.as_str()]);
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        let Some(step) = flow.steps.get(id) else {
            continue;
        };
        match step {
            Step::Menu { options, .. } => {
                if !options
                    .iter()
                    .any(|o| reaches_handoff_without_ask(flow, &o.next))
                {
                    errors.push(FlowError::NoHumanFromFirstMenu {
                        menu: id.to_owned(),
                    });
                }
            }
            Step::Ask { .. } => errors.push(FlowError::DataBeforeHuman {
                step: id.to_owned(),
            }),
            _ => queue.extend(step.automatic_targets()),
        }
    }
    errors
}

fn reaches_handoff_without_ask(flow: &Flow, from: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        match flow.steps.get(id) {
            Some(Step::Handoff { .. }) => return true,
            Some(Step::Ask { .. }) | None => {}
            // Menu on_fail is not a path a customer chooses, so only options count.
            Some(Step::Menu { options, .. }) => {
                queue.extend(options.iter().map(|o| o.next.as_str()))
            }
            Some(step) => queue.extend(step.targets()),
        }
    }
    false
}

/// The pt-BR demo flow: greeting with the protocol, a first menu with
/// support, billing, complaints/cancellation and a human, and CPF/CNPJ
/// identification for support. Every option reaches a person; identification
/// never blocks it (after the attempts run out the customer is transferred
/// anyway).
pub fn demo_flow() -> Flow {
    fn s(x: &str) -> String {
        x.to_owned()
    }
    fn option(id: &str, title: &str, description: &str, next: &str) -> MenuOption {
        MenuOption {
            id: s(id),
            title: s(title),
            description: Some(s(description)),
            next: s(next),
        }
    }
    let handoff = |queue: &str, text: &str| Step::Handoff {
        queue: s(queue),
        priority: 0,
        text: Some(s(text)),
    };
    let steps = BTreeMap::from([
        (
            s("inicio"),
            Step::Message {
                text: s("Olá! Bem-vindo ao atendimento. Seu protocolo é {{protocolo}}."),
                next: Some(s("menu")),
                send_protocol: true,
            },
        ),
        (
            s("menu"),
            Step::Menu {
                text: s("Como podemos ajudar? Escolha uma opção:"),
                options: vec![
                    option(
                        "suporte",
                        "Suporte",
                        "Dúvidas e problemas técnicos",
                        "suporte_documento",
                    ),
                    option(
                        "financeiro",
                        "Financeiro",
                        "Boletos, pagamentos e notas fiscais",
                        "financeiro",
                    ),
                    option(
                        "reclamacao",
                        "Reclamação/cancelamento",
                        "Registrar uma reclamação ou cancelar um serviço",
                        "reclamacoes",
                    ),
                    option(
                        "atendente",
                        "Falar com atendente",
                        "Atendimento humano",
                        "atendente",
                    ),
                ],
                invalid_text: s(
                    "Não entendi. Escolha uma das opções da lista ou digite o número (1 a 4).",
                ),
                button_label: Some(s("Ver opções")),
                send_protocol: false,
                on_fail: None,
            },
        ),
        (
            s("suporte_documento"),
            Step::Ask {
                text: s(
                    "Para agilizar, informe o CPF ou CNPJ do titular (com ou sem pontuação). Se preferir, digite *atendente*.",
                ),
                validator: Validator::CpfCnpj,
                save_to: s("contact.code"),
                invalid_text: s("Digite novamente: CPF com 11 dígitos ou CNPJ com 14 caracteres."),
                next: s("suporte_fila"),
                on_fail: s("suporte_fila"),
            },
        ),
        (
            s("suporte_fila"),
            handoff(
                "suporte",
                "Obrigado! Você será atendido pela equipe de Suporte em instantes.",
            ),
        ),
        (
            s("financeiro"),
            handoff(
                "financeiro",
                "Certo! Vou te encaminhar para a equipe do Financeiro.",
            ),
        ),
        (
            s("reclamacoes"),
            handoff(
                "reclamacoes",
                "Certo! Vou te encaminhar para a equipe de reclamações e cancelamentos.",
            ),
        ),
        (
            s("atendente"),
            handoff(
                "atendimento",
                "Certo! Vou te transferir para um de nossos atendentes.",
            ),
        ),
    ]);
    Flow {
        steps,
        start: s("inicio"),
        human_keywords: default_human_keywords(),
        human_queue: s("atendimento"),
        human_priority: 0,
        human_text: Some(s("Certo! Vou te transferir para um de nossos atendentes.")),
        protocol_text: default_protocol_text(),
        max_invalid_attempts: default_max_invalid_attempts(),
    }
}

#[cfg(test)]
mod tests;
