//! The running totals behind `/v1/status` and `/v1/metrics` (migration
//! `2026-12-06-000007_status_totals`): after creates, pauses, resumes, deletes (bursts
//! through the API, and on many connections at once) and run outcomes they equal a count of
//! the rows themselves, and the migration fills them from the rows already stored.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use futures_util::future::join_all;
use serde_json::{json, Value};
use wakeplane::store::{self, totals, totals::Totals, MIGRATIONS};

use crate::helpers::{fresh_database, schedule_body, spawn_app, spawn_app_on, TestApp};

/// Gives every schedule ended runs, different per schedule (its stats row as an outcome
/// batch leaves it; the triggers count an operator's update the same way).
const SEED_HISTORY: &str = "UPDATE schedule_stats s SET succeeded = 10 + n, failed = n % 4, \
     dead_lettered = n % 3, cancelled = n % 2, skipped = 2 * n \
     FROM (SELECT schedule_id, row_number() OVER (ORDER BY schedule_id) AS n \
           FROM schedule_stats) r WHERE s.schedule_id = r.schedule_id";

/// What the totals must be: the rows counted and the stats summed, the slow way.
fn counted(conn: &mut PgConnection) -> Totals {
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM schedules) AS schedules, \
         (SELECT count(*) FROM schedules WHERE enabled) AS enabled, \
         coalesce(sum(succeeded), 0)::bigint AS succeeded, \
         coalesce(sum(failed), 0)::bigint AS failed, \
         coalesce(sum(dead_lettered), 0)::bigint AS dead_lettered, \
         coalesce(sum(cancelled), 0)::bigint AS cancelled, \
         coalesce(sum(skipped), 0)::bigint AS skipped FROM schedule_stats",
    )
    .get_result(conn)
    .expect("counting the rows")
}

fn connect(app: &TestApp) -> PgConnection {
    PgConnection::establish(&app.database_url).expect("a connection to the test database")
}

/// `/v1/status`'s schedule counts and `/v1/metrics`'s gauges agree with the totals.
async fn assert_shown(app: &TestApp, expected: &Totals) {
    let status = app.get("/v1/status").await.body;
    assert_eq!(status["schedules"]["total"], expected.schedules, "{status}");
    assert_eq!(status["schedules"]["enabled"], expected.enabled, "{status}");
    assert_eq!(status["runs"]["failed"], expected.failed, "{status}");
    assert_eq!(status["runs"]["dead_letter"], expected.dead_lettered);
    let metrics = app.get("/v1/metrics").await.body;
    let text = metrics.as_str().unwrap_or_default();
    for line in [
        format!("schedules_total {}", expected.schedules),
        format!("schedules_enabled_total {}", expected.enabled),
        format!("runs_succeeded_total {}", expected.succeeded),
        format!("runs_failed_total {}", expected.failed),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

fn id_of(created: &Value) -> String {
    created["id"].as_str().expect("a created id").to_string()
}

#[actix_web::test]
async fn schedule_counts_follow_creates_pauses_resumes_and_deletes() {
    let app = spawn_app().await;
    let mut conn = connect(&app);
    // 24 creates at once, a third of them paused from the start.
    let creates = (0..24).map(|i| {
        let mut body = schedule_body(&format!("s{i}"));
        body["enabled"] = json!(i % 3 != 0);
        let app = &app;
        async move { id_of(&app.create_schedule(&body).await) }
    });
    let ids = join_all(creates).await;
    let after_creates = totals::read(&mut conn).expect("totals");
    assert_eq!((after_creates.schedules, after_creates.enabled), (24, 16));
    assert_eq!(after_creates, counted(&mut conn));
    assert_shown(&app, &after_creates).await;

    // Pause two enabled ones, resume one paused one; pausing twice changes nothing.
    for id in [&ids[1], &ids[2], &ids[2]] {
        app.post(&format!("/v1/schedules/{id}/pause"), &json!({}))
            .await;
    }
    app.post(&format!("/v1/schedules/{}/resume", ids[0]), &json!({}))
        .await;
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!((t.schedules, t.enabled), (24, 15));
    assert_eq!(t, counted(&mut conn));

    // Seven deletes at once, paused and enabled ones.
    let deletes = ids[3..10].iter().map(|id| {
        let app = &app;
        async move { app.delete(&format!("/v1/schedules/{id}")).await.status }
    });
    assert!(join_all(deletes).await.iter().all(|s| *s == 200));
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!(t.schedules, 17);
    assert_eq!(t, counted(&mut conn));
    assert_shown(&app, &t).await;
}

#[actix_web::test]
async fn run_counts_follow_outcomes_skips_and_cascading_deletes() {
    let app = spawn_app().await;
    let mut conn = connect(&app);
    let ok = id_of(&app.create_schedule(&schedule_body("ok")).await);
    let mut body = schedule_body("bad");
    body["target"] =
        json!({"kind": "workflow", "workflow_id": "builtin.fail", "input": {"message": "boom"}});
    body["retry"] = json!({"max_attempts": 2, "initial_delay_seconds": 1, "max_delay_seconds": 1});
    let bad = id_of(&app.create_schedule(&body).await);
    for i in 0..3 {
        app.trigger(&ok, &format!("ok {i}")).await;
    }
    app.trigger(&bad, "fail twice").await;
    app.poll(
        &format!("/v1/schedules/{bad}"),
        Duration::from_secs(30),
        |b| b["stats"]["dead_lettered"] == 1,
    )
    .await;
    app.poll(
        &format!("/v1/schedules/{ok}"),
        Duration::from_secs(30),
        |b| b["stats"]["succeeded"] == 3,
    )
    .await;
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!((t.succeeded, t.failed, t.dead_lettered), (3, 1, 1), "{t:?}");
    assert_eq!(t, counted(&mut conn));
    assert_shown(&app, &t).await;

    // Deleting a schedule cascades to its stats row, which takes its runs out.
    assert_eq!(
        app.delete(&format!("/v1/schedules/{bad}")).await.status,
        200
    );
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!(
        (t.schedules, t.succeeded, t.failed, t.dead_lettered),
        (1, 3, 0, 0)
    );
    assert_eq!(t, counted(&mut conn));
    assert_shown(&app, &t).await;

    // Writes outside the API (an operator's SQL) are counted as well, TRUNCATE included.
    conn.batch_execute(
        "UPDATE schedule_stats SET skipped = skipped + 4, cancelled = cancelled + 1",
    )
    .expect("an operator's update");
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!((t.skipped, t.cancelled), (4, 1));
    assert_eq!(t, counted(&mut conn));
    conn.batch_execute("TRUNCATE schedules CASCADE")
        .expect("truncating");
    assert_eq!(totals::read(&mut conn).expect("totals"), Totals::default());
}

#[actix_web::test]
async fn the_migration_fills_the_totals_from_the_rows_already_stored() {
    let url = fresh_database();
    let mut conn = PgConnection::establish(&url).expect("a connection");
    // Down to before the totals: the newest migrations, newest first.
    for version in ["20261206000008", "20261206000007"] {
        let reverted = conn
            .revert_last_migration(MIGRATIONS)
            .expect("reverting the newest migration");
        assert!(
            reverted
                .to_string()
                .replace(['-', '_'], "")
                .starts_with(version),
            "reverted {reverted}, expected {version}: the test must revert down to the totals"
        );
    }
    // 30 schedules (10 enabled) with stats, as a server without the totals left them.
    conn.batch_execute(
        "INSERT INTO schedules (id, name, enabled, timezone, schedule_kind, cron_expr,
             target_kind, target, overlap_policy, misfire_policy, timeout_seconds,
             max_concurrency, retry_max_attempts, retry_strategy, retry_initial_delay_seconds,
             retry_max_delay_seconds, paused_at, created_at, updated_at)
         SELECT 'sch_' || lpad(g::text, 26, '0'), 'old-' || g, g % 3 = 0, 'UTC', 'cron',
             '0 2 * * *', 'workflow',
             '{\"kind\":\"workflow\",\"workflow_id\":\"builtin.noop\",\"input\":{}}',
             'forbid', 'run_once_if_late', 300, 1, 0, 'exponential', 30, 900,
             CASE WHEN g % 3 = 0 THEN NULL ELSE now() END, now(), now()
         FROM generate_series(1, 30) g;
         INSERT INTO schedule_stats (schedule_id, runs_total, succeeded, failed, dead_lettered,
             cancelled, skipped)
         SELECT 'sch_' || lpad(g::text, 26, '0'), 15, 5, 4, 3, 2, 1
         FROM generate_series(1, 30) g;",
    )
    .expect("seeding");
    store::run_migrations(&mut conn).expect("migrating");
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!(
        t,
        Totals {
            schedules: 30,
            enabled: 10,
            succeeded: 150,
            failed: 120,
            dead_lettered: 90,
            cancelled: 60,
            skipped: 30,
        }
    );
    // A server on the migrated database shows them, and keeps them from there on.
    let app = spawn_app_on(url, |_| {}).await;
    assert_shown(&app, &t).await;
    let id = "sch_00000000000000000000000003";
    assert_eq!(app.delete(&format!("/v1/schedules/{id}")).await.status, 200);
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!((t.schedules, t.enabled, t.succeeded), (29, 9, 145));
    assert_eq!(t, counted(&mut conn));
}

#[actix_web::test]
async fn a_burst_of_deletes_subtracts_each_schedules_runs_once() {
    let app = spawn_app().await;
    let mut conn = connect(&app);
    let creates = (0..48).map(|i| {
        let mut body = schedule_body(&format!("h{i}"));
        body["enabled"] = json!(i % 4 != 0);
        let app = &app;
        async move { id_of(&app.create_schedule(&body).await) }
    });
    let ids = join_all(creates).await;
    conn.batch_execute(SEED_HISTORY).expect("seeding history");
    let before = totals::read(&mut conn).expect("totals");
    assert_eq!(before, counted(&mut conn));
    assert!(before.succeeded > 48 * 10 && before.failed > 0 && before.skipped > 0);

    // 40 deletes at once, each of the first 8 sent twice: a schedule's runs must leave the
    // totals once, whichever of its two deletes removes it.
    let doomed = &ids[..40];
    let deletes = doomed.iter().chain(&ids[..8]).map(|id| {
        let app = &app;
        async move { app.delete(&format!("/v1/schedules/{id}")).await.status }
    });
    let statuses = join_all(deletes).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        40,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        8,
        "{statuses:?}"
    );
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!((t.schedules, t.enabled), (8, 6), "{t:?}");
    assert!(
        t.succeeded > 8 * 10 && t.succeeded < before.succeeded,
        "{t:?}"
    );
    assert_eq!(t, counted(&mut conn));
    assert_shown(&app, &t).await;
}

#[actix_web::test]
async fn deletes_on_many_connections_at_once_sum_right() {
    let url = fresh_database();
    let mut conn = PgConnection::establish(&url).expect("a connection");
    conn.batch_execute(
        "INSERT INTO schedules (id, name, enabled, timezone, schedule_kind, cron_expr,
             target_kind, target, overlap_policy, misfire_policy, timeout_seconds,
             max_concurrency, retry_max_attempts, retry_strategy, retry_initial_delay_seconds,
             retry_max_delay_seconds, created_at, updated_at)
         SELECT 'sch_' || lpad(g::text, 26, '0'), 'many-' || g, g % 5 <> 0, 'UTC', 'cron',
             '0 2 * * *', 'workflow',
             '{\"kind\":\"workflow\",\"workflow_id\":\"builtin.noop\",\"input\":{}}',
             'forbid', 'run_once_if_late', 300, 1, 0, 'exponential', 30, 900, now(), now()
         FROM generate_series(1, 400) g;
         INSERT INTO schedule_stats (schedule_id, succeeded, failed, skipped)
         SELECT 'sch_' || lpad(g::text, 26, '0'), g % 3, g % 5, -(g % 2)
         FROM generate_series(1, 400) g;",
    )
    .expect("seeding schedules");
    // Stats rows inserted with counts (zero for some, negative for an odd `skipped`): the
    // insert trigger's filter lets exactly the non-zero ones through.
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!(
        (t.succeeded, t.failed, t.skipped),
        (400, 800, -200),
        "{t:?}"
    );
    assert_eq!(t, counted(&mut conn));
    conn.batch_execute(SEED_HISTORY).expect("seeding history");
    assert_eq!(totals::read(&mut conn).expect("totals"), counted(&mut conn));

    // 16 connections delete 360 of the 400 at once: connection k takes the ids = k mod 16,
    // one per transaction and in multi-row statements, in interleaved transactions.
    let url = url.as_str();
    std::thread::scope(|s| {
        for k in 0..16 {
            s.spawn(move || {
                let mut c = PgConnection::establish(url).expect("a connection");
                let mine: Vec<usize> = (1..=360).filter(|g| g % 16 == k).collect();
                for chunk in mine.chunks(3) {
                    let ids: Vec<String> = chunk.iter().map(|g| format!("'sch_{g:026}'")).collect();
                    let sql = if k % 2 == 0 {
                        format!("DELETE FROM schedules WHERE id IN ({})", ids.join(", "))
                    } else {
                        ids.iter()
                            .map(|id| format!("DELETE FROM schedules WHERE id = {id};"))
                            .collect()
                    };
                    c.batch_execute(&sql).expect("a delete");
                }
            });
        }
    });
    let t = totals::read(&mut conn).expect("totals");
    assert_eq!((t.schedules, t.enabled), (40, 32), "{t:?}");
    assert_eq!(t, counted(&mut conn));
}
