//! Webhook payloads: the envelope Meta POSTs and the `messages` field inside it.
//!
//! Parsing is deliberately forgiving below the envelope. A webhook we reject is lost
//! for good once Meta stops retrying, while one we half-understand can still be stored
//! (every inbound message keeps its original JSON) and re-parsed later.
//!
//! Two JSON shapes exist for the types here: Meta's (what [`parse_envelope`],
//! [`Change::messages`] and [`InboundMessage::from_raw`] read) and this crate's serde
//! shape (what the server stores). They coincide except for [`InboundMessage`], whose
//! serde form holds the decoded `content` next to the verbatim `raw`.

mod content;
pub mod templates;

pub use content::{
    Audio, Button, Content, Document, Interactive, Location, Media, Order, Reaction, Sticker,
    System,
};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::lenient;

/// The only `object` Meta sends for WhatsApp Business Account webhooks.
pub const WHATSAPP_BUSINESS_ACCOUNT: &str = "whatsapp_business_account";

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("not a WhatsApp Business Account webhook: {0}")]
    NotAnEnvelope(String),
}

/// Parses the raw body of a webhook POST.
///
/// Fails when the body is not JSON, `object` is not `"whatsapp_business_account"`, or
/// there is no `entry` array. Below that level nothing fails: see [`Change::messages`].
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, ParseError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    let Value::Object(top) = &json else {
        return Err(ParseError::NotAnEnvelope(format!(
            "the body is {}, not an object",
            json_kind(&json)
        )));
    };
    match top.get("object") {
        Some(Value::String(object)) if object == WHATSAPP_BUSINESS_ACCOUNT => {}
        Some(Value::String(object)) => {
            return Err(ParseError::NotAnEnvelope(format!(
                "object is {:?}",
                truncate(object, 64)
            )));
        }
        Some(other) => {
            return Err(ParseError::NotAnEnvelope(format!(
                "object is {}, not a string",
                json_kind(other)
            )));
        }
        None => return Err(ParseError::NotAnEnvelope("no object field".into())),
    }
    match top.get("entry") {
        Some(Value::Array(_)) => {}
        Some(other) => {
            return Err(ParseError::NotAnEnvelope(format!(
                "entry is {}, not an array",
                json_kind(other)
            )));
        }
        None => return Err(ParseError::NotAnEnvelope("no entry array".into())),
    }
    serde_json::from_value(json).map_err(|e| ParseError::NotAnEnvelope(e.to_string()))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub object: String,
    #[serde(deserialize_with = "lenient::vec_of_objects")]
    pub entry: Vec<Entry>,
}

impl Envelope {
    /// Every `value.metadata.phone_number_id` found in any change, deduplicated, in
    /// order of appearance: what the server routes a delivery by.
    pub fn phone_number_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for change in self.entry.iter().flat_map(|e| &e.changes) {
            let id = change
                .value
                .pointer("/metadata/phone_number_id")
                .and_then(lenient::to_string);
            if let Some(id) = id
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The WhatsApp Business Account id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: String,
    /// Unix seconds; only some fields (e.g. template updates) carry it.
    #[serde(
        default,
        deserialize_with = "lenient::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::vec_of_objects")]
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `messages`, `message_template_status_update`, `account_update`, ...
    #[serde(default, deserialize_with = "lenient::string")]
    pub field: String,
    /// Kept as JSON because its shape depends on `field`.
    #[serde(default)]
    pub value: Value,
}

impl Change {
    /// `Some(..)` when `field == "messages"`.
    ///
    /// Never fails because of an unknown message type or an unknown, missing or
    /// malformed optional field; it fails only when `value` is not a JSON object.
    pub fn messages(&self) -> Option<Result<MessagesValue, serde_json::Error>> {
        (self.field == "messages").then(|| MessagesValue::from_wire(&self.value))
    }
}

/// The `value` of a `messages` change: inbound messages (with their senders'
/// `contacts`), status updates for messages we sent, or system-level `errors`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessagesValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<InboundMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Status>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<WaError>,
}

impl MessagesValue {
    /// Reads Meta's JSON. Elements that are not objects are dropped (they cannot be a
    /// message, status or contact); everything else is kept, with defaults for what is
    /// missing. Fails only when `value` is not an object.
    pub fn from_wire(value: &Value) -> Result<MessagesValue, serde_json::Error> {
        let Value::Object(obj) = value else {
            return Err(serde_json::Error::custom(format!(
                "a messages value must be an object, got {}",
                json_kind(value)
            )));
        };
        let objects = |key: &str| {
            obj.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|v| v.is_object())
        };
        Ok(MessagesValue {
            messaging_product: obj.get("messaging_product").and_then(lenient::to_string),
            metadata: obj
                .get("metadata")
                .and_then(lenient::object_as)
                .unwrap_or_default(),
            contacts: objects("contacts").filter_map(lenient::object_as).collect(),
            messages: objects("messages")
                .filter_map(|m| InboundMessage::from_raw(m.clone()))
                .collect(),
            statuses: objects("statuses").filter_map(lenient::object_as).collect(),
            errors: objects("errors").filter_map(WaError::from_wire).collect(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    #[serde(
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub display_phone_number: Option<String>,
    /// Our business phone number: the channel this change belongs to.
    #[serde(deserialize_with = "lenient::string")]
    pub phone_number_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Contact {
    /// The user's WhatsApp id (phone digits without '+').
    #[serde(
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub wa_id: Option<String>,
    /// Business-scoped user id, sent by newer API versions alongside or instead of `wa_id`.
    #[serde(
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_id: Option<String>,
    #[serde(
        deserialize_with = "lenient::opt_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub profile: Option<Profile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    #[serde(
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
}

/// One inbound message (`value.messages[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Sender's wa_id. Empty when Meta sent only a business-scoped id: see
    /// [`InboundMessage::from_user_id`].
    #[serde(default)]
    pub from: String,
    /// The wamid: the idempotency key for inbound messages.
    #[serde(default)]
    pub id: String,
    /// Unix seconds as Meta sends them (a string).
    #[serde(default)]
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// Click-to-WhatsApp ad or post that started the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<WaError>,
    /// Present with `system` messages of type `customer_identity_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Value>,
    pub content: Content,
    /// The original JSON of the message, kept verbatim for auditing and future re-parsing.
    #[serde(default)]
    pub raw: Value,
}

impl InboundMessage {
    /// Decodes one element of `value.messages[]` as Meta sent it; `None` only when it is
    /// not a JSON object. Also how stored `raw` JSON is re-parsed by newer code.
    pub fn from_raw(raw: Value) -> Option<InboundMessage> {
        let Value::Object(obj) = &raw else {
            return None;
        };
        let text = |key: &str| {
            obj.get(key)
                .and_then(lenient::to_string)
                .unwrap_or_default()
        };
        let non_null = |key: &str| obj.get(key).filter(|v| !v.is_null()).cloned();
        Some(InboundMessage {
            from: text("from"),
            id: text("id"),
            timestamp: text("timestamp"),
            context: obj.get("context").and_then(lenient::object_as),
            referral: non_null("referral"),
            errors: wire_errors(obj.get("errors")),
            identity: non_null("identity"),
            content: Content::from_message(obj),
            raw,
        })
    }

    pub fn timestamp_secs(&self) -> Option<i64> {
        self.timestamp.trim().parse().ok()
    }

    /// The business-scoped user id (`from_user_id`) newer API versions send next to, or
    /// instead of, `from`.
    pub fn from_user_id(&self) -> Option<&str> {
        self.raw.get("from_user_id").and_then(Value::as_str)
    }
}

fn wire_errors(errors: Option<&Value>) -> Vec<WaError> {
    errors
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(WaError::from_wire)
        .collect()
}

/// Reply, forward and product-enquiry information of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    /// For replies: our business number that sent the quoted message.
    #[serde(
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<String>,
    /// For replies: the wamid of the quoted message.
    #[serde(
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::bool")]
    pub forwarded: bool,
    #[serde(deserialize_with = "lenient::bool")]
    pub frequently_forwarded: bool,
    /// `{catalog_id, product_retailer_id}` when the user asked about a product.
    #[serde(
        deserialize_with = "lenient::opt_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub referred_product: Option<Value>,
}

/// A status update for a message we sent (`value.statuses[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The wamid of our message.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(default = "StatusKind::missing")]
    pub status: StatusKind,
    #[serde(default, deserialize_with = "lenient::string")]
    pub timestamp: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub recipient_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::vec_of_objects",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub errors: Vec<WaError>,
    /// Being phased out with per-message pricing: treat as optional data.
    #[serde(
        default,
        deserialize_with = "lenient::opt_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub conversation: Option<Value>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub pricing: Option<Value>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub biz_opaque_callback_data: Option<String>,
}

impl Status {
    pub fn timestamp_secs(&self) -> Option<i64> {
        self.timestamp.trim().parse().ok()
    }
}

/// Serialized as Meta's lowercase string; unknown strings are kept in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatusKind {
    Sent,
    Delivered,
    Read,
    Failed,
    Deleted,
    Other(String),
}

impl StatusKind {
    pub fn as_str(&self) -> &str {
        match self {
            StatusKind::Sent => "sent",
            StatusKind::Delivered => "delivered",
            StatusKind::Read => "read",
            StatusKind::Failed => "failed",
            StatusKind::Deleted => "deleted",
            StatusKind::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> StatusKind {
        match s {
            "sent" => StatusKind::Sent,
            "delivered" => StatusKind::Delivered,
            "read" => StatusKind::Read,
            "failed" => StatusKind::Failed,
            "deleted" => StatusKind::Deleted,
            other => StatusKind::Other(other.to_owned()),
        }
    }

    fn missing() -> StatusKind {
        StatusKind::Other(String::new())
    }
}

impl std::fmt::Display for StatusKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StatusKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StatusKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(lenient::to_string(&Value::deserialize(deserializer)?)
            .map_or_else(StatusKind::missing, |s| StatusKind::parse(&s)))
    }
}

/// An error Meta reports inside a webhook (on a status, a message, or the whole value).
///
/// Serializes flat (`details` at the top); deserializes from that or from Meta's shape
/// (`error_data.details`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaError {
    /// [`WaError::UNKNOWN_CODE`] when Meta sent no usable code.
    pub code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl WaError {
    /// Stands in for a missing or non-numeric code. Not 0, which means "invalid token".
    pub const UNKNOWN_CODE: i64 = -1;

    /// Reads one error object, accepting `code` as a number or a numeric string.
    pub fn from_wire(error: &Value) -> Option<WaError> {
        let obj: &Map<String, Value> = error.as_object()?;
        let text = |v: Option<&Value>| v.and_then(lenient::to_string);
        Some(WaError {
            code: obj
                .get("code")
                .and_then(lenient::to_i64)
                .unwrap_or(Self::UNKNOWN_CODE),
            title: text(obj.get("title")),
            message: text(obj.get("message")),
            details: text(obj.get("details"))
                .or_else(|| text(error.pointer("/error_data/details"))),
        })
    }
}

impl<'de> Deserialize<'de> for WaError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WaError::from_wire(&Value::deserialize(deserializer)?)
            .ok_or_else(|| D::Error::custom("an error must be a JSON object"))
    }
}

#[cfg(test)]
mod tests;
