//! What one broadcast recipient gets: the template filled with their variables (checked against
//! the template first), as the conversation shows it and as the outbox stores it; and where their
//! reply goes.

use std::collections::BTreeMap;

use domain::template::{self, MediaValue, Rendered, TemplateDefinition, Values};
use serde::{Deserialize, Serialize};
use store::reply_routes::RouteTarget;
use whatsapp::send::OutboundContent;

/// A recipient's variables as stored: `{"header": {...}, "body": {...}, "buttons": {"0": ...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientVariables {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub body: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub buttons: BTreeMap<usize, String>,
}

impl RecipientVariables {
    pub fn values(&self, header_media: Option<&MediaValue>) -> Values {
        Values {
            header: self.header.clone(),
            header_media: header_media.cloned(),
            body: self.body.clone(),
            buttons: self.buttons.clone(),
        }
    }
}

/// One recipient's message.
#[derive(Debug, Clone)]
pub struct Composed {
    pub rendered: Rendered,
    /// The text stored on the message (what lists and bubbles show).
    pub body: String,
    /// `whatsapp::send::OutboundContent::Template` as JSON.
    pub content_json: String,
}

/// Fills the template for one recipient; `Err` with the pt-BR reason when the values do not fit.
pub fn compose(
    def: &TemplateDefinition,
    header_media: Option<&MediaValue>,
    variables: &RecipientVariables,
) -> Result<Composed, String> {
    let values = variables.values(header_media);
    let problems = template::check_values(def, &values);
    if let Some(p) = problems.first() {
        return Err(p.message_pt.clone());
    }
    let rendered = template::render(def, &values);
    let content = OutboundContent::Template {
        name: def.name.clone(),
        language: def.language.clone(),
        components: template::send_components(def, &values),
    };
    let content_json = serde_json::to_string(&content).map_err(|e| e.to_string())?;
    Ok(Composed {
        body: rendered_text(&rendered),
        rendered,
        content_json,
    })
}

/// Header, body and footer as one text, the way the customer reads them.
pub fn rendered_text(r: &Rendered) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if let Some(h) = r.header.as_deref().filter(|h| !h.is_empty()) {
        parts.push(h);
    }
    parts.push(&r.body);
    if let Some(f) = r.footer.as_deref().filter(|f| !f.is_empty()) {
        parts.push(f);
    }
    parts.join("\n\n")
}

/// Where the replies to a broadcast go (stored as JSON on the broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum ReplySpec {
    /// The channel's HSM response queue, else the broadcast's queue.
    #[default]
    #[serde(rename = "channel", alias = "channel_default")]
    ChannelDefault,
    Queue {
        queue_id: Option<i64>,
    },
    Agent {
        agent_id: i64,
        fallback_queue_id: Option<i64>,
    },
    /// The usual path: the bot (the reply is still counted as the broadcast's).
    #[serde(alias = "none")]
    Bot,
}

impl ReplySpec {
    pub fn parse(json: Option<&str>) -> Result<ReplySpec, String> {
        match json {
            None => Ok(ReplySpec::ChannelDefault),
            Some(j) => serde_json::from_str(j).map_err(|e| e.to_string()),
        }
    }

    /// The route each message records; `hsm_queue_id` is the channel's HSM response queue.
    pub fn target(
        self,
        hsm_queue_id: Option<i64>,
        broadcast_queue_id: Option<i64>,
    ) -> Option<RouteTarget> {
        match self {
            ReplySpec::ChannelDefault => Some(RouteTarget::Queue {
                queue_id: hsm_queue_id.or(broadcast_queue_id),
            }),
            ReplySpec::Queue { queue_id } => Some(RouteTarget::Queue { queue_id }),
            ReplySpec::Agent {
                agent_id,
                fallback_queue_id,
            } => Some(RouteTarget::Agent {
                agent_id,
                fallback_queue_id,
            }),
            ReplySpec::Bot => Some(RouteTarget::Bot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_specs_read_and_resolve() {
        assert_eq!(ReplySpec::parse(None), Ok(ReplySpec::ChannelDefault));
        let agent = ReplySpec::parse(Some(r#"{"target":"agent","agent_id":4}"#)).unwrap();
        assert_eq!(
            agent.target(Some(1), Some(2)),
            Some(RouteTarget::Agent {
                agent_id: 4,
                fallback_queue_id: None
            })
        );
        assert_eq!(
            ReplySpec::ChannelDefault.target(None, Some(2)),
            Some(RouteTarget::Queue { queue_id: Some(2) })
        );
        assert_eq!(ReplySpec::Bot.target(Some(1), None), Some(RouteTarget::Bot));
        // One vocabulary with the single send's reply route; the old names still read.
        assert_eq!(
            ReplySpec::parse(Some(r#"{"target":"channel_default"}"#)),
            ReplySpec::parse(Some(r#"{"target":"channel"}"#))
        );
        assert_eq!(
            ReplySpec::parse(Some(r#"{"target":"none"}"#)),
            Ok(ReplySpec::Bot)
        );
        assert!(ReplySpec::parse(Some(r#"{"target":"everyone"}"#)).is_err());
    }

    #[test]
    fn recipient_variables_round_trip() {
        let v: RecipientVariables =
            serde_json::from_str(r#"{"body":{"1":"Ana"},"buttons":{"0":"abc"}}"#).unwrap();
        assert_eq!(v.body["1"], "Ana");
        assert_eq!(v.buttons[&0], "abc");
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"body":{"1":"Ana"},"buttons":{"0":"abc"}}"#
        );
    }
}
