//! The typed payload of an inbound message, keyed by its `type`.

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::lenient;

/// What an inbound message carries.
///
/// Exhaustive over what Meta documents; anything else, or a known type whose payload
/// is malformed, becomes [`Content::Unknown`], never an error: the original JSON stays
/// in [`InboundMessage::raw`](super::InboundMessage::raw).
///
/// Serde uses Meta's own shape (`{"type":"image","image":{...}}`), so stored content
/// can be decoded again by the same tolerant rules.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text {
        body: String,
    },
    Image(Media),
    Video(Media),
    Audio(Audio),
    Document(Document),
    Sticker(Sticker),
    Location(Location),
    /// vCards as Meta sends them (`name`, `phones`, `emails`, ...).
    Contacts(Vec<Value>),
    Interactive(Interactive),
    /// A tap on a template's quick-reply button.
    Button(Button),
    Reaction(Reaction),
    Order(Order),
    System(System),
    /// The user opened the chat for the first time.
    RequestWelcome,
    /// Type `"unsupported"` (or the legacy `"unknown"`); the reason is in
    /// [`InboundMessage::errors`](super::InboundMessage::errors).
    Unsupported,
    /// A type we do not know yet, or a known type with a malformed payload.
    Unknown {
        kind: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    #[serde(deserialize_with = "lenient::required_string")]
    pub id: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub mime_type: Option<String>,
    /// Base64 in webhooks (hex in `GET /{media-id}`): treat as opaque.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sha256: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub caption: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audio {
    #[serde(deserialize_with = "lenient::required_string")]
    pub id: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub mime_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sha256: Option<String>,
    /// A recorded voice note (push-to-talk) rather than an attached audio file.
    #[serde(default, deserialize_with = "lenient::bool")]
    pub voice: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    #[serde(deserialize_with = "lenient::required_string")]
    pub id: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub mime_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sha256: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub caption: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub filename: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sticker {
    #[serde(deserialize_with = "lenient::required_string")]
    pub id: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub mime_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sha256: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub animated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(deserialize_with = "lenient::required_f64")]
    pub latitude: f64,
    #[serde(deserialize_with = "lenient::required_f64")]
    pub longitude: f64,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub address: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
}

/// The user's answer to an interactive message we sent.
///
/// Serde uses Meta's shape (`{"type":"button_reply","button_reply":{...}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interactive {
    ButtonReply {
        id: String,
        title: String,
    },
    ListReply {
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A WhatsApp Flow was completed; `response_json` is the flow's answer as a JSON string.
    NfmReply {
        name: Option<String>,
        body: Option<String>,
        response_json: Option<String>,
    },
    /// Another or a malformed interactive reply; the message's `raw` JSON has it all.
    Other {
        kind: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    /// The payload set on the template button, which maps the tap back to our menu.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<String>,
    #[serde(deserialize_with = "lenient::required_string")]
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The wamid of the message reacted to.
    #[serde(deserialize_with = "lenient::required_string")]
    pub message_id: String,
    /// `None` when the user removed the reaction (Meta sends an empty or absent emoji).
    #[serde(
        default,
        deserialize_with = "lenient::opt_nonempty_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub emoji: Option<String>,
}

impl Reaction {
    pub fn is_removal(&self) -> bool {
        self.emoji.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub catalog_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub text: Option<String>,
    /// `{product_retailer_id, quantity, item_price, currency}` as Meta sends them.
    #[serde(default, deserialize_with = "lenient::vec_of_values")]
    pub product_items: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub body: Option<String>,
    /// `user_changed_number`, `customer_identity_changed`, ...
    #[serde(
        rename = "type",
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<String>,
    /// For `user_changed_number`, the user's new WhatsApp id.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub wa_id: Option<String>,
}

impl Content {
    /// Reads the content of one message object (the element of `value.messages[]`).
    pub fn from_message(message: &Map<String, Value>) -> Content {
        let kind = message
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let payload = message.get(kind);
        let parsed = match kind {
            "text" => payload
                .and_then(|p| p.get("body"))
                .and_then(lenient::to_string)
                .map(|body| Content::Text { body }),
            "image" => decode(payload).map(Content::Image),
            "video" => decode(payload).map(Content::Video),
            "audio" => decode(payload).map(Content::Audio),
            "document" => decode(payload).map(Content::Document),
            "sticker" => decode(payload).map(Content::Sticker),
            "location" => decode(payload).map(Content::Location),
            "contacts" => payload
                .and_then(Value::as_array)
                .map(|cards| Content::Contacts(cards.clone())),
            "interactive" => payload
                .filter(|p| p.is_object())
                .map(|p| Content::Interactive(Interactive::from_wire(p))),
            "button" => decode(payload).map(Content::Button),
            "reaction" => decode(payload).map(Content::Reaction),
            "order" => decode(payload).map(Content::Order),
            "system" => decode(payload).map(Content::System),
            "request_welcome" => Some(Content::RequestWelcome),
            "unsupported" | "unknown" => Some(Content::Unsupported),
            _ => None,
        };
        parsed.unwrap_or_else(|| Content::Unknown {
            kind: kind.to_owned(),
        })
    }

    /// Meta's `type` string; for [`Content::Unknown`] the original one (possibly empty).
    pub fn kind(&self) -> &str {
        match self {
            Content::Text { .. } => "text",
            Content::Image(_) => "image",
            Content::Video(_) => "video",
            Content::Audio(_) => "audio",
            Content::Document(_) => "document",
            Content::Sticker(_) => "sticker",
            Content::Location(_) => "location",
            Content::Contacts(_) => "contacts",
            Content::Interactive(_) => "interactive",
            Content::Button(_) => "button",
            Content::Reaction(_) => "reaction",
            Content::Order(_) => "order",
            Content::System(_) => "system",
            Content::RequestWelcome => "request_welcome",
            Content::Unsupported => "unsupported",
            Content::Unknown { kind } => kind,
        }
    }

    /// The media id to fetch with `GET /{media-id}`, for image/video/audio/document/sticker.
    pub fn media_id(&self) -> Option<&str> {
        match self {
            Content::Image(m) | Content::Video(m) => Some(&m.id),
            Content::Audio(a) => Some(&a.id),
            Content::Document(d) => Some(&d.id),
            Content::Sticker(s) => Some(&s.id),
            _ => None,
        }
    }

    pub fn mime_type(&self) -> Option<&str> {
        match self {
            Content::Image(m) | Content::Video(m) => m.mime_type.as_deref(),
            Content::Audio(a) => a.mime_type.as_deref(),
            Content::Document(d) => d.mime_type.as_deref(),
            Content::Sticker(s) => s.mime_type.as_deref(),
            _ => None,
        }
    }

    pub fn sha256(&self) -> Option<&str> {
        match self {
            Content::Image(m) | Content::Video(m) => m.sha256.as_deref(),
            Content::Audio(a) => a.sha256.as_deref(),
            Content::Document(d) => d.sha256.as_deref(),
            Content::Sticker(s) => s.sha256.as_deref(),
            _ => None,
        }
    }

    pub fn filename(&self) -> Option<&str> {
        match self {
            Content::Document(d) => d.filename.as_deref(),
            _ => None,
        }
    }

    pub fn caption(&self) -> Option<&str> {
        match self {
            Content::Image(m) | Content::Video(m) => m.caption.as_deref(),
            Content::Document(d) => d.caption.as_deref(),
            _ => None,
        }
    }

    /// A short human-readable text for conversation lists, notifications and the agent.
    /// `None` when there is nothing better to show than the kind itself (e.g. a voice note).
    pub fn preview_text(&self) -> Option<String> {
        let text = match self {
            Content::Text { body } => Some(body.clone()),
            Content::Image(m) | Content::Video(m) => m.caption.clone(),
            Content::Document(d) => d.caption.clone().or_else(|| d.filename.clone()),
            Content::Audio(_) | Content::Sticker(_) => None,
            Content::Location(l) => Some(format!(
                "📍 {}",
                l.name
                    .clone()
                    .or_else(|| l.address.clone())
                    .unwrap_or_else(|| format!("{}, {}", l.latitude, l.longitude))
            )),
            Content::Contacts(cards) => {
                let names: Vec<&str> = cards
                    .iter()
                    .filter_map(|c| c.pointer("/name/formatted_name")?.as_str())
                    .filter(|n| !n.is_empty())
                    .collect();
                (!names.is_empty()).then(|| format!("👤 {}", names.join(", ")))
            }
            Content::Interactive(i) => match i {
                Interactive::ButtonReply { title, .. } | Interactive::ListReply { title, .. } => {
                    Some(title.clone())
                }
                Interactive::NfmReply { body, .. } => body.clone(),
                Interactive::Other { .. } => None,
            },
            Content::Button(b) => Some(b.text.clone()),
            Content::Reaction(r) => r.emoji.clone(),
            Content::Order(o) => o.text.clone(),
            Content::System(s) => s.body.clone(),
            Content::RequestWelcome | Content::Unsupported | Content::Unknown { .. } => None,
        };
        text.filter(|t| !t.trim().is_empty())
    }
}

/// Known payloads are always JSON objects; see [`lenient::object_as`].
fn decode<T: DeserializeOwned>(payload: Option<&Value>) -> Option<T> {
    payload.and_then(lenient::object_as)
}

#[derive(Serialize)]
struct TextBody<'a> {
    body: &'a str,
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.kind())?;
        match self {
            Content::Text { body } => map.serialize_entry("text", &TextBody { body })?,
            Content::Image(m) => map.serialize_entry("image", m)?,
            Content::Video(m) => map.serialize_entry("video", m)?,
            Content::Audio(a) => map.serialize_entry("audio", a)?,
            Content::Document(d) => map.serialize_entry("document", d)?,
            Content::Sticker(s) => map.serialize_entry("sticker", s)?,
            Content::Location(l) => map.serialize_entry("location", l)?,
            Content::Contacts(c) => map.serialize_entry("contacts", c)?,
            Content::Interactive(i) => map.serialize_entry("interactive", i)?,
            Content::Button(b) => map.serialize_entry("button", b)?,
            Content::Reaction(r) => map.serialize_entry("reaction", r)?,
            Content::Order(o) => map.serialize_entry("order", o)?,
            Content::System(s) => map.serialize_entry("system", s)?,
            Content::RequestWelcome | Content::Unsupported | Content::Unknown { .. } => {}
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Object(message) => Content::from_message(&message),
            _ => Content::Unknown {
                kind: String::new(),
            },
        })
    }
}

impl Interactive {
    /// Reads the `interactive` object of an inbound message.
    pub fn from_wire(interactive: &Value) -> Interactive {
        let kind = interactive
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let reply = interactive.get(kind).filter(|r| r.is_object());
        let field = |name: &str| reply.and_then(|r| r.get(name)).and_then(lenient::to_string);
        let parsed = match kind {
            "button_reply" => field("id")
                .zip(field("title"))
                .map(|(id, title)| Interactive::ButtonReply { id, title }),
            "list_reply" => {
                field("id")
                    .zip(field("title"))
                    .map(|(id, title)| Interactive::ListReply {
                        id,
                        title,
                        description: field("description"),
                    })
            }
            "nfm_reply" => reply.map(|r| Interactive::NfmReply {
                name: field("name"),
                body: field("body"),
                // Meta sends a JSON string; a proxy that decoded it must not lose the answer.
                response_json: r.get("response_json").and_then(|v| match v {
                    Value::Object(_) | Value::Array(_) => Some(v.to_string()),
                    _ => lenient::to_string(v),
                }),
            }),
            _ => None,
        };
        parsed.unwrap_or_else(|| Interactive::Other {
            kind: kind.to_owned(),
        })
    }

    /// Meta's interactive `type`: `button_reply`, `list_reply`, `nfm_reply` or the original one.
    pub fn kind(&self) -> &str {
        match self {
            Interactive::ButtonReply { .. } => "button_reply",
            Interactive::ListReply { .. } => "list_reply",
            Interactive::NfmReply { .. } => "nfm_reply",
            Interactive::Other { kind } => kind,
        }
    }
}

impl Serialize for Interactive {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.kind())?;
        match self {
            Interactive::ButtonReply { id, title } => {
                map.serialize_entry(
                    "button_reply",
                    &serde_json::json!({ "id": id, "title": title }),
                )?;
            }
            Interactive::ListReply {
                id,
                title,
                description,
            } => {
                let mut reply = Map::new();
                reply.insert("id".into(), id.as_str().into());
                reply.insert("title".into(), title.as_str().into());
                if let Some(d) = description {
                    reply.insert("description".into(), d.as_str().into());
                }
                map.serialize_entry("list_reply", &reply)?;
            }
            Interactive::NfmReply {
                name,
                body,
                response_json,
            } => {
                let mut reply = Map::new();
                for (key, value) in [
                    ("name", name),
                    ("body", body),
                    ("response_json", response_json),
                ] {
                    if let Some(v) = value {
                        reply.insert(key.into(), v.as_str().into());
                    }
                }
                map.serialize_entry("nfm_reply", &reply)?;
            }
            Interactive::Other { .. } => {}
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Interactive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Interactive::from_wire(&Value::deserialize(deserializer)?))
    }
}
