//! The flow step "agendar lembrete": the turn's reminders become schedules (fired later by
//! `workers::schedules`, as any other). Created before the turn commits, with a key derived from
//! the turn's input, so a turn that is retried, or raced by another instance, schedules once.

use std::collections::BTreeMap;

use domain::flow::ReminderWhen;
use domain::template::Values;
use store::bot::BotConversation;
use store::schedules::NewSchedule;

use super::BotWorker;

/// One reminder of a turn, as the interpreter decided it.
pub(super) struct Reminder {
    pub template: String,
    pub language: String,
    pub when: ReminderWhen,
    pub variables: BTreeMap<String, String>,
}

/// Where reminders on a date are set: the customers' (Brazilian) local time.
const TIME_ZONE: &str = "America/Sao_Paulo";

impl BotWorker {
    /// Creates the turn's reminders (idempotent per `key_base`). A reminder whose date is
    /// unreadable or already past is skipped with a warning; one whose template is unknown is
    /// still created, and fails visibly when due.
    pub(super) async fn schedule_reminders(
        &self,
        conv: &BotConversation,
        reminders: &[Reminder],
        key_base: &str,
    ) -> anyhow::Result<()> {
        if reminders.is_empty() {
            return Ok(());
        }
        let store = &self.inner.store;
        let waba_id = store
            .channel(conv.channel_id)
            .await?
            .map(|c| c.waba_id)
            .unwrap_or_default();
        let now = store::now_ms();
        for (n, r) in reminders.iter().enumerate() {
            let due_at = match due_at(&r.when, now) {
                Ok(at) if at >= now => at,
                Ok(_) => {
                    tracing::warn!(
                        conversation_id = conv.id,
                        "reminder date already past; not scheduled"
                    );
                    continue;
                }
                Err(why) => {
                    tracing::warn!(conversation_id = conv.id, %why, "reminder not scheduled");
                    continue;
                }
            };
            let template = store
                .template_by_name(&waba_id, &r.template, &r.language)
                .await?;
            let values = Values {
                body: r.variables.clone(),
                ..Values::default()
            };
            let new = NewSchedule {
                channel_id: conv.channel_id,
                contact_id: conv.contact_id,
                conversation_id: Some(conv.id),
                queue_id: conv.queue_id,
                kind: "template".into(),
                template_id: template.as_ref().map(|t| t.id),
                template_values: Some(serde_json::to_string(&values)?),
                due_at,
                created_via: "bot".into(),
                idempotency_key: Some(format!("{key_base}:reminder:{n}")),
                note: Some(format!("Lembrete do robô: {} ({})", r.template, r.language)),
                ..NewSchedule::default()
            };
            let (schedule, created) = store.create_schedule(&new).await?;
            if created {
                tracing::info!(
                    conversation_id = conv.id,
                    schedule_id = schedule.id,
                    due_at,
                    "bot scheduled a reminder"
                );
            }
        }
        Ok(())
    }
}

/// The reminder's time in unix ms.
pub(super) fn due_at(when: &ReminderWhen, now: i64) -> Result<i64, String> {
    match when {
        ReminderWhen::AfterMinutes { minutes } => {
            Ok(now.saturating_add(i64::from(*minutes).saturating_mul(60_000)))
        }
        ReminderWhen::OnDate {
            date,
            time,
            days_before,
        } => {
            let date = parse_date(date).ok_or_else(|| format!("unreadable date {date:?}"))?;
            let time: jiff::civil::Time = time
                .parse()
                .map_err(|e| format!("unreadable time {time:?}: {e}"))?;
            let day = date
                .checked_sub(jiff::Span::new().days(i64::from(*days_before)))
                .map_err(|e| e.to_string())?;
            let zoned = day
                .to_datetime(time)
                .in_tz(TIME_ZONE)
                .map_err(|e| e.to_string())?;
            Ok(zoned.timestamp().as_millisecond())
        }
    }
}

/// `AAAA-MM-DD` (what the date validator saves) or `DD/MM/AAAA`.
fn parse_date(s: &str) -> Option<jiff::civil::Date> {
    let s = s.trim();
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Some(d);
    }
    let mut parts = s.split('/');
    let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
    jiff::civil::Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_times() {
        assert_eq!(
            due_at(&ReminderWhen::AfterMinutes { minutes: 2 }, 1_000),
            Ok(121_000)
        );
        // 24/12/2030 09:00 in São Paulo (UTC-3) is 12:00 UTC.
        let on = ReminderWhen::OnDate {
            date: "2030-12-25".into(),
            time: "09:00".into(),
            days_before: 1,
        };
        let expected = "2030-12-24T12:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        assert_eq!(due_at(&on, 0), Ok(expected));
        let br = ReminderWhen::OnDate {
            date: "25/12/2030".into(),
            time: "09:00".into(),
            days_before: 1,
        };
        assert_eq!(due_at(&br, 0), Ok(expected));
        let bad = ReminderWhen::OnDate {
            date: "amanhã".into(),
            time: "09:00".into(),
            days_before: 0,
        };
        assert!(due_at(&bad, 0).is_err());
    }
}
