//! Overlap policies and max_concurrency, observed through real runs; how many ran at
//! once is what the HTTP target itself saw, not the server's timestamps.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};
use crate::support::{count, wait_runs, Received, Target};

/// A schedule firing every second at a target that holds each call for `seconds`.
async fn sleeper(
    app: &TestApp,
    name: &str,
    overlap: &str,
    max: i64,
    seconds: f64,
) -> (String, Target) {
    let target = Target::holding(200, "ok", Duration::from_secs_f64(seconds));
    let s = app
        .create_schedule(&json!({
            "name": name, "timezone": "UTC",
            "schedule": {"kind": "interval", "every_seconds": 1},
            "target": {"kind": "http", "method": "POST", "url": format!("{}/{name}", target.url)},
            "policy": {"overlap": overlap, "max_concurrency": max}
        }))
        .await;
    (s["id"].as_str().unwrap().to_string(), target)
}

fn unfinished(runs: &[Value]) -> usize {
    ["pending", "claimed", "running", "retry_scheduled"]
        .iter()
        .map(|s| count(runs, s))
        .sum()
}

#[actix_web::test]
async fn forbid_runs_one_at_a_time_and_never_skips() {
    let app = spawn_app().await;
    let (id, target) = sleeper(&app, "forbid", "forbid", 1, 1.5).await;
    wait_runs(&app, &id, "3 successes", |r| count(r, "succeeded") >= 3).await;
    app.post(&format!("/v1/schedules/{id}/pause"), &json!({}))
        .await;
    let runs = wait_runs(&app, &id, "the queue to drain", |r| unfinished(r) == 0).await;
    assert_eq!(
        target.max_in_flight(),
        1,
        "forbid with max_concurrency 1 overlapped at the target"
    );
    assert_eq!(
        target.requests().len(),
        runs.len(),
        "the target got every run"
    );
    assert_eq!(count(&runs, "skipped"), 0, "forbid never skips");
    assert_eq!(
        count(&runs, "succeeded"),
        runs.len(),
        "every occurrence ran"
    );
}

#[actix_web::test]
async fn allow_runs_up_to_max_concurrency_in_parallel() {
    let app = spawn_app().await;
    let (id, target) = sleeper(&app, "allow", "allow", 3, 3.5).await;
    wait_runs(&app, &id, "5 successes", |r| count(r, "succeeded") >= 5).await;
    app.post(&format!("/v1/schedules/{id}/pause"), &json!({}))
        .await;
    let runs = wait_runs(&app, &id, "the queue to drain", |r| unfinished(r) == 0).await;
    let parallel = target.max_in_flight();
    assert!(parallel >= 2, "allow never ran two at once");
    assert!(parallel <= 3, "allow exceeded max_concurrency: {parallel}");
    assert_eq!(
        target.requests().len(),
        count(&runs, "succeeded"),
        "the target got exactly the succeeded runs"
    );
    assert_eq!(count(&runs, "skipped"), 0);
}

#[actix_web::test]
async fn queue_latest_skips_older_waiting_runs() {
    let app = spawn_app().await;
    let (id, target) = sleeper(&app, "queue-latest", "queue_latest", 1, 3.0).await;
    let runs = wait_runs(&app, &id, "skips and successes", |r| {
        count(r, "skipped") >= 2 && count(r, "succeeded") >= 2
    })
    .await;
    assert_eq!(
        target.max_in_flight(),
        1,
        "queue_latest overlapped at the target"
    );
    // A skipped run never reached the target.
    let called: Vec<String> = target
        .requests()
        .iter()
        .map(|r| r.headers["wakeplane-run-id"].clone())
        .collect();
    for r in runs.iter().filter(|r| r["status"] == "skipped") {
        assert!(
            !called.contains(&r["id"].as_str().unwrap().to_string()),
            "{r}"
        );
    }
    for r in runs.iter().filter(|r| r["status"] == "skipped") {
        let run = app
            .get(&format!("/v1/runs/{}", r["id"].as_str().unwrap()))
            .await
            .body;
        assert!(
            run["error_text"].as_str().unwrap().contains("newer run"),
            "{run}"
        );
    }
    // Never more than one waiting.
    let pending = count(&crate::support::runs_of(&app, &id).await, "pending");
    assert!(pending <= 1, "{pending} runs waiting under queue_latest");
}

fn pid_alive(pid: i32) -> bool {
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
}

async fn wait_status(app: &TestApp, run_id: &str, status: &str) -> Value {
    app.poll(
        &format!("/v1/runs/{run_id}"),
        Duration::from_secs(30),
        |r| r["status"] == status,
    )
    .await
}

#[actix_web::test]
async fn replace_kills_a_running_shell_command_and_starts_the_newest() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let s = app
        .create_schedule(&json!({
            "name": "replace-shell", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "shell", "command": "/bin/sh",
                       "args": ["-c", format!("echo $$ > {}/$WAKEPLANE_RUN_ID; sleep 60 & wait", dir.path().display())]},
            "policy": {"overlap": "replace"},
            "retry": {"max_attempts": 3, "initial_delay_seconds": 1}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let first = app.trigger(id, "first").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&app, &first, "running").await;
    let pidfile = dir.path().join(&first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !pidfile.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "first run never started its process"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let second = app.trigger(id, "second").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancelled = wait_status(&app, &first, "cancelled").await;
    assert!(cancelled["error_text"].as_str().unwrap().contains("cancel"));
    assert!(
        !pid_alive(pid),
        "the replaced shell process {pid} is still alive"
    );
    wait_status(&app, &second, "running").await;
    // Cancellation is never retried.
    let runs = crate::support::runs_of(&app, id).await;
    assert!(
        runs.iter().all(|r| r["attempt"] == 1),
        "a cancelled run was retried"
    );

    // Deleting the schedule cancels its active run too.
    let pidfile2 = dir.path().join(&second);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !pidfile2.exists() {
        assert!(std::time::Instant::now() < deadline);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let pid2: i32 = std::fs::read_to_string(&pidfile2)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(app.delete(&format!("/v1/schedules/{id}")).await.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pid_alive(pid2) {
        assert!(
            std::time::Instant::now() < deadline,
            "deleting the schedule left process {pid2} running"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the target until `pred` holds on what it received (a hang guard).
async fn wait_target(target: &Target, what: &str, pred: impl Fn(&[Received]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !pred(&target.requests()) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the target to see {what}: {:#?}",
            target.requests()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn replace_aborts_a_running_http_call_and_starts_the_newest() {
    let app = spawn_app().await;
    let target = Target::holding(200, "ok", Duration::from_secs(60));
    let s = app
        .create_schedule(&json!({
            "name": "replace-http", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "http", "method": "POST", "url": format!("{}/slow", target.url)},
            "policy": {"overlap": "replace"}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let run_of = |r: &Received| r.headers["wakeplane-run-id"].clone();
    let first = app.trigger(id, "first").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_target(&target, "the first call", |r| r.len() == 1).await;
    let second = app.trigger(id, "second").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The target's own record: the first call was hung up on, the second one came.
    wait_target(&target, "the first call aborted, the second made", |r| {
        r.len() == 2 && r[0].aborted
    })
    .await;
    let seen = target.requests();
    assert_eq!(
        (run_of(&seen[0]), run_of(&seen[1])),
        (first.clone(), second.clone())
    );
    assert!(!seen[1].aborted, "{seen:#?}");
    let cancelled = wait_status(&app, &first, "cancelled").await;
    assert!(cancelled["error_text"].as_str().unwrap().contains("cancel"));
    wait_status(&app, &second, "running").await;

    // Deleting the schedule hangs up on its active call too.
    assert_eq!(app.delete(&format!("/v1/schedules/{id}")).await.status, 200);
    wait_target(&target, "the second call aborted", |r| r[1].aborted).await;
    assert_eq!(target.requests().len(), 2, "nothing else was called");
}

#[actix_web::test]
async fn replace_signals_a_running_workflow_handler() {
    let app = spawn_app().await;
    let s = app
        .create_schedule(&json!({
            "name": "replace-sleep", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 60}},
            "policy": {"overlap": "replace"}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let first = app.trigger(id, "first").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&app, &first, "running").await;
    let second = app.trigger(id, "second").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let third = app.trigger(id, "third").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&app, &first, "cancelled").await;
    wait_status(&app, &third, "running").await;
    // The second run lost to the newest: skipped while waiting, or cancelled if it had
    // already started when the third became due.
    let second = app
        .poll(
            &format!("/v1/runs/{second}"),
            Duration::from_secs(30),
            |r| r["status"] == "skipped" || r["status"] == "cancelled",
        )
        .await;
    if second["status"] == "skipped" {
        assert!(
            second["error_text"].as_str().unwrap().contains("replace"),
            "{second}"
        );
    }
}

#[actix_web::test]
async fn replace_skips_a_run_still_queued_for_an_executor() {
    // One executor, kept busy by another schedule: the replaced run never got claimed.
    let app = crate::helpers::spawn_app_with(|c| c.workers = 1).await;
    let busy = app
        .create_schedule(&json!({
            "name": "busy", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 3}}
        }))
        .await;
    let busy_run = app.trigger(busy["id"].as_str().unwrap(), "occupy").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&app, &busy_run, "running").await;
    let s = app
        .create_schedule(&json!({
            "name": "replace-queued", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop"},
            "policy": {"overlap": "replace"}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let first = app.trigger(id, "first").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = app.trigger(id, "second").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = wait_status(&app, &first, "skipped").await;
    assert!(
        first["error_text"].as_str().unwrap().contains("replace"),
        "{first}"
    );
    wait_status(&app, &second, "succeeded").await;
}
