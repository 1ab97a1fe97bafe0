use serde_json::json;

use super::*;

fn to(content: OutboundContent) -> OutboundMessage {
    OutboundMessage {
        to: "5511987654321".into(),
        reply_to: None,
        content,
    }
}

fn buttons(n: usize) -> Vec<ReplyButton> {
    (0..n)
        .map(|i| ReplyButton {
            id: format!("opt_{i}"),
            title: format!("Opção {i}"),
        })
        .collect()
}

fn rows(prefix: &str, n: usize) -> Vec<ListRow> {
    (0..n)
        .map(|i| ListRow {
            id: format!("{prefix}{i}"),
            title: format!("Linha {i}"),
            description: None,
        })
        .collect()
}

fn list(sections: Vec<ListSection>) -> OutboundContent {
    OutboundContent::List {
        header: None,
        body: "Escolha".into(),
        footer: None,
        button: "Ver opções".into(),
        sections,
    }
}

#[test]
fn text_json() {
    let msg = to(OutboundContent::Text {
        body: "Olá! Veja https://atende.example".into(),
        preview_url: true,
    });
    assert_eq!(
        msg.to_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "text",
            "text": { "body": "Olá! Veja https://atende.example", "preview_url": true }
        })
    );
    assert_eq!(msg.content.kind(), "text");
}

#[test]
fn reply_context_json() {
    let msg = OutboundMessage {
        to: "5511987654321".into(),
        reply_to: Some("wamid.QUOTED".into()),
        content: OutboundContent::Text {
            body: "Respondendo".into(),
            preview_url: false,
        },
    };
    assert_eq!(
        msg.to_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "text",
            "text": { "body": "Respondendo", "preview_url": false },
            "context": { "message_id": "wamid.QUOTED" }
        })
    );
}

#[test]
fn image_by_id_json() {
    let msg = to(OutboundContent::Image {
        media: MediaRef::Id("1479537139650973".into()),
        caption: Some("Seu comprovante".into()),
    });
    assert_eq!(
        msg.to_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "image",
            "image": { "id": "1479537139650973", "caption": "Seu comprovante" }
        })
    );
}

#[test]
fn media_by_link_and_without_caption_json() {
    let video = to(OutboundContent::Video {
        media: MediaRef::Link("https://cdn.example/a.mp4".into()),
        caption: None,
    });
    assert_eq!(
        video.to_json()["video"],
        json!({ "link": "https://cdn.example/a.mp4" })
    );
    let audio = to(OutboundContent::Audio {
        media: MediaRef::Id("77".into()),
    });
    assert_eq!(audio.to_json()["type"], "audio");
    assert_eq!(audio.to_json()["audio"], json!({ "id": "77" }));
    let sticker = to(OutboundContent::Sticker {
        media: MediaRef::Id("88".into()),
    });
    assert_eq!(sticker.to_json()["sticker"], json!({ "id": "88" }));
}

#[test]
fn document_with_filename_json() {
    let msg = to(OutboundContent::Document {
        media: MediaRef::Id("5556667778".into()),
        caption: Some("Boleto de maio".into()),
        filename: Some("boleto-maio.pdf".into()),
    });
    assert_eq!(
        msg.to_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "document",
            "document": { "id": "5556667778", "caption": "Boleto de maio", "filename": "boleto-maio.pdf" }
        })
    );
}

#[test]
fn reaction_json() {
    let msg = to(OutboundContent::Reaction {
        message_id: "wamid.THEIRS".into(),
        emoji: "👍".into(),
    });
    assert_eq!(
        msg.to_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "reaction",
            "reaction": { "message_id": "wamid.THEIRS", "emoji": "👍" }
        })
    );
}

#[test]
fn location_json() {
    let msg = to(OutboundContent::Location {
        latitude: -23.561414,
        longitude: -46.655881,
        name: Some("MASP".into()),
        address: None,
    });
    assert_eq!(
        msg.to_json()["location"],
        json!({ "latitude": -23.561414, "longitude": -46.655881, "name": "MASP" })
    );
}

#[test]
fn buttons_json() {
    let msg = to(OutboundContent::Buttons {
        header: Some("Atendimento".into()),
        body: "Deseja falar com um atendente?".into(),
        footer: Some("Responda com um toque".into()),
        buttons: vec![
            ReplyButton {
                id: "sim".into(),
                title: "Sim".into(),
            },
            ReplyButton {
                id: "nao".into(),
                title: "Não".into(),
            },
        ],
    });
    assert_eq!(msg.content.kind(), "interactive");
    assert_eq!(
        msg.to_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": { "type": "text", "text": "Atendimento" },
                "body": { "text": "Deseja falar com um atendente?" },
                "footer": { "text": "Responda com um toque" },
                "action": { "buttons": [
                    { "type": "reply", "reply": { "id": "sim", "title": "Sim" } },
                    { "type": "reply", "reply": { "id": "nao", "title": "Não" } }
                ] }
            }
        })
    );
}

#[test]
fn list_json() {
    let msg = to(OutboundContent::List {
        header: None,
        body: "Como podemos ajudar?".into(),
        footer: None,
        button: "Ver opções".into(),
        sections: vec![
            ListSection {
                title: Some("Financeiro".into()),
                rows: vec![ListRow {
                    id: "boleto".into(),
                    title: "Segunda via".into(),
                    description: Some("Boleto atualizado".into()),
                }],
            },
            ListSection {
                title: Some("Suporte".into()),
                rows: vec![ListRow {
                    id: "tecnico".into(),
                    title: "Suporte técnico".into(),
                    description: None,
                }],
            },
        ],
    });
    assert_eq!(
        msg.to_json()["interactive"],
        json!({
            "type": "list",
            "body": { "text": "Como podemos ajudar?" },
            "action": {
                "button": "Ver opções",
                "sections": [
                    { "title": "Financeiro", "rows": [{ "id": "boleto", "title": "Segunda via", "description": "Boleto atualizado" }] },
                    { "title": "Suporte", "rows": [{ "id": "tecnico", "title": "Suporte técnico" }] }
                ]
            }
        })
    );
    assert_eq!(msg.to_json()["type"], "interactive");
}

#[test]
fn template_json() {
    let components = json!([
        { "type": "body", "parameters": [{ "type": "text", "text": "Maria" }, { "type": "text", "text": "#123" }] },
        { "type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{ "type": "payload", "payload": "FALAR" }] }
    ]);
    let msg = to(OutboundContent::Template {
        name: "pedido_enviado".into(),
        language: "pt_BR".into(),
        components: components.clone(),
    });
    assert_eq!(
        msg.to_json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "template",
            "template": { "name": "pedido_enviado", "language": { "code": "pt_BR" }, "components": components }
        })
    );
    for empty in [Value::Null, json!([])] {
        let bare = to(OutboundContent::Template {
            name: "ola".into(),
            language: "pt_BR".into(),
            components: empty,
        });
        assert_eq!(
            bare.to_json()["template"],
            json!({ "name": "ola", "language": { "code": "pt_BR" } })
        );
    }
}

#[test]
fn outbox_serde_is_internally_tagged_and_roundtrips() {
    let content = OutboundContent::Image {
        media: MediaRef::Link("https://cdn.example/x.png".into()),
        caption: None,
    };
    assert_eq!(
        serde_json::to_value(&content).expect("ser"),
        json!({ "type": "image", "media": { "link": "https://cdn.example/x.png" } })
    );
    let all = [
        content,
        OutboundContent::Text {
            body: "oi".into(),
            preview_url: false,
        },
        OutboundContent::Document {
            media: MediaRef::Id("1".into()),
            caption: Some("c".into()),
            filename: Some("f.pdf".into()),
        },
        OutboundContent::Reaction {
            message_id: "wamid.X".into(),
            emoji: String::new(),
        },
        OutboundContent::Location {
            latitude: 1.25,
            longitude: -2.5,
            name: None,
            address: Some("Rua A".into()),
        },
        OutboundContent::Buttons {
            header: None,
            body: "b".into(),
            footer: None,
            buttons: buttons(2),
        },
        list(vec![ListSection {
            title: None,
            rows: rows("r", 3),
        }]),
        OutboundContent::Template {
            name: "t".into(),
            language: "pt_BR".into(),
            components: json!([{ "type": "body" }]),
        },
    ];
    for c in all {
        let stored = serde_json::to_string(&c).expect("ser");
        let back: OutboundContent = serde_json::from_str(&stored).expect("de");
        assert_eq!(back, c, "{stored}");
    }
    let msg = OutboundMessage {
        to: "1".into(),
        reply_to: Some("wamid.R".into()),
        content: OutboundContent::Sticker {
            media: MediaRef::Id("9".into()),
        },
    };
    let back: OutboundMessage =
        serde_json::from_value(serde_json::to_value(&msg).expect("ser")).expect("de");
    assert_eq!(back, msg);
    assert_eq!(
        serde_json::from_value::<OutboundContent>(json!({ "type": "text", "body": "x" }))
            .expect("preview_url defaults"),
        OutboundContent::Text {
            body: "x".into(),
            preview_url: false
        }
    );
}

fn assert_too_long(content: OutboundContent, expected_field: &str) {
    match content.validate() {
        Err(SendValidationError::TooLong { field, .. }) => assert_eq!(field, expected_field),
        other => panic!("expected TooLong({expected_field}), got {other:?}"),
    }
}

#[test]
fn text_limits() {
    let ok = OutboundContent::Text {
        body: "é".repeat(limits::TEXT_BODY),
        preview_url: false,
    };
    assert_eq!(ok.validate(), Ok(()));
    assert_too_long(
        OutboundContent::Text {
            body: "a".repeat(limits::TEXT_BODY + 1),
            preview_url: false,
        },
        "text.body",
    );
    assert!(matches!(
        OutboundContent::Text {
            body: "  ".into(),
            preview_url: false
        }
        .validate(),
        Err(SendValidationError::Empty { .. })
    ));
}

#[test]
fn caption_and_media_limits() {
    let image = |caption: usize| OutboundContent::Image {
        media: MediaRef::Id("1".into()),
        caption: Some("x".repeat(caption)),
    };
    assert_eq!(image(limits::CAPTION).validate(), Ok(()));
    assert_too_long(image(limits::CAPTION + 1), "caption");
    assert_too_long(
        OutboundContent::Document {
            media: MediaRef::Id("1".into()),
            caption: Some("x".repeat(limits::CAPTION + 1)),
            filename: None,
        },
        "caption",
    );
    assert!(matches!(
        OutboundContent::Audio {
            media: MediaRef::Id(String::new())
        }
        .validate(),
        Err(SendValidationError::Empty { .. })
    ));
    assert!(matches!(
        OutboundContent::Sticker {
            media: MediaRef::Link("ftp://x/y.webp".into())
        }
        .validate(),
        Err(SendValidationError::InvalidLink { .. })
    ));
    assert_eq!(
        OutboundContent::Video {
            media: MediaRef::Link("https://cdn.example/a.mp4".into()),
            caption: None
        }
        .validate(),
        Ok(())
    );
}

#[test]
fn button_limits() {
    let with = |buttons: Vec<ReplyButton>| OutboundContent::Buttons {
        header: None,
        body: "Escolha".into(),
        footer: None,
        buttons,
    };
    assert_eq!(with(buttons(1)).validate(), Ok(()));
    assert_eq!(with(buttons(3)).validate(), Ok(()));
    for n in [0, 4] {
        assert!(
            matches!(
                with(buttons(n)).validate(),
                Err(SendValidationError::Count { count, min: 1, max: 3, .. }) if count == n
            ),
            "{n} buttons"
        );
    }
    let long_title = vec![ReplyButton {
        id: "a".into(),
        title: "x".repeat(limits::BUTTON_TITLE + 1),
    }];
    assert_too_long(with(long_title), "buttons[0].title");
    let exact_title = vec![ReplyButton {
        id: "a".into(),
        title: "ç".repeat(limits::BUTTON_TITLE),
    }];
    assert_eq!(with(exact_title).validate(), Ok(()));
    let long_id = vec![ReplyButton {
        id: "i".repeat(limits::BUTTON_ID + 1),
        title: "ok".into(),
    }];
    assert_too_long(with(long_id), "buttons[0].id");
    let duplicated = vec![
        ReplyButton {
            id: "same".into(),
            title: "A".into(),
        },
        ReplyButton {
            id: "same".into(),
            title: "B".into(),
        },
    ];
    assert!(matches!(
        with(duplicated).validate(),
        Err(SendValidationError::DuplicateId { .. })
    ));
    assert_too_long(
        OutboundContent::Buttons {
            header: Some("h".repeat(limits::HEADER_TEXT + 1)),
            body: "b".into(),
            footer: None,
            buttons: buttons(1),
        },
        "header",
    );
    assert_too_long(
        OutboundContent::Buttons {
            header: None,
            body: "b".repeat(limits::BUTTONS_BODY + 1),
            footer: None,
            buttons: buttons(1),
        },
        "body",
    );
}

#[test]
fn list_limits() {
    let one = |rows: Vec<ListRow>| {
        list(vec![ListSection {
            title: Some("Seção".into()),
            rows,
        }])
    };
    assert_eq!(one(rows("r", 10)).validate(), Ok(()));
    assert!(matches!(
        one(rows("r", 11)).validate(),
        Err(SendValidationError::Count {
            count: 11,
            max: 10,
            ..
        })
    ));
    assert!(matches!(
        one(Vec::new()).validate(),
        Err(SendValidationError::Count { count: 0, .. })
    ));
    // The row limit is over all sections together.
    let split = list(vec![
        ListSection {
            title: Some("A".into()),
            rows: rows("a", 6),
        },
        ListSection {
            title: Some("B".into()),
            rows: rows("b", 5),
        },
    ]);
    assert!(matches!(
        split.validate(),
        Err(SendValidationError::Count { count: 11, .. })
    ));
    let untitled = list(vec![
        ListSection {
            title: None,
            rows: rows("a", 1),
        },
        ListSection {
            title: Some("B".into()),
            rows: rows("b", 1),
        },
    ]);
    assert!(matches!(
        untitled.validate(),
        Err(SendValidationError::MissingSectionTitle { .. })
    ));
    let mut long_row = rows("r", 1);
    long_row[0].title = "t".repeat(limits::ROW_TITLE + 1);
    assert_too_long(one(long_row), "sections[0].rows[0].title");
    let mut long_description = rows("r", 1);
    long_description[0].description = Some("d".repeat(limits::ROW_DESCRIPTION + 1));
    assert_too_long(one(long_description), "sections[0].rows[0].description");
    let mut ok_description = rows("r", 1);
    ok_description[0].description = Some("d".repeat(limits::ROW_DESCRIPTION));
    assert_eq!(one(ok_description).validate(), Ok(()));
    let mut long_id = rows("r", 1);
    long_id[0].id = "i".repeat(limits::ROW_ID + 1);
    assert_too_long(one(long_id), "sections[0].rows[0].id");
    let label = OutboundContent::List {
        header: None,
        body: "b".into(),
        footer: None,
        button: "l".repeat(limits::LIST_BUTTON_LABEL + 1),
        sections: vec![ListSection {
            title: None,
            rows: rows("r", 1),
        }],
    };
    assert_too_long(label, "button");
    let mut dup = rows("r", 2);
    dup[1].id = dup[0].id.clone();
    assert!(matches!(
        one(dup).validate(),
        Err(SendValidationError::DuplicateId { .. })
    ));
}

#[test]
fn location_reaction_template_and_message_checks() {
    let at = |latitude, longitude| OutboundContent::Location {
        latitude,
        longitude,
        name: None,
        address: None,
    };
    assert_eq!(at(-23.5, -46.6).validate(), Ok(()));
    for (lat, lon) in [(91.0, 0.0), (0.0, -181.0), (f64::NAN, 0.0)] {
        assert!(matches!(
            at(lat, lon).validate(),
            Err(SendValidationError::InvalidCoordinates { .. })
        ));
    }
    assert_eq!(
        OutboundContent::Reaction {
            message_id: "wamid.X".into(),
            emoji: String::new()
        }
        .validate(),
        Ok(()),
        "an empty emoji removes the reaction"
    );
    assert!(
        OutboundContent::Reaction {
            message_id: String::new(),
            emoji: "👍".into()
        }
        .validate()
        .is_err()
    );
    let template = |components| OutboundContent::Template {
        name: "pedido".into(),
        language: "pt_BR".into(),
        components,
    };
    assert_eq!(template(Value::Null).validate(), Ok(()));
    assert_eq!(
        template(json!({ "type": "body" })).validate(),
        Err(SendValidationError::InvalidTemplateComponents)
    );
    let nobody = OutboundMessage {
        to: " ".into(),
        reply_to: None,
        content: OutboundContent::Text {
            body: "oi".into(),
            preview_url: false,
        },
    };
    assert_eq!(
        nobody.validate(),
        Err(SendValidationError::Empty { field: "to".into() })
    );
    assert_eq!(
        SendValidationError::TooLong {
            field: "caption".into(),
            len: 1100,
            max: 1024
        }
        .to_string(),
        "caption has 1100 characters; the limit is 1024"
    );
}
