//! A broadcast's audience: accepted recipients and rejected rows, replaced as a whole in one
//! transaction with chunked multi-row INSERTs; opted-out contacts are marked skipped with one
//! set-based UPDATE. Also the contacts an audience can be chosen from (filtered by fields).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{CHUNK, list, placeholders};
use crate::{Result, Store, StoreError, now_ms, on_read, on_write};

/// One accepted row: the normalized phone (wa_id digits), its name and its variables (JSON).
#[derive(Debug, Clone)]
pub struct NewRecipient {
    pub row_number: i64,
    pub wa_id: String,
    pub name: Option<String>,
    pub variables: String,
}

/// A row that was not accepted, with a pt-BR reason.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Rejection {
    pub row_number: i64,
    pub phone: Option<String>,
    /// invalid_phone, duplicate, invalid_variables, missing_phone, out_of_reach
    pub code: String,
    pub reason: String,
}

/// How the audience was made (kept on the broadcast to show and to re-map).
#[derive(Debug, Clone, Default)]
pub struct AudienceSpec {
    /// csv | contacts
    pub source: String,
    /// JSON array of the CSV's header.
    pub columns: Option<String>,
    pub mapping: Option<String>,
    pub filter: Option<String>,
    /// The uploaded file (kept so the mapping can change without another upload).
    pub csv: Option<String>,
    /// Data rows read (accepted + rejected).
    pub rows: i64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct AudienceCounts {
    /// Recipients who will get the message.
    pub accepted: i64,
    /// Accepted numbers skipped because the contact opted out.
    pub opted_out: i64,
    pub invalid: i64,
    pub duplicates: i64,
}

/// Contacts of a channel chosen by their fields (all given conditions must hold).
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    /// The contact's Código, exactly.
    pub code: Option<String>,
    /// Part of the contact's name (or WhatsApp profile name), any case.
    pub name: Option<String>,
    /// Custom fields (`custom.<key>` of the contact's conversations), exactly.
    pub fields: Vec<(String, String)>,
    /// Only customers within this person's reach (see [`Store::contact_in_reach`]); `None` for
    /// admins and integrations.
    pub reach_of: Option<i64>,
}

/// A contact as an audience sees it: the columns a mapping may name.
#[derive(Debug, Clone)]
pub struct AudienceContact {
    pub id: i64,
    pub wa_id: String,
    pub name: Option<String>,
    pub profile_name: Option<String>,
    pub code: Option<String>,
    pub email: Option<String>,
    /// Custom fields by key (without `custom.`), from the contact's latest conversation that has
    /// each one.
    pub fields: BTreeMap<String, String>,
}

type ContactRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl Store {
    /// Replaces the audience of a draft (or a scheduled broadcast): every recipient and rejected row, and the counts, in one
    /// transaction. `Conflict` once the broadcast started.
    pub async fn replace_audience(
        &self,
        broadcast_id: i64,
        spec: &AudienceSpec,
        recipients: &[NewRecipient],
        rejections: &[Rejection],
    ) -> Result<AudienceCounts> {
        let now = now_ms();
        let lock = format!(
            "SELECT status, channel_id FROM broadcasts WHERE id = $1{}",
            self.for_update()
        );
        let invalid = rejections.iter().filter(|r| r.code != "duplicate").count() as i64;
        let duplicates = rejections.len() as i64 - invalid;
        let counts = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: Option<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(lock))
                .bind(broadcast_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((status, channel_id)) = row else {
                return Err(StoreError::NotFound);
            };
            if status != super::DRAFT && status != super::SCHEDULED {
                return Err(StoreError::Conflict(
                    "the audience of a broadcast that started cannot change".into(),
                ));
            }
            sqlx::query("DELETE FROM broadcast_recipients WHERE broadcast_id = $1")
                .bind(broadcast_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM broadcast_rejections WHERE broadcast_id = $1")
                .bind(broadcast_id)
                .execute(&mut *tx)
                .await?;
            for chunk in recipients.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO broadcast_recipients (broadcast_id, row_number, wa_id, name, variables, updated_at)
                     VALUES {}",
                    placeholders(chunk.len(), 6, 1)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in chunk {
                    query = query
                        .bind(broadcast_id)
                        .bind(r.row_number)
                        .bind(&r.wa_id)
                        .bind(&r.name)
                        .bind(&r.variables)
                        .bind(now);
                }
                query.execute(&mut *tx).await?;
            }
            for chunk in rejections.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO broadcast_rejections (broadcast_id, row_number, phone, code, reason) VALUES {}",
                    placeholders(chunk.len(), 5, 1)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for r in chunk {
                    query = query
                        .bind(broadcast_id)
                        .bind(r.row_number)
                        .bind(&r.phone)
                        .bind(&r.code)
                        .bind(&r.reason);
                }
                query.execute(&mut *tx).await?;
            }
            let opted_out = sqlx::query(
                "UPDATE broadcast_recipients SET state = 'skipped', skip_reason = 'opted_out'
                 WHERE broadcast_id = $1 AND wa_id IN (
                    SELECT wa_id FROM contacts WHERE channel_id = $2 AND opted_out_at IS NOT NULL)",
            )
            .bind(broadcast_id)
            .bind(channel_id)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
            let counts = AudienceCounts {
                accepted: recipients.len() as i64 - opted_out,
                opted_out,
                invalid,
                duplicates,
            };
            sqlx::query(
                "UPDATE broadcasts SET audience_source = $2, audience_columns = $3, audience_mapping = $4,
                    audience_filter = $5, audience_csv = $6, audience_rows = $7, invalid_rows = $8,
                    duplicate_rows = $9, opted_out_rows = $10, accepted_rows = $11, updated_at = $12
                 WHERE id = $1",
            )
            .bind(broadcast_id)
            .bind(&spec.source)
            .bind(&spec.columns)
            .bind(&spec.mapping)
            .bind(&spec.filter)
            .bind(&spec.csv)
            .bind(spec.rows)
            .bind(counts.invalid)
            .bind(counts.duplicates)
            .bind(counts.opted_out)
            .bind(counts.accepted)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            counts
        });
        Ok(counts)
    }

    /// The uploaded CSV of a broadcast, if its audience came from one.
    pub async fn audience_csv(&self, broadcast_id: i64) -> Result<Option<String>> {
        let csv: Option<Option<String>> = on_read!(self, pool => {
            sqlx::query_scalar("SELECT audience_csv FROM broadcasts WHERE id = $1")
                .bind(broadcast_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(csv.flatten())
    }

    /// The first rejected rows, in row order.
    pub async fn audience_rejections(
        &self,
        broadcast_id: i64,
        limit: i64,
    ) -> Result<Vec<Rejection>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT row_number, phone, code, reason FROM broadcast_rejections
                 WHERE broadcast_id = $1 ORDER BY row_number LIMIT $2",
            )
            .bind(broadcast_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The first accepted rows skipped because the contact opted out: (row, wa_id).
    pub async fn audience_opted_out(
        &self,
        broadcast_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT row_number, wa_id FROM broadcast_recipients
                 WHERE broadcast_id = $1 AND state = 'skipped' AND skip_reason = 'opted_out'
                 ORDER BY id LIMIT $2",
            )
            .bind(broadcast_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The first recipients who will get the message (for the preview).
    pub async fn audience_sample(
        &self,
        broadcast_id: i64,
        limit: i64,
    ) -> Result<Vec<super::PendingRecipient>> {
        Ok(on_read!(self, pool => {
            sqlx::query_as(
                "SELECT id, row_number, wa_id, name, variables FROM broadcast_recipients
                 WHERE broadcast_id = $1 AND state = 'pending' ORDER BY id LIMIT $2",
            )
            .bind(broadcast_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Contacts of a channel matching `filter` with id > `after`, in id order, with their custom
    /// fields (a page at a time, so 100,000 contacts never sit in memory at once).
    pub async fn audience_contacts(
        &self,
        channel_id: i64,
        filter: &ContactFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AudienceContact>> {
        let mut sql = String::from(
            "SELECT ct.id, ct.wa_id, ct.name, ct.profile_name, ct.code, ct.email FROM contacts ct
             WHERE ct.channel_id = $1 AND ct.id > $2",
        );
        let mut n = 4;
        if filter.code.is_some() {
            sql.push_str(&format!(" AND ct.code = ${n}"));
            n += 1;
        }
        if filter.name.is_some() {
            sql.push_str(&format!(
                " AND LOWER(COALESCE(ct.name, ct.profile_name, '')) LIKE ${n}"
            ));
            n += 1;
        }
        for _ in &filter.fields {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM conversations c JOIN conversation_fields f
                    ON f.conversation_id = c.id WHERE c.contact_id = ct.id AND f.key = ${} AND f.value = ${})",
                n,
                n + 1
            ));
            n += 2;
        }
        if filter.reach_of.is_some() {
            sql.push_str(&format!(
                " AND (NOT EXISTS (SELECT 1 FROM conversations c WHERE c.contact_id = ct.id
                        AND (c.queue_id IS NOT NULL OR c.agent_id IS NOT NULL))
                    OR EXISTS (SELECT 1 FROM conversations c WHERE c.contact_id = ct.id
                        AND (c.agent_id = ${n} OR c.queue_id IN
                            (SELECT queue_id FROM queue_members WHERE user_id = ${n}))))"
            ));
        }
        sql.push_str(" ORDER BY ct.id LIMIT $3");
        let name_pattern = filter.name.as_ref().map(|name| {
            let escaped = name.to_lowercase().replace(['%', '_'], "");
            format!("%{escaped}%")
        });
        let rows: Vec<ContactRow> = on_read!(self, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(channel_id)
                .bind(after)
                .bind(limit);
            if let Some(code) = &filter.code {
                query = query.bind(code);
            }
            if let Some(pattern) = &name_pattern {
                query = query.bind(pattern);
            }
            for (key, value) in &filter.fields {
                query = query.bind(format!("custom.{key}")).bind(value);
            }
            if let Some(user_id) = filter.reach_of {
                query = query.bind(user_id);
            }
            query.fetch_all(pool).await?
        });
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let mut fields: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
        for chunk in ids.chunks(CHUNK) {
            // Oldest conversation first, so the latest value of a field wins.
            let sql = format!(
                "SELECT c.contact_id, f.key, f.value FROM conversation_fields f
                 JOIN conversations c ON c.id = f.conversation_id
                 WHERE c.contact_id IN ({}) AND f.key LIKE 'custom.%' ORDER BY c.id",
                list(chunk.len(), 1)
            );
            let found: Vec<(i64, String, String)> = on_read!(self, pool => {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await?
            });
            for (contact_id, key, value) in found {
                let key = key.trim_start_matches("custom.").to_owned();
                fields.entry(contact_id).or_default().insert(key, value);
            }
        }
        Ok(rows
            .into_iter()
            .map(
                |(id, wa_id, name, profile_name, code, email)| AudienceContact {
                    fields: fields.remove(&id).unwrap_or_default(),
                    id,
                    wa_id,
                    name,
                    profile_name,
                    code,
                    email,
                },
            )
            .collect())
    }
}
