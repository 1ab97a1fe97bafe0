//! Message templates (HSM) as last seen at Meta. A row per name and language of a WhatsApp
//! Business Account (Meta's own unit: each language is a template with its own id). Rows are
//! written by the create/edit/delete calls the server makes, by the full sync (upsert by Meta's
//! id, templates gone at Meta marked `DELETED`) and by the template webhooks. Every change that a
//! screen shows writes a `template.updated` event in the same transaction.
//!
//! Also the edit history (Meta limits how often an approved template may be edited) and the names
//! deleted recently (Meta refuses to reuse a deleted name for 30 days).

use serde::Serialize;
use serde_json::json;

use crate::{Result, Store, StoreError, insert_event, now_ms, on_read, on_write};

/// A template row. `components` and `button_actions` are JSON text.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TemplateRecord {
    pub id: i64,
    pub waba_id: String,
    pub meta_id: Option<String>,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    /// Meta's `components` array as JSON.
    pub components: String,
    pub quality: Option<String>,
    pub rejected_reason: Option<String>,
    pub rejection_recommendation: Option<String>,
    pub previous_category: Option<String>,
    /// `{"<quick reply text or payload>": {"action":"route"} | {"action":"reply","text":"..."}}`;
    /// a quick reply without an entry routes.
    pub button_actions: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub synced_at: Option<i64>,
    /// When Meta last said something of the status (unix ms): older news is not applied.
    pub status_at: Option<i64>,
}

impl TemplateRecord {
    /// The template as `domain::template` understands it (Meta's JSON shape), for validation,
    /// rendering and building a send.
    pub fn definition(&self) -> Result<domain::template::TemplateDefinition, serde_json::Error> {
        let components: serde_json::Value = serde_json::from_str(&self.components)?;
        serde_json::from_value(json!({
            "name": self.name,
            "language": self.language,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": components,
        }))
    }
}

/// Which templates of a WABA to list.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    /// Exact status (`APPROVED`, ...); `None`: every status but `DELETED`.
    pub status: Option<String>,
    /// Substring of the name (case-insensitive).
    pub q: Option<String>,
    pub language: Option<String>,
    pub category: Option<String>,
}

/// A template as Meta describes it (creation answer, list item, webhook-triggered fetch).
#[derive(Debug, Clone)]
pub struct TemplateUpsert {
    pub waba_id: String,
    pub meta_id: Option<String>,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: String,
    pub quality: Option<String>,
    /// `None` leaves the stored reason (the list does not always carry it).
    pub rejected_reason: Option<String>,
    pub created_by: Option<i64>,
    /// When Meta said this (unix ms); a stored status that Meta gave later is kept.
    pub status_at: i64,
}

/// A change a webhook (or Meta's answer to an edit) brings; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct TemplateChange {
    pub status: Option<String>,
    pub category: Option<String>,
    pub components: Option<String>,
    pub quality: Option<String>,
    /// `Some(None)` clears the reason (e.g. approved after an appeal).
    pub rejected_reason: Option<Option<String>>,
    pub rejection_recommendation: Option<Option<String>>,
    /// Set when Meta re-categorised the template.
    pub previous_category: Option<String>,
    /// When Meta said this (unix ms), recorded with a status change.
    pub status_at: Option<i64>,
}

/// One edit submitted to Meta.
#[derive(Debug, Clone)]
pub struct TemplateEdit {
    pub template_id: i64,
    pub by_user_id: Option<i64>,
    pub status_before: String,
    pub status_after: String,
    pub category_before: Option<String>,
    pub category_after: Option<String>,
    pub components_before: Option<String>,
    pub components_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TemplateEditRecord {
    pub id: i64,
    pub template_id: i64,
    pub at: i64,
    pub by_user_id: Option<i64>,
    pub status_before: String,
    pub status_after: String,
    pub category_before: Option<String>,
    pub category_after: Option<String>,
}

const COLUMNS: &str = "id, waba_id, meta_id, name, language, category, status, parameter_format,
    components, quality, rejected_reason, rejection_recommendation, previous_category,
    button_actions, created_by, created_at, updated_at, synced_at, status_at";

impl Store {
    pub async fn template(&self, id: i64) -> Result<Option<TemplateRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM templates WHERE id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        }))
    }

    /// Reads through the write pool: what a write just committed, without depending on the read
    /// pool's snapshot.
    async fn template_fresh(&self, id: i64) -> Result<TemplateRecord> {
        let sql = format!("SELECT {COLUMNS} FROM templates WHERE id = $1");
        Ok(on_write!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await?
        }))
    }

    pub async fn template_by_name(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM templates WHERE waba_id = $1 AND name = $2 AND language = $3"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(waba_id)
                .bind(name)
                .bind(language)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn template_by_meta_id(&self, meta_id: &str) -> Result<Option<TemplateRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM templates WHERE meta_id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(meta_id).fetch_optional(pool).await?
        }))
    }

    /// Every language of a template name.
    pub async fn templates_named(&self, waba_id: &str, name: &str) -> Result<Vec<TemplateRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM templates WHERE waba_id = $1 AND name = $2 ORDER BY language"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(waba_id)
                .bind(name)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The templates of a WABA, by name then language.
    pub async fn templates_of_waba(
        &self,
        waba_id: &str,
        filter: &TemplateFilter,
    ) -> Result<Vec<TemplateRecord>> {
        let q = filter
            .q
            .as_deref()
            .map(|q| format!("%{}%", like_escaped(&q.to_lowercase())));
        let sql = format!(
            "SELECT {COLUMNS} FROM templates
             WHERE waba_id = $1
               AND (($2 IS NULL AND status <> 'DELETED') OR status = $2)
               AND ($3 IS NULL OR LOWER(name) LIKE $3 ESCAPE '\\')
               AND ($4 IS NULL OR language = $4)
               AND ($5 IS NULL OR category = $5)
             ORDER BY name, language"
        );
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(waba_id)
                .bind(&filter.status)
                .bind(&q)
                .bind(&filter.language)
                .bind(&filter.category)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Writes a template as Meta describes it: matched by Meta's id, else by name and language
    /// (a row created before Meta answered, or a name reused after its deletion). Returns the row
    /// and whether anything shown changed (then a `template.updated` event was written).
    pub async fn upsert_template(&self, t: &TemplateUpsert) -> Result<(TemplateRecord, bool)> {
        let now = now_ms();
        let existing = match &t.meta_id {
            Some(m) => match self.template_by_meta_id(m).await? {
                Some(r) => Some(r),
                None => {
                    self.template_by_name(&t.waba_id, &t.name, &t.language)
                        .await?
                }
            },
            None => {
                self.template_by_name(&t.waba_id, &t.name, &t.language)
                    .await?
            }
        };
        let (id, changed) = match existing {
            Some(old) => {
                // A webhook applied after Meta produced this answer knows better.
                let newer_known = old.status_at.is_some_and(|at| at > t.status_at);
                let status = if newer_known { &old.status } else { &t.status };
                let status_at = old.status_at.unwrap_or(0).max(t.status_at);
                let changed = old.meta_id != t.meta_id && t.meta_id.is_some()
                    || old.status != *status
                    || old.category != t.category
                    || old.components != t.components
                    || old.parameter_format != t.parameter_format
                    || (t.quality.is_some() && old.quality != t.quality)
                    || (t.rejected_reason.is_some() && old.rejected_reason != t.rejected_reason);
                on_write!(self, pool => {
                    let mut tx = pool.begin().await?;
                    sqlx::query(
                        "UPDATE templates SET meta_id = COALESCE($2, meta_id), name = $3,
                            language = $4, category = $5, status = $6, parameter_format = $7,
                            components = $8, quality = COALESCE($9, quality),
                            rejected_reason = CASE WHEN $6 = 'REJECTED'
                                THEN COALESCE($10, rejected_reason) ELSE NULL END,
                            rejection_recommendation = CASE WHEN $6 = 'REJECTED'
                                THEN rejection_recommendation ELSE NULL END,
                            updated_at = CASE WHEN $11 THEN $12 ELSE updated_at END,
                            synced_at = $12, status_at = $13
                         WHERE id = $1",
                    )
                    .bind(old.id)
                    .bind(&t.meta_id)
                    .bind(&t.name)
                    .bind(&t.language)
                    .bind(&t.category)
                    .bind(status)
                    .bind(&t.parameter_format)
                    .bind(&t.components)
                    .bind(&t.quality)
                    .bind(&t.rejected_reason)
                    .bind(changed)
                    .bind(now)
                    .bind(status_at)
                    .execute(&mut *tx)
                    .await?;
                    if changed {
                        insert_event!(tx, now, "template.updated", None::<i64>,
                            json!({"template_id": old.id, "status": status, "waba_id": t.waba_id}));
                    }
                    tx.commit().await?;
                });
                (old.id, changed)
            }
            None => {
                let id = on_write!(self, pool => {
                    let mut tx = pool.begin().await?;
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO templates (waba_id, meta_id, name, language, category, status,
                            parameter_format, components, quality, rejected_reason, created_by,
                            created_at, updated_at, synced_at, status_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12, $13)
                         RETURNING id",
                    )
                    .bind(&t.waba_id)
                    .bind(&t.meta_id)
                    .bind(&t.name)
                    .bind(&t.language)
                    .bind(&t.category)
                    .bind(&t.status)
                    .bind(&t.parameter_format)
                    .bind(&t.components)
                    .bind(&t.quality)
                    .bind(&t.rejected_reason)
                    .bind(t.created_by)
                    .bind(now)
                    .bind(t.status_at)
                    .fetch_one(&mut *tx)
                    .await?;
                    insert_event!(tx, now, "template.updated", None::<i64>,
                        json!({"template_id": id, "status": t.status, "waba_id": t.waba_id}));
                    tx.commit().await?;
                    id
                });
                (id, true)
            }
        };
        Ok((self.template_fresh(id).await?, changed))
    }

    /// Applies a change to one template; `NotFound` when the id is unknown. Writes the event when
    /// something changed.
    pub async fn change_template(&self, id: i64, c: &TemplateChange) -> Result<TemplateRecord> {
        let now = now_ms();
        let old = self.template_fresh(id).await.map_err(|e| match e {
            StoreError::Database(sqlx::Error::RowNotFound) => StoreError::NotFound,
            e => e,
        })?;
        let status = c.status.clone().unwrap_or_else(|| old.status.clone());
        let category = c.category.clone().unwrap_or_else(|| old.category.clone());
        let components = c
            .components
            .clone()
            .unwrap_or_else(|| old.components.clone());
        let quality = c.quality.clone().or_else(|| old.quality.clone());
        let reason = match &c.rejected_reason {
            Some(r) => r.clone(),
            None => old.rejected_reason.clone(),
        };
        let recommendation = match &c.rejection_recommendation {
            Some(r) => r.clone(),
            None => old.rejection_recommendation.clone(),
        };
        let previous_category = c
            .previous_category
            .clone()
            .or_else(|| old.previous_category.clone());
        let status_at = match c.status_at {
            Some(at) => Some(old.status_at.unwrap_or(0).max(at)),
            None => old.status_at,
        };
        let changed = status != old.status
            || category != old.category
            || components != old.components
            || quality != old.quality
            || reason != old.rejected_reason
            || recommendation != old.rejection_recommendation
            || previous_category != old.previous_category;
        if !changed {
            return Ok(old);
        }
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE templates SET status = $2, category = $3, components = $4, quality = $5,
                    rejected_reason = $6, rejection_recommendation = $7, previous_category = $8,
                    updated_at = $9, status_at = $10
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&status)
            .bind(&category)
            .bind(&components)
            .bind(&quality)
            .bind(&reason)
            .bind(&recommendation)
            .bind(&previous_category)
            .bind(now)
            .bind(status_at)
            .execute(&mut *tx)
            .await?;
            insert_event!(tx, now, "template.updated", None::<i64>,
                json!({"template_id": id, "status": status, "waba_id": old.waba_id}));
            tx.commit().await?;
        });
        self.template_fresh(id).await
    }

    /// Marks `DELETED` every template of the WABA that has a Meta id not in `seen` (the full
    /// sync's list, read from Meta starting at `listed_at`) and is not deleted yet. A template
    /// created since then may be missing from the list without being gone, so it stays.
    /// Returns the ids marked.
    pub async fn mark_templates_gone(
        &self,
        waba_id: &str,
        seen: &[String],
        listed_at: i64,
    ) -> Result<Vec<i64>> {
        let rows: Vec<(i64, Option<String>)> = on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, meta_id FROM templates
                 WHERE waba_id = $1 AND status <> 'DELETED' AND meta_id IS NOT NULL
                   AND created_at < $2",
            )
            .bind(waba_id)
            .bind(listed_at)
            .fetch_all(pool)
            .await?
        });
        let gone: Vec<i64> = rows
            .into_iter()
            .filter(|(_, m)| m.as_ref().is_some_and(|m| !seen.contains(m)))
            .map(|(id, _)| id)
            .collect();
        self.mark_templates_deleted(&gone).await?;
        Ok(gone)
    }

    /// Marks these templates `DELETED` (kept for the history of the messages that used them).
    pub async fn mark_templates_deleted(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                let done = sqlx::query(
                    "UPDATE templates SET status = 'DELETED', updated_at = $2
                     WHERE id = $1 AND status <> 'DELETED'",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done > 0 {
                    insert_event!(tx, now, "template.updated", None::<i64>,
                        json!({"template_id": id, "status": "DELETED"}));
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Sets what the template's quick replies do (`None` clears: every quick reply routes).
    pub async fn set_template_button_actions(
        &self,
        id: i64,
        actions: Option<&str>,
    ) -> Result<TemplateRecord> {
        let now = now_ms();
        let done = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE templates SET button_actions = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(actions)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done > 0 {
                insert_event!(tx, now, "template.updated", None::<i64>,
                    json!({"template_id": id}));
            }
            tx.commit().await?;
            done
        });
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.template_fresh(id).await
    }

    /// Records an edit submitted to Meta and applies its outcome to the row, in one transaction.
    pub async fn record_template_edit(
        &self,
        edit: &TemplateEdit,
        change: &TemplateChange,
    ) -> Result<TemplateRecord> {
        let now = now_ms();
        on_write!(self, pool => {
            sqlx::query(
                "INSERT INTO template_edits (template_id, at, by_user_id, status_before,
                    status_after, category_before, category_after, components_before,
                    components_after)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(edit.template_id)
            .bind(now)
            .bind(edit.by_user_id)
            .bind(&edit.status_before)
            .bind(&edit.status_after)
            .bind(&edit.category_before)
            .bind(&edit.category_after)
            .bind(&edit.components_before)
            .bind(&edit.components_after)
            .execute(pool)
            .await?;
        });
        self.change_template(edit.template_id, change).await
    }

    /// The edits of a template at or after `since` (unix ms), newest first.
    pub async fn template_edits_since(
        &self,
        template_id: i64,
        since: i64,
    ) -> Result<Vec<TemplateEditRecord>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, template_id, at, by_user_id, status_before, status_after,
                    category_before, category_after
                 FROM template_edits WHERE template_id = $1 AND at >= $2 ORDER BY at DESC, id DESC",
            )
            .bind(template_id)
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Remembers a deletion at Meta (`language: None`: the whole name).
    pub async fn record_template_name_deleted(
        &self,
        waba_id: &str,
        name: &str,
        language: Option<&str>,
        by_user_id: Option<i64>,
    ) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query(
                "INSERT INTO template_deleted_names (waba_id, name, language, deleted_at, by_user_id)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(waba_id)
            .bind(name)
            .bind(language)
            .bind(now_ms())
            .bind(by_user_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// When the name (or that language of it) was last deleted at or after `since`, if it was.
    pub async fn template_name_deleted_since(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
        since: i64,
    ) -> Result<Option<i64>> {
        let at: Option<i64> = on_read!(self, pool => {
            sqlx::query_scalar(
                "SELECT MAX(deleted_at) FROM template_deleted_names
                 WHERE waba_id = $1 AND name = $2 AND (language IS NULL OR language = $3)
                   AND deleted_at >= $4",
            )
            .bind(waba_id)
            .bind(name)
            .bind(language)
            .bind(since)
            .fetch_one(pool)
            .await?
        });
        Ok(at)
    }
}

/// A template Meta told us of (webhook) that Atende does not know yet, waiting to be fetched.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TemplateFetch {
    pub meta_id: String,
    pub waba_id: String,
    pub requested_at: i64,
    pub attempts: i64,
    pub next_at: i64,
    pub last_error: Option<String>,
}

/// A fetch that failed this many times is given up (the periodic full sync still finds it).
pub const MAX_FETCH_ATTEMPTS: i64 = 8;

impl Store {
    /// Asks for `GET /{template-id}` of a template Atende does not know; asking twice is one ask.
    pub async fn request_template_fetch(&self, meta_id: &str, waba_id: &str) -> Result<()> {
        let now = now_ms();
        on_write!(self, pool => {
            sqlx::query(
                "INSERT INTO template_fetches (meta_id, waba_id, requested_at, next_at)
                 VALUES ($1, $2, $3, $3)
                 ON CONFLICT (meta_id) DO UPDATE SET next_at = excluded.next_at,
                    attempts = 0, last_error = NULL",
            )
            .bind(meta_id)
            .bind(waba_id)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Fetches due now, oldest first.
    pub async fn due_template_fetches(&self, limit: i64) -> Result<Vec<TemplateFetch>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT meta_id, waba_id, requested_at, attempts, next_at, last_error
                 FROM template_fetches WHERE next_at <= $1 AND attempts < $2
                 ORDER BY next_at LIMIT $3",
            )
            .bind(now_ms())
            .bind(MAX_FETCH_ATTEMPTS)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The fetch is done (the template was stored, or Meta says it does not exist).
    pub async fn finish_template_fetch(&self, meta_id: &str) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query("DELETE FROM template_fetches WHERE meta_id = $1")
                .bind(meta_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The fetch failed; it is tried again at `next_at`.
    pub async fn retry_template_fetch(
        &self,
        meta_id: &str,
        error: &str,
        next_at: i64,
    ) -> Result<()> {
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE template_fetches SET attempts = attempts + 1, last_error = $2, next_at = $3
                 WHERE meta_id = $1",
            )
            .bind(meta_id)
            .bind(error)
            .bind(next_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

/// What a channel knows of its WhatsApp account: the app (for uploads), the messaging limit and
/// quality Meta reports, and the last prerequisites check.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ChannelAccount {
    pub id: i64,
    pub app_id: Option<String>,
    pub messaging_limit_tier: Option<String>,
    /// Unique customers per moving 24 h; `None` = unlimited or unknown.
    pub messaging_limit: Option<i64>,
    /// An admin set `messaging_limit`; checks no longer overwrite it.
    pub messaging_limit_manual: bool,
    pub quality_rating: Option<String>,
    /// JSON of the last check.
    pub prerequisites: Option<String>,
    pub prerequisites_checked_at: Option<i64>,
}

/// The outcome of a prerequisites check, as stored on the channel.
#[derive(Debug, Clone, Default)]
pub struct AccountCheck {
    /// `None` leaves the stored app id.
    pub app_id: Option<String>,
    pub messaging_limit_tier: Option<String>,
    /// From the tier; ignored when an admin set the limit.
    pub messaging_limit: Option<i64>,
    pub quality_rating: Option<String>,
    pub prerequisites: String,
}

/// How a channel's messaging limit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingLimit {
    /// Fixed by an admin.
    Manual(i64),
    /// What the tier Meta reports allows (`None`: unlimited or unknown).
    FromTier(Option<i64>),
}

const ACCOUNT_COLUMNS: &str = "id, app_id, messaging_limit_tier, messaging_limit,
    messaging_limit_manual, quality_rating, prerequisites, prerequisites_checked_at";

impl Store {
    pub async fn channel_account(&self, channel_id: i64) -> Result<Option<ChannelAccount>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM channels WHERE id = $1");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(channel_id).fetch_optional(pool).await?
        }))
    }

    pub async fn channel_accounts(&self) -> Result<Vec<ChannelAccount>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM channels ORDER BY id");
        Ok(on_read!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }

    /// Stores a prerequisites check. The tier and quality are only overwritten with what Meta
    /// answered (`None` keeps them); the limit follows the tier unless an admin set it.
    pub async fn record_account_check(&self, channel_id: i64, c: &AccountCheck) -> Result<()> {
        let now = now_ms();
        let done = on_write!(self, pool => {
            sqlx::query(
                "UPDATE channels SET
                    app_id = COALESCE($2, app_id),
                    messaging_limit_tier = COALESCE($3, messaging_limit_tier),
                    messaging_limit = CASE WHEN messaging_limit_manual OR $3 IS NULL
                        THEN messaging_limit ELSE $4 END,
                    quality_rating = COALESCE($5, quality_rating),
                    prerequisites = $6,
                    prerequisites_checked_at = $7
                 WHERE id = $1",
            )
            .bind(channel_id)
            .bind(&c.app_id)
            .bind(&c.messaging_limit_tier)
            .bind(c.messaging_limit)
            .bind(&c.quality_rating)
            .bind(&c.prerequisites)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// An admin's settings: the app id (`Some(None)` clears it) and the messaging limit.
    pub async fn set_channel_account(
        &self,
        channel_id: i64,
        app_id: Option<Option<&str>>,
        messaging_limit: Option<MessagingLimit>,
    ) -> Result<()> {
        let now = now_ms();
        let done = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut done = 0;
            if let Some(app_id) = app_id {
                done += sqlx::query("UPDATE channels SET app_id = $2, updated_at = $3 WHERE id = $1")
                    .bind(channel_id)
                    .bind(app_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            match messaging_limit {
                Some(MessagingLimit::Manual(limit)) => {
                    done += sqlx::query(
                        "UPDATE channels SET messaging_limit = $2, messaging_limit_manual = TRUE,
                            updated_at = $3 WHERE id = $1",
                    )
                    .bind(channel_id)
                    .bind(limit)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                Some(MessagingLimit::FromTier(limit)) => {
                    done += sqlx::query(
                        "UPDATE channels SET messaging_limit = $2, messaging_limit_manual = FALSE,
                            updated_at = $3 WHERE id = $1",
                    )
                    .bind(channel_id)
                    .bind(limit)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                None => {}
            }
            tx.commit().await?;
            done
        });
        if done == 0 && (app_id.is_some() || messaging_limit.is_some()) {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// `q` matched literally by LIKE: `_` is common in template names ("lembrete_pagamento").
fn like_escaped(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
