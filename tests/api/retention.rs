//! Ledger retention (`WAKEPLANE_RUN_RETENTION_DAYS`): old ended runs and their receipts
//! go, in batches, under the retention lock; recent runs, dead-lettered chains, attempts
//! whose retry is still to come and the per-schedule counters stay.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use serde_json::{json, Value};
use wakeplane::store::retention::{self, RETENTION_LOCK_CLASS, RETENTION_LOCK_KEY};
use wakeplane::store::Store;

use crate::helpers::{schedule_body, spawn_app, spawn_app_with, wait_for_runs, TestApp};

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    status: String,
}

fn runs_of(conn: &mut PgConnection, schedule_id: &str) -> Vec<(String, String)> {
    diesel::sql_query(
        "SELECT id, status FROM schedule_runs WHERE schedule_id = $1 ORDER BY occurrence_key, attempt",
    )
    .bind::<Text, _>(schedule_id)
    .load::<Row>(conn)
    .expect("runs")
    .into_iter()
    .map(|r| (r.id, r.status))
    .collect()
}

async fn create(app: &TestApp, name: &str, target: Value, retry: Option<Value>) -> String {
    let mut body = schedule_body(name);
    body["target"] = target;
    body["policy"] = json!({"overlap": "allow", "max_concurrency": 4});
    if let Some(retry) = retry {
        body["retry"] = retry;
    }
    app.create_schedule(&body).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn stats(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/schedules/{id}")).await.body["stats"].clone()
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[actix_web::test]
async fn old_ended_runs_and_their_receipts_go_everything_else_stays() {
    let app = spawn_app_with(|c| {
        c.run_retention = Some(Duration::from_secs(86_400));
        c.run_retention_interval = Duration::from_secs(1);
    })
    .await;
    let mut conn = PgConnection::establish(&app.database_url).expect("connect");

    // Three successes, each with a workflow_result receipt.
    let ok = create(
        &app,
        "ok",
        json!({"kind": "workflow", "workflow_id": "builtin.echo", "input": {"n": 1}}),
        None,
    )
    .await;
    for i in 0..3 {
        app.trigger(&ok, &format!("old {i}")).await;
    }
    // A chain that ends in a dead letter: attempt 1 failed, attempt 2 dead-lettered.
    let dead = create(
        &app,
        "dead",
        json!({"kind": "workflow", "workflow_id": "builtin.fail", "input": {"message": "boom"}}),
        Some(json!({"max_attempts": 2, "initial_delay_seconds": 1, "max_delay_seconds": 1})),
    )
    .await;
    app.trigger(&dead, "dead letter").await;
    // A chain still under way: attempt 1 failed, attempt 2 waits an hour.
    let retrying = create(
        &app,
        "retrying",
        json!({"kind": "workflow", "workflow_id": "builtin.fail", "input": {"message": "later"}}),
        Some(json!({"max_attempts": 3, "initial_delay_seconds": 3600, "max_delay_seconds": 3600})),
    )
    .await;
    app.trigger(&retrying, "retry later").await;

    wait_for_runs(&app, &ok, 3).await;
    let poll = Duration::from_secs(30);
    app.poll(&format!("/v1/schedules/{dead}"), poll, |b| {
        b["stats"]["dead_lettered"] == 1
    })
    .await;
    app.poll(&format!("/v1/schedules/{retrying}"), poll, |b| {
        b["stats"]["failed"] == 1
    })
    .await;
    let before = [
        stats(&app, &ok).await,
        stats(&app, &dead).await,
        stats(&app, &retrying).await,
    ];
    let old_ok: Vec<String> = runs_of(&mut conn, &ok).into_iter().map(|r| r.0).collect();
    assert_eq!(old_ok.len(), 3);
    let old_receipts = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM execution_receipts e JOIN schedule_runs r ON r.id = e.run_id
             WHERE r.schedule_id = '{ok}'"
        ),
    );
    assert!(old_receipts >= 3, "each success left a receipt");
    let dead_chain = runs_of(&mut conn, &dead);
    let retry_chain = runs_of(&mut conn, &retrying);
    assert_eq!(dead_chain.len(), 2, "{dead_chain:?}");
    assert_eq!(retry_chain.len(), 2, "{retry_chain:?}");
    assert_eq!(retry_chain[1].1, "retry_scheduled");

    // Ten days pass for every ended run (the ledger's clocks, not ours).
    conn.batch_execute(
        "UPDATE schedule_runs SET created_at = created_at - interval '10 days',
             updated_at = updated_at - interval '10 days',
             started_at = started_at - interval '10 days',
             finished_at = finished_at - interval '10 days'
         WHERE status IN ('succeeded', 'failed', 'dead_lettered', 'cancelled', 'skipped')",
    )
    .expect("backdating");
    // And one success today.
    app.trigger(&ok, "recent").await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = runs_of(&mut conn, &ok);
        if left.len() == 1 && left[0].1 == "succeeded" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old runs not deleted within 30 s: {left:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let recent = runs_of(&mut conn, &ok);
    assert!(!old_ok.contains(&recent[0].0), "the recent run stays");
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM execution_receipts WHERE run_id IN ('{}')",
                old_ok.join("','")
            ),
        ),
        0,
        "the old runs' receipts went with them"
    );
    assert!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS n FROM execution_receipts WHERE run_id = '{}'",
                recent[0].0
            ),
        ) >= 1,
        "the recent run keeps its receipt"
    );
    assert_eq!(
        runs_of(&mut conn, &dead),
        dead_chain,
        "a dead letter's chain stays"
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM dead_letters"),
        1
    );
    assert_eq!(
        runs_of(&mut conn, &retrying),
        retry_chain,
        "an active chain stays"
    );

    // The counters are running totals: deleting rows takes nothing off them.
    let now_ok = stats(&app, &ok).await;
    assert_eq!(now_ok["succeeded"], 4, "{now_ok}");
    assert_eq!(now_ok["runs_total"], 4, "{now_ok}");
    assert_eq!(stats(&app, &dead).await, before[1]);
    assert_eq!(stats(&app, &retrying).await, before[2]);
    let status = app.get("/v1/status").await.body;
    assert_eq!(status["runs"]["failed"], 2, "{status}");
    assert_eq!(status["runs"]["dead_letter"], 1, "{status}");

    let metrics = app.get("/v1/metrics").await.body;
    let text = metrics.as_str().expect("metrics text");
    assert_eq!(metric(text, "runs_succeeded_total"), Some(4), "{text}");
    assert_eq!(
        metric(text, "runs_retention_deleted_total"),
        Some(3),
        "{text}"
    );
    assert_eq!(
        metric(text, "receipts_retention_deleted_total"),
        Some(old_receipts as u64),
        "{text}"
    );
}

#[actix_web::test]
async fn retention_is_off_by_default_and_its_counters_stay_zero() {
    let app = spawn_app().await;
    let id = app.create_schedule(&schedule_body("kept")).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    app.trigger(&id, "old").await;
    wait_for_runs(&app, &id, 1).await;
    let mut conn = PgConnection::establish(&app.database_url).expect("connect");
    conn.batch_execute(
        "UPDATE schedule_runs SET created_at = created_at - interval '10000 days',
             finished_at = finished_at - interval '10000 days',
             updated_at = updated_at - interval '10000 days'",
    )
    .expect("backdating");
    // Without the knob there is no sweeper at all: its counters exist and stay at zero.
    let metrics = app.get("/v1/metrics").await.body;
    let text = metrics.as_str().expect("metrics text");
    assert_eq!(
        metric(text, "runs_retention_deleted_total"),
        Some(0),
        "{text}"
    );
    assert_eq!(runs_of(&mut conn, &id).len(), 1);
}

/// Seeds `n` succeeded runs of `schedule_id`, ended 30 days ago, each with one receipt.
fn seed_old_runs(conn: &mut PgConnection, schedule_id: &str, n: usize) {
    conn.batch_execute(&format!(
        "INSERT INTO schedule_runs (id, schedule_id, occurrence_key, nominal_time, due_time,
             status, attempt, started_at, finished_at, created_at, updated_at)
         SELECT 'run_old' || g, '{schedule_id}', 'old:' || g, now() - interval '30 days',
             now() - interval '30 days', 'succeeded', 1, now() - interval '30 days',
             now() - interval '30 days', now() - interval '30 days' + g * interval '1 ms',
             now() - interval '30 days'
         FROM generate_series(1, {n}) g;
         INSERT INTO execution_receipts (id, run_id, receipt_kind, content_type, body, created_at)
         SELECT 'rcp_old' || g, 'run_old' || g, 'summary', 'text/plain', 'ok',
             now() - interval '30 days'
         FROM generate_series(1, {n}) g;"
    ))
    .expect("seeding old runs");
}

#[actix_web::test]
async fn only_the_holder_of_the_retention_lock_deletes_and_batches_stay_small() {
    // A server without retention, only to create a schedule the right way.
    let app = spawn_app().await;
    let id = app.create_schedule(&schedule_body("seeded")).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut conn = PgConnection::establish(&app.database_url).expect("connect");
    seed_old_runs(&mut conn, &id, 1_200);
    let store = Store::new(&app.database_url, 2);
    let cutoff = wakeplane::store::now() - chrono::Duration::days(7);

    // Another node (here: this session) holds the retention lock: nothing is touched.
    let mut other = PgConnection::establish(&app.database_url).expect("connect");
    other
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({RETENTION_LOCK_CLASS}, {RETENTION_LOCK_KEY})"
        ))
        .expect("lock");
    let swept = store
        .run_blocking(|c| retention::sweep_batch(c, cutoff, 500))
        .expect("sweep");
    assert!(swept.busy, "{swept:?}");
    assert_eq!(swept.runs, 0);
    let total = "SELECT count(*) AS n FROM schedule_runs";
    assert_eq!(count(&mut conn, total), 1_200);
    other
        .batch_execute(&format!(
            "SELECT pg_advisory_unlock({RETENTION_LOCK_CLASS}, {RETENTION_LOCK_KEY})"
        ))
        .expect("unlock");

    // Free again: 500 at a time, oldest first, and the lock is gone after each batch (it
    // lives for one transaction), so the other session can take it at once.
    let mut batches = Vec::new();
    loop {
        let swept = store
            .run_blocking(|c| retention::sweep_batch(c, cutoff, 500))
            .expect("sweep");
        assert!(!swept.busy);
        assert_eq!(swept.receipts, swept.runs, "one receipt per seeded run");
        let locked: i64 = count(
            &mut other,
            &format!(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'
                   AND classid = {RETENTION_LOCK_CLASS} AND objid = {RETENTION_LOCK_KEY}"
            ),
        );
        assert_eq!(locked, 0, "the lock ends with its transaction");
        if swept.runs == 0 {
            break;
        }
        batches.push(swept.runs);
        if batches.len() == 1 {
            // The first batch took the oldest 500 and nothing else.
            assert_eq!(
                count(
                    &mut conn,
                    "SELECT count(*) AS n FROM schedule_runs
                     WHERE id IN (SELECT 'run_old' || g FROM generate_series(1, 500) g)"
                ),
                0
            );
            assert_eq!(count(&mut conn, total), 700);
        }
    }
    assert_eq!(batches, vec![500, 500, 200]);
    assert_eq!(count(&mut conn, total), 0);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM execution_receipts"),
        0
    );
}
