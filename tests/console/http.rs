//! The console over plain HTTP, for what a browser would not send: requests without a
//! session, forms without or with another session's CSRF token, forms of a role too weak
//! for the API call they make, the security headers, and the console without tokens.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{schedule_body, spawn_app, spawn_app_with, TestApp};
use crate::{api, csrf_of, plain_client, set_cookie, ADMIN, OPERATOR, TOKENS, VIEWER};

/// Logs in with `token` through the form; returns the session cookie (`name=value`).
async fn log_in(app: &TestApp, token: &str) -> String {
    let client = plain_client();
    let form = client
        .get(app.url("/ui/login"))
        .send()
        .await
        .expect("GET login");
    assert_eq!(form.status().as_u16(), 200);
    let login_cookie = set_cookie(&form, "wakeplane_login").expect("login cookie");
    let csrf = csrf_of(&form.text().await.unwrap_or_default()).expect("login csrf");
    let r = client
        .post(app.url("/ui/login"))
        .header("cookie", &login_cookie)
        .form(&[("csrf", csrf.as_str()), ("token", token), ("next", "/ui/")])
        .send()
        .await
        .expect("POST login");
    assert_eq!(r.status().as_u16(), 303, "login with {token}");
    set_cookie(&r, "wakeplane_session").expect("session cookie")
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut req = plain_client().get(app.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.expect("GET");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn post(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = plain_client().post(app.url(path)).form(form);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.expect("POST");
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (
        r.status().as_u16(),
        location,
        r.text().await.unwrap_or_default(),
    )
}

/// A GET of `path` exactly as written (no client normalises it): status and body.
async fn raw_get(app: &TestApp, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[actix_web::test]
async fn pages_need_a_login_and_carry_the_security_headers() {
    let app = spawn_app_with(|c| c.api_tokens = Some(TOKENS.into())).await;
    let client = plain_client();

    let r = client
        .get(app.url("/ui/schedules?state=paused"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        r.headers()["location"],
        "/ui/login?next=/ui/schedules%3Fstate%3Dpaused"
    );
    // A bearer token is the API's credential, not the console's.
    let r = client
        .get(app.url("/ui/"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 303);

    let r = client
        .get(app.url("/ui/login"))
        .send()
        .await
        .expect("GET login");
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap_or_default();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let raw_cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(raw_cookie.contains("HttpOnly"), "{raw_cookie}");
    assert!(raw_cookie.contains("SameSite=Strict"), "{raw_cookie}");
    let login_cookie = set_cookie(&r, "wakeplane_login").expect("login cookie");
    let html = r.text().await.unwrap_or_default();
    let csrf = csrf_of(&html).expect("login csrf");
    for script in html.split("<script").skip(1) {
        assert!(
            script.starts_with(" src=\"/ui/assets/"),
            "an inline script: <script{script}"
        );
    }
    assert!(
        !html.contains(" style="),
        "inline styles are refused by the CSP"
    );

    // A wrong token, and a right one without the form's cookie, are refused.
    let attempt = |cookie: Option<String>, token: &'static str| {
        let client = client.clone();
        let csrf = csrf.clone();
        let url = app.url("/ui/login");
        async move {
            let mut req = client
                .post(url)
                .form(&[("csrf", csrf.as_str()), ("token", token)]);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let r = req.send().await.expect("POST login");
            (r.status().as_u16(), set_cookie(&r, "wakeplane_session"))
        }
    };
    assert_eq!(
        attempt(Some(login_cookie.clone()), "not-a-token-at-all").await,
        (401, None)
    );
    assert_eq!(attempt(None, OPERATOR).await, (403, None));
    let (status, session) = attempt(Some(login_cookie), OPERATOR).await;
    assert_eq!(status, 303);
    let session = session.expect("a session");
    assert!(
        !session.contains(OPERATOR),
        "the cookie is not the token: {session}"
    );

    let (status, html) = get(&app, "/ui/", Some(&session)).await;
    assert_eq!(status, 200);
    assert!(html.contains("wrk_test"));
    assert!(html.contains(">operator<"));
    let (status, html) = get(&app, "/ui/nothing-here", Some(&session)).await;
    assert_eq!(status, 404);
    assert!(html.contains("the console has no page GET /ui/nothing-here"));
    let (status, _) = get(&app, "/ui/schedules/sch_missing", Some(&session)).await;
    assert_eq!(status, 404);
    let (status, _) = get(&app, "/ui/runs/run_missing", Some(&session)).await;
    assert_eq!(status, 404);
    let (status, html) = get(
        &app,
        "/ui/schedules?selector=team%20in%20data",
        Some(&session),
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("label_selector: expected"), "{html}");

    // The session cookie opens the console, not the API.
    let r = client
        .get(app.url("/v1/schedules"))
        .header("cookie", &session)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);

    // No spelling of a path under /ui reaches the API without a bearer token.
    for raw in [
        "/ui/../v1/schedules",
        "/ui/%2e%2e/v1/schedules",
        "/ui/..%2fv1/schedules",
        "/ui//v1/schedules",
    ] {
        let (status, body) = raw_get(&app, raw).await;
        assert!(status == 404 || status == 303, "{raw}: {status} {body}");
        assert!(!body.contains("\"items\""), "{raw} reached the API: {body}");
    }

    // Assets need no session.
    let r = client
        .get(app.url("/ui/assets/console.js"))
        .send()
        .await
        .expect("GET js");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/javascript"));
    let r = client
        .get(app.url("/ui/assets/console.css"))
        .send()
        .await
        .expect("GET css");
    assert_eq!(r.status().as_u16(), 200);

    // Logging out ends the session on the server, not only in the browser.
    let (_, html) = get(&app, "/ui/", Some(&session)).await;
    let csrf = csrf_of(&html).expect("csrf");
    let (status, location, _) = post(&app, "/ui/logout", Some(&session), &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (303, "/ui/login"));
    let (status, _) = get(&app, "/ui/", Some(&session)).await;
    assert_eq!(status, 303);
}

async fn enabled(app: &TestApp, id: &str) -> serde_json::Value {
    let (_, body) = api(
        app,
        Method::GET,
        &format!("/v1/schedules/{id}"),
        ADMIN,
        None,
    )
    .await;
    body["enabled"].clone()
}

#[actix_web::test]
async fn forms_need_the_sessions_csrf_token_and_the_apis_role() {
    let app = spawn_app_with(|c| c.api_tokens = Some(TOKENS.into())).await;
    let (status, created) = api(
        &app,
        Method::POST,
        "/v1/schedules",
        ADMIN,
        Some(&schedule_body("forms")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let page = format!("/ui/schedules/{id}");
    let operator = log_in(&app, OPERATOR).await;
    let viewer = log_in(&app, VIEWER).await;
    let (_, html) = get(&app, &page, Some(&operator)).await;
    let operator_csrf = csrf_of(&html).expect("operator csrf");
    assert!(html.contains("id=\"pause-form\""));
    assert!(html.contains("id=\"trigger-form\""));
    assert!(!html.contains("id=\"delete-form\""), "delete is for admins");
    let (_, html) = get(&app, &page, Some(&viewer)).await;
    let viewer_csrf = csrf_of(&html).expect("viewer csrf");
    assert!(html.contains("id=\"read-only\""));
    assert!(!html.contains("-form\""), "a viewer sees no control");

    let pause = format!("{page}/pause");
    // No token, another session's token, no session: refused, nothing changes.
    let (status, _, html) = post(&app, &pause, Some(&operator), &[("note", "x")]).await;
    assert_eq!(status, 403);
    assert!(html.contains("CSRF"), "{html}");
    let (status, _, _) = post(&app, &pause, Some(&operator), &[("csrf", &viewer_csrf)]).await;
    assert_eq!(status, 403);
    let (status, _, _) = post(&app, &pause, None, &[("csrf", &operator_csrf)]).await;
    assert_eq!(status, 401);
    assert_eq!(enabled(&app, &id).await, true);

    // The viewer's own, valid form is refused by role, with the API's message.
    let (status, _, html) = post(
        &app,
        &pause,
        Some(&viewer),
        &[("csrf", &viewer_csrf), ("note", "x")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        html.contains(&format!(
            "role viewer may not POST /v1/schedules/{id}/pause; it needs operator"
        )),
        "{html}"
    );
    assert_eq!(enabled(&app, &id).await, true);

    // The operator pauses with a note (the API's length rule applies), and may not delete.
    let long = "n".repeat(1025);
    let (status, _, html) = post(
        &app,
        &pause,
        Some(&operator),
        &[("csrf", &operator_csrf), ("note", &long)],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        html.contains("note: must be at most 1024 characters"),
        "{html}"
    );
    let (status, location, _) = post(
        &app,
        &pause,
        Some(&operator),
        &[("csrf", &operator_csrf), ("note", "  CRM migration  ")],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, page.as_str()));
    let (_, fetched) = api(
        &app,
        Method::GET,
        &format!("/v1/schedules/{id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(fetched["pause_note"], "CRM migration");
    let (_, paused) = get(&app, "/ui/schedules?state=paused", Some(&operator)).await;
    assert!(
        paused.contains(&format!("data-schedule=\"{id}\"")),
        "{paused}"
    );
    let (_, enabled_only) = get(&app, "/ui/schedules?state=enabled", Some(&operator)).await;
    assert!(!enabled_only.contains(&format!("data-schedule=\"{id}\"")));
    assert!(enabled_only.contains("No schedule matches."));
    let (status, _, html) = post(
        &app,
        &format!("{page}/delete"),
        Some(&operator),
        &[("csrf", &operator_csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(html.contains("it needs admin"), "{html}");
    let (status, _, html) = post(
        &app,
        &format!("{page}/trigger"),
        Some(&operator),
        &[("csrf", &operator_csrf), ("reason", "  ")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("reason is required"), "{html}");
    let (status, location, _) = post(
        &app,
        &format!("{page}/resume"),
        Some(&operator),
        &[("csrf", &operator_csrf)],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, page.as_str()));
    assert_eq!(enabled(&app, &id).await, true);

    // An admin deletes only with the box ticked.
    let admin = log_in(&app, ADMIN).await;
    let (_, html) = get(&app, &page, Some(&admin)).await;
    let admin_csrf = csrf_of(&html).expect("admin csrf");
    let delete = format!("{page}/delete");
    let (status, _, _) = post(&app, &delete, Some(&admin), &[("csrf", &admin_csrf)]).await;
    assert_eq!(status, 400);
    let (status, location, _) = post(
        &app,
        &delete,
        Some(&admin),
        &[("csrf", &admin_csrf), ("confirm", "yes")],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/ui/schedules"));
    let (status, _) = api(
        &app,
        Method::GET,
        &format!("/v1/schedules/{id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn the_table_pages_by_the_apis_cursor_with_its_filters() {
    let app = spawn_app().await;
    for i in 0..53 {
        let mut body = schedule_body(&format!("paged-{i:02}"));
        body["labels"] = json!({"team": if i % 2 == 0 { "even" } else { "odd" }});
        app.create_schedule(&body).await;
    }
    let rows = |html: &str| html.matches("<tr data-schedule=").count();
    let (status, first) = get(&app, "/ui/schedules?selector=team%3Deven", None).await;
    assert_eq!(status, 200);
    assert_eq!(rows(&first), 27, "27 even schedules fit on one page");
    assert!(!first.contains("id=\"next-page\""));
    let (_, first) = get(&app, "/ui/schedules", None).await;
    assert_eq!(rows(&first), 50);
    let marker = "id=\"next-page\" href=\"";
    let at = first.find(marker).expect("a next page link") + marker.len();
    let next = first[at..]
        .split('"')
        .next()
        .expect("href")
        .replace("&amp;", "&");
    let (status, second) = get(&app, &next, None).await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(rows(&second), 3);
    assert!(second.contains("paged-00"), "the oldest come last");
    let (status, _) = get(&app, "/ui/schedules?cursor=garbage", None).await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn without_tokens_the_console_has_no_login_but_forms_keep_their_csrf_token() {
    let app = spawn_app().await;
    let created = app.create_schedule(&schedule_body("open")).await;
    let id = created["id"].as_str().expect("id").to_string();
    let r = plain_client()
        .get(app.url("/ui/"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    let session = set_cookie(&r, "wakeplane_session").expect("an anonymous session");
    let html = r.text().await.unwrap_or_default();
    assert!(!html.contains("Log out"));
    assert!(!html.contains("id=\"role\""));
    let (status, location, _) = post(&app, "/ui/login", None, &[]).await;
    assert_eq!((status, location.as_str()), (303, "/ui/"));

    let page = format!("/ui/schedules/{id}");
    let (_, html) = get(&app, &page, Some(&session)).await;
    let csrf = csrf_of(&html).expect("csrf");
    for form in ["pause-form", "trigger-form", "delete-form"] {
        assert!(html.contains(&format!("id=\"{form}\"")), "{form}");
    }
    let trigger = format!("{page}/trigger");
    let (status, _, _) = post(&app, &trigger, Some(&session), &[("reason", "no token")]).await;
    assert_eq!(status, 403, "still needs the CSRF token");
    let (status, _, _) = post(
        &app,
        &trigger,
        None,
        &[("csrf", &csrf), ("reason", "no session")],
    )
    .await;
    assert_eq!(status, 403, "and the session it belongs to");
    let (status, location, _) = post(
        &app,
        &trigger,
        Some(&session),
        &[("csrf", &csrf), ("reason", "from the console")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(location.starts_with("/ui/runs/run_"), "{location}");
    let (status, html) = get(&app, &location, Some(&session)).await;
    assert_eq!(status, 200);
    assert!(html.contains("from the console"));
    let run_id = location.trim_start_matches("/ui/runs/");
    let run = app.get(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(run.body["trigger_reason"], "from the console");
    assert_eq!(run.body["schedule_id"], json!(id));
}
