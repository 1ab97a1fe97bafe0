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

//!
//! Where things are: `definition` (a flow's JSON checked and normalized, the pt-BR demo flow),
//! `plan` (one turn planned with the pure interpreter, the context it needs), `turn` (a turn
//! executed and committed, hand-offs), `timers` (inactivity reminder and close), `hours`
//! (business hours); this file is the worker itself (work intake, per-conversation tasks, commits).

mod definition;
pub mod hours;
mod plan;
mod reminders;
#[cfg(test)]
mod tests;
mod timers;
mod turn;

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
use store::outbox::{Enqueued, NewOutbound};
use store::queues::{NewQueue, QueueRecord};
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use whatsapp::send::{ListRow, ListSection, MediaRef, OutboundContent, ReplyButton};

use crate::config::Config;
use crate::group_commit::GroupCommit;
use crate::live::{Live, Notice};
use crate::workers::outbound::Outbound;

pub use definition::{
    DefinitionError, FlowExtras, InactivitySettings, LoadedFlow, check_definition, default_flow,
    default_queues, normalized_definition, referenced_queues, seed_demo_flow,
};
use plan::*;
pub use plan::{bot_input, flow_context, message_phase, plan_turn};

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

    /// Enqueues one bot message outside a turn; returns its id.
    async fn send(&self, conversation_id: i64, send: BotSend, key: String) -> anyhow::Result<i64> {
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
}
