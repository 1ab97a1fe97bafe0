//! What agents read and write around a conversation: the scoped conversation lists, private
//! notes, the transfer history, the protocol form (contact fields, subject, custom fields) and the
//! configuration the desk offers (dispositions, custom field definitions, canned responses).

use serde::Serialize;
use serde_json::json;

use crate::conversations::{CONVERSATION_SELECT, ConversationSummary};
use crate::{Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

/// Which conversations a list shows. Visibility by role is applied on top (see
/// [`ConversationQuery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Assigned to the viewer.
    Mine,
    /// Waiting in the viewer's queues (or any queue for an admin), or in their personal line.
    Waiting,
    /// Everything the viewer may see.
    All,
}

/// Who is looking, as far as lists are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Sees everything (admins, integrations).
    Everything,
    /// Sees their queues' conversations, the shared line's (see [`SHARED_LINE`]) and their own.
    Supervisor(i64),
    /// Sees their own and their queues' waiting ones.
    Agent(i64),
}

#[derive(Debug, Clone, Copy)]
pub struct ConversationQuery {
    pub viewer: Viewer,
    /// The caller's user id for `Mine` (0 for an integration, which has none).
    pub me: i64,
    pub scope: Scope,
    pub open_only: bool,
    pub limit: i64,
}

const MY_QUEUES: &str = "(SELECT queue_id FROM queue_members WHERE user_id = $1)";

/// A conversation without a queue that reached people: waiting for anyone (no flow, an
/// integration's, released by the bot), worked by someone, or finalized. Every agent may take
/// such a conversation, so every supervisor oversees it. A bot conversation (in progress, or
/// closed by the bot) has no queue either but is not in it: it is only for admins until the bot
/// hands it to a queue. Mirrors `server::desk::in_shared_line`.
const SHARED_LINE: &str = "(c.queue_id IS NULL
    AND (c.state IN ('queued', 'assigned') OR (c.closed_at IS NOT NULL AND c.close_reason = 'finalized')))";

impl ConversationQuery {
    fn where_clause(&self) -> String {
        let me = "$1";
        let waiting_for_me = format!(
            "(c.state = 'queued' AND (c.waiting_agent_id = {me} OR (c.waiting_agent_id IS NULL
                AND (c.queue_id IS NULL OR c.queue_id IN {MY_QUEUES}))))"
        );
        let mine = format!("(c.state = 'assigned' AND c.agent_id = {me})");
        let visible = match (self.viewer, self.scope) {
            (Viewer::Everything, Scope::Mine) => mine,
            (Viewer::Everything, Scope::Waiting) => "c.state = 'queued'".to_string(),
            (Viewer::Everything, Scope::All) => "TRUE".to_string(),
            (_, Scope::Mine) => mine,
            (_, Scope::Waiting) => waiting_for_me,
            (Viewer::Supervisor(_), Scope::All) => {
                format!(
                    "(c.queue_id IN {MY_QUEUES} OR {SHARED_LINE} OR c.agent_id = {me}
                        OR c.waiting_agent_id = {me})"
                )
            }
            (Viewer::Agent(_), Scope::All) => {
                format!(
                    "({mine} OR {waiting_for_me} OR (c.closed_at IS NOT NULL AND c.agent_id = {me}))"
                )
            }
        };
        let open = if self.open_only {
            " AND c.closed_at IS NULL"
        } else {
            ""
        };
        format!("WHERE {visible}{open}")
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NoteRecord {
    pub id: i64,
    pub conversation_id: i64,
    pub user_id: i64,
    pub user_name: Option<String>,
    pub body: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TransferRecord {
    pub id: i64,
    pub conversation_id: i64,
    pub at: i64,
    pub by_user_id: Option<i64>,
    pub by_name: Option<String>,
    pub from_agent_id: Option<i64>,
    pub from_queue_id: Option<i64>,
    pub to_agent_id: Option<i64>,
    pub to_queue_id: Option<i64>,
    pub note: Option<String>,
    pub from_agent_name: Option<String>,
    pub to_agent_name: Option<String>,
    pub from_queue_name: Option<String>,
    pub to_queue_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DispositionRecord {
    pub id: i64,
    pub queue_id: Option<i64>,
    pub label: String,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CustomFieldRecord {
    pub id: i64,
    pub queue_id: Option<i64>,
    pub key: String,
    pub label: String,
    pub kind: String,
    /// JSON array of the choices, for kind `choice`.
    #[serde(skip)]
    pub options: Option<String>,
    pub required: bool,
    pub position: i64,
}

impl CustomFieldRecord {
    pub fn option_list(&self) -> Vec<String> {
        self.options
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct NewCustomField {
    pub queue_id: Option<i64>,
    pub key: String,
    pub label: String,
    pub kind: String,
    pub options: Vec<String>,
    pub required: bool,
    pub position: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CannedResponseRecord {
    pub id: i64,
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub queue_id: Option<i64>,
}

/// The contact and conversation columns of the protocol form.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FormRecord {
    pub conversation_id: i64,
    pub protocol: String,
    pub queue_id: Option<i64>,
    pub contact_id: i64,
    pub name: Option<String>,
    pub profile_name: Option<String>,
    pub code: Option<String>,
    pub email: Option<String>,
    pub phone: String,
    pub subject: Option<String>,
}

/// A partial update of the protocol form; values are already validated and normalized.
#[derive(Debug, Clone, Default)]
pub struct FormPatch {
    pub name: Option<String>,
    pub code: Option<String>,
    pub email: Option<String>,
    pub subject: Option<String>,
    /// (key, value) pairs for `conversation_fields` (`custom.<key>`, `protocol.notes`).
    pub fields: Vec<(String, String)>,
}

impl Store {
    /// Conversations a viewer may see in a scope, most recent activity first.
    pub async fn desk_conversations(
        &self,
        q: ConversationQuery,
    ) -> Result<Vec<ConversationSummary>> {
        let sql = format!(
            "{CONVERSATION_SELECT} {} ORDER BY c.last_message_at DESC, c.id DESC LIMIT $2",
            q.where_clause()
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(q.me)
                .bind(q.limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// A contact's conversations, newest first.
    pub async fn contact_conversations(&self, contact_id: i64) -> Result<Vec<ConversationSummary>> {
        let sql =
            format!("{CONVERSATION_SELECT} WHERE c.contact_id = $1 ORDER BY c.id DESC LIMIT 100");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(contact_id).fetch_all(pool).await?
        }))
    }

    /// Whether `user_id` works an open conversation of this contact now (which lets them read
    /// the contact's earlier conversations).
    pub async fn works_contact(&self, user_id: i64, contact_id: i64) -> Result<bool> {
        let (n,): (i64,) = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*) FROM conversations
                 WHERE contact_id = $1 AND agent_id = $2 AND state = 'assigned'",
            )
            .bind(contact_id)
            .bind(user_id)
            .fetch_one(pool)
            .await?
        });
        Ok(n > 0)
    }

    /// Whether `user_id` took part in this conversation as a person: it is (or was last)
    /// assigned to them, it waits in their personal line, they finalized it, or
    /// they were on either side of one of its transfers (or made it). What lets an agent serving
    /// a customer read that customer's earlier conversations they handled in another queue.
    pub async fn handled_conversation(&self, user_id: i64, conversation_id: i64) -> Result<bool> {
        let (n,): (i64,) = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM conversations WHERE id = $1
                        AND (agent_id = $2 OR waiting_agent_id = $2 OR closed_by = $2))
                    + (SELECT COUNT(*) FROM transfers WHERE conversation_id = $1
                        AND (from_agent_id = $2 OR to_agent_id = $2 OR by_user_id = $2))",
            )
            .bind(conversation_id)
            .bind(user_id)
            .fetch_one(pool)
            .await?
        });
        Ok(n > 0)
    }

    pub async fn add_note(&self, conversation_id: i64, user_id: i64, body: &str) -> Result<i64> {
        let now = now_ms();
        Ok(on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO conversation_notes (conversation_id, user_id, body, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(conversation_id)
            .bind(user_id)
            .bind(body)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            insert_event!(tx, now, "note.created", conversation_id, json!({ "note_id": id, "user_id": user_id }));
            tx.commit().await?;
            id
        }))
    }

    pub async fn notes(&self, conversation_id: i64) -> Result<Vec<NoteRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT n.id, n.conversation_id, n.user_id, u.name AS user_name, n.body, n.created_at
                 FROM conversation_notes n LEFT JOIN users u ON u.id = n.user_id
                 WHERE n.conversation_id = $1 ORDER BY n.id",
            )
            .bind(conversation_id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn transfers(&self, conversation_id: i64) -> Result<Vec<TransferRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT t.id, t.conversation_id, t.at, t.by_user_id, u.name AS by_name, t.from_agent_id,
                    t.from_queue_id, t.to_agent_id, t.to_queue_id, t.note,
                    fa.name AS from_agent_name, ta.name AS to_agent_name,
                    fq.name AS from_queue_name, tq.name AS to_queue_name
                 FROM transfers t LEFT JOIN users u ON u.id = t.by_user_id
                    LEFT JOIN users fa ON fa.id = t.from_agent_id
                    LEFT JOIN users ta ON ta.id = t.to_agent_id
                    LEFT JOIN queues fq ON fq.id = t.from_queue_id
                    LEFT JOIN queues tq ON tq.id = t.to_queue_id
                 WHERE t.conversation_id = $1 ORDER BY t.id",
            )
            .bind(conversation_id)
            .fetch_all(pool)
            .await?
        }))
    }

    // ------------------------------------------------------------------------ dispositions

    /// Active dispositions offered in a queue (its own and the global ones); all when `None`.
    pub async fn dispositions(&self, queue_id: Option<i64>) -> Result<Vec<DispositionRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, queue_id, label, active FROM dispositions
                 WHERE active = TRUE AND ($1 IS NULL OR queue_id IS NULL OR queue_id = $1)
                 ORDER BY label, id",
            )
            .bind(queue_id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn disposition(&self, id: i64) -> Result<Option<DispositionRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as("SELECT id, queue_id, label, active FROM dispositions WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn create_disposition(
        &self,
        queue_id: Option<i64>,
        label: &str,
    ) -> Result<DispositionRecord> {
        let id: (i64,) = on_write!(self, pool => {
            sqlx::query_as(
                "INSERT INTO dispositions (queue_id, label, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(queue_id)
            .bind(label)
            .bind(now_ms())
            .fetch_one(pool)
            .await?
        });
        self.disposition(id.0).await?.ok_or(StoreError::NotFound)
    }

    /// Retires a disposition (finalized conversations keep pointing at it).
    pub async fn deactivate_disposition(&self, id: i64) -> Result<bool> {
        let affected = on_write!(self, pool => {
            sqlx::query("UPDATE dispositions SET active = FALSE WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    // ------------------------------------------------------------------------ custom fields

    /// Active custom fields of a queue (its own and the global ones); all when `None`.
    pub async fn custom_fields(&self, queue_id: Option<i64>) -> Result<Vec<CustomFieldRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, queue_id, key, label, kind, options, required, position FROM custom_fields
                 WHERE active = TRUE AND ($1 IS NULL OR queue_id IS NULL OR queue_id = $1)
                 ORDER BY position, id",
            )
            .bind(queue_id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn custom_field(&self, id: i64) -> Result<Option<CustomFieldRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, queue_id, key, label, kind, options, required, position FROM custom_fields
                 WHERE id = $1 AND active = TRUE",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn create_custom_field(&self, f: &NewCustomField) -> Result<CustomFieldRecord> {
        let options = serde_json::to_string(&f.options).unwrap_or_else(|_| "[]".into());
        let id: (i64,) = on_write!(self, pool => {
            sqlx::query_as(
                "INSERT INTO custom_fields (queue_id, key, label, kind, options, required, position, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(f.queue_id)
            .bind(&f.key)
            .bind(&f.label)
            .bind(&f.kind)
            .bind(options)
            .bind(f.required)
            .bind(f.position)
            .bind(now_ms())
            .fetch_one(pool)
            .await?
        });
        self.custom_field(id.0).await?.ok_or(StoreError::NotFound)
    }

    /// Replaces a field's label, options, required flag and position (its key and kind stay:
    /// saved answers refer to them).
    pub async fn update_custom_field(
        &self,
        id: i64,
        f: &NewCustomField,
    ) -> Result<CustomFieldRecord> {
        let options = serde_json::to_string(&f.options).unwrap_or_else(|_| "[]".into());
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE custom_fields SET label = $2, options = $3, required = $4, position = $5
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&f.label)
            .bind(options)
            .bind(f.required)
            .bind(f.position)
            .execute(pool)
            .await?;
        });
        self.custom_field(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn deactivate_custom_field(&self, id: i64) -> Result<bool> {
        let affected = on_write!(self, pool => {
            sqlx::query("UPDATE custom_fields SET active = FALSE WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    // ------------------------------------------------------------------------ canned responses

    pub async fn canned_responses(&self) -> Result<Vec<CannedResponseRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as("SELECT id, shortcut, title, body, queue_id FROM canned_responses ORDER BY shortcut")
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn canned_response(&self, id: i64) -> Result<Option<CannedResponseRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as("SELECT id, shortcut, title, body, queue_id FROM canned_responses WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Creates (`id` None) or replaces a canned response. A shortcut already taken is a
    /// [`StoreError::Conflict`].
    pub async fn save_canned_response(
        &self,
        id: Option<i64>,
        shortcut: &str,
        title: &str,
        body: &str,
        queue_id: Option<i64>,
    ) -> Result<CannedResponseRecord> {
        let now = now_ms();
        let result: std::result::Result<(i64,), sqlx::Error> = on_write!(self, pool => {
            match id {
                None => sqlx::query_as(
                    "INSERT INTO canned_responses (shortcut, title, body, queue_id, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                )
                .bind(shortcut)
                .bind(title)
                .bind(body)
                .bind(queue_id)
                .bind(now)
                .fetch_one(pool)
                .await,
                Some(id) => sqlx::query_as(
                    "UPDATE canned_responses SET shortcut = $2, title = $3, body = $4, queue_id = $5,
                        updated_at = $6 WHERE id = $1 RETURNING id",
                )
                .bind(id)
                .bind(shortcut)
                .bind(title)
                .bind(body)
                .bind(queue_id)
                .bind(now)
                .fetch_one(pool)
                .await,
            }
        });
        let id = match result {
            Ok((id,)) => id,
            Err(sqlx::Error::RowNotFound) => return Err(StoreError::NotFound),
            Err(e) if crate::is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "shortcut {shortcut:?} is taken"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.canned_response(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn delete_canned_response(&self, id: i64) -> Result<bool> {
        let affected = on_write!(self, pool => {
            sqlx::query("DELETE FROM canned_responses WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    // ------------------------------------------------------------------------ protocol form

    pub async fn form(&self, conversation_id: i64) -> Result<Option<FormRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT c.id AS conversation_id, c.protocol, c.queue_id, ct.id AS contact_id, ct.name,
                    ct.profile_name, ct.code, ct.email, ct.wa_id AS phone, c.subject
                 FROM conversations c JOIN contacts ct ON ct.id = c.contact_id WHERE c.id = $1",
            )
            .bind(conversation_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Saves part of the protocol form: contact columns (kept for the contact's next
    /// conversations), the subject, and per-conversation fields.
    pub async fn save_form(&self, conversation_id: i64, p: &FormPatch) -> Result<()> {
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE contacts SET name = COALESCE($2, name), code = COALESCE($3, code),
                    email = COALESCE($4, email), updated_at = $5
                 WHERE id = (SELECT contact_id FROM conversations WHERE id = $1)",
            )
            .bind(conversation_id)
            .bind(&p.name)
            .bind(&p.code)
            .bind(&p.email)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(subject) = &p.subject {
                sqlx::query("UPDATE conversations SET subject = $2 WHERE id = $1")
                    .bind(conversation_id)
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
            }
            for (key, value) in &p.fields {
                sqlx::query(
                    "INSERT INTO conversation_fields (conversation_id, key, value, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (conversation_id, key) DO UPDATE SET value = excluded.value,
                        updated_at = excluded.updated_at",
                )
                .bind(conversation_id)
                .bind(key)
                .bind(value)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            insert_event!(tx, now, "conversation.updated", conversation_id, json!({ "form": true }));
            tx.commit().await?;
        });
        Ok(())
    }
}
