//! Crash recovery, end to end: a real `wakeplane serve` process is SIGKILLed while shell
//! runs execute, then started again with the same worker id, then stopped with SIGTERM.
//!
//! Proves (SEMANTICS.md "Occurrences and runs", "Misfire", "Retry", "Leases and recovery"):
//! - no attempt is executed twice (each `(occurrence_key, attempt)` starts at most once);
//! - with `catch_up`, no occurrence is lost or skipped across the crash: the attempt-1 rows
//!   form a gap-free 1 s grid that goes on to the stop;
//! - each succeeded run ran to its end exactly once by the command's own log (written by
//!   the command, not the server);
//! - the runs that were `running` at the kill end `failed` with exactly
//!   "worker lease expired during execution" and are retried (an attempt-2 row);
//! - after the graceful stop nothing is `claimed`/`running` and no lease is left.

#[path = "process/mod.rs"]
mod process;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use process::{fresh_database, lease_count, poll, runs_of, ServerSpec};
use serde_json::json;
use wakeplane::store::leases::LEASE_EXPIRED;

/// One line of the execution log the command writes itself:
/// `start|done occurrence_key attempt run_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Execution {
    occurrence_key: String,
    attempt: i32,
    run_id: String,
}

/// The log's `(starts, completions)`.
fn read_executions(path: &std::path::Path) -> (Vec<Execution>, Vec<Execution>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut starts, mut completions) = (Vec::new(), Vec::new());
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(parts.len(), 4, "malformed execution log line {l:?}");
        let e = Execution {
            occurrence_key: parts[1].to_string(),
            attempt: parts[2].parse().expect("attempt number"),
            run_id: parts[3].to_string(),
        };
        match parts[0] {
            "start" => starts.push(e),
            "done" => completions.push(e),
            other => panic!("malformed execution log line {l:?} ({other})"),
        }
    }
    (starts, completions)
}

#[test]
fn sigkill_mid_run_loses_nothing_and_executes_nothing_twice() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let exec_log = dir.path().join("executions.log");
    let url = fresh_database("wp_crash");
    let spec = ServerSpec::new(
        "crash-node",
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("WAKEPLANE_WORKER_ID", "wrk_crash"),
            ("WAKEPLANE_LEASE_TTL_SECONDS", "2"),
            ("WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS", "15"),
        ],
    );

    let mut server = spec.start_ready(Duration::from_secs(60));
    let script = format!(
        "id=\"$WAKEPLANE_OCCURRENCE_KEY $WAKEPLANE_ATTEMPT $WAKEPLANE_RUN_ID\"; \
         echo \"start $id\" >> {log}; sleep 3; echo \"done $id\" >> {log}",
        log = exec_log.display()
    );
    let schedule_id = server.create_schedule(&json!({
        "name": "crash-every-second",
        "timezone": "UTC",
        "schedule": {"kind": "interval", "every_seconds": 1},
        "target": {"kind": "shell", "command": "/bin/sh", "args": ["-c", script]},
        "policy": {"overlap": "allow", "misfire": "catch_up", "max_concurrency": 5},
        "retry": {"max_attempts": 2, "initial_delay_seconds": 1, "max_delay_seconds": 1}
    }));

    poll("two runs to be running", Duration::from_secs(30), || {
        let running = server
            .api_runs(&schedule_id)
            .iter()
            .filter(|r| r["status"] == "running")
            .count();
        (running >= 2).then_some(())
    });
    server.kill();
    // The database is frozen now: nobody owns these runs any more.
    let at_kill = runs_of(&url, &schedule_id);
    let running_at_kill: Vec<_> = at_kill.iter().filter(|r| r.status == "running").collect();
    let logged_before_kill: HashSet<String> = read_executions(&exec_log)
        .0
        .into_iter()
        .map(|e| e.run_id)
        .collect();
    assert!(
        !running_at_kill.is_empty(),
        "the API showed running runs just before the kill; the database must too"
    );
    println!(
        "killed with {} runs running, {} executions logged",
        running_at_kill.len(),
        logged_before_kill.len()
    );

    // Deliberately let time pass while the node is down: occurrences go overdue.
    std::thread::sleep(Duration::from_secs(2));
    let mut server = spec.start_ready(Duration::from_secs(60));
    let restarted_at = chrono::Utc::now();
    // Deliberately let the restarted node catch up, retry and run for a while.
    std::thread::sleep(Duration::from_secs(6));
    let stop = chrono::Utc::now();
    server.stop_gracefully(Duration::from_secs(60));

    let runs = runs_of(&url, &schedule_id);
    let (executions, completions) = read_executions(&exec_log);
    let by_id: BTreeMap<&str, _> = runs.iter().map(|r| (r.id.as_str(), r)).collect();

    // 1. No attempt executed twice.
    let mut seen = HashSet::new();
    for e in &executions {
        assert!(
            seen.insert((e.occurrence_key.clone(), e.attempt)),
            "attempt {} of {} was executed twice; log: {executions:#?}",
            e.attempt,
            e.occurrence_key
        );
        let row = by_id
            .get(e.run_id.as_str())
            .unwrap_or_else(|| panic!("executed run {} has no row", e.run_id));
        assert_eq!(
            (&row.occurrence_key, row.attempt),
            (&e.occurrence_key, e.attempt),
            "execution identity matches its run row"
        );
    }

    // 2. Nothing lost or skipped: attempt-1 nominal times are consecutive seconds.
    let first_attempts: Vec<_> = runs
        .iter()
        .filter(|r| r.attempt == 1)
        .map(|r| r.nominal_time)
        .collect();
    process::assert_gap_free(
        "attempt-1 occurrences",
        &first_attempts,
        chrono::Duration::seconds(1),
    );
    let skipped: Vec<_> = runs.iter().filter(|r| r.status == "skipped").collect();
    assert!(skipped.is_empty(), "catch_up skipped runs: {skipped:#?}");
    let last = *first_attempts.last().expect("runs");
    assert!(
        last >= restarted_at,
        "the restarted node kept the cadence going past its restart ({restarted_at}), \
         so the grid spans the downtime; last occurrence {last}"
    );
    let settled = stop - chrono::Duration::seconds(2);
    assert!(
        last >= settled,
        "the grid goes on to the stop: last occurrence {last}, stop {stop}"
    );

    // 2b. The command's own log, not only the database: each succeeded run ran to its
    // end, once; what ran to its end either succeeded or died with the server.
    let mut completed: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &completions {
        *completed.entry(c.run_id.as_str()).or_default() += 1;
    }
    for r in runs.iter().filter(|r| r.status == "succeeded") {
        assert_eq!(
            completed.get(r.id.as_str()),
            Some(&1),
            "succeeded run {} ({} attempt {}) is not in the command's own log once",
            r.id,
            r.occurrence_key,
            r.attempt
        );
    }
    for c in &completions {
        let row = by_id
            .get(c.run_id.as_str())
            .unwrap_or_else(|| panic!("completed run {} has no row", c.run_id));
        assert!(
            row.status == "succeeded" || row.error_text.as_deref() == Some(LEASE_EXPIRED),
            "the command completed, yet its run is {row:#?}"
        );
    }

    // 3. Runs running at the kill failed with the lease text and were retried.
    let retry_keys: HashSet<(&str, i32)> = runs
        .iter()
        .map(|r| (r.occurrence_key.as_str(), r.attempt))
        .collect();
    for before in &running_at_kill {
        let after = by_id[before.id.as_str()];
        let expected = if before.attempt < 2 {
            "failed"
        } else {
            "dead_lettered"
        };
        assert_eq!(
            after.status, expected,
            "run running at the kill: {after:#?}"
        );
        assert_eq!(
            after.error_text.as_deref(),
            Some(LEASE_EXPIRED),
            "{after:#?}"
        );
        if before.attempt < 2 {
            assert!(
                retry_keys.contains(&(after.occurrence_key.as_str(), after.attempt + 1)),
                "no retry row for {after:#?}"
            );
        }
    }
    // Nothing else failed: the command always succeeds, so every failure is the crash's.
    let killed_ids: HashSet<&str> = running_at_kill.iter().map(|r| r.id.as_str()).collect();
    for r in runs
        .iter()
        .filter(|r| r.status == "failed" || r.status == "dead_lettered")
    {
        assert!(
            killed_ids.contains(r.id.as_str()),
            "a run that was not running at the kill failed: {r:#?}"
        );
    }
    let interrupted: Vec<_> = runs
        .iter()
        .filter(|r| {
            logged_before_kill.contains(&r.id)
                && r.status == "failed"
                && r.error_text.as_deref() == Some(LEASE_EXPIRED)
        })
        .collect();
    assert!(
        !interrupted.is_empty(),
        "at least one run executing at the kill must have been recovered as failed"
    );
    for r in &interrupted {
        assert!(
            retry_keys.contains(&(r.occurrence_key.as_str(), r.attempt + 1)),
            "interrupted run {} has no attempt {} row",
            r.id,
            r.attempt + 1
        );
    }

    // 4. A clean stop leaves no active run and no lease.
    let active: Vec<_> = runs
        .iter()
        .filter(|r| r.status == "claimed" || r.status == "running")
        .collect();
    assert!(active.is_empty(), "active after graceful stop: {active:#?}");
    assert_eq!(lease_count(&url), 0, "leases left after graceful stop");

    let mut by_status = BTreeMap::new();
    for r in &runs {
        *by_status.entry(r.status.as_str()).or_insert(0) += 1;
    }
    println!(
        "crash test: {} occurrences, {} run rows {by_status:?}, {} executions, \
         {} interrupted and retried, {:.1?} wall time",
        first_attempts.len(),
        runs.len(),
        executions.len(),
        interrupted.len(),
        started.elapsed()
    );
}

/// A server killed outright must not leave a command running behind a run that recovery
/// fails and retries: the kernel kills it with the server (parent-death signal).
#[test]
fn sigkill_takes_running_commands_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database("wp_crash_orphan");
    let spec = ServerSpec::new(
        "orphan-node",
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("WAKEPLANE_WORKER_ID", "wrk_orphan"),
        ],
    );
    let mut server = spec.start_ready(Duration::from_secs(60));
    // A unique argument to find the process by.
    let marker = format!(
        "{}.{}",
        40 + std::process::id() % 50,
        std::process::id() % 997
    );
    let schedule_id = server.create_schedule(&json!({
        "name": "long-command", "timezone": "UTC",
        "schedule": {"kind": "cron", "expr": "0 0 1 1 *"},
        "target": {"kind": "shell", "command": "/bin/sleep", "args": [marker]}
    }));
    let (status, body) = server.post(
        &format!("/v1/schedules/{schedule_id}/trigger"),
        &json!({"reason": "orphan test"}),
    );
    assert_eq!(status, 200, "{body}");
    poll("the command to run", Duration::from_secs(20), || {
        (!process::processes_mentioning(&format!("sleep {marker}")).is_empty()).then_some(())
    });
    server.kill();
    poll(
        "the command to die with the server",
        Duration::from_secs(10),
        || {
            process::processes_mentioning(&format!("sleep {marker}"))
                .is_empty()
                .then_some(())
        },
    );
}
