//! The outbound road: sending every kind of message through graph-sim, idempotency, retries,
//! permanent failures, the 24 h window, rate limits, ordering, media both ways, delivery statuses.

use std::time::Duration;

use graph_sim::{Endpoint, Fault};
use serde_json::{Value, json};
use store::conversations::{InboundItem, StatusRecord};

use crate::helpers::{PHONE_NUMBER_ID, TestApp, assert_each_customer_got_in_order, wait_until};
use crate::on_both_backends;
use crate::samples;

on_both_backends!(
    a_text_reply_reaches_whatsapp_and_its_ticks_come_back,
    the_same_idempotency_key_sends_once,
    every_attachment_type_reaches_meta_byte_identical,
    reactions_and_replies_point_at_the_right_messages,
    uploads_are_validated_by_content,
    server_errors_are_retried_and_sent_once,
    a_storm_of_429_is_ridden_out,
    permanent_errors_fail_at_once_with_a_portuguese_reason,
    an_expired_token_marks_the_channel_unhealthy,
    free_form_sends_outside_the_24h_window_are_refused,
    statuses_out_of_order_or_early_end_in_the_right_state,
    inbound_media_of_every_type_is_stored_and_served,
    a_failed_media_download_shows_a_placeholder_and_can_be_retried,
    the_rate_limit_is_respected_and_per_customer_order_kept,
    opening_a_conversation_marks_it_read_on_whatsapp,
);

async fn a_text_reply_reaches_whatsapp_and_its_ticks_come_back(app: TestApp) {
    let conversation = app.open_conversation("5511970000001").await;
    let message = app
        .send_ok(
            conversation,
            &json!({"type": "text", "body": "Olá! Como posso ajudar?", "idempotency_key": "k1"}),
        )
        .await;
    assert_eq!(message["status"], "queued", "answered at once, before Meta");
    assert_eq!(message["direction"], "out");

    let sent = app.sim.wait_for_sent(1, Duration::from_secs(10)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "5511970000001");
    assert_eq!(sent[0].body["type"], "text");
    assert_eq!(sent[0].body["text"]["body"], "Olá! Como posso ajudar?");

    // graph-sim posts sent, delivered, read status webhooks like Meta.
    let read = app
        .wait_status(conversation, message["id"].as_i64().unwrap(), "read")
        .await;
    assert_eq!(read["wamid"], sent[0].wamid.as_str());
}

async fn the_same_idempotency_key_sends_once(app: TestApp) {
    let conversation = app.open_conversation("5511970000002").await;
    let body = json!({"type": "text", "body": "clique duplo", "idempotency_key": "double-click-1"});
    let first = app.send_ok(conversation, &body).await;
    let again = app.send(conversation, &body).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["message"]["id"], first["id"]);
    app.wait_status(conversation, first["id"].as_i64().unwrap(), "read")
        .await;
    let out = app.store.outbox_counts().await.unwrap();
    assert_eq!(out, (0, 0, 1, 0), "one job, done");
    assert_eq!(app.sim.sent_messages().len(), 1);
}

async fn every_attachment_type_reaches_meta_byte_identical(app: TestApp) {
    let conversation = app.open_conversation("5511970000003").await;
    let files: Vec<(Vec<u8>, &str, &str, &str)> = vec![
        (samples::PNG.to_vec(), "tela.png", "image", "image/png"),
        (samples::JPEG.to_vec(), "foto.jpg", "image", "image/jpeg"),
        (samples::mp3(), "audio.mp3", "audio", "audio/mpeg"),
        (samples::ogg_opus(), "voz.ogg", "audio", "audio/ogg"),
        (samples::mp4(), "video.mp4", "video", "video/mp4"),
        (
            samples::PDF.to_vec(),
            "boleto.pdf",
            "document",
            "application/pdf",
        ),
        (
            samples::docx(),
            "contrato.docx",
            "document",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            samples::xlsx(),
            "planilha.xlsx",
            "document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (samples::TXT.to_vec(), "notas.txt", "document", "text/plain"),
    ];
    for (i, (bytes, name, kind, mime)) in files.iter().enumerate() {
        let media_id = app.upload_ok(bytes, name).await;
        let caption = (*kind != "audio").then(|| format!("arquivo {i}"));
        let message = app
            .send_ok(conversation, &json!({"type": "media", "media_id": media_id, "caption": caption, "idempotency_key": format!("m{i}")}))
            .await;
        app.wait_status(conversation, message["id"].as_i64().unwrap(), "read")
            .await;
        let sent = app.sim.sent_messages();
        let last = sent.last().unwrap();
        assert_eq!(last.body["type"], *kind, "{name}");
        let wa_media_id = last.body[*kind]["id"].as_str().unwrap();
        let stored = app
            .sim
            .uploaded_media(wa_media_id)
            .expect("uploaded to Meta first");
        assert_eq!(
            stored.bytes.as_ref(),
            bytes.as_slice(),
            "{name} byte-identical at Meta"
        );
        assert_eq!(stored.mime_type, *mime);
        if *kind == "document" {
            assert_eq!(
                last.body["document"]["filename"], *name,
                "documents keep their name"
            );
        }
        // Our own copy is served back identical too.
        let (status, served, headers) = app.get_bytes(&format!("/api/media/{media_id}")).await;
        assert_eq!(status, 200);
        assert_eq!(&served, bytes);
        // Only images, audio and video may be shown in place; documents are plain downloads.
        let served_type = if *kind == "document" {
            "application/octet-stream"
        } else {
            mime
        };
        assert_eq!(headers["content-type"], served_type, "{name}");
    }
}

async fn reactions_and_replies_point_at_the_right_messages(app: TestApp) {
    let conversation = app.open_conversation("5511970000004").await;
    let page = app
        .api_get(&format!("/api/conversations/{conversation}/messages"))
        .await;
    let customer_message = page["messages"][0].clone();
    let reaction = app
        .send_ok(
            conversation,
            &json!({"type": "reaction", "message_id": customer_message["id"], "emoji": "👍"}),
        )
        .await;
    let reply = app
        .send_ok(conversation, &json!({"type": "text", "body": "respondendo você", "reply_to_message_id": customer_message["id"]}))
        .await;
    app.wait_status(conversation, reply["id"].as_i64().unwrap(), "read")
        .await;
    app.wait_status(conversation, reaction["id"].as_i64().unwrap(), "read")
        .await;
    let sent = app.sim.sent_messages();
    let reaction_body = &sent
        .iter()
        .find(|s| s.body["type"] == "reaction")
        .unwrap()
        .body;
    assert_eq!(
        reaction_body["reaction"]["message_id"],
        customer_message["wamid"]
    );
    assert_eq!(reaction_body["reaction"]["emoji"], "👍");
    let reply_body = &sent.iter().find(|s| s.body["type"] == "text").unwrap().body;
    assert_eq!(
        reply_body["context"]["message_id"],
        customer_message["wamid"]
    );
}

async fn uploads_are_validated_by_content(app: TestApp) {
    let exe = app.upload(samples::EXE, "fatura.pdf").await;
    assert_eq!(exe.status(), 415);
    let body: Value = exe.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("PDF"),
        "names the accepted types: {body}"
    );
    assert_eq!(app.upload(b"", "vazio.pdf").await.status(), 400);
    let mut big = samples::PNG.to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);
    assert_eq!(app.upload(&big, "grande.png").await.status(), 413);
}

async fn server_errors_are_retried_and_sent_once(app: TestApp) {
    let conversation = app.open_conversation("5511970000005").await;
    app.sim.inject(
        Endpoint::SendMessage,
        vec![Fault::ServerError, Fault::ServerError],
    );
    let message = app
        .send_ok(conversation, &json!({"type": "text", "body": "tentando"}))
        .await;
    app.wait_status(conversation, message["id"].as_i64().unwrap(), "read")
        .await;
    assert_eq!(app.sim.sent_messages().len(), 1, "accepted exactly once");
    assert_eq!(
        app.sim.request_count(Endpoint::SendMessage),
        3,
        "two failures then success"
    );
}

async fn a_storm_of_429_is_ridden_out(app: TestApp) {
    let conversation = app.open_conversation("5511970000006").await;
    app.sim
        .inject(Endpoint::SendMessage, vec![Fault::RateLimited; 4]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let m = app
            .send_ok(
                conversation,
                &json!({"type": "text", "body": format!("msg {i}")}),
            )
            .await;
        ids.push(m["id"].as_i64().unwrap());
    }
    for id in ids {
        app.wait_status(conversation, id, "read").await;
    }
    let bodies: Vec<String> = app
        .sim
        .sent_messages()
        .iter()
        .map(|s| s.body["text"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        bodies,
        ["msg 0", "msg 1", "msg 2"],
        "all sent, once each, in order"
    );
}

async fn permanent_errors_fail_at_once_with_a_portuguese_reason(app: TestApp) {
    let conversation = app.open_conversation("5511970000007").await;
    app.sim.inject(
        Endpoint::SendMessage,
        vec![Fault::GraphError {
            http_status: 400,
            code: 131026,
            message: "Message undeliverable".into(),
        }],
    );
    let message = app
        .send_ok(conversation, &json!({"type": "text", "body": "não vai"}))
        .await;
    let failed = app
        .wait_status(conversation, message["id"].as_i64().unwrap(), "failed")
        .await;
    assert_eq!(failed["error_code"], 131026);
    let detail = failed["error_detail"].as_str().unwrap();
    assert!(!detail.is_empty() && detail.is_char_boundary(0), "{detail}");
    assert!(
        detail.to_lowercase().contains("whatsapp")
            || detail.contains("entregue")
            || detail.contains("mensagem"),
        "pt-BR reason: {detail}"
    );
    assert_eq!(
        app.sim.request_count(Endpoint::SendMessage),
        1,
        "not retried"
    );
}

async fn an_expired_token_marks_the_channel_unhealthy(app: TestApp) {
    let conversation = app.open_conversation("5511970000008").await;
    app.sim.inject(
        Endpoint::SendMessage,
        vec![Fault::GraphError {
            http_status: 401,
            code: 190,
            message: "Error validating access token: Session has expired".into(),
        }],
    );
    let first = app
        .send_ok(conversation, &json!({"type": "text", "body": "um"}))
        .await;
    app.wait_status(conversation, first["id"].as_i64().unwrap(), "failed")
        .await;
    let channels = app.api_get("/api/channels").await;
    assert_eq!(channels["channels"][0]["healthy"], false);
    assert!(
        channels["channels"][0]["health_note"]
            .as_str()
            .unwrap()
            .contains("token")
    );

    // Nothing more is sent while the token is bad...
    let second = app
        .send_ok(conversation, &json!({"type": "text", "body": "dois"}))
        .await;
    assert_eq!(app.sim.request_count(Endpoint::SendMessage), 1);
    // ...and a new token brings the channel back and the waiting message goes.
    let resp = app
        .http
        .patch(format!("{}/api/channels/{}", app.address, app.channel_id))
        .bearer_auth(&app.token)
        .json(&json!({"access_token": crate::helpers::ACCESS_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.wait_status(conversation, second["id"].as_i64().unwrap(), "read")
        .await;
}

async fn free_form_sends_outside_the_24h_window_are_refused(app: TestApp) {
    let customer = app.customer("5511970000009", "Antigo");
    let (_, mut payload) = app.builder.text(&customer, "mensagem de ontem");
    let day_and_more = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 25 * 3600)
        .to_string();
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!(day_and_more);
    assert_eq!(app.post_webhook(&payload).await.status(), 200);
    app.inbox_drained().await;
    let list = app.api_get("/api/conversations").await;
    let conversation = list["conversations"][0]["id"].as_i64().unwrap();
    let resp = app
        .send(conversation, &json!({"type": "text", "body": "oi de novo"}))
        .await;
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "outside_service_window");
    assert_eq!(
        app.sim.request_count(Endpoint::SendMessage),
        0,
        "no wasted call to Meta"
    );
}

async fn statuses_out_of_order_or_early_end_in_the_right_state(app: TestApp) {
    app.sim.set_status_delay(Duration::from_secs(3600)); // graph-sim stays quiet; we post statuses
    let conversation = app.open_conversation("5511970000010").await;
    let message = app
        .send_ok(conversation, &json!({"type": "text", "body": "status"}))
        .await;
    let id = message["id"].as_i64().unwrap();
    let sent = app.wait_status(conversation, id, "sent").await;
    let wamid = sent["wamid"].as_str().unwrap().to_owned();
    let to = "5511970000010";
    // read before delivered, then a redelivery of read: ends read, and stays read.
    for status in ["read", "delivered", "read"] {
        let payload = app.builder.status(&wamid, to, status, None);
        assert_eq!(app.post_webhook(&payload).await.status(), 200);
    }
    app.inbox_drained().await;
    assert_eq!(app.message(conversation, id).await["status"], "read");

    // A failed status with its error, on another message.
    let other = app
        .send_ok(conversation, &json!({"type": "text", "body": "vai falhar"}))
        .await;
    let other_id = other["id"].as_i64().unwrap();
    let other_wamid = app.wait_status(conversation, other_id, "sent").await["wamid"]
        .as_str()
        .unwrap()
        .to_owned();
    let payload = app.builder.status(
        &other_wamid,
        to,
        "failed",
        Some((131047, "Re-engagement message")),
    );
    app.post_webhook(&payload).await;
    app.inbox_drained().await;
    let failed = app.message(conversation, other_id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error_code"], 131047);

    // A status that arrives before the sender recorded the wamid is applied when it does.
    let third = app
        .send_ok(conversation, &json!({"type": "text", "body": "corrida"}))
        .await;
    let third_id = third["id"].as_i64().unwrap();
    app.wait_status(conversation, third_id, "sent").await;
    let channel_id = app.channel_id;
    let early = StatusRecord {
        channel_id,
        wamid: "wamid.early-status".into(),
        status: domain::status::DeliveryStatus::Delivered,
        wa_timestamp_ms: None,
        recipient_id: None,
        error_code: None,
        error_title: None,
        error_detail: None,
    };
    let appended = app
        .store
        .append_inbox(&[store::inbox::InboxAppend {
            body: b"{}".to_vec(),
            sha256_hex: "early".into(),
            dead_reason: Some("test".into()),
        }])
        .await
        .unwrap();
    let store::inbox::Appended::New(inbox_id) = appended[0] else {
        panic!("stored")
    };
    app.store
        .apply_inbound(
            inbox_id,
            &[InboundItem::Status(early)],
            &domain::protocol::ProtocolConfig::default(),
        )
        .await
        .unwrap();
    let status = app
        .store
        .complete_outbox_sent(0, third_id, "wamid.early-status")
        .await
        .unwrap();
    assert_eq!(status.as_str(), "delivered");
}

async fn inbound_media_of_every_type_is_stored_and_served(app: TestApp) {
    let customer = app.customer("5511970000011", "Fotógrafa");
    let b = &app.builder;
    let cases: Vec<(Vec<u8>, &str, (String, Value))> = {
        let png = samples::PNG.to_vec();
        let id_png = app.sim.add_customer_media(png.clone().into(), "image/png");
        let ogg = samples::ogg_opus();
        let id_ogg = app.sim.add_customer_media(ogg.clone().into(), "audio/ogg");
        let mp4 = samples::mp4();
        let id_mp4 = app.sim.add_customer_media(mp4.clone().into(), "video/mp4");
        let pdf = samples::PDF.to_vec();
        let id_pdf = app
            .sim
            .add_customer_media(pdf.clone().into(), "application/pdf");
        let webp = b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10".to_vec();
        let id_webp = app
            .sim
            .add_customer_media(webp.clone().into(), "image/webp");
        vec![
            (
                png,
                "image",
                b.image(&customer, &id_png, "image/png", Some("print")),
            ),
            (ogg, "audio", b.audio(&customer, &id_ogg, true)),
            (mp4, "video", b.video(&customer, &id_mp4, "video/mp4", None)),
            (
                pdf,
                "document",
                b.document(
                    &customer,
                    &id_pdf,
                    "application/pdf",
                    "comprovante.pdf",
                    None,
                ),
            ),
            (webp, "sticker", b.sticker(&customer, &id_webp, false)),
        ]
    };
    for (_, _, (_, payload)) in &cases {
        assert_eq!(app.post_webhook(payload).await.status(), 200);
    }
    app.inbox_drained().await;
    let messages = app.messages_of("5511970000011").await;
    for (bytes, kind, (wamid, _)) in &cases {
        let m = messages
            .iter()
            .find(|m| m["wamid"] == wamid.as_str())
            .unwrap();
        assert_eq!(m["kind"], *kind);
        let media_id = m["media_id"].as_i64().expect("media row");
        let path = format!("/api/media/{media_id}");
        wait_until("the download", Duration::from_secs(20), || async {
            app.get_bytes(&path).await.0 == 200
        })
        .await;
        let (_, served, headers) = app.get_bytes(&path).await;
        assert_eq!(&served, bytes, "{kind} served byte-identical");
        if *kind == "document" {
            let disposition = headers["content-disposition"].to_str().unwrap();
            assert!(
                disposition.starts_with("attachment") && disposition.contains("comprovante.pdf"),
                "{disposition}"
            );
        }
    }
}

async fn a_failed_media_download_shows_a_placeholder_and_can_be_retried(app: TestApp) {
    let customer = app.customer("5511970000012", "Sem sorte");
    let id = app
        .sim
        .add_customer_media(samples::JPEG.to_vec().into(), "image/jpeg");
    app.sim
        .inject(Endpoint::MediaInfo, vec![Fault::ServerError; 5]);
    let (wamid, payload) = app.builder.image(&customer, &id, "image/jpeg", None);
    assert_eq!(app.post_webhook(&payload).await.status(), 200);
    app.inbox_drained().await;
    // The message is there at once, whatever happens to its file.
    let messages = app.messages_of("5511970000012").await;
    let m = messages
        .iter()
        .find(|m| m["wamid"] == wamid.as_str())
        .unwrap();
    let media_id = m["media_id"].as_i64().unwrap();
    let path = format!("/api/media/{media_id}");
    wait_until(
        "the download to give up",
        Duration::from_secs(60),
        || async {
            let store = app.store.media(media_id).await.unwrap().unwrap();
            store.state == "failed"
        },
    )
    .await;
    let (status, body, _) = app.get_bytes(&path).await;
    assert_eq!(status, 409);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["error"]["state"], "failed",
        "a clear placeholder, not a broken link: {body}"
    );

    let retry = app
        .api_post(&format!("/api/media/{media_id}/retry"), &json!({}))
        .await;
    assert_eq!(retry.status(), 200);
    wait_until("the manual retry", Duration::from_secs(20), || async {
        app.get_bytes(&path).await.0 == 200
    })
    .await;
    assert_eq!(app.get_bytes(&path).await.1, samples::JPEG);
}

async fn the_rate_limit_is_respected_and_per_customer_order_kept(app: TestApp) {
    app.sim.set_status_delay(Duration::from_secs(3600));
    let resp = app
        .http
        .patch(format!("{}/api/channels/{}", app.address, app.channel_id))
        .bearer_auth(&app.token)
        .json(&json!({"rate_limit_per_sec": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut conversations = Vec::new();
    for i in 0..4 {
        conversations.push(app.open_conversation(&format!("55119700001{i:02}")).await);
    }
    let per_customer = 15;
    for n in 0..per_customer {
        for c in &conversations {
            app.send_ok(*c, &json!({"type": "text", "body": format!("{n}"), "idempotency_key": format!("{c}-{n}")})).await;
        }
    }
    let total = per_customer * conversations.len();
    let sent = app.sim.wait_for_sent(total, Duration::from_secs(30)).await;
    assert_eq!(sent.len(), total, "every message sent");
    wait_until("the outbox to finish", Duration::from_secs(10), || async {
        app.store.outbox_counts().await.unwrap().2 == total as i64
    })
    .await;
    assert_eq!(app.sim.sent_messages().len(), total, "none twice");
    assert!(
        app.sim.max_sends_in_any_second(PHONE_NUMBER_ID) <= 20,
        "never above 20/s: {}",
        app.sim.max_sends_in_any_second(PHONE_NUMBER_ID)
    );
    assert_each_customer_got_in_order(&sent, per_customer);
}

async fn opening_a_conversation_marks_it_read_on_whatsapp(app: TestApp) {
    let conversation = app.open_conversation("5511970000013").await;
    let page = app
        .api_get(&format!("/api/conversations/{conversation}/messages"))
        .await;
    let wamid = page["messages"][0]["wamid"].as_str().unwrap().to_owned();
    let resp = app
        .api_post(
            &format!("/api/conversations/{conversation}/read"),
            &json!({}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["marked_on_whatsapp"],
        true
    );
    assert_eq!(app.sim.mark_read_calls(), vec![wamid]);
    let c = app
        .api_get(&format!("/api/conversations/{conversation}"))
        .await;
    assert_eq!(c["conversation"]["unread_count"], 0);
}

mod two_instances {
    use super::*;
    use crate::helpers::{Backend, spawn_app};

    /// Two server instances (each with two sender workers) drain one PostgreSQL outbox: every
    /// message is sent exactly once and each customer receives them in the order written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn share_one_outbox_exactly_once_in_order() {
        let Some(app) = spawn_app(Backend::Postgres).await else {
            return;
        };
        let second = app.spawn_second_instance().await;
        let mut conversations = Vec::new();
        for i in 0..6 {
            conversations.push(app.open_conversation(&format!("55119800000{i:02}")).await);
        }
        let per_customer = 12;
        for n in 0..per_customer {
            for (k, c) in conversations.iter().enumerate() {
                // Alternate the instance that accepts the request.
                let base = if (n + k) % 2 == 0 {
                    app.address.clone()
                } else {
                    second.clone()
                };
                let resp = app
                    .http
                    .post(format!("{base}/api/conversations/{c}/messages"))
                    .bearer_auth(&app.token)
                    .json(&json!({"type": "text", "body": format!("{n}"), "idempotency_key": format!("{c}-{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
            }
        }
        let total = per_customer * conversations.len();
        wait_until("the outbox to finish", Duration::from_secs(30), || async {
            app.store.outbox_counts().await.unwrap().2 == total as i64
        })
        .await;
        let sent = app.sim.sent_messages();
        assert_eq!(sent.len(), total, "exactly once");
        assert_each_customer_got_in_order(&sent, per_customer);
    }
}
