//! Bot sessions: one per conversation the bot talks to, and the single transaction that applies
//! one turn of the flow to it (session state, saved answers, protocol informed, hand-off or
//! close).
//!
//! A turn's messages are written with it: the message rows and their outbox jobs commit in the
//! turn's transaction, behind the compare-and-set on the session that makes two workers (or two
//! instances) apply a turn once. [`Store::apply_bot_turns`] applies many conversations' turns in
//! one transaction, so a busy bot shares each commit among them. Queues, flows and protocol lookups
//! live in `queues`, `flows` and `protocols`.

use serde::Serialize;
use serde_json::json;

use crate::conversations::{BOT_STATE, CLOSED_STATE, MESSAGE_COLUMNS, MessageRecord, QUEUED_STATE};
use crate::outbox::{NewOutbound, insert_outbound};
use crate::{Result, Store, insert_event, now_ms, on_read, on_write};

/// What the bot needs to know about a conversation and its contact for one turn.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BotConversation {
    pub id: i64,
    pub channel_id: i64,
    pub contact_id: i64,
    pub state: String,
    pub protocol: String,
    pub protocol_sent_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub queue_id: Option<i64>,
    pub wa_id: String,
    pub profile_name: Option<String>,
    pub contact_name: Option<String>,
    pub contact_code: Option<String>,
    pub contact_email: Option<String>,
    /// Other conversations of the same contact (a returning customer has some).
    pub previous_conversations: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct BotSession {
    pub conversation_id: i64,
    pub flow_version_id: i64,
    /// `domain::flow::BotState` as JSON; `None` until the flow's first turn ran.
    pub state: Option<String>,
    pub last_input_message_id: i64,
    pub started_at: i64,
    pub last_activity_at: i64,
    pub reminder_due_at: Option<i64>,
    pub close_due_at: Option<i64>,
    pub reminder_sent_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub last_bot_message_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotOutcome {
    /// Queued for a person (also outside business hours when the queue waits for the next shift).
    Handoff,
    /// The flow ended without a person; the conversation is closed.
    Ended,
    /// The customer stopped answering; closed by the inactivity timer.
    AbandonedInBot,
    /// Outside business hours of a queue configured to end; closed after the message.
    OutsideHours,
}

impl BotOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            BotOutcome::Handoff => "handoff",
            BotOutcome::Ended => "ended",
            BotOutcome::AbandonedInBot => "abandoned_in_bot",
            BotOutcome::OutsideHours => "outside_hours",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactUpdate {
    pub name: Option<String>,
    pub code: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BotFinish {
    pub outcome: BotOutcome,
    /// `(queue id, priority)` for [`BotOutcome::Handoff`].
    pub handoff: Option<(i64, i64)>,
    /// The last message of the bot phase (the API marks later ones as the human part) when the
    /// turn itself sends nothing; otherwise its last message is.
    pub last_bot_message_id: Option<i64>,
}

/// One turn of the flow, applied atomically by [`Store::apply_bot_turns`].
#[derive(Debug, Clone)]
pub struct BotTurn {
    pub conversation_id: i64,
    /// The flow's first turn in this conversation: binds it to this flow version (the first
    /// binding wins; a turn planned on another version is then refused).
    pub start_flow_version: Option<i64>,
    /// Compare-and-set: the session must still be at this input and started (or not) as given,
    /// otherwise someone else applied this turn and nothing is written.
    pub expect_last_input: i64,
    pub expect_started: bool,
    /// Refuse the turn when customer messages after `expect_last_input` exist (inactivity close).
    pub require_no_pending_input: bool,
    pub input_message_id: i64,
    pub state_json: Option<String>,
    /// Reset the inactivity clock (a real exchange with the customer happened).
    pub activity: bool,
    pub reminder_due_at: Option<i64>,
    pub close_due_at: Option<i64>,
    pub contact: ContactUpdate,
    /// `custom.*`, `protocol.*` and contact fields without a column.
    pub fields: Vec<(String, String)>,
    pub protocol_sent: bool,
    pub finish: Option<BotFinish>,
    /// The turn's messages, in order, written (and later sent) only when the turn applies. An
    /// idempotency key already used in the conversation reuses that message.
    pub sends: Vec<NewOutbound>,
}

/// Where the bot part of a conversation ends, for marking messages "bot" or "human".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotPhase {
    /// The bot is still talking: every message so far is bot phase.
    pub running: bool,
    pub last_bot_message_id: Option<i64>,
}

const SESSION_COLUMNS: &str = "conversation_id, flow_version_id, state, last_input_message_id,
    started_at, last_activity_at, reminder_due_at, close_due_at, reminder_sent_at, finished_at,
    outcome, last_bot_message_id";

/// Ends a conversation's running bot session (if any) with `outcome`, marking its last message
/// as the end of the bot transcript, inside the caller's transaction.
macro_rules! finish_bot_session {
    ($tx:expr, $conversation_id:expr, $now:expr, $outcome:expr) => {
        sqlx::query(
            "UPDATE bot_sessions SET finished_at = $2, outcome = $3,
                last_bot_message_id = COALESCE(last_bot_message_id,
                    (SELECT MAX(id) FROM messages WHERE conversation_id = $1))
             WHERE conversation_id = $1 AND finished_at IS NULL",
        )
        .bind($conversation_id)
        .bind($now)
        .bind($outcome)
        .execute(&mut *$tx)
        .await?
    };
}

impl Store {
    pub async fn bot_conversation(&self, conversation_id: i64) -> Result<Option<BotConversation>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT c.id, c.channel_id, c.contact_id, c.state, c.protocol, c.protocol_sent_at, c.closed_at,
                    c.queue_id, ct.wa_id, ct.profile_name, ct.name AS contact_name, ct.code AS contact_code,
                    ct.email AS contact_email,
                    (SELECT COUNT(*) FROM conversations p WHERE p.contact_id = c.contact_id AND p.id <> c.id)
                        AS previous_conversations
                 FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE c.id = $1",
            )
            .bind(conversation_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Saved answers of a conversation, `(key, value)` sorted by key.
    pub async fn conversation_fields(&self, conversation_id: i64) -> Result<Vec<(String, String)>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as("SELECT key, value FROM conversation_fields WHERE conversation_id = $1 ORDER BY key")
                .bind(conversation_id)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn bot_session(&self, conversation_id: i64) -> Result<Option<BotSession>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM bot_sessions WHERE conversation_id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(conversation_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The first customer message after `after_id`, if any.
    pub async fn next_bot_input(
        &self,
        conversation_id: i64,
        after_id: i64,
    ) -> Result<Option<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = $1 AND direction = 'in' AND id > $2 ORDER BY id LIMIT 1"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(conversation_id)
                .bind(after_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Applies one turn in one transaction: `None` (and nothing written) when the session is no
    /// longer where the turn expected it, because another worker applied it first; otherwise
    /// the turn's messages written now, by id.
    pub async fn apply_bot_turn(&self, turn: &BotTurn) -> Result<Option<Vec<i64>>> {
        let mut applied = self.apply_bot_turns(std::slice::from_ref(turn)).await?;
        Ok(applied.pop().flatten())
    }

    /// Applies turns of different conversations in one transaction, each as
    /// [`Store::apply_bot_turn`] would, answering in the same order. One commit serves them all;
    /// if any statement fails, none is applied.
    pub async fn apply_bot_turns(&self, turns: &[BotTurn]) -> Result<Vec<Option<Vec<i64>>>> {
        let now = now_ms();
        // Rows are locked in conversation order, so two batches cannot deadlock on PostgreSQL.
        let mut order: Vec<usize> = (0..turns.len()).collect();
        order.sort_by_key(|&i| turns[i].conversation_id);
        let mut answers: Vec<Option<Vec<i64>>> = vec![None; turns.len()];
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for i in order {
                let turn = &turns[i];
                let finished_at = turn.finish.as_ref().map(|_| now);
                let outcome = turn.finish.as_ref().map(|f| f.outcome.as_str());
                if let Some(version) = turn.start_flow_version {
                    sqlx::query(
                        "INSERT INTO bot_sessions (conversation_id, flow_version_id, state, last_input_message_id,
                            started_at, last_activity_at)
                         VALUES ($1, $2, NULL, $3, $4, $4)
                         ON CONFLICT (conversation_id) DO NOTHING",
                    )
                    .bind(turn.conversation_id)
                    .bind(version)
                    .bind(turn.expect_last_input)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let moved = sqlx::query(
                    "UPDATE bot_sessions SET
                        state = $2,
                        last_input_message_id = $3,
                        last_activity_at = CASE WHEN $4 THEN $5 ELSE last_activity_at END,
                        reminder_due_at = CASE WHEN $4 THEN $6 ELSE reminder_due_at END,
                        close_due_at = CASE WHEN $4 THEN $7 ELSE close_due_at END,
                        reminder_sent_at = CASE WHEN $4 THEN NULL ELSE reminder_sent_at END,
                        finished_at = $8,
                        outcome = $9,
                        last_bot_message_id = $10
                     WHERE conversation_id = $1 AND finished_at IS NULL
                        AND last_input_message_id = $11
                        AND (state IS NOT NULL) = $12
                        AND (NOT $13 OR NOT EXISTS (
                            SELECT 1 FROM messages m
                            WHERE m.conversation_id = $1 AND m.direction = 'in' AND m.id > $11))
                        AND flow_version_id = COALESCE($14, flow_version_id)",
                )
                .bind(turn.conversation_id)
                .bind(&turn.state_json)
                .bind(turn.input_message_id)
                .bind(turn.activity)
                .bind(now)
                .bind(turn.reminder_due_at)
                .bind(turn.close_due_at)
                .bind(finished_at)
                .bind(outcome)
                .bind(turn.finish.as_ref().and_then(|f| f.last_bot_message_id))
                .bind(turn.expect_last_input)
                .bind(turn.expect_started)
                .bind(turn.require_no_pending_input)
                .bind(turn.start_flow_version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved == 0 {
                    continue;
                }
                let mut created = Vec::with_capacity(turn.sends.len());
                let mut last_sent = None;
                for send in &turn.sends {
                    let existing: Option<i64> = match &send.idempotency_key {
                        Some(key) => sqlx::query_scalar(
                            "SELECT id FROM messages WHERE conversation_id = $1 AND idempotency_key = $2",
                        )
                        .bind(send.conversation_id)
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?,
                        None => None,
                    };
                    let id = match existing {
                        Some(id) => id,
                        None => {
                            let id = insert_outbound!(tx, send, now)?;
                            created.push(id);
                            id
                        }
                    };
                    last_sent = Some(id);
                }
                if let (Some(_), Some(last)) = (&turn.finish, last_sent) {
                    sqlx::query("UPDATE bot_sessions SET last_bot_message_id = $2 WHERE conversation_id = $1")
                        .bind(turn.conversation_id)
                        .bind(last)
                        .execute(&mut *tx)
                        .await?;
                }
                let c = &turn.contact;
                if c.name.is_some() || c.code.is_some() || c.email.is_some() {
                    sqlx::query(
                        "UPDATE contacts SET name = COALESCE($2, name), code = COALESCE($3, code),
                            email = COALESCE($4, email), updated_at = $5
                         WHERE id = (SELECT contact_id FROM conversations WHERE id = $1)",
                    )
                    .bind(turn.conversation_id)
                    .bind(&c.name)
                    .bind(&c.code)
                    .bind(&c.email)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                for (key, value) in &turn.fields {
                    sqlx::query(
                        "INSERT INTO conversation_fields (conversation_id, key, value, updated_at)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (conversation_id, key) DO UPDATE SET value = excluded.value,
                            updated_at = excluded.updated_at",
                    )
                    .bind(turn.conversation_id)
                    .bind(key)
                    .bind(value)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let subject = turn
                    .fields
                    .iter()
                    .rev()
                    .find(|(k, _)| k == "protocol.subject" || k == "protocol.assunto")
                    .map(|(_, v)| v);
                if let Some(subject) = subject {
                    sqlx::query("UPDATE conversations SET subject = $2 WHERE id = $1")
                        .bind(turn.conversation_id)
                        .bind(subject)
                        .execute(&mut *tx)
                        .await?;
                }
                if turn.protocol_sent {
                    let informed: Option<String> = sqlx::query_scalar(
                        "UPDATE conversations SET protocol_sent_at = $2
                         WHERE id = $1 AND protocol_sent_at IS NULL RETURNING protocol",
                    )
                    .bind(turn.conversation_id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(protocol) = informed {
                        insert_event!(tx, now, "protocol.sent", turn.conversation_id, json!({ "protocol": protocol }));
                    }
                }
                if let Some(finish) = &turn.finish {
                    match finish.handoff {
                        Some((queue_id, priority)) => {
                            sqlx::query(
                                "UPDATE conversations SET state = $2, queue_id = $3, priority = $4, queued_at = $5,
                                    subject = COALESCE(subject, (SELECT name FROM queues WHERE id = $3))
                                 WHERE id = $1 AND state = $6",
                            )
                            .bind(turn.conversation_id)
                            .bind(QUEUED_STATE)
                            .bind(queue_id)
                            .bind(priority)
                            .bind(now)
                            .bind(BOT_STATE)
                            .execute(&mut *tx)
                            .await?;
                            let payload = json!({ "queue_id": queue_id, "priority": priority, "by": "bot" });
                            insert_event!(tx, now, "conversation.queued", turn.conversation_id, payload);
                        }
                        None => {
                            sqlx::query(
                                "UPDATE conversations SET state = $2, closed_at = $3, close_reason = $4
                                 WHERE id = $1 AND closed_at IS NULL",
                            )
                            .bind(turn.conversation_id)
                            .bind(CLOSED_STATE)
                            .bind(now)
                            .bind(finish.outcome.as_str())
                            .execute(&mut *tx)
                            .await?;
                            let payload = json!({ "reason": finish.outcome.as_str(), "by": "bot" });
                            insert_event!(tx, now, "conversation.closed", turn.conversation_id, payload);
                        }
                    }
                }
                answers[i] = Some(created);
            }
            tx.commit().await?;
        });
        Ok(answers)
    }

    /// Records the inactivity reminder, unless the customer was active since `last_activity_at`.
    pub async fn mark_bot_reminder(
        &self,
        conversation_id: i64,
        last_activity_at: i64,
    ) -> Result<bool> {
        let affected = on_write!(self, pool => {
            sqlx::query(
                "UPDATE bot_sessions SET reminder_sent_at = $2
                 WHERE conversation_id = $1 AND finished_at IS NULL AND reminder_sent_at IS NULL
                    AND last_activity_at = $3",
            )
            .bind(conversation_id)
            .bind(now_ms())
            .bind(last_activity_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Conversations in the bot with something to do: no session yet, a flow not started, or
    /// customer messages the flow has not seen. The catch-up after missed notices or a restart.
    pub async fn bot_work(&self, limit: i64) -> Result<Vec<i64>> {
        Ok(on_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT c.id FROM conversations c LEFT JOIN bot_sessions s ON s.conversation_id = c.id
                 WHERE c.state = 'bot' AND c.closed_at IS NULL
                   AND (s.conversation_id IS NULL
                        OR (s.finished_at IS NULL AND (s.state IS NULL OR EXISTS (
                            SELECT 1 FROM messages m
                            WHERE m.conversation_id = c.id AND m.direction = 'in'
                              AND m.id > s.last_input_message_id))))
                 ORDER BY c.id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Running sessions whose inactivity reminder or close is due at `now`.
    pub async fn bot_sessions_due(&self, now: i64, limit: i64) -> Result<Vec<BotSession>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM bot_sessions s
             WHERE s.finished_at IS NULL AND s.state IS NOT NULL
               AND EXISTS (SELECT 1 FROM conversations c WHERE c.id = s.conversation_id AND c.state = 'bot')
               AND ((s.reminder_sent_at IS NULL AND s.reminder_due_at <= $1) OR s.close_due_at <= $1)
             ORDER BY s.conversation_id LIMIT $2"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).bind(limit).fetch_all(pool).await?
        }))
    }

    /// Where the bot part of the conversation ends; `None` when the bot never talked in it.
    pub async fn bot_phase(&self, conversation_id: i64) -> Result<Option<BotPhase>> {
        let row: Option<(Option<i64>, Option<i64>)> = on_read!(self, pool => {
            sqlx::query_as("SELECT finished_at, last_bot_message_id FROM bot_sessions WHERE conversation_id = $1")
                .bind(conversation_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(finished_at, last_bot_message_id)| BotPhase {
            running: finished_at.is_none(),
            last_bot_message_id,
        }))
    }

    /// Takes a conversation out of the bot without a flow turn (the flow was disabled under it, or
    /// its stored definition cannot run): it waits in no particular queue for a person.
    /// `protocol_informed`: the caller just sent the protocol number.
    pub async fn release_from_bot(
        &self,
        conversation_id: i64,
        protocol_informed: bool,
    ) -> Result<bool> {
        let now = now_ms();
        let affected = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(
                "UPDATE conversations SET state = $2, queued_at = $3,
                    protocol_sent_at = CASE WHEN $5 THEN COALESCE(protocol_sent_at, $3) ELSE protocol_sent_at END
                 WHERE id = $1 AND state = $4",
            )
            .bind(conversation_id)
            .bind(QUEUED_STATE)
            .bind(now)
            .bind(BOT_STATE)
            .bind(protocol_informed)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if affected > 0 {
                finish_bot_session!(tx, conversation_id, now, "handoff");
                let payload = json!({ "queue_id": null, "priority": 0, "by": "bot" });
                insert_event!(tx, now, "conversation.queued", conversation_id, payload);
            }
            tx.commit().await?;
            affected
        });
        Ok(affected > 0)
    }

    /// Closes an open conversation (and the bot session, if one is running). A new customer
    /// message then opens a new conversation with a new protocol.
    pub async fn close_conversation(&self, conversation_id: i64, reason: &str) -> Result<bool> {
        let now = now_ms();
        let affected = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(
                "UPDATE conversations SET state = $2, closed_at = $3, close_reason = $4
                 WHERE id = $1 AND closed_at IS NULL",
            )
            .bind(conversation_id)
            .bind(CLOSED_STATE)
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if affected > 0 {
                finish_bot_session!(tx, conversation_id, now, "ended");
                insert_event!(tx, now, "conversation.closed", conversation_id, json!({ "reason": reason }));
            }
            tx.commit().await?;
            affected
        });
        Ok(affected > 0)
    }
}

#[cfg(test)]
mod tests {
    use domain::protocol::ProtocolConfig;

    use super::*;
    use crate::StoreError;
    use crate::channels::NewChannel;
    use crate::conversations::{InboundItem, InboundMessageRecord};
    use crate::queues::NewQueue;

    async fn sqlite() -> (Store, std::path::PathBuf) {
        let path =
            std::env::temp_dir().join(format!("atende-bot-{}.db", uuid::Uuid::new_v4().simple()));
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (store, path)
    }

    async fn channel(store: &Store) -> i64 {
        let new = NewChannel {
            name: "Teste".into(),
            phone_number_id: "1".into(),
            waba_id: "2".into(),
            display_phone_number: None,
            access_token_enc: "x".into(),
            app_secret_enc: "x".into(),
            verify_token_enc: "x".into(),
            graph_base_url: "http://127.0.0.1:9".into(),
            rate_limit_per_sec: 80,
            mark_read: false,
            is_simulator: false,
        };
        store.create_channel(&new).await.unwrap().id
    }

    async fn first_message(store: &Store, channel_id: i64, wa_id: &str) -> i64 {
        let item = InboundItem::Message(InboundMessageRecord {
            channel_id,
            wa_id: wa_id.into(),
            profile_name: Some("Ana".into()),
            wamid: format!("wamid.{wa_id}"),
            kind: "text".into(),
            body: Some("Oi".into()),
            content_json: r#"{"type":"text","text":{"body":"Oi"}}"#.into(),
            reply_to_wamid: None,
            wa_timestamp_ms: None,
            media: None,
        });
        let report = store
            .apply_inbound(-1, &[item], &ProtocolConfig::default())
            .await
            .unwrap();
        report.new_messages[0].0
    }

    fn start_turn(conversation_id: i64, last_input: i64) -> BotTurn {
        BotTurn {
            conversation_id,
            start_flow_version: None,
            expect_last_input: last_input,
            expect_started: false,
            require_no_pending_input: false,
            input_message_id: last_input,
            state_json: Some(r#"{"step":"menu"}"#.into()),
            activity: true,
            reminder_due_at: Some(1),
            close_due_at: Some(2),
            contact: ContactUpdate::default(),
            fields: vec![("custom.plano".into(), "empresarial".into())],
            protocol_sent: true,
            finish: None,
            sends: Vec::new(),
        }
    }

    #[tokio::test]
    async fn conversations_open_in_the_bot_only_with_a_flow_and_turns_apply_once() {
        let (store, path) = sqlite().await;
        let channel_id = channel(&store).await;
        let without = first_message(&store, channel_id, "5511900000001").await;
        assert_eq!(
            store
                .bot_conversation(without)
                .await
                .unwrap()
                .unwrap()
                .state,
            "queued"
        );

        let flow = store.create_flow(None, "Padrão", "{}", None).await.unwrap();
        assert_eq!(flow.version, 1);
        let again = store.create_flow(None, "Outro", "{}", None).await;
        assert!(
            matches!(again, Err(StoreError::Conflict(_))),
            "one default flow"
        );
        let with = first_message(&store, channel_id, "5511900000002").await;
        let conv = store.bot_conversation(with).await.unwrap().unwrap();
        assert_eq!(conv.state, BOT_STATE);
        assert_eq!(store.bot_work(10).await.unwrap(), vec![with]);

        let v = store
            .current_flow_version(channel_id)
            .await
            .unwrap()
            .unwrap();
        let opening = store.next_bot_input(with, 0).await.unwrap().unwrap();
        let greeting = NewOutbound {
            conversation_id: with,
            author: "bot".into(),
            author_user_id: None,
            kind: "text".into(),
            body: Some("Olá".into()),
            content_json: r#"{"type":"text","text":{"body":"Olá"}}"#.into(),
            reply_to_wamid: None,
            media_id: None,
            idempotency_key: Some(format!("bot:{with}:start:0")),
        };
        let turn = BotTurn {
            start_flow_version: Some(v.id),
            sends: vec![greeting],
            ..start_turn(with, opening.id)
        };
        // A turn planned on a later version loses to the binding made first.
        let edited = store
            .update_flow(flow.id, None, None, Some("{\"v\":2}"), Some(7))
            .await
            .unwrap();
        assert_eq!(edited.version, 2);
        let [first, late] = <[Option<Vec<i64>>; 2]>::try_from(
            store
                .apply_bot_turns(&[
                    turn.clone(),
                    BotTurn {
                        start_flow_version: Some(edited.version_id),
                        ..turn.clone()
                    },
                ])
                .await
                .unwrap(),
        )
        .unwrap();
        let sent = first.expect("the first turn applies");
        assert_eq!(sent.len(), 1, "its message is written with it");
        assert_eq!(late, None, "compare-and-set: applied once");
        assert_eq!(store.outbox_counts().await.unwrap().0, 1, "one job queued");
        let session = store.bot_session(with).await.unwrap().unwrap();
        assert_eq!(session.flow_version_id, v.id);
        assert_eq!(session.last_input_message_id, opening.id);
        assert_eq!(store.apply_bot_turn(&turn).await.unwrap(), None);
        assert!(store.bot_work(10).await.unwrap().is_empty());
        assert_eq!(
            store.conversation_fields(with).await.unwrap(),
            vec![("custom.plano".to_owned(), "empresarial".to_owned())]
        );
        let conv = store.bot_conversation(with).await.unwrap().unwrap();
        assert!(conv.protocol_sent_at.is_some());
        assert_eq!(
            store.bot_sessions_due(2, 10).await.unwrap().len(),
            1,
            "due at 2 ms"
        );
        assert_eq!(
            store.bot_phase(with).await.unwrap(),
            Some(BotPhase {
                running: true,
                last_bot_message_id: None
            })
        );

        // Hand-off: queued in the queue, with the code saved and the bot phase closed.
        let queue = store
            .ensure_queue(&NewQueue {
                key: "suporte".into(),
                name: "Suporte".into(),
                priority: 0,
                business_hours: None,
                outside_hours_message: None,
                outside_hours_action: "wait".into(),
            })
            .await
            .unwrap();
        let handoff = BotTurn {
            expect_started: true,
            state_json: None,
            contact: ContactUpdate {
                code: Some("52998224725".into()),
                ..ContactUpdate::default()
            },
            fields: Vec::new(),
            protocol_sent: false,
            finish: Some(BotFinish {
                outcome: BotOutcome::Handoff,
                handoff: Some((queue.id, 3)),
                last_bot_message_id: Some(session.last_input_message_id),
            }),
            ..start_turn(with, session.last_input_message_id)
        };
        assert_eq!(
            store.apply_bot_turn(&handoff).await.unwrap(),
            Some(Vec::new())
        );
        let p = store
            .conversation_by_protocol(&conv.protocol)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.state, QUEUED_STATE);
        assert_eq!(p.queue_key.as_deref(), Some("suporte"));
        assert_eq!(p.priority, 3);
        assert_eq!(p.subject.as_deref(), Some("Suporte"));
        assert_eq!(p.contact_code.as_deref(), Some("52998224725"));
        assert_eq!(p.bot_outcome.as_deref(), Some("handoff"));
        assert!(
            store
                .bot_sessions_due(i64::MAX, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .contacts_with_code("52998224725", conv.contact_id)
                .await
                .unwrap()
                .len(),
            0,
            "only other contacts"
        );
        assert!(store.close_conversation(with, "finalized").await.unwrap());
        assert!(!store.close_conversation(with, "finalized").await.unwrap());
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
