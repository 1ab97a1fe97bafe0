//! Business hours of a queue: a weekly schedule of intervals, holidays and a time zone, stored as
//! JSON in `queues.business_hours` and checked at the moment of the hand-off.
//!
//! ```json
//! {"time_zone": "America/Sao_Paulo",
//!  "weekly": {"mon": ["08:00-12:00", "13:00-18:00"], "tue": ["08:00-18:00"], "sat": ["09:00-13:00"]},
//!  "holidays": ["2026-12-25", "01-01"]}
//! ```
//! A day missing from `weekly` is closed; `24:00` closes at midnight; a holiday is a full date or
//! `MM-DD` for every year. No schedule at all (`NULL`) means always open.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

const DAYS: [(&str, &str, Weekday); 7] = [
    ("mon", "seg", Weekday::Monday),
    ("tue", "ter", Weekday::Tuesday),
    ("wed", "qua", Weekday::Wednesday),
    ("thu", "qui", Weekday::Thursday),
    ("fri", "sex", Weekday::Friday),
    ("sat", "sab", Weekday::Saturday),
    ("sun", "dom", Weekday::Sunday),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// `mon`..`sun` (or `seg`..`dom`) to `"HH:MM-HH:MM"` intervals.
    #[serde(default)]
    pub weekly: BTreeMap<String, Vec<String>>,
    /// `YYYY-MM-DD`, or `MM-DD` for a holiday every year.
    #[serde(default)]
    pub holidays: Vec<String>,
}

fn default_time_zone() -> String {
    domain::protocol::DEFAULT_TIME_ZONE.to_owned()
}

impl BusinessHours {
    /// Every day, all day.
    pub fn always() -> BusinessHours {
        BusinessHours::days(
            &["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "00:00-24:00",
        )
    }

    /// Monday to Friday within one interval, e.g. `"08:00-18:00"`.
    pub fn weekdays(interval: &str) -> BusinessHours {
        BusinessHours::days(&["mon", "tue", "wed", "thu", "fri"], interval)
    }

    fn days(days: &[&str], interval: &str) -> BusinessHours {
        BusinessHours {
            time_zone: default_time_zone(),
            weekly: days
                .iter()
                .map(|d| ((*d).to_owned(), vec![interval.to_owned()]))
                .collect(),
            holidays: Vec::new(),
        }
    }

    /// Parses and validates the stored JSON; the error is a pt-BR message for the admin.
    pub fn parse(json: &serde_json::Value) -> Result<BusinessHours, String> {
        let hours: BusinessHours = serde_json::from_value(json.clone())
            .map_err(|e| format!("Horário de atendimento inválido: {e}."))?;
        hours.validate()?;
        Ok(hours)
    }

    pub fn validate(&self) -> Result<(), String> {
        TimeZone::get(&self.time_zone)
            .map_err(|_| format!("Fuso horário desconhecido: \"{}\".", self.time_zone))?;
        for (day, intervals) in &self.weekly {
            if weekday_of(day).is_none() {
                return Err(format!(
                    "Dia da semana desconhecido: \"{day}\"; use mon, tue, wed, thu, fri, sat, sun (ou seg, ter, qua, qui, sex, sab, dom)."
                ));
            }
            for interval in intervals {
                parse_interval(interval).ok_or_else(|| {
                    format!(
                        "Intervalo \"{interval}\" de \"{day}\" inválido: use HH:MM-HH:MM com início antes do fim (até 24:00); um turno que passa da meia-noite vira dois intervalos."
                    )
                })?;
            }
        }
        for holiday in &self.holidays {
            parse_holiday(holiday).ok_or_else(|| {
                format!("Feriado \"{holiday}\" inválido: use AAAA-MM-DD ou MM-DD (todo ano).")
            })?;
        }
        Ok(())
    }

    /// Whether the queue is open at the instant `unix_ms`. An unknown time zone counts as open:
    /// validation refuses it, and a customer is better served by a person than by a wrong "closed".
    pub fn is_open_at(&self, unix_ms: i64) -> bool {
        let (Ok(tz), Ok(ts)) = (
            TimeZone::get(&self.time_zone),
            Timestamp::from_millisecond(unix_ms),
        ) else {
            return true;
        };
        let local = ts.to_zoned(tz);
        let date = local.date();
        let holiday = self
            .holidays
            .iter()
            .filter_map(|h| parse_holiday(h))
            .any(|(y, m, d)| {
                y.is_none_or(|y| y == date.year()) && m == date.month() && d == date.day()
            });
        if holiday {
            return false;
        }
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        self.weekly
            .iter()
            .filter(|(day, _)| weekday_of(day) == Some(date.weekday()))
            .flat_map(|(_, intervals)| intervals.iter().filter_map(|i| parse_interval(i)))
            .any(|(start, end)| start <= minute && minute < end)
    }
}

/// Whether a queue with this stored schedule is open now (`None`: always open).
pub fn queue_open(business_hours: Option<&str>, unix_ms: i64) -> bool {
    let Some(text) = business_hours.filter(|t| !t.trim().is_empty()) else {
        return true;
    };
    match serde_json::from_str::<BusinessHours>(text) {
        Ok(hours) => hours.is_open_at(unix_ms),
        Err(e) => {
            tracing::warn!(error = %e, "queue has unreadable business hours; treating it as open");
            true
        }
    }
}

fn weekday_of(day: &str) -> Option<Weekday> {
    let day = day.trim().to_ascii_lowercase();
    DAYS.iter()
        .find(|(en, pt, _)| day == *en || day == *pt)
        .map(|(_, _, w)| *w)
}

/// `"08:00-18:00"` → minutes since midnight `(480, 1080)`; the end may be `24:00`.
fn parse_interval(interval: &str) -> Option<(i32, i32)> {
    let (start, end) = interval.split_once('-')?;
    let minutes = |t: &str| -> Option<i32> {
        let (h, m) = t.trim().split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        let total = h * 60 + m;
        (m < 60 && (0..=24 * 60).contains(&total)).then_some(total)
    };
    let (start, end) = (minutes(start)?, minutes(end)?);
    (start < end).then_some((start, end))
}

/// `(year, month, day)`; the year is `None` for a yearly `MM-DD` holiday.
fn parse_holiday(holiday: &str) -> Option<(Option<i16>, i8, i8)> {
    let parts: Vec<&str> = holiday.trim().split('-').collect();
    let (year, month, day) = match parts.as_slice() {
        [y, m, d] if y.len() == 4 => (Some(y.parse::<i16>().ok()?), *m, *d),
        [m, d] => (None, *m, *d),
        _ => return None,
    };
    let (month, day): (i8, i8) = (month.parse().ok()?, day.parse().ok()?);
    // 2024 is a leap year, so 02-29 is a valid yearly holiday.
    jiff::civil::Date::new(year.unwrap_or(2024), month, day).ok()?;
    Some((year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(iso: &str) -> i64 {
        iso.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn weekdays_in_sao_paulo() {
        let h = BusinessHours::weekdays("08:00-18:00");
        // 2026-11-25 is a Wednesday; São Paulo is UTC-3.
        assert!(h.is_open_at(at("2026-11-25T11:00:00Z")), "08:00 local");
        assert!(!h.is_open_at(at("2026-11-25T10:59:59Z")), "07:59 local");
        assert!(h.is_open_at(at("2026-11-25T20:59:00Z")), "17:59 local");
        assert!(
            !h.is_open_at(at("2026-11-25T21:00:00Z")),
            "18:00 local closes"
        );
        assert!(!h.is_open_at(at("2026-11-28T15:00:00Z")), "Saturday");
    }

    #[test]
    fn always_open_and_holidays() {
        let mut h = BusinessHours::always();
        assert!(
            h.is_open_at(at("2026-11-29T02:59:00Z")),
            "Saturday 23:59 local"
        );
        h.holidays = vec!["12-25".into(), "2026-11-20".into()];
        assert!(!h.is_open_at(at("2026-12-25T15:00:00Z")));
        assert!(!h.is_open_at(at("2027-12-25T15:00:00Z")), "yearly");
        assert!(!h.is_open_at(at("2026-11-20T15:00:00Z")));
        assert!(
            h.is_open_at(at("2027-11-20T15:00:00Z")),
            "dated holidays are one year only"
        );
        assert_eq!(h.validate(), Ok(()));
    }

    #[test]
    fn no_schedule_is_open_and_empty_week_is_closed() {
        assert!(queue_open(None, at("2026-11-25T15:00:00Z")));
        let closed = serde_json::json!({"weekly": {}}).to_string();
        assert!(!queue_open(Some(&closed), at("2026-11-25T15:00:00Z")));
    }

    #[test]
    fn validation_messages() {
        let bad = |v: serde_json::Value| BusinessHours::parse(&v).unwrap_err();
        assert!(
            bad(serde_json::json!({"weekly": {"monday": ["08:00-18:00"]}}))
                .contains("Dia da semana")
        );
        assert!(
            bad(serde_json::json!({"weekly": {"mon": ["18:00-08:00"]}})).contains("meia-noite")
        );
        assert!(bad(serde_json::json!({"weekly": {"mon": ["8-18"]}})).contains("HH:MM"));
        assert!(bad(serde_json::json!({"time_zone": "Mars/Olympus"})).contains("Fuso"));
        assert!(bad(serde_json::json!({"holidays": ["2026-02-30"]})).contains("Feriado"));
        assert!(bad(serde_json::json!({"weekly": {}, "extra": 1})).contains("inválido"));
        let ok = serde_json::json!({"weekly": {"seg": ["08:00-12:00", "13:00-24:00"]}, "holidays": ["02-29"]});
        assert!(BusinessHours::parse(&ok).is_ok());
    }
}
