//! The inbound channel: Meta's handshake, signatures, durable storage, every message type,
//! duplicates and dead letters.

use serde_json::{Value, json};
use store::channels::NewChannel;

use crate::helpers::{PERSON_PASSWORD, TestApp, VERIFY_TOKEN};
use crate::on_both_backends;

on_both_backends!(
    handshake_answers_the_challenge_only_with_the_right_token,
    signed_text_message_becomes_a_conversation_with_a_protocol,
    unsigned_or_badly_signed_webhooks_are_refused_and_not_stored,
    a_secret_of_another_app_cannot_sign_for_this_number,
    oversized_bodies_get_413,
    every_inbound_type_is_stored_as_the_right_message,
    redelivered_webhooks_are_stored_once,
    garbage_with_a_valid_signature_is_kept_as_a_dead_letter,
    dead_letters_can_be_replayed_after_an_upgrade,
    the_api_requires_authentication,
);

async fn handshake_answers_the_challenge_only_with_the_right_token(app: TestApp) {
    let url = format!("{}/webhooks/whatsapp", app.address);
    let ok = app
        .http
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", VERIFY_TOKEN),
            ("hub.challenge", "1158201444"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");

    let wrong = app
        .http
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "nope"),
            ("hub.challenge", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("verify token"));
}

async fn signed_text_message_becomes_a_conversation_with_a_protocol(app: TestApp) {
    let maria = app.customer("5511987654321", "Maria Silva");
    let (wamid, payload) = app
        .builder
        .text(&maria, "Olá, preciso de ajuda com a fatura 😮");
    let resp = app.post_webhook(&payload).await;
    assert_eq!(resp.status(), 200);
    app.inbox_drained().await;

    let list = app.api_get("/api/conversations").await;
    let conversation = &list["conversations"][0];
    assert_eq!(conversation["contact_wa_id"], "5511987654321");
    assert_eq!(conversation["contact_name"], "Maria Silva");
    assert_eq!(conversation["unread_count"], 1);
    let protocol = conversation["protocol"].as_str().unwrap();
    assert_eq!(
        protocol.len(),
        14,
        "YYYYMMDD + 6-digit sequence: {protocol}"
    );
    assert!(protocol.ends_with("000001"));

    let messages = app.messages_of("5511987654321").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["wamid"], wamid.as_str());
    assert_eq!(messages[0]["kind"], "text");
    assert_eq!(messages[0]["direction"], "in");
    assert_eq!(messages[0]["body"], "Olá, preciso de ajuda com a fatura 😮");
    assert_eq!(
        messages[0]["content"]["text"]["body"],
        "Olá, preciso de ajuda com a fatura 😮"
    );
}

async fn unsigned_or_badly_signed_webhooks_are_refused_and_not_stored(app: TestApp) {
    let c = app.customer("5511911112222", "João");
    let (_, payload) = app.builder.text(&c, "oi");
    let body = graph_sim::to_meta_json(&payload);

    let missing = app.post_webhook_bytes(&body, None).await;
    assert_eq!(missing.status(), 401);
    let wrong = app
        .post_webhook_bytes(&body, Some(&graph_sim::sign("not-the-secret", &body)))
        .await;
    assert_eq!(wrong.status(), 401);
    let garbled = app.post_webhook_bytes(&body, Some("sha256=zz")).await;
    assert_eq!(garbled.status(), 401);
    // A valid signature of other bytes does not cover these bytes.
    let other = app
        .post_webhook_bytes(
            &body,
            Some(&graph_sim::sign(crate::helpers::APP_SECRET, b"{}")),
        )
        .await;
    assert_eq!(other.status(), 401);

    assert_eq!(
        app.store.inbox_counts().await.unwrap(),
        (0, 0, 0),
        "nothing stored"
    );
}

async fn a_secret_of_another_app_cannot_sign_for_this_number(app: TestApp) {
    let secrets = app.state.channels.secrets();
    app.store
        .create_channel(&NewChannel {
            name: "Outra empresa".into(),
            phone_number_id: "999000111".into(),
            waba_id: "888".into(),
            display_phone_number: None,
            access_token_enc: secrets.encrypt("other-token"),
            app_secret_enc: secrets.encrypt("other-app-secret"),
            verify_token_enc: secrets.encrypt("other-verify"),
            graph_base_url: app.sim.base_url(),
            rate_limit_per_sec: 80,
            mark_read: true,
            is_simulator: false,
        })
        .await
        .unwrap();
    app.state.channels.reload().await.unwrap();

    let c = app.customer("5511933334444", "Ana");
    let (_, payload) = app.builder.text(&c, "oi");
    let body = graph_sim::to_meta_json(&payload);
    let resp = app
        .post_webhook_bytes(&body, Some(&graph_sim::sign("other-app-secret", &body)))
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(app.store.inbox_counts().await.unwrap(), (0, 0, 0));

    // The other app's own number is accepted with its own secret.
    let other = graph_sim::WebhookBuilder::new("888", "999000111", "5511800000000");
    let (_, payload) = other.text(&c, "oi");
    let body = graph_sim::to_meta_json(&payload);
    let resp = app
        .post_webhook_bytes(&body, Some(&graph_sim::sign("other-app-secret", &body)))
        .await;
    assert_eq!(resp.status(), 200);
}

async fn oversized_bodies_get_413(app: TestApp) {
    let c = app.customer("5511955556666", "Big");
    let (_, payload) = app.builder.text(&c, &"a".repeat(1_100_000));
    let body = graph_sim::to_meta_json(&payload);
    let resp = app
        .post_webhook_bytes(
            &body,
            Some(&graph_sim::sign(crate::helpers::APP_SECRET, &body)),
        )
        .await;
    assert_eq!(resp.status(), 413);
    assert_eq!(app.store.inbox_counts().await.unwrap(), (0, 0, 0));
}

async fn every_inbound_type_is_stored_as_the_right_message(app: TestApp) {
    let c = app.customer("5521999990000", "Carla Souza");
    let b = &app.builder;
    let (first, text) = b.text(&c, "primeira");
    let mut cases: Vec<(String, Value, &str, Option<&str>)> =
        vec![(first.clone(), text, "text", Some("primeira"))];
    let mut add =
        |(wamid, payload): (String, Value), kind: &'static str, body: Option<&'static str>| {
            cases.push((wamid, payload, kind, body));
        };
    add(
        b.image(&c, "1001", "image/jpeg", Some("foto do boleto")),
        "image",
        Some("foto do boleto"),
    );
    add(b.audio(&c, "1002", true), "audio", None);
    add(b.audio(&c, "1003", false), "audio", None);
    add(
        b.video(&c, "1004", "video/mp4", Some("vídeo")),
        "video",
        Some("vídeo"),
    );
    add(
        b.document(&c, "1005", "application/pdf", "fatura.pdf", None),
        "document",
        None,
    );
    add(b.sticker(&c, "1006", false), "sticker", None);
    add(
        b.location(
            &c,
            -23.5505,
            -46.6333,
            Some("Escritório"),
            Some("Av. Paulista, 1000"),
        ),
        "location",
        None,
    );
    add(
        b.contacts(&c, "Pedro Lima", "+55 11 98888-7777"),
        "contacts",
        None,
    );
    add(
        b.button_reply(&c, "opt_suporte", "Suporte"),
        "interactive",
        Some("Suporte"),
    );
    add(
        b.list_reply(&c, "row_fin", "Financeiro", Some("Boletos e notas")),
        "interactive",
        Some("Financeiro"),
    );
    add(
        b.nfm_reply(&c, &json!({"cpf": "52998224725"})),
        "interactive",
        None,
    );
    add(b.reaction(&c, &first, Some("👍")), "reaction", Some("👍"));
    add(b.reaction(&c, &first, None), "reaction", None);
    add(
        b.order(
            &c,
            "cat-1",
            &[graph_sim::OrderItem {
                product_retailer_id: "sku-1".into(),
                quantity: 2,
                item_price: 9.9,
                currency: "BRL".into(),
            }],
        ),
        "order",
        None,
    );
    add(b.system_number_change(&c, "5521999991111"), "system", None);
    add(b.unsupported(&c), "unsupported", None);
    add(b.unknown_future_type(&c, "poll"), "poll", None);
    let (reply_wamid, reply) = b.text(&c, "respondendo");
    cases.push((
        reply_wamid.clone(),
        b.reply_to(reply, &first),
        "text",
        Some("respondendo"),
    ));
    let (referral_wamid, from_ad) = b.text(&c, "vim do anúncio");
    cases.push((
        referral_wamid.clone(),
        b.with_referral(from_ad),
        "text",
        Some("vim do anúncio"),
    ));

    for (_, payload, _, _) in &cases {
        assert_eq!(app.post_webhook(payload).await.status(), 200);
    }
    app.inbox_drained().await;

    let messages = app.messages_of("5521999990000").await;
    assert_eq!(
        messages.len(),
        cases.len(),
        "one message per webhook, none dropped"
    );
    for (wamid, _, kind, body) in &cases {
        let m = messages
            .iter()
            .find(|m| m["wamid"] == wamid.as_str())
            .unwrap_or_else(|| panic!("{kind} message {wamid} missing"));
        assert_eq!(m["kind"], *kind, "{m}");
        if let Some(body) = body {
            assert_eq!(m["body"], *body, "{m}");
        }
        assert_eq!(m["content"]["id"], wamid.as_str(), "raw content kept: {m}");
    }
    let by_wamid = |w: &str| messages.iter().find(|m| m["wamid"] == w).unwrap().clone();
    assert_eq!(by_wamid(&reply_wamid)["reply_to_wamid"], first.as_str());
    assert!(by_wamid(&referral_wamid)["content"]["referral"]["source_type"].is_string());
    let audio = messages
        .iter()
        .find(|m| m["content"]["audio"]["voice"] == true);
    assert!(audio.is_some(), "voice note flag kept");
    let unsupported = messages
        .iter()
        .find(|m| m["kind"] == "unsupported")
        .unwrap();
    assert_eq!(unsupported["content"]["errors"][0]["code"], 131051);
}

async fn redelivered_webhooks_are_stored_once(app: TestApp) {
    let c = app.customer("5531988887777", "Duda");
    let (wamid, payload) = app.builder.text(&c, "oi");
    for _ in 0..3 {
        assert_eq!(app.post_webhook(&payload).await.status(), 200);
    }
    // Same message inside a different envelope (Meta batches differently on a retry).
    let (_, other) = app.builder.text(&c, "outra");
    let batch = app.builder.batch(vec![payload.clone(), other]);
    assert_eq!(app.post_webhook(&batch).await.status(), 200);
    app.inbox_drained().await;

    assert_eq!(
        app.store.count_messages_with_wamid(&wamid).await.unwrap(),
        1
    );
    assert_eq!(app.messages_of("5531988887777").await.len(), 2);
    let (_, done, _) = app.store.inbox_counts().await.unwrap();
    assert_eq!(done, 2, "identical bodies are stored once");
}

async fn garbage_with_a_valid_signature_is_kept_as_a_dead_letter(app: TestApp) {
    let secret = crate::helpers::APP_SECRET;
    for body in [&b"not json at all"[..], br#"{"object":"page","entry":[]}"#] {
        let resp = app
            .post_webhook_bytes(body, Some(&graph_sim::sign(secret, body)))
            .await;
        assert_eq!(resp.status(), 200, "Meta must stop retrying");
    }
    // A known envelope whose messages value is not an object fails in the processor.
    let odd = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":[1,2]}]}]}"#;
    assert_eq!(
        app.post_webhook_bytes(odd, Some(&graph_sim::sign(secret, odd)))
            .await
            .status(),
        200
    );
    app.inbox_drained().await;

    let dead = app.api_get("/api/admin/dead-letters").await;
    let dead = dead["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(
        dead.iter().any(
            |d| d["body"] == "not json at all" && d["error"].as_str().unwrap().contains("JSON")
        )
    );
    assert!(
        dead.iter()
            .all(|d| !d["error"].as_str().unwrap_or("").is_empty())
    );

    // The server is still fine.
    let c = app.customer("5541977776666", "Ok");
    let (_, payload) = app.builder.text(&c, "ainda funciona?");
    assert_eq!(app.post_webhook(&payload).await.status(), 200);
    app.inbox_drained().await;
    assert_eq!(app.messages_of("5541977776666").await.len(), 1);
}

async fn dead_letters_can_be_replayed_after_an_upgrade(app: TestApp) {
    // An older version could not process this (valid) body and kept it.
    let c = app.customer("5551966665555", "Replay");
    let (wamid, payload) = app.builder.text(&c, "guardada");
    let body = graph_sim::to_meta_json(&payload);
    app.store
        .append_inbox(&[store::inbox::InboxAppend {
            body,
            sha256_hex: "replay-test".into(),
            dead_reason: Some("unknown message type (older version)".into()),
        }])
        .await
        .unwrap();
    let garbage = b"still garbage";
    app.post_webhook_bytes(
        garbage,
        Some(&graph_sim::sign(crate::helpers::APP_SECRET, garbage)),
    )
    .await;
    app.inbox_drained().await;
    assert_eq!(
        app.api_get("/api/admin/dead-letters").await["dead_letters"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let resp = app
        .api_post("/api/admin/dead-letters/replay", &json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["replayed"], 2);
    crate::helpers::wait_until(
        "the replayed message",
        std::time::Duration::from_secs(20),
        || async { app.store.count_messages_with_wamid(&wamid).await.unwrap() == 1 },
    )
    .await;
    app.inbox_drained().await;
    let dead = app.api_get("/api/admin/dead-letters").await;
    let dead = dead["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "the garbage is dead again: {dead:?}");
    assert_eq!(
        dead[0]["attempts"], 1,
        "one processing attempt after the replay"
    );
}

async fn the_api_requires_authentication(app: TestApp) {
    // An admin who already chose a password (the first admin must change theirs first).
    let admin = app.person(store::auth::Role::Admin, "Admin Dois").await;
    let url = format!("{}/api/conversations", app.address);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Browser login: a session cookie, and the CSRF token for writes.
    let login = app
        .http
        .post(format!("{}/api/auth/login", app.address))
        .json(&json!({ "email": admin.email, "password": PERSON_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = app
        .http
        .get(&url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    let replay = format!("{}/api/admin/dead-letters/replay", app.address);
    let without_csrf = app
        .http
        .post(&replay)
        .header("cookie", &session)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(without_csrf.status(), 403);
    let with_csrf = app
        .http
        .post(&replay)
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_csrf.status(), 200);

    let bad = app
        .http
        .post(format!("{}/api/auth/login", app.address))
        .json(&json!({ "email": app.admin_email, "password": "wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
}
