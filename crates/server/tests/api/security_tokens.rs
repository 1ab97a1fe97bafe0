//! API tokens (security review, issue #11, finding 5): admins list and revoke them through the API
//! and the CLI, a token answers to the admin who made it (a deactivated or demoted creator
//! voids it at the next request) and the list shows its last use.

use reqwest::Method;
use serde_json::{Value, json};
use store::auth::Role;

use crate::cli::Install;
use crate::helpers::{Backend, Person, TestApp};
use crate::on_both_backends;

on_both_backends!(
    an_admin_lists_and_revokes_the_tokens_they_create,
    the_tokens_of_a_deactivated_or_demoted_admin_stop_working,
    the_last_use_of_a_token_is_recorded_at_most_once_a_minute,
    only_admins_manage_tokens,
);

/// `(status, body)` of a request with `Authorization: Bearer token`.
async fn with_token(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Creates a token as `admin`; returns its id and the raw token.
async fn create_token(admin: &Person, name: &str) -> (i64, String) {
    let created = admin.post_ok("/api/tokens", &json!({ "name": name })).await;
    let token = created["token"].as_str().expect("raw token").to_owned();
    (created["id"].as_i64().expect("token id"), token)
}

/// The token `id` as `GET /api/tokens` shows it to `admin`.
async fn listed(admin: &Person, id: i64) -> Value {
    let list = admin.get_ok("/api/tokens").await;
    let tokens = list["tokens"].as_array().expect("tokens");
    for t in tokens {
        assert!(
            t.get("token").is_none() && t.get("token_hash").is_none(),
            "the list never carries a secret: {t}"
        );
    }
    tokens
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("token {id} missing from {list}"))
}

fn a_new_user(email: &str) -> Value {
    json!({ "email": email, "name": "Nova Pessoa", "role": "admin", "password": "senha-forte-123" })
}

async fn an_admin_lists_and_revokes_the_tokens_they_create(app: TestApp) {
    let admin = app.person(Role::Admin, "Alice Admin").await;
    let created = admin
        .post_ok("/api/tokens", &json!({ "name": " crm " }))
        .await;
    assert_eq!(created["name"], "crm");
    assert_eq!(created["created_by"], admin.id, "{created}");
    assert!(created.get("token_hash").is_none(), "{created}");
    let id = created["id"].as_i64().expect("id");
    let token = created["token"].as_str().expect("raw token").to_owned();

    let (status, body) = with_token(&app, &token, Method::GET, "/api/users", None).await;
    assert_eq!(status, 200, "the new token works: {body}");
    let before = listed(&admin, id).await;
    assert_eq!(before["name"], "crm");
    assert_eq!(before["created_by"], admin.id);
    assert_eq!(before["created_by_name"], "Alice Admin");
    assert!(before["created_at"].as_i64().is_some(), "{before}");
    assert_eq!(before["revoked_at"], Value::Null);
    assert_eq!(before["status"], "active");

    let (status, revoked) = admin
        .call(Method::DELETE, &format!("/api/tokens/{id}"), None)
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].as_i64().is_some(), "{revoked}");
    assert!(revoked.get("token").is_none(), "{revoked}");
    let (status, _) = with_token(&app, &token, Method::GET, "/api/users", None).await;
    assert_eq!(status, 401, "a revoked token is refused");

    let after = listed(&admin, id).await;
    assert_eq!(after["revoked_at"], revoked["revoked_at"]);
    assert_eq!(after["status"], "revoked");
    assert_eq!(after["created_by"], admin.id, "the row keeps its creator");

    // Revoking again changes nothing; an unknown id is 404.
    let (status, again) = admin
        .call(Method::DELETE, &format!("/api/tokens/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    let (status, _) = admin.call(Method::DELETE, "/api/tokens/999999", None).await;
    assert_eq!(status, 404);
    // The harness's own token (made without a person, like the CLI's) is listed without creator.
    let list = admin.get_ok("/api/tokens").await;
    let cli = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "tests")
        .cloned()
        .expect("the harness token");
    assert_eq!(cli["created_by"], Value::Null, "{cli}");
    assert_eq!(cli["status"], "active");
}

async fn the_tokens_of_a_deactivated_or_demoted_admin_stop_working(app: TestApp) {
    let leaving = app.person(Role::Admin, "Bruno Saindo").await;
    let demoted = app.person(Role::Admin, "Carla Rebaixada").await;
    let other = app.person(Role::Admin, "Dora Admin").await;
    let (leaving_id, leaving_token) = create_token(&leaving, "bruno-crm").await;
    let (_, demoted_token) = create_token(&demoted, "carla-crm").await;
    // A token minted with Bruno's token answers to Bruno too.
    let (status, minted) = with_token(
        &app,
        &leaving_token,
        Method::POST,
        "/api/tokens",
        Some(&json!({ "name": "minted" })),
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["created_by"], leaving.id, "{minted}");
    let minted_token = minted["token"].as_str().expect("token").to_owned();
    for token in [&leaving_token, &demoted_token, &minted_token] {
        let (status, body) = with_token(&app, token, Method::GET, "/api/users", None).await;
        assert_eq!(status, 200, "works while its creator is an admin: {body}");
    }

    let (status, body) = other
        .patch(
            &format!("/api/users/{}", leaving.id),
            &json!({ "active": false }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = other
        .patch(
            &format!("/api/users/{}", demoted.id),
            &json!({ "role": "agent" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    for (token, whose) in [
        (&leaving_token, "a deactivated admin's token"),
        (&minted_token, "a token minted by that token"),
        (&demoted_token, "a demoted admin's token"),
    ] {
        let (status, _) = with_token(&app, token, Method::GET, "/api/users", None).await;
        assert_eq!(status, 401, "{whose} lists no users");
        let (status, _) = with_token(
            &app,
            token,
            Method::POST,
            "/api/users",
            Some(&a_new_user("intruso@atende.test")),
        )
        .await;
        assert_eq!(status, 401, "{whose} creates no admin");
    }
    assert!(
        app.store
            .user_by_email("intruso@atende.test")
            .await
            .expect("read")
            .is_none(),
        "no user was created"
    );
    let entry = listed(&other, leaving_id).await;
    assert_eq!(entry["status"], "creator_inactive", "{entry}");
    assert_eq!(entry["revoked_at"], Value::Null);

    // Nothing else was voided: another admin's and the operator's tokens still work.
    let (_, others_token) = create_token(&other, "dora-crm").await;
    for token in [&others_token, &app.token] {
        let (status, body) = with_token(&app, token, Method::GET, "/api/users", None).await;
        assert_eq!(status, 200, "{body}");
    }
    // Reactivating the person brings their tokens back (revoking is the permanent way).
    let (status, body) = other
        .patch(
            &format!("/api/users/{}", leaving.id),
            &json!({ "active": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = with_token(&app, &leaving_token, Method::GET, "/api/users", None).await;
    assert_eq!(status, 200);
}

async fn the_last_use_of_a_token_is_recorded_at_most_once_a_minute(app: TestApp) {
    let admin = app.person(Role::Admin, "Elisa Admin").await;
    let (id, token) = create_token(&admin, "erp").await;
    let fresh = listed(&admin, id).await;
    assert_eq!(
        fresh["last_used_at"],
        Value::Null,
        "never used yet: {fresh}"
    );

    let (status, _) = with_token(&app, &token, Method::GET, "/api/users", None).await;
    assert_eq!(status, 200);
    let used = listed(&admin, id).await;
    let first_use = used["last_used_at"].as_i64().expect("last_used_at set");
    assert!(
        first_use >= used["created_at"].as_i64().expect("created_at"),
        "{used}"
    );

    // Within the minute, more requests do not write again.
    for _ in 0..3 {
        let (status, _) = with_token(&app, &token, Method::GET, "/api/users", None).await;
        assert_eq!(status, 200);
    }
    let again = listed(&admin, id).await;
    assert_eq!(again["last_used_at"], first_use, "{again}");
}

async fn only_admins_manage_tokens(app: TestApp) {
    let admin = app.person(Role::Admin, "Fabio Admin").await;
    let (id, _) = create_token(&admin, "crm").await;
    let revoke = format!("/api/tokens/{id}");
    for role in [Role::Agent, Role::Supervisor] {
        let person = app.person(role, &format!("Gil {}", role.as_str())).await;
        let (status, _) = person.get("/api/tokens").await;
        assert_eq!(status, 403, "{role:?} lists no tokens");
        let (status, _) = person.post("/api/tokens", &json!({ "name": "x" })).await;
        assert_eq!(status, 403, "{role:?} creates no token");
        let (status, _) = person.call(Method::DELETE, &revoke, None).await;
        assert_eq!(status, 403, "{role:?} revokes no token");
    }
    for (method, path) in [
        (Method::GET, "/api/tokens"),
        (Method::POST, "/api/tokens"),
        (Method::DELETE, revoke.as_str()),
    ] {
        let resp = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .json(&json!({ "name": "x" }))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 401, "anonymous {method} {path}");
    }
    let entry = listed(&admin, id).await;
    assert_eq!(entry["status"], "active", "nobody revoked it: {entry}");
    let list = admin.get_ok("/api/tokens").await;
    assert_eq!(
        list["tokens"].as_array().map(Vec::len),
        Some(2),
        "only the harness's token and the admin's: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_and_revokes_tokens_from_the_command_line_sqlite() {
    if let Some(install) = Install::new(Backend::Sqlite).await {
        the_operator_lists_and_revokes_tokens_from_the_command_line(install).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_and_revokes_tokens_from_the_command_line_postgres() {
    if let Some(install) = Install::new(Backend::Postgres).await {
        the_operator_lists_and_revokes_tokens_from_the_command_line(install).await;
    }
}

/// The fields of the `token list` line of token `name`.
async fn cli_line(install: &Install, name: &str) -> Vec<String> {
    let list = install.ok(&["token", "list"], "").await;
    list.lines()
        .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.get(1).map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("{name} missing from `token list`: {list}"))
}

async fn the_operator_lists_and_revokes_tokens_from_the_command_line(install: Install) {
    install.ok(&["migrate"], "").await;
    let out = install.ok(&["token", "list"], "").await;
    assert_eq!(out.trim(), "no API tokens");
    let token = install
        .ok(&["token", "create", "--name", "crm"], "")
        .await
        .trim()
        .to_owned();
    install.ok(&["token", "create", "--name", "bi"], "").await;
    let list = install.ok(&["token", "list"], "").await;
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        !list.contains(&token),
        "the list never prints a token: {list}"
    );
    let line = cli_line(&install, "crm").await;
    assert_eq!(line[2], "active", "{line:?}");
    assert_eq!(line[4], "last used never", "{line:?}");
    assert_eq!(line[5], "cli", "{line:?}");
    let id = line[0].clone();

    let server = install.serve().await;
    server.api_get(&token, "/api/users").await;
    let line = cli_line(&install, "crm").await;
    assert!(
        line[4].starts_with("last used 20"),
        "the use is listed: {line:?}"
    );

    // Revoked from the command line while the server runs: refused at the next request.
    let out = install.ok(&["token", "revoke", &id], "").await;
    assert!(out.contains("revoked") && out.contains("crm"), "{out}");
    let status = server
        .http
        .get(format!("{}/api/users", server.address))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, 401);
    assert_eq!(cli_line(&install, "crm").await[2], "revoked");
    assert_eq!(cli_line(&install, "bi").await[2], "active", "only that one");

    let err = install.fails(&["token", "revoke", "999999"], "").await;
    assert!(err.contains("no API token with id 999999"), "{err}");
    install.fails(&["token", "revoke", "abc"], "").await;
    server.kill().await;
}
