//! Users, browser sessions and API tokens. Secrets arrive here already hashed: the store never
//! sees a password or a raw token.

use serde::Serialize;

use crate::{Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Supervisor,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "supervisor" => Some(Role::Supervisor),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct UserRow {
    id: i64,
    email: String,
    name: String,
    role: String,
    password_hash: String,
    must_change_password: bool,
    active: bool,
    created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    pub must_change_password: bool,
    pub active: bool,
    pub created_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            email: r.email,
            name: r.name,
            // The CHECK constraint keeps the column to the three known roles.
            role: Role::parse(&r.role).unwrap_or(Role::Agent),
            password_hash: r.password_hash,
            must_change_password: r.must_change_password,
            active: r.active,
            created_at: r.created_at,
        }
    }
}

/// A browser session to open; the store sees only the token's hash.
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub csrf_token: &'a str,
    pub expires_at: i64,
}

/// Which sessions end when a new one opens.
#[derive(Debug, Clone, Copy)]
pub enum EndSessions<'a> {
    None,
    /// The one the browser came with (a login never keeps a planted session id).
    One(&'a str),
    /// Every session of the person (a password change).
    AllOfUser,
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
    pub must_change_password: bool,
}

const USER_COLUMNS: &str =
    "id, email, name, role, password_hash, must_change_password, active, created_at";

impl Store {
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<User> {
        let email = new.email.trim().to_lowercase();
        let result = on_write!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO users (email, name, role, password_hash, must_change_password, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&email)
            .bind(new.name)
            .bind(new.role.as_str())
            .bind(new.password_hash)
            .bind(new.must_change_password)
            .bind(now_ms())
            .fetch_one(pool)
            .await
        });
        match result {
            Ok(id) => self.user(id).await?.ok_or(StoreError::NotFound),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                format!("a user with e-mail {email} already exists"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        let row: Option<UserRow> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(User::from))
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.trim().to_lowercase();
        let row: Option<UserRow> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1")))
                .bind(&email)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(User::from))
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users ORDER BY id")))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(User::from).collect())
    }

    pub async fn user_count(&self) -> Result<i64> {
        Ok(on_read!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await?
        }))
    }

    pub async fn set_password_hash(
        &self,
        user_id: i64,
        hash: &str,
        must_change: bool,
    ) -> Result<()> {
        let done = on_write!(self, pool => {
            sqlx::query("UPDATE users SET password_hash = $1, must_change_password = $2 WHERE id = $3")
                .bind(hash)
                .bind(must_change)
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Opens a session, ending in the same transaction the sessions `ending` names. Ending all of
    /// a person's sessions also writes a `user.changed` event, so their open sockets close.
    pub async fn start_session(&self, new: &NewSession<'_>, ending: EndSessions<'_>) -> Result<()> {
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            match ending {
                EndSessions::None => {}
                EndSessions::One(token_hash) => {
                    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(&mut *tx)
                        .await?;
                }
                EndSessions::AllOfUser => {
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                        .bind(new.user_id)
                        .execute(&mut *tx)
                        .await?;
                    insert_event!(tx, now, "user.changed", None::<i64>, serde_json::json!({ "user_id": new.user_id }));
                }
            }
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(new.token_hash)
            .bind(new.user_id)
            .bind(new.csrf_token)
            .bind(now)
            .bind(new.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The active user of a live session, with the session's CSRF token.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<(User, String)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            user_id: i64,
            csrf_token: String,
        }
        let row: Option<Row> = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT user_id, csrf_token FROM sessions WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now_ms())
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else { return Ok(None) };
        Ok(self
            .user(row.user_id)
            .await?
            .filter(|u| u.active)
            .map(|u| (u, row.csrf_token)))
    }

    /// Ends every session of a person (password reset), with a `user.changed` event so open
    /// live sockets of theirs close too.
    pub async fn delete_sessions_of(&self, user_id: i64) -> Result<()> {
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            insert_event!(tx, now, "user.changed", None::<i64>, serde_json::json!({ "user_id": user_id }));
            tx.commit().await?;
        });
        Ok(())
    }

    /// People with a session that has not expired.
    pub async fn users_with_sessions(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = on_read!(self, pool => {
            sqlx::query_as("SELECT DISTINCT user_id FROM sessions WHERE expires_at > $1")
                .bind(now_ms())
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Ends one session (logout). With the user's id, a `user.changed` event tells that session's
    /// open sockets to close.
    pub async fn delete_session(&self, token_hash: &str, user_id: Option<i64>) -> Result<()> {
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await?;
            if let Some(user_id) = user_id {
                insert_event!(tx, now, "user.changed", None::<i64>, serde_json::json!({ "user_id": user_id }));
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A new API token. `created_by` is the admin who made it through the API (the token then
    /// works only while they are an active admin); `None` for the operator's CLI.
    pub async fn create_api_token(
        &self,
        name: &str,
        token_hash: &str,
        created_by: Option<i64>,
    ) -> Result<i64> {
        Ok(on_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO api_tokens (name, token_hash, created_by, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name)
            .bind(token_hash)
            .bind(created_by)
            .bind(now_ms())
            .fetch_one(pool)
            .await?
        }))
    }

    /// The API token with this hash, if it may be used now: not revoked, and made by the CLI or
    /// by someone who is still an active admin. Checked on every request, so deactivating (or
    /// demoting) a person disables their tokens with no further step.
    pub async fn api_token(&self, token_hash: &str) -> Result<Option<LiveApiToken>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT t.id, t.name, t.last_used_at
                 FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL
                   AND (t.created_by IS NULL OR (u.active = TRUE AND u.role = 'admin'))",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Records that `token` was just used. Writes at most once per [`TOKEN_USE_RESOLUTION_MS`]
    /// per token (the caller passes what it read), so an integration's traffic does not turn into
    /// one write per request; instances racing on the same token write the same minute.
    pub async fn note_api_token_use(&self, token: &LiveApiToken) -> Result<()> {
        let now = now_ms();
        if token
            .last_used_at
            .is_some_and(|at| now - at < TOKEN_USE_RESOLUTION_MS)
        {
            return Ok(());
        }
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
            )
            .bind(now)
            .bind(token.id)
            .bind(now - TOKEN_USE_RESOLUTION_MS)
            .execute(pool)
            .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Every API token, newest first, as admins see them (never the hash).
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        let rows: Vec<ApiTokenRow> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{API_TOKEN_SELECT} ORDER BY t.id DESC")))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(ApiToken::from).collect())
    }

    /// One API token by id, revoked or not.
    pub async fn api_token_by_id(&self, id: i64) -> Result<Option<ApiToken>> {
        let row: Option<ApiTokenRow> = on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{API_TOKEN_SELECT} WHERE t.id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(ApiToken::from))
    }

    /// Revokes a token for good (the next request with it gets 401). Revoking a revoked token
    /// keeps its first `revoked_at`. `NotFound` when there is no such token.
    pub async fn revoke_api_token(&self, id: i64) -> Result<ApiToken> {
        let done = on_write!(self, pool => {
            sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now_ms())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.api_token_by_id(id).await?.ok_or(StoreError::NotFound)
    }
}

/// How precisely a token's last use is kept: at most one write per token per minute.
pub const TOKEN_USE_RESOLUTION_MS: i64 = 60_000;

/// A token that may be used now, as the request guard needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveApiToken {
    pub id: i64,
    pub name: String,
    pub last_used_at: Option<i64>,
}

/// Whether a token works now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiTokenStatus {
    Active,
    Revoked,
    /// Its creator was deactivated or is no longer an admin.
    CreatorInactive,
}

/// An API token as admins see it. The hash is not even read.
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// The admin who made it through the API; `None` for the CLI.
    pub created_by: Option<i64>,
    pub created_by_name: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub status: ApiTokenStatus,
}

#[derive(sqlx::FromRow)]
struct ApiTokenRow {
    id: i64,
    name: String,
    created_by: Option<i64>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    creator_name: Option<String>,
    creator_email: Option<String>,
    creator_active: Option<bool>,
    creator_role: Option<String>,
}

const API_TOKEN_SELECT: &str = "SELECT t.id, t.name, t.created_by, t.created_at, t.last_used_at,
        t.revoked_at, u.name AS creator_name, u.email AS creator_email,
        u.active AS creator_active, u.role AS creator_role
     FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by";

impl From<ApiTokenRow> for ApiToken {
    fn from(r: ApiTokenRow) -> Self {
        // Mirrors the conditions of `Store::api_token`.
        let creator_ok = r.created_by.is_none()
            || (r.creator_active == Some(true) && r.creator_role.as_deref() == Some("admin"));
        let status = if r.revoked_at.is_some() {
            ApiTokenStatus::Revoked
        } else if creator_ok {
            ApiTokenStatus::Active
        } else {
            ApiTokenStatus::CreatorInactive
        };
        // A person may have no name (the first admin): show their e-mail then.
        let created_by_name = r
            .creator_name
            .filter(|n| !n.trim().is_empty())
            .or(r.creator_email);
        ApiToken {
            id: r.id,
            name: r.name,
            created_by: r.created_by,
            created_by_name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            status,
        }
    }
}

impl Store {
    /// A desk user with their own limit (`None`: their queues' default) and queues, in one
    /// transaction: if any part is refused, no user is left behind. The caller checks that the
    /// queues exist first, for a clear answer; with the `queue.changed` event
    /// [`Store::set_user_queues`] writes, so live lists of people refresh.
    pub async fn create_desk_user(
        &self,
        new: NewUser<'_>,
        max_concurrent: Option<i64>,
        queue_ids: &[i64],
    ) -> Result<User> {
        let email = new.email.trim().to_lowercase();
        let now = now_ms();
        let id: i64 = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query_scalar::<_, i64>(
                "INSERT INTO users (email, name, role, password_hash, must_change_password,
                    max_concurrent, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&email)
            .bind(new.name)
            .bind(new.role.as_str())
            .bind(new.password_hash)
            .bind(new.must_change_password)
            .bind(max_concurrent)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
            let id = match inserted {
                Ok(id) => id,
                Err(e) if crate::is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(format!(
                        "a user with e-mail {email} already exists"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            for queue_id in queue_ids {
                sqlx::query("INSERT INTO queue_members (queue_id, user_id) VALUES ($1, $2)")
                    .bind(queue_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let payload = serde_json::json!({ "user_id": id, "queue_ids": queue_ids });
            insert_event!(tx, now, "queue.changed", None::<i64>, payload);
            tx.commit().await?;
            id
        });
        self.user(id).await?.ok_or(StoreError::NotFound)
    }
}
