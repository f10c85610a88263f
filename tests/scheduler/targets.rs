//! Targets execute with their identity and leave receipts; timers fire on the grid.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::spawn_app;
use crate::support::{count, runs_of, ts, wait_runs, Target};

#[actix_web::test]
async fn an_interval_schedule_fires_on_its_grid() {
    let app = spawn_app().await;
    let s = app
        .create_schedule(&json!({
            "name": "every-second", "timezone": "UTC",
            "schedule": {"kind": "interval", "every_seconds": 1},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop"},
            "policy": {"overlap": "allow", "max_concurrency": 5}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let anchor = ts(&s["schedule"]["anchor_at"]);
    let runs = wait_runs(&app, id, "3 successes", |r| count(r, "succeeded") >= 3).await;
    let mut nominal: Vec<_> = runs.iter().map(|r| ts(&r["nominal_time"])).collect();
    nominal.sort();
    nominal.dedup();
    assert_eq!(nominal.len(), runs.len(), "one run per occurrence");
    for n in &nominal {
        let offset = (*n - anchor).num_milliseconds();
        assert!(
            offset > 0 && offset % 1000 == 0,
            "{n} is not on the grid of {anchor}"
        );
    }
    for r in &runs {
        let key = r["occurrence_key"].as_str().unwrap();
        assert_eq!(key, format!("{id}:{}", r["nominal_time"].as_str().unwrap()));
        assert_eq!(r["attempt"], 1);
    }
    let sched = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert!(ts(&sched["last_run_at"]) >= *nominal.last().unwrap());
    assert!(ts(&sched["next_run_at"]) > ts(&sched["last_run_at"]));
}

/// Triggers that arrive together are written in batches (one transaction for many): each
/// caller still gets its own run, with its own reason, and the target receives each run
/// exactly once.
#[actix_web::test]
async fn a_burst_of_triggers_gets_one_run_each_executed_once() {
    let app = spawn_app().await;
    let target = Target::start(200, "{}");
    let s = app
        .create_schedule(&json!({
            "name": "burst", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "http", "method": "post", "url": format!("{}/hook", target.url)},
            "policy": {"overlap": "allow", "max_concurrency": 100}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let n = 80;
    let replies = join_all((0..n).map(|i| {
        let app = &app;
        async move {
            let path = format!("/v1/schedules/{id}/trigger");
            (
                i,
                app.post(&path, &json!({"reason": format!("burst {i}")}))
                    .await,
            )
        }
    }))
    .await;
    let mut reason_of = BTreeMap::new();
    for (i, r) in &replies {
        assert_eq!(r.status, 200, "trigger {i}: {}", r.body);
        let run_id = r.body["run_id"].as_str().unwrap().to_string();
        assert!(
            reason_of.insert(run_id, format!("burst {i}")).is_none(),
            "two callers were answered with the same run"
        );
    }
    for (run_id, reason) in &reason_of {
        let run = app.get(&format!("/v1/runs/{run_id}")).await.body;
        assert_eq!(
            run["trigger_reason"], *reason,
            "run {run_id} answered the wrong caller"
        );
    }
    let runs = wait_runs(&app, id, "every triggered run to succeed", |r| {
        count(r, "succeeded") >= n
    })
    .await;
    assert_eq!(runs.len(), n, "exactly one run per trigger");
    let received: Vec<String> = target
        .requests()
        .iter()
        .map(|r| r.headers["wakeplane-run-id"].clone())
        .collect();
    let distinct: BTreeSet<&String> = received.iter().collect();
    assert_eq!(received.len(), n, "the target received each run once");
    assert_eq!(
        distinct,
        reason_of.keys().collect::<BTreeSet<_>>(),
        "the target received exactly the triggered runs"
    );
}

#[actix_web::test]
async fn http_targets_receive_identity_headers_and_leave_a_receipt() {
    let app = spawn_app().await;
    let target = Target::start(200, "{\"ok\":true}");
    let s = app
        .create_schedule(&json!({
            "name": "hook", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "http", "method": "post", "url": format!("{}/hook", target.url),
                       "headers": {"X-Custom": "yes", "Idempotency-Key": "mine"}, "body": {"hello": "world"}}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let t = app.trigger(id, "http identity").await;
    let run_id = t["run_id"].as_str().unwrap();
    let run = app
        .poll(
            &format!("/v1/runs/{run_id}"),
            Duration::from_secs(20),
            |r| r["status"] == "succeeded",
        )
        .await;
    assert_eq!(run["http_status_code"], 200);
    let reqs = target.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook");
    assert_eq!(req.headers["wakeplane-schedule-id"], id);
    assert_eq!(req.headers["wakeplane-run-id"], run_id);
    assert_eq!(
        req.headers["wakeplane-occurrence-key"],
        format!("manual:{run_id}")
    );
    assert_eq!(req.headers["wakeplane-attempt"], "1");
    assert_eq!(
        req.headers["idempotency-key"], "mine",
        "the target's own header wins"
    );
    assert_eq!(req.headers["x-custom"], "yes");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&req.body).unwrap(),
        json!({"hello": "world"})
    );
    let receipts = app.get(&format!("/v1/runs/{run_id}/receipts")).await.body;
    let items = receipts["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["receipt_kind"], "http_response");
    assert!(items[0]["body"].as_str().unwrap().contains("200"));
}

#[actix_web::test]
async fn shell_targets_get_identity_env_and_stdout_stderr_receipts() {
    let app = spawn_app().await;
    let s = app
        .create_schedule(&json!({
            "name": "shell", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "shell", "command": "/bin/sh",
                       "args": ["-c", "echo run=$WAKEPLANE_RUN_ID key=$WAKEPLANE_OCCURRENCE_KEY attempt=$WAKEPLANE_ATTEMPT; echo oops >&2; exit 3", "$HOME"]}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let run_id = app.trigger(id, "shell identity").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app
        .poll(
            &format!("/v1/runs/{run_id}"),
            Duration::from_secs(20),
            |r| r["status"] == "dead_lettered",
        )
        .await;
    assert_eq!(run["exit_code"], 3);
    assert!(run["error_text"].as_str().unwrap().contains('3'));
    let receipts = app.get(&format!("/v1/runs/{run_id}/receipts")).await.body;
    let items = receipts["items"].as_array().unwrap();
    let kinds: Vec<&str> = items
        .iter()
        .map(|r| r["receipt_kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["stdout", "stderr"]);
    assert_eq!(
        items[0]["body"].as_str().unwrap().trim(),
        format!("run={run_id} key=manual:{run_id} attempt=1")
    );
    assert_eq!(items[1]["body"].as_str().unwrap().trim(), "oops");
}

#[actix_web::test]
async fn binary_output_with_nul_bytes_is_recorded() {
    // PostgreSQL stores NUL in neither text nor jsonb: the outcome must still be written.
    let app = spawn_app().await;
    let s = app
        .create_schedule(&json!({
            "name": "zeros", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "shell", "command": "/usr/bin/head", "args": ["-c", "100000", "/dev/zero"]}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let run_id = app.trigger(id, "nul bytes").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app
        .poll(
            &format!("/v1/runs/{run_id}"),
            Duration::from_secs(20),
            |r| r["finished_at"].is_string(),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["exit_code"], 0);
    let receipts = app.get(&format!("/v1/runs/{run_id}/receipts")).await.body;
    let stdout = receipts["items"][0]["body"].as_str().unwrap();
    assert!(!stdout.contains('\0'));
    assert!(stdout.starts_with('\u{FFFD}'), "NUL shown as U+FFFD");
    assert!(
        stdout.ends_with("\n[truncated: 34464 bytes not shown]"),
        "{}",
        &stdout[stdout.len() - 60..]
    );
}

#[actix_web::test]
async fn workflows_return_results_and_unknown_ids_fail_clearly() {
    let app = spawn_app().await;
    let echo = app
        .create_schedule(&json!({
            "name": "echo", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "workflow", "workflow_id": "builtin.echo", "input": {"n": [1, 2]}}
        }))
        .await;
    let run_id = app.trigger(echo["id"].as_str().unwrap(), "echo").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app
        .poll(
            &format!("/v1/runs/{run_id}"),
            Duration::from_secs(20),
            |r| r["status"] == "succeeded",
        )
        .await;
    assert_eq!(run["result_json"], json!({"n": [1, 2]}));
    assert!(run["duration_ms"].is_number());
    let receipts = app.get(&format!("/v1/runs/{run_id}/receipts")).await.body;
    assert_eq!(receipts["items"][0]["receipt_kind"], "workflow_result");

    let missing = app
        .create_schedule(&json!({
            "name": "missing", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "workflow", "workflow_id": "sync.nowhere"}
        }))
        .await;
    let run_id = app
        .trigger(missing["id"].as_str().unwrap(), "missing")
        .await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app
        .poll(
            &format!("/v1/runs/{run_id}"),
            Duration::from_secs(20),
            |r| r["status"] == "dead_lettered",
        )
        .await;
    assert_eq!(
        run["error_text"],
        "workflow \"sync.nowhere\" is not registered"
    );
}

#[actix_web::test]
async fn a_once_schedule_fires_once_then_finishes() {
    let app = spawn_app().await;
    let target = Target::start(200, "ok");
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let s = app
        .create_schedule(&json!({
            "name": "once", "timezone": "UTC",
            "schedule": {"kind": "once", "at": at.to_rfc3339()},
            "target": {"kind": "http", "method": "POST", "url": format!("{}/once", target.url)}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let runs = wait_runs(&app, id, "the one run", |r| count(r, "succeeded") == 1).await;
    assert_eq!(runs.len(), 1);
    let sched = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(sched["next_run_at"], serde_json::Value::Null);
    assert_eq!(sched["enabled"], true, "the schedule stays as it is");
    assert_eq!(
        app.get(&format!("/v1/schedules/{id}/upcoming")).await.body["items"],
        json!([])
    );
    // "Once" is only proven after the moments a second fire would come: a re-armed timer
    // (at once, or a second later), the supervisor's 1 s sync reloading the actor, and the
    // 5 s lateness grace. Watch until 8 s past `at`; the target is the witness.
    let watch_until = at + chrono::Duration::seconds(8);
    while chrono::Utc::now() < watch_until {
        assert_eq!(target.requests().len(), 1, "the target was called again");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(target.requests().len(), 1, "the target was called again");
    let runs = runs_of(&app, id).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let request = &target.requests()[0];
    assert_eq!(request.headers["wakeplane-run-id"], runs[0]["id"]);
    assert_eq!(
        request.headers["wakeplane-occurrence-key"],
        runs[0]["occurrence_key"]
    );
}

#[actix_web::test]
async fn timeout_stops_the_work_and_fails_the_run() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let s = app
        .create_schedule(&json!({
            "name": "slow", "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
            "target": {"kind": "shell", "command": "/bin/sh",
                       "args": ["-c", format!("echo $$ > {}; sleep 60", pidfile.display())]},
            "policy": {"timeout_seconds": 1}
        }))
        .await;
    let run_id = app.trigger(s["id"].as_str().unwrap(), "timeout").await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app
        .poll(
            &format!("/v1/runs/{run_id}"),
            Duration::from_secs(30),
            |r| r["status"] == "dead_lettered",
        )
        .await;
    let err = run["error_text"].as_str().unwrap();
    assert!(err.contains("timed out after 1 second"), "{err}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The process was killed (or is a zombie awaiting its reaper).
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    let alive = exists
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z");
    assert!(!alive, "shell process {pid} survived its timeout");
}
