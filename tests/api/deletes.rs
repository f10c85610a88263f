//! Many deletes at once: each request gets its own answer — 200 for a schedule that
//! existed, 404 for an unknown id or a second delete of the same schedule — each deleted
//! schedule's history goes with it, and the schedules left alone keep running.

use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{schedule_body, spawn_app, wait_for_runs};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[actix_web::test]
async fn a_burst_of_deletes_answers_each_and_takes_each_history_once() {
    let app = spawn_app().await;
    // Every schedule fires each second, so each has runs (and a stats row) to cascade.
    let creates = (0..24).map(|i| {
        let mut body = schedule_body(&format!("d{i}"));
        body["schedule"] = json!({"kind": "interval", "every_seconds": 1});
        let app = &app;
        async move {
            let created = app.create_schedule(&body).await;
            created["id"].as_str().expect("an id").to_string()
        }
    });
    let ids = join_all(creates).await;
    for id in &ids {
        wait_for_runs(&app, id, 1).await;
    }

    // 20 deletes, 6 of them sent twice, and 4 unknown ids, all at once.
    let unknown: Vec<String> = (0..4).map(|i| format!("sch_{:026}", 990 + i)).collect();
    let targets: Vec<&String> = ids[..20].iter().chain(&ids[..6]).chain(&unknown).collect();
    let statuses = join_all(targets.iter().map(|id| {
        let app = &app;
        async move { app.delete(&format!("/v1/schedules/{id}")).await.status }
    }))
    .await;
    for (i, id) in ids[..6].iter().enumerate() {
        let mut pair = [statuses[i], statuses[20 + i]];
        pair.sort();
        assert_eq!(pair, [200, 404], "the two deletes of {id}");
    }
    assert!(statuses[6..20].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[26..].iter().all(|s| *s == 404), "{statuses:?}");

    // The deleted are gone with their runs; the others keep their rows and keep firing.
    let mut conn = PgConnection::establish(&app.database_url).expect("a connection");
    let gone: Vec<String> = ids[..20].to_vec();
    let left = |table: &str| {
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM {table} WHERE schedule_id = ANY($1)"
        ))
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&gone)
    };
    for table in ["schedule_runs", "schedule_stats"] {
        let c: Count = left(table).get_result(&mut conn).expect("a count");
        assert_eq!(c.n, 0, "{table} rows of deleted schedules");
    }
    for id in &ids[..20] {
        assert_eq!(app.get(&format!("/v1/schedules/{id}")).await.status, 404);
    }
    for id in &ids[20..] {
        let before = app.get(&format!("/v1/schedules/{id}")).await.body["stats"]["succeeded"]
            .as_i64()
            .unwrap_or_default();
        app.poll(
            &format!("/v1/schedules/{id}"),
            Duration::from_secs(30),
            |b| b["stats"]["succeeded"].as_i64().unwrap_or_default() > before,
        )
        .await;
    }
}
