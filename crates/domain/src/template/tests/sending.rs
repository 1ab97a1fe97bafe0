//! What a send supplies and what Meta and the customer get.

use super::*;
use serde_json::json;

#[test]
fn parameters_of_each_kind() {
    let p = parameters(&def(&base()));
    assert_eq!(p.header, vec!["1"]);
    assert_eq!(p.body, vec!["1", "2"]);
    assert_eq!(p.buttons, vec![(1, "1".to_string())]);
    assert_eq!(p.header_media, None);

    let p = parameters(&def(&named()));
    assert_eq!(p.header, vec!["primeiro_nome"]);
    assert_eq!(p.body, vec!["primeiro_nome", "cupom"]);

    let p = parameters(&def(&media()));
    assert_eq!(p.header_media, Some(MediaKind::Image));
    assert_eq!(p.buttons, vec![(0, COUPON_CODE.to_string())]);

    let p = parameters(&def(&auth()));
    assert_eq!(p.body, vec!["1"]);
    assert!(p.buttons.is_empty());
}

#[test]
fn check_values_cases() {
    assert_eq!(check_codes(&base(), &base_values()), vec![]);
    type Case = (&'static str, fn(&mut Values), &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            "missing body",
            |v| {
                v.body.remove("2");
            },
            "value_missing",
            "values.body.2",
        ),
        (
            "missing header",
            |v| {
                v.header.clear();
            },
            "value_missing",
            "values.header.1",
        ),
        (
            "extra body",
            |v| {
                v.body.insert("3".into(), "x".into());
            },
            "value_unexpected",
            "values.body.3",
        ),
        (
            "blank",
            |v| {
                v.body.insert("1".into(), "  ".into());
            },
            "value_empty",
            "values.body.1",
        ),
        (
            "newline",
            |v| {
                v.body.insert("1".into(), "Bru\nno".into());
            },
            "value_invalid_whitespace",
            "values.body.1",
        ),
        (
            "tab",
            |v| {
                v.body.insert("1".into(), "Bru\tno".into());
            },
            "value_invalid_whitespace",
            "values.body.1",
        ),
        (
            "five spaces",
            |v| {
                v.body.insert("1".into(), "Bru     no".into());
            },
            "value_invalid_whitespace",
            "values.body.1",
        ),
        (
            "body too long",
            |v| {
                v.body.insert("1".into(), "a".repeat(1100));
            },
            "value_too_long",
            "values.body",
        ),
        (
            "header too long",
            |v| {
                v.header.insert("1".into(), "a".repeat(60));
            },
            "value_too_long",
            "values.header",
        ),
        (
            "button missing",
            |v| {
                v.buttons.clear();
            },
            "value_missing",
            "values.buttons.1",
        ),
        (
            "button extra",
            |v| {
                v.buttons.insert(2, "x".into());
            },
            "value_unexpected",
            "values.buttons.2",
        ),
        (
            "url suffix with space",
            |v| {
                v.buttons.insert(1, "a b".into());
            },
            "value_invalid_whitespace",
            "values.buttons.1",
        ),
        (
            "url too long",
            |v| {
                v.buttons.insert(1, "a".repeat(2000));
            },
            "value_too_long",
            "values.buttons.1",
        ),
        (
            "media not expected",
            |v| {
                v.header_media = Some(MediaValue::Id("1".into()));
            },
            "value_unexpected",
            "values.header_media",
        ),
    ];
    for (label, mutate, code, field) in cases {
        let mut v = base_values();
        mutate(&mut v);
        let found = check_codes(&base(), &v);
        assert!(
            found.iter().any(|(c, f)| *c == code && f == field),
            "{label}: {found:?}"
        );
    }
    // Four spaces in a row are fine; the quick reply may carry a payload.
    let mut v = base_values();
    v.body.insert("1".into(), "Bru    no".into());
    v.buttons.insert(0, "FALAR_ATENDENTE".into());
    assert_eq!(check_codes(&base(), &v), vec![]);
}

#[test]
fn check_values_of_media_and_codes() {
    let ok = Values {
        header_media: Some(MediaValue::Link("https://cdn.loja.com.br/promo.jpg".into())),
        body: [("1".to_string(), "Ana".to_string())].into(),
        buttons: [(0, "PROMO25".to_string())].into(),
        ..Values::default()
    };
    assert_eq!(check_codes(&media(), &ok), vec![]);
    let mut v = ok.clone();
    v.header_media = None;
    assert!(
        check_codes(&media(), &v)
            .iter()
            .any(|(c, _)| *c == "media_missing")
    );
    v.header_media = Some(MediaValue::Link("ftp://x".into()));
    assert!(
        check_codes(&media(), &v)
            .iter()
            .any(|(c, _)| *c == "media_link_invalid")
    );
    v.header_media = Some(MediaValue::Location(LocationValue {
        latitude: 1.0,
        longitude: 2.0,
        name: None,
        address: None,
    }));
    assert!(
        check_codes(&media(), &v)
            .iter()
            .any(|(c, _)| *c == "media_kind_mismatch")
    );
    let mut v = ok.clone();
    v.buttons.insert(0, "A".repeat(16));
    assert!(
        check_codes(&media(), &v)
            .iter()
            .any(|(c, f)| *c == "value_too_long" && f == "values.buttons.0")
    );

    let code = Values::body([("1", "482913")]);
    assert_eq!(check_codes(&auth(), &code), vec![]);
    assert!(
        check_codes(&auth(), &Values::default())
            .iter()
            .any(|(c, _)| *c == "value_missing")
    );
}

#[test]
fn render_fills_values_and_falls_back_to_examples() {
    let d = def(&base());
    let r = render(&d, &base_values());
    assert_eq!(r.header.as_deref(), Some("Pedido #987"));
    assert_eq!(r.body, "Olá Bruno, seu pedido #987 saiu para entrega hoje.");
    assert_eq!(
        r.footer.as_deref(),
        Some("Responda SAIR para não receber mais")
    );
    assert_eq!(r.buttons.len(), 3);
    assert_eq!(r.buttons[0].text, "Falar com atendente");
    assert_eq!(
        r.buttons[1].url.as_deref(),
        Some("https://loja.com.br/t/987")
    );
    assert_eq!(r.buttons[2].phone_number.as_deref(), Some("+5511987654321"));

    let preview = render(&d, &Values::default());
    assert_eq!(preview.header.as_deref(), Some("Pedido #123"));
    assert_eq!(
        preview.body,
        "Olá Ana, seu pedido #123 saiu para entrega hoje."
    );
    assert_eq!(
        preview.buttons[1].url.as_deref(),
        Some("https://loja.com.br/t/123")
    );

    // A value that looks like a variable is inserted verbatim, not expanded.
    let tricky = Values::body([("1", "{{2}}"), ("2", "X")]);
    assert_eq!(
        render(&d, &tricky).body,
        "Olá {{2}}, seu pedido X saiu para entrega hoje."
    );

    let n = render(&def(&named()), &Values::body([("cupom", "VOLTA5")]));
    assert_eq!(n.header.as_deref(), Some("Oi Ana"));
    assert_eq!(n.body, "Olá Ana, use o cupom VOLTA5 na sua próxima compra.");

    let m = render(&def(&media()), &Values::default());
    assert_eq!(m.header, None);
    assert_eq!(m.header_media, Some(MediaKind::Image));
    assert_eq!(m.buttons[0].kind, "COPY_CODE");
    assert_eq!(m.buttons[0].text, "Copiar código");

    let a = render(&def(&auth()), &Values::body([("1", "482913")]));
    assert_eq!(
        a.body,
        "*482913* é seu código de verificação. Para sua segurança, não o compartilhe."
    );
    assert_eq!(
        a.footer.as_deref(),
        Some("Este código expira em 10 minutos.")
    );
    assert_eq!(a.buttons[0].text, "Copiar código");
    assert!(
        render(&def(&auth()), &Values::default())
            .body
            .contains(SAMPLE_CODE)
    );
}

#[test]
fn send_components_match_meta_shapes() {
    let got = send_components(&def(&base()), &base_values());
    assert_eq!(
        got,
        json!([
            {"type": "header", "parameters": [{"type": "text", "text": "#987"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Bruno"}, {"type": "text", "text": "#987"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "987"}]}
        ])
    );

    let mut with_payload = base_values();
    with_payload.buttons.insert(0, "FALAR".into());
    let got = send_components(&def(&base()), &with_payload);
    assert_eq!(
        got[2],
        json!({"type": "button", "sub_type": "quick_reply", "index": "0",
               "parameters": [{"type": "payload", "payload": "FALAR"}]})
    );

    let named_values = Values {
        header: [("primeiro_nome".to_string(), "Ana".to_string())].into(),
        body: [("primeiro_nome", "Ana"), ("cupom", "X10")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        ..Values::default()
    };
    assert_eq!(
        send_components(&def(&named()), &named_values),
        json!([
            {"type": "header", "parameters": [{"type": "text", "parameter_name": "primeiro_nome", "text": "Ana"}]},
            {"type": "body", "parameters": [
                {"type": "text", "parameter_name": "primeiro_nome", "text": "Ana"},
                {"type": "text", "parameter_name": "cupom", "text": "X10"}]}
        ])
    );

    let media_values = Values {
        header_media: Some(MediaValue::Id("1234".into())),
        body: [("1".to_string(), "Ana".to_string())].into(),
        buttons: [(0, "PROMO25".to_string())].into(),
        ..Values::default()
    };
    assert_eq!(
        send_components(&def(&media()), &media_values),
        json!([
            {"type": "header", "parameters": [{"type": "image", "image": {"id": "1234"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
            {"type": "button", "sub_type": "copy_code", "index": "0",
             "parameters": [{"type": "coupon_code", "coupon_code": "PROMO25"}]}
        ])
    );

    let mut loc = base();
    set(
        &mut loc,
        "/components/0",
        json!({"type": "HEADER", "format": "LOCATION"}),
    );
    let mut v = base_values();
    v.header.clear();
    v.header_media = Some(MediaValue::Location(LocationValue {
        latitude: -23.55,
        longitude: -46.63,
        name: Some("Loja Centro".into()),
        address: None,
    }));
    assert_eq!(check_codes(&loc, &v), vec![]);
    assert_eq!(
        send_components(&def(&loc), &v)[0],
        json!({"type": "header", "parameters": [{"type": "location",
               "location": {"latitude": -23.55, "longitude": -46.63, "name": "Loja Centro"}}]})
    );

    assert_eq!(
        send_components(&def(&auth()), &Values::body([("1", "482913")])),
        json!([
            {"type": "body", "parameters": [{"type": "text", "text": "482913"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "482913"}]}
        ])
    );

    // A missing value is left out (Meta answers 132000), never replaced by the example.
    let got = send_components(&def(&base()), &Values::default());
    assert_eq!(got, json!([]));
}

#[test]
fn values_from_the_simple_form_and_from_meta_components() {
    let d = def(&base());
    let flat = [("1", "#987"), ("2", "#987"), ("buttons.1", "987")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let v = Values::from_variables(&d, &flat);
    assert_eq!(v.header.get("1").map(String::as_str), Some("#987"));
    assert_eq!(v.body.len(), 2);
    assert_eq!(v.buttons.get(&1).map(String::as_str), Some("987"));
    let unknown = [("nome".to_string(), "x".to_string())].into();
    let v = Values::from_variables(&d, &unknown);
    assert!(
        check_values(&d, &v)
            .iter()
            .any(|p| p.code == "value_unexpected")
    );

    let values = base_values();
    let back = Values::from_components(&d, &send_components(&d, &values)).expect("parses");
    assert_eq!(back, values);
    let nd = def(&named());
    let named_values = Values::body([("primeiro_nome", "Ana"), ("cupom", "X")]);
    let back = Values::from_components(&nd, &send_components(&nd, &named_values)).unwrap();
    assert_eq!(back, named_values);
    let md = def(&media());
    let mv = Values {
        header_media: Some(MediaValue::Link("https://cdn.x.com/a.jpg".into())),
        body: [("1".to_string(), "Ana".to_string())].into(),
        buttons: [(0, "PROMO25".to_string())].into(),
        ..Values::default()
    };
    assert_eq!(
        Values::from_components(&md, &send_components(&md, &mv)).unwrap(),
        mv
    );

    let meta = json!([{"type": "body", "parameters": [
        {"type": "text", "text": "Ana"},
        {"type": "currency", "currency": {"fallback_value": "R$ 10,00", "code": "BRL", "amount_1000": 10000}}]}]);
    let v = Values::from_components(&d, &meta).unwrap();
    assert_eq!(v.body.get("2").map(String::as_str), Some("R$ 10,00"));
    assert!(Values::from_components(&d, &json!({"type": "body"})).is_err());
    assert!(
        Values::from_components(
            &nd,
            &json!([{"type": "body", "parameters": [{"type": "text", "text": "x"}]}])
        )
        .is_err()
    );
}

#[test]
fn values_json_shape() {
    let v: Values = serde_json::from_value(json!({
        "body": {"1": "Ana"}, "header": {"1": "#1"}, "buttons": {"0": "abc"},
        "header_media": {"link": "https://x.com/a.pdf"}
    }))
    .unwrap();
    assert_eq!(v.buttons.get(&0).map(String::as_str), Some("abc"));
    assert_eq!(
        v.header_media,
        Some(MediaValue::Link("https://x.com/a.pdf".into()))
    );
    let empty: Values = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty, Values::default());
}

#[test]
fn authentication_as_meta_reads_it_back() {
    // GET /{template-id} of an authentication template: fixed body text, and the
    // OTP button in its URL form.
    let synced = json!({
        "name": "codigo_acesso", "language": "pt_BR", "category": "AUTHENTICATION",
        "components": [
            {"type": "BODY", "text": "*{{1}}* é seu código de verificação. Para sua segurança, não o compartilhe.",
             "add_security_recommendation": true},
            {"type": "FOOTER", "text": "Este código expira em 10 minutos."},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Copiar código",
             "url": "https://www.whatsapp.com/otp/code/?otp_type=COPY_CODE&code=otp{{1}}"}]}
        ]
    });
    let d = def(&synced);
    assert_eq!(validate(&d), vec![]);
    let p = parameters(&d);
    assert_eq!(p.body, vec!["1"]);
    assert!(p.buttons.is_empty());
    let code = Values::body([("1", "482913")]);
    assert_eq!(check_values(&d, &code), vec![]);
    assert_eq!(
        send_components(&d, &code),
        json!([
            {"type": "body", "parameters": [{"type": "text", "text": "482913"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "482913"}]}
        ])
    );
    let r = render(&d, &code);
    assert!(r.body.starts_with("*482913* é seu código"));
    assert_eq!(r.buttons[0].url, None);
}
