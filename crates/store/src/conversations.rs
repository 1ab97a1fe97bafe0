//! Contacts, conversations and messages, and the transaction that turns one stored webhook into
//! them ([`Store::apply_inbound`]).

use domain::protocol::{self, ProtocolConfig};
use domain::status::DeliveryStatus;
use serde::Serialize;
use serde_json::json;

use crate::{Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

/// A customer message as the processor understood it.
#[derive(Debug, Clone)]
pub struct InboundMessageRecord {
    pub channel_id: i64,
    pub wa_id: String,
    pub profile_name: Option<String>,
    pub wamid: String,
    pub kind: String,
    /// Text shown in lists and bubbles (body, caption, title...).
    pub body: Option<String>,
    /// The full message JSON as Meta sent it.
    pub content_json: String,
    pub reply_to_wamid: Option<String>,
    pub wa_timestamp_ms: Option<i64>,
    /// For image, audio, video, document and sticker messages: the file to download.
    pub media: Option<InboundMedia>,
}

#[derive(Debug, Clone)]
pub struct InboundMedia {
    pub wa_media_id: String,
    pub kind: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub filename: Option<String>,
}

/// A delivery status webhook for a message we sent.
#[derive(Debug, Clone)]
pub struct StatusRecord {
    pub channel_id: i64,
    pub wamid: String,
    pub status: DeliveryStatus,
    pub wa_timestamp_ms: Option<i64>,
    pub recipient_id: Option<String>,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_detail: Option<String>,
}

#[derive(Debug, Clone)]
pub enum InboundItem {
    Message(InboundMessageRecord),
    Status(StatusRecord),
}

/// What one applied webhook changed, so the caller can notify whoever is watching.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    pub opened_conversations: Vec<i64>,
    /// (conversation id, message id)
    pub new_messages: Vec<(i64, i64)>,
    /// (conversation id, message id, new status)
    pub status_changes: Vec<(i64, i64, DeliveryStatus)>,
    pub duplicates: usize,
    /// Inbound media rows waiting for the download worker.
    pub new_media: Vec<i64>,
    /// Opt-out / opt-in keywords recorded (each answered with a confirmation).
    pub consents: Vec<crate::consent::InboundConsent>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ConversationSummary {
    pub id: i64,
    pub channel_id: i64,
    pub contact_id: i64,
    pub protocol: String,
    pub state: String,
    pub queue_id: Option<i64>,
    pub agent_id: Option<i64>,
    /// Waiting in this agent's personal line (a transfer to a busy agent).
    pub waiting_agent_id: Option<i64>,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub last_message_at: i64,
    pub last_inbound_at: Option<i64>,
    /// When the 24 h customer service window closes (free-form messages allowed until then).
    pub window_expires_at: Option<i64>,
    pub unread_count: i64,
    pub queued_at: Option<i64>,
    pub assigned_at: Option<i64>,
    pub close_reason: Option<String>,
    pub disposition_id: Option<i64>,
    pub subject: Option<String>,
    pub priority: i64,
    pub contact_wa_id: String,
    pub contact_name: Option<String>,
    pub queue_name: Option<String>,
    pub agent_name: Option<String>,
    pub last_message_preview: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MessageRecord {
    pub id: i64,
    pub conversation_id: i64,
    pub channel_id: i64,
    pub direction: String,
    pub author: String,
    pub author_user_id: Option<i64>,
    pub wamid: Option<String>,
    pub kind: String,
    pub body: Option<String>,
    #[serde(skip)]
    pub content: String,
    pub reply_to_wamid: Option<String>,
    pub status: String,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_detail: Option<String>,
    pub media_id: Option<i64>,
    pub wa_timestamp: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const CONVERSATION_SELECT: &str = "SELECT c.id, c.channel_id, c.contact_id, c.protocol,
    c.state, c.queue_id, c.agent_id, c.waiting_agent_id, c.opened_at, c.closed_at,
    c.last_message_at, c.last_inbound_at, c.last_inbound_at + 86400000 AS window_expires_at,
    c.unread_count, c.queued_at, c.assigned_at, c.close_reason, c.disposition_id, c.subject,
    c.priority, ct.wa_id AS contact_wa_id, COALESCE(ct.name, ct.profile_name) AS contact_name,
    q.name AS queue_name, u.name AS agent_name,
    (SELECT m.body FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1)
        AS last_message_preview
    FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
    LEFT JOIN queues q ON q.id = c.queue_id LEFT JOIN users u ON u.id = c.agent_id";

pub(crate) const MESSAGE_COLUMNS: &str = "id, conversation_id, channel_id, direction, author,
    author_user_id, wamid, kind, body, content, reply_to_wamid, status, error_code, error_title,
    error_detail, media_id, wa_timestamp, created_at, updated_at";

/// A conversation the bot is talking to.
pub const BOT_STATE: &str = "bot";
/// Waiting in a queue for a person.
pub const QUEUED_STATE: &str = "queued";
/// Finished; a new customer message opens a new conversation (and protocol).
pub const CLOSED_STATE: &str = "closed";

/// The state a conversation starts in when no bot flow applies to its channel; with a flow it
/// starts in [`BOT_STATE`] and the bot worker hands it to a queue.
pub const INITIAL_STATE: &str = QUEUED_STATE;

/// Takes the next protocol number of the day inside the caller's transaction: the counter row is
/// locked until commit, so numbers are unique and gap-free across connections and instances.
macro_rules! allocate_protocol {
    ($tx:expr, $cfg:expr, $now:expr) => {{
        let day = protocol::day_key($cfg, $now).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO protocol_counters (day_key, last_seq) VALUES ($1, 1)
             ON CONFLICT (day_key) DO UPDATE SET last_seq = protocol_counters.last_seq + 1
             RETURNING last_seq",
        )
        .bind(&day)
        .fetch_one(&mut *$tx)
        .await?;
        protocol::format_protocol($cfg, &day, seq)
    }};
}
pub(crate) use allocate_protocol;

impl Store {
    /// Applies one stored webhook in a single transaction and marks its inbox row done. Idempotent:
    /// messages are deduplicated by (channel, wamid) and statuses by (channel, wamid, status), and a
    /// message's status only ever moves forward, so replays and out-of-order deliveries converge.
    pub async fn apply_inbound(
        &self,
        inbox_id: i64,
        items: &[InboundItem],
        protocol_cfg: &ProtocolConfig,
    ) -> Result<ApplyReport> {
        self.apply_inbound_batch(&[(inbox_id, items.to_vec())], protocol_cfg)
            .await
    }

    /// [`Store::apply_inbound`] for several stored webhooks, in their order, in one transaction
    /// (one commit for many webhooks when they arrive faster than commits can be made).
    pub async fn apply_inbound_batch(
        &self,
        batch: &[(i64, Vec<InboundItem>)],
        protocol_cfg: &ProtocolConfig,
    ) -> Result<ApplyReport> {
        if let Some(statuses) = only_statuses(batch) {
            return self.apply_status_batch(&statuses).await;
        }
        let now = now_ms();
        let mut report = ApplyReport::default();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for (inbox_id, items) in batch {
            for item in items {
                match item {
                    InboundItem::Message(m) => {
                        let known: Option<i64> = sqlx::query_scalar(
                            "SELECT id FROM messages WHERE channel_id = $1 AND wamid = $2",
                        )
                        .bind(m.channel_id)
                        .bind(&m.wamid)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if known.is_some() {
                            report.duplicates += 1;
                            continue;
                        }
                        let sent_at = m.wa_timestamp_ms.unwrap_or(now);
                        let contact_id: i64 = sqlx::query_scalar(
                            "INSERT INTO contacts (channel_id, wa_id, profile_name, last_inbound_at, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $5)
                             ON CONFLICT (channel_id, wa_id) DO UPDATE SET
                                profile_name = COALESCE(excluded.profile_name, contacts.profile_name),
                                last_inbound_at = CASE
                                    WHEN contacts.last_inbound_at IS NULL OR contacts.last_inbound_at < excluded.last_inbound_at
                                    THEN excluded.last_inbound_at ELSE contacts.last_inbound_at END,
                                updated_at = excluded.updated_at
                             RETURNING id",
                        )
                        .bind(m.channel_id)
                        .bind(&m.wa_id)
                        .bind(&m.profile_name)
                        .bind(sent_at)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                        let open: Option<(i64, String)> = sqlx::query_as(
                            "SELECT id, state FROM conversations WHERE contact_id = $1 AND closed_at IS NULL",
                        )
                        .bind(contact_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        // The HSM response queue: reads a route only for a message that opens a
                        // conversation, answers a template, or taps a quick reply.
                        let (reply_plan, tap) = crate::reply_routes::plan_reply_routing!(
                            tx, now, contact_id, open.as_ref().map(|(_, s)| s.as_str()), &m.kind, &m.content_json
                        );
                        let conversation_id = match open {
                            Some((id, _)) => id,
                            None => {
                                let number = allocate_protocol!(tx, protocol_cfg, now);
                                // With a bot flow for this channel the conversation opens in the bot,
                                // atomically with its creation, so the desk never sees it queued first.
                                let flows: i64 = sqlx::query_scalar(
                                    "SELECT COUNT(*) FROM flows WHERE enabled = TRUE AND (channel_id IS NULL OR channel_id = $1)",
                                )
                                .bind(m.channel_id)
                                .fetch_one(&mut *tx)
                                .await?;
                                let state = if reply_plan.skips_bot() {
                                    crate::reply_routes::AWAITING_REPLY_STATE
                                } else if flows > 0 { BOT_STATE } else { INITIAL_STATE };
                                let id: i64 = sqlx::query_scalar(
                                    "INSERT INTO conversations (channel_id, contact_id, protocol, state, opened_at, last_message_at)
                                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                                )
                                .bind(m.channel_id)
                                .bind(contact_id)
                                .bind(&number)
                                .bind(state)
                                .bind(now)
                                .fetch_one(&mut *tx)
                                .await?;
                                insert_event!(tx, now, "conversation.opened", id, json!({ "protocol": number }));
                                report.opened_conversations.push(id);
                                id
                            }
                        };
                        let media_id: Option<i64> = match &m.media {
                            None => None,
                            Some(media) => {
                                let id: i64 = sqlx::query_scalar(
                                    "INSERT INTO media (channel_id, direction, wa_media_id, kind, mime_type, filename,
                                        expected_sha256, state, created_at, updated_at)
                                     VALUES ($1, 'in', $2, $3, $4, $5, $6, 'pending', $7, $7) RETURNING id",
                                )
                                .bind(m.channel_id)
                                .bind(&media.wa_media_id)
                                .bind(&media.kind)
                                .bind(&media.mime_type)
                                .bind(&media.filename)
                                .bind(&media.sha256)
                                .bind(now)
                                .fetch_one(&mut *tx)
                                .await?;
                                report.new_media.push(id);
                                Some(id)
                            }
                        };
                        let message_id: i64 = sqlx::query_scalar(
                            "INSERT INTO messages (conversation_id, channel_id, direction, author, wamid, kind, body,
                                content, reply_to_wamid, status, wa_timestamp, media_id, created_at, updated_at)
                             VALUES ($1, $2, 'in', 'customer', $3, $4, $5, $6, $7, 'received', $8, $10, $9, $9)
                             RETURNING id",
                        )
                        .bind(conversation_id)
                        .bind(m.channel_id)
                        .bind(&m.wamid)
                        .bind(&m.kind)
                        .bind(&m.body)
                        .bind(&m.content_json)
                        .bind(&m.reply_to_wamid)
                        .bind(m.wa_timestamp_ms)
                        .bind(now)
                        .bind(media_id)
                        .fetch_one(&mut *tx)
                        .await?;
                        sqlx::query(
                            "UPDATE conversations SET last_message_at = $2, unread_count = unread_count + 1,
                                last_inbound_at = CASE
                                    WHEN last_inbound_at IS NULL OR last_inbound_at < $3 THEN $3
                                    ELSE last_inbound_at END
                             WHERE id = $1",
                        )
                        .bind(conversation_id)
                        .bind(now)
                        .bind(sent_at)
                        .execute(&mut *tx)
                        .await?;
                        insert_event!(tx, now, "message.created", conversation_id, json!({ "message_id": message_id }));
                        report.new_messages.push((conversation_id, message_id));
                        crate::reply_routes::apply_reply_plan!(
                            tx, now, conversation_id, contact_id, m.channel_id, message_id, &reply_plan, &tap, report
                        );
                        // "SAIR" / "VOLTAR": consent recorded and confirmed in this transaction.
                        crate::consent::inbound_consent_keyword!(
                            tx, now, m, contact_id, conversation_id, message_id, report
                        );
                    }
                    InboundItem::Status(s) => {
                        let inserted = sqlx::query(
                            "INSERT INTO wa_statuses (channel_id, wamid, status, wa_timestamp, recipient_id,
                                error_code, error_title, error_detail, received_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                             ON CONFLICT (channel_id, wamid, status) DO NOTHING",
                        )
                        .bind(s.channel_id)
                        .bind(&s.wamid)
                        .bind(s.status.as_str())
                        .bind(s.wa_timestamp_ms)
                        .bind(&s.recipient_id)
                        .bind(s.error_code)
                        .bind(&s.error_title)
                        .bind(&s.error_detail)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if inserted == 0 {
                            report.duplicates += 1;
                            continue;
                        }
                        let current: Option<(i64, i64, String)> = sqlx::query_as(
                            "SELECT id, conversation_id, status FROM messages
                             WHERE channel_id = $1 AND wamid = $2 AND direction = 'out'",
                        )
                        .bind(s.channel_id)
                        .bind(&s.wamid)
                        .fetch_optional(&mut *tx)
                        .await?;
                        // A status for a message we do not know (yet) stays in wa_statuses; the
                        // sender applies it when it records the wamid.
                        let Some((message_id, conversation_id, current)) = current else { continue };
                        let from = DeliveryStatus::parse(&current).unwrap_or(DeliveryStatus::Queued);
                        let next = from.advance(s.status);
                        if next == from {
                            continue;
                        }
                        let failed = next == DeliveryStatus::Failed;
                        sqlx::query(
                            "UPDATE messages SET status = $2, updated_at = $3,
                                error_code = CASE WHEN $4 THEN $5 ELSE error_code END,
                                error_title = CASE WHEN $4 THEN $6 ELSE error_title END,
                                error_detail = CASE WHEN $4 THEN $7 ELSE error_detail END
                             WHERE id = $1",
                        )
                        .bind(message_id)
                        .bind(next.as_str())
                        .bind(now)
                        .bind(failed)
                        .bind(s.error_code)
                        .bind(&s.error_title)
                        .bind(&s.error_detail)
                        .execute(&mut *tx)
                        .await?;
                        let payload = json!({ "message_id": message_id, "status": next.as_str() });
                        insert_event!(tx, now, "message.status", conversation_id, payload);
                        report.status_changes.push((conversation_id, message_id, next));
                    }
                }
            }
            sqlx::query("UPDATE inbox SET state = 'done', attempts = attempts + 1, processed_at = $2 WHERE id = $1")
                .bind(inbox_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(report)
    }

    /// Conversations, most recent first, optionally only open ones.
    pub async fn conversations(
        &self,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<ConversationSummary>> {
        let sql = format!(
            "{CONVERSATION_SELECT} WHERE ($1 = FALSE OR c.closed_at IS NULL)
             ORDER BY c.last_message_at DESC, c.id DESC LIMIT $2"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(open_only)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn conversation(&self, id: i64) -> Result<Option<ConversationSummary>> {
        let sql = format!("{CONVERSATION_SELECT} WHERE c.id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A page of a conversation's messages in chronological order: those with id < `before` (or
    /// the newest when `before` is None), at most `limit`.
    pub async fn messages(
        &self,
        conversation_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<MessageRecord>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let mut rows: Vec<MessageRecord> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(conversation_id)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.reverse();
        Ok(rows)
    }

    pub async fn message(&self, id: i64) -> Result<Option<MessageRecord>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        }))
    }

    /// How many messages carry this wamid on this channel (tests prove "stored once" with it).
    pub async fn count_messages_with_wamid(&self, wamid: &str) -> Result<i64> {
        Ok(on_read!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE wamid = $1")
                .bind(wamid)
                .fetch_one(pool)
                .await?
        }))
    }
}

impl Store {
    /// Resets the unread count; returns the wamid of the latest customer message (to mark read on
    /// WhatsApp).
    pub async fn mark_conversation_read(&self, conversation_id: i64) -> Result<Option<String>> {
        on_write!(self, pool => {
            sqlx::query("UPDATE conversations SET unread_count = 0 WHERE id = $1")
                .bind(conversation_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(on_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT wamid FROM messages WHERE conversation_id = $1 AND direction = 'in' AND wamid IS NOT NULL
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(conversation_id)
            .fetch_optional(pool)
            .await?
        }))
    }
}

/// The batch's statuses when it carries nothing else (and something): those take the set-based
/// path of `crate::statuses`.
fn only_statuses(batch: &[(i64, Vec<InboundItem>)]) -> Option<Vec<(i64, Vec<&StatusRecord>)>> {
    let mut out = Vec::with_capacity(batch.len());
    for (inbox_id, items) in batch {
        let mut statuses = Vec::with_capacity(items.len());
        for item in items {
            match item {
                InboundItem::Status(s) => statuses.push(s),
                InboundItem::Message(_) => return None,
            }
        }
        out.push((*inbox_id, statuses));
    }
    out.iter().any(|(_, s)| !s.is_empty()).then_some(out)
}
