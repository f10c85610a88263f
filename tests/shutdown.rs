//! Graceful shutdown of a real `wakeplane serve` process (SEMANTICS.md "Leases and
//! recovery": stop claiming, drain within the timeout, cancel the rest, release leases,
//! exit 0), and the private PostgreSQL cluster's lifetime (README "The private
//! PostgreSQL").
//!
//! Proves:
//! - (a) work longer than the drain timeout is `cancelled` on SIGTERM, its lease released,
//!   and the process exits 0 without waiting for the work;
//! - (b) work shorter than the drain timeout is allowed to finish (`succeeded`) first;
//! - (c) with no `DATABASE_URL` the server runs its own cluster in `WAKEPLANE_DATA_DIR`,
//!   stops it on SIGTERM (no `postgres` process for that directory survives), and a second
//!   start reuses it (the schedule is still there) — as root, and again as an ordinary
//!   user when the tests run as root.

#[path = "process/mod.rs"]
mod process;

use std::path::Path;
use std::time::{Duration, Instant};

use process::{
    active_runs, fresh_database, lease_count, ordinary_user, poll, processes_mentioning, runs_of,
    Server, ServerSpec,
};
use serde_json::{json, Value};

fn sleep_schedule(name: &str) -> Value {
    json!({
        "name": name,
        "timezone": "UTC",
        "schedule": {"kind": "cron", "expr": "0 2 * * *"},
        "target": {"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 1}}
    })
}

/// Triggers a manual run of `builtin.sleep` for `seconds`, waits until it is `running`,
/// sends SIGTERM and waits for the exit (asserting code 0). Returns the run's final row.
fn trigger_then_sigterm(
    db: &str,
    drain_seconds: &str,
    sleep_seconds: u64,
) -> wakeplane::store::runs::RunRow {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database(db);
    let spec = ServerSpec::new(
        db,
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("WAKEPLANE_WORKER_ID", "wrk_shutdown"),
            ("WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS", drain_seconds),
        ],
    );
    let mut server = spec.start_ready(Duration::from_secs(60));
    let mut body = sleep_schedule(db);
    body["target"]["input"]["seconds"] = json!(sleep_seconds);
    let schedule_id = server.create_schedule(&body);
    let (status, run) = server.post(
        &format!("/v1/schedules/{schedule_id}/trigger"),
        &json!({"reason": "shutdown test"}),
    );
    assert_eq!(status, 200, "trigger: {run}");
    let run_id = run["run_id"].as_str().expect("run id").to_string();
    poll(
        "the manual run to be running",
        Duration::from_secs(20),
        || {
            let (s, r) = server.get(&format!("/v1/runs/{run_id}"));
            (s == 200 && r["status"] == "running").then_some(())
        },
    );
    server.stop_gracefully(Duration::from_secs(20));
    let row = runs_of(&url, &schedule_id)
        .into_iter()
        .find(|r| r.id == run_id)
        .expect("the run row");
    assert!(
        active_runs(&url, &schedule_id).is_empty(),
        "no run left claimed/running"
    );
    assert_eq!(lease_count(&url), 0, "no lease left after a graceful stop");
    row
}

#[test]
fn sigterm_cancels_work_longer_than_the_drain_timeout() {
    let started = Instant::now();
    let run = trigger_then_sigterm("wp_shutdown_cancel", "1", 30);
    assert_eq!(run.status, "cancelled", "{run:#?}");
    assert!(run.finished_at.is_some(), "{run:#?}");
    println!("(a) cancelled on drain timeout: {:.1?}", started.elapsed());
}

#[test]
fn sigterm_lets_short_work_drain() {
    let started = Instant::now();
    let run = trigger_then_sigterm("wp_shutdown_drain", "20", 2);
    assert_eq!(run.status, "succeeded", "{run:#?}");
    println!("(b) drained to success: {:.1?}", started.elapsed());
}

#[test]
fn commands_during_the_drain_are_refused_with_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database("wp_shutdown_refuse");
    let spec = ServerSpec::new(
        "refuse",
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("WAKEPLANE_WORKER_ID", "wrk_refuse"),
            ("WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS", "20"),
        ],
    );
    let mut server = spec.start_ready(Duration::from_secs(60));
    let mut body = sleep_schedule("refuse");
    body["target"]["input"]["seconds"] = json!(5);
    let schedule_id = server.create_schedule(&body);
    let (status, run) = server.post(
        &format!("/v1/schedules/{schedule_id}/trigger"),
        &json!({"reason": "keep the drain busy"}),
    );
    assert_eq!(status, 200, "trigger: {run}");
    let run_id = run["run_id"].as_str().expect("run id").to_string();
    poll("the run to be running", Duration::from_secs(20), || {
        let (_, r) = server.get(&format!("/v1/runs/{run_id}"));
        (r["status"] == "running").then_some(())
    });
    server.terminate();
    // Draining: new schedules and commands would arm timers nobody honours. A create may
    // still land between the signal and the start of the drain; each one answered 201
    // must exist afterwards, and none answered 503 may.
    let mut acknowledged = vec![("refuse".to_string(), true)];
    let mut attempt = 0;
    let refused = poll("a create to be refused", Duration::from_secs(4), || {
        attempt += 1;
        let name = format!("too-late-{attempt}");
        let (s, b) = server.post("/v1/schedules", &sleep_schedule(&name));
        if s == 201 {
            acknowledged.push((name, true));
        }
        (s == 503).then_some(b)
    });
    assert_eq!(refused["code"], "unavailable", "{refused}");
    let (s, b) = server.post(&format!("/v1/schedules/{schedule_id}/pause"), &json!({}));
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    let exit = server.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "{exit:?}");
    let row = runs_of(&url, &schedule_id)
        .into_iter()
        .find(|r| r.id == run_id)
        .expect("the run row");
    assert_eq!(
        row.status, "succeeded",
        "the running work still drained: {row:#?}"
    );
    acknowledged.sort();
    assert_eq!(
        process::schedules_in(&url),
        acknowledged,
        "no schedule was created while draining, and the refused pause changed nothing"
    );
    assert_eq!(
        runs_of(&url, &schedule_id).len(),
        1,
        "no run was created while draining"
    );
}

/// Live `postgres` processes whose command line mentions `data_dir`.
fn postgres_for(data_dir: &Path) -> Vec<String> {
    let needle = data_dir.to_string_lossy().to_string();
    processes_mentioning(&needle)
        .into_iter()
        .filter(|c| c.contains("postgres"))
        .collect()
}

/// Asserts that no `postgres` process for `data_dir` is left.
fn assert_no_postgres_for(data_dir: &Path) {
    let left = postgres_for(data_dir);
    assert!(left.is_empty(), "postgres outlived wakeplane: {left:?}");
}

/// (c) for one user: serve with a private cluster, create, SIGTERM, check the cluster is
/// gone, serve again, check the schedule survived, SIGTERM again.
fn private_cluster_round_trip(label: &str, data_dir: &Path, run_as: Option<(u32, u32)>) {
    let logs = tempfile::tempdir().expect("tempdir");
    let data = data_dir.to_string_lossy().to_string();
    let mut spec = ServerSpec::new(
        label,
        logs.path(),
        &[("WAKEPLANE_DATA_DIR", &data), ("HOME", &data)],
    );
    spec.run_as = run_as;
    let ready = Duration::from_secs(120);

    let mut first: Server = spec.start_ready(ready);
    // Makes the check after the stop meaningful: the postmaster is visible while it runs.
    assert!(
        !postgres_for(data_dir).is_empty(),
        "no postgres process mentions {} while the server runs",
        data_dir.display()
    );
    let name = format!("{label}-survives-restarts");
    let id = first.create_schedule(&sleep_schedule(&name));
    first.stop_gracefully(Duration::from_secs(60));
    assert_no_postgres_for(data_dir);

    let mut second = spec.start_ready(ready);
    let (status, list) = second.get("/v1/schedules");
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        ids.contains(&id.as_str()),
        "schedule {id} kept across restarts: {list}"
    );
    second.stop_gracefully(Duration::from_secs(60));
    assert_no_postgres_for(data_dir);
}

fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn private_cluster_stops_with_the_server_and_keeps_data() {
    let started = Instant::now();
    // Under /tmp so that, as root, the `postgres` system user can reach it.
    let data = tempfile::Builder::new()
        .prefix("wp-shutdown-c-")
        .tempdir_in("/tmp")
        .expect("data dir");
    private_cluster_round_trip("private-cluster", data.path(), None);
    println!(
        "(c) private cluster as uid {}: {:.1?}",
        // SAFETY: plain syscall.
        unsafe { libc::geteuid() },
        started.elapsed()
    );

    let test = "private_cluster_stops_with_the_server_and_keeps_data";
    if !is_root() {
        return process::say_not_run(
            test,
            "the root variant (tests not run as root; the run above was the ordinary user's)",
        );
    }
    let Some((uid, gid)) = ordinary_user("wptest") else {
        return process::say_not_run(
            test,
            "the ordinary-user variant (no `wptest` user, and useradd failed)",
        );
    };
    let started = Instant::now();
    let data = tempfile::Builder::new()
        .prefix("wp-shutdown-c-user-")
        .tempdir_in("/tmp")
        .expect("data dir");
    std::os::unix::fs::chown(data.path(), Some(uid), Some(gid)).expect("chown data dir");
    private_cluster_round_trip("private-cluster-wptest", data.path(), Some((uid, gid)));
    println!(
        "(c) private cluster as wptest (uid {uid}): {:.1?}",
        started.elapsed()
    );
}
