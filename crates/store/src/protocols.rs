//! Lookups around the SAC protocol and the customer's identification: the conversation behind a
//! protocol number, contacts by Código (CPF/CNPJ).

use serde::Serialize;

use crate::{Result, Store, on_read};

/// A contact as the bot's identification sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ContactRecord {
    pub id: i64,
    pub channel_id: i64,
    pub wa_id: String,
    pub profile_name: Option<String>,
    pub name: Option<String>,
    pub code: Option<String>,
    pub email: Option<String>,
}

/// `GET /api/protocols/{number}`: the conversation behind a protocol number.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProtocolRecord {
    pub conversation_id: i64,
    pub channel_id: i64,
    pub protocol: String,
    pub state: String,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub protocol_sent_at: Option<i64>,
    pub priority: i64,
    pub queued_at: Option<i64>,
    pub subject: Option<String>,
    pub agent_id: Option<i64>,
    pub queue_id: Option<i64>,
    pub queue_key: Option<String>,
    pub queue_name: Option<String>,
    pub contact_id: i64,
    pub contact_wa_id: String,
    pub contact_profile_name: Option<String>,
    pub contact_name: Option<String>,
    pub contact_code: Option<String>,
    pub contact_email: Option<String>,
    pub bot_outcome: Option<String>,
    pub bot_finished_at: Option<i64>,
    pub flow_version_id: Option<i64>,
}

impl Store {
    /// Contacts (on any channel) whose Código is `code` (normalized), most recently updated first,
    /// except `exclude_contact_id`.
    pub async fn contacts_with_code(
        &self,
        code: &str,
        exclude_contact_id: i64,
    ) -> Result<Vec<ContactRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, channel_id, wa_id, profile_name, name, code, email FROM contacts
                 WHERE code = $1 AND id <> $2 ORDER BY updated_at DESC, id DESC LIMIT 20",
            )
            .bind(code)
            .bind(exclude_contact_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The conversation of a protocol number, with its contact, queue and bot outcome.
    pub async fn conversation_by_protocol(&self, protocol: &str) -> Result<Option<ProtocolRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT c.id AS conversation_id, c.channel_id, c.protocol, c.state, c.opened_at, c.closed_at,
                    c.protocol_sent_at, c.priority, c.queued_at, c.subject, c.agent_id, c.queue_id,
                    q.key AS queue_key, q.name AS queue_name,
                    ct.id AS contact_id, ct.wa_id AS contact_wa_id, ct.profile_name AS contact_profile_name,
                    ct.name AS contact_name, ct.code AS contact_code, ct.email AS contact_email,
                    s.outcome AS bot_outcome, s.finished_at AS bot_finished_at, s.flow_version_id
                 FROM conversations c
                 JOIN contacts ct ON ct.id = c.contact_id
                 LEFT JOIN queues q ON q.id = c.queue_id
                 LEFT JOIN bot_sessions s ON s.conversation_id = c.id
                 WHERE c.protocol = $1",
            )
            .bind(protocol)
            .fetch_optional(pool)
            .await?
        }))
    }
}
