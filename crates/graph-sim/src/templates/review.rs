//! What Meta does to a template after it is submitted: review (approve / reject with reason and
//! recommendation), quality (pause, disable, reinstate, quality score) and re-categorisation;
//! each change posts the matching signed webhook (`message_template_status_update`,
//! `message_template_quality_update`, `template_category_update`) to the webhook URL, in the
//! `whatsapp_business_account` envelope with `entry.id` = WABA id and `entry.time` in unix seconds.
//!
//! Meta's OpenAPI document has no example of these three webhooks; the shapes follow Meta's
//! webhook reference (`message_template_id` is a JSON number).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Template;
use crate::customer::WebhookBuilder;
use crate::{GraphSim, SimError, ids};

/// Decides templates waiting for review by itself, after a delay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoReview {
    /// The outcome: APPROVED or REJECTED.
    pub status: String,
    #[serde(with = "millis")]
    pub after: Duration,
    /// Rejection reason (INVALID_FORMAT, PROMOTIONAL...), for REJECTED.
    #[serde(default)]
    pub reason: Option<String>,
}

impl AutoReview {
    pub fn approve_after(after: Duration) -> AutoReview {
        AutoReview {
            status: "APPROVED".to_owned(),
            after,
            reason: None,
        }
    }

    pub fn reject_after(after: Duration, reason: &str) -> AutoReview {
        AutoReview {
            status: "REJECTED".to_owned(),
            after,
            reason: Some(reason.to_owned()),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// One change Meta makes to a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChange {
    /// A new status with the webhook's details. REINSTATED is reported as such and leaves the
    /// template APPROVED.
    Status {
        status: String,
        /// The webhook's `reason` (rejections: INVALID_FORMAT, PROMOTIONAL, ...).
        reason: Option<String>,
        /// Rejections: `rejection_info.recommendation`.
        recommendation: Option<String>,
        /// Pauses and reinstatements: `other_info.description`.
        description: Option<String>,
    },
    /// GREEN, YELLOW, RED or UNKNOWN.
    Quality(String),
    /// MARKETING, UTILITY or AUTHENTICATION.
    Category(String),
}

impl TemplateChange {
    pub fn status(status: &str) -> TemplateChange {
        TemplateChange::Status {
            status: status.to_ascii_uppercase(),
            reason: None,
            recommendation: None,
            description: None,
        }
    }
}

fn template_id_json(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

fn envelope(waba: &str, field: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": waba,
            "time": ids::unix_now().as_secs(),
            "changes": [{"value": value, "field": field}],
        }],
    })
}

fn default_rejection_text(reason: &str) -> &'static str {
    match reason {
        "PROMOTIONAL" => "The template was rejected because its content is promotional.",
        "INCORRECT_CATEGORY" => "The content doesn't match the selected category.",
        "ABUSIVE_CONTENT" => "The template contains content that violates WhatsApp's policies.",
        "SCAM" => "The template was rejected as a possible scam.",
        "TAG_CONTENT_MISMATCH" => "The content doesn't match the template's tag.",
        _ => "The template's format is not valid.",
    }
}

impl WebhookBuilder {
    /// A `message_template_status_update` with every detail Meta may add: `rejection_info` for
    /// REJECTED, `other_info` for PAUSED and REINSTATED, `disable_info` for DISABLED.
    pub fn template_status_event(&self, t: &Template, change: &TemplateChange) -> Value {
        let TemplateChange::Status {
            status,
            reason,
            recommendation,
            description,
        } = change
        else {
            return Value::Null;
        };
        let mut v = Map::new();
        v.insert("event".into(), json!(status));
        v.insert("message_template_id".into(), template_id_json(&t.id));
        v.insert("message_template_name".into(), json!(t.name));
        v.insert("message_template_language".into(), json!(t.language));
        v.insert("message_template_category".into(), json!(t.category));
        let reason_code = reason.clone().unwrap_or_else(|| {
            if status == "REJECTED" {
                "INVALID_FORMAT".to_owned()
            } else {
                "NONE".to_owned()
            }
        });
        v.insert("reason".into(), json!(reason_code));
        match status.as_str() {
            "REJECTED" => {
                v.insert(
                    "rejection_info".into(),
                    json!({
                        "reason": default_rejection_text(&reason_code),
                        "recommendation": recommendation.clone().unwrap_or_else(||
                            "Review Meta's template guidelines, edit the template and submit it again.".to_owned()),
                    }),
                );
            }
            "PAUSED" => {
                v.insert("other_info".into(), json!({
                    "title": "FIRST_PAUSE",
                    "description": description.clone().unwrap_or_else(||
                        "Your WhatsApp message template has been paused for 3 hours because of issues with your message template quality.".to_owned()),
                }));
            }
            "REINSTATED" => {
                v.insert(
                    "other_info".into(),
                    json!({
                        "title": "UNPAUSE",
                        "description": description.clone().unwrap_or_else(||
                            "Your WhatsApp message template is active again.".to_owned()),
                    }),
                );
            }
            "DISABLED" => {
                v.insert(
                    "disable_info".into(),
                    json!({"disable_date": ids::unix_now().as_secs()}),
                );
            }
            _ => {}
        }
        envelope(
            &self.waba_id,
            "message_template_status_update",
            Value::Object(v),
        )
    }

    /// A `message_template_quality_update`.
    pub fn template_quality_update(&self, t: &Template, previous: &str, new: &str) -> Value {
        envelope(
            &self.waba_id,
            "message_template_quality_update",
            json!({
                "previous_quality_score": previous,
                "new_quality_score": new,
                "message_template_id": template_id_json(&t.id),
                "message_template_name": t.name,
                "message_template_language": t.language,
            }),
        )
    }

    /// A `template_category_update`.
    pub fn template_category_update(&self, t: &Template, previous: &str, new: &str) -> Value {
        envelope(
            &self.waba_id,
            "template_category_update",
            json!({
                "message_template_id": template_id_json(&t.id),
                "message_template_name": t.name,
                "message_template_language": t.language,
                "previous_category": previous,
                "new_category": new,
            }),
        )
    }
}

/// Applies the change and posts its webhook; returns the receiver's answer, if posted.
pub(crate) async fn change(
    sim: &GraphSim,
    template_id: &str,
    change: TemplateChange,
) -> Result<Option<(u16, String)>, SimError> {
    let outcome = sim.shared.update(|s| {
        let t = s.templates.iter_mut().find(|t| t.id == template_id)?;
        let before = t.clone();
        match &change {
            TemplateChange::Status { status, reason, .. } => {
                t.status = if status == "REINSTATED" {
                    "APPROVED".to_owned()
                } else {
                    status.clone()
                };
                t.rejected_reason = if status == "REJECTED" {
                    reason
                        .clone()
                        .unwrap_or_else(|| "INVALID_FORMAT".to_owned())
                } else {
                    "NONE".to_owned()
                };
                if t.status == "APPROVED" && t.quality_score == "UNKNOWN" {
                    t.quality_score = "GREEN".to_owned();
                }
            }
            TemplateChange::Quality(q) => t.quality_score.clone_from(q),
            TemplateChange::Category(c) => {
                t.previous_category = Some(t.category.clone());
                t.category.clone_from(c);
            }
        }
        Some((before, t.clone()))
    });
    let Some((before, after)) = outcome else {
        return Err(SimError::Invalid(format!("unknown template {template_id}")));
    };
    let builder = WebhookBuilder::new(&after.waba_id, "", "");
    let payload = match &change {
        TemplateChange::Status { .. } => builder.template_status_event(&after, &change),
        TemplateChange::Quality(q) => {
            builder.template_quality_update(&after, &before.quality_score, q)
        }
        TemplateChange::Category(c) => {
            builder.template_category_update(&after, &before.category, c)
        }
    };
    sim.shared
        .update(|s| s.template_webhooks.push(payload.clone()));
    if sim.webhook_url().is_none() {
        return Ok(None);
    }
    Ok(Some(sim.post_to_webhook(&payload).await?))
}

/// Starts the automatic review of a PENDING template, if one is configured.
pub(crate) fn schedule(sim: &GraphSim, template_id: &str, revision: u64) {
    let (review, pending) = {
        let st = sim.shared.lock();
        let pending = st
            .templates
            .iter()
            .any(|t| t.id == template_id && t.status == "PENDING");
        (st.review.clone(), pending)
    };
    let Some(review) = review.filter(|_| pending) else {
        return;
    };
    let sim = sim.clone();
    let id = template_id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(review.after).await;
        let still = sim
            .shared
            .lock()
            .templates
            .iter()
            .any(|t| t.id == id && t.status == "PENDING" && t.revision == revision);
        if !still {
            return;
        }
        let c = TemplateChange::Status {
            status: review.status.to_ascii_uppercase(),
            reason: review.reason.clone(),
            recommendation: None,
            description: None,
        };
        if let Err(e) = change(&sim, &id, c).await {
            tracing::warn!(error = %e, template_id = %id, "graph-sim: automatic review webhook failed");
        }
    });
}
