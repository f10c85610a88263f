//! The operator surface: status and metrics after real runs, the actor block, request ids,
//! and bearer-token auth for each role.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{schedule_body, spawn_app, spawn_app_with, TestApp};

async fn run_to_end(app: &TestApp, body: Value, status: &str) -> (String, String) {
    let s = app.create_schedule(&body).await;
    let id = s["id"].as_str().unwrap().to_string();
    let run = app.trigger(&id, "operator test").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.poll(&format!("/v1/runs/{run}"), Duration::from_secs(20), |r| {
        r["status"] == status
    })
    .await;
    (id, run)
}

#[actix_web::test]
async fn status_shows_actors_workers_and_run_counts_after_real_runs() {
    let app = spawn_app().await;
    let mut ok = schedule_body("ok");
    ok["target"] = json!({"kind": "workflow", "workflow_id": "builtin.noop"});
    run_to_end(&app, ok, "succeeded").await;
    let mut bad = schedule_body("bad");
    bad["target"] = json!({"kind": "workflow", "workflow_id": "builtin.fail"});
    let (bad_id, _) = run_to_end(&app, bad, "dead_lettered").await;
    let mut paused = schedule_body("paused");
    paused["enabled"] = json!(false);
    app.create_schedule(&paused).await;

    let s = app
        .poll("/v1/status", Duration::from_secs(10), |s| {
            s["scheduler"]["last_tick_at"].is_string()
        })
        .await;
    assert_eq!(s["database"]["ok"], true);
    assert_eq!(s["scheduler"]["mode"], "timers");
    assert_eq!(s["scheduler"]["loop_interval_seconds"], 1);
    assert!(s["scheduler"]["next_due_schedule_id"].is_string(), "{s}");
    assert!(s["scheduler"]["next_due_run_at"].is_string(), "{s}");
    assert_eq!(s["workers"]["capacity"], 16);
    assert_eq!(s["workers"]["claimed_but_expired"], 0);
    assert_eq!(s["runs"]["dead_letter"], 1);
    let actors = &s["actors"];
    assert_eq!(actors["total"], 3, "{actors}");
    assert_eq!(actors["armed"], 2, "{actors}");
    assert_eq!(actors["paused"], 1, "{actors}");
    assert_eq!(actors["restarts_total"], 0);
    for p in ["p50", "p99", "max"] {
        assert!(actors["fire_lag_ms"][p].is_number());
    }
    let unhealthy = actors["unhealthy"].as_array().unwrap();
    assert_eq!(unhealthy.len(), 1, "{actors}");
    assert_eq!(unhealthy[0]["schedule_id"], bad_id.as_str());
    assert_eq!(unhealthy[0]["name"], "bad");
    assert!(unhealthy[0]["reason"]
        .as_str()
        .unwrap()
        .contains("dead-lettered"));

    // The schedule view carries its actor.
    let g = app.get(&format!("/v1/schedules/{bad_id}")).await.body;
    let actor = &g["actor"];
    assert_eq!(actor["state"], "armed", "{g}");
    assert!(actor["next_fire_in_ms"].as_i64().unwrap() > 0);
    assert_eq!(actor["active_runs"], 0);
    assert_eq!(actor["queued_runs"], 0);
    assert_eq!(actor["restarts"], 0);
    assert!(actor["last_error"]
        .as_str()
        .unwrap()
        .contains("dead_lettered"));
}

#[actix_web::test]
async fn status_counts_busy_workers_and_the_configured_pool() {
    let app = spawn_app().await;
    let s = app.get("/v1/status").await.body;
    assert_eq!(s["workers"]["active"], 0, "{s}");
    // spawn_app configures a pool of 5 connections; few are open on an idle server.
    assert_eq!(s["database"]["pool"]["size"], 5, "the configured size: {s}");
    let mut sleeper = schedule_body("sleeper");
    sleeper["target"] =
        json!({"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 3}});
    let id = app.create_schedule(&sleeper).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.trigger(&id, "keep a worker busy").await;
    // The poll fails on its deadline if workers.active never moves.
    app.poll("/v1/status", Duration::from_secs(10), |s| {
        s["workers"]["active"] == 1 && s["runs"]["running"] == 1
    })
    .await;
    app.poll("/v1/status", Duration::from_secs(15), |s| {
        s["workers"]["active"] == 0 && s["runs"]["running"] == 0
    })
    .await;
}

#[actix_web::test]
async fn a_fresh_server_exports_every_metric_family() {
    let app = spawn_app().await;
    let text = app
        .client
        .get(app.url("/v1/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
        "worker_leases_active",
        "claimed_but_expired_total",
        "executor_runs_total",
        "executor_execution_duration_seconds",
        "schedule_actors",
        "schedule_actor_restarts_total",
        "schedule_fire_lag_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no HELP"
        );
    }
    assert!(
        text.contains("schedule_actors{state=\"paused\"} 0"),
        "{text}"
    );
}

#[actix_web::test]
async fn metrics_count_executor_outcomes_and_fire_lag() {
    let app = spawn_app().await;
    let mut echo = schedule_body("echo");
    echo["target"] = json!({"kind": "workflow", "workflow_id": "builtin.echo"});
    run_to_end(&app, echo, "succeeded").await;
    let every = json!({"name": "tick", "timezone": "UTC",
        "schedule": {"kind": "interval", "every_seconds": 1},
        "target": {"kind": "workflow", "workflow_id": "builtin.noop"}});
    let s = app.create_schedule(&every).await;
    crate::helpers::wait_for_runs(&app, s["id"].as_str().unwrap(), 1).await;
    let text = app
        .client
        .get(app.url("/v1/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "executor_runs_total",
        "executor_execution_duration_seconds",
        "schedule_actors",
        "schedule_actor_restarts_total",
        "schedule_fire_lag_seconds",
        "worker_leases_active",
        "claimed_but_expired_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no {family}:\n{text}"
        );
    }
    assert!(
        text.contains("executor_runs_total{executor=\"workflow\",status=\"succeeded\"}"),
        "{text}"
    );
    assert!(text.contains("# TYPE executor_execution_duration_seconds histogram"));
    assert!(text.contains("# TYPE schedule_fire_lag_seconds histogram"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("schedule_fire_lag_seconds_count ") && !l.ends_with(" 0")),
        "{text}"
    );
    // A run succeeded, so the pool claimed at least once (and timed it; a claim still in
    // flight is counted but not yet timed).
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let claims = value("executor_claim_batch_runs_count");
    assert!(claims >= 1.0, "no claim counted:\n{text}");
    let timed = value("executor_claim_duration_seconds_count");
    assert!(timed >= 1.0 && timed <= claims, "{text}");
    assert!(value("executor_claim_batch_runs_sum") >= claims, "{text}");
    assert!(
        text.lines()
            .any(|l| l == "schedule_actors{state=\"armed\"} 2"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "schedules_total 2"), "{text}");
}

#[actix_web::test]
async fn responses_carry_a_request_id() {
    let app = spawn_app().await;
    let a = app.client.get(app.url("/healthz")).send().await.unwrap();
    let b = app.client.get(app.url("/v1/nope")).send().await.unwrap();
    let ida = a.headers()["x-request-id"].to_str().unwrap().to_string();
    let idb = b.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(ida.len(), 36, "{ida}");
    assert_ne!(ida, idb);
}

#[actix_web::test]
async fn tokens_grant_roles_and_probes_stay_open() {
    let app = spawn_app_with(|c| {
        c.api_tokens =
            Some("viewer-secret:viewer,operator-secret:operator,admin-secret:admin".into())
    })
    .await;
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut req = app.client.request(method, app.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method;
    assert_eq!(call(Method::GET, "/healthz", None, None).await.0, 200);
    assert_eq!(call(Method::GET, "/readyz", None, None).await.0, 200);
    let (s, b) = call(Method::GET, "/v1/schedules", None, None).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("unauthorized")));
    let (s, b) = call(Method::GET, "/v1/schedules", Some("wrong-secret"), None).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(
        call(Method::GET, "/v1/status", Some("viewer-secret"), None)
            .await
            .0,
        200
    );
    let metrics = app
        .client
        .get(app.url("/v1/metrics"))
        .bearer_auth("viewer-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);

    let body = schedule_body("guarded");
    let (s, b) = call(
        Method::POST,
        "/v1/schedules",
        Some("viewer-secret"),
        Some(body.clone()),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")));
    let (s, created) = call(
        Method::POST,
        "/v1/schedules",
        Some("operator-secret"),
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    for path in ["pause", "resume"] {
        let (s, _) = call(
            Method::POST,
            &format!("/v1/schedules/{id}/{path}"),
            Some("operator-secret"),
            Some(json!({})),
        )
        .await;
        assert_eq!(s, 200);
    }
    let (s, _) = call(
        Method::POST,
        &format!("/v1/schedules/{id}/trigger"),
        Some("operator-secret"),
        Some(json!({"reason": "ops"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        Method::PATCH,
        &format!("/v1/schedules/{id}"),
        Some("operator-secret"),
        Some(json!({"policy": {"timeout_seconds": 5}})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, b) = call(
        Method::DELETE,
        &format!("/v1/schedules/{id}"),
        Some("operator-secret"),
        None,
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")));
    // Percent-encoded spellings route to the same handlers; they must need the same role.
    for path in [
        format!("/%761/schedules/{id}"),
        format!("/v1/%73chedules/{id}"),
    ] {
        let (s, b) = call(Method::DELETE, &path, None, None).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
        let (s, b) = call(Method::DELETE, &path, Some("operator-secret"), None).await;
        assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")), "{path}");
    }
    let (s, b) = call(Method::GET, "/%761/schedules", None, None).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("unauthorized")));
    let (s, b) = call(
        Method::POST,
        &format!("/v%31/schedules/{id}/pause"),
        Some("viewer-secret"),
        Some(json!({})),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")));
    let refused = app
        .client
        .get(app.url("/v1/schedules"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let (s, _) = call(
        Method::DELETE,
        &format!("/v1/schedules/{id}"),
        Some("admin-secret"),
        None,
    )
    .await;
    assert_eq!(s, 200);
}
