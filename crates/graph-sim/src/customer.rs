//! The customer side: webhook payloads in Meta's shape, their signature, and
//! their delivery to the system under test.
//!
//! Payloads are built as `serde_json::Value` so tests can still bend them
//! (drop a field, add an unknown one) before posting. [`to_meta_json`] then
//! encodes them the way Meta does on the wire (non-ASCII as `\uXXXX`, `/` as
//! `\/`), which is what catches a receiver that verifies the signature over
//! re-serialized JSON instead of the raw bytes.

use std::io;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::errors::{error_details, error_title};
use crate::ids;

/// A WhatsApp user writing to the business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Digits only, no '+', as Meta sends it.
    pub wa_id: String,
    /// The WhatsApp profile name (`contacts[].profile.name`).
    pub name: String,
}

impl Customer {
    pub fn new(wa_id: impl Into<String>, name: impl Into<String>) -> Customer {
        Customer {
            wa_id: wa_id.into(),
            name: name.into(),
        }
    }
}

/// One line of an `order` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    pub product_retailer_id: String,
    pub quantity: u32,
    pub item_price: f64,
    pub currency: String,
}

/// Builds webhook payloads addressed to one business phone number.
///
/// Every message builder returns the new message's wamid with a complete
/// envelope (`object`/`entry`/`changes`/`value`), ready to sign and post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookBuilder {
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
}

impl WebhookBuilder {
    pub fn new(
        waba_id: impl Into<String>,
        phone_number_id: impl Into<String>,
        display_phone_number: impl Into<String>,
    ) -> WebhookBuilder {
        WebhookBuilder {
            waba_id: waba_id.into(),
            phone_number_id: phone_number_id.into(),
            display_phone_number: display_phone_number.into(),
        }
    }

    fn envelope(&self, value: Map<String, Value>) -> Value {
        let mut value = value;
        value.insert("messaging_product".into(), json!("whatsapp"));
        value.insert(
            "metadata".into(),
            json!({
                "display_phone_number": self.display_phone_number,
                "phone_number_id": self.phone_number_id,
            }),
        );
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": self.waba_id,
                "changes": [{"value": Value::Object(value), "field": "messages"}],
            }],
        })
    }

    fn with_message(&self, from: &Customer, message: Value, with_contact: bool) -> Value {
        let mut value = Map::new();
        if with_contact {
            value.insert(
                "contacts".into(),
                json!([{"profile": {"name": from.name}, "wa_id": from.wa_id}]),
            );
        }
        value.insert("messages".into(), json!([message]));
        self.envelope(value)
    }

    /// A message of `kind` whose body object sits under the key `kind`, as
    /// Meta does for every type; `Value::Null` means "no body object".
    fn message(&self, from: &Customer, kind: &str, object: Value) -> (String, Value) {
        let wamid = ids::wamid(&from.wa_id);
        let mut msg = json!({
            "from": from.wa_id,
            "id": wamid,
            "timestamp": ids::timestamp_string(),
            "type": kind,
        });
        if !object.is_null() {
            msg[kind] = object;
        }
        (wamid.clone(), self.with_message(from, msg, true))
    }

    pub fn text(&self, from: &Customer, body: &str) -> (String, Value) {
        self.message(from, "text", json!({ "body": body }))
    }

    pub fn image(
        &self,
        from: &Customer,
        media_id: &str,
        mime: &str,
        caption: Option<&str>,
    ) -> (String, Value) {
        let mut o = media_object(media_id, mime);
        if let Some(c) = caption {
            o["caption"] = json!(c);
        }
        self.message(from, "image", o)
    }

    /// `voice: true` is a recorded voice note (push-to-talk), always ogg/opus.
    pub fn audio(&self, from: &Customer, media_id: &str, voice: bool) -> (String, Value) {
        let mime = if voice {
            "audio/ogg; codecs=opus"
        } else {
            "audio/mpeg"
        };
        let mut o = media_object(media_id, mime);
        o["voice"] = json!(voice);
        self.message(from, "audio", o)
    }

    pub fn video(
        &self,
        from: &Customer,
        media_id: &str,
        mime: &str,
        caption: Option<&str>,
    ) -> (String, Value) {
        let mut o = media_object(media_id, mime);
        if let Some(c) = caption {
            o["caption"] = json!(c);
        }
        self.message(from, "video", o)
    }

    pub fn document(
        &self,
        from: &Customer,
        media_id: &str,
        mime: &str,
        filename: &str,
        caption: Option<&str>,
    ) -> (String, Value) {
        let mut o = media_object(media_id, mime);
        o["filename"] = json!(filename);
        if let Some(c) = caption {
            o["caption"] = json!(c);
        }
        self.message(from, "document", o)
    }

    pub fn sticker(&self, from: &Customer, media_id: &str, animated: bool) -> (String, Value) {
        let mut o = media_object(media_id, "image/webp");
        o["animated"] = json!(animated);
        self.message(from, "sticker", o)
    }

    /// Latitude and longitude are JSON numbers, as Meta sends them.
    pub fn location(
        &self,
        from: &Customer,
        latitude: f64,
        longitude: f64,
        name: Option<&str>,
        address: Option<&str>,
    ) -> (String, Value) {
        let mut o = json!({"latitude": latitude, "longitude": longitude});
        if let Some(n) = name {
            o["name"] = json!(n);
        }
        if let Some(a) = address {
            o["address"] = json!(a);
        }
        self.message(from, "location", o)
    }

    /// A shared contact card; the body is an array, unlike every other type.
    pub fn contacts(&self, from: &Customer, formatted_name: &str, phone: &str) -> (String, Value) {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let mut parts = formatted_name.splitn(2, ' ');
        let mut name = json!({"formatted_name": formatted_name});
        if let Some(first) = parts.next() {
            name["first_name"] = json!(first);
        }
        if let Some(last) = parts.next() {
            name["last_name"] = json!(last);
        }
        self.message(
            from,
            "contacts",
            json!([{
                "name": name,
                "phones": [{"phone": phone, "wa_id": digits, "type": "CELL"}],
            }]),
        )
    }

    /// Tap on a reply button of an interactive message.
    pub fn button_reply(&self, from: &Customer, id: &str, title: &str) -> (String, Value) {
        self.message(
            from,
            "interactive",
            json!({"type": "button_reply", "button_reply": {"id": id, "title": title}}),
        )
    }

    /// Choice of a row in an interactive list; Meta echoes the row's
    /// description when it has one.
    pub fn list_reply(
        &self,
        from: &Customer,
        id: &str,
        title: &str,
        description: Option<&str>,
    ) -> (String, Value) {
        let mut reply = json!({"id": id, "title": title});
        if let Some(d) = description {
            reply["description"] = json!(d);
        }
        self.message(
            from,
            "interactive",
            json!({"type": "list_reply", "list_reply": reply}),
        )
    }

    /// A completed WhatsApp Flow; `response_json` travels as a JSON *string*.
    pub fn nfm_reply(&self, from: &Customer, response: &Value) -> (String, Value) {
        self.message(
            from,
            "interactive",
            json!({"type": "nfm_reply", "nfm_reply": {
                "name": "flow",
                "body": "Sent",
                "response_json": response.to_string(),
            }}),
        )
    }

    /// Tap on a quick-reply button of a template; the context points at the
    /// template message the business sent.
    pub fn template_button(
        &self,
        from: &Customer,
        payload: &str,
        text: &str,
        context_wamid: &str,
    ) -> (String, Value) {
        let (wamid, p) = self.message(from, "button", json!({"payload": payload, "text": text}));
        (wamid, self.reply_to(p, context_wamid))
    }

    /// `emoji: None` is a removed reaction (Meta then omits the emoji).
    pub fn reaction(
        &self,
        from: &Customer,
        message_id: &str,
        emoji: Option<&str>,
    ) -> (String, Value) {
        let mut o = json!({"message_id": message_id});
        if let Some(e) = emoji {
            o["emoji"] = json!(e);
        }
        self.message(from, "reaction", o)
    }

    pub fn order(&self, from: &Customer, catalog_id: &str, items: &[OrderItem]) -> (String, Value) {
        self.message(
            from,
            "order",
            json!({"catalog_id": catalog_id, "text": "", "product_items": items}),
        )
    }

    /// The customer moved to a new number; Meta sends no `contacts` for it.
    pub fn system_number_change(&self, from: &Customer, new_wa_id: &str) -> (String, Value) {
        let wamid = ids::wamid(&from.wa_id);
        let msg = json!({
            "from": from.wa_id,
            "id": wamid,
            "timestamp": ids::timestamp_string(),
            "type": "system",
            "system": {
                "body": format!("User {} changed from {} to {}", from.name, from.wa_id, new_wa_id),
                "wa_id": new_wa_id,
                "type": "user_changed_number",
            },
        });
        (wamid, self.with_message(from, msg, false))
    }

    /// What Meta sends for polls, view-once media and other kinds it does
    /// not deliver to the Cloud API.
    pub fn unsupported(&self, from: &Customer) -> (String, Value) {
        let (wamid, mut p) = self.message(from, "unsupported", Value::Null);
        for m in messages_mut(&mut p) {
            m["errors"] = json!([{
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }]);
        }
        (wamid, p)
    }

    /// A message of a type that does not exist yet, to prove the receiver
    /// tolerates additions to the API.
    pub fn unknown_future_type(&self, from: &Customer, kind: &str) -> (String, Value) {
        self.message(
            from,
            kind,
            json!({"id": ids::media_id(), "note": "a message type this receiver has never seen"}),
        )
    }

    /// Marks every message of `payload` as a reply to `context_wamid`.
    pub fn reply_to(&self, mut payload: Value, context_wamid: &str) -> Value {
        for m in messages_mut(&mut payload) {
            m["context"] = json!({"from": self.display_phone_number, "id": context_wamid});
        }
        payload
    }

    /// Marks every message of `payload` as forwarded (many times or not).
    pub fn forwarded(&self, mut payload: Value, frequently: bool) -> Value {
        let key = if frequently {
            "frequently_forwarded"
        } else {
            "forwarded"
        };
        for m in messages_mut(&mut payload) {
            m["context"] = json!({ key: true });
        }
        payload
    }

    /// Adds a Click-to-WhatsApp ad referral to every message of `payload`.
    pub fn with_referral(&self, mut payload: Value) -> Value {
        for m in messages_mut(&mut payload) {
            m["referral"] = json!({
                "source_url": "https://fb.me/3Bx9kQz2c",
                "source_id": "120210987654321098",
                "source_type": "ad",
                "headline": "Fale com a gente no WhatsApp",
                "body": "Atendimento rápido pelo WhatsApp.",
                "media_type": "image",
                "image_url": "https://scontent.xx.fbcdn.net/v/t45.1600-4/ad_image.jpg",
                "thumbnail_url": "https://scontent.xx.fbcdn.net/v/t45.1600-4/ad_thumb.jpg",
                "ctwa_clid": format!("ARA{}", ids::hex_id(24)),
            });
        }
        payload
    }

    /// A status update for a message the business sent. `error` is
    /// `(code, title)`; it fills `statuses[].errors[]` (used with "failed").
    pub fn status(
        &self,
        wamid: &str,
        recipient: &str,
        status: &str,
        error: Option<(i64, &str)>,
    ) -> Value {
        let mut s = json!({
            "id": wamid,
            "status": status,
            "timestamp": ids::timestamp_string(),
            "recipient_id": recipient,
        });
        if let Some((code, title)) = error {
            let title = if title.is_empty() {
                error_title(code)
            } else {
                title
            };
            s["errors"] = json!([{
                "code": code,
                "title": title,
                "message": title,
                "error_data": {"details": error_details(code)},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }]);
        }
        let mut value = Map::new();
        value.insert("statuses".into(), json!([s]));
        self.envelope(value)
    }

    /// A `message_template_status_update` webhook (field of the same name);
    /// `message_template_id` is a JSON number, as Meta sends it.
    pub fn template_status_update(
        &self,
        template_id: &str,
        name: &str,
        language: &str,
        event: &str,
        reason: Option<&str>,
    ) -> Value {
        let id = template_id
            .parse::<u64>()
            .map_or_else(|_| json!(template_id), |n| json!(n));
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": self.waba_id,
                "time": ids::unix_now().as_secs(),
                "changes": [{
                    "value": {
                        "event": event,
                        "message_template_id": id,
                        "message_template_name": name,
                        "message_template_language": language,
                        "reason": reason.unwrap_or("NONE"),
                    },
                    "field": "message_template_status_update",
                }],
            }],
        })
    }

    /// Merges several payloads into one delivery, as Meta does under load:
    /// one entry per WABA, each with the changes of all merged payloads.
    pub fn batch(&self, payloads: Vec<Value>) -> Value {
        let mut entries: Vec<Value> = Vec::new();
        for p in payloads {
            let Some(list) = p.get("entry").and_then(Value::as_array) else {
                continue;
            };
            for e in list {
                let id = e.get("id").cloned().unwrap_or(Value::Null);
                let changes = e
                    .get("changes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                match entries.iter_mut().find(|x| x["id"] == id) {
                    Some(existing) => {
                        if let Some(arr) = existing["changes"].as_array_mut() {
                            arr.extend(changes);
                        }
                    }
                    None => entries.push(json!({"id": id, "changes": changes})),
                }
            }
        }
        json!({"object": "whatsapp_business_account", "entry": entries})
    }
}

/// Media in webhooks carry `sha256` as base64 (unlike GET /{media-id}, which
/// answers hex). Without the bytes at hand, a digest of the id stands in.
fn media_object(media_id: &str, mime: &str) -> Value {
    json!({
        "id": media_id,
        "mime_type": mime,
        "sha256": sha256_base64(media_id.as_bytes()),
    })
}

pub(crate) fn sha256_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// Every `messages[]` object of every change of every entry.
pub(crate) fn messages_mut(payload: &mut Value) -> impl Iterator<Item = &mut Value> {
    payload
        .get_mut("entry")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get_mut("changes").and_then(Value::as_array_mut))
        .flatten()
        .filter_map(|c| {
            c.get_mut("value")
                .and_then(|v| v.get_mut("messages"))
                .and_then(Value::as_array_mut)
        })
        .flatten()
}

/// `X-Hub-Signature-256` value: "sha256=" + lowercase hex HMAC-SHA256 of the
/// raw body, keyed with the app secret.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `body` as Meta would (JSON, signed); returns the HTTP status and
/// the response text.
pub async fn post_webhook(
    client: &reqwest::Client,
    url: &str,
    app_secret: &str,
    body: &[u8],
) -> Result<(u16, String), reqwest::Error> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "facebookexternalua")
        .header("x-hub-signature-256", sign(app_secret, body))
        .body(body.to_vec())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, text))
}

/// Encodes JSON the way Meta's webhook sender does: non-ASCII escaped as
/// `\uXXXX` (UTF-16, lowercase hex) and `/` escaped as `\/`.
pub fn to_meta_json(value: &Value) -> Vec<u8> {
    let mut ser = serde_json::Serializer::with_formatter(Vec::new(), MetaFormatter);
    // Serializing a Value into memory cannot fail: keys are strings and the
    // writer is a Vec.
    match value.serialize(&mut ser) {
        Ok(()) => ser.into_inner(),
        Err(_) => value.to_string().into_bytes(),
    }
}

struct MetaFormatter;

impl serde_json::ser::Formatter for MetaFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if ch.is_ascii() && ch != '/' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            if ch == '/' {
                writer.write_all(b"\\/")?;
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
            start = i + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// A customer message described in JSON, for `POST /_sim/customer/send` and
/// [`crate::GraphSim::customer_send`].
///
/// Example: `{"from":"5511987654321","name":"Maria","type":"text","text":"Oi"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerSend {
    /// The customer's wa_id (digits).
    pub from: String,
    /// Profile name; defaults to "Cliente NNNN" (last digits of `from`).
    #[serde(default)]
    pub name: Option<String>,
    /// Business number written to; defaults to the simulator's first one.
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// wamid this message replies to.
    #[serde(default)]
    pub context: Option<String>,
    /// Adds a Click-to-WhatsApp ad referral.
    #[serde(default)]
    pub referral: bool,
    #[serde(flatten)]
    pub message: CustomerMessage,
}

/// The content of a [`CustomerSend`]. Media variants take either an existing
/// `media_id` or the bytes in `data_base64` (registered on the fly); with
/// neither, a small placeholder file is registered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CustomerMessage {
    Text {
        text: String,
    },
    Image {
        #[serde(default)]
        media_id: Option<String>,
        #[serde(default)]
        data_base64: Option<String>,
        #[serde(default)]
        mime_type: Option<String>,
        #[serde(default)]
        caption: Option<String>,
    },
    Audio {
        #[serde(default)]
        media_id: Option<String>,
        #[serde(default)]
        data_base64: Option<String>,
        #[serde(default = "yes")]
        voice: bool,
    },
    Video {
        #[serde(default)]
        media_id: Option<String>,
        #[serde(default)]
        data_base64: Option<String>,
        #[serde(default)]
        mime_type: Option<String>,
        #[serde(default)]
        caption: Option<String>,
    },
    Document {
        #[serde(default)]
        media_id: Option<String>,
        #[serde(default)]
        data_base64: Option<String>,
        #[serde(default)]
        mime_type: Option<String>,
        #[serde(default)]
        filename: Option<String>,
        #[serde(default)]
        caption: Option<String>,
    },
    Sticker {
        #[serde(default)]
        media_id: Option<String>,
        #[serde(default)]
        data_base64: Option<String>,
        #[serde(default)]
        animated: bool,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        address: Option<String>,
    },
    Contacts {
        formatted_name: String,
        phone: String,
    },
    ButtonReply {
        id: String,
        title: String,
    },
    ListReply {
        id: String,
        title: String,
        #[serde(default)]
        description: Option<String>,
    },
    NfmReply {
        response_json: Value,
    },
    /// Quick-reply tap on a template; `context` (the template's wamid) is required.
    TemplateButton {
        payload: String,
        text: String,
    },
    Reaction {
        message_id: String,
        #[serde(default)]
        emoji: Option<String>,
    },
    Order {
        catalog_id: String,
        items: Vec<OrderItem>,
    },
    SystemNumberChange {
        new_wa_id: String,
    },
    Unsupported,
    UnknownFutureType {
        kind: String,
    },
    /// A complete payload posted as given (still encoded and signed like Meta).
    Raw {
        payload: Value,
    },
}

fn yes() -> bool {
    true
}

/// Outcome of a simulated customer message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerSent {
    /// wamid of the customer's message (None for `raw`).
    pub wamid: Option<String>,
    /// HTTP status the webhook receiver answered.
    pub status: u16,
    /// Body the webhook receiver answered.
    pub body: String,
    /// The payload that was posted.
    pub payload: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wb() -> WebhookBuilder {
        WebhookBuilder::new("WABA-1", "1001", "5511900000000")
    }

    fn maria() -> Customer {
        Customer::new("5511987654321", "Maria")
    }

    fn first_message(p: &Value) -> &Value {
        &p["entry"][0]["changes"][0]["value"]["messages"][0]
    }

    #[test]
    fn text_has_meta_envelope() {
        let (wamid, p) = wb().text(&maria(), "Olá");
        assert_eq!(p["object"], "whatsapp_business_account");
        assert_eq!(p["entry"][0]["id"], "WABA-1");
        let change = &p["entry"][0]["changes"][0];
        assert_eq!(change["field"], "messages");
        let value = &change["value"];
        assert_eq!(value["messaging_product"], "whatsapp");
        assert_eq!(value["metadata"]["phone_number_id"], "1001");
        assert_eq!(value["metadata"]["display_phone_number"], "5511900000000");
        assert_eq!(value["contacts"][0]["wa_id"], "5511987654321");
        assert_eq!(value["contacts"][0]["profile"]["name"], "Maria");
        let m = first_message(&p);
        assert_eq!(m["id"], wamid.as_str());
        assert_eq!(m["from"], "5511987654321");
        assert_eq!(m["type"], "text");
        assert_eq!(m["text"]["body"], "Olá");
        let ts = m["timestamp"].as_str().unwrap();
        assert!(ts.parse::<u64>().unwrap() > 1_700_000_000);
    }

    #[test]
    fn media_builders() {
        let b = wb();
        let c = maria();
        let (_, p) = b.audio(&c, "123", true);
        let a = &first_message(&p)["audio"];
        assert_eq!(a["voice"], true);
        assert_eq!(a["mime_type"], "audio/ogg; codecs=opus");
        assert_eq!(a["id"], "123");
        assert!(a["sha256"].as_str().unwrap().ends_with('='));
        let (_, p) = b.audio(&c, "123", false);
        assert_eq!(first_message(&p)["audio"]["voice"], false);

        let (_, p) = b.image(&c, "9", "image/jpeg", Some("foto"));
        assert_eq!(first_message(&p)["image"]["caption"], "foto");
        let (_, p) = b.image(&c, "9", "image/jpeg", None);
        assert!(first_message(&p)["image"].get("caption").is_none());
        let (_, p) = b.document(&c, "8", "application/pdf", "boleto.pdf", None);
        assert_eq!(first_message(&p)["document"]["filename"], "boleto.pdf");
        let (_, p) = b.video(&c, "7", "video/mp4", Some("v"));
        assert_eq!(first_message(&p)["video"]["mime_type"], "video/mp4");
        let (_, p) = b.sticker(&c, "6", true);
        assert_eq!(first_message(&p)["sticker"]["animated"], true);
        assert_eq!(first_message(&p)["sticker"]["mime_type"], "image/webp");
    }

    #[test]
    fn interactive_builders() {
        let b = wb();
        let c = maria();
        let (_, p) = b.button_reply(&c, "opt_1", "Sim");
        let i = &first_message(&p)["interactive"];
        assert_eq!(first_message(&p)["type"], "interactive");
        assert_eq!(i["type"], "button_reply");
        assert_eq!(i["button_reply"]["id"], "opt_1");
        assert_eq!(i["button_reply"]["title"], "Sim");

        let (_, p) = b.list_reply(&c, "r1", "Financeiro", Some("boletos"));
        let i = &first_message(&p)["interactive"];
        assert_eq!(i["type"], "list_reply");
        assert_eq!(i["list_reply"]["description"], "boletos");
        let (_, p) = b.list_reply(&c, "r2", "Suporte", None);
        assert!(
            first_message(&p)["interactive"]["list_reply"]
                .get("description")
                .is_none()
        );

        let (_, p) = b.nfm_reply(&c, &json!({"cpf": "52998224725"}));
        let n = &first_message(&p)["interactive"]["nfm_reply"];
        assert_eq!(n["name"], "flow");
        let inner: Value = serde_json::from_str(n["response_json"].as_str().unwrap()).unwrap();
        assert_eq!(inner["cpf"], "52998224725");

        let (_, p) = b.template_button(&c, "STOP", "Parar", "wamid.TPL");
        let m = first_message(&p);
        assert_eq!(m["type"], "button");
        assert_eq!(m["button"]["payload"], "STOP");
        assert_eq!(m["context"]["id"], "wamid.TPL");
        assert_eq!(m["context"]["from"], "5511900000000");
    }

    #[test]
    fn other_builders() {
        let b = wb();
        let c = maria();
        let (_, p) = b.location(&c, -23.5, -46.6, Some("Sé"), None);
        let l = &first_message(&p)["location"];
        assert!(l["latitude"].is_f64());
        assert_eq!(l["name"], "Sé");
        assert!(l.get("address").is_none());

        let (_, p) = b.contacts(&c, "João Silva", "+55 11 98888-7777");
        let card = &first_message(&p)["contacts"][0];
        assert_eq!(card["name"]["first_name"], "João");
        assert_eq!(card["phones"][0]["wa_id"], "5511988887777");

        let (_, p) = b.reaction(&c, "wamid.X", Some("👍"));
        assert_eq!(first_message(&p)["reaction"]["emoji"], "👍");
        let (_, p) = b.reaction(&c, "wamid.X", None);
        assert!(first_message(&p)["reaction"].get("emoji").is_none());

        let item = OrderItem {
            product_retailer_id: "SKU1".into(),
            quantity: 2,
            item_price: 9.9,
            currency: "BRL".into(),
        };
        let (_, p) = b.order(&c, "cat1", &[item]);
        assert_eq!(
            first_message(&p)["order"]["product_items"][0]["quantity"],
            2
        );

        let (_, p) = b.system_number_change(&c, "5511911112222");
        assert!(
            p["entry"][0]["changes"][0]["value"]
                .get("contacts")
                .is_none()
        );
        assert_eq!(first_message(&p)["system"]["type"], "user_changed_number");
        assert_eq!(first_message(&p)["system"]["wa_id"], "5511911112222");

        let (_, p) = b.unsupported(&c);
        let m = first_message(&p);
        assert_eq!(m["type"], "unsupported");
        assert_eq!(m["errors"][0]["code"], 131051);
        assert!(m.get("unsupported").is_none());

        let (_, p) = b.unknown_future_type(&c, "hologram");
        assert_eq!(first_message(&p)["type"], "hologram");
        assert!(first_message(&p)["hologram"].is_object());
    }

    #[test]
    fn decorators_and_batch() {
        let b = wb();
        let c = maria();
        let (_, p) = b.text(&c, "oi");
        let p = b.reply_to(p, "wamid.ORIG");
        assert_eq!(first_message(&p)["context"]["id"], "wamid.ORIG");
        let p = b.with_referral(p);
        assert_eq!(first_message(&p)["referral"]["source_type"], "ad");
        let p2 = b.forwarded(b.text(&c, "fw").1, true);
        assert_eq!(first_message(&p2)["context"]["frequently_forwarded"], true);

        let other = WebhookBuilder::new("WABA-2", "2002", "5521900000000");
        let batch = b.batch(vec![
            p,
            b.status("wamid.A", "5511987654321", "read", None),
            other.text(&c, "x").1,
        ]);
        let entries = batch["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["changes"].as_array().unwrap().len(), 2);
        assert_eq!(entries[1]["id"], "WABA-2");
    }

    #[test]
    fn status_shapes() {
        let b = wb();
        let p = b.status("wamid.A", "5511987654321", "failed", Some((131047, "")));
        let s = &p["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(s["status"], "failed");
        assert_eq!(s["recipient_id"], "5511987654321");
        assert_eq!(s["errors"][0]["code"], 131047);
        assert_eq!(s["errors"][0]["title"], "Re-engagement message");
        assert!(s["errors"][0]["error_data"]["details"].is_string());
        assert!(
            p["entry"][0]["changes"][0]["value"]
                .get("contacts")
                .is_none()
        );
        let p = b.status("wamid.A", "5511987654321", "delivered", None);
        assert!(
            p["entry"][0]["changes"][0]["value"]["statuses"][0]
                .get("errors")
                .is_none()
        );
    }

    #[test]
    fn template_status_shape() {
        let p =
            wb().template_status_update("1689556908129832", "pedido", "pt_BR", "APPROVED", None);
        assert_eq!(p["entry"][0]["id"], "WABA-1");
        assert!(p["entry"][0]["time"].is_u64());
        let c = &p["entry"][0]["changes"][0];
        assert_eq!(c["field"], "message_template_status_update");
        assert_eq!(c["value"]["message_template_id"], 1689556908129832u64);
        assert_eq!(c["value"]["event"], "APPROVED");
        assert_eq!(c["value"]["reason"], "NONE");
    }

    #[test]
    fn meta_encoding_and_signature() {
        let v = json!({"emoji": "😮", "url": "https://x.y/a", "s": "ação \"q\""});
        let bytes = to_meta_json(&v);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.is_ascii());
        assert!(text.contains(r"\ud83d\ude2e"), "{text}");
        assert!(text.contains(r"https:\/\/x.y\/a"), "{text}");
        assert!(text.contains(r#"a\u00e7\u00e3o \"q\""#), "{text}");
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, v);

        // Known vector: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn customer_send_json() {
        let s: CustomerSend = serde_json::from_value(json!({
            "from": "5511987654321", "type": "audio"
        }))
        .unwrap();
        assert!(matches!(
            s.message,
            CustomerMessage::Audio { voice: true, .. }
        ));
        let s: CustomerSend = serde_json::from_value(json!({
            "from": "5511987654321", "name": "Ana", "type": "text", "text": "oi", "context": "wamid.X"
        }))
        .unwrap();
        assert_eq!(s.context.as_deref(), Some("wamid.X"));
        assert!(matches!(s.message, CustomerMessage::Text { ref text } if text == "oi"));
    }
}
