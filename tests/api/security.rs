//! Shell targets are a privilege boundary (issue 14): choosing a shell command needs the
//! admin role on create, PUT and PATCH, and the server's target policy is applied at
//! validation (shell targets off, command allowlist, literal denied addresses).

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{schedule_body, spawn_app_with, TestApp};

const TOKENS: &str = "viewer-secret:viewer,operator-secret:operator,admin-secret:admin";

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let r = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn shell_body(name: &str, args: &[&str]) -> Value {
    json!({
        "name": name, "timezone": "UTC",
        "schedule": {"kind": "cron", "expr": "0 2 * * *"},
        "target": {"kind": "shell", "command": "/bin/echo", "args": args}
    })
}

#[track_caller]
fn assert_forbidden(status: u16, body: &Value, reason: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden", "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("role operator may not {reason}"))
            && message.contains("admin role"),
        "{message}"
    );
}

#[actix_web::test]
async fn choosing_a_shell_command_needs_admin() {
    let app = spawn_app_with(|c| c.api_tokens = Some(TOKENS.into())).await;

    // Create: operator refused, nothing created; admin creates.
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/schedules",
        "operator-secret",
        &shell_body("sh", &["hi"]),
    )
    .await;
    assert_forbidden(s, &b, "create a shell target");
    let (s, b) = call(
        &app,
        Method::GET,
        "/v1/schedules",
        "viewer-secret",
        &json!({}),
    )
    .await;
    assert_eq!(
        (s, b["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{b}"
    );
    let (s, created) = call(
        &app,
        Method::POST,
        "/v1/schedules",
        "admin-secret",
        &shell_body("sh", &["hi"]),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let sh = format!("/v1/schedules/{}", created["id"].as_str().unwrap());

    // PUT and PATCH that change the command or args: operator refused, nothing changed.
    let (s, b) = call(
        &app,
        Method::PUT,
        &sh,
        "operator-secret",
        &shell_body("sh", &["other"]),
    )
    .await;
    assert_forbidden(s, &b, "change a shell target's command or args");
    let patch = json!({"target": {"kind": "shell", "command": "/bin/sh", "args": ["-c", "id"]}});
    let (s, b) = call(&app, Method::PATCH, &sh, "operator-secret", &patch).await;
    assert_forbidden(s, &b, "change a shell target's command or args");
    let (_, now) = call(&app, Method::GET, &sh, "viewer-secret", &json!({})).await;
    assert_eq!(
        now["target"],
        json!({"kind": "shell", "command": "/bin/echo", "args": ["hi"]})
    );

    // Keeping the admin's command while changing something else is an operator's job.
    let (s, b) = call(
        &app,
        Method::PATCH,
        &sh,
        "operator-secret",
        &json!({"policy": {"timeout_seconds": 5}}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let mut same = shell_body("sh", &["hi"]);
    same["enabled"] = json!(false);
    let (s, b) = call(&app, Method::PUT, &sh, "operator-secret", &same).await;
    assert_eq!(s, 200, "{b}");

    // The admin changes the command with PUT and PATCH.
    let (s, b) = call(
        &app,
        Method::PUT,
        &sh,
        "admin-secret",
        &shell_body("sh", &["other"]),
    )
    .await;
    assert_eq!((s, &b["target"]["args"]), (200, &json!(["other"])), "{b}");
    let (s, b) = call(&app, Method::PATCH, &sh, "admin-secret", &patch).await;
    assert_eq!(
        (s, &b["target"]["command"]),
        (200, &json!("/bin/sh")),
        "{b}"
    );

    // Turning another kind of target into a shell command needs admin too.
    let (s, wf) = call(
        &app,
        Method::POST,
        "/v1/schedules",
        "operator-secret",
        &schedule_body("wf"),
    )
    .await;
    assert_eq!(s, 201, "{wf}");
    let wf = format!("/v1/schedules/{}", wf["id"].as_str().unwrap());
    let (s, b) = call(&app, Method::PATCH, &wf, "operator-secret", &patch).await;
    assert_forbidden(s, &b, "turn a schedule's target into a shell command");
    let (s, b) = call(
        &app,
        Method::PUT,
        &wf,
        "operator-secret",
        &shell_body("wf", &[]),
    )
    .await;
    assert_forbidden(s, &b, "turn a schedule's target into a shell command");
    let (s, b) = call(&app, Method::PATCH, &wf, "admin-secret", &patch).await;
    assert_eq!(s, 200, "{b}");
    // An operator may still move a schedule off shell, and a viewer writes nothing.
    let (s, b) = call(
        &app,
        Method::PATCH,
        &wf,
        "operator-secret",
        &json!({"target": schedule_body("x")["target"]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/schedules",
        "viewer-secret",
        &shell_body("v", &[]),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")));
}

#[actix_web::test]
async fn shell_targets_off_are_refused_at_validation_with_every_other_problem() {
    let app = spawn_app_with(|c| {
        c.targets.shell_mode = wakeplane::security::ShellMode::Off;
    })
    .await;
    let mut body = shell_body("off", &["hi"]);
    body["timezone"] = json!("Mars/Olympus");
    let r = app.post("/v1/schedules", &body).await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.detail_fields(), ["timezone", "target.kind"], "{}", r.body);
    assert_eq!(
        r.body["details"][1]["message"],
        "shell targets are disabled on this server (WAKEPLANE_SHELL_TARGETS=off)"
    );
    // Other kinds are unaffected.
    app.create_schedule(&schedule_body("fine")).await;
}

#[actix_web::test]
async fn allowlisted_commands_and_literal_denied_addresses_are_checked_at_validation() {
    let app = spawn_app_with(|c| {
        c.targets.shell_allow =
            Some(wakeplane::security::CommandAllowList::parse("/usr/bin/*").unwrap());
    })
    .await;
    let r = app.post("/v1/schedules", &shell_body("sh", &["hi"])).await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.detail_fields(), ["target.command"], "{}", r.body);
    assert!(
        r.body["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("WAKEPLANE_SHELL_ALLOW (/usr/bin/*)"),
        "{}",
        r.body
    );
    let mut ok = shell_body("env", &[]);
    ok["target"]["command"] = json!("/usr/bin/env");
    let created = app.create_schedule(&ok).await;
    // A PATCH is checked on the merged result.
    let r = app
        .patch(
            &format!("/v1/schedules/{}", created["id"].as_str().unwrap()),
            &json!({"target": {"kind": "shell", "command": "/usr/bin/../../bin/sh"}}),
        )
        .await;
    r.assert_error(400, "validation_failed");
    assert_eq!(r.detail_fields(), ["target.command"], "{}", r.body);

    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fe80::1]/",
        "http://2852039166/",
    ] {
        let mut body = schedule_body("metadata");
        body["target"] = json!({"kind": "http", "method": "GET", "url": url});
        let r = app.post("/v1/schedules", &body).await;
        r.assert_error(400, "validation_failed");
        assert_eq!(r.detail_fields(), ["target.url"], "{url}: {}", r.body);
        let message = r.body["details"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("is refused by WAKEPLANE_HTTP_TARGET_DENY rule "),
            "{message}"
        );
    }
    let mut body = schedule_body("public");
    body["target"] = json!({"kind": "http", "method": "GET", "url": "http://127.0.0.1:9/"});
    app.create_schedule(&body).await;
}
