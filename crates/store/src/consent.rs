//! Contacts' consent to receive broadcasts: the latest opt-out and opt-in on the contact
//! (`opted_out_at` is what broadcasts skip) and every change in `consent_events`, with where it
//! came from (the customer's keyword, an agent, the API, an import).

use serde::Serialize;

use crate::{Result, Store, StoreError, now_ms, on_read, on_write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    OptIn,
    OptOut,
}

impl ConsentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentKind::OptIn => "opt_in",
            ConsentKind::OptOut => "opt_out",
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ConsentEvent {
    pub id: i64,
    pub contact_id: i64,
    pub channel_id: i64,
    pub kind: String,
    pub source: String,
    pub detail: Option<String>,
    pub message_id: Option<i64>,
    pub user_id: Option<i64>,
    pub at: i64,
}

/// A consent change recorded by a person or an integration.
#[derive(Debug, Clone)]
pub struct NewConsent {
    pub contact_id: i64,
    pub kind: ConsentKind,
    /// agent, api, import
    pub source: String,
    pub detail: Option<String>,
    pub user_id: Option<i64>,
}

/// A consent change found by the inbound transaction (for the caller's notices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundConsent {
    pub conversation_id: i64,
    pub contact_id: i64,
    pub kind: ConsentKind,
    /// The confirmation written to the customer.
    pub reply_message_id: i64,
}

/// What the customer is told after a keyword (pt-BR).
pub const OPT_OUT_CONFIRMATION: &str = "Pronto, você não vai mais receber nossas mensagens promocionais. Se mudar de ideia, é só enviar VOLTAR.";
pub const OPT_IN_CONFIRMATION: &str =
    "Combinado! Você voltará a receber nossas mensagens. Para parar, envie SAIR.";

/// Records a consent change inside the caller's transaction: the contact's columns and the
/// event row. Evaluates to `()`.
macro_rules! record_consent {
    ($tx:expr, $contact_id:expr, $channel_id:expr, $kind:expr, $source:expr, $detail:expr, $message_id:expr, $user_id:expr, $now:expr) => {{
        let kind: $crate::consent::ConsentKind = $kind;
        let now: i64 = $now;
        let sql = match kind {
            $crate::consent::ConsentKind::OptOut => {
                "UPDATE contacts SET opted_out_at = $2, updated_at = $2 WHERE id = $1"
            }
            $crate::consent::ConsentKind::OptIn => {
                "UPDATE contacts SET opted_in_at = $2, opted_out_at = NULL, updated_at = $2 WHERE id = $1"
            }
        };
        sqlx::query(sql)
            .bind($contact_id)
            .bind(now)
            .execute(&mut *$tx)
            .await?;
        sqlx::query(
            "INSERT INTO consent_events (contact_id, channel_id, kind, source, detail, message_id, user_id, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($contact_id)
        .bind($channel_id)
        .bind(kind.as_str())
        .bind($source)
        .bind($detail)
        .bind($message_id)
        .bind($user_id)
        .bind(now)
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use record_consent;

/// Inside the inbound transaction, for a customer message that classified as a consent keyword:
/// records it and writes the pt-BR confirmation (outbox included), so the change and the answer
/// commit together and a replayed webhook (deduplicated earlier by wamid) never answers twice.
/// Evaluates to the confirmation's message id.
macro_rules! apply_inbound_consent {
    ($tx:expr, $now:expr, $kind:expr, $contact_id:expr, $channel_id:expr, $conversation_id:expr, $message_id:expr, $text:expr) => {{
        let kind: $crate::consent::ConsentKind = $kind;
        let detail: Option<&str> = $text;
        $crate::consent::record_consent!($tx, $contact_id, $channel_id, kind, "keyword", detail, Some($message_id), None::<i64>, $now);
        let reply = match kind {
            $crate::consent::ConsentKind::OptOut => $crate::consent::OPT_OUT_CONFIRMATION,
            $crate::consent::ConsentKind::OptIn => $crate::consent::OPT_IN_CONFIRMATION,
        };
        let new = $crate::outbox::NewOutbound {
            conversation_id: $conversation_id,
            author: "system".into(),
            author_user_id: None,
            kind: "text".into(),
            body: Some(reply.to_owned()),
            content_json: serde_json::json!({ "type": "text", "body": reply, "preview_url": false }).to_string(),
            reply_to_wamid: None,
            media_id: None,
            idempotency_key: Some(format!("consent:{}", $message_id)),
        };
        $crate::outbox::insert_outbound!($tx, &new, $now)?
    }};
}
pub(crate) use apply_inbound_consent;

/// Inside the inbound transaction, after the customer message was stored (and routed): when its
/// whole text is a consent keyword (`domain::optout::classify`), records it, writes the
/// confirmation and, for an opt-out in a conversation no person has (with the bot, awaiting a
/// reply, or waiting in a queue), closes that conversation (`close_reason = opted_out`), so
/// neither the bot nor an agent answers a "SAIR".
macro_rules! inbound_consent_keyword {
    ($tx:expr, $now:expr, $m:expr, $contact_id:expr, $conversation_id:expr, $message_id:expr, $report:expr) => {{
        let text: Option<&str> = match $m.kind.as_str() {
            "text" | "button" => $m.body.as_deref(),
            _ => None,
        };
        let kind = text.and_then(domain::optout::classify).map(|c| match c {
            domain::optout::Consent::OptOut => $crate::consent::ConsentKind::OptOut,
            domain::optout::Consent::OptIn => $crate::consent::ConsentKind::OptIn,
        });
        if let Some(kind) = kind {
            let reply_message_id = $crate::consent::apply_inbound_consent!(
                $tx, $now, kind, $contact_id, $m.channel_id, $conversation_id, $message_id, text
            );
            if kind == $crate::consent::ConsentKind::OptOut {
                let closed = sqlx::query(
                    "UPDATE conversations SET state = 'closed', closed_at = $2, close_reason = 'opted_out'
                     WHERE id = $1 AND closed_at IS NULL AND agent_id IS NULL
                       AND state IN ('bot', 'awaiting_reply', 'queued')",
                )
                .bind($conversation_id)
                .bind($now)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
                if closed > 0 {
                    $crate::insert_event!($tx, $now, "conversation.closed", $conversation_id,
                        serde_json::json!({ "reason": "opted_out" }));
                }
            }
            $report.consents.push($crate::consent::InboundConsent {
                conversation_id: $conversation_id,
                contact_id: $contact_id,
                kind,
                reply_message_id,
            });
        }
    }};
}
pub(crate) use inbound_consent_keyword;

impl Store {
    /// Records a consent change made by a person or an integration.
    pub async fn record_consent(&self, c: &NewConsent) -> Result<ConsentEvent> {
        let now = now_ms();
        let id: i64 = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let channel_id: Option<i64> = sqlx::query_scalar("SELECT channel_id FROM contacts WHERE id = $1")
                .bind(c.contact_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(channel_id) = channel_id else {
                return Err(StoreError::NotFound);
            };
            record_consent!(tx, c.contact_id, channel_id, c.kind, &c.source, &c.detail, None::<i64>, c.user_id, now);
            let id: i64 = sqlx::query_scalar(
                "SELECT id FROM consent_events WHERE contact_id = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(c.contact_id)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            id
        });
        let events = self.consent_events(c.contact_id).await?;
        events
            .into_iter()
            .find(|e| e.id == id)
            .ok_or(StoreError::NotFound)
    }

    /// A contact's consent history, oldest first.
    pub async fn consent_events(&self, contact_id: i64) -> Result<Vec<ConsentEvent>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, contact_id, channel_id, kind, source, detail, message_id, user_id, at
                 FROM consent_events WHERE contact_id = $1 ORDER BY id",
            )
            .bind(contact_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// (opted_out_at, opted_in_at) of the contact of `wa_id` on a channel; `None`: no contact.
    pub async fn consent_of(
        &self,
        channel_id: i64,
        wa_id: &str,
    ) -> Result<Option<(i64, Option<i64>, Option<i64>)>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, opted_out_at, opted_in_at FROM contacts WHERE channel_id = $1 AND wa_id = $2",
            )
            .bind(channel_id)
            .bind(wa_id)
            .fetch_optional(pool)
            .await?
        }))
    }
}
