//! Meta's template JSON as typed Rust, lossless: every object keeps the fields
//! Atende does not model in an `extra` map, and component or button kinds it does
//! not know survive as raw JSON, so a template read from Meta and written back
//! is the same template.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Template category (`MARKETING`, `UTILITY`, `AUTHENTICATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

impl Category {
    /// Meta's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "MARKETING",
            Category::Utility => "UTILITY",
            Category::Authentication => "AUTHENTICATION",
        }
    }
}

/// How variables are written: `{{1}}` (positional) or `{{first_name}}` (named).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterFormat {
    /// Meta's default when the field is absent.
    #[default]
    Positional,
    Named,
}

/// Meta's template create body (also what `GET /{template-id}` answers; fields such
/// as `id`, `status` or `quality_score` land in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateDefinition {
    pub name: String,
    pub language: String,
    pub category: Category,
    #[serde(default)]
    pub parameter_format: ParameterFormat,
    #[serde(default)]
    pub components: Vec<Component>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One element of `components`.
#[derive(Debug, Clone, PartialEq)]
pub enum Component {
    Header(Header),
    Body(Body),
    Footer(Footer),
    Buttons(Buttons),
    /// CAROUSEL, LIMITED_TIME_OFFER and whatever Meta adds, verbatim.
    Other(Value),
}

/// Header formats; formats Atende does not know (GIF, PRODUCT...) keep Meta's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderFormat {
    Text,
    Image,
    Video,
    Document,
    Location,
    Other(String),
}

impl HeaderFormat {
    /// Meta's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            HeaderFormat::Text => "TEXT",
            HeaderFormat::Image => "IMAGE",
            HeaderFormat::Video => "VIDEO",
            HeaderFormat::Document => "DOCUMENT",
            HeaderFormat::Location => "LOCATION",
            HeaderFormat::Other(s) => s,
        }
    }

    fn parse(s: &str) -> HeaderFormat {
        match s.to_ascii_uppercase().as_str() {
            "TEXT" => HeaderFormat::Text,
            "IMAGE" => HeaderFormat::Image,
            "VIDEO" => HeaderFormat::Video,
            "DOCUMENT" => HeaderFormat::Document,
            "LOCATION" => HeaderFormat::Location,
            _ => HeaderFormat::Other(s.to_string()),
        }
    }

    /// The media a send must attach for this header, if any.
    pub fn media_kind(&self) -> Option<MediaKind> {
        match self {
            HeaderFormat::Image => Some(MediaKind::Image),
            HeaderFormat::Video => Some(MediaKind::Video),
            HeaderFormat::Document => Some(MediaKind::Document),
            HeaderFormat::Location => Some(MediaKind::Location),
            HeaderFormat::Text | HeaderFormat::Other(_) => None,
        }
    }
}

impl Serialize for HeaderFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HeaderFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(HeaderFormat::parse(&s))
    }
}

/// What a non-text header carries on send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Document,
    Location,
}

impl MediaKind {
    /// The send-side parameter `type` (`image`, `video`, `document`, `location`).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Location => "location",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: HeaderFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<HeaderExample>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HeaderExample {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_handle: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text_named_params: Option<Vec<NamedExample>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{"param_name":"first_name","example":"Ana"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedExample {
    pub param_name: String,
    pub example: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// BODY. Authentication bodies have no `text` on create (Meta writes its fixed text),
/// only `add_security_recommendation` (kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Body {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<BodyExample>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BodyExample {
    /// One row of examples per sample message; Meta reads the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text_named_params: Option<Vec<NamedExample>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// FOOTER. Authentication footers carry `code_expiration_minutes` (in `extra`) instead of text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Footer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Buttons {
    #[serde(default)]
    pub buttons: Vec<Button>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One button of a BUTTONS component.
#[derive(Debug, Clone, PartialEq)]
pub enum Button {
    QuickReply(QuickReplyButton),
    Url(UrlButton),
    PhoneNumber(PhoneNumberButton),
    CopyCode(CopyCodeButton),
    Otp(OtpButton),
    /// FLOW, CATALOG, MPM, VOICE_CALL... verbatim.
    Other(Value),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuickReplyButton {
    pub text: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// URL button; a dynamic URL ends in `{{1}}` and needs `example` (full sample URLs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UrlButton {
    pub text: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneNumberButton {
    pub text: String,
    pub phone_number: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// COPY_CODE (coupon) button: `example` is the sample code, a string on create;
/// some answers carry a one-element array, so it is kept as raw JSON and read
/// through [`CopyCodeButton::example_code`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyCodeButton {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CopyCodeButton {
    /// The sample code, whether Meta sent it as a string or a one-element array.
    pub fn example_code(&self) -> Option<&str> {
        match self.example.as_ref()? {
            Value::String(s) => Some(s),
            Value::Array(a) => a.first()?.as_str(),
            _ => None,
        }
    }
}

/// OTP button of AUTHENTICATION templates (`otp_type` COPY_CODE, ONE_TAP or ZERO_TAP;
/// package names, signature hashes and the rest stay in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtpButton {
    pub otp_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Serializes `inner` as an object and puts `"type": tag` first.
fn tagged<T: Serialize, S: Serializer>(tag: &str, inner: &T, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::Error as _;
    let Value::Object(fields) = serde_json::to_value(inner).map_err(S::Error::custom)? else {
        return Err(S::Error::custom("component must serialize to an object"));
    };
    let mut out = Map::with_capacity(fields.len() + 1);
    out.insert("type".into(), Value::String(tag.into()));
    for (k, v) in fields {
        out.insert(k, v);
    }
    Value::Object(out).serialize(s)
}

/// Splits `{"type": ..., rest}` into the upper-cased tag and the remaining object.
fn untag(value: &Value) -> Option<(String, Value)> {
    let obj = value.as_object()?;
    let tag = obj.get("type")?.as_str()?.to_ascii_uppercase();
    let mut rest = obj.clone();
    rest.remove("type");
    Some((tag, Value::Object(rest)))
}

impl Serialize for Component {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Component::Header(h) => tagged("HEADER", h, s),
            Component::Body(b) => tagged("BODY", b, s),
            Component::Footer(f) => tagged("FOOTER", f, s),
            Component::Buttons(b) => tagged("BUTTONS", b, s),
            Component::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Component {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let Some((tag, rest)) = untag(&value) else {
            return Err(D::Error::custom("component needs a string \"type\""));
        };
        let parsed = match tag.as_str() {
            "HEADER" => serde_json::from_value(rest).map(Component::Header),
            "BODY" => serde_json::from_value(rest).map(Component::Body),
            "FOOTER" => serde_json::from_value(rest).map(Component::Footer),
            "BUTTONS" => serde_json::from_value(rest).map(Component::Buttons),
            _ => return Ok(Component::Other(value)),
        };
        parsed.map_err(|e| D::Error::custom(format!("{tag}: {e}")))
    }
}

impl Serialize for Button {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Button::QuickReply(b) => tagged("QUICK_REPLY", b, s),
            Button::Url(b) => tagged("URL", b, s),
            Button::PhoneNumber(b) => tagged("PHONE_NUMBER", b, s),
            Button::CopyCode(b) => tagged("COPY_CODE", b, s),
            Button::Otp(b) => tagged("OTP", b, s),
            Button::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Button {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let Some((tag, rest)) = untag(&value) else {
            return Err(D::Error::custom("button needs a string \"type\""));
        };
        let parsed = match tag.as_str() {
            "QUICK_REPLY" => serde_json::from_value(rest).map(Button::QuickReply),
            "URL" => serde_json::from_value(rest).map(Button::Url),
            "PHONE_NUMBER" => serde_json::from_value(rest).map(Button::PhoneNumber),
            "COPY_CODE" => serde_json::from_value(rest).map(Button::CopyCode),
            "OTP" => serde_json::from_value(rest).map(Button::Otp),
            _ => return Ok(Button::Other(value)),
        };
        parsed.map_err(|e| D::Error::custom(format!("{tag}: {e}")))
    }
}

impl Button {
    /// Meta's `type` of the button (`QUICK_REPLY`, `URL`...).
    pub fn kind(&self) -> &str {
        match self {
            Button::QuickReply(_) => "QUICK_REPLY",
            Button::Url(_) => "URL",
            Button::PhoneNumber(_) => "PHONE_NUMBER",
            Button::CopyCode(_) => "COPY_CODE",
            Button::Otp(_) => "OTP",
            Button::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// Whether this is an authentication code button: an OTP button as created, or
    /// the URL form (`https://www.whatsapp.com/otp/code/?...code=otp{{1}}`) Meta
    /// answers for it when templates are read back.
    pub fn is_otp(&self) -> bool {
        match self {
            Button::Otp(_) => true,
            Button::Url(u) => u.url.contains("://www.whatsapp.com/otp/"),
            _ => false,
        }
    }

    /// The label the customer sees, when the button has one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Button::QuickReply(b) => Some(&b.text),
            Button::Url(b) => Some(&b.text),
            Button::PhoneNumber(b) => Some(&b.text),
            Button::CopyCode(b) => b.text.as_deref(),
            Button::Otp(b) => b.text.as_deref(),
            Button::Other(v) => v.get("text").and_then(Value::as_str),
        }
    }
}

impl TemplateDefinition {
    /// The HEADER component, if any.
    pub fn header(&self) -> Option<&Header> {
        self.components.iter().find_map(|c| match c {
            Component::Header(h) => Some(h),
            _ => None,
        })
    }

    /// The BODY component, if any.
    pub fn body(&self) -> Option<&Body> {
        self.components.iter().find_map(|c| match c {
            Component::Body(b) => Some(b),
            _ => None,
        })
    }

    /// The FOOTER component, if any.
    pub fn footer(&self) -> Option<&Footer> {
        self.components.iter().find_map(|c| match c {
            Component::Footer(f) => Some(f),
            _ => None,
        })
    }

    /// The buttons of the (first) BUTTONS component; empty when there is none.
    pub fn buttons(&self) -> &[Button] {
        self.components
            .iter()
            .find_map(|c| match c {
                Component::Buttons(b) => Some(b.buttons.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}
