//! The write of a template send: the conversation it opens, its message and outbox job, its
//! reply route and (for a schedule) the schedule marked sent, in one transaction.

use domain::protocol::{self, ProtocolConfig};
use serde_json::json;

use super::{AWAITING_REPLY_STATE, NewReplyRoute, RouteTarget};
use crate::conversations::{MessageRecord, allocate_protocol};
use crate::outbox::{NewOutbound, insert_outbound};
use crate::{Result, Store, StoreError, insert_event, is_unique_violation, now_ms, on_write};

/// Where a template send goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendTarget {
    /// An open conversation.
    Conversation(i64),
    /// A contact (created when new): its open conversation, else a new one `awaiting_reply`.
    Contact { channel_id: i64, wa_id: String },
}

/// A template (or broadcast) route to record with the message.
#[derive(Debug, Clone)]
pub struct TemplateRoute {
    pub template_id: Option<i64>,
    pub target: RouteTarget,
    pub button_actions: Option<String>,
    pub expires_at: i64,
}

/// A schedule being fired by one worker: the send commits only while the claim is still theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleClaim {
    pub schedule_id: i64,
    pub claimed_by: String,
}

/// A template message to write (see [`Store::enqueue_template_send`]).
#[derive(Debug, Clone)]
pub struct NewTemplateSend {
    pub target: SendTarget,
    /// For a conversation this send opens: its queue and the person shown as who started it
    /// (they may read it while it waits; it is not in their load).
    pub queue_id: Option<i64>,
    pub owner_agent_id: Option<i64>,
    /// The message; its `conversation_id` is filled in.
    pub message: NewOutbound,
    pub route: Option<TemplateRoute>,
    pub schedule: Option<ScheduleClaim>,
}

#[derive(Debug, Clone)]
pub enum TemplateSendOutcome {
    Created {
        message: MessageRecord,
        /// This send opened the conversation.
        opened: bool,
    },
    /// The idempotency key was used before: the first message, nothing new is sent.
    Existing(MessageRecord),
    /// The conversation was closed meanwhile.
    ConversationClosed,
    /// The schedule is no longer this worker's (cancelled, or fired by another after the lease).
    ScheduleLost,
}

enum SendDone {
    Created(i64, bool),
    Existing(i64),
    Closed,
    Lost,
}

impl Store {
    /// Writes a template send in one transaction: the conversation (the given open one; for a
    /// contact its open one, else a new one `awaiting_reply` with its protocol number), the
    /// message with its outbox job, its reply route and, for a schedule, the schedule marked sent
    /// (only while the claim is still the caller's). With an idempotency key a repeated call
    /// returns the first message.
    pub async fn enqueue_template_send(
        &self,
        send: &NewTemplateSend,
        protocol_cfg: &ProtocolConfig,
    ) -> Result<TemplateSendOutcome> {
        let done = match self.try_template_send(send, protocol_cfg).await {
            // Two sends with one key raced; the second run finds the first's message.
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                self.try_template_send(send, protocol_cfg).await?
            }
            other => other?,
        };
        let message = |id: i64| async move { self.message(id).await?.ok_or(StoreError::NotFound) };
        Ok(match done {
            SendDone::Created(id, opened) => TemplateSendOutcome::Created {
                message: message(id).await?,
                opened,
            },
            SendDone::Existing(id) => TemplateSendOutcome::Existing(message(id).await?),
            SendDone::Closed => TemplateSendOutcome::ConversationClosed,
            SendDone::Lost => TemplateSendOutcome::ScheduleLost,
        })
    }

    async fn try_template_send(
        &self,
        send: &NewTemplateSend,
        protocol_cfg: &ProtocolConfig,
    ) -> Result<SendDone> {
        let now = now_ms();
        Ok(on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let (conversation_id, contact_id, channel_id, opened) = match &send.target {
                SendTarget::Conversation(id) => {
                    let row: Option<(i64, i64, Option<i64>)> = sqlx::query_as(
                        "SELECT contact_id, channel_id, closed_at FROM conversations WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match row {
                        None => return Err(StoreError::NotFound),
                        Some((_, _, Some(_))) => return Ok(SendDone::Closed),
                        Some((contact_id, channel_id, None)) => (*id, contact_id, channel_id, false),
                    }
                }
                SendTarget::Contact { channel_id, wa_id } => {
                    let contact_id: i64 = sqlx::query_scalar(
                        "INSERT INTO contacts (channel_id, wa_id, created_at, updated_at) VALUES ($1, $2, $3, $3)
                         ON CONFLICT (channel_id, wa_id) DO UPDATE SET updated_at = excluded.updated_at
                         RETURNING id",
                    )
                    .bind(channel_id)
                    .bind(wa_id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let open: Option<i64> = sqlx::query_scalar(
                        "SELECT id FROM conversations WHERE contact_id = $1 AND closed_at IS NULL",
                    )
                    .bind(contact_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match open {
                        Some(id) => (id, contact_id, *channel_id, false),
                        None => {
                            let number = allocate_protocol!(tx, protocol_cfg, now);
                            let id: i64 = sqlx::query_scalar(
                                "INSERT INTO conversations (channel_id, contact_id, protocol, state, queue_id,
                                    agent_id, opened_at, last_message_at)
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
                            )
                            .bind(channel_id)
                            .bind(contact_id)
                            .bind(&number)
                            .bind(AWAITING_REPLY_STATE)
                            .bind(send.queue_id)
                            .bind(send.owner_agent_id)
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await?;
                            let payload = json!({ "protocol": number, "by": "template", "state": AWAITING_REPLY_STATE });
                            insert_event!(tx, now, "conversation.opened", id, payload);
                            (id, contact_id, *channel_id, true)
                        }
                    }
                }
            };
            if let Some(key) = &send.message.idempotency_key {
                let existing: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM messages WHERE conversation_id = $1 AND idempotency_key = $2",
                )
                .bind(conversation_id)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(id) = existing {
                    return Ok(SendDone::Existing(id));
                }
            }
            let mut message = send.message.clone();
            message.conversation_id = conversation_id;
            let message_id = insert_outbound!(tx, &message, now)?;
            if message.kind == "template" {
                // A template outside the customer's window counts against the portfolio's
                // messaging limit: recorded so a broadcast's budget sees it.
                sqlx::query(
                    "INSERT INTO messaging_reach (waba_id, wa_id, channel_id, reached_at)
                     SELECT ch.waba_id, ct.wa_id, ch.id, $2
                     FROM contacts ct JOIN channels ch ON ch.id = ct.channel_id
                     WHERE ct.id = $1 AND (ct.last_inbound_at IS NULL OR ct.last_inbound_at <= $3)
                     ON CONFLICT (waba_id, wa_id) DO UPDATE SET reached_at = excluded.reached_at,
                        channel_id = excluded.channel_id",
                )
                .bind(contact_id)
                .bind(now)
                .bind(now - crate::DAY_MS)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(route) = &send.route {
                let row = NewReplyRoute {
                    channel_id,
                    contact_id,
                    conversation_id,
                    message_id,
                    template_id: route.template_id,
                    target: route.target,
                    button_actions: route.button_actions.clone(),
                    created_at: now,
                    expires_at: route.expires_at,
                };
                super::insert_reply_routes!(tx, std::slice::from_ref(&row));
            }
            if let Some(claim) = &send.schedule {
                let marked = crate::schedules::mark_schedule_sent!(tx, claim, message_id, conversation_id, now);
                if marked == 0 {
                    return Ok(SendDone::Lost);
                }
            }
            tx.commit().await?;
            SendDone::Created(message_id, opened)
        }))
    }
}
