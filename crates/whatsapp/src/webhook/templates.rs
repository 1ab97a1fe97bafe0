//! The template webhooks of a WhatsApp Business Account: `message_template_status_update`,
//! `message_template_quality_update` and `template_category_update`. Their `entry.id` is the WABA
//! id (there is no phone number in them) and `message_template_id` is a JSON number.

use serde::Serialize;
use serde_json::Value;

use super::{Change, Envelope};
use crate::lenient;

pub const STATUS_UPDATE: &str = "message_template_status_update";
pub const QUALITY_UPDATE: &str = "message_template_quality_update";
pub const CATEGORY_UPDATE: &str = "template_category_update";

/// What a template webhook says happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TemplateEventKind {
    /// `event`: APPROVED, REJECTED, PENDING, PAUSED, DISABLED, FLAGGED, REINSTATED,
    /// PENDING_DELETION, ARCHIVED, UNARCHIVED, LOCKED, UNLOCKED, IN_APPEAL...
    Status {
        event: String,
        /// `reason` (NONE is `None`): INVALID_FORMAT, PROMOTIONAL, INCORRECT_CATEGORY...
        reason: Option<String>,
        /// `rejection_info.reason`, Meta's sentence.
        rejection_text: Option<String>,
        /// `rejection_info.recommendation`.
        recommendation: Option<String>,
        /// `message_template_category`.
        category: Option<String>,
        /// `other_info.title` / `other_info.description` (pauses, reinstatements).
        info_title: Option<String>,
        info_description: Option<String>,
    },
    Quality {
        previous: Option<String>,
        new: String,
    },
    Category {
        previous: Option<String>,
        new: String,
    },
}

/// One template webhook change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateEvent {
    /// `entry.id`.
    pub waba_id: String,
    /// `entry.time` (unix seconds), when Meta sent it.
    pub time: Option<i64>,
    /// `message_template_id`, as decimal digits.
    pub template_id: String,
    pub name: Option<String>,
    pub language: Option<String>,
    pub kind: TemplateEventKind,
}

impl Change {
    /// `Some(..)` for the three template fields, when the value names a template.
    pub fn template_event(&self, waba_id: &str, time: Option<i64>) -> Option<TemplateEvent> {
        let v = &self.value;
        let text = |k: &str| {
            v.get(k)
                .and_then(lenient::to_string)
                .filter(|s| !s.is_empty())
        };
        let kind = match self.field.as_str() {
            STATUS_UPDATE => TemplateEventKind::Status {
                event: text("event")?.to_ascii_uppercase(),
                reason: text("reason").filter(|r| r != "NONE"),
                rejection_text: v
                    .pointer("/rejection_info/reason")
                    .and_then(lenient::to_string),
                recommendation: v
                    .pointer("/rejection_info/recommendation")
                    .and_then(lenient::to_string),
                category: text("message_template_category"),
                info_title: v.pointer("/other_info/title").and_then(lenient::to_string),
                info_description: v
                    .pointer("/other_info/description")
                    .and_then(lenient::to_string),
            },
            QUALITY_UPDATE => TemplateEventKind::Quality {
                previous: text("previous_quality_score"),
                new: text("new_quality_score")?,
            },
            CATEGORY_UPDATE => TemplateEventKind::Category {
                previous: text("previous_category"),
                new: text("new_category")?,
            },
            _ => return None,
        };
        Some(TemplateEvent {
            waba_id: waba_id.to_owned(),
            time,
            template_id: v.get("message_template_id").and_then(id_digits)?,
            name: text("message_template_name"),
            language: text("message_template_language"),
            kind,
        })
    }
}

impl Envelope {
    /// Every template event of the envelope, in order.
    pub fn template_events(&self) -> Vec<TemplateEvent> {
        self.entry
            .iter()
            .flat_map(|e| {
                e.changes
                    .iter()
                    .filter_map(|c| c.template_event(&e.id, e.time))
            })
            .collect()
    }
}

/// Whether a change's field is one of the template webhooks.
pub fn is_template_field(field: &str) -> bool {
    matches!(field, STATUS_UPDATE | QUALITY_UPDATE | CATEGORY_UPDATE)
}

/// A template id as Meta sends it: a JSON number (sometimes a string); never a float.
fn id_digits(v: &Value) -> Option<String> {
    let s = match v {
        Value::Number(n) => n.as_u64().map(|n| n.to_string())?,
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::parse_envelope;

    #[test]
    fn status_update_with_rejection() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","time":1700000000,
            "changes":[{"field":"message_template_status_update","value":{"event":"REJECTED",
            "message_template_id":1689556908129832,"message_template_name":"pedido","message_template_language":"pt_BR",
            "reason":"PROMOTIONAL","message_template_category":"UTILITY",
            "rejection_info":{"reason":"Promotional content","recommendation":"Use MARKETING"}}}]}]}"#;
        let events = parse_envelope(body).unwrap().template_events();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.waba_id, "102290129340398");
        assert_eq!(e.time, Some(1_700_000_000));
        assert_eq!(e.template_id, "1689556908129832");
        assert_eq!(e.language.as_deref(), Some("pt_BR"));
        let TemplateEventKind::Status {
            event,
            reason,
            recommendation,
            category,
            ..
        } = &e.kind
        else {
            panic!("status expected");
        };
        assert_eq!(event, "REJECTED");
        assert_eq!(reason.as_deref(), Some("PROMOTIONAL"));
        assert_eq!(recommendation.as_deref(), Some("Use MARKETING"));
        assert_eq!(category.as_deref(), Some("UTILITY"));
    }

    #[test]
    fn quality_and_category_updates() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","time":5,"changes":[
            {"field":"message_template_quality_update","value":{"previous_quality_score":"GREEN","new_quality_score":"RED",
             "message_template_id":"42","message_template_name":"a","message_template_language":"pt_BR"}},
            {"field":"template_category_update","value":{"previous_category":"UTILITY","new_category":"MARKETING",
             "message_template_id":42,"message_template_name":"a","message_template_language":"pt_BR"}},
            {"field":"messages","value":{}},
            {"field":"template_category_update","value":{"new_category":"MARKETING","message_template_id":1.5}}]}]}"#;
        let events = parse_envelope(body).unwrap().template_events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            events[0].kind,
            TemplateEventKind::Quality {
                previous: Some("GREEN".into()),
                new: "RED".into()
            }
        );
        assert_eq!(
            events[1].kind,
            TemplateEventKind::Category {
                previous: Some("UTILITY".into()),
                new: "MARKETING".into()
            }
        );
        assert!(is_template_field("template_category_update"));
        assert!(!is_template_field("messages"));
    }
}
