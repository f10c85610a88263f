use crate::helpers::{schedule_body, spawn_app};

#[actix_web::test]
async fn healthz_and_readyz_answer_ok() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, serde_json::json!({"ok": true}));
    let r = app.get("/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, serde_json::json!({"ok": true, "storage": "ok"}));
}

#[actix_web::test]
async fn status_counts_schedules_and_runs() {
    let app = spawn_app().await;
    let s = app.create_schedule(&schedule_body("status-a")).await;
    let mut paused = schedule_body("status-b");
    paused["enabled"] = false.into();
    app.create_schedule(&paused).await;
    app.trigger(s["id"].as_str().unwrap(), "status test").await;
    let r = app.get("/v1/status").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["service"], "wakeplane");
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r.body["database"]["driver"], "postgres");
    assert_eq!(r.body["database"]["ok"], true);
    let path = r.body["database"]["path"].as_str().unwrap();
    assert!(
        path.starts_with("postgres://") && !path.contains("password"),
        "{path}"
    );
    assert_eq!(r.body["schedules"]["total"], 2);
    assert_eq!(r.body["schedules"]["enabled"], 1);
    for key in [
        "pending",
        "running",
        "failed",
        "retry_queued",
        "dead_letter",
    ] {
        assert!(
            r.body["runs"][key].is_number(),
            "runs.{key} missing: {}",
            r.body
        );
    }
}

#[actix_web::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    app.create_schedule(&schedule_body("metrics-a")).await;
    let resp = app.client.get(app.url("/v1/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    for family in [
        "schedules_total",
        "schedules_enabled_total",
        "runs_total",
        "runs_due",
        "runs_running",
        "runs_failed_total",
        "runs_succeeded_total",
        "runs_retry_queued",
        "dead_letters_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}:\n{text}"
        );
    }
    assert!(text.lines().any(|l| l == "schedules_total 1"), "{text}");
}
