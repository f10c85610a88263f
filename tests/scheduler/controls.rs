//! Backfill and jitter observed through real runs (issue 11): DST-correct windows keyed like
//! the timers' occurrences, backfilled runs that no overlap policy skips or cancels, and
//! jittered due times that follow the occurrence key alone.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};
use crate::support::{count, ts, wait_runs};

fn unfinished(runs: &[Value]) -> usize {
    ["pending", "claimed", "running", "retry_scheduled"]
        .iter()
        .map(|s| count(runs, s))
        .sum()
}

async fn backfill(app: &TestApp, id: &str, start: &str, end: &str, reason: &str) -> Value {
    let r = app
        .post(
            &format!("/v1/schedules/{id}/backfill"),
            &json!({"start": start, "end": end, "reason": reason}),
        )
        .await;
    assert_eq!(r.status, 200, "backfill failed: {}", r.body);
    r.body
}

/// What New York's wall clock makes of `HH:MM` on each day in `days`, by chrono-tz: no
/// instant for a time that does not exist, the first for one that happens twice.
fn new_york_instants(days: &[(i32, u32, u32)], times: &[(u32, u32)]) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for (y, m, d) in days {
        for (hh, mm) in times {
            let local = NaiveDate::from_ymd_opt(*y, *m, *d)
                .and_then(|day| day.and_hms_opt(*hh, *mm, 0))
                .expect("valid wall-clock time");
            if let Some(t) = New_York.from_local_datetime(&local).earliest() {
                out.push(t.with_timezone(&Utc));
            }
        }
    }
    out.sort();
    out
}

#[actix_web::test]
async fn backfill_across_dst_matches_the_timers_and_adds_nothing_twice() {
    let app = spawn_app().await;
    let s = app
        .create_schedule(&json!({
            "name": "ny-backfill", "timezone": "America/New_York",
            "schedule": {"kind": "cron", "expr": "30 1,2 * * *"},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop", "input": {}},
            "policy": {"overlap": "forbid", "max_concurrency": 1}
        }))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    let next_before = s["next_run_at"].clone();

    // Spring forward (2022-03-13: 02:30 does not exist) and fall back (2022-11-06: 01:30
    // happens twice, fires once, at the first).
    let spring = backfill(
        &app,
        &id,
        "2022-03-12T00:00:00-05:00",
        "2022-03-15T00:00:00-04:00",
        "spring",
    )
    .await;
    let fall = backfill(
        &app,
        &id,
        "2022-11-05T00:00:00-04:00",
        "2022-11-08T00:00:00-05:00",
        "fall",
    )
    .await;
    let mut expected = new_york_instants(
        &[
            (2022, 3, 12),
            (2022, 3, 13),
            (2022, 3, 14),
            (2022, 11, 5),
            (2022, 11, 6),
            (2022, 11, 7),
        ],
        &[(1, 30), (2, 30)],
    );
    expected.dedup();
    assert_eq!(
        expected.len(),
        11,
        "one missing spring time, fall's 01:30 once"
    );
    assert_eq!(spring["created"], 5, "{spring}");
    assert_eq!(fall["created"], 6, "{fall}");
    assert_eq!(spring["existing"], 0);

    let runs = wait_runs(&app, &id, "every backfilled run to finish", |r| {
        r.len() == 11 && count(r, "succeeded") == 11
    })
    .await;
    let mut nominal: Vec<DateTime<Utc>> = runs.iter().map(|r| ts(&r["nominal_time"])).collect();
    nominal.sort();
    assert_eq!(nominal, expected);
    for r in &runs {
        let key = format!("{id}:{}", r["nominal_time"].as_str().unwrap());
        assert_eq!(
            r["occurrence_key"],
            key.as_str(),
            "keyed like a scheduled occurrence"
        );
        assert_eq!(r["attempt"], 1);
        let full = app
            .get(&format!("/v1/runs/{}", r["id"].as_str().unwrap()))
            .await
            .body;
        assert!(
            full["trigger_reason"] == "spring" || full["trigger_reason"] == "fall",
            "{full}"
        );
        assert_eq!(
            full["due_time"], full["nominal_time"],
            "no jitter on backfills"
        );
    }
    // Oldest first under max_concurrency 1: start order follows nominal order.
    let mut by_start: Vec<&Value> = runs.iter().collect();
    by_start.sort_by_key(|r| ts(&r["started_at"]));
    let start_order: Vec<DateTime<Utc>> = by_start.iter().map(|r| ts(&r["nominal_time"])).collect();
    assert_eq!(start_order, expected, "backfilled runs start oldest first");

    // The same window again (and one overlapping both) adds nothing.
    let again = backfill(
        &app,
        &id,
        "2022-03-12T00:00:00-05:00",
        "2022-03-15T00:00:00-04:00",
        "again",
    )
    .await;
    assert_eq!(
        (again["created"].clone(), again["existing"].clone()),
        (json!(0), json!(5)),
        "{again}"
    );
    assert_eq!(again["run_ids"], json!([]));
    let wider = backfill(
        &app,
        &id,
        "2022-03-11T00:00:00-05:00",
        "2022-03-15T00:00:00-04:00",
        "wider",
    )
    .await;
    assert_eq!(
        (wider["created"].clone(), wider["existing"].clone()),
        (json!(2), json!(5)),
        "{wider}"
    );

    let after = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(
        after["next_run_at"], next_before,
        "a backfill never moves the cadence"
    );
    assert_eq!(after["last_run_at"], Value::Null);
}

#[actix_web::test]
async fn backfilled_runs_are_neither_cancelled_nor_skipped_by_replace_or_queue_latest() {
    let app = spawn_app().await;
    for overlap in ["replace", "queue_latest"] {
        let anchor = Utc::now() - chrono::Duration::seconds(60);
        let s = app
            .create_schedule(&json!({
                "name": format!("busy-{overlap}"), "timezone": "UTC",
                "schedule": {"kind": "interval", "every_seconds": 1, "anchor_at": anchor.to_rfc3339()},
                "target": {"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 1.5}},
                "policy": {"overlap": overlap, "max_concurrency": 1}
            }))
            .await;
        let id = s["id"].as_str().unwrap().to_string();
        // Wait for the timers to be busy, so the policy has something to act on.
        wait_runs(&app, &id, "a scheduled run to be running", |r| {
            count(r, "running") >= 1
        })
        .await;
        let start = anchor + chrono::Duration::seconds(10);
        let end = anchor + chrono::Duration::seconds(14);
        let b = backfill(&app, &id, &start.to_rfc3339(), &end.to_rfc3339(), overlap).await;
        assert_eq!(b["created"], 4, "{b}");
        let backfilled: Vec<String> = b["run_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        wait_runs(&app, &id, "the backfilled runs to end", |runs| {
            runs.iter()
                .filter(|r| backfilled.iter().any(|b| r["id"] == b.as_str()))
                .all(|r| {
                    !["pending", "claimed", "running"].contains(&r["status"].as_str().unwrap())
                })
        })
        .await;
        app.post(&format!("/v1/schedules/{id}/pause"), &json!({}))
            .await;
        let runs = wait_runs(&app, &id, "the queue to drain", |r| unfinished(r) == 0).await;
        for r in runs
            .iter()
            .filter(|r| backfilled.iter().any(|b| r["id"] == b.as_str()))
        {
            assert_eq!(
                r["status"], "succeeded",
                "{overlap} touched a backfilled run: {r}"
            );
        }
        // The policy still acted on the scheduled runs it governs.
        let policy_acted = count(&runs, "skipped") + count(&runs, "cancelled");
        assert!(
            policy_acted > 0,
            "{overlap} never skipped or cancelled a scheduled run: {runs:#?}"
        );
    }
}

#[actix_web::test]
async fn a_backfill_on_a_paused_schedule_runs_without_resuming_it() {
    let app = spawn_app().await;
    let anchor = Utc::now() - chrono::Duration::seconds(120);
    let s = app
        .create_schedule(&json!({
            "name": "paused-backfill", "timezone": "UTC", "enabled": false,
            "schedule": {"kind": "interval", "every_seconds": 10, "anchor_at": anchor.to_rfc3339()},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop", "input": {}},
            "max_occurrences": 1
        }))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    let end = anchor + chrono::Duration::seconds(60);
    let b = backfill(
        &app,
        &id,
        &anchor.to_rfc3339(),
        &end.to_rfc3339(),
        "while paused",
    )
    .await;
    assert_eq!(b["created"], 6, "{b}");
    let runs = wait_runs(&app, &id, "the backfill to run", |r| {
        count(r, "succeeded") == 6
    })
    .await;
    assert_eq!(runs.len(), 6);
    let after = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert!(after["paused_at"].is_string(), "still paused: {after}");
    assert_eq!(after["next_run_at"], Value::Null);
    assert_eq!(
        after["occurrences_remaining"], 1,
        "backfills do not count: {after}"
    );
    assert_eq!(after["actor"]["state"], "paused");
}

/// FNV-1a 64 as published, written here again as the outside witness of the server's.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[actix_web::test]
async fn jitter_delays_each_occurrence_by_its_keys_offset_within_bounds() {
    let app = spawn_app().await;
    let anchor = Utc
        .timestamp_opt(Utc::now().timestamp(), 0)
        .single()
        .expect("a whole second");
    let s = app
        .create_schedule(&json!({
            "name": "jittered", "timezone": "UTC",
            "schedule": {"kind": "interval", "every_seconds": 1, "anchor_at": anchor.to_rfc3339()},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop", "input": {}},
            "policy": {"overlap": "allow", "max_concurrency": 10, "jitter_seconds": 2}
        }))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["policy"]["jitter_seconds"], 2);
    let runs = wait_runs(&app, &id, "six jittered runs", |r| {
        count(r, "succeeded") >= 6
    })
    .await;
    let mut offsets = Vec::new();
    for r in runs.iter().filter(|r| r["status"] == "succeeded") {
        let full = app
            .get(&format!("/v1/runs/{}", r["id"].as_str().unwrap()))
            .await
            .body;
        let nominal = ts(&full["nominal_time"]);
        let due = ts(&full["due_time"]);
        let offset = (due - nominal).num_milliseconds();
        assert!(
            (0..=2000).contains(&offset),
            "offset {offset} ms out of [0, 2000]: {full}"
        );
        let key = full["occurrence_key"].as_str().unwrap();
        assert_eq!(
            key,
            format!("{id}:{}", full["nominal_time"].as_str().unwrap()),
            "key stays nominal"
        );
        assert_eq!(
            offset as u64,
            fnv1a64(key.as_bytes()) % 2001,
            "offset follows the key alone: {full}"
        );
        assert!(
            ts(&full["started_at"]) >= due,
            "started before its due time: {full}"
        );
        // Nominal times stay on the anchor's whole-second grid.
        assert_eq!((nominal - anchor).num_milliseconds() % 1000, 0, "{full}");
        offsets.push(offset);
    }
    offsets.sort();
    offsets.dedup();
    assert!(
        offsets.len() >= 3,
        "offsets differ between occurrences: {offsets:?}"
    );
    let now = app.get(&format!("/v1/schedules/{id}")).await.body;
    assert_eq!(
        (ts(&now["next_run_at"]) - anchor).num_milliseconds() % 1000,
        0,
        "next_run_at stays nominal: {now}"
    );
    for t in app
        .get(&format!("/v1/schedules/{id}/upcoming?count=3"))
        .await
        .body["items"]
        .as_array()
        .unwrap()
    {
        assert_eq!(
            (ts(t) - anchor).num_milliseconds() % 1000,
            0,
            "upcoming stays nominal"
        );
    }
    // Manual triggers get no jitter.
    let t = app.trigger(&id, "now").await;
    let run = app
        .get(&format!("/v1/runs/{}", t["run_id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(run["due_time"], run["nominal_time"], "{run}");
}
