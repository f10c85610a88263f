//! Limited schedules across a crash (issue 11): a real `wakeplane serve` process runs a
//! `max_occurrences: 3` schedule, is SIGKILLed after the first execution and started
//! again; the target's own log (the outside witness) shows exactly three executions, the
//! database exactly three occurrences, and the jittered due times written before and
//! after the restart follow the occurrence key alone.

#[path = "process/mod.rs"]
mod process;

use std::time::Duration;

use process::{fresh_database, poll, runs_of, ServerSpec};
use serde_json::json;

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// FNV-1a 64 as published: the outside witness of the server's jitter.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn max_occurrences_three_fires_exactly_three_times_across_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let witness = dir.path().join("executions.log");
    let url = fresh_database("wp_limited");
    let spec = ServerSpec::new(
        "limited-node",
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("WAKEPLANE_WORKER_ID", "wrk_limited"),
            ("WAKEPLANE_LEASE_TTL_SECONDS", "2"),
        ],
    );
    let mut server = spec.start_ready(Duration::from_secs(60));
    let script = format!(
        "echo \"$WAKEPLANE_OCCURRENCE_KEY\" >> {}",
        witness.display()
    );
    let schedule_id = server.create_schedule(&json!({
        "name": "three-times",
        "timezone": "UTC",
        "schedule": {"kind": "interval", "every_seconds": 2},
        "target": {"kind": "shell", "command": "/bin/sh", "args": ["-c", script]},
        "policy": {"overlap": "allow", "misfire": "catch_up", "max_concurrency": 3, "jitter_seconds": 1},
        "max_occurrences": 3
    }));

    poll("the first execution", Duration::from_secs(30), || {
        (!lines(&witness).is_empty()).then_some(())
    });
    server.kill();
    let remaining_at_kill = process::runs_of(&url, &schedule_id).len();
    assert!(
        remaining_at_kill < 3,
        "killed too late to prove anything: {remaining_at_kill} occurrences"
    );
    // Down long enough for an occurrence or two to go overdue.
    std::thread::sleep(Duration::from_secs(3));
    let mut server = spec.start_ready(Duration::from_secs(60));

    let finished = poll("the schedule to finish", Duration::from_secs(30), || {
        let (status, s) = server.get(&format!("/v1/schedules/{schedule_id}"));
        (status == 200 && s["occurrences_remaining"] == 0 && s["actor"]["state"] == "finished")
            .then_some(s)
    });
    assert_eq!(
        finished["next_run_at"],
        serde_json::Value::Null,
        "{finished}"
    );
    poll(
        "three executions in the witness log",
        Duration::from_secs(30),
        || (lines(&witness).len() >= 3).then_some(()),
    );
    // Three more periods: a fourth occurrence would have fired by now.
    std::thread::sleep(Duration::from_secs(6));
    server.stop_gracefully(Duration::from_secs(30));

    let executed = lines(&witness);
    assert_eq!(
        executed.len(),
        3,
        "the target ran {} times: {executed:#?}\n{}",
        executed.len(),
        server.log_tail(40)
    );
    let mut distinct = executed.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "an occurrence ran twice: {executed:#?}");
    let runs = runs_of(&url, &schedule_id);
    let occurrences: Vec<_> = runs.iter().filter(|r| r.attempt == 1).collect();
    assert_eq!(occurrences.len(), 3, "{runs:#?}");
    for r in &occurrences {
        assert!(
            executed.contains(&r.occurrence_key),
            "{} never ran",
            r.occurrence_key
        );
        let offset = (r.due_time - r.nominal_time).num_milliseconds();
        assert_eq!(
            offset as u64,
            fnv1a64(r.occurrence_key.as_bytes()) % 1001,
            "jitter of {} is the key's, before and after the restart",
            r.occurrence_key
        );
    }
}
