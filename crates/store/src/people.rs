//! People at the desk: their presence and capacity, queue membership, and the updates of a
//! person an admin makes.

use serde::Serialize;
use serde_json::json;

use crate::{Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Available,
    Paused,
    Offline,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Paused => "paused",
            Presence::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Presence> {
        match s {
            "available" => Some(Presence::Available),
            "paused" => Some(Presence::Paused),
            "offline" => Some(Presence::Offline),
            _ => None,
        }
    }
}

/// A person as the desk sees them: presence, limit and current load.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeskUser {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: String,
    pub active: bool,
    pub must_change_password: bool,
    /// Their own limit; `None` = the queue's default.
    pub max_concurrent: Option<i64>,
    pub presence: String,
    pub pause_reason: Option<String>,
    pub presence_at: Option<i64>,
    pub last_assigned_at: Option<i64>,
    /// Last time one of their tabs had a live WebSocket.
    pub socket_seen_at: Option<i64>,
    pub load: i64,
    #[sqlx(skip)]
    pub queue_ids: Vec<i64>,
}

const DESK_USER_SELECT: &str = "SELECT u.id, u.email, u.name, u.role, u.active,
    u.must_change_password, u.max_concurrent, u.presence, u.pause_reason, u.presence_at,
    u.last_assigned_at, u.socket_seen_at,
    (SELECT COUNT(*) FROM conversations c WHERE c.agent_id = u.id AND c.state = 'assigned') AS load
    FROM users u";

/// A partial update of a person; `Some(None)` clears their own limit.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<String>,
    pub active: Option<bool>,
    pub max_concurrent: Option<Option<i64>>,
}

impl Store {
    pub async fn desk_users(&self) -> Result<Vec<DeskUser>> {
        let sql = format!("{DESK_USER_SELECT} ORDER BY u.name, u.id");
        let mut users: Vec<DeskUser> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        let memberships = self.memberships().await?;
        for user in &mut users {
            user.queue_ids = memberships
                .iter()
                .filter(|(_, u)| *u == user.id)
                .map(|(q, _)| *q)
                .collect();
        }
        Ok(users)
    }

    pub async fn desk_user(&self, id: i64) -> Result<Option<DeskUser>> {
        let sql = format!("{DESK_USER_SELECT} WHERE u.id = $1");
        let user: Option<DeskUser> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        let Some(mut user) = user else {
            return Ok(None);
        };
        user.queue_ids = self.user_queue_ids(id).await?;
        Ok(Some(user))
    }

    /// Every (queue id, user id) membership.
    pub async fn memberships(&self) -> Result<Vec<(i64, i64)>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as("SELECT queue_id, user_id FROM queue_members ORDER BY queue_id, user_id")
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn user_queue_ids(&self, user_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = on_read!(self, pool => {
            sqlx::query_as("SELECT queue_id FROM queue_members WHERE user_id = $1 ORDER BY queue_id")
                .bind(user_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(q,)| q).collect())
    }

    pub async fn queue_member_ids(&self, queue_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = on_read!(self, pool => {
            sqlx::query_as("SELECT user_id FROM queue_members WHERE queue_id = $1 ORDER BY user_id")
                .bind(queue_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// Replaces the queues a person belongs to.
    pub async fn set_user_queues(&self, user_id: i64, queue_ids: &[i64]) -> Result<()> {
        let pairs: Vec<(i64, i64)> = queue_ids.iter().map(|q| (*q, user_id)).collect();
        let payload = json!({ "user_id": user_id, "queue_ids": queue_ids });
        self.replace_memberships("user_id", user_id, &pairs, payload)
            .await
    }

    /// Replaces the members of a queue.
    pub async fn set_queue_members(&self, queue_id: i64, user_ids: &[i64]) -> Result<()> {
        let pairs: Vec<(i64, i64)> = user_ids.iter().map(|u| (queue_id, *u)).collect();
        let payload = json!({ "queue_id": queue_id, "user_ids": user_ids });
        self.replace_memberships("queue_id", queue_id, &pairs, payload)
            .await
    }

    /// Deletes the memberships whose `column` is `id` and inserts `pairs` (queue id, user id), in
    /// one transaction with a `queue.changed` event.
    async fn replace_memberships(
        &self,
        column: &'static str,
        id: i64,
        pairs: &[(i64, i64)],
        payload: serde_json::Value,
    ) -> Result<()> {
        let now = now_ms();
        let delete = format!("DELETE FROM queue_members WHERE {column} = $1");
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(delete)).bind(id).execute(&mut *tx).await?;
            for (queue_id, user_id) in pairs {
                sqlx::query("INSERT INTO queue_members (queue_id, user_id) VALUES ($1, $2)")
                    .bind(queue_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_event!(tx, now, "queue.changed", None::<i64>, payload);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn update_user(&self, id: i64, p: &UserPatch) -> Result<()> {
        let now = now_ms();
        let affected = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(
                "UPDATE users SET name = COALESCE($2, name), role = COALESCE($3, role),
                    active = COALESCE($4, active),
                    max_concurrent = CASE WHEN $5 THEN $6 ELSE max_concurrent END
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&p.name)
            .bind(&p.role)
            .bind(p.active)
            .bind(p.max_concurrent.is_some())
            .bind(p.max_concurrent.flatten())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if p.active == Some(false) {
                sqlx::query("UPDATE users SET presence = 'offline', presence_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                // Nobody waits for someone who left.
                sqlx::query(
                    "UPDATE conversations SET waiting_agent_id = NULL
                     WHERE state = 'queued' AND waiting_agent_id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
            }
            insert_event!(tx, now, "queue.changed", None::<i64>, json!({ "user_id": id }));
            tx.commit().await?;
            affected
        });
        if affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Sets someone's presence. Going offline sends the conversations waiting in their personal
    /// line back to their queues. Returns false when the user does not exist.
    pub async fn set_presence(
        &self,
        user_id: i64,
        presence: Presence,
        reason: Option<&str>,
    ) -> Result<bool> {
        let now = now_ms();
        let reason = if presence == Presence::Paused {
            reason
        } else {
            None
        };
        let affected = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(
                "UPDATE users SET presence = $2, pause_reason = $3, presence_at = $4,
                    last_assigned_at = COALESCE(last_assigned_at, $4)
                 WHERE id = $1",
            )
            .bind(user_id)
            .bind(presence.as_str())
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if affected > 0 {
                if presence == Presence::Offline {
                    sqlx::query(
                        "UPDATE conversations SET waiting_agent_id = NULL
                         WHERE state = 'queued' AND waiting_agent_id = $1",
                    )
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                }
                let payload = json!({ "user_id": user_id, "presence": presence.as_str(), "reason": reason });
                insert_event!(tx, now, "presence.changed", None::<i64>, payload);
            }
            tx.commit().await?;
            affected
        });
        Ok(affected > 0)
    }

    /// Records that these people have a live tab now.
    pub async fn touch_sockets(&self, user_ids: &[i64]) -> Result<()> {
        if user_ids.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in user_ids {
                sqlx::query("UPDATE users SET socket_seen_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// People not offline whose every tab has been gone since before `cutoff`: they become
    /// offline (see [`Store::set_presence`]). Returns their ids. People who never opened the
    /// web app (integrations) are left alone.
    pub async fn expire_presence(&self, cutoff: i64) -> Result<Vec<i64>> {
        let ids: Vec<(i64,)> = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id FROM users WHERE presence <> 'offline'
                    AND socket_seen_at IS NOT NULL AND socket_seen_at < $1",
            )
            .bind(cutoff)
            .fetch_all(pool)
            .await?
        });
        let mut expired = Vec::new();
        for (id,) in ids {
            if self.set_presence(id, Presence::Offline, None).await? {
                expired.push(id);
            }
        }
        Ok(expired)
    }
}
