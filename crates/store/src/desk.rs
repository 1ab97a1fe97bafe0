//! The desk's moving parts: routing waiting conversations to agents, manual assignment, transfer
//! and finalization. People's presence, capacity and queue membership are `people`.
//!
//! Every change that can raise an agent's load (routing, assignment, transfer to an agent) runs in
//! one transaction that first takes the routing lock: on PostgreSQL a transaction-scoped advisory
//! lock, on SQLite the single write connection. Loads are counted inside that transaction, so the
//! limit holds under any concurrency, across instances.

use domain::routing::{self, Agent, Waiting};
use serde::Serialize;
use serde_json::json;

use domain::protocol::{self, ProtocolConfig};

use crate::conversations::allocate_protocol;
use crate::conversations::{CLOSED_STATE, QUEUED_STATE};
use crate::people::Presence;
use crate::{Backend, Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

/// Worked by an agent (`agent_id`).
pub const ASSIGNED_STATE: &str = "assigned";
/// An agent's limit when neither they nor the queue set one.
pub const DEFAULT_LIMIT: i64 = 3;
/// Key of `pg_advisory_xact_lock` serializing everything that raises a load.
const ROUTING_LOCK: i64 = 0x4154_454e_4445;

/// Where a transfer sends a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferTarget {
    Agent(i64),
    Queue(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignOutcome {
    Assigned,
    /// The agent is at their limit (and exceeding it was not asked for).
    AtCapacity,
    /// The conversation is closed or still with the bot.
    NotAssignable,
}

/// What starting a conversation with a customer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Created(i64),
    /// The customer already has an open conversation (this one).
    Existing(i64),
    /// The agent is at their limit (and exceeding it was not asked for).
    AtCapacity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferOutcome {
    /// `assigned` (the agent had room) or `queued` (in the queue or the agent's personal line).
    pub state: String,
    pub transfer_id: i64,
}

/// A conversation waiting in a queue, with its place in line (1 = next).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WaitingConversation {
    pub conversation_id: i64,
    pub queue_id: Option<i64>,
    pub waiting_agent_id: Option<i64>,
    pub avoid_agent_id: Option<i64>,
    pub queued_at: Option<i64>,
    pub protocol: String,
    pub queue_name: Option<String>,
    pub waiting_message: Option<String>,
    pub position_update_secs: Option<i64>,
    pub max_wait_secs: Option<i64>,
    pub max_wait_message: Option<String>,
    pub default_max_concurrent: Option<i64>,
    pub position_notified: Option<i64>,
    pub position_notified_at: Option<i64>,
    pub max_wait_notified_at: Option<i64>,
    #[sqlx(skip)]
    pub position: i64,
}

/// Waiting conversations in service order: queue priority, then the conversation's priority,
/// then arrival.
const WAITING_SELECT: &str = "SELECT c.id AS conversation_id, c.queue_id, c.waiting_agent_id,
    c.avoid_agent_id, c.queued_at, c.protocol, q.name AS queue_name, q.waiting_message, q.position_update_secs,
    q.max_wait_secs, q.max_wait_message, q.default_max_concurrent, c.position_notified,
    c.position_notified_at, c.max_wait_notified_at
    FROM conversations c LEFT JOIN queues q ON q.id = c.queue_id
    WHERE c.state = 'queued'
    ORDER BY COALESCE(q.priority, 0) DESC, c.priority DESC, COALESCE(c.queued_at, c.opened_at), c.id";

/// Serializes everything that can raise a load (SQLite's single writer already does).
macro_rules! take_routing_lock {
    ($tx:expr, $postgres:expr) => {
        if $postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ROUTING_LOCK)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// (state, agent id, queue id) of a conversation, inside the routing transaction.
macro_rules! current_place {
    ($tx:expr, $conversation_id:expr) => {{
        let place: Option<(String, Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT state, agent_id, queue_id FROM conversations WHERE id = $1")
                .bind($conversation_id)
                .fetch_optional(&mut *$tx)
                .await?;
        place
    }};
}

/// Current load and effective limit of an agent, inside the routing transaction.
macro_rules! load_and_limit {
    ($tx:expr, $agent_id:expr, $queue_id:expr) => {{
        let (load, own, queue_default): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM conversations c WHERE c.agent_id = u.id AND c.state = 'assigned'),
                u.max_concurrent,
                (SELECT q.default_max_concurrent FROM queues q WHERE q.id = $2)
             FROM users u WHERE u.id = $1",
        )
        .bind($agent_id)
        .bind($queue_id)
        .fetch_optional(&mut *$tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        (load, own.or(queue_default).unwrap_or(DEFAULT_LIMIT))
    }};
}

macro_rules! assign_in_tx {
    ($tx:expr, $now:expr, $conversation_id:expr, $agent_id:expr, $by:expr, $how:expr) => {{
        sqlx::query(
            "UPDATE conversations SET state = 'assigned', agent_id = $2, assigned_at = $3,
                waiting_agent_id = NULL, avoid_agent_id = NULL
             WHERE id = $1",
        )
        .bind($conversation_id)
        .bind($agent_id)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE users SET last_assigned_at = $2 WHERE id = $1")
            .bind($agent_id)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        let payload = json!({ "agent_id": $agent_id, "by": $by, "how": $how });
        insert_event!($tx, $now, "conversation.assigned", $conversation_id, payload);
    }};
}

macro_rules! requeue_in_tx {
    ($tx:expr, $now:expr, $conversation_id:expr, $queue_id:expr, $waiting_agent_id:expr, $avoid:expr) => {{
        sqlx::query(
            "UPDATE conversations SET state = 'queued', agent_id = NULL, queue_id = $2,
                waiting_agent_id = $3, queued_at = $4, position_notified = NULL,
                position_notified_at = NULL, max_wait_notified_at = NULL, avoid_agent_id = $5
             WHERE id = $1",
        )
        .bind($conversation_id)
        .bind($queue_id)
        .bind($waiting_agent_id)
        .bind($now)
        .bind($avoid)
        .execute(&mut *$tx)
        .await?;
        let payload = json!({ "queue_id": $queue_id, "waiting_agent_id": $waiting_agent_id });
        insert_event!($tx, $now, "conversation.queued", $conversation_id, payload);
    }};
}

macro_rules! record_transfer {
    ($tx:expr, $now:expr, $conversation_id:expr, $by:expr, $from_agent:expr, $from_queue:expr, $to_agent:expr, $to_queue:expr, $note:expr) => {{
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO transfers (conversation_id, at, by_user_id, from_agent_id, from_queue_id,
                to_agent_id, to_queue_id, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind($conversation_id)
        .bind($now)
        .bind($by)
        .bind($from_agent)
        .bind($from_queue)
        .bind($to_agent)
        .bind($to_queue)
        .bind($note)
        .fetch_one(&mut *$tx)
        .await?;
        id
    }};
}

#[derive(sqlx::FromRow)]
struct RoutingAgentRow {
    id: i64,
    max_concurrent: Option<i64>,
    presence: String,
    last_assigned_at: Option<i64>,
    presence_at: Option<i64>,
    load: i64,
}

impl Store {
    /// Waiting conversations in service order, each with its place in its line.
    pub async fn waiting_conversations(&self) -> Result<Vec<WaitingConversation>> {
        let mut rows: Vec<WaitingConversation> = on_read!(self, pool => {
            sqlx::query_as(WAITING_SELECT).fetch_all(pool).await?
        });
        let mut seen: std::collections::HashMap<(Option<i64>, Option<i64>), i64> =
            Default::default();
        for row in &mut rows {
            let place = seen
                .entry((row.queue_id, row.waiting_agent_id))
                .or_insert(0);
            *place += 1;
            row.position = *place;
        }
        Ok(rows)
    }

    /// Conversations being worked now, per queue (`None`: handed over without a queue).
    pub async fn assigned_per_queue(&self) -> Result<Vec<(Option<i64>, i64)>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT queue_id, COUNT(*) FROM conversations WHERE state = 'assigned' GROUP BY queue_id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn mark_position_notified(&self, conversation_id: i64, position: i64) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query("UPDATE conversations SET position_notified = $2, position_notified_at = $3 WHERE id = $1")
                .bind(conversation_id)
                .bind(position)
                .bind(now_ms())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn mark_max_wait_notified(&self, conversation_id: i64) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query("UPDATE conversations SET max_wait_notified_at = $2 WHERE id = $1")
                .bind(conversation_id)
                .bind(now_ms())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Assigns every waiting conversation that some eligible agent has room for, in service
    /// order. Returns the (conversation id, agent id) pairs assigned.
    pub async fn route_waiting(&self) -> Result<Vec<(i64, i64)>> {
        let now = now_ms();
        let postgres = self.backend() == Backend::Postgres;
        let plan = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            take_routing_lock!(tx, postgres);
            let waiting: Vec<WaitingConversation> =
                sqlx::query_as(WAITING_SELECT).fetch_all(&mut *tx).await?;
            if waiting.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            let agents: Vec<RoutingAgentRow> = sqlx::query_as(
                "SELECT u.id, u.max_concurrent, u.presence, u.last_assigned_at, u.presence_at,
                    (SELECT COUNT(*) FROM conversations c WHERE c.agent_id = u.id AND c.state = 'assigned') AS load
                 FROM users u WHERE u.active = TRUE AND u.presence = 'available'",
            )
            .fetch_all(&mut *tx)
            .await?;
            let memberships: Vec<(i64, i64)> =
                sqlx::query_as("SELECT queue_id, user_id FROM queue_members").fetch_all(&mut *tx).await?;
            let plan = routing::plan_assignments(
                &waiting.iter().map(to_waiting).collect::<Vec<_>>(),
                &agents.iter().map(|a| to_agent(a, &memberships)).collect::<Vec<_>>(),
                now,
            );
            for (conversation_id, agent_id) in &plan {
                assign_in_tx!(tx, now, *conversation_id, *agent_id, None::<i64>, "routing");
            }
            tx.commit().await?;
            plan
        });
        Ok(plan)
    }

    /// Gives a waiting conversation (or, unless `only_waiting`, one being worked: a supervisor
    /// taking over) to `agent_id`, by hand. Refused when the agent is at their limit unless
    /// `exceed_limit`. Decided inside the routing lock, so an agent taking a conversation that
    /// routing just gave to someone else gets `NotAssignable`.
    pub async fn assign_conversation(
        &self,
        conversation_id: i64,
        agent_id: i64,
        by_user_id: Option<i64>,
        exceed_limit: bool,
        only_waiting: bool,
    ) -> Result<AssignOutcome> {
        let now = now_ms();
        let postgres = self.backend() == Backend::Postgres;
        let outcome = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            take_routing_lock!(tx, postgres);
            let current = current_place!(tx, conversation_id);
            let Some((state, current_agent, queue_id)) = current else {
                return Err(StoreError::NotFound);
            };
            let assignable = state == QUEUED_STATE || (state == ASSIGNED_STATE && !only_waiting);
            let outcome = if !assignable {
                AssignOutcome::NotAssignable
            } else if current_agent == Some(agent_id) && state == ASSIGNED_STATE {
                AssignOutcome::Assigned
            } else {
                let (load, limit) = load_and_limit!(tx, agent_id, queue_id);
                if load >= limit && !exceed_limit {
                    AssignOutcome::AtCapacity
                } else {
                    if let (Some(from), true) = (current_agent, state == ASSIGNED_STATE) {
                        record_transfer!(tx, now, conversation_id, by_user_id, Some(from), queue_id, Some(agent_id), None::<i64>, None::<String>);
                    }
                    assign_in_tx!(tx, now, conversation_id, agent_id, by_user_id, if exceed_limit && load >= limit { "manual_over_limit" } else { "manual" });
                    AssignOutcome::Assigned
                }
            };
            tx.commit().await?;
            outcome
        });
        Ok(outcome)
    }

    /// Moves a conversation to another agent (assigned at once when they have room, else it
    /// waits in their personal line) or to another queue (it waits there and routing picks it
    /// up). The history stays with the conversation; the transfer is recorded.
    pub async fn transfer_conversation(
        &self,
        conversation_id: i64,
        by_user_id: Option<i64>,
        target: TransferTarget,
        note: Option<&str>,
    ) -> Result<Option<TransferOutcome>> {
        let now = now_ms();
        let postgres = self.backend() == Backend::Postgres;
        let outcome = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            take_routing_lock!(tx, postgres);
            let current = current_place!(tx, conversation_id);
            let Some((state, from_agent, from_queue)) = current else {
                return Err(StoreError::NotFound);
            };
            if state != QUEUED_STATE && state != ASSIGNED_STATE {
                tx.commit().await?;
                return Ok(None);
            }
            let from_agent = if state == ASSIGNED_STATE { from_agent } else { None };
            let (to_agent, to_queue) = match target {
                TransferTarget::Agent(a) => (Some(a), None),
                TransferTarget::Queue(q) => (None, Some(q)),
            };
            let transfer_id = record_transfer!(tx, now, conversation_id, by_user_id, from_agent, from_queue, to_agent, to_queue, note);
            let new_state = match target {
                TransferTarget::Agent(agent_id) => {
                    let (load, limit) = load_and_limit!(tx, agent_id, from_queue);
                    if load < limit {
                        assign_in_tx!(tx, now, conversation_id, agent_id, by_user_id, "transfer");
                        ASSIGNED_STATE
                    } else {
                        requeue_in_tx!(tx, now, conversation_id, from_queue, Some(agent_id), None::<i64>);
                        QUEUED_STATE
                    }
                }
                TransferTarget::Queue(queue_id) => {
                    requeue_in_tx!(tx, now, conversation_id, Some(queue_id), None::<i64>, from_agent);
                    QUEUED_STATE
                }
            };
            let payload = json!({
                "transfer_id": transfer_id, "from_agent_id": from_agent, "from_queue_id": from_queue,
                "to_agent_id": to_agent, "to_queue_id": to_queue, "state": new_state,
            });
            insert_event!(tx, now, "conversation.transferred", conversation_id, payload);
            tx.commit().await?;
            Some(TransferOutcome { state: new_state.to_string(), transfer_id })
        });
        Ok(outcome)
    }

    /// Closes a conversation worked by a person with a disposition. Returns false when it was
    /// already closed.
    pub async fn finalize_conversation(
        &self,
        conversation_id: i64,
        by_user_id: Option<i64>,
        disposition_id: i64,
        note: Option<&str>,
    ) -> Result<bool> {
        let now = now_ms();
        let affected = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(
                "UPDATE conversations SET state = $2, closed_at = $3, close_reason = 'finalized',
                    disposition_id = $4, finalize_note = $5, closed_by = $6, waiting_agent_id = NULL
                 WHERE id = $1 AND closed_at IS NULL AND state IN ('queued', 'assigned')",
            )
            .bind(conversation_id)
            .bind(CLOSED_STATE)
            .bind(now)
            .bind(disposition_id)
            .bind(note)
            .bind(by_user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if affected > 0 {
                let payload = json!({ "reason": "finalized", "disposition_id": disposition_id, "by": by_user_id });
                insert_event!(tx, now, "conversation.closed", conversation_id, payload);
            }
            tx.commit().await?;
            affected
        });
        Ok(affected > 0)
    }
}

impl Store {
    /// Starts a conversation with a contact from our side (an agent's active contact, an
    /// integration), or finds the one already open. With `agent_id` it opens assigned to them,
    /// within their limit (under the routing lock) unless `exceed_limit`; otherwise it waits for
    /// routing.
    pub async fn start_conversation(
        &self,
        channel_id: i64,
        wa_id: &str,
        agent_id: Option<i64>,
        exceed_limit: bool,
        protocol_cfg: &ProtocolConfig,
    ) -> Result<StartOutcome> {
        let now = now_ms();
        let postgres = self.backend() == Backend::Postgres;
        Ok(on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            take_routing_lock!(tx, postgres);
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
            if let Some(id) = open {
                tx.commit().await?;
                return Ok(StartOutcome::Existing(id));
            }
            if let Some(agent) = agent_id {
                let (load, limit) = load_and_limit!(tx, agent, None::<i64>);
                if load >= limit && !exceed_limit {
                    return Ok(StartOutcome::AtCapacity);
                }
            }
            let number = allocate_protocol!(tx, protocol_cfg, now);
            let state = if agent_id.is_some() { ASSIGNED_STATE } else { QUEUED_STATE };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO conversations (channel_id, contact_id, protocol, state, agent_id, opened_at,
                    last_message_at, assigned_at, queued_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, CASE WHEN $5 IS NULL THEN NULL ELSE $6 END,
                    CASE WHEN $5 IS NULL THEN $6 ELSE NULL END)
                 RETURNING id",
            )
            .bind(channel_id)
            .bind(contact_id)
            .bind(&number)
            .bind(state)
            .bind(agent_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            insert_event!(tx, now, "conversation.opened", id, json!({ "protocol": number, "by": "staff" }));
            if let Some(agent_id) = agent_id {
                insert_event!(tx, now, "conversation.assigned", id, json!({ "agent_id": agent_id, "how": "started" }));
            }
            tx.commit().await?;
            StartOutcome::Created(id)
        }))
    }
}

fn to_waiting(w: &WaitingConversation) -> Waiting {
    Waiting {
        conversation_id: w.conversation_id,
        queue_id: w.queue_id,
        only_agent_id: w.waiting_agent_id,
        default_limit: clamp_limit(w.default_max_concurrent.unwrap_or(DEFAULT_LIMIT)),
        avoid_agent_id: w.avoid_agent_id,
    }
}

fn to_agent(a: &RoutingAgentRow, memberships: &[(i64, i64)]) -> Agent {
    Agent {
        agent_id: a.id,
        load: clamp_limit(a.load),
        max_concurrent: a.max_concurrent.map(clamp_limit),
        available: a.presence == Presence::Available.as_str(),
        // Never assigned yet: idle since they became available.
        idle_since_ms: a.last_assigned_at.or(a.presence_at).unwrap_or(0),
        queue_ids: memberships
            .iter()
            .filter(|(_, u)| *u == a.id)
            .map(|(q, _)| *q)
            .collect(),
    }
}

fn clamp_limit(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}
