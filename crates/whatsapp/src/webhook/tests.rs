use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const PNID: &str = "106540352242922";

/// A webhook body with one `messages` change carrying `value`.
fn body_with_value(value: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{ "field": "messages", "value": value }]
        }]
    }))
    .expect("a Value always serializes")
}

fn messages_value(messages: Value) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": PNID },
        "contacts": [{ "profile": { "name": "Maria Souza" }, "wa_id": "5511987654321" }],
        "messages": messages
    })
}

fn parse_value(value: Value) -> MessagesValue {
    let envelope = parse_envelope(&body_with_value(value)).expect("valid envelope");
    envelope.entry[0].changes[0]
        .messages()
        .expect("field is messages")
        .expect("value is an object")
}

/// Parses one message object of the given type through the whole pipeline.
fn parse_one(message: Value) -> InboundMessage {
    let mut value = parse_value(messages_value(json!([message.clone()])));
    assert_eq!(value.messages.len(), 1);
    let parsed = value.messages.remove(0);
    assert_eq!(parsed.raw, message, "raw must be kept verbatim");
    assert_roundtrips(&parsed);
    parsed
}

fn msg(kind: &str, payload: Value) -> Value {
    let mut m = json!({
        "from": "5511987654321",
        "id": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBDNzBGQzQ1QzE2NDAyRkQ0AA==",
        "timestamp": "1717000000",
        "type": kind
    });
    if !payload.is_null() {
        m[kind] = payload;
    }
    m
}

fn assert_roundtrips(m: &InboundMessage) {
    let stored = serde_json::to_value(m).expect("serializes");
    let back: InboundMessage = serde_json::from_value(stored).expect("deserializes");
    assert_eq!(&back, m);
    let reparsed = InboundMessage::from_raw(m.raw.clone()).expect("raw is an object");
    assert_eq!(&reparsed, m);
}

#[test]
fn text_message_with_metadata_and_contact() {
    let value = parse_value(messages_value(json!([msg(
        "text",
        json!({ "body": "Olá, preciso de ajuda 😮" })
    )])));
    assert_eq!(value.messaging_product.as_deref(), Some("whatsapp"));
    assert_eq!(value.metadata.phone_number_id, PNID);
    assert_eq!(
        value.metadata.display_phone_number.as_deref(),
        Some("15550783881")
    );
    assert_eq!(value.contacts.len(), 1);
    assert_eq!(value.contacts[0].wa_id.as_deref(), Some("5511987654321"));
    assert_eq!(
        value.contacts[0]
            .profile
            .as_ref()
            .and_then(|p| p.name.as_deref()),
        Some("Maria Souza")
    );
    let m = &value.messages[0];
    assert_eq!(m.from, "5511987654321");
    assert!(m.id.starts_with("wamid."));
    assert_eq!(m.timestamp_secs(), Some(1_717_000_000));
    assert_eq!(
        m.content,
        Content::Text {
            body: "Olá, preciso de ajuda 😮".into()
        }
    );
    assert_eq!(m.content.kind(), "text");
    assert_eq!(
        m.content.preview_text().as_deref(),
        Some("Olá, preciso de ajuda 😮")
    );
    assert_eq!(m.content.media_id(), None);
    assert!(m.context.is_none() && m.referral.is_none() && m.errors.is_empty());
}

#[test]
fn escaped_emoji_in_raw_body_is_decoded() {
    // Meta escapes non-ASCII; the parser must decode the surrogate pair.
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"{PNID}"}},"messages":[{{"from":"1","id":"wamid.1","timestamp":"1","type":"text","text":{{"body":"\ud83d\ude2e"}}}}]}}}}]}}]}}"#
    );
    let env = parse_envelope(body.as_bytes()).expect("valid");
    let value = env.entry[0].changes[0]
        .messages()
        .expect("messages")
        .expect("ok");
    assert_eq!(
        value.messages[0].content.preview_text().as_deref(),
        Some("😮")
    );
}

#[test]
fn image_message() {
    let m = parse_one(msg(
        "image",
        json!({
            "caption": "Comprovante",
            "mime_type": "image/jpeg",
            "sha256": "mbc9SxYHVxa8lzTYE1HKm2ArGa2ZSr5rJQWbcNGv9Lw=",
            "id": "1479537139650973"
        }),
    ));
    assert_eq!(
        m.content,
        Content::Image(Media {
            id: "1479537139650973".into(),
            mime_type: Some("image/jpeg".into()),
            sha256: Some("mbc9SxYHVxa8lzTYE1HKm2ArGa2ZSr5rJQWbcNGv9Lw=".into()),
            caption: Some("Comprovante".into()),
        })
    );
    assert_eq!(m.content.kind(), "image");
    assert_eq!(m.content.media_id(), Some("1479537139650973"));
    assert_eq!(m.content.mime_type(), Some("image/jpeg"));
    assert_eq!(
        m.content.sha256(),
        Some("mbc9SxYHVxa8lzTYE1HKm2ArGa2ZSr5rJQWbcNGv9Lw=")
    );
    assert_eq!(m.content.filename(), None);
    assert_eq!(m.content.preview_text().as_deref(), Some("Comprovante"));
}

#[test]
fn image_without_caption_has_no_preview() {
    let m = parse_one(msg(
        "image",
        json!({ "mime_type": "image/jpeg", "sha256": "abc=", "id": "42" }),
    ));
    assert_eq!(m.content.media_id(), Some("42"));
    assert_eq!(m.content.preview_text(), None);
}

#[test]
fn audio_voice_note_and_plain_audio() {
    let voice = parse_one(msg(
        "audio",
        json!({
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": "8dvJ3o7fAYD8Ptn5LZCJnaD6Ad+qP0eJMmtWwsknJ3Q=",
            "id": "1034577764479624",
            "voice": true
        }),
    ));
    assert_eq!(
        voice.content,
        Content::Audio(Audio {
            id: "1034577764479624".into(),
            mime_type: Some("audio/ogg; codecs=opus".into()),
            sha256: Some("8dvJ3o7fAYD8Ptn5LZCJnaD6Ad+qP0eJMmtWwsknJ3Q=".into()),
            voice: true,
        })
    );
    assert_eq!(voice.content.mime_type(), Some("audio/ogg; codecs=opus"));
    assert_eq!(voice.content.preview_text(), None);

    let file = parse_one(msg(
        "audio",
        json!({ "mime_type": "audio/mpeg", "sha256": "x", "id": "77" }),
    ));
    let Content::Audio(audio) = &file.content else {
        panic!("expected audio, got {:?}", file.content);
    };
    assert!(!audio.voice);
}

#[test]
fn video_message() {
    let m = parse_one(msg(
        "video",
        json!({ "mime_type": "video/mp4", "sha256": "vid=", "id": "9001", "caption": "Olha isso" }),
    ));
    assert_eq!(m.content.kind(), "video");
    assert_eq!(m.content.media_id(), Some("9001"));
    assert_eq!(m.content.preview_text().as_deref(), Some("Olha isso"));
}

#[test]
fn document_message() {
    let m = parse_one(msg(
        "document",
        json!({
            "filename": "boleto-maio.pdf",
            "mime_type": "application/pdf",
            "sha256": "doc=",
            "id": "5556667778"
        }),
    ));
    assert_eq!(
        m.content,
        Content::Document(Document {
            id: "5556667778".into(),
            mime_type: Some("application/pdf".into()),
            sha256: Some("doc=".into()),
            caption: None,
            filename: Some("boleto-maio.pdf".into()),
        })
    );
    assert_eq!(m.content.filename(), Some("boleto-maio.pdf"));
    assert_eq!(m.content.preview_text().as_deref(), Some("boleto-maio.pdf"));
}

#[test]
fn sticker_message() {
    let m = parse_one(msg(
        "sticker",
        json!({ "mime_type": "image/webp", "sha256": "st=", "id": "123123", "animated": true }),
    ));
    assert_eq!(
        m.content,
        Content::Sticker(Sticker {
            id: "123123".into(),
            mime_type: Some("image/webp".into()),
            sha256: Some("st=".into()),
            animated: true,
        })
    );
    assert_eq!(m.content.media_id(), Some("123123"));
    assert_eq!(m.content.preview_text(), None);
}

#[test]
fn location_message() {
    let m = parse_one(msg(
        "location",
        json!({
            "address": "Av. Paulista, 1578 - Bela Vista, São Paulo",
            "latitude": -23.561414,
            "longitude": -46.655881,
            "name": "MASP",
            "url": "https://masp.org.br"
        }),
    ));
    assert_eq!(
        m.content,
        Content::Location(Location {
            latitude: -23.561414,
            longitude: -46.655881,
            name: Some("MASP".into()),
            address: Some("Av. Paulista, 1578 - Bela Vista, São Paulo".into()),
            url: Some("https://masp.org.br".into()),
        })
    );
    assert_eq!(m.content.preview_text().as_deref(), Some("📍 MASP"));

    let pin = parse_one(msg("location", json!({ "latitude": 1.5, "longitude": -2 })));
    assert_eq!(pin.content.preview_text().as_deref(), Some("📍 1.5, -2"));
}

#[test]
fn contacts_message() {
    let card = json!({
        "name": { "formatted_name": "João Pereira", "first_name": "João", "last_name": "Pereira" },
        "phones": [{ "phone": "+55 11 91234-5678", "wa_id": "5511912345678", "type": "CELL" }],
        "emails": [{ "email": "joao@example.com", "type": "WORK" }]
    });
    let m = parse_one(msg("contacts", json!([card.clone()])));
    assert_eq!(m.content, Content::Contacts(vec![card]));
    assert_eq!(m.content.preview_text().as_deref(), Some("👤 João Pereira"));
}

#[test]
fn interactive_button_reply() {
    let m = parse_one(json!({
        "context": { "from": "15550783881", "id": "wamid.OUR_BUTTONS" },
        "from": "5511987654321", "id": "wamid.A", "timestamp": "1717000001", "type": "interactive",
        "interactive": { "type": "button_reply", "button_reply": { "id": "opt_sim", "title": "Sim" } }
    }));
    assert_eq!(
        m.content,
        Content::Interactive(Interactive::ButtonReply {
            id: "opt_sim".into(),
            title: "Sim".into()
        })
    );
    assert_eq!(m.content.preview_text().as_deref(), Some("Sim"));
    assert_eq!(
        m.context.as_ref().and_then(|c| c.id.as_deref()),
        Some("wamid.OUR_BUTTONS")
    );
}

#[test]
fn interactive_list_reply() {
    let m = parse_one(msg(
        "interactive",
        json!({
            "type": "list_reply",
            "list_reply": { "id": "row_2", "title": "Segunda via", "description": "Boleto atualizado" }
        }),
    ));
    assert_eq!(
        m.content,
        Content::Interactive(Interactive::ListReply {
            id: "row_2".into(),
            title: "Segunda via".into(),
            description: Some("Boleto atualizado".into()),
        })
    );
    assert_eq!(m.content.preview_text().as_deref(), Some("Segunda via"));
}

#[test]
fn interactive_nfm_reply() {
    let m = parse_one(msg(
        "interactive",
        json!({
            "type": "nfm_reply",
            "nfm_reply": {
                "name": "flow",
                "body": "Sent",
                "response_json": "{\"flow_token\":\"abc\",\"cpf\":\"123\"}"
            }
        }),
    ));
    assert_eq!(
        m.content,
        Content::Interactive(Interactive::NfmReply {
            name: Some("flow".into()),
            body: Some("Sent".into()),
            response_json: Some("{\"flow_token\":\"abc\",\"cpf\":\"123\"}".into()),
        })
    );
}

#[test]
fn unknown_and_malformed_interactive_replies() {
    let future = parse_one(msg(
        "interactive",
        json!({ "type": "call_permission_reply", "call_permission_reply": { "response": "accept" } }),
    ));
    assert_eq!(
        future.content,
        Content::Interactive(Interactive::Other {
            kind: "call_permission_reply".into()
        })
    );
    assert_eq!(future.content.preview_text(), None);

    let broken = parse_one(msg(
        "interactive",
        json!({ "type": "button_reply", "button_reply": { "id": "x" } }),
    ));
    assert_eq!(
        broken.content,
        Content::Interactive(Interactive::Other {
            kind: "button_reply".into()
        })
    );
}

#[test]
fn template_quick_reply_button() {
    let m = parse_one(json!({
        "context": { "from": "15550783881", "id": "wamid.TEMPLATE" },
        "from": "5511987654321", "id": "wamid.B", "timestamp": "1717000002", "type": "button",
        "button": { "payload": "FALAR_COM_ATENDENTE", "text": "Falar com atendente" }
    }));
    assert_eq!(
        m.content,
        Content::Button(Button {
            payload: Some("FALAR_COM_ATENDENTE".into()),
            text: "Falar com atendente".into()
        })
    );
    assert_eq!(
        m.content.preview_text().as_deref(),
        Some("Falar com atendente")
    );
}

#[test]
fn reaction_and_its_removal() {
    let added = parse_one(msg(
        "reaction",
        json!({ "message_id": "wamid.OURS", "emoji": "\u{1F44D}" }),
    ));
    let Content::Reaction(r) = &added.content else {
        panic!("expected reaction");
    };
    assert_eq!(r.message_id, "wamid.OURS");
    assert_eq!(r.emoji.as_deref(), Some("👍"));
    assert!(!r.is_removal());
    assert_eq!(added.content.preview_text().as_deref(), Some("👍"));

    for removal in [
        json!({ "message_id": "wamid.OURS", "emoji": "" }),
        json!({ "message_id": "wamid.OURS" }),
    ] {
        let m = parse_one(msg("reaction", removal));
        assert_eq!(
            m.content,
            Content::Reaction(Reaction {
                message_id: "wamid.OURS".into(),
                emoji: None
            })
        );
        assert_eq!(m.content.preview_text(), None);
    }
}

#[test]
fn order_message() {
    let items = json!([
        { "product_retailer_id": "SKU-1", "quantity": 2, "item_price": 19.9, "currency": "BRL" },
        { "product_retailer_id": "SKU-7", "quantity": 1, "item_price": 5, "currency": "BRL" }
    ]);
    let m = parse_one(msg(
        "order",
        json!({ "catalog_id": "4455667788", "text": "Entrega hoje?", "product_items": items }),
    ));
    let Content::Order(order) = &m.content else {
        panic!("expected order");
    };
    assert_eq!(order.catalog_id.as_deref(), Some("4455667788"));
    assert_eq!(order.text.as_deref(), Some("Entrega hoje?"));
    assert_eq!(Value::Array(order.product_items.clone()), items);
    assert_eq!(m.content.preview_text().as_deref(), Some("Entrega hoje?"));
}

#[test]
fn system_user_changed_number() {
    let m = parse_one(msg(
        "system",
        json!({
            "body": "Maria changed from 5511987654321 to 5511911112222",
            "wa_id": "5511911112222",
            "type": "user_changed_number"
        }),
    ));
    assert_eq!(
        m.content,
        Content::System(System {
            body: Some("Maria changed from 5511987654321 to 5511911112222".into()),
            kind: Some("user_changed_number".into()),
            wa_id: Some("5511911112222".into()),
        })
    );
    assert_eq!(m.content.kind(), "system");
}

#[test]
fn system_identity_changed_keeps_identity() {
    let m = parse_one(json!({
        "from": "5511987654321", "id": "wamid.C", "timestamp": "1717000003", "type": "system",
        "system": { "body": "User identity changed", "type": "customer_identity_changed" },
        "identity": { "acknowledged": true, "created_timestamp": 1717000000, "hash": "Sjvjlx8G6Z0=" }
    }));
    assert_eq!(
        m.identity
            .as_ref()
            .and_then(|i| i.get("hash"))
            .and_then(Value::as_str),
        Some("Sjvjlx8G6Z0=")
    );
}

#[test]
fn unsupported_message_with_errors() {
    let m = parse_one(json!({
        "from": "5511987654321", "id": "wamid.D", "timestamp": "1717000004", "type": "unsupported",
        "errors": [{
            "code": 131051,
            "title": "Message type unknown",
            "message": "Message type unknown",
            "error_data": { "details": "Message type is currently not supported." }
        }]
    }));
    assert_eq!(m.content, Content::Unsupported);
    assert_eq!(m.content.kind(), "unsupported");
    assert_eq!(
        m.errors,
        vec![WaError {
            code: 131051,
            title: Some("Message type unknown".into()),
            message: Some("Message type unknown".into()),
            details: Some("Message type is currently not supported.".into()),
        }]
    );
}

#[test]
fn legacy_unknown_type_is_unsupported() {
    let m = parse_one(json!({
        "from": "5511987654321", "id": "wamid.E", "timestamp": "1717000005", "type": "unknown",
        "errors": [{ "code": "131051", "details": "Message type is not currently supported", "title": "Unsupported message type" }]
    }));
    assert_eq!(m.content, Content::Unsupported);
    assert_eq!(m.errors[0].code, 131051);
    assert_eq!(
        m.errors[0].details.as_deref(),
        Some("Message type is not currently supported")
    );
}

#[test]
fn request_welcome() {
    let m = parse_one(msg("request_welcome", Value::Null));
    assert_eq!(m.content, Content::RequestWelcome);
    assert_eq!(m.content.kind(), "request_welcome");
}

#[test]
fn future_type_is_kept_as_unknown_with_raw() {
    let poll = msg(
        "poll",
        json!({ "question": "Qual horário?", "options": ["Manhã", "Tarde"] }),
    );
    let m = parse_one(poll.clone());
    assert_eq!(
        m.content,
        Content::Unknown {
            kind: "poll".into()
        }
    );
    assert_eq!(m.content.kind(), "poll");
    assert_eq!(m.raw, poll);
    assert_eq!(m.raw["poll"]["options"][1], "Tarde");
    assert_eq!(m.content.preview_text(), None);
}

#[test]
fn malformed_known_types_become_unknown() {
    for (kind, payload) in [
        ("text", json!({ "bdy": "typo" })),
        ("text", json!("just a string")),
        ("image", json!({ "mime_type": "image/jpeg" })),
        ("image", json!(["1", "image/png"])),
        ("audio", Value::Null),
        ("location", json!({ "latitude": "north", "longitude": 1 })),
        ("location", json!({ "latitude": "NaN", "longitude": 1 })),
        ("reaction", json!({ "emoji": "👍" })),
        ("button", json!({ "payload": "X" })),
        ("contacts", json!({ "name": "not an array" })),
        ("interactive", json!("nope")),
        ("order", json!(7)),
    ] {
        let m = parse_one(msg(kind, payload));
        assert_eq!(m.content, Content::Unknown { kind: kind.into() }, "{kind}");
        assert_eq!(m.content.kind(), kind);
    }
}

#[test]
fn wrongly_typed_optional_fields_are_tolerated() {
    let m = parse_one(msg(
        "image",
        json!({ "id": 1234567890, "mime_type": null, "caption": ["?"], "sha256": 5, "extra": {} }),
    ));
    assert_eq!(
        m.content,
        Content::Image(Media {
            id: "1234567890".into(),
            mime_type: None,
            sha256: Some("5".into()),
            caption: None,
        })
    );
}

#[test]
fn reply_context_and_forward_flags() {
    let reply = parse_one(json!({
        "context": { "from": "15550783881", "id": "wamid.QUOTED" },
        "from": "5511987654321", "id": "wamid.F", "timestamp": "1717000006", "type": "text",
        "text": { "body": "Isso mesmo" }
    }));
    assert_eq!(
        reply.context,
        Some(Context {
            from: Some("15550783881".into()),
            id: Some("wamid.QUOTED".into()),
            forwarded: false,
            frequently_forwarded: false,
            referred_product: None,
        })
    );

    let forwarded = parse_one(json!({
        "context": { "forwarded": true, "frequently_forwarded": true },
        "from": "5511987654321", "id": "wamid.G", "timestamp": "1717000007", "type": "text",
        "text": { "body": "Corrente" }
    }));
    let ctx = forwarded.context.expect("context");
    assert!(ctx.forwarded && ctx.frequently_forwarded);
    assert_eq!(ctx.id, None);

    let enquiry = parse_one(json!({
        "context": { "from": "15550783881", "id": "wamid.CATALOG",
                     "referred_product": { "catalog_id": "99", "product_retailer_id": "SKU-1" } },
        "from": "5511987654321", "id": "wamid.H", "timestamp": "1717000008", "type": "text",
        "text": { "body": "Tem em azul?" }
    }));
    assert_eq!(
        enquiry.context.and_then(|c| c.referred_product),
        Some(json!({ "catalog_id": "99", "product_retailer_id": "SKU-1" }))
    );
}

#[test]
fn click_to_whatsapp_referral() {
    let referral = json!({
        "source_url": "https://fb.me/abc",
        "source_id": "120208",
        "source_type": "ad",
        "headline": "Promoção de inverno",
        "body": "Fale conosco",
        "media_type": "image",
        "image_url": "https://scontent.example/img.jpg",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ"
    });
    let m = parse_one(json!({
        "referral": referral.clone(),
        "from": "5511987654321", "id": "wamid.I", "timestamp": "1717000009", "type": "text",
        "text": { "body": "Quero saber mais" }
    }));
    assert_eq!(m.referral, Some(referral));
}

#[test]
fn bsuid_only_sender() {
    let m = parse_one(json!({
        "from_user_id": "US.13491208655302741918", "id": "wamid.J", "timestamp": "1717000010",
        "type": "text", "text": { "body": "oi" }
    }));
    assert_eq!(m.from, "");
    assert_eq!(m.from_user_id(), Some("US.13491208655302741918"));
}

fn statuses_value(statuses: Value) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": PNID },
        "statuses": statuses
    })
}

#[test]
fn statuses_sent_delivered_read() {
    let value = parse_value(statuses_value(json!([
        {
            "id": "wamid.OUT1", "status": "sent", "timestamp": "1717000100", "recipient_id": "5511987654321",
            "biz_opaque_callback_data": "outbox:42",
            "conversation": { "id": "c0ffee", "expiration_timestamp": "1717086500", "origin": { "type": "service" } },
            "pricing": { "billable": true, "pricing_model": "CBP", "category": "service" }
        },
        {
            "id": "wamid.OUT1", "status": "delivered", "timestamp": "1717000101", "recipient_id": "5511987654321",
            "pricing": { "billable": false, "pricing_model": "PMP", "category": "service", "type": "free_customer_service" }
        },
        { "id": "wamid.OUT1", "status": "read", "timestamp": "1717000150", "recipient_id": "5511987654321" }
    ])));
    assert!(value.messages.is_empty() && value.contacts.is_empty());
    let kinds: Vec<&str> = value.statuses.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(kinds, ["sent", "delivered", "read"]);
    let sent = &value.statuses[0];
    assert_eq!(sent.status, StatusKind::Sent);
    assert_eq!(sent.id, "wamid.OUT1");
    assert_eq!(sent.timestamp_secs(), Some(1_717_000_100));
    assert_eq!(sent.recipient_id.as_deref(), Some("5511987654321"));
    assert_eq!(sent.biz_opaque_callback_data.as_deref(), Some("outbox:42"));
    assert_eq!(
        sent.conversation
            .as_ref()
            .and_then(|c| c.pointer("/origin/type")),
        Some(&json!("service"))
    );
    assert_eq!(value.statuses[1].status, StatusKind::Delivered);
    assert_eq!(
        value.statuses[1]
            .pricing
            .as_ref()
            .and_then(|p| p.get("type")),
        Some(&json!("free_customer_service"))
    );
    assert_eq!(value.statuses[2].status, StatusKind::Read);
    assert!(value.statuses[2].pricing.is_none());
    for s in &value.statuses {
        let back: Status =
            serde_json::from_value(serde_json::to_value(s).expect("ser")).expect("de");
        assert_eq!(&back, s);
    }
}

#[test]
fn status_failed_with_errors() {
    let value = parse_value(statuses_value(json!([{
        "id": "wamid.OUT2", "status": "failed", "timestamp": "1717000200", "recipient_id": "5511987654321",
        "errors": [{
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": { "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." },
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
        }]
    }])));
    let failed = &value.statuses[0];
    assert_eq!(failed.status, StatusKind::Failed);
    assert_eq!(failed.errors.len(), 1);
    assert_eq!(failed.errors[0].code, 131047);
    assert_eq!(
        failed.errors[0].title.as_deref(),
        Some("Re-engagement message")
    );
    assert!(
        failed.errors[0]
            .details
            .as_deref()
            .is_some_and(|d| d.contains("24 hours"))
    );
    assert!(failed.conversation.is_none() && failed.pricing.is_none());
    let stored = serde_json::to_value(failed).expect("ser");
    assert_eq!(
        stored["errors"][0]["details"],
        failed.errors[0].details.as_deref().unwrap_or_default()
    );
    assert_eq!(
        serde_json::from_value::<Status>(stored).expect("de"),
        *failed
    );
}

#[test]
fn status_kinds_deleted_unknown_and_missing() {
    let value = parse_value(statuses_value(json!([
        { "id": "wamid.X", "status": "deleted", "timestamp": "1" },
        { "id": "wamid.Y", "status": "warning", "timestamp": 2 },
        { "id": "wamid.Z" },
        "not a status"
    ])));
    assert_eq!(value.statuses.len(), 3);
    assert_eq!(value.statuses[0].status, StatusKind::Deleted);
    assert_eq!(
        value.statuses[1].status,
        StatusKind::Other("warning".into())
    );
    assert_eq!(value.statuses[1].status.as_str(), "warning");
    assert_eq!(value.statuses[1].timestamp_secs(), Some(2));
    assert_eq!(value.statuses[2].status.as_str(), "");
    assert_eq!(value.statuses[2].timestamp_secs(), None);
}

#[test]
fn error_codes_as_numbers_or_strings() {
    let value = parse_value(json!({
        "metadata": { "phone_number_id": PNID },
        "errors": [
            { "code": 131000, "title": "Something went wrong", "message": "Something went wrong",
              "error_data": { "details": "Unsupported webhook payload" } },
            { "code": "131056", "title": "Pair rate limit hit" },
            { "code": "abc" },
            { "title": "no code" }
        ]
    }));
    let codes: Vec<i64> = value.errors.iter().map(|e| e.code).collect();
    assert_eq!(
        codes,
        [131000, 131056, WaError::UNKNOWN_CODE, WaError::UNKNOWN_CODE]
    );
    assert_eq!(
        value.errors[0].details.as_deref(),
        Some("Unsupported webhook payload")
    );
}

#[test]
fn batched_envelope_with_several_entries_and_changes() {
    let other = "200000000000002";
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA_1",
                "changes": [
                    { "field": "messages", "value": messages_value(json!([
                        msg("text", json!({ "body": "um" })),
                        msg("text", json!({ "body": "dois" }))
                    ])) },
                    { "field": "messages", "value": statuses_value(json!([
                        { "id": "wamid.S", "status": "sent", "timestamp": "1" }
                    ])) }
                ]
            },
            {
                "id": "WABA_2",
                "time": 1717000000,
                "changes": [
                    { "field": "message_template_status_update", "value": {
                        "event": "APPROVED", "message_template_id": 1689556908129832_u64,
                        "message_template_name": "pedido_enviado", "message_template_language": "pt_BR", "reason": "NONE"
                    } },
                    { "field": "messages", "value": {
                        "messaging_product": "whatsapp",
                        "metadata": { "display_phone_number": "15550000002", "phone_number_id": other },
                        "messages": [msg("text", json!({ "body": "três" }))]
                    } }
                ]
            }
        ]
    }))
    .expect("ser");
    let env = parse_envelope(&body).expect("valid");
    assert_eq!(env.object, "whatsapp_business_account");
    assert_eq!(env.entry.len(), 2);
    assert_eq!(env.entry[0].id, "WABA_1");
    assert_eq!(env.entry[0].time, None);
    assert_eq!(env.entry[1].time, Some(1_717_000_000));
    assert_eq!(
        env.phone_number_ids(),
        vec![PNID.to_owned(), other.to_owned()]
    );

    let template_change = &env.entry[1].changes[0];
    assert_eq!(template_change.field, "message_template_status_update");
    assert!(template_change.messages().is_none());
    assert_eq!(
        template_change.value["message_template_id"],
        json!(1689556908129832_u64)
    );

    let bodies: Vec<String> = env
        .entry
        .iter()
        .flat_map(|e| &e.changes)
        .filter_map(|c| c.messages())
        .map(|r| r.expect("objects"))
        .flat_map(|v| v.messages)
        .filter_map(|m| m.content.preview_text())
        .collect();
    assert_eq!(bodies, ["um", "dois", "três"]);
}

#[test]
fn phone_number_ids_are_deduplicated_in_order() {
    let change = |pnid: &str| json!({ "field": "messages", "value": { "metadata": { "phone_number_id": pnid } } });
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [
            { "id": "1", "changes": [change("B"), change("A")] },
            { "id": "2", "changes": [change("B"), { "field": "account_update", "value": { "event": "X" } }, change("C")] }
        ]
    }))
    .expect("ser");
    let env = parse_envelope(&body).expect("valid");
    assert_eq!(env.phone_number_ids(), ["B", "A", "C"]);
}

#[test]
fn envelope_rejections() {
    let cases: &[(&[u8], bool)] = &[
        (b"", true),
        (b"not json", true),
        (b"{\"object\":", true),
        (b"[]", false),
        (b"42", false),
        (br#"{"entry":[]}"#, false),
        (br#"{"object":"page","entry":[]}"#, false),
        (br#"{"object":7,"entry":[]}"#, false),
        (br#"{"object":"whatsapp_business_account"}"#, false),
        (
            br#"{"object":"whatsapp_business_account","entry":{}}"#,
            false,
        ),
    ];
    for &(body, is_json_error) in cases {
        match parse_envelope(body) {
            Err(ParseError::Json(_)) if is_json_error => {}
            Err(ParseError::NotAnEnvelope(_)) if !is_json_error => {}
            other => panic!("{:?}: unexpected {other:?}", String::from_utf8_lossy(body)),
        }
    }
    let env = parse_envelope(br#"{"object":"whatsapp_business_account","entry":[]}"#).expect("ok");
    assert!(env.entry.is_empty());
    assert!(env.phone_number_ids().is_empty());
}

#[test]
fn messages_value_must_be_an_object() {
    let change = Change {
        field: "messages".into(),
        value: json!([1, 2]),
    };
    assert!(change.messages().expect("messages field").is_err());
    let empty = Change {
        field: "messages".into(),
        value: json!({}),
    };
    let value = empty.messages().expect("messages field").expect("ok");
    assert_eq!(value, MessagesValue::default());
}

#[test]
fn non_object_array_elements_are_dropped() {
    let value = parse_value(json!({
        "metadata": { "phone_number_id": 106540352242922_u64 },
        "contacts": [7, { "wa_id": 5511987654321_u64, "profile": "oops" }],
        "messages": [null, "x", msg("text", json!({ "body": "ok" }))],
        "errors": "not an array"
    }));
    assert_eq!(value.metadata.phone_number_id, PNID);
    assert_eq!(value.contacts.len(), 1);
    assert_eq!(value.contacts[0].wa_id.as_deref(), Some("5511987654321"));
    assert_eq!(value.contacts[0].profile, None);
    assert_eq!(value.messages.len(), 1);
    assert!(value.errors.is_empty());
}

#[test]
fn content_serde_uses_meta_shape() {
    let content = Content::Interactive(Interactive::ListReply {
        id: "r1".into(),
        title: "Row".into(),
        description: None,
    });
    assert_eq!(
        serde_json::to_value(&content).expect("ser"),
        json!({ "type": "interactive", "interactive": { "type": "list_reply", "list_reply": { "id": "r1", "title": "Row" } } })
    );
    assert_eq!(
        serde_json::to_value(Content::Text { body: "oi".into() }).expect("ser"),
        json!({ "type": "text", "text": { "body": "oi" } })
    );
    assert_eq!(
        serde_json::to_value(Content::Unknown {
            kind: "poll".into()
        })
        .expect("ser"),
        json!({ "type": "poll" })
    );
}

// ---- property tests ----

/// Keys that steer arbitrary JSON into the parser's interesting branches.
const KEYS: &[&str] = &[
    "object",
    "entry",
    "changes",
    "field",
    "value",
    "metadata",
    "phone_number_id",
    "messages",
    "statuses",
    "contacts",
    "errors",
    "type",
    "text",
    "body",
    "image",
    "id",
    "audio",
    "voice",
    "location",
    "latitude",
    "longitude",
    "interactive",
    "button_reply",
    "list_reply",
    "nfm_reply",
    "response_json",
    "reaction",
    "emoji",
    "message_id",
    "order",
    "product_items",
    "system",
    "context",
    "code",
    "error_data",
    "details",
    "status",
    "timestamp",
    "profile",
    "name",
    "x",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // non-finite becomes null
        "[a-z0-9 ._=-]{0,12}".prop_map(Value::from),
        proptest::sample::select(KEYS).prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::sample::select(KEYS).prop_map(str::to_owned),
                        "[a-z_]{0,8}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

const KINDS: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "request_welcome",
    "unsupported",
    "unknown",
    "poll",
    "",
];

fn arb_message() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(KINDS),
        arb_json(),
        proptest::option::of(arb_json()),
        proptest::option::of(arb_json()),
    )
        .prop_map(|(kind, payload, context, errors)| {
            let mut m = msg(kind, Value::Null);
            m[kind] = payload;
            if let Some(c) = context {
                m["context"] = c;
            }
            if let Some(e) = errors {
                m["errors"] = e;
            }
            m
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(env) = parse_envelope(&bytes) {
            for change in env.entry.iter().flat_map(|e| &e.changes) {
                let _ = change.messages();
            }
        }
    }

    #[test]
    fn arbitrary_json_bodies_never_panic(json in arb_json()) {
        let body = serde_json::to_vec(&json).expect("ser");
        if let Ok(env) = parse_envelope(&body) {
            let _ = env.phone_number_ids();
            for change in env.entry.iter().flat_map(|e| &e.changes) {
                let _ = change.messages();
            }
        }
    }

    #[test]
    fn arbitrary_messages_values_fail_only_when_not_objects(value in arb_json()) {
        let env = parse_envelope(&body_with_value(value.clone())).expect("valid envelope");
        let parsed = env.entry[0].changes[0].messages().expect("messages field");
        prop_assert_eq!(parsed.is_ok(), value.is_object());
    }

    #[test]
    fn arbitrary_messages_parse_and_roundtrip(messages in proptest::collection::vec(arb_message(), 1..4)) {
        let value = parse_value(messages_value(Value::Array(messages.clone())));
        prop_assert_eq!(value.messages.len(), messages.len());
        for (parsed, original) in value.messages.iter().zip(&messages) {
            // Compare with the original as it reads back from text: serde_json's default
            // float parsing may differ from the in-memory f64 in the last bit.
            let expected: Value =
                serde_json::from_slice(&serde_json::to_vec(original).expect("ser")).expect("de");
            prop_assert_eq!(&parsed.raw, &expected);
            let _ = (parsed.content.kind(), parsed.content.preview_text(), parsed.content.media_id());
            let stored = serde_json::to_value(parsed).expect("ser");
            let back: InboundMessage = serde_json::from_value(stored).expect("de");
            prop_assert_eq!(&back, parsed);
            let content_back: Content =
                serde_json::from_value(serde_json::to_value(&parsed.content).expect("ser")).expect("de");
            prop_assert_eq!(&content_back, &parsed.content);
        }
        let stored = serde_json::to_value(&value).expect("ser");
        let back: MessagesValue = serde_json::from_value(stored).expect("de");
        prop_assert_eq!(back, value);
    }
}
