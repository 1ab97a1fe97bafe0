//! Outbound message bodies for `POST /{phone-number-id}/messages`.
//!
//! [`OutboundContent`] is also what the server keeps in its outbox, so its serde form
//! (internally tagged by `type`) is a storage format; [`OutboundMessage::to_json`] is the
//! separate, exact wire form Meta expects.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Meta's documented limits, in characters (Unicode scalar values).
pub mod limits {
    pub const TEXT_BODY: usize = 4096;
    pub const CAPTION: usize = 1024;
    pub const BUTTONS_BODY: usize = 1024;
    pub const LIST_BODY: usize = 4096;
    pub const HEADER_TEXT: usize = 60;
    pub const FOOTER_TEXT: usize = 60;
    pub const MAX_BUTTONS: usize = 3;
    pub const BUTTON_TITLE: usize = 20;
    pub const BUTTON_ID: usize = 256;
    pub const LIST_BUTTON_LABEL: usize = 20;
    pub const MAX_SECTIONS: usize = 10;
    pub const MAX_LIST_ROWS: usize = 10;
    pub const SECTION_TITLE: usize = 24;
    pub const ROW_TITLE: usize = 24;
    pub const ROW_DESCRIPTION: usize = 72;
    pub const ROW_ID: usize = 200;
    pub const TEMPLATE_NAME: usize = 512;
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The user's wa_id or E.164 number ('+' optional).
    pub to: String,
    /// wamid of the message to quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub content: OutboundContent,
}

impl OutboundMessage {
    /// The request body for `POST /{phone-number-id}/messages`, exactly as Meta documents it.
    pub fn to_json(&self) -> Value {
        let kind = self.content.kind();
        let mut body = Map::new();
        body.insert("messaging_product".into(), "whatsapp".into());
        body.insert("recipient_type".into(), "individual".into());
        body.insert("to".into(), self.to.as_str().into());
        body.insert("type".into(), kind.into());
        body.insert(kind.into(), self.content.payload_json());
        if let Some(id) = &self.reply_to {
            body.insert("context".into(), json!({ "message_id": id }));
        }
        Value::Object(body)
    }

    /// [`OutboundContent::validate`] plus the recipient and the quoted message id.
    pub fn validate(&self) -> Result<(), SendValidationError> {
        non_empty("to", &self.to)?;
        if let Some(id) = &self.reply_to {
            non_empty("reply_to", id)?;
        }
        self.content.validate()
    }
}

/// Media by uploaded id or by a public URL Meta fetches itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaRef {
    Id(String),
    Link(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundContent {
    Text {
        body: String,
        #[serde(default)]
        preview_url: bool,
    },
    Image {
        media: MediaRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Video {
        media: MediaRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Audio {
        media: MediaRef,
    },
    Document {
        media: MediaRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
    Sticker {
        media: MediaRef,
    },
    /// An empty `emoji` removes our reaction.
    Reaction {
        message_id: String,
        emoji: String,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// Interactive reply buttons (1 to 3).
    Buttons {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<String>,
        buttons: Vec<ReplyButton>,
    },
    /// Interactive list: `button` is the label of the button that opens it.
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<String>,
        button: String,
        sections: Vec<ListSection>,
    },
    /// An approved template (HSM): the only kind allowed outside the 24-hour window.
    /// `components` is Meta's array verbatim (`null` or `[]` when there are no parameters).
    Template {
        name: String,
        language: String,
        #[serde(default)]
        components: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Why a message would be rejected by Meta before we even try.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendValidationError {
    #[error("{field} must not be empty")]
    Empty { field: String },
    #[error("{field} has {len} characters; the limit is {max}")]
    TooLong {
        field: String,
        len: usize,
        max: usize,
    },
    #[error("{field} must have between {min} and {max} items, not {count}")]
    Count {
        field: String,
        count: usize,
        min: usize,
        max: usize,
    },
    #[error("{field} uses the id {id:?} more than once")]
    DuplicateId { field: String, id: String },
    #[error("{field} must be an http(s) URL, not {link:?}")]
    InvalidLink { field: String, link: String },
    #[error("invalid coordinates: latitude {latitude}, longitude {longitude}")]
    InvalidCoordinates { latitude: f64, longitude: f64 },
    #[error("{field} needs a title because the list has more than one section")]
    MissingSectionTitle { field: String },
    #[error("template components must be a JSON array")]
    InvalidTemplateComponents,
}

impl OutboundContent {
    /// Meta's `type` for this body.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboundContent::Text { .. } => "text",
            OutboundContent::Image { .. } => "image",
            OutboundContent::Video { .. } => "video",
            OutboundContent::Audio { .. } => "audio",
            OutboundContent::Document { .. } => "document",
            OutboundContent::Sticker { .. } => "sticker",
            OutboundContent::Reaction { .. } => "reaction",
            OutboundContent::Location { .. } => "location",
            OutboundContent::Buttons { .. } | OutboundContent::List { .. } => "interactive",
            OutboundContent::Template { .. } => "template",
        }
    }

    /// The object that goes under the `kind()` key of the request body.
    pub fn payload_json(&self) -> Value {
        match self {
            OutboundContent::Text { body, preview_url } => {
                json!({ "body": body, "preview_url": preview_url })
            }
            OutboundContent::Image { media, caption }
            | OutboundContent::Video { media, caption } => {
                let mut obj = media_json(media);
                insert_opt(&mut obj, "caption", caption);
                Value::Object(obj)
            }
            OutboundContent::Audio { media } | OutboundContent::Sticker { media } => {
                Value::Object(media_json(media))
            }
            OutboundContent::Document {
                media,
                caption,
                filename,
            } => {
                let mut obj = media_json(media);
                insert_opt(&mut obj, "caption", caption);
                insert_opt(&mut obj, "filename", filename);
                Value::Object(obj)
            }
            OutboundContent::Reaction { message_id, emoji } => {
                json!({ "message_id": message_id, "emoji": emoji })
            }
            OutboundContent::Location {
                latitude,
                longitude,
                name,
                address,
            } => {
                let mut obj = Map::new();
                obj.insert("latitude".into(), json!(latitude));
                obj.insert("longitude".into(), json!(longitude));
                insert_opt(&mut obj, "name", name);
                insert_opt(&mut obj, "address", address);
                Value::Object(obj)
            }
            OutboundContent::Buttons {
                header,
                body,
                footer,
                buttons,
            } => {
                let buttons: Vec<Value> = buttons
                    .iter()
                    .map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } }))
                    .collect();
                interactive_json(
                    "button",
                    header,
                    body,
                    footer,
                    json!({ "buttons": buttons }),
                )
            }
            OutboundContent::List {
                header,
                body,
                footer,
                button,
                sections,
            } => {
                let sections: Vec<Value> = sections
                    .iter()
                    .map(|s| {
                        let rows: Vec<Value> = s
                            .rows
                            .iter()
                            .map(|r| {
                                let mut row = Map::new();
                                row.insert("id".into(), r.id.as_str().into());
                                row.insert("title".into(), r.title.as_str().into());
                                insert_opt(&mut row, "description", &r.description);
                                Value::Object(row)
                            })
                            .collect();
                        let mut section = Map::new();
                        insert_opt(&mut section, "title", &s.title);
                        section.insert("rows".into(), Value::Array(rows));
                        Value::Object(section)
                    })
                    .collect();
                interactive_json(
                    "list",
                    header,
                    body,
                    footer,
                    json!({ "button": button, "sections": sections }),
                )
            }
            OutboundContent::Template {
                name,
                language,
                components,
            } => {
                let mut obj = Map::new();
                obj.insert("name".into(), name.as_str().into());
                obj.insert("language".into(), json!({ "code": language }));
                let has_components = match components {
                    Value::Null => false,
                    Value::Array(items) => !items.is_empty(),
                    _ => true,
                };
                if has_components {
                    obj.insert("components".into(), components.clone());
                }
                Value::Object(obj)
            }
        }
    }

    /// Checks Meta's documented limits, so an agent learns about a too-long caption or a
    /// fourth button immediately instead of through a failed status.
    pub fn validate(&self) -> Result<(), SendValidationError> {
        use limits::*;
        match self {
            OutboundContent::Text { body, .. } => text("text.body", body, TEXT_BODY),
            OutboundContent::Image { media, caption }
            | OutboundContent::Video { media, caption } => {
                validate_media(media)?;
                opt_max_len("caption", caption, CAPTION)
            }
            OutboundContent::Audio { media } | OutboundContent::Sticker { media } => {
                validate_media(media)
            }
            OutboundContent::Document {
                media,
                caption,
                filename,
            } => {
                validate_media(media)?;
                opt_max_len("caption", caption, CAPTION)?;
                if let Some(name) = filename {
                    non_empty("filename", name)?;
                }
                Ok(())
            }
            OutboundContent::Reaction { message_id, .. } => {
                non_empty("reaction.message_id", message_id)
            }
            OutboundContent::Location {
                latitude,
                longitude,
                ..
            } => {
                let valid = latitude.is_finite()
                    && longitude.is_finite()
                    && (-90.0..=90.0).contains(latitude)
                    && (-180.0..=180.0).contains(longitude);
                if valid {
                    Ok(())
                } else {
                    Err(SendValidationError::InvalidCoordinates {
                        latitude: *latitude,
                        longitude: *longitude,
                    })
                }
            }
            OutboundContent::Buttons {
                header,
                body,
                footer,
                buttons,
            } => {
                opt_max_len("header", header, HEADER_TEXT)?;
                text("body", body, BUTTONS_BODY)?;
                opt_max_len("footer", footer, FOOTER_TEXT)?;
                count("buttons", buttons.len(), 1, MAX_BUTTONS)?;
                let mut ids = HashSet::new();
                for (i, b) in buttons.iter().enumerate() {
                    text(&format!("buttons[{i}].id"), &b.id, BUTTON_ID)?;
                    text(&format!("buttons[{i}].title"), &b.title, BUTTON_TITLE)?;
                    if !ids.insert(b.id.as_str()) {
                        return Err(SendValidationError::DuplicateId {
                            field: "buttons".into(),
                            id: b.id.clone(),
                        });
                    }
                }
                Ok(())
            }
            OutboundContent::List {
                header,
                body,
                footer,
                button,
                sections,
            } => {
                opt_max_len("header", header, HEADER_TEXT)?;
                text("body", body, LIST_BODY)?;
                opt_max_len("footer", footer, FOOTER_TEXT)?;
                text("button", button, LIST_BUTTON_LABEL)?;
                count("sections", sections.len(), 1, MAX_SECTIONS)?;
                let total_rows = sections.iter().map(|s| s.rows.len()).sum();
                count("rows", total_rows, 1, MAX_LIST_ROWS)?;
                let mut ids = HashSet::new();
                for (i, s) in sections.iter().enumerate() {
                    match &s.title {
                        Some(title) => text(&format!("sections[{i}].title"), title, SECTION_TITLE)?,
                        None if sections.len() > 1 => {
                            return Err(SendValidationError::MissingSectionTitle {
                                field: format!("sections[{i}]"),
                            });
                        }
                        None => {}
                    }
                    count(
                        &format!("sections[{i}].rows"),
                        s.rows.len(),
                        1,
                        MAX_LIST_ROWS,
                    )?;
                    for (j, r) in s.rows.iter().enumerate() {
                        let field = format!("sections[{i}].rows[{j}]");
                        text(&format!("{field}.id"), &r.id, ROW_ID)?;
                        text(&format!("{field}.title"), &r.title, ROW_TITLE)?;
                        opt_max_len(
                            &format!("{field}.description"),
                            &r.description,
                            ROW_DESCRIPTION,
                        )?;
                        if !ids.insert(r.id.as_str()) {
                            return Err(SendValidationError::DuplicateId {
                                field: "rows".into(),
                                id: r.id.clone(),
                            });
                        }
                    }
                }
                Ok(())
            }
            OutboundContent::Template {
                name,
                language,
                components,
            } => {
                text("template.name", name, TEMPLATE_NAME)?;
                non_empty("template.language", language)?;
                match components {
                    Value::Null | Value::Array(_) => Ok(()),
                    _ => Err(SendValidationError::InvalidTemplateComponents),
                }
            }
        }
    }
}

fn media_json(media: &MediaRef) -> Map<String, Value> {
    let mut obj = Map::new();
    match media {
        MediaRef::Id(id) => obj.insert("id".into(), id.as_str().into()),
        MediaRef::Link(link) => obj.insert("link".into(), link.as_str().into()),
    };
    obj
}

fn insert_opt(obj: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        obj.insert(key.into(), v.as_str().into());
    }
}

fn interactive_json(
    kind: &str,
    header: &Option<String>,
    body: &str,
    footer: &Option<String>,
    action: Value,
) -> Value {
    let mut obj = Map::new();
    obj.insert("type".into(), kind.into());
    if let Some(h) = header {
        obj.insert("header".into(), json!({ "type": "text", "text": h }));
    }
    obj.insert("body".into(), json!({ "text": body }));
    if let Some(f) = footer {
        obj.insert("footer".into(), json!({ "text": f }));
    }
    obj.insert("action".into(), action);
    Value::Object(obj)
}

fn validate_media(media: &MediaRef) -> Result<(), SendValidationError> {
    match media {
        MediaRef::Id(id) => non_empty("media.id", id),
        MediaRef::Link(link) => {
            // Meta fetches the link itself; anything but http(s) fails later, asynchronously.
            let lower = link.to_ascii_lowercase();
            if lower.starts_with("https://") || lower.starts_with("http://") {
                Ok(())
            } else {
                Err(SendValidationError::InvalidLink {
                    field: "media.link".into(),
                    link: link.clone(),
                })
            }
        }
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), SendValidationError> {
    if value.trim().is_empty() {
        Err(SendValidationError::Empty {
            field: field.into(),
        })
    } else {
        Ok(())
    }
}

fn max_len(field: &str, value: &str, max: usize) -> Result<(), SendValidationError> {
    let len = value.chars().count();
    if len > max {
        Err(SendValidationError::TooLong {
            field: field.into(),
            len,
            max,
        })
    } else {
        Ok(())
    }
}

/// Required text: present and within the limit.
fn text(field: &str, value: &str, max: usize) -> Result<(), SendValidationError> {
    non_empty(field, value)?;
    max_len(field, value, max)
}

fn opt_max_len(field: &str, value: &Option<String>, max: usize) -> Result<(), SendValidationError> {
    value.as_deref().map_or(Ok(()), |v| max_len(field, v, max))
}

fn count(field: &str, count: usize, min: usize, max: usize) -> Result<(), SendValidationError> {
    if (min..=max).contains(&count) {
        Ok(())
    } else {
        Err(SendValidationError::Count {
            field: field.into(),
            count,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests;
