//! Bot flows and their immutable versions: a flow's definition is never edited in place, each
//! save is a new version, and a bot session runs the version it started with.

use serde::Serialize;

use crate::{Result, Store, StoreError, now_ms, on_read, on_write};

/// A flow with its current (latest) version.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FlowRecord {
    pub id: i64,
    /// `None`: the default flow of every channel without its own.
    pub channel_id: Option<i64>,
    pub name: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    pub version_id: i64,
    pub definition: String,
    pub version_created_by: Option<i64>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct FlowVersionRecord {
    pub id: i64,
    pub flow_id: i64,
    pub version: i64,
    pub definition: String,
    pub created_at: i64,
    pub created_by: Option<i64>,
}

const FLOW_SELECT: &str =
    "SELECT f.id, f.channel_id, f.name, f.enabled, f.created_at, f.updated_at,
    v.version, v.id AS version_id, v.definition, v.created_by AS version_created_by
    FROM flows f JOIN flow_versions v ON v.flow_id = f.id
    AND v.version = (SELECT MAX(x.version) FROM flow_versions x WHERE x.flow_id = f.id)";

impl Store {
    /// Creates a flow with its version 1. `Conflict` when the channel (or the default, for `None`)
    /// already has a flow: edit that one instead.
    pub async fn create_flow(
        &self,
        channel_id: Option<i64>,
        name: &str,
        definition: &str,
        created_by: Option<i64>,
    ) -> Result<FlowRecord> {
        let now = now_ms();
        let result: Result<i64, sqlx::Error> = on_write!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO flows (channel_id, name, enabled, created_at, updated_at)
                     VALUES ($1, $2, TRUE, $3, $3) RETURNING id",
                )
                .bind(channel_id)
                .bind(name)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO flow_versions (flow_id, version, definition, created_at, created_by)
                     VALUES ($1, 1, $2, $3, $4)",
                )
                .bind(id)
                .bind(definition)
                .bind(now)
                .bind(created_by)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(id)
            }
            .await
        });
        match result {
            Ok(id) => self.flow(id).await?.ok_or(StoreError::NotFound),
            Err(e) if crate::is_unique_violation(&e) => {
                Err(StoreError::Conflict(match channel_id {
                    Some(c) => format!("channel {c} already has a flow; edit it instead"),
                    None => "a default flow already exists; edit it instead".to_owned(),
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Renames, enables/disables and, with a definition, adds a new version (running conversations
    /// keep theirs).
    pub async fn update_flow(
        &self,
        id: i64,
        name: Option<&str>,
        enabled: Option<bool>,
        definition: Option<&str>,
        created_by: Option<i64>,
    ) -> Result<FlowRecord> {
        let now = now_ms();
        let result: Result<bool, sqlx::Error> = on_write!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let found = sqlx::query(
                    "UPDATE flows SET name = COALESCE($2, name), enabled = COALESCE($3, enabled), updated_at = $4
                     WHERE id = $1",
                )
                .bind(id)
                .bind(name)
                .bind(enabled)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if found == 0 {
                    return Ok(false);
                }
                if let Some(definition) = definition {
                    sqlx::query(
                        "INSERT INTO flow_versions (flow_id, version, definition, created_at, created_by)
                         VALUES ($1, (SELECT COALESCE(MAX(version), 0) + 1 FROM flow_versions WHERE flow_id = $1),
                            $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(definition)
                    .bind(now)
                    .bind(created_by)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }
            .await
        });
        match result {
            Ok(true) => self.flow(id).await?.ok_or(StoreError::NotFound),
            Ok(false) => Err(StoreError::NotFound),
            Err(e) if crate::is_unique_violation(&e) => Err(StoreError::Conflict(
                "the flow was edited at the same time by someone else; reload and try again".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn flows(&self) -> Result<Vec<FlowRecord>> {
        let sql = format!("{FLOW_SELECT} ORDER BY f.id");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }

    pub async fn flow(&self, id: i64) -> Result<Option<FlowRecord>> {
        let sql = format!("{FLOW_SELECT} WHERE f.id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Every version of a flow, newest first.
    pub async fn flow_versions(&self, flow_id: i64) -> Result<Vec<FlowVersionRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, flow_id, version, definition, created_at, created_by FROM flow_versions
                 WHERE flow_id = $1 ORDER BY version DESC",
            )
            .bind(flow_id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn flow_version(&self, id: i64) -> Result<Option<FlowVersionRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, flow_id, version, definition, created_at, created_by FROM flow_versions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// The latest version of the enabled flow a new conversation on `channel_id` runs: the
    /// channel's own, else the default one.
    pub async fn current_flow_version(&self, channel_id: i64) -> Result<Option<FlowVersionRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT v.id, v.flow_id, v.version, v.definition, v.created_at, v.created_by
                 FROM flows f JOIN flow_versions v ON v.flow_id = f.id
                 WHERE f.enabled = TRUE AND (f.channel_id = $1 OR f.channel_id IS NULL)
                 ORDER BY CASE WHEN f.channel_id IS NULL THEN 1 ELSE 0 END, v.version DESC
                 LIMIT 1",
            )
            .bind(channel_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn flow_count(&self) -> Result<i64> {
        Ok(on_read!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM flows").fetch_one(pool).await?
        }))
    }
}
