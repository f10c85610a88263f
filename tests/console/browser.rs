//! The console in a real headless Chromium: an admin logs in with a token, finds a schedule
//! by a label filter, pauses it with a note and sees the note, triggers it and reads the
//! run's stdout receipt (as text, escaped) once the page refreshes itself, and deletes a
//! schedule; a viewer, in a browser without JavaScript, sees no write control and a POST
//! forged with its own session is refused. Every page visited is saved as a PNG under
//! `target/console-screenshots/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use reqwest::Method;
use serde_json::json;

use crate::driver::{Driver, Tools};
use crate::helpers::spawn_app_with;
use crate::{api, plain_client, ADMIN, TOKENS, VIEWER};

/// How long a page element may take to appear.
const PATIENCE: Duration = Duration::from_secs(30);

/// Saves screenshots under `target/console-screenshots/`.
struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Shots {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        let dir = target.join("console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        Shots { dir }
    }

    async fn take(&self, browser: &Client, name: &str) {
        let png = browser.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }
}

async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} within {PATIENCE:?}: {e}"))
}

/// The element's text; found again if the page's live refresh replaced it meanwhile.
async fn text(browser: &Client, css: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match wait_for(browser, css).await.text().await {
            Ok(t) => return t,
            Err(e) if Instant::now() > deadline => panic!("no text of {css}: {e}"),
            Err(_) => actix_web::rt::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn count(browser: &Client, css: &str) -> usize {
    browser
        .find_all(Locator::Css(css))
        .await
        .expect("find_all")
        .len()
}

/// Types into a field and clicks a button, as a person would (no page script needed).
async fn type_into(browser: &Client, field: &str, value: &str) {
    wait_for(browser, field)
        .await
        .send_keys(value)
        .await
        .expect("type");
}

async fn click(browser: &Client, css: &str) {
    wait_for(browser, css).await.click().await.expect("click");
}

async fn log_in(browser: &Client, token: &str) {
    type_into(browser, "#token", token).await;
    click(browser, "form.login button[type=submit]").await;
}

async fn path_of(browser: &Client) -> String {
    let url = browser.current_url().await.expect("url");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

#[actix_web::test]
async fn operators_and_viewers_use_the_console_in_chromium() {
    let Some(tools) = Tools::find("operators_and_viewers_use_the_console_in_chromium") else {
        return;
    };
    let app = spawn_app_with(|c| c.api_tokens = Some(TOKENS.into())).await;
    let shell = json!({
        "name": "console-shell", "timezone": "Europe/Berlin",
        "schedule": {"kind": "cron", "expr": "30 4 * * 1-5"},
        "target": {"kind": "shell", "command": "/bin/sh",
                   "args": ["-c", "printf 'console-out <b>bold</b> & done\\n'; echo console-err >&2"]},
        "labels": {"team": "console-test", "env": "prod"},
        "description": "the browser test's shell schedule"
    });
    let (status, shell) = api(&app, Method::POST, "/v1/schedules", ADMIN, Some(&shell)).await;
    assert_eq!(status, 201, "{shell}");
    let shell_id = shell["id"].as_str().expect("id").to_string();
    for (name, team) in [("console-other", "other"), ("console-doomed", "doomed")] {
        let body = json!({
            "name": name, "timezone": "UTC",
            "schedule": {"kind": "interval", "every_seconds": 3600},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop"},
            "labels": {"team": team}
        });
        let (status, body) = api(&app, Method::POST, "/v1/schedules", ADMIN, Some(&body)).await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, doomed) = api(
        &app,
        Method::GET,
        "/v1/schedules?label_selector=team%3Ddoomed",
        ADMIN,
        None,
    )
    .await;
    let doomed_id = doomed["items"][0]["id"]
        .as_str()
        .expect("doomed id")
        .to_string();

    let driver = Driver::start(&tools).await;
    let shots = Shots::new();
    let admin = driver.browser("admin", true).await;

    // Not logged in: the login form, then back to the overview.
    admin.goto(&app.url("/ui/")).await.expect("goto");
    wait_for(&admin, "#token").await;
    assert!(path_of(&admin).await.starts_with("/ui/login"));
    shots.take(&admin, "01-login").await;
    log_in(&admin, ADMIN).await;
    let node = text(&admin, "#nodes").await;
    assert!(node.contains("wrk_test"), "nodes panel: {node}");
    assert!(
        node.contains("alive"),
        "nodes panel shows the cluster: {node}"
    );
    assert!(
        node.contains(env!("CARGO_PKG_VERSION")),
        "nodes panel: {node}"
    );
    assert_eq!(text(&admin, "#schedules-total").await, "3");
    assert_eq!(text(&admin, "#role").await, "admin");
    shots.take(&admin, "02-overview").await;

    // The schedules table, filtered by a label selector.
    click(&admin, "nav a[href='/ui/schedules']").await;
    type_into(&admin, "#selector", "team=console-test,env in (prod,dev)").await;
    click(&admin, "form.filters button[type=submit]").await;
    let deadline = Instant::now() + PATIENCE;
    while !path_of(&admin).await.contains("selector=") {
        assert!(Instant::now() < deadline, "the filter was not applied");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(&admin, "table.schedules").await;
    let rows = admin
        .find_all(Locator::Css("tr[data-schedule]"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "only the labelled schedule matches");
    let row = rows[0].text().await.expect("row text");
    assert!(row.contains("console-shell"), "{row}");
    assert!(row.contains("team=console-test"), "{row}");
    assert!(
        row.contains("at 04:30 on weekdays"),
        "cadence in words: {row}"
    );
    assert!(row.contains("30 4 * * 1-5"), "the expression: {row}");
    assert!(
        row.contains("CET") || row.contains("CEST"),
        "next fire in its zone: {row}"
    );
    shots.take(&admin, "03-schedules-filtered").await;

    // The schedule page; pause with a note (markup in it is text).
    click(&admin, "tr[data-schedule] a.name").await;
    wait_for(&admin, "#controls").await;
    assert_eq!(path_of(&admin).await, format!("/ui/schedules/{shell_id}"));
    assert_eq!(count(&admin, "#upcoming li").await, 10);
    shots.take(&admin, "04-schedule").await;
    let note = "<i>maintenance</i> until Friday";
    type_into(&admin, "#note", note).await;
    click(&admin, "#pause-form button").await;
    assert_eq!(text(&admin, "#pause-note").await, note);
    assert_eq!(text(&admin, "#schedule-state").await, "paused");
    assert_eq!(
        count(&admin, "#pause-notice i").await,
        0,
        "the note is escaped"
    );
    let (_, fetched) = api(
        &app,
        Method::GET,
        &format!("/v1/schedules/{shell_id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(fetched["pause_note"], note);
    assert_eq!(fetched["enabled"], false);
    shots.take(&admin, "05-paused").await;

    // Trigger with a reason: the run page fills in by itself once the command has run.
    type_into(&admin, "#reason", "console browser test").await;
    click(&admin, "#trigger-form button").await;
    let run_path = {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let p = path_of(&admin).await;
            if p.starts_with("/ui/runs/run_") {
                break p;
            }
            assert!(Instant::now() < deadline, "not on the run page: {p}");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let stdout = text(&admin, "section.receipt[data-kind='stdout'] pre").await;
    assert_eq!(stdout.trim_end(), "console-out <b>bold</b> & done");
    assert_eq!(
        count(&admin, "pre.receipt-body b").await,
        0,
        "output is never markup"
    );
    let stderr = text(&admin, "section.receipt[data-kind='stderr'] pre").await;
    assert_eq!(stderr.trim_end(), "console-err");
    assert_eq!(
        text(&admin, "#trigger-reason").await,
        "console browser test"
    );
    assert_eq!(
        path_of(&admin).await,
        run_path,
        "the page refreshed in place"
    );
    assert!(
        !text(&admin, "#live-status").await.is_empty(),
        "the script runs"
    );
    let run_id = run_path.trim_start_matches("/ui/runs/");
    let (_, receipts) = api(
        &app,
        Method::GET,
        &format!("/v1/runs/{run_id}/receipts"),
        ADMIN,
        None,
    )
    .await;
    assert!(receipts["items"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["receipt_kind"] == "stdout")));
    wait_for(&admin, "#run-status").await;
    let deadline = Instant::now() + PATIENCE;
    while text(&admin, "#run-status").await != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "the run page never showed success"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    shots.take(&admin, "06-run").await;

    // An admin deletes a schedule (the box must be ticked).
    admin
        .goto(&app.url(&format!("/ui/schedules/{doomed_id}")))
        .await
        .expect("goto");
    click(&admin, "#confirm").await;
    click(&admin, "#delete-form button").await;
    wait_for(&admin, "form.filters").await;
    assert_eq!(path_of(&admin).await, "/ui/schedules");
    let (status, _) = api(
        &app,
        Method::GET,
        &format!("/v1/schedules/{doomed_id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, 404, "deleted through the console");

    // The overview counts what happened (the README's picture).
    click(&admin, "nav a[href='/ui/']").await;
    assert_eq!(text(&admin, "#schedules-total").await, "2");
    assert_eq!(text(&admin, "#actors-paused").await, "1");
    shots.take(&admin, "08-overview").await;

    // A viewer, without JavaScript: reads, sees no control, and a forged POST is refused.
    let viewer = driver.browser("viewer", false).await;
    viewer
        .goto(&app.url(&format!("/ui/schedules/{shell_id}")))
        .await
        .expect("goto");
    log_in(&viewer, VIEWER).await;
    wait_for(&viewer, "#controls").await;
    assert_eq!(
        path_of(&viewer).await,
        format!("/ui/schedules/{shell_id}"),
        "back where it was going"
    );
    assert!(text(&viewer, "#read-only").await.contains("viewer"));
    for form in [
        "#pause-form",
        "#resume-form",
        "#trigger-form",
        "#delete-form",
    ] {
        assert_eq!(count(&viewer, form).await, 0, "{form} shown to a viewer");
    }
    assert_eq!(text(&viewer, "#pause-note").await, note);
    assert!(
        text(&viewer, "#live-status").await.is_empty(),
        "JavaScript is off"
    );
    shots.take(&viewer, "07-viewer-schedule").await;

    let session = viewer
        .get_named_cookie("wakeplane_session")
        .await
        .expect("the viewer's session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert!(
        !session.value().contains(VIEWER),
        "the cookie is not the token"
    );
    let csrf = wait_for(&viewer, "form[action='/ui/logout'] input[name=csrf]")
        .await
        .attr("value")
        .await
        .expect("attr")
        .expect("the viewer's CSRF token");
    for (action, expected) in [
        ("resume", "role viewer may not POST"),
        ("trigger", "role viewer may not POST"),
        ("delete", "role viewer may not DELETE"),
    ] {
        let r = plain_client()
            .post(app.url(&format!("/ui/schedules/{shell_id}/{action}")))
            .header("cookie", format!("wakeplane_session={}", session.value()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&reason=forged&confirm=yes"))
            .send()
            .await
            .expect("forged POST");
        assert_eq!(r.status().as_u16(), 403, "forged {action}");
        let page = r.text().await.unwrap_or_default();
        assert!(page.contains(expected), "{action}: {page}");
    }
    let (_, after) = api(
        &app,
        Method::GET,
        &format!("/v1/schedules/{shell_id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(after["enabled"], false, "still paused");
    let (_, runs) = api(
        &app,
        Method::GET,
        &format!("/v1/runs?schedule_id={shell_id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(
        runs["items"].as_array().map(Vec::len),
        Some(1),
        "no forged trigger ran: {runs}"
    );

    viewer.close().await.expect("close the viewer's browser");
    admin.close().await.expect("close the admin's browser");
    drop(driver);
}
