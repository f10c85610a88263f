use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{fresh_database, schedule_body, spawn_app, spawn_app_on, TestApp};

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

/// Creates a schedule running `target` with `retry`; returns its id.
async fn schedule_running(app: &TestApp, name: &str, target: Value, retry: Value) -> String {
    let mut body = schedule_body(name);
    body["target"] = target;
    body["retry"] = retry;
    let s = app.create_schedule(&body).await;
    s["id"].as_str().unwrap().to_string()
}

/// Polls until `run_id` has `status`.
async fn wait_run(app: &TestApp, run_id: &str, status: &str) {
    app.poll(
        &format!("/v1/runs/{run_id}"),
        Duration::from_secs(30),
        |r| r["status"] == status,
    )
    .await;
}

#[actix_web::test]
async fn status_counts_schedules_and_runs() {
    // The test cluster trusts its socket, so a password in the URL is never used: one in
    // the user info and one as a query parameter, both to be hidden in `database.path`.
    let plain = fresh_database();
    let with_password = plain.replacen("://postgres@", "://postgres:S3cret-pw@", 1);
    assert_ne!(with_password, plain, "unexpected test URL shape: {plain}");
    let app = spawn_app_on(format!("{with_password}&password=Q-s3cret"), |_| {}).await;

    let s = app.create_schedule(&schedule_body("status-a")).await;
    let mut paused = schedule_body("status-b");
    paused["enabled"] = false.into();
    app.create_schedule(&paused).await;
    app.trigger(s["id"].as_str().unwrap(), "status test").await;
    // One sleeper running and two waiting behind it (forbid, max_concurrency 1).
    let sleeper = schedule_running(
        &app,
        "status-sleeper",
        json!({"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 120}}),
        json!({"max_attempts": 0}),
    )
    .await;
    let first = app.trigger(&sleeper, "runs").await;
    wait_run(&app, first["run_id"].as_str().unwrap(), "running").await;
    for _ in 0..2 {
        let waiting = app.trigger(&sleeper, "waits").await;
        wait_run(&app, waiting["run_id"].as_str().unwrap(), "pending").await;
    }
    // One failure retried in an hour (failed + retry_scheduled), one dead letter.
    let fail =
        json!({"kind": "workflow", "workflow_id": "builtin.fail", "input": {"message": "no"}});
    let retried = schedule_running(
        &app,
        "status-retried",
        fail.clone(),
        json!({"max_attempts": 2, "initial_delay_seconds": 3600, "max_delay_seconds": 3600}),
    )
    .await;
    let failed = app.trigger(&retried, "fails once").await;
    wait_run(&app, failed["run_id"].as_str().unwrap(), "failed").await;
    let dead = schedule_running(&app, "status-dead", fail, json!({"max_attempts": 0})).await;
    let dead_run = app.trigger(&dead, "dead letter").await;
    wait_run(&app, dead_run["run_id"].as_str().unwrap(), "dead_lettered").await;

    let r = app.get("/v1/status").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["service"], "wakeplane");
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r.body["database"]["driver"], "postgres");
    assert_eq!(r.body["database"]["ok"], true);
    assert_eq!(
        r.body["database"]["path"],
        format!("{plain}&password=***"),
        "the URL as given, without either password"
    );
    assert_eq!(r.body["schedules"]["total"], 5);
    assert_eq!(r.body["schedules"]["enabled"], 4);
    assert_eq!(
        r.body["runs"],
        json!({"pending": 2, "running": 1, "failed": 1, "retry_queued": 1, "dead_letter": 1}),
        "{}",
        r.body
    );
    assert_eq!(r.body["scheduler"]["due_runs"], 2, "{}", r.body);
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
        "cluster_nodes",
        "owned_schedules",
        "ownership_handovers_total",
        "materialise_conflicts_total",
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

/// A lone node lists itself in `cluster`, alive, owning every schedule its actors run; the
/// metrics agree (it took all 256 partitions at start-up, and no timer ran twice).
#[actix_web::test]
async fn a_single_node_lists_itself_in_the_cluster_block() {
    let app = spawn_app().await;
    for name in ["cluster-a", "cluster-b", "cluster-c"] {
        app.create_schedule(&schedule_body(name)).await;
    }
    let status = app
        .poll("/v1/status", Duration::from_secs(10), |b| {
            b["actors"]["total"] == 3 && b["cluster"]["nodes"][0]["owned_schedules"] == 3
        })
        .await;
    let cluster = &status["cluster"];
    assert_eq!(cluster["node_id"], "wrk_test", "{cluster}");
    let nodes = cluster["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{cluster}");
    assert_eq!(nodes[0]["node_id"], "wrk_test");
    assert_eq!(nodes[0]["state"], "alive");
    assert_eq!(nodes[0]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        nodes[0]["http_addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:") && !a.ends_with(":0")),
        "the address really listened on: {cluster}"
    );
    let text = app
        .client
        .get(app.url("/v1/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "cluster_nodes{state=\"alive\"} 1",
        "cluster_nodes{state=\"dead\"} 0",
        "ownership_handovers_total 256",
        "materialise_conflicts_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}
