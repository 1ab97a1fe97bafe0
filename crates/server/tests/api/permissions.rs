//! Permissions on top of the roles (the matrix an admin edits, what each role may do with
//! templates, a pt-BR 403 for every denied action and 401 for anonymous callers) and a channel's
//! prerequisites for templates (token scopes, WABA, app subscription, tier and quality).

use reqwest::Method;
use serde_json::{Value, json};
use store::auth::Role;

use crate::helpers::{ACCESS_TOKEN, PHONE_NUMBER_ID, Person, TestApp, WABA_ID};
use crate::on_both_backends;
use crate::templates::{admin, create_ok, order_template};

const DENIED_MANAGE: &str = "Seu perfil não tem a permissão «Gerenciar templates».";
const DENIED_SEND: &str = "Seu perfil não tem a permissão «Enviar templates».";

async fn matrix_defaults_and_edits(app: TestApp) {
    let admin = admin(&app).await;
    let m = admin.get_ok("/api/permissions").await;
    assert_eq!(
        m["roles"]["admin"],
        json!([
            "manage_templates",
            "send_template",
            "run_broadcasts",
            "schedule_messages"
        ])
    );
    assert_eq!(
        m["roles"]["supervisor"],
        json!(["send_template", "run_broadcasts", "schedule_messages"])
    );
    assert_eq!(m["roles"]["agent"], json!(["send_template"]));
    assert_eq!(m["all"][0]["label_pt"], "Gerenciar templates");
    assert_eq!(m["fixed_roles"], json!(["admin"]));

    let agent = app.person(Role::Agent, "Agente Matriz").await;
    assert_eq!(
        agent.get_ok("/api/me/permissions").await,
        json!({"role": "agent", "permissions": ["send_template"]})
    );

    // Agents lose send_template, supervisors gain manage_templates.
    let (status, m) = admin
        .put(
            "/api/permissions",
            &json!({"roles": {
                "agent": [],
                "supervisor": ["manage_templates", "send_template"]
            }}),
        )
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["roles"]["agent"], json!([]));
    assert_eq!(
        m["roles"]["supervisor"],
        json!(["manage_templates", "send_template"])
    );
    assert_eq!(
        agent.get_ok("/api/me/permissions").await["permissions"],
        json!([])
    );
    let (status, body) = agent.get("/api/templates").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["message"], DENIED_SEND);

    let sup = app.person(Role::Supervisor, "Sup Templates").await;
    let t = create_ok(&sup, &order_template("feito_por_supervisor", "pt_BR")).await;
    assert_eq!(t["status"], "PENDING");

    // The admin row is fixed; unknown roles and permissions are refused.
    let (status, body) = admin
        .put(
            "/api/permissions",
            &json!({"roles": {"admin": ["send_template"]}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "admin_fixed");
    let (status, body) = admin
        .put("/api/permissions", &json!({"roles": {"agent": ["voar"]}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_permission");
    let (status, body) = admin
        .put("/api/permissions", &json!({"roles": {"gerente": []}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_role");
    assert_eq!(
        admin.get_ok("/api/me/permissions").await["permissions"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Only admins see or edit the matrix.
    for who in [&agent, &sup] {
        let (status, _) = who.get("/api/permissions").await;
        assert_eq!(status, 403);
        let (status, _) = who
            .put(
                "/api/permissions",
                &json!({"roles": {"agent": ["send_template"]}}),
            )
            .await;
        assert_eq!(status, 403);
    }
    let anonymous = app
        .http
        .get(format!("{}/api/permissions", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let anonymous = app
        .http
        .get(format!("{}/api/me/permissions", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // An API token acts as admin.
    let me = app.api_get("/api/me/permissions").await;
    assert_eq!(me["role"], "admin");
}

/// Every template endpoint that needs `manage_templates`, with a body that would be accepted.
fn manage_calls(id: i64, channel_id: i64) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/api/templates".into(),
            Some(order_template("negado", "pt_BR")),
        ),
        (
            Method::POST,
            "/api/templates/validate".into(),
            Some(order_template("negado", "pt_BR")),
        ),
        (Method::POST, "/api/templates/sync".into(), Some(json!({}))),
        (
            Method::PATCH,
            format!("/api/templates/{id}"),
            Some(json!({"category": "MARKETING"})),
        ),
        (Method::DELETE, format!("/api/templates/{id}"), None),
        (
            Method::PUT,
            format!("/api/templates/{id}/button_actions"),
            Some(json!({"button_actions": null})),
        ),
        (
            Method::GET,
            format!("/api/channels/{channel_id}/prerequisites"),
            None,
        ),
        (
            Method::POST,
            format!("/api/channels/{channel_id}/subscribe"),
            Some(json!({})),
        ),
    ]
}

async fn every_denied_action_is_403_in_pt_br(app: TestApp) {
    let admin = admin(&app).await;
    let t = create_ok(&admin, &order_template("protegido", "pt_BR")).await;
    let id = t["id"].as_i64().unwrap();
    let agent = app.person(Role::Agent, "Agente Negado").await;
    let sup = app.person(Role::Supervisor, "Sup Negado").await;
    for who in [&agent, &sup] {
        for (method, path, body) in manage_calls(id, app.channel_id) {
            let (status, answer) = who.call(method.clone(), &path, body.as_ref()).await;
            assert_eq!(status, 403, "{method} {path} as {}: {answer}", who.email);
            assert_eq!(answer["error"]["message"], DENIED_MANAGE, "{method} {path}");
        }
        let (status, answer) = upload_as(who).await;
        assert_eq!(status, 403, "media upload: {answer}");
        assert_eq!(answer["error"]["message"], DENIED_MANAGE);
    }
    assert_eq!(
        app.store.template(id).await.unwrap().unwrap().status,
        "PENDING"
    );

    // Anonymous: 401 everywhere, reading included.
    let mut calls = manage_calls(id, app.channel_id);
    calls.push((Method::GET, "/api/templates".into(), None));
    calls.push((Method::GET, format!("/api/templates/{id}"), None));
    calls.push((Method::POST, "/api/templates/media".into(), None));
    for (method, path, body) in calls {
        let mut req = app
            .http
            .request(method.clone(), format!("{}{path}", app.address));
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path} anonymous");
    }

    // Without send_template, even reading is refused.
    admin
        .put("/api/permissions", &json!({"roles": {"agent": []}}))
        .await;
    for path in ["/api/templates".to_owned(), format!("/api/templates/{id}")] {
        let (status, answer) = agent.get(&path).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(answer["error"]["message"], DENIED_SEND);
    }
}

async fn upload_as(who: &Person) -> (u16, Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(crate::templates::PNG.to_vec()).file_name("a.png"),
    );
    let resp = who
        .bare(Method::POST, "/api/templates/media")
        .header("x-csrf-token", who.csrf())
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn check<'a>(answer: &'a Value, key: &str) -> &'a Value {
    answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no check {key} in {answer}"))
}

async fn prerequisites_explain_what_is_missing(app: TestApp) {
    let admin = admin(&app).await;
    let path = format!("/api/channels/{}/prerequisites", app.channel_id);
    app.sim
        .set_messaging_limit_tier(PHONE_NUMBER_ID, "TIER_250");
    app.sim.set_quality_rating(PHONE_NUMBER_ID, "YELLOW");
    let answer = admin.get_ok(&path).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["tier"], "TIER_250");
    assert_eq!(answer["messaging_limit"], 250);
    assert_eq!(answer["quality"], "YELLOW");
    assert_eq!(answer["app_id"], app.sim.app_id());
    for key in [
        "token",
        "management_scope",
        "messaging_scope",
        "waba",
        "app_subscribed",
        "messaging_limit",
        "quality_rating",
        "app_id",
    ] {
        assert_eq!(check(&answer, key)["ok"], true, "{key}: {answer}");
    }
    // Stored on the channel, where broadcasts read the limit.
    let account = app
        .store
        .channel_account(app.channel_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.messaging_limit, Some(250));
    assert_eq!(account.quality_rating.as_deref(), Some("YELLOW"));
    assert!(account.prerequisites.unwrap().contains("\"ok\":true"));

    // An admin's limit survives the next checks; null goes back to the tier's.
    let (status, body) = admin
        .patch(
            &format!("/api/channels/{}", app.channel_id),
            &json!({"messaging_limit": 100}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channel"]["messaging_limit"], 100);
    assert_eq!(body["channel"]["messaging_limit_manual"], true);
    app.sim
        .set_messaging_limit_tier(PHONE_NUMBER_ID, "TIER_10K");
    let answer = admin.get_ok(&path).await;
    assert_eq!(answer["tier"], "TIER_10K");
    assert_eq!(answer["messaging_limit"], 100);
    let (_, body) = admin
        .patch(
            &format!("/api/channels/{}", app.channel_id),
            &json!({"messaging_limit": null}),
        )
        .await;
    assert_eq!(body["channel"]["messaging_limit"], 10_000);
    assert_eq!(body["channel"]["messaging_limit_manual"], false);

    // The app is not subscribed: explained, and fixed by the subscribe endpoint.
    app.sim.set_subscribed(WABA_ID, false);
    let answer = admin.get_ok(&path).await;
    assert_eq!(answer["ok"], false);
    let sub = check(&answer, "app_subscribed");
    assert_eq!(sub["ok"], false);
    assert!(
        sub["message_pt"]
            .as_str()
            .unwrap()
            .contains("não está inscrito")
    );
    assert!(sub["fix_pt"].as_str().unwrap().contains("subscribe"));
    let fixed = admin
        .post_ok(
            &format!("/api/channels/{}/subscribe", app.channel_id),
            &json!({}),
        )
        .await;
    assert_eq!(fixed["ok"], true, "{fixed}");
    assert!(app.sim.is_subscribed(WABA_ID));

    // The token lost whatsapp_business_management.
    app.sim
        .set_token_scopes(ACCESS_TOKEN, &["whatsapp_business_messaging"]);
    let answer = admin.get_ok(&path).await;
    assert_eq!(answer["ok"], false);
    let scope = check(&answer, "management_scope");
    assert_eq!(scope["ok"], false);
    assert!(
        scope["message_pt"]
            .as_str()
            .unwrap()
            .contains("whatsapp_business_management")
    );
    assert!(
        scope["fix_pt"]
            .as_str()
            .unwrap()
            .contains("Usuários do sistema")
    );
    assert_eq!(check(&answer, "messaging_scope")["ok"], true);
    let waba = check(&answer, "waba");
    assert_eq!(
        waba["ok"], false,
        "the WABA needs the management permission: {answer}"
    );
    assert!(waba["fix_pt"].as_str().is_some());
    // Creating a template now fails at Meta, and says why.
    let (status, body) = admin
        .post("/api/templates", &order_template("sem_permissao", "pt_BR"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["meta"]["code"], 200);
}

on_both_backends!(
    matrix_defaults_and_edits,
    every_denied_action_is_403_in_pt_br,
    prerequisites_explain_what_is_missing,
);
