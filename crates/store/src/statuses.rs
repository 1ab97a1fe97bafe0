//! Delivery statuses applied in sets: a batch of status-only webhooks (what Meta sends back for
//! every message of a broadcast, one to three per message) is a few multi-row statements, not five
//! statements per status. The outcome is the one `Store::apply_inbound_batch` gives status by
//! status: each status is stored once in `wa_statuses`, a known message moves forward only
//! (`DeliveryStatus::advance`, applied in arrival order), one `message.status` event per step, and a
//! status for a message not known yet waits in `wa_statuses` for the sender.

use std::collections::{HashMap, HashSet};

use domain::status::DeliveryStatus;
use serde_json::json;

use crate::broadcasts::{list, placeholders};
use crate::conversations::{ApplyReport, StatusRecord};
use crate::{Result, Store, insert_events, now_ms, on_write};

/// Status rows per INSERT (9 parameters each).
const INSERT_CHUNK: usize = 500;
/// wamids per lookup.
const LOOKUP_CHUNK: usize = 500;

/// A known outbound message as the batch moves it.
struct Tracked {
    id: i64,
    conversation_id: i64,
    status: DeliveryStatus,
    changed: bool,
    /// The failure that moved it to `failed`, when one did.
    failure: Option<usize>,
}

impl Store {
    /// Applies webhooks that carry only statuses (`inbox` rows, with their statuses in order) and
    /// marks the rows done, in one transaction.
    pub(crate) async fn apply_status_batch(
        &self,
        batch: &[(i64, Vec<&StatusRecord>)],
    ) -> Result<ApplyReport> {
        let now = now_ms();
        let mut report = ApplyReport::default();
        let all: Vec<&StatusRecord> = batch.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        // The first of each (channel, wamid, status) counts; later copies are duplicates.
        let mut seen = HashSet::new();
        let firsts: Vec<&StatusRecord> = all
            .iter()
            .copied()
            .filter(|s| seen.insert((s.channel_id, s.wamid.as_str(), s.status)))
            .collect();
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut stored: HashSet<(i64, String, String)> = HashSet::new();
            for chunk in firsts.chunks(INSERT_CHUNK) {
                let sql = format!(
                    "INSERT INTO wa_statuses (channel_id, wamid, status, wa_timestamp, recipient_id,
                        error_code, error_title, error_detail, received_at) VALUES {}
                     ON CONFLICT (channel_id, wamid, status) DO NOTHING
                     RETURNING channel_id, wamid, status",
                    placeholders(chunk.len(), 9, 1)
                );
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for s in chunk {
                    query = query
                        .bind(s.channel_id)
                        .bind(&s.wamid)
                        .bind(s.status.as_str())
                        .bind(s.wa_timestamp_ms)
                        .bind(&s.recipient_id)
                        .bind(s.error_code)
                        .bind(&s.error_title)
                        .bind(&s.error_detail)
                        .bind(now);
                }
                let rows: Vec<(i64, String, String)> = query.fetch_all(&mut *tx).await?;
                stored.extend(rows);
            }
            let fresh: Vec<&StatusRecord> = firsts
                .iter()
                .copied()
                .filter(|s| stored.contains(&(s.channel_id, s.wamid.clone(), s.status.as_str().to_owned())))
                .collect();
            report.duplicates += all.len() - fresh.len();

            // The messages they are about, per channel.
            let mut by_channel: HashMap<i64, Vec<&str>> = HashMap::new();
            for s in &fresh {
                by_channel.entry(s.channel_id).or_default().push(s.wamid.as_str());
            }
            let mut messages: HashMap<(i64, String), Tracked> = HashMap::new();
            for (channel_id, wamids) in by_channel {
                let unique: Vec<&str> = wamids.into_iter().collect::<HashSet<_>>().into_iter().collect();
                for chunk in unique.chunks(LOOKUP_CHUNK) {
                    let sql = format!(
                        "SELECT id, conversation_id, status, wamid FROM messages
                         WHERE channel_id = $1 AND direction = 'out' AND wamid IN ({})",
                        list(chunk.len(), 2)
                    );
                    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(channel_id);
                    for w in chunk {
                        query = query.bind(*w);
                    }
                    let rows: Vec<(i64, i64, String, String)> = query.fetch_all(&mut *tx).await?;
                    for (id, conversation_id, status, wamid) in rows {
                        let status = DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Queued);
                        messages.insert(
                            (channel_id, wamid),
                            Tracked { id, conversation_id, status, changed: false, failure: None },
                        );
                    }
                }
            }

            // Each status in arrival order, as if applied one by one.
            let mut events: Vec<(i64, String)> = Vec::new();
            for (i, s) in fresh.iter().enumerate() {
                let Some(m) = messages.get_mut(&(s.channel_id, s.wamid.clone())) else {
                    continue;
                };
                let next = m.status.advance(s.status);
                if next == m.status {
                    continue;
                }
                m.status = next;
                m.changed = true;
                if next == DeliveryStatus::Failed {
                    m.failure = Some(i);
                }
                events.push((
                    m.conversation_id,
                    json!({ "message_id": m.id, "status": next.as_str() }).to_string(),
                ));
                report.status_changes.push((m.conversation_id, m.id, next));
            }

            let changed: Vec<&Tracked> = messages.values().filter(|m| m.changed).collect();
            for chunk in changed.chunks(LOOKUP_CHUNK) {
                let mut sql = String::from("UPDATE messages SET updated_at = $1, status = CASE id");
                for i in 0..chunk.len() {
                    sql.push_str(&format!(" WHEN ${} THEN ${}", 2 + 2 * i, 3 + 2 * i));
                }
                sql.push_str(&format!(
                    " END WHERE id IN ({})",
                    (0..chunk.len()).map(|i| format!("${}", 2 + 2 * i)).collect::<Vec<_>>().join(", ")
                ));
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                for m in chunk {
                    query = query.bind(m.id).bind(m.status.as_str());
                }
                query.execute(&mut *tx).await?;
            }
            // Failures are rare: their details one by one.
            for m in changed.iter().filter(|m| m.status == DeliveryStatus::Failed) {
                let Some(s) = m.failure.map(|i| fresh[i]) else { continue };
                sqlx::query(
                    "UPDATE messages SET error_code = $2, error_title = $3, error_detail = $4 WHERE id = $1",
                )
                .bind(m.id)
                .bind(s.error_code)
                .bind(&s.error_title)
                .bind(&s.error_detail)
                .execute(&mut *tx)
                .await?;
            }
            insert_events!(tx, now, "message.status", &events);

            let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
            for chunk in ids.chunks(LOOKUP_CHUNK) {
                let sql = format!(
                    "UPDATE inbox SET state = 'done', attempts = attempts + 1, processed_at = $1
                     WHERE id IN ({})",
                    list(chunk.len(), 2)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(report)
    }
}
