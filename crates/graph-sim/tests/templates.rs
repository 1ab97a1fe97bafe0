//! Template management, review webhooks, the Resumable Upload API, permissions and the account
//! checks, over real HTTP.

mod common;

use std::time::Duration;

use common::*;
use graph_sim::{AutoReview, Endpoint, GraphSim, SimConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn create_answers_pending_and_refuses_with_metas_subcodes() {
    let (sim, _rx) = sim_with_receiver().await;
    let (status, body) = create(&sim, order_template("pedido_enviado")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "PENDING", "new templates wait for review");
    assert_eq!(body["category"], "UTILITY");
    assert!(
        body["id"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_digit())
    );

    let (status, body) = create(&sim, order_template("pedido_enviado")).await;
    assert_eq!((status, subcode(&body)), (400, Some(2388024)), "{body}");
    assert_eq!(body["error"]["message"], "Invalid parameter");
    assert!(
        body["error"]["error_user_msg"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    let body_with = |text: &str, example: Value| {
        json!({"name": "caso", "language": "pt_BR", "category": "MARKETING", "components": [
            {"type": "BODY", "text": text, "example": example}]})
    };
    let long = format!("Olá {{{{1}}}}, {} fim.", "a".repeat(1030));
    let cases: Vec<(Value, Option<i64>, &str)> = vec![
        (
            body_with(&long, json!({"body_text": [["Ana"]]})),
            Some(2388040),
            "body too long",
        ),
        (
            body_with(
                "{{1}}, seu pedido saiu hoje mesmo.",
                json!({"body_text": [["Ana"]]}),
            ),
            Some(2388299),
            "leading variable",
        ),
        (
            body_with(
                "Seu pedido saiu hoje mesmo, {{1}}",
                json!({"body_text": [["Ana"]]}),
            ),
            Some(2388299),
            "trailing variable",
        ),
        (
            body_with("Oi {{1}} e {{2}} ok.", json!({"body_text": [["A", "B"]]})),
            Some(2388293),
            "too many variables",
        ),
        (
            body_with("Olá {{1}}, seu pedido saiu hoje.", json!({})),
            None,
            "missing examples",
        ),
        (
            body_with(
                "Olá {{1}}{{2}}, seu pedido saiu hoje cedo.",
                json!({"body_text": [["A", "B"]]}),
            ),
            None,
            "adjacent",
        ),
        (
            body_with(
                "Olá {{2}}, seu pedido saiu hoje.",
                json!({"body_text": [["A"]]}),
            ),
            None,
            "not sequential",
        ),
        (
            json!({"name": "caso", "language": "pt_BR", "category": "UTILITY", "components": [
            {"type": "HEADER", "format": "TEXT", "text": "{{1}} e {{2}}", "example": {"header_text": ["a", "b"]}},
            {"type": "BODY", "text": "Um texto sem variáveis."}]}),
            Some(2388047),
            "two header variables",
        ),
        (
            json!({"name": "caso", "language": "pt_BR", "category": "UTILITY", "components": [
            {"type": "BODY", "text": "Um texto sem variáveis."},
            {"type": "FOOTER", "text": "Até {{1}}"}]}),
            Some(2388073),
            "footer variable",
        ),
        (
            json!({"name": "caso", "language": "pt_BR", "category": "UTILITY", "components": [
            {"type": "BODY", "text": "Um texto sem variáveis."},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "x".repeat(26)}]}]}),
            Some(2388040),
            "button text",
        ),
        (
            json!({"name": "caso", "language": "pt_BR", "category": "UTILITY", "components": [
            {"type": "BODY", "text": "Um texto sem variáveis."},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "a"},
                {"type": "PHONE_NUMBER", "text": "Ligar", "phone_number": "+5511999999999"},
                {"type": "QUICK_REPLY", "text": "b"}]}]}),
            None,
            "quick replies not grouped",
        ),
        (
            json!({"name": "Nome Ruim", "language": "pt_BR", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Texto."}]}),
            None,
            "name syntax",
        ),
        (
            json!({"name": "caso", "language": "xx_XX", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Texto."}]}),
            None,
            "language",
        ),
        (
            json!({"name": "caso", "language": "pt_BR", "category": "PROMO",
            "components": [{"type": "BODY", "text": "Texto."}]}),
            None,
            "category",
        ),
        (
            json!({"name": "caso", "language": "pt_BR", "category": "UTILITY",
            "components": [{"type": "FOOTER", "text": "Texto."}]}),
            None,
            "no body",
        ),
    ];
    for (body, expected, what) in cases {
        let (status, answer) = create(&sim, body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(code(&answer), Some(100), "{what}: {answer}");
        assert_eq!(subcode(&answer), expected, "{what}: {answer}");
    }
    assert_eq!(sim.templates().len(), 1);

    // Named parameters need named examples.
    let named = json!({"name": "boas_vindas", "language": "pt_BR", "category": "MARKETING",
        "parameter_format": "NAMED", "components": [
        {"type": "BODY", "text": "Olá {{first_name}}, temos novidades para você hoje.",
         "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}}]});
    let (status, body) = create(&sim, named.clone()).await;
    assert_eq!(status, 200, "{body}");
    let mut wrong = named;
    wrong["name"] = json!("boas_vindas_2");
    wrong["components"][0]["text"] = json!("Olá {{1}}, temos novidades para você hoje.");
    let (status, _) = create(&sim, wrong).await;
    assert_eq!(status, 400, "positional variable in a NAMED template");
}

#[tokio::test]
async fn limit_and_thirty_day_name_block() {
    let (sim, _rx) = sim_with_receiver().await;
    sim.set_template_limit(2);
    for n in ["um", "dois"] {
        assert_eq!(create(&sim, order_template(n)).await.0, 200);
    }
    let (status, body) = create(&sim, order_template("tres")).await;
    assert_eq!((status, subcode(&body)), (400, Some(2388019)), "{body}");

    let (status, _) = delete(&sim, &format!("{WABA}/message_templates?name=um")).await;
    assert_eq!(status, 200);
    let (status, body) = create(&sim, order_template("um")).await;
    assert_eq!((status, subcode(&body)), (400, Some(2388023)), "{body}");
    sim.advance_clock(Duration::from_secs(31 * 24 * 3600));
    assert_eq!(create(&sim, order_template("um")).await.0, 200);

    let (status, body) = delete(&sim, &format!("{WABA}/message_templates?name=nada")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = delete(&sim, &format!("{WABA}/message_templates")).await;
    assert_eq!(status, 400, "name is required");
}

#[tokio::test]
async fn list_pages_both_ways_with_filters_and_fields() {
    let (sim, _rx) = sim_with_receiver().await;
    sim.set_new_template_status("APPROVED");
    for i in 0..5 {
        assert_eq!(create(&sim, order_template(&format!("t{i}"))).await.0, 200);
    }
    let mut en = order_template("t0");
    en["language"] = json!("en_US");
    assert_eq!(create(&sim, en).await.0, 200);
    let path = format!("{WABA}/message_templates");

    let (_, page) = get(&sim, &format!("{path}?limit=2&fields=name,status")).await;
    assert_eq!(
        page["data"],
        json!([
        {"name": "t0", "status": "APPROVED", "id": page["data"][0]["id"]},
        {"name": "t1", "status": "APPROVED", "id": page["data"][1]["id"]}])
    );
    assert!(page["paging"].get("previous").is_none());
    let after = page["paging"]["cursors"]["after"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, page2) = get(&sim, &format!("{path}?limit=2&after={after}")).await;
    assert_eq!(page2["data"][0]["name"], "t2");
    assert_eq!(page2["data"][0]["components"][0]["type"], "HEADER");
    assert!(
        page2["data"][0].get("quality_score").is_none(),
        "not a default field"
    );
    let before = page2["paging"]["cursors"]["before"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, back) = get(&sim, &format!("{path}?limit=2&before={before}")).await;
    assert_eq!(back["data"][0]["name"], "t0");
    let next = page2["paging"]["next"].as_str().unwrap();
    let resp: Value = client()
        .get(next)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["data"][0]["name"], "t4");

    let (_, filtered) = get(&sim, &format!("{path}?language=en_US")).await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    let (_, filtered) = get(
        &sim,
        &format!("{path}?name=t0&status=APPROVED,PENDING&category=UTILITY"),
    )
    .await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 2);
    let (_, none) = get(&sim, &format!("{path}?category=MARKETING")).await;
    assert_eq!(none["data"], json!([]));
    let (status, body) = get(&sim, &format!("{path}?fields=name,nonsense")).await;
    assert_eq!((status, code(&body)), (400, Some(100)));

    let id = sim.templates()[0].id.clone();
    let (status, _) = get(&sim, &format!("{path}?fields=id,name,previous_category")).await;
    assert_eq!(status, 200, "an absent optional field is no error");
    let (_, one) = get(&sim, &format!("{id}?fields=quality_score,rejected_reason")).await;
    assert_eq!(
        one,
        json!({"quality_score": {"score": "GREEN"}, "rejected_reason": "NONE", "id": id})
    );

    // One language only, by hsm_id.
    let en_id = sim.template_by_name(WABA, "t0", "en_US").unwrap().id;
    let (status, _) = delete(&sim, &format!("{path}?name=t0&hsm_id={en_id}")).await;
    assert_eq!(status, 200);
    assert!(sim.template_by_name(WABA, "t0", "pt_BR").is_some());
    assert!(sim.template_by_name(WABA, "t0", "en_US").is_none());
}

#[tokio::test]
async fn edits_follow_metas_rules_and_go_back_to_review() {
    let (sim, rx) = sim_with_receiver().await;
    let (_, body) = create(&sim, order_template("pedido")).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let mut edit = order_template("pedido");
    edit["components"][1]["text"] = json!("Oi {{1}}, o pedido {{2}} foi enviado para você hoje.");

    let (status, body) = post(&sim, &id, edit.clone()).await;
    assert_eq!(status, 400, "a PENDING template can't be edited: {body}");

    sim.approve_template(&id).await.unwrap();
    let (status, body) = post(&sim, &id, edit.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"success": true}));
    let t = sim.template(&id).unwrap();
    assert_eq!(t.status, "PENDING");
    assert!(
        t.components[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("Oi {{1}}")
    );

    // Once a day for an approved template.
    sim.approve_template(&id).await.unwrap();
    let (status, body) = post(&sim, &id, edit.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["error_user_msg"]
            .as_str()
            .unwrap()
            .contains("24 hours")
    );
    sim.advance_clock(Duration::from_secs(25 * 3600));
    assert_eq!(post(&sim, &id, edit.clone()).await.0, 200);

    // Category and name of an approved template stay; a rejected one can change category.
    sim.approve_template(&id).await.unwrap();
    sim.advance_clock(Duration::from_secs(25 * 3600));
    let (status, _) = post(&sim, &id, json!({"category": "MARKETING"})).await;
    assert_eq!(status, 400);
    let (status, _) = post(
        &sim,
        &id,
        json!({"name": "outro", "components": edit["components"]}),
    )
    .await;
    assert_eq!(status, 400);
    sim.reject_template(&id, "INCORRECT_CATEGORY", None)
        .await
        .unwrap();
    let (status, body) = post(&sim, &id, json!({"category": "MARKETING"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim.template(&id).unwrap().category, "MARKETING");

    // Edits are checked like creations.
    sim.approve_template(&id).await.unwrap();
    sim.advance_clock(Duration::from_secs(25 * 3600));
    let mut bad = edit;
    bad["category"] = json!("MARKETING");
    bad["components"][2]["text"] = json!("Até {{1}}");
    let (status, body) = post(&sim, &id, bad).await;
    assert_eq!((status, subcode(&body)), (400, Some(2388073)));
    assert!(
        rx.values_of("message_template_status_update", 1)
            .await
            .len()
            >= 4
    );
}

#[tokio::test]
async fn review_and_quality_webhooks_have_metas_shape() {
    let (sim, rx) = sim_with_receiver().await;
    sim.set_template_review(Some(AutoReview::approve_after(Duration::from_millis(20))));
    let (_, body) = create(&sim, order_template("pedido")).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let approved = rx.values_of("message_template_status_update", 1).await;
    assert_eq!(approved[0]["event"], "APPROVED");
    assert_eq!(
        approved[0]["message_template_id"]
            .as_u64()
            .unwrap()
            .to_string(),
        id
    );
    assert_eq!(approved[0]["message_template_name"], "pedido");
    assert_eq!(approved[0]["message_template_language"], "pt_BR");
    assert_eq!(sim.template(&id).unwrap().status, "APPROVED");
    let all = rx.wait(1).await;
    assert_eq!(all[0]["object"], "whatsapp_business_account");
    assert_eq!(all[0]["entry"][0]["id"], WABA);
    assert!(all[0]["entry"][0]["time"].is_u64());

    // Through the control API: reject with reason and recommendation, pause, disable...
    let (status, answer) = control(
        &sim,
        &format!("templates/{id}/reject"),
        json!({"reason": "PROMOTIONAL", "recommendation": "Tire o tom promocional."}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook"]["status"], 200);
    assert_eq!(answer["template"]["status"], "REJECTED");
    for path in ["pause", "disable", "reinstate"] {
        let (status, _) = control(&sim, &format!("templates/{id}/{path}"), json!({})).await;
        assert_eq!(status, 200);
    }
    let events = rx.values_of("message_template_status_update", 5).await;
    let rejected = &events[1];
    assert_eq!(rejected["event"], "REJECTED");
    assert_eq!(rejected["reason"], "PROMOTIONAL");
    assert_eq!(
        rejected["rejection_info"]["recommendation"],
        "Tire o tom promocional."
    );
    assert!(rejected["rejection_info"]["reason"].is_string());
    assert_eq!(events[2]["event"], "PAUSED");
    assert!(events[2]["other_info"]["title"].is_string());
    assert_eq!(events[3]["event"], "DISABLED");
    assert!(events[3]["disable_info"]["disable_date"].is_u64());
    assert_eq!(events[4]["event"], "REINSTATED");
    assert_eq!(sim.template(&id).unwrap().status, "APPROVED");

    let (status, _) = control(
        &sim,
        &format!("templates/{id}/quality"),
        json!({"quality": "yellow"}),
    )
    .await;
    assert_eq!(status, 200);
    let q = rx.values_of("message_template_quality_update", 1).await;
    assert_eq!(q[0]["previous_quality_score"], "GREEN");
    assert_eq!(q[0]["new_quality_score"], "YELLOW");
    assert!(q[0]["message_template_id"].is_u64());
    sim.set_template_category(&id, "MARKETING").await.unwrap();
    let c = rx.values_of("template_category_update", 1).await;
    assert_eq!(
        (
            c[0]["previous_category"].as_str(),
            c[0]["new_category"].as_str()
        ),
        (Some("UTILITY"), Some("MARKETING"))
    );
    let (_, one) = get(
        &sim,
        &format!("{id}?fields=category,previous_category,quality_score"),
    )
    .await;
    assert_eq!(one["previous_category"], "UTILITY");
    assert_eq!(one["quality_score"]["score"], "YELLOW");
    assert_eq!(sim.template_webhooks().len(), 7);
    let (status, _) = control(&sim, "templates/999/approve", json!({})).await;
    assert_eq!(status, 400, "unknown template");
}

async fn upload(sim: &GraphSim, bytes: &[u8], file_type: &str) -> String {
    let url = format!(
        "{}/{}/uploads?file_name=foto.png&file_length={}&file_type={file_type}",
        sim.base_url(),
        sim.app_id(),
        bytes.len()
    );
    let session: Value = client()
        .post(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("upload:"), "{session}");
    let half = bytes.len() / 2;
    let resp: Value = client()
        .post(format!("{}/{id}", sim.base_url()))
        .header("Authorization", format!("OAuth {TOKEN}"))
        .header("file_offset", "0")
        .body(bytes[..half].to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["file_offset"], half, "{resp}");
    let (_, status) = get(sim, &id).await;
    assert_eq!(status, json!({"id": id, "file_offset": half}));
    let resp: Value = client()
        .post(format!("{}/{id}", sim.base_url()))
        .header("Authorization", format!("OAuth {TOKEN}"))
        .header("file_offset", half.to_string())
        .body(bytes[half..].to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["h"].as_str().expect("a handle").to_owned()
}

#[tokio::test]
async fn resumable_upload_handles_are_media_header_examples() {
    let (sim, _rx) = sim_with_receiver().await;
    let png = b"\x89PNG\r\n\x1a\n fake image bytes".to_vec();
    let handle = upload(&sim, &png, "image/png").await;
    assert!(handle.starts_with("4::"), "{handle}");
    assert_eq!(
        sim.upload_handle(&handle).unwrap().bytes.as_ref(),
        png.as_slice()
    );

    let with = |handle: &str, format: &str| {
        json!({"name": "promo", "language": "pt_BR", "category": "MARKETING",
        "components": [{"type": "HEADER", "format": format, "example": {"header_handle": [handle]}},
                       {"type": "BODY", "text": "Novidades da semana na nossa loja."}]})
    };
    let (status, body) = create(&sim, with("4::bm9wZQ==:desconhecido", "IMAGE")).await;
    assert_eq!((status, subcode(&body)), (400, Some(2494102)), "{body}");
    let (status, body) = create(&sim, with(&handle, "VIDEO")).await;
    assert_eq!(
        (status, subcode(&body)),
        (400, Some(2388047)),
        "a PNG is no video: {body}"
    );
    let (status, body) = create(&sim, with(&handle, "IMAGE")).await;
    assert_eq!(status, 200, "{body}");

    // Bad sessions.
    let bad = format!(
        "{}/{}/uploads?file_length=10&file_type=application/zip",
        sim.base_url(),
        sim.app_id()
    );
    assert_eq!(
        client()
            .post(bad)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let no_token = format!(
        "{}/{}/uploads?file_length=10&file_type=image/png",
        sim.base_url(),
        sim.app_id()
    );
    assert_eq!(client().post(no_token).send().await.unwrap().status(), 401);
    let in_query = format!(
        "{}/{}/uploads?file_length=10&file_type=image/png&access_token={TOKEN}",
        sim.base_url(),
        sim.app_id()
    );
    assert_eq!(client().post(in_query).send().await.unwrap().status(), 200);
    assert_eq!(sim.request_count(Endpoint::Uploads), 7);
}

#[tokio::test]
async fn permissions_come_from_the_token_and_debug_token_tells_them() {
    let (sim, _rx) = sim_with_receiver().await;
    let (_, dbg) = get(&sim, &format!("debug_token?input_token={TOKEN}")).await;
    let scopes = dbg["data"]["scopes"].as_array().unwrap();
    assert!(
        scopes.contains(&json!("whatsapp_business_management")),
        "{dbg}"
    );
    assert_eq!(dbg["data"]["is_valid"], true);
    assert_eq!(dbg["data"]["app_id"], sim.app_id());
    let granular = &dbg["data"]["granular_scopes"];
    assert!(
        granular
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["scope"] == "whatsapp_business_management"
                && g["target_ids"] == json!([WABA])),
        "{granular}"
    );
    let (_, other) = get(&sim, "debug_token?input_token=unknown").await;
    assert_eq!(other["data"]["is_valid"], false);

    let (status, _) = control(
        &sim,
        "tokens",
        json!({"scopes": ["whatsapp_business_messaging"]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = get(&sim, &format!("{WABA}/message_templates")).await;
    assert_eq!((status, code(&body)), (403, Some(200)), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("whatsapp_business_management")
    );
    let (status, _) = create(&sim, order_template("x")).await;
    assert_eq!(status, 403);
    let (status, _) = get(&sim, WABA).await;
    assert_eq!(status, 403);
    let (status, _) = get(&sim, PNID).await;
    assert_eq!(status, 200, "either permission reads the number");
    let (_, dbg) = get(&sim, &format!("debug_token?input_token={TOKEN}")).await;
    assert_eq!(
        dbg["data"]["scopes"],
        json!(["whatsapp_business_messaging"])
    );

    sim.set_token_scopes(TOKEN, &["whatsapp_business_management"]);
    let send = json!({"messaging_product": "whatsapp", "to": "5511987654321", "type": "text", "text": {"body": "oi"}});
    let (status, body) = post(&sim, &format!("{PNID}/messages"), send).await;
    assert_eq!((status, code(&body)), (403, Some(10)), "{body}");
    let (status, _) = get(&sim, &format!("{WABA}/message_templates")).await;
    assert_eq!(status, 200);
    // A bad token is 190 before any permission question.
    let resp = client()
        .get(format!("{}/{WABA}/message_templates", sim.base_url()))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn account_checks_answer_the_configured_state() {
    let mut cfg = SimConfig::new(SECRET, TOKEN, PNID);
    cfg.phone_numbers[0].waba_id = "102290129340398".to_owned();
    let sim = GraphSim::start(cfg).await.unwrap();
    let waba = "102290129340398";
    let (_, info) = get(&sim, waba).await;
    assert_eq!(info, json!({"id": waba, "name": "Atende Simulado"}));
    let (_, info) = get(
        &sim,
        &format!("{waba}?fields=account_review_status,country"),
    )
    .await;
    assert_eq!(info["account_review_status"], "APPROVED");
    let (status, _) = get(&sim, &format!("{waba}?fields=bogus")).await;
    assert_eq!(status, 400);

    let (_, subs) = get(&sim, &format!("{waba}/subscribed_apps")).await;
    assert_eq!(
        subs["data"][0]["whatsapp_business_api_data"]["id"],
        sim.app_id()
    );
    let (status, _) = delete(&sim, &format!("{waba}/subscribed_apps")).await;
    assert_eq!(status, 200);
    let (_, subs) = get(&sim, &format!("{waba}/subscribed_apps")).await;
    assert_eq!(subs, json!({"data": []}));
    assert!(!sim.is_subscribed(waba));
    let (status, body) = post(&sim, &format!("{waba}/subscribed_apps"), json!({})).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    assert!(sim.is_subscribed(waba));
    let (status, _) = control(
        &sim,
        &format!("wabas/{waba}/subscription"),
        json!({"subscribed": false}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, subs) = get(&sim, &format!("{waba}/subscribed_apps")).await;
    assert_eq!(subs["data"], json!([]));
    let (status, _) = get(&sim, "999/subscribed_apps").await;
    assert_eq!(status, 400);

    let fields = "quality_rating,messaging_limit_tier,whatsapp_business_manager_messaging_limit,verified_name,display_phone_number,code_verification_status,throughput";
    let (_, phone) = get(&sim, PNID).await;
    assert_eq!(
        phone.as_object().unwrap().len(),
        4,
        "the document's default fields: {phone}"
    );
    sim.set_messaging_limit_tier(PNID, "TIER_250");
    let (status, _) = control(
        &sim,
        &format!("phone_numbers/{PNID}"),
        json!({"quality_rating": "YELLOW"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, phone) = get(&sim, &format!("{PNID}?fields={fields}")).await;
    assert_eq!(phone["quality_rating"], "YELLOW");
    assert_eq!(phone["messaging_limit_tier"], "TIER_250");
    assert_eq!(
        phone["whatsapp_business_manager_messaging_limit"],
        "TIER_250"
    );
    assert_eq!(phone["code_verification_status"], "VERIFIED");
    assert_eq!(phone["throughput"]["level"], "STANDARD");
}
