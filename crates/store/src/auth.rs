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

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(now_ms())
            .bind(expires_at)
            .execute(pool)
            .await?
                .rows_affected()
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

    /// After a password change: every session of the person ends and the caller gets a new one,
    /// in one transaction (with a `user.changed` event, so the others' sockets close).
    pub async fn replace_sessions(
        &self,
        user_id: i64,
        token_hash: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<()> {
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            insert_event!(tx, now, "user.changed", None::<i64>, serde_json::json!({ "user_id": user_id }));
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn create_api_token(&self, name: &str, token_hash: &str) -> Result<i64> {
        Ok(on_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO api_tokens (name, token_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(name)
            .bind(token_hash)
            .bind(now_ms())
            .fetch_one(pool)
            .await?
        }))
    }

    /// The id and name of a live (not revoked) API token.
    pub async fn api_token(&self, token_hash: &str) -> Result<Option<(i64, String)>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, name FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        }))
    }
}
