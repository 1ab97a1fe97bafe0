//! Who may see and do what with a conversation: the one place that decides it ([`access`]).
//! Handlers ask it; the live feed mirrors its rules (`live::ws::Audience::sees`).

use store::auth::Role;
use store::conversations::ConversationSummary;

use crate::error::{ApiError, ApiResult};
use crate::http::auth::Principal;
use crate::state::AppState;

/// What a caller may do with one conversation, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Not theirs to know about: 404.
    Hidden,
    /// History, notes and form, read-only.
    Read,
    /// Read, and take it (an agent picking a waiting conversation of their queue).
    Take,
    /// Read, assign to anyone, transfer and finalize (a supervisor of its queue).
    Supervise,
    /// Everything: reply, fill the form, transfer, finalize (the agent working it, an admin).
    Work,
}

impl Access {
    /// 403 unless the caller has at least `needed`.
    pub fn require(self, needed: Access) -> ApiResult<()> {
        if self >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "Você não pode fazer isto nesta conversa.".into(),
            ))
        }
    }

    /// Transfer and finalize: the agent working it, or a supervisor of its queue.
    pub fn may_manage(self) -> bool {
        matches!(self, Access::Supervise | Access::Work)
    }
}

/// The one place that decides what a caller may do with a conversation.
///
/// - Admins (and integrations): everything.
/// - Supervisors: the conversations of their queues and of the shared line
///   ([`in_shared_line`]), and those assigned to them or waiting for them. A conversation with
///   the bot has no queue yet: it becomes theirs when the bot hands it to one of their queues.
/// - Agents: the one they work; to take, the waiting ones of their queues, of the shared line and
///   of their personal line; read-only, the closed ones that were theirs. While they work a
///   customer, also that customer's earlier conversations, but only those of their own queues or
///   that they handled (assigned, transferred, finalized): starting a conversation with any
///   number must not open another queue's history.
///
/// `ws::Audience::sees` mirrors the part of these rules that concerns open conversations.
pub async fn access(app: &AppState, who: &Principal, c: &ConversationSummary) -> ApiResult<Access> {
    let open = c.closed_at.is_none();
    let Some(me) = who.user_id() else {
        // Integrations act with an admin's reach.
        return Ok(if open { Access::Work } else { Access::Read });
    };
    let working_it = open && c.state == store::desk::ASSIGNED_STATE && c.agent_id == Some(me);
    if working_it {
        return Ok(Access::Work);
    }
    let in_my_queue = || async {
        match c.queue_id {
            None => Ok::<bool, ApiError>(false),
            Some(q) => Ok(app.store.user_queue_ids(me).await?.contains(&q)),
        }
    };
    match who.role() {
        Role::Admin => Ok(if open { Access::Work } else { Access::Read }),
        Role::Supervisor => {
            let in_reach = in_shared_line(c)
                || c.agent_id == Some(me)
                || c.waiting_agent_id == Some(me)
                || in_my_queue().await?;
            Ok(match (in_reach, open) {
                (false, _) => Access::Hidden,
                (true, true) => Access::Supervise,
                (true, false) => Access::Read,
            })
        }
        Role::Agent => {
            let waiting = open && c.state == store::conversations::QUEUED_STATE;
            if waiting && c.waiting_agent_id == Some(me) {
                return Ok(Access::Take);
            }
            if waiting
                && c.waiting_agent_id.is_none()
                && (c.queue_id.is_none() || in_my_queue().await?)
            {
                // In one of their queues, or in the shared line anyone may take from.
                return Ok(Access::Take);
            }
            if c.agent_id == Some(me) {
                return Ok(Access::Read);
            }
            // The customer they serve now: earlier conversations of their own queues or that
            // they handled (one they transferred away, say), never another queue's.
            if app.store.works_contact(me, c.contact_id).await?
                && (in_my_queue().await? || app.store.handled_conversation(me, c.id).await?)
            {
                return Ok(Access::Read);
            }
            Ok(Access::Hidden)
        }
    }
}

/// A conversation without a queue that reached people: waiting for anyone (no flow, an
/// integration's, released by the bot), worked by someone, or finalized by someone. Any agent may
/// take it, so every supervisor oversees it. A conversation with the bot (in progress, or closed by
/// the bot: ended, outside hours, abandoned) is not: its transcript is for admins until the bot
/// hands it to a queue. Mirrored by `store::desk_records::SHARED_LINE` and `ws::Audience::sees`.
pub fn in_shared_line(c: &ConversationSummary) -> bool {
    c.queue_id.is_none()
        && match c.closed_at {
            None => {
                c.state == store::conversations::QUEUED_STATE
                    || c.state == store::desk::ASSIGNED_STATE
            }
            Some(_) => c.close_reason.as_deref() == Some(FINALIZED),
        }
}

/// `close_reason` of a conversation a person finalized.
const FINALIZED: &str = "finalized";

/// The conversation and what the caller may do with it; 404 when they may not know of it.
pub async fn visible_conversation(
    app: &AppState,
    who: &Principal,
    id: i64,
) -> ApiResult<(ConversationSummary, Access)> {
    who.require(&[Role::Admin, Role::Supervisor, Role::Agent])?;
    let conversation = app
        .store
        .conversation(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let access = access(app, who, &conversation).await?;
    if access == Access::Hidden {
        return Err(ApiError::NotFound);
    }
    Ok((conversation, access))
}

/// Whether the caller has permission `p` now (the role's row of the matrix an admin edits; API
/// tokens act as admin).
pub async fn has_permission(
    app: &AppState,
    who: &Principal,
    p: domain::permissions::Permission,
) -> ApiResult<bool> {
    Ok(app
        .store
        .role_has_permission(who.role().as_str(), p)
        .await?)
}

/// 403 with the pt-BR sentence naming the permission unless the caller has it. Queue scoping is
/// the caller's job ([`access`], queue membership).
pub async fn require_permission(
    app: &AppState,
    who: &Principal,
    p: domain::permissions::Permission,
) -> ApiResult<()> {
    if has_permission(app, who, p).await? {
        Ok(())
    } else {
        Err(ApiError::Forbidden(p.denied_pt()))
    }
}
