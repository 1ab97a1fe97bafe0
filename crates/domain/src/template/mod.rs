//! WhatsApp message templates (HSM): Meta's template JSON ([`TemplateDefinition`]),
//! Meta's creation rules checked locally ([`validate`]), what a send must supply
//! ([`parameters`], [`check_values`]), the message as the customer will see it
//! ([`render`]) and the send-side `components` array of `/messages`
//! ([`send_components`]). Pure: no I/O, no clock.

mod buttons;
mod languages;
mod model;
mod render;
mod validate;
mod values;
mod vars;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use languages::{LANGUAGES, is_supported_language};
pub use model::*;
pub use render::{SAMPLE_CODE, render, send_components};
pub use validate::{
    BODY_MAX, BUTTON_TEXT_MAX, BUTTON_URL_MAX, BUTTONS_MAX, COPY_CODE_MAX, FOOTER_MAX,
    HEADER_TEXT_MAX, NAME_MAX, URL_BUTTONS_MAX, WORDS_PER_VARIABLE, validate,
};
pub use values::{COUPON_CODE, check_values, parameters};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One broken rule, attached to a field path such as `name`,
/// `components.body.text` or `components.buttons[1].url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    /// Stable machine code (`name_invalid`, `body_too_long`...).
    pub code: &'static str,
    pub message_pt: String,
    pub message_en: String,
}

impl Problem {
    /// A problem on `field` with a stable `code`.
    pub fn new(
        field: impl Into<String>,
        code: &'static str,
        message_pt: impl Into<String>,
        message_en: impl Into<String>,
    ) -> Problem {
        Problem {
            field: field.into(),
            code,
            message_pt: message_pt.into(),
            message_en: message_en.into(),
        }
    }
}

/// What a send must supply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Parameters {
    /// Header text variables (zero or one), by name ("1" or "order_id").
    pub header: Vec<String>,
    /// The media a send must attach to the header.
    pub header_media: Option<MediaKind>,
    /// Body variables in order of first appearance ("1", "2"... or names).
    pub body: Vec<String>,
    /// Dynamic URL buttons: (button index, variable name).
    pub buttons: Vec<(usize, String)>,
}

/// A location header's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationValue {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A media header's value: `{"link":"https://..."}`, `{"id":"<media id>"}` or
/// `{"location":{...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaValue {
    Link(String),
    Id(String),
    Location(LocationValue),
}

/// Values for one send, by variable name ("1", "2" or "first_name").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Values {
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_media: Option<MediaValue>,
    #[serde(default)]
    pub body: BTreeMap<String, String>,
    /// Dynamic URL suffix (or coupon / OTP code) by button index.
    #[serde(default)]
    pub buttons: BTreeMap<usize, String>,
}

/// A button as the customer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedButton {
    /// Meta's button type (`QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `COPY_CODE`, `OTP`...).
    pub kind: String,
    pub text: String,
    /// URL buttons: the final URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PHONE_NUMBER buttons: the number dialled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

/// The message as the customer sees it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rendered {
    pub header: Option<String>,
    pub header_media: Option<MediaKind>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<RenderedButton>,
}
