//! Sign-in, sessions and the demo simulator under attack (issue #11): each test is one finding of
//! the review, replayed through the public HTTP API.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use server::demo::DemoMode;
use store::auth::Role;

use crate::helpers::{Backend, PERSON_PASSWORD, Person, TestApp, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    parallel_wrong_passwords_are_checked_only_up_to_the_limit,
    a_correct_password_is_accepted_after_other_accounts_failed_from_the_same_address,
    a_password_change_ends_the_other_sessions_and_rotates_this_one,
    the_api_refuses_everything_but_the_password_change_while_it_is_required,
    the_password_change_is_throttled_like_the_login,
    logout_closes_the_sessions_websocket,
    every_response_carries_the_security_headers,
);

async fn parallel_wrong_passwords_are_checked_only_up_to_the_limit(app: TestApp) {
    let ana = app.person(Role::Agent, "Ana").await;
    let attempts = (0..40).map(|n| {
        let app = &app;
        let email = ana.email.clone();
        async move { app.login(&email, &format!("wrong-{n}")).await }
    });
    let answers = futures::future::join_all(attempts).await;
    let count = |status: u16| answers.iter().filter(|a| a.status() == status).count();
    assert_eq!(count(401), 5, "only the allowed attempts were checked");
    assert_eq!(count(429), 35, "the others were refused unchecked");
    let refused = answers.iter().find(|a| a.status() == 429).expect("a 429");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");

    // The owner is slowed down, not locked out: once the back-off is over, the right password
    // works.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = app.login(&ana.email, PERSON_PASSWORD).await;
        match answer.status().as_u16() {
            200 => break,
            429 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("the right password after the back-off: {other}"),
        }
    }
}

async fn a_correct_password_is_accepted_after_other_accounts_failed_from_the_same_address(
    app: TestApp,
) {
    let ana = app.person(Role::Agent, "Ana").await;
    for n in 0..20 {
        let answer = app.login(&format!("nobody-{n}@atende.test"), "guess").await;
        assert_eq!(answer.status(), 401);
    }
    let answer = app.login(&ana.email, PERSON_PASSWORD).await;
    assert_eq!(
        answer.status(),
        200,
        "others' failures from this address do not refuse Ana"
    );
}

async fn a_password_change_ends_the_other_sessions_and_rotates_this_one(app: TestApp) {
    let laptop = app.person(Role::Agent, "Ana").await;
    let phone = app.sign_in(laptop.id, &laptop.email, PERSON_PASSWORD).await;
    let answer = laptop
        .bare(Method::POST, "/api/auth/password")
        .header("x-csrf-token", laptop.csrf())
        .json(&json!({ "current_password": PERSON_PASSWORD, "new_password": "uma-senha-nova-1" }))
        .send()
        .await
        .expect("password change");
    assert_eq!(answer.status(), 200);
    let renewed = app.person_from(laptop.id, &laptop.email, answer).await;
    assert_ne!(renewed.cookie(), laptop.cookie(), "a new session id");
    assert_eq!(
        phone.get("/api/auth/me").await.0,
        401,
        "the other session ended"
    );
    assert_eq!(
        laptop.get("/api/auth/me").await.0,
        401,
        "the old id is gone"
    );
    assert_eq!(renewed.get("/api/auth/me").await.0, 200);
    let (status, _) = renewed
        .put("/api/presence", &json!({ "presence": "available" }))
        .await;
    assert_eq!(status, 200, "the new CSRF token works");
}

async fn the_api_refuses_everything_but_the_password_change_while_it_is_required(app: TestApp) {
    // The first admin must choose a password before anything else.
    let admin_id = app
        .store
        .user_by_email(&app.admin_email)
        .await
        .expect("read")
        .expect("first admin")
        .id;
    let admin = app
        .sign_in(admin_id, &app.admin_email, &app.admin_password)
        .await;
    let (status, body) = admin.get("/api/users").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "password_change_required");
    let (status, _) = admin
        .post("/api/tokens", &json!({ "name": "backdoor" }))
        .await;
    assert_eq!(status, 403);
    let (status, me) = admin.get("/api/auth/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["must_change_password"], true);
    let (ws, status) = admin.try_socket(None, None).await;
    assert!(
        ws.is_none() && status == 403,
        "the live socket too: {status}"
    );

    let answer = admin
        .bare(Method::POST, "/api/auth/password")
        .header("x-csrf-token", admin.csrf())
        .json(
            &json!({ "current_password": app.admin_password, "new_password": "senha-do-admin-1" }),
        )
        .send()
        .await
        .expect("password change");
    assert_eq!(answer.status(), 200);
    let admin = app.person_from(admin_id, &app.admin_email, answer).await;
    assert_eq!(admin.get("/api/users").await.0, 200);
}

async fn the_password_change_is_throttled_like_the_login(app: TestApp) {
    let ana = app.person(Role::Agent, "Ana").await;
    let mut statuses = Vec::new();
    for n in 0..7 {
        let (status, _) = ana
            .post(
                "/api/auth/password",
                &json!({ "current_password": format!("guess-{n}"), "new_password": "uma-senha-nova-1" }),
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(&statuses[..5], &[400; 5], "{statuses:?}");
    assert_eq!(
        statuses[5], 429,
        "a stolen session cannot keep guessing: {statuses:?}"
    );
}

async fn logout_closes_the_sessions_websocket(app: TestApp) {
    let laptop = app.person(Role::Agent, "Ana").await;
    let phone = app.sign_in(laptop.id, &laptop.email, PERSON_PASSWORD).await;
    let mut laptop_tab = laptop.socket(None).await;
    let mut phone_tab = phone.socket(None).await;
    let (status, _) = laptop.post("/api/auth/logout", &json!({})).await;
    assert_eq!(status, 200);
    assert!(
        laptop_tab.ends_within(Duration::from_secs(10)).await,
        "the logged-out session's socket ends"
    );
    // The other session's socket lives on.
    phone_tab.send_json(&json!({ "type": "ping" })).await;
    phone_tab
        .wait_for("a pong", |m: &Value| m["type"] == "pong")
        .await;
}

async fn every_response_carries_the_security_headers(app: TestApp) {
    for path in ["/api/auth/me", "/health", "/api/no-such-route", "/app/"] {
        let answer = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("request");
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        assert!(header("permissions-policy").contains("camera=()"), "{path}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        if path == "/app/" {
            assert!(
                header("content-security-policy").contains("script-src 'self'"),
                "the page keeps its own CSP"
            );
        } else {
            assert!(
                header("content-security-policy").starts_with("default-src 'none'"),
                "{path}"
            );
        }
        assert_eq!(header("strict-transport-security"), "", "no HSTS over http");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.public_url = Some("https://atende.example.com".into());
    })
    .await
    .expect("SQLite app");
    let answer = app
        .http
        .get(format!("{}/health", app.address))
        .send()
        .await
        .expect("request");
    assert_eq!(
        answer.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

// ---------- the demo simulator ----------

async fn simulator_app(demo: DemoMode) -> TestApp {
    spawn_app_with(Backend::Sqlite, |config| config.demo = demo)
        .await
        .expect("SQLite app")
}

fn customer_says_oi() -> Value {
    json!({ "from": "5511987650001", "name": "Maria", "type": "text", "text": "Oi" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_needs_an_admin_session_with_csrf_and_json() {
    let app = simulator_app(DemoMode::On).await;
    let sim = |path: &str| format!("{}/sim/_sim{path}", app.address);

    // Nobody from outside: no session, no control.
    let anonymous = app.http.get(sim("/sent")).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
    let anonymous = app
        .http
        .post(sim("/customer/send"))
        .header("content-type", "text/plain")
        .body(customer_says_oi().to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(
        anonymous.status(),
        401,
        "a cross-site form cannot inject messages"
    );

    // Nor around the guard with an empty path segment, which the simulator's router would still
    // route to its control API (found by the review of the fix).
    for (method, path) in [
        (Method::GET, "/sim//_sim/config"),
        (Method::GET, "/sim//_sim/sent"),
        (Method::POST, "/sim//_sim/webhook_url"),
        (Method::POST, "/sim///_sim/customer/send"),
        (Method::GET, "/sim/_sim//sent"),
    ] {
        let answer = app
            .http
            .request(method, format!("{}{path}", app.address))
            .header("content-type", "text/plain")
            .body(json!({ "url": "http://127.0.0.1:9/" }).to_string())
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), 404, "{path}");
    }

    // The Graph side turns a stranger away before reading the body (up to 100 MB for media).
    let stranger = app
        .http
        .post(format!("{}/sim/v23.0/100000000000001/media", app.address))
        .bearer_auth("not-the-channel-token")
        .body(vec![0u8; 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(stranger.status(), 401);

    let agent: Person = app.person(Role::Agent, "Ana").await;
    assert_eq!(agent.get("/sim/_sim/sent").await.0, 403, "an admin's tool");

    let admin = app.person(Role::Admin, "Demo").await;
    assert_eq!(admin.get("/sim/_sim/sent").await.0, 200);
    // The admin's cookie riding a request from another site: no CSRF header, refused.
    let forged = admin
        .bare(Method::POST, "/sim/_sim/customer/send")
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(customer_says_oi().to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), 403);
    let not_json = admin
        .bare(Method::POST, "/sim/_sim/customer/send")
        .header("x-csrf-token", admin.csrf())
        .header("content-type", "text/plain")
        .body(customer_says_oi().to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), 415, "JSON endpoints take JSON only");
    let (status, sent) = admin
        .post("/sim/_sim/customer/send", &customer_says_oi())
        .await;
    assert_eq!(status, 200, "{sent}");

    // What the page does not need is not there, whoever asks: the webhook URL (an SSRF that read
    // responses), faults, reset.
    for path in ["/webhook_url", "/faults", "/reset"] {
        let (status, _) = admin
            .post(
                &format!("/sim/_sim{path}"),
                &json!({ "url": "http://169.254.169.254/" }),
            )
            .await;
        assert_eq!(status, 404, "{path}");
    }
    // The Graph side answers only with the simulated channel's access token.
    let graph = app
        .http
        .post(format!(
            "{}/sim/v23.0/{}/messages",
            app.address,
            server::demo::SIM_PHONE_NUMBER_ID
        ))
        .json(&json!({ "messaging_product": "whatsapp", "to": "5511987650001", "type": "text", "text": { "body": "x" } }))
        .send()
        .await
        .expect("request");
    assert_eq!(graph.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_goes_away_once_a_real_channel_exists() {
    // `auto`: the simulator started (no real channel at build time), then spawn_app added one.
    let app = simulator_app(DemoMode::Auto).await;
    assert!(app.state.simulator.is_some(), "the simulator was started");
    let admin = app.person(Role::Admin, "Demo").await;
    assert_eq!(admin.get("/sim/_sim/config").await.0, 404);
    let (status, _) = admin
        .post("/sim/_sim/customer/send", &customer_says_oi())
        .await;
    assert_eq!(status, 404, "unmounted without a restart");
}
