//! The HSM response queue. Every template send records a reply route: where the customer's reply
//! goes (a queue, the sending agent with a fallback queue, or the bot) and until when. The inbound
//! transaction (`Store::apply_inbound_batch`) consults it only for a message that opens a
//! conversation, lands in one that is `awaiting_reply`, or taps a quick-reply button: one indexed
//! lookup, never for the ordinary message of an ongoing conversation.
//!
//! Also the write of a template send itself ([`Store::enqueue_template_send`]): the conversation
//! it opens (state `awaiting_reply`, with its protocol, in no worklist until the customer answers),
//! the message with its outbox job and the route, in one transaction.

mod inbound;
mod send;

pub use inbound::*;
pub(crate) use inbound::{apply_reply_plan, plan_reply_routing};
pub use send::*;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

/// A conversation opened by a template (or a broadcast) that the customer has not answered yet.
/// It shows in no worklist; the customer's reply moves it on (see [`ReplyPlan`]), and a sweep
/// closes it when its routes expire ([`Store::close_unanswered`]).
pub const AWAITING_REPLY_STATE: &str = "awaiting_reply";
/// How long a reply route lasts when the channel does not say (24 h).
pub const DEFAULT_REPLY_MINUTES: i64 = 1440;
/// `close_reason` of an awaiting conversation whose routes expired without an answer.
pub const NO_REPLY_REASON: &str = "no_reply";
/// `close_reason` of a conversation a quick-reply action answered and closed without a person.
pub const AUTO_REPLY_REASON: &str = "hsm_auto_reply";
/// Rows per INSERT of a batch (14 parameters each: well under both backends' limits).
pub const INSERT_CHUNK: usize = 500;

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum RouteTarget {
    /// Waits in this queue (`None`: the shared line, for anyone) without the bot.
    Queue { queue_id: Option<i64> },
    /// To the sending agent ("carteira") when they are available and below their limit, else to
    /// the fallback queue.
    Agent {
        agent_id: i64,
        fallback_queue_id: Option<i64>,
    },
    /// The usual path: the bot (or the channel's queue without a flow).
    Bot,
}

impl RouteTarget {
    /// (target, queue_id, agent_id, fallback_queue_id) as stored.
    pub fn columns(&self) -> (&'static str, Option<i64>, Option<i64>, Option<i64>) {
        match *self {
            RouteTarget::Queue { queue_id } => ("queue", queue_id, None, None),
            RouteTarget::Agent {
                agent_id,
                fallback_queue_id,
            } => ("agent", None, Some(agent_id), fallback_queue_id),
            RouteTarget::Bot => ("bot", None, None, None),
        }
    }
}

/// One route to record (a template send, or one broadcast recipient).
#[derive(Debug, Clone)]
pub struct NewReplyRoute {
    pub channel_id: i64,
    pub contact_id: i64,
    pub conversation_id: i64,
    /// The template message.
    pub message_id: i64,
    pub template_id: Option<i64>,
    pub target: RouteTarget,
    /// The template's `button_actions` JSON when it was sent (see [`ButtonAction`]).
    pub button_actions: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ReplyRouteRecord {
    pub id: i64,
    pub channel_id: i64,
    pub contact_id: i64,
    pub conversation_id: i64,
    pub message_id: i64,
    pub template_id: Option<i64>,
    pub target: String,
    pub queue_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub fallback_queue_id: Option<i64>,
    pub button_actions: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub answered_at: Option<i64>,
    pub answer_message_id: Option<i64>,
    /// The quick-reply button the customer tapped (payload, else its text).
    pub payload: Option<String>,
    /// `queued`, `waiting_agent`, `fallback`, `auto_reply`, `bot`, `recorded`, `superseded`,
    /// `expired`; `None` while it waits.
    pub outcome: Option<String>,
}

const ROUTE_COLUMNS: &str = "id, channel_id, contact_id, conversation_id, message_id, template_id,
    target, queue_id, agent_id, fallback_queue_id, button_actions, created_at, expires_at,
    answered_at, answer_message_id, payload, outcome";

/// A channel's HSM reply settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HsmSettings {
    /// The HSM response queue; `None`: the queue of the conversation the template went to.
    pub hsm_queue_id: Option<i64>,
    pub hsm_reply_minutes: i64,
    pub hsm_fallback_queue_id: Option<i64>,
}

/// A change of [`HsmSettings`]; the outer `None` leaves a field, `Some(None)` clears a queue.
#[derive(Debug, Clone, Default)]
pub struct HsmSettingsPatch {
    pub hsm_queue_id: Option<Option<i64>>,
    pub hsm_reply_minutes: Option<i64>,
    pub hsm_fallback_queue_id: Option<Option<i64>>,
}

/// The INSERT of `rows` routes (multi-row VALUES).
pub fn insert_routes_sql(rows: usize) -> String {
    const COLS: usize = 12;
    let mut sql = String::from(
        "INSERT INTO reply_routes (channel_id, contact_id, conversation_id, message_id, template_id,
            target, queue_id, agent_id, fallback_queue_id, button_actions, created_at, expires_at)
         VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..COLS {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * COLS + c + 1));
        }
        sql.push(')');
    }
    sql
}

/// Inserts routes inside the caller's transaction, in chunks of [`INSERT_CHUNK`] rows per
/// statement. Evaluates to the number of rows inserted. For the broadcast worker (set-based) and
/// [`Store::enqueue_template_send`].
macro_rules! insert_reply_routes {
    ($tx:expr, $routes:expr) => {{
        let routes: &[$crate::reply_routes::NewReplyRoute] = $routes;
        let mut inserted: u64 = 0;
        for chunk in routes.chunks($crate::reply_routes::INSERT_CHUNK) {
            let sql = $crate::reply_routes::insert_routes_sql(chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                let (target, queue_id, agent_id, fallback) = r.target.columns();
                query = query
                    .bind(r.channel_id)
                    .bind(r.contact_id)
                    .bind(r.conversation_id)
                    .bind(r.message_id)
                    .bind(r.template_id)
                    .bind(target)
                    .bind(queue_id)
                    .bind(agent_id)
                    .bind(fallback)
                    .bind(r.button_actions.clone())
                    .bind(r.created_at)
                    .bind(r.expires_at);
            }
            inserted += query.execute(&mut *$tx).await?.rows_affected();
        }
        inserted
    }};
}
#[allow(unused_imports)] // for the broadcast worker's store module
pub(crate) use insert_reply_routes;

impl Store {
    /// Records reply routes (one per template send or broadcast recipient), many rows per
    /// statement, in one transaction. Returns how many were inserted.
    pub async fn insert_reply_routes_batch(&self, routes: &[NewReplyRoute]) -> Result<u64> {
        if routes.is_empty() {
            return Ok(0);
        }
        Ok(on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = insert_reply_routes!(tx, routes);
            tx.commit().await?;
            n
        }))
    }

    /// The routes recorded for a conversation's template sends, newest first.
    pub async fn reply_routes_of_conversation(
        &self,
        conversation_id: i64,
    ) -> Result<Vec<ReplyRouteRecord>> {
        let sql = format!(
            "SELECT {ROUTE_COLUMNS} FROM reply_routes WHERE conversation_id = $1 ORDER BY id DESC"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(conversation_id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The route recorded with a template message.
    pub async fn reply_route_of_message(
        &self,
        message_id: i64,
    ) -> Result<Option<ReplyRouteRecord>> {
        let sql = format!("SELECT {ROUTE_COLUMNS} FROM reply_routes WHERE message_id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(message_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn channel_hsm_settings(&self, channel_id: i64) -> Result<Option<HsmSettings>> {
        let row: Option<(Option<i64>, i64, Option<i64>)> = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT hsm_queue_id, hsm_reply_minutes, hsm_fallback_queue_id FROM channels WHERE id = $1",
            )
            .bind(channel_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(q, minutes, fallback)| HsmSettings {
            hsm_queue_id: q,
            hsm_reply_minutes: minutes,
            hsm_fallback_queue_id: fallback,
        }))
    }

    /// Changes a channel's HSM settings; `NotFound` for an unknown channel.
    pub async fn set_channel_hsm_settings(
        &self,
        channel_id: i64,
        patch: &HsmSettingsPatch,
    ) -> Result<HsmSettings> {
        let current = self
            .channel_hsm_settings(channel_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let next = HsmSettings {
            hsm_queue_id: patch.hsm_queue_id.unwrap_or(current.hsm_queue_id),
            hsm_reply_minutes: patch.hsm_reply_minutes.unwrap_or(current.hsm_reply_minutes),
            hsm_fallback_queue_id: patch
                .hsm_fallback_queue_id
                .unwrap_or(current.hsm_fallback_queue_id),
        };
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE channels SET hsm_queue_id = $2, hsm_reply_minutes = $3, hsm_fallback_queue_id = $4,
                    updated_at = $5 WHERE id = $1",
            )
            .bind(channel_id)
            .bind(next.hsm_queue_id)
            .bind(next.hsm_reply_minutes)
            .bind(next.hsm_fallback_queue_id)
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        Ok(next)
    }

    /// Closes conversations still `awaiting_reply` whose every route expired (or that have none),
    /// at most `limit`, so the customer's next message opens a fresh one with the bot; marks the
    /// expired routes. Returns the closed conversations.
    pub async fn close_unanswered(&self, now: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let closed: Vec<i64> = sqlx::query_scalar(
                "UPDATE conversations SET state = 'closed', closed_at = $1, close_reason = $3
                 WHERE id IN (
                    SELECT c.id FROM conversations c
                    WHERE c.state = 'awaiting_reply' AND c.closed_at IS NULL
                      AND NOT EXISTS (SELECT 1 FROM reply_routes r WHERE r.conversation_id = c.id
                          AND r.answered_at IS NULL AND r.expires_at > $1)
                    ORDER BY c.id LIMIT $2)
                 RETURNING id",
            )
            .bind(now)
            .bind(limit)
            .bind(NO_REPLY_REASON)
            .fetch_all(&mut *tx)
            .await?;
            for id in &closed {
                insert_event!(tx, now, "conversation.closed", *id, json!({ "reason": NO_REPLY_REASON }));
            }
            sqlx::query(
                "UPDATE reply_routes SET outcome = 'expired'
                 WHERE answered_at IS NULL AND outcome IS NULL AND expires_at <= $1",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            closed
        }))
    }
}

/// A contact as a template send needs it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ContactBrief {
    pub id: i64,
    pub channel_id: i64,
    pub wa_id: String,
    pub name: Option<String>,
    pub open_conversation_id: Option<i64>,
    /// The customer's last message (the 24 h window).
    pub last_inbound_at: Option<i64>,
}

const CONTACT_BRIEF: &str = "SELECT ct.id, ct.channel_id, ct.wa_id, COALESCE(ct.name, ct.profile_name) AS name,
    ct.last_inbound_at,
    (SELECT c.id FROM conversations c WHERE c.contact_id = ct.id AND c.closed_at IS NULL) AS open_conversation_id
    FROM contacts ct";

impl Store {
    pub async fn contact_brief(&self, contact_id: i64) -> Result<Option<ContactBrief>> {
        let sql = format!("{CONTACT_BRIEF} WHERE ct.id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(contact_id).fetch_optional(pool).await?
        }))
    }

    pub async fn contact_by_wa_id(
        &self,
        channel_id: i64,
        wa_id: &str,
    ) -> Result<Option<ContactBrief>> {
        let sql = format!("{CONTACT_BRIEF} WHERE ct.channel_id = $1 AND ct.wa_id = $2");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(channel_id)
                .bind(wa_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The contact of a number on a channel, created when new; returns its id.
    pub async fn ensure_contact(&self, channel_id: i64, wa_id: &str) -> Result<i64> {
        let now = now_ms();
        Ok(on_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO contacts (channel_id, wa_id, created_at, updated_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (channel_id, wa_id) DO UPDATE SET updated_at = contacts.updated_at
                 RETURNING id",
            )
            .bind(channel_id)
            .bind(wa_id)
            .bind(now)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Whether a contact is a customer of this person's queues: they never were in a queue (new,
    /// or only ever with the bot), or one of their conversations was in a queue of the person or
    /// worked by them.
    pub async fn contact_in_reach(&self, contact_id: i64, user_id: i64) -> Result<bool> {
        let (queued, mine): (i64, i64) = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN c.queue_id IS NOT NULL OR c.agent_id IS NOT NULL THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN c.agent_id = $2
                        OR c.queue_id IN (SELECT queue_id FROM queue_members WHERE user_id = $2) THEN 1 ELSE 0 END), 0)
                 FROM conversations c WHERE c.contact_id = $1",
            )
            .bind(contact_id)
            .bind(user_id)
            .fetch_one(pool)
            .await?
        });
        Ok(queued == 0 || mine > 0)
    }

    /// The channel's customers out of this person's reach (the complement of
    /// [`Store::contact_in_reach`]), by WhatsApp id: one query for a whole audience.
    pub async fn wa_ids_out_of_reach(
        &self,
        channel_id: i64,
        user_id: i64,
    ) -> Result<std::collections::HashSet<String>> {
        let rows: Vec<String> = on_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT ct.wa_id FROM contacts ct WHERE ct.channel_id = $1
                   AND EXISTS (SELECT 1 FROM conversations c WHERE c.contact_id = ct.id
                        AND (c.queue_id IS NOT NULL OR c.agent_id IS NOT NULL))
                   AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.contact_id = ct.id
                        AND (c.agent_id = $2 OR c.queue_id IN
                            (SELECT queue_id FROM queue_members WHERE user_id = $2)))",
            )
            .bind(channel_id)
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// Gives a conversation a queue when it has none (a conversation an agent started belongs to
    /// their queue, so its supervisors oversee it).
    pub async fn set_queue_if_unset(&self, conversation_id: i64, queue_id: i64) -> Result<bool> {
        let changed = on_write!(self, pool => {
            sqlx::query("UPDATE conversations SET queue_id = $2 WHERE id = $1 AND queue_id IS NULL")
                .bind(conversation_id)
                .bind(queue_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed > 0)
    }
}
