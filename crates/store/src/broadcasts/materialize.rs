//! Turning pending recipients into messages, a batch per transaction: contacts, the conversations
//! that must be opened (`awaiting_reply`, a protocol number each), the template messages with
//! their outbox jobs on the bulk lane, reply routes, the messaging-limit ledger and the
//! recipients' new state all commit together, guarded by the broadcast still running and the
//! recipients still pending. A crash before the commit leaves them pending; after it, they are
//! queued and never materialized again.

use std::collections::HashMap;

use domain::protocol::{self, ProtocolConfig};
use serde_json::json;

use super::{BULK_PRIORITY, list, placeholders};
use crate::reply_routes::{AWAITING_REPLY_STATE, NewReplyRoute, RouteTarget, insert_reply_routes};
use crate::{DAY_MS, Result, Store, StoreError, insert_events, now_ms, on_write};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRecipient {
    pub id: i64,
    pub row_number: i64,
    pub wa_id: String,
    pub name: Option<String>,
    /// JSON {"header", "body", "buttons"}.
    pub variables: String,
}

/// What the caller's renderer made of one recipient.
#[derive(Debug, Clone)]
pub enum Rendering {
    /// The text shown in the conversation and the stored `OutboundContent` JSON.
    Message { body: String, content_json: String },
    /// The variables do not fit the template (pt-BR reason): the recipient fails unsent.
    Invalid(String),
}

/// One batch's parameters.
#[derive(Debug, Clone)]
pub struct BatchPlan<'a> {
    pub broadcast_id: i64,
    pub channel_id: i64,
    pub waba_id: &'a str,
    pub template_id: i64,
    /// The queue new conversations belong to.
    pub queue_id: Option<i64>,
    /// At most this many recipients.
    pub max: i64,
    /// Unique customers that may still be reached outside a service window in the moving 24 h;
    /// `None`: no limit known.
    pub reach_budget: Option<i64>,
    /// The reply route of every message (`None`: none recorded).
    pub route: Option<RouteTarget>,
    pub route_minutes: i64,
    pub button_actions: Option<String>,
    pub protocol: &'a ProtocolConfig,
}

#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// (conversation id, message id) of every message written.
    pub queued: Vec<(i64, i64)>,
    /// Conversations opened for them.
    pub opened: Vec<i64>,
    pub skipped_opted_out: usize,
    pub failed: usize,
    /// New customers counted against the messaging limit.
    pub reached: i64,
    /// The budget stopped the batch before a recipient who needed it.
    pub limited: bool,
    /// The broadcast was not running anymore: nothing was written.
    pub not_running: bool,
    /// No pending recipient was found.
    pub exhausted: bool,
}

/// A recipient's contact as the batch reads it.
#[derive(sqlx::FromRow)]
struct Target {
    id: i64,
    wa_id: String,
    opted_out_at: Option<i64>,
    last_inbound_at: Option<i64>,
    open_id: Option<i64>,
    reached_at: Option<i64>,
}

/// A recipient that gets a message in this batch.
struct Send<'r> {
    recipient: &'r PendingRecipient,
    contact_id: i64,
    conversation_id: Option<i64>,
    body: String,
    content_json: String,
}

impl Store {
    /// Materializes up to `plan.max` pending recipients in order. `render` is called for each
    /// recipient that is not opted out.
    pub async fn materialize_batch(
        &self,
        plan: &BatchPlan<'_>,
        render: impl Fn(&PendingRecipient) -> Rendering,
    ) -> Result<BatchOutcome> {
        let now = now_ms();
        let mut out = BatchOutcome::default();
        let lock = format!(
            "SELECT status FROM broadcasts WHERE id = $1{}",
            self.for_update()
        );
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let status: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(lock))
                .bind(plan.broadcast_id)
                .fetch_optional(&mut *tx)
                .await?;
            if status.as_deref() != Some(super::RUNNING) {
                out.not_running = true;
                return Ok(out);
            }
            let recipients: Vec<PendingRecipient> = sqlx::query_as(
                "SELECT id, row_number, wa_id, name, variables FROM broadcast_recipients
                 WHERE broadcast_id = $1 AND state = 'pending' ORDER BY id LIMIT $2",
            )
            .bind(plan.broadcast_id)
            .bind(plan.max)
            .fetch_all(&mut *tx)
            .await?;
            if recipients.is_empty() {
                out.exhausted = true;
                return Ok(out);
            }

            // Contacts: created when new (with the audience's name), then read with what decides
            // each recipient: consent, the service window, an open conversation, the last reach.
            let sql = format!(
                "INSERT INTO contacts (channel_id, wa_id, name, created_at, updated_at) VALUES {}
                 ON CONFLICT (channel_id, wa_id) DO NOTHING",
                placeholders(recipients.len(), 5, 1)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in &recipients {
                query = query.bind(plan.channel_id).bind(&r.wa_id).bind(&r.name).bind(now).bind(now);
            }
            query.execute(&mut *tx).await?;
            let sql = format!(
                "SELECT ct.id, ct.wa_id, ct.opted_out_at, ct.last_inbound_at,
                    (SELECT c.id FROM conversations c WHERE c.contact_id = ct.id AND c.closed_at IS NULL) AS open_id,
                    (SELECT mr.reached_at FROM messaging_reach mr WHERE mr.waba_id = $2 AND mr.wa_id = ct.wa_id) AS reached_at
                 FROM contacts ct WHERE ct.channel_id = $1 AND ct.wa_id IN ({})",
                list(recipients.len(), 3)
            );
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(plan.channel_id)
                .bind(plan.waba_id);
            for r in &recipients {
                query = query.bind(&r.wa_id);
            }
            let targets: Vec<Target> = query.fetch_all(&mut *tx).await?;
            let targets: HashMap<&str, &Target> =
                targets.iter().map(|t| (t.wa_id.as_str(), t)).collect();

            let mut budget = plan.reach_budget;
            let mut sends: Vec<Send> = Vec::new();
            let mut skipped: Vec<i64> = Vec::new();
            let mut failed: Vec<(i64, String)> = Vec::new();
            let mut reach: Vec<&str> = Vec::new();
            for r in &recipients {
                let Some(t) = targets.get(r.wa_id.as_str()) else {
                    return Err(StoreError::Conflict(format!("contact {} vanished", r.wa_id)));
                };
                if t.opted_out_at.is_some() {
                    skipped.push(r.id);
                    continue;
                }
                let in_window = t.last_inbound_at.is_some_and(|at| at > now - DAY_MS);
                let counted = t.reached_at.is_some_and(|at| at > now - DAY_MS);
                let needs_budget = !in_window && !counted;
                if needs_budget && budget.is_some_and(|b| b <= 0) {
                    // Order is kept: this one and the rest wait for the window to move.
                    out.limited = true;
                    break;
                }
                match render(r) {
                    Rendering::Invalid(reason) => failed.push((r.id, reason)),
                    Rendering::Message { body, content_json } => {
                        if needs_budget {
                            budget = budget.map(|b| b - 1);
                            reach.push(r.wa_id.as_str());
                        }
                        sends.push(Send {
                            recipient: r,
                            contact_id: t.id,
                            conversation_id: t.open_id,
                            body,
                            content_json,
                        });
                    }
                }
            }

            // Conversations for those without an open one: one counter bump for all the numbers.
            let new_contacts: Vec<i64> = sends
                .iter()
                .filter(|s| s.conversation_id.is_none())
                .map(|s| s.contact_id)
                .collect();
            if !new_contacts.is_empty() {
                let day = protocol::day_key(plan.protocol, now)
                    .map_err(|e| StoreError::Conflict(e.to_string()))?;
                let k = new_contacts.len() as i64;
                let last: i64 = sqlx::query_scalar(
                    "INSERT INTO protocol_counters (day_key, last_seq) VALUES ($1, $2)
                     ON CONFLICT (day_key) DO UPDATE SET last_seq = protocol_counters.last_seq + $2
                     RETURNING last_seq",
                )
                .bind(&day)
                .bind(k)
                .fetch_one(&mut *tx)
                .await?;
                let sql = format!(
                    "INSERT INTO conversations (channel_id, contact_id, protocol, state, queue_id, opened_at,
                        last_message_at) VALUES {} RETURNING id, contact_id, protocol",
                    placeholders(new_contacts.len(), 7, 1)
                );
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for (i, contact_id) in new_contacts.iter().enumerate() {
                    let number = protocol::format_protocol(plan.protocol, &day, last - k + 1 + i as i64);
                    query = query
                        .bind(plan.channel_id)
                        .bind(*contact_id)
                        .bind(number)
                        .bind(AWAITING_REPLY_STATE)
                        .bind(plan.queue_id)
                        .bind(now)
                        .bind(now);
                }
                let opened: Vec<(i64, i64, String)> = query.fetch_all(&mut *tx).await?;
                let by_contact: HashMap<i64, i64> = opened.iter().map(|(id, c, _)| (*c, *id)).collect();
                for s in sends.iter_mut().filter(|s| s.conversation_id.is_none()) {
                    s.conversation_id = by_contact.get(&s.contact_id).copied();
                }
                let events: Vec<(i64, String)> = opened
                    .iter()
                    .map(|(id, _, number)| {
                        let payload = json!({ "protocol": number, "by": "broadcast", "state": AWAITING_REPLY_STATE });
                        (*id, payload.to_string())
                    })
                    .collect();
                insert_events!(tx, now, "conversation.opened", &events);
                out.opened = opened.into_iter().map(|(id, _, _)| id).collect();
            }

            if !sends.is_empty() {
                // Messages and their jobs. The key ties each message to its recipient.
                let sql = format!(
                    "INSERT INTO messages (conversation_id, channel_id, direction, author, kind, body,
                        content, status, idempotency_key, created_at, updated_at)
                     VALUES {} RETURNING id, conversation_id",
                    values_with_constants(sends.len())
                );
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for s in &sends {
                    query = query
                        .bind(s.conversation_id.ok_or(StoreError::NotFound)?)
                        .bind(plan.channel_id)
                        .bind(&s.body)
                        .bind(&s.content_json)
                        .bind(format!("broadcast:{}:{}", plan.broadcast_id, s.recipient.id))
                        .bind(now);
                }
                let messages: Vec<(i64, i64)> = query.fetch_all(&mut *tx).await?;
                let by_conversation: HashMap<i64, i64> =
                    messages.iter().map(|(m, c)| (*c, *m)).collect();
                let sql = format!(
                    "INSERT INTO outbox (message_id, channel_id, recipient, state, next_attempt_at, created_at,
                        priority) VALUES {}",
                    placeholders(sends.len(), 7, 1)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                let mut rows: Vec<(i64, i64, i64, i64)> = Vec::with_capacity(sends.len());
                for s in &sends {
                    let conversation_id = s.conversation_id.ok_or(StoreError::NotFound)?;
                    let message_id = *by_conversation
                        .get(&conversation_id)
                        .ok_or(StoreError::NotFound)?;
                    rows.push((s.recipient.id, s.contact_id, conversation_id, message_id));
                    query = query
                        .bind(message_id)
                        .bind(plan.channel_id)
                        .bind(&s.recipient.wa_id)
                        .bind("pending")
                        .bind(now)
                        .bind(now)
                        .bind(BULK_PRIORITY);
                }
                query.execute(&mut *tx).await?;
                let existing: Vec<i64> = sends
                    .iter()
                    .filter_map(|s| s.conversation_id)
                    .filter(|c| !out.opened.contains(c))
                    .collect();
                if !existing.is_empty() {
                    let sql = format!(
                        "UPDATE conversations SET last_message_at = $1 WHERE id IN ({})",
                        list(existing.len(), 2)
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                    for id in &existing {
                        query = query.bind(*id);
                    }
                    query.execute(&mut *tx).await?;
                }
                let events: Vec<(i64, String)> = rows
                    .iter()
                    .map(|(_, _, c, m)| (*c, json!({ "message_id": m }).to_string()))
                    .collect();
                insert_events!(tx, now, "message.created", &events);
                if let Some(target) = plan.route {
                    let routes: Vec<NewReplyRoute> = rows
                        .iter()
                        .map(|(_, contact_id, conversation_id, message_id)| NewReplyRoute {
                            channel_id: plan.channel_id,
                            contact_id: *contact_id,
                            conversation_id: *conversation_id,
                            message_id: *message_id,
                            template_id: Some(plan.template_id),
                            target,
                            button_actions: plan.button_actions.clone(),
                            created_at: now,
                            expires_at: now + plan.route_minutes * 60_000,
                        })
                        .collect();
                    insert_reply_routes!(tx, &routes);
                }
                if !reach.is_empty() {
                    let sql = format!(
                        "INSERT INTO messaging_reach (waba_id, wa_id, channel_id, reached_at) VALUES {}
                         ON CONFLICT (waba_id, wa_id) DO UPDATE SET reached_at = excluded.reached_at,
                            channel_id = excluded.channel_id",
                        placeholders(reach.len(), 4, 1)
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for wa_id in &reach {
                        query = query.bind(plan.waba_id).bind(*wa_id).bind(plan.channel_id).bind(now);
                    }
                    query.execute(&mut *tx).await?;
                    out.reached = reach.len() as i64;
                }
                // The recipients' transition, only from pending: anything else means another
                // writer got there first, and the whole batch is rolled back.
                let n = rows.len();
                let mut sql = String::from(
                    "UPDATE broadcast_recipients SET state = 'queued', queued_at = $1, updated_at = $1",
                );
                for (column, pick) in [("contact_id", 1usize), ("conversation_id", 2), ("message_id", 3)] {
                    sql.push_str(&format!(", {column} = CASE id"));
                    for i in 0..n {
                        let base = 2 + i * 4;
                        sql.push_str(&format!(" WHEN ${base} THEN ${}", base + pick));
                    }
                    sql.push_str(" END");
                }
                sql.push_str(&format!(
                    " WHERE state = 'pending' AND id IN ({})",
                    (0..n).map(|i| format!("${}", 2 + i * 4)).collect::<Vec<_>>().join(", ")
                ));
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                for (recipient_id, contact_id, conversation_id, message_id) in &rows {
                    query = query
                        .bind(*recipient_id)
                        .bind(*contact_id)
                        .bind(*conversation_id)
                        .bind(*message_id);
                }
                let moved = query.execute(&mut *tx).await?.rows_affected();
                if moved != n as u64 {
                    return Err(StoreError::Conflict(
                        "broadcast recipients changed under the batch".into(),
                    ));
                }
                out.queued = rows.iter().map(|(_, _, c, m)| (*c, *m)).collect();
            }
            if !skipped.is_empty() {
                let sql = format!(
                    "UPDATE broadcast_recipients SET state = 'skipped', skip_reason = 'opted_out', updated_at = $1
                     WHERE state = 'pending' AND id IN ({})",
                    list(skipped.len(), 2)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                for id in &skipped {
                    query = query.bind(*id);
                }
                query.execute(&mut *tx).await?;
                out.skipped_opted_out = skipped.len();
            }
            for (id, reason) in &failed {
                sqlx::query(
                    "UPDATE broadcast_recipients SET state = 'failed', error_title = $2, updated_at = $3
                     WHERE id = $1 AND state = 'pending'",
                )
                .bind(*id)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            out.failed = failed.len();
            tx.commit().await?;
            Ok::<BatchOutcome, StoreError>(out)
        })
    }

    /// Unique customers the WABA reached outside a service window in the last 24 h, and when
    /// the oldest of them stops counting.
    pub async fn messaging_reach(&self, waba_id: &str) -> Result<(i64, Option<i64>)> {
        let since = now_ms() - DAY_MS;
        Ok(crate::on_read!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(reached_at) FROM messaging_reach WHERE waba_id = $1 AND reached_at > $2",
            )
            .bind(waba_id)
            .bind(since)
            .fetch_one(pool)
            .await?
        }))
        .map(|(count, oldest): (i64, Option<i64>)| (count, oldest.map(|at| at + DAY_MS)))
    }
}

/// The VALUES of the messages INSERT: 6 parameters a row, the constant columns inline.
fn values_with_constants(rows: usize) -> String {
    (0..rows)
        .map(|i| {
            let b = i * 6;
            format!(
                "(${}, ${}, 'out', 'broadcast', 'template', ${}, ${}, 'queued', ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 6
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
