//! Runs every `wakeplane` client command as a real process against a live in-process server
//! (fresh database per test), checking output, JSON and exit codes (0 ok, 1 API error,
//! 2 usage, 3 unreachable).

#[path = "api/helpers.rs"]
mod helpers;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A finished CLI process.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        &self.stdout
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs the binary synchronously (for plain tests and inside `spawn_blocking`).
fn run_blocking(args: &[String], stdin: Option<&str>, env: &[(String, String)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakeplane"));
    cmd.env_remove("WAKEPLANE_SERVER")
        .env_remove("WAKEPLANE_TOKEN")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn wakeplane");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait for wakeplane");
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the CLI against `server` off the actix thread, so the in-process server keeps
/// serving while we wait.
async fn wp_full(server: &str, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Out {
    let mut all = vec!["--server".to_string(), server.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let stdin = stdin.map(str::to_string);
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    actix_web::rt::task::spawn_blocking(move || run_blocking(&all, stdin.as_deref(), &env))
        .await
        .expect("CLI task")
}

async fn wp(server: &str, args: &[&str]) -> Out {
    wp_full(server, args, None, &[]).await
}

async fn wp_stdin(server: &str, args: &[&str], stdin: &str) -> Out {
    wp_full(server, args, Some(stdin), &[]).await
}

fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect();
    n.sort();
    n
}

const TWO_DOCS: &str = "\
# two schedules in one file
name: alpha
timezone: UTC
schedule: {kind: cron, expr: \"0 2 * * *\"}
target: {kind: workflow, workflow_id: builtin.noop}
---
name: beta
timezone: Europe/Berlin
schedule:
  kind: interval
  every_seconds: 3600
target:
  kind: workflow
  workflow_id: builtin.noop
  input: {n: 1}
";

#[actix_web::test]
async fn schedule_commands_round_trip() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    let dir = tempfile::tempdir().unwrap();

    // Create: a two-document YAML file, a JSON file, and JSON on stdin.
    let yaml = dir.path().join("two.yaml");
    std::fs::write(&yaml, TWO_DOCS).unwrap();
    let out = wp(s, &["schedule", "create", "-f", yaml.to_str().unwrap()]).await;
    let text = out.ok();
    assert!(
        text.contains("created sch_") && text.contains(" alpha ") && text.contains(" beta "),
        "{text}"
    );

    let json_file = dir.path().join("gamma.json");
    std::fs::write(
        &json_file,
        r#"{"name": "gamma", "timezone": "UTC", "schedule": {"kind": "cron", "expr": "*/5 * * * *"},
            "target": {"kind": "workflow", "workflow_id": "builtin.noop"}}"#,
    )
    .unwrap();
    let gamma = wp(
        s,
        &[
            "schedule",
            "create",
            "-f",
            json_file.to_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .await
    .json();
    assert_eq!(gamma["name"], "gamma");
    assert_eq!(
        gamma["policy"]["overlap"], "forbid",
        "defaults filled: {gamma}"
    );
    let gamma_id = gamma["id"].as_str().unwrap().to_string();

    let delta = r#"{"name": "delta", "timezone": "UTC", "schedule": {"kind": "cron", "expr": "0 3 * * *"},
        "target": {"kind": "workflow", "workflow_id": "builtin.noop"}}"#;
    wp_stdin(s, &["schedule", "create", "-f", "-"], delta)
        .await
        .ok();

    // List: a table with a header and every name; JSON parses; paging.
    let table = wp(s, &["schedule", "list"]).await;
    let table = table.ok();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("NAME") && header.contains("NEXT RUN"),
        "{table}"
    );
    for n in ["alpha", "beta", "gamma", "delta"] {
        assert!(table.contains(n), "{n} missing from:\n{table}");
    }
    let list = wp(s, &["schedule", "list", "-o", "json"]).await.json();
    assert_eq!(names(&list), ["alpha", "beta", "delta", "gamma"]);

    let page = wp(s, &["schedule", "list", "--limit", "3", "-o", "json"])
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();
    let rest = wp(
        s,
        &[
            "schedule", "list", "--limit", "3", "--cursor", &cursor, "-o", "json",
        ],
    )
    .await
    .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    let all = wp(
        s,
        &["schedule", "list", "--limit", "3", "--all", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(names(&all), ["alpha", "beta", "delta", "gamma"]);
    let more = wp(s, &["schedule", "list", "--limit", "3"]).await;
    assert!(
        more.ok().lines().count() == 4 && more.stderr.contains("--all"),
        "{more:#?}"
    );

    // Get, by id and by name.
    let got = wp(s, &["schedule", "get", &gamma_id]).await;
    let got = got.ok();
    assert!(
        got.contains("gamma") && got.contains("cron */5 * * * *"),
        "{got}"
    );
    assert!(got.contains("overlap=forbid"), "{got}");
    let beta = wp(s, &["schedule", "get", "beta", "-o", "json"])
        .await
        .json();
    assert_eq!(beta["schedule"]["every_seconds"], 3600);

    // Pause and resume (by id), with the --enabled filter.
    let paused = wp(s, &["schedule", "pause", &gamma_id]).await;
    assert!(
        paused.ok().starts_with(&format!("paused {gamma_id}")),
        "{paused:#?}"
    );
    let disabled = wp(s, &["schedule", "list", "--enabled", "false", "-o", "json"])
        .await
        .json();
    assert_eq!(names(&disabled), ["gamma"]);
    let enabled = wp(s, &["schedule", "list", "--enabled", "true", "-o", "json"])
        .await
        .json();
    assert_eq!(names(&enabled), ["alpha", "beta", "delta"]);
    assert_eq!(
        wp(s, &["schedule", "get", &gamma_id, "-o", "json"])
            .await
            .json()["enabled"],
        false
    );
    let bad_filter = wp(s, &["schedule", "list", "--enabled", "maybe"]).await;
    assert_eq!(bad_filter.code, 2, "{bad_filter:#?}");
    let resumed = wp(s, &["schedule", "resume", "gamma", "-o", "json"])
        .await
        .json();
    assert_eq!(resumed["enabled"], true);
    assert!(resumed["next_run_at"].is_string(), "{resumed}");

    // Upcoming.
    let upcoming = wp(s, &["schedule", "upcoming", "alpha", "--count", "2"]).await;
    assert_eq!(upcoming.ok().lines().count(), 2, "{upcoming:#?}");

    // Trigger: --reason is required (usage error, nothing sent).
    let no_reason = wp(s, &["schedule", "trigger", &gamma_id]).await;
    assert_eq!(no_reason.code, 2, "{no_reason:#?}");
    assert!(no_reason.stderr.contains("--reason"), "{no_reason:#?}");
    let runs = wp(s, &["run", "list", "-o", "json"]).await.json();
    assert_eq!(runs["items"].as_array().unwrap().len(), 0);
    let blank = wp(s, &["schedule", "trigger", &gamma_id, "--reason", "  "]).await;
    assert_eq!(blank.code, 1, "{blank:#?}");
    assert!(blank.stderr.contains("bad_request"), "{blank:#?}");
    let triggered = wp(
        s,
        &["schedule", "trigger", &gamma_id, "--reason", "cli test"],
    )
    .await;
    assert!(
        triggered.ok().starts_with("triggered run run_"),
        "{triggered:#?}"
    );

    // Delete; then it is gone (exit 1, not_found).
    let deleted = wp(s, &["schedule", "delete", &gamma_id]).await;
    assert_eq!(deleted.ok().trim(), format!("deleted {gamma_id}"));
    let gone = wp(s, &["schedule", "get", &gamma_id]).await;
    assert_eq!(gone.code, 1, "{gone:#?}");
    assert!(gone.stderr.starts_with("error: not_found:"), "{gone:#?}");
    let gone_by_name = wp(s, &["schedule", "delete", "gamma"]).await;
    assert_eq!(gone_by_name.code, 1, "{gone_by_name:#?}");
    assert!(
        gone_by_name.stderr.contains("\"gamma\""),
        "{gone_by_name:#?}"
    );
}

#[actix_web::test]
async fn run_list_get_and_receipts_after_a_triggered_echo() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    let manifest = examples_dir().join("workflow-sync.yaml");
    wp(s, &["schedule", "create", "-f", manifest.to_str().unwrap()])
        .await
        .ok();

    let trig = wp(
        s,
        &[
            "schedule",
            "trigger",
            "workflow-sync",
            "--reason",
            "receipts test",
            "-o",
            "json",
        ],
    )
    .await
    .json();
    let run_id = trig["run_id"].as_str().expect("run_id").to_string();
    let schedule_id = trig["schedule_id"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = wp(s, &["run", "get", &run_id, "-o", "json"]).await.json();
        if run["status"] == "succeeded" {
            assert_eq!(run["trigger_reason"], "receipts test");
            break;
        }
        assert!(Instant::now() < deadline, "run did not succeed: {run}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    let detail = wp(s, &["run", "get", &run_id]).await;
    let detail = detail.ok();
    assert!(
        detail.contains("status:") && detail.contains("succeeded"),
        "{detail}"
    );
    assert!(detail.contains("receipts test"), "{detail}");

    let table = wp(s, &["run", "list"]).await;
    let table = table.ok();
    assert!(
        table.starts_with("ID") && table.contains(&run_id) && table.contains("succeeded"),
        "{table}"
    );
    let filtered = wp(
        s,
        &[
            "run",
            "list",
            "--schedule",
            "workflow-sync",
            "--status",
            "succeeded",
            "-o",
            "json",
        ],
    )
    .await
    .json();
    let items = filtered["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{filtered}");
    assert_eq!(items[0]["id"], run_id.as_str());
    let by_id = wp(
        s,
        &[
            "run",
            "list",
            "--schedule",
            &schedule_id,
            "--status",
            "failed",
            "--limit",
            "5",
            "-o",
            "json",
        ],
    )
    .await
    .json();
    assert_eq!(by_id["items"].as_array().unwrap().len(), 0);
    let bad_status = wp(s, &["run", "list", "--status", "exploded"]).await;
    assert_eq!(bad_status.code, 2, "{bad_status:#?}");

    let receipts = wp(s, &["run", "receipts", &run_id]).await;
    let receipts = receipts.ok();
    assert!(receipts.contains("== workflow_result rcp_"), "{receipts}");
    assert!(receipts.contains("crm"), "the echoed input: {receipts}");
    let rj = wp(s, &["run", "receipts", &run_id, "-o", "json"])
        .await
        .json();
    assert!(!rj["items"].as_array().unwrap().is_empty(), "{rj}");

    let missing = wp(s, &["run", "get", "run_01aaaaaaaaaaaaaaaaaaaaaaaa"]).await;
    assert_eq!(missing.code, 1, "{missing:#?}");
    assert!(missing.stderr.contains("not_found"), "{missing:#?}");
}

#[actix_web::test]
async fn status_shows_the_server() {
    let app = helpers::spawn_app().await;
    let table = wp(&app.address, &["status"]).await;
    let table = table.ok();
    assert!(
        table.contains("service:") && table.contains("wakeplane"),
        "{table}"
    );
    assert!(table.contains("runs.pending:"), "{table}");
    let json = wp(&app.address, &["status", "-o", "json"]).await.json();
    assert_eq!(json["service"], "wakeplane");
}

#[actix_web::test]
async fn api_errors_print_field_details_and_exit_1() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    let bad = r#"{"name": "bad", "timezone": "Mars/Olympus", "schedule": {"kind": "cron", "expr": "nope"},
        "target": {"kind": "workflow", "workflow_id": "builtin.noop"}}"#;
    let out = wp_stdin(s, &["schedule", "create", "-f", "-"], bad).await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.starts_with("error: validation_failed: "),
        "{out:#?}"
    );
    assert!(out.stderr.contains("\n  timezone: "), "{out:#?}");
    assert!(out.stderr.contains("\n  schedule.expr: "), "{out:#?}");

    // Several documents: each failure is named, the others are still created.
    let two = format!("name: ok2\ntimezone: UTC\nschedule: {{kind: cron, expr: \"0 1 * * *\"}}\ntarget: {{kind: workflow, workflow_id: builtin.noop}}\n---\n{bad}\n");
    let out = wp_stdin(s, &["schedule", "create", "-f", "-", "-o", "json"], &two).await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .contains("error: creating \"bad\" (<stdin> (document 2)): validation_failed"),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains("1 of 2 schedule(s) not created"),
        "{out:#?}"
    );
    let created: Value = serde_json::from_str(&out.stdout).expect("JSON array of the created");
    assert_eq!(created[0]["name"], "ok2");

    // A duplicate name is the API's conflict.
    let ok = r#"{"name": "dup", "timezone": "UTC", "schedule": {"kind": "cron", "expr": "0 1 * * *"},
        "target": {"kind": "workflow", "workflow_id": "builtin.noop"}}"#;
    wp_stdin(s, &["schedule", "create", "-f", "-"], ok)
        .await
        .ok();
    let dup = wp_stdin(s, &["schedule", "create", "-f", "-"], ok).await;
    assert_eq!(dup.code, 1, "{dup:#?}");
    assert!(dup.stderr.contains("conflict: "), "{dup:#?}");

    // Input problems are usage errors (2) and send nothing.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "name: [unclosed\n").unwrap();
    let out = wp(s, &["schedule", "create", "-f", broken.to_str().unwrap()]).await;
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stderr.contains("invalid YAML"), "{out:#?}");
    let scalar = wp_stdin(s, &["schedule", "create", "-f", "-"], "just a string\n").await;
    assert_eq!(scalar.code, 2, "{scalar:#?}");
    let missing = wp(s, &["schedule", "create", "-f", "/nonexistent/x.yaml"]).await;
    assert_eq!(missing.code, 2, "{missing:#?}");
    let bad_server = wp_full("not-a-url", &["status"], None, &[]).await;
    assert_eq!(bad_server.code, 2, "{bad_server:#?}");
    let list = wp(s, &["schedule", "list", "-o", "json"]).await.json();
    assert_eq!(names(&list), ["dup", "ok2"]);
}

#[test]
fn connection_refused_exits_3_with_a_clear_message() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["status"],
        vec!["schedule", "list"],
        vec!["apply", "-f", "examples", "--dry-run"],
    ] {
        let mut all = vec!["--server".to_string(), server.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        let out = run_blocking(&all, None, &[]);
        assert_eq!(out.code, 3, "{out:#?}");
        assert!(
            out.stderr.contains(&format!(
                "could not connect to the wakeplane server at {server}"
            )),
            "{out:#?}"
        );
        assert!(out.stderr.to_lowercase().contains("refused"), "{out:#?}");
    }
    // The environment variable is honoured too.
    let out = run_blocking(
        &["status".to_string()],
        None,
        &[("WAKEPLANE_SERVER".to_string(), server.clone())],
    );
    assert_eq!(out.code, 3, "{out:#?}");
}

/// Copies the three shipped examples into a fresh directory.
fn copy_examples(dir: &Path) {
    for f in [
        "http-health-check.yaml",
        "shell-backup.yaml",
        "workflow-sync.yaml",
    ] {
        std::fs::copy(examples_dir().join(f), dir.join(f)).unwrap();
    }
}

#[actix_web::test]
async fn apply_plans_creates_updates_and_prunes() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    let dir = tempfile::tempdir().unwrap();
    copy_examples(dir.path());
    // Not a manifest: ignored.
    std::fs::write(dir.path().join("README.txt"), "not yaml: [").unwrap();
    let d = dir.path().to_str().unwrap();

    // Fresh server: everything is a create, and a dry run changes nothing.
    let plan = wp(s, &["apply", "-f", d, "--dry-run"]).await;
    let plan = plan.ok();
    for n in ["http-health-check", "shell-backup", "workflow-sync"] {
        assert!(plan.contains(&format!("create {n}\n")), "{plan}");
    }
    assert!(
        plan.contains("3 to create, 0 to update, 0 unchanged, 0 to delete"),
        "{plan}"
    );
    assert!(plan.contains("nothing was changed"), "{plan}");
    assert!(names(&wp(s, &["schedule", "list", "-o", "json"]).await.json()).is_empty());

    let applied = wp(s, &["apply", "-f", d]).await;
    let applied = applied.ok();
    assert!(applied.contains("created workflow-sync (sch_"), "{applied}");
    assert!(
        applied.contains("applied: 3 created, 0 updated, 0 unchanged, 0 deleted, 0 failed"),
        "{applied}"
    );
    assert_eq!(
        names(&wp(s, &["schedule", "list", "-o", "json"]).await.json()),
        ["http-health-check", "shell-backup", "workflow-sync"]
    );
    let backup = wp(s, &["schedule", "get", "shell-backup", "-o", "json"])
        .await
        .json();
    assert_eq!(backup["timezone"], "Europe/Berlin");
    assert_eq!(backup["retry"]["max_attempts"], 3);
    assert_eq!(
        backup["target"]["args"][1],
        "tar czf /tmp/wakeplane-backup-$(date +%F).tgz /etc/hostname"
    );

    // Applied again: all unchanged (server defaults and normalisation are not changes).
    let again = wp(s, &["apply", "-f", d, "--dry-run"]).await;
    let again = again.ok();
    assert!(
        again.contains("0 to create, 0 to update, 3 unchanged"),
        "{again}"
    );

    // One change: exactly one update, naming the changed field.
    let sync = dir.path().join("workflow-sync.yaml");
    let original = std::fs::read_to_string(&sync).unwrap();
    std::fs::write(&sync, original.replace("*/15 * * * *", "*/5 * * * *")).unwrap();
    let plan = wp(s, &["apply", "-f", d, "--dry-run"]).await;
    let plan = plan.ok();
    assert!(
        plan.contains(
            "update workflow-sync\n    schedule.expr: \"*/15 * * * *\" -> \"*/5 * * * *\"\n"
        ),
        "{plan}"
    );
    assert!(plan.contains("unchanged http-health-check\n"), "{plan}");
    assert!(plan.contains("unchanged shell-backup\n"), "{plan}");
    assert!(
        plan.contains("0 to create, 1 to update, 2 unchanged"),
        "{plan}"
    );

    // Omitting the policy means the default policy: that is a change too.
    let no_policy: String = std::fs::read_to_string(&sync)
        .unwrap()
        .replace("policy:\n  overlap: queue_latest   # if a sync is still running, keep only the newest pending one\n  timeout_seconds: 300\n", "");
    assert!(
        !no_policy.contains("queue_latest"),
        "the example changed shape: {no_policy}"
    );
    let single = tempfile::tempdir().unwrap();
    let single_file = single.path().join("sync.yaml");
    std::fs::write(&single_file, &no_policy).unwrap();
    let plan = wp(
        s,
        &["apply", "-f", single_file.to_str().unwrap(), "--dry-run"],
    )
    .await;
    let plan = plan.ok();
    assert!(
        plan.contains("    policy.overlap: \"queue_latest\" -> \"forbid\"\n"),
        "{plan}"
    );

    let applied = wp(s, &["apply", "-f", d]).await;
    let applied = applied.ok();
    assert!(applied.contains("updated workflow-sync (sch_"), "{applied}");
    assert!(
        applied.contains("0 created, 1 updated, 2 unchanged, 0 deleted, 0 failed"),
        "{applied}"
    );
    let sync_now = wp(s, &["schedule", "get", "workflow-sync", "-o", "json"])
        .await
        .json();
    assert_eq!(sync_now["schedule"]["expr"], "*/5 * * * *");
    assert_eq!(sync_now["policy"]["overlap"], "queue_latest");

    // Prune: a schedule no manifest names is deleted only with --prune.
    let stray = r#"{"name": "stray", "timezone": "UTC", "schedule": {"kind": "cron", "expr": "0 4 * * *"},
        "target": {"kind": "workflow", "workflow_id": "builtin.noop"}}"#;
    wp_stdin(s, &["schedule", "create", "-f", "-"], stray)
        .await
        .ok();
    let plan = wp(s, &["apply", "-f", d, "--dry-run"]).await;
    assert!(!plan.ok().contains("stray"), "{plan:#?}");
    let plan = wp(s, &["apply", "-f", d, "--dry-run", "--prune"]).await;
    let plan = plan.ok();
    assert!(plan.contains("delete stray\n"), "{plan}");
    assert!(
        plan.contains("0 to create, 0 to update, 3 unchanged, 1 to delete"),
        "{plan}"
    );
    let plan_json = wp(s, &["apply", "-f", d, "--dry-run", "--prune", "-o", "json"])
        .await
        .json();
    assert_eq!(plan_json["dry_run"], true);
    let actions: Vec<&str> = plan_json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["unchanged", "unchanged", "unchanged", "delete"]);
    assert!(
        names(&wp(s, &["schedule", "list", "-o", "json"]).await.json())
            .contains(&"stray".to_string())
    );

    let pruned = wp(s, &["apply", "-f", d, "--prune"]).await;
    let pruned = pruned.ok();
    assert!(pruned.contains("deleted stray (sch_"), "{pruned}");
    assert_eq!(
        names(&wp(s, &["schedule", "list", "-o", "json"]).await.json()),
        ["http-health-check", "shell-backup", "workflow-sync"]
    );
}

#[actix_web::test]
async fn apply_rejects_duplicate_names_before_anything_is_applied() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    let dir = tempfile::tempdir().unwrap();
    copy_examples(dir.path());
    std::fs::write(
        dir.path().join("zz-copy.yml"),
        TWO_DOCS.replace("name: beta", "name: workflow-sync"),
    )
    .unwrap();
    let out = wp(s, &["apply", "-f", dir.path().to_str().unwrap()]).await;
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        out.stderr
            .contains("duplicate schedule name \"workflow-sync\""),
        "{out:#?}"
    );
    assert!(out.stderr.contains("zz-copy.yml (document 2)"), "{out:#?}");
    assert!(names(&wp(s, &["schedule", "list", "-o", "json"]).await.json()).is_empty());
}

#[actix_web::test]
async fn apply_reports_each_failed_step_and_exits_1() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    let manifests = format!(
        "{TWO_DOCS}---\nname: broken\ntimezone: UTC\nschedule: {{kind: cron, expr: \"61 * * * *\"}}\ntarget: {{kind: workflow, workflow_id: builtin.noop}}\n"
    );
    let out = wp_stdin(s, &["apply", "-f", "-"], &manifests).await;
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .contains("error: create broken [<stdin> (document 3)] failed: validation_failed"),
        "{out:#?}"
    );
    assert!(out.stderr.contains("\n  schedule.expr: "), "{out:#?}");
    assert!(
        out.stderr
            .contains("apply: 1 step(s) failed: create broken"),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .contains("2 created, 0 updated, 0 unchanged, 0 deleted, 1 failed"),
        "{out:#?}"
    );
    assert_eq!(
        names(&wp(s, &["schedule", "list", "-o", "json"]).await.json()),
        ["alpha", "beta"]
    );
}

/// Answers one HTTP request with an empty schedule list and returns the request's head.
fn capture_one_request() -> (String, std::thread::JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"items":[],"next_cursor":null}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(reply.as_bytes()).unwrap();
        String::from_utf8_lossy(&head).to_lowercase()
    });
    (address, handle)
}

#[actix_web::test]
async fn token_is_sent_as_a_bearer_header() {
    // Against the real server (auth not configured): still works.
    let app = helpers::spawn_app().await;
    let out = wp(&app.address, &["--token", "s3cret", "schedule", "list"]).await;
    assert_eq!(out.ok().trim(), "No schedules.");
    let out = wp_full(
        &app.address,
        &["schedule", "list"],
        None,
        &[("WAKEPLANE_TOKEN", "s3cret")],
    )
    .await;
    out.ok();

    // And it really is on the wire, from the flag or the environment; absent otherwise.
    for (args, env, expect) in [
        (
            vec!["schedule", "list", "--token", "s3cret"],
            vec![],
            Some("authorization: bearer s3cret"),
        ),
        (
            vec!["schedule", "list"],
            vec![("WAKEPLANE_TOKEN", "from-env")],
            Some("authorization: bearer from-env"),
        ),
        (vec!["schedule", "list"], vec![], None),
    ] {
        let (address, handle) = capture_one_request();
        let out = wp_full(&address, &args, None, &env).await;
        out.ok();
        let head = actix_web::rt::task::spawn_blocking(move || handle.join().unwrap())
            .await
            .unwrap();
        assert!(head.starts_with("get /v1/schedules "), "{head}");
        match expect {
            Some(h) => assert!(head.contains(&format!("\r\n{h}\r\n")), "{head}"),
            None => assert!(!head.contains("authorization"), "{head}"),
        }
    }
}

/// Schedules of every shape, with labels, to export.
async fn varied_schedules(app: &helpers::TestApp) {
    use serde_json::json;
    for body in [
        json!({"name": "exp-cron", "timezone": "Europe/Berlin",
            "schedule": {"kind": "cron", "expr": "30 2 * * *"},
            "target": {"kind": "shell", "command": "/bin/echo", "args": ["hi"]},
            "retry": {"max_attempts": 3}, "labels": {"team": "data", "env": "prod"},
            "description": "nightly echo"}),
        json!({"name": "exp-interval", "timezone": "UTC", "enabled": false,
            "schedule": {"kind": "interval", "every_seconds": 600},
            "target": {"kind": "http", "method": "post", "url": "http://127.0.0.1:9/x",
                "headers": {"x-a": "b"}, "body": {"k": [1, 2]}},
            "policy": {"overlap": "queue_latest", "timeout_seconds": 20},
            "labels": {"team": "ml"}}),
        json!({"name": "exp-once", "timezone": "UTC",
            "schedule": {"kind": "once", "at": "2099-06-01T09:00:00-07:00"},
            "target": {"kind": "workflow", "workflow_id": "builtin.echo", "input": {"a": 1}},
            "start_at": "2030-01-01T00:00:00Z", "labels": {"team": "data", "tier": ""}}),
    ] {
        app.create_schedule(&body).await;
    }
}

#[actix_web::test]
async fn export_then_apply_reports_every_schedule_unchanged() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    varied_schedules(&app).await;
    let dir = tempfile::tempdir().unwrap();

    let yaml = wp(s, &["export"]).await;
    let yaml = yaml.ok().to_string();
    assert!(
        !yaml.contains("stats")
            && !yaml.contains("next_run_at")
            && !yaml.lines().any(|l| l.starts_with("id:")),
        "{yaml}"
    );
    assert!(
        !yaml.contains("max_concurrency"),
        "defaults are omitted: {yaml}"
    );
    let file = dir.path().join("all.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let plan = wp(s, &["apply", "-f", file.to_str().unwrap(), "--dry-run"]).await;
    let plan = plan.ok();
    assert!(
        plan.contains("0 to create, 0 to update, 3 unchanged, 0 to delete"),
        "{plan}\n{yaml}"
    );

    let json = wp(s, &["export", "-o", "json"]).await;
    let json = json.ok().to_string();
    let plan = wp_stdin(s, &["apply", "-f", "-", "--dry-run"], &json).await;
    assert!(
        plan.ok().contains("0 to create, 0 to update, 3 unchanged"),
        "{json}"
    );

    // Into an empty server, the export recreates the same definitions.
    let other = helpers::spawn_app().await;
    let o = other.address.as_str();
    wp(o, &["apply", "-f", file.to_str().unwrap()]).await.ok();
    let again = wp(o, &["export"]).await;
    assert_eq!(again.ok(), yaml);

    let data = wp(s, &["export", "-l", "team=data", "-o", "json"])
        .await
        .json();
    let names: Vec<&str> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["exp-cron", "exp-once"]);
    let bad = wp(s, &["export", "-l", "team in data"]).await;
    assert_eq!(bad.code, 2, "{bad:#?}");
    assert!(
        bad.stderr.contains("expected '(' to open a set of values"),
        "{bad:#?}"
    );
}

#[actix_web::test]
async fn apply_prune_with_a_selector_deletes_only_what_it_matches() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    varied_schedules(&app).await;
    let dir = tempfile::tempdir().unwrap();
    // The data team's manifests name only exp-cron; a stray ml manifest rides along.
    let manifests = "\
name: exp-cron
timezone: Europe/Berlin
schedule: {kind: cron, expr: \"30 2 * * *\"}
target: {kind: shell, command: /bin/echo, args: [hi]}
retry: {max_attempts: 3}
labels: {team: data, env: prod}
description: nightly echo
---
name: ml-new
timezone: UTC
schedule: {kind: cron, expr: \"0 3 * * *\"}
target: {kind: workflow, workflow_id: builtin.noop}
labels: {team: ml}
";
    let file = dir.path().join("data.yaml");
    std::fs::write(&file, manifests).unwrap();
    let f = file.to_str().unwrap();
    let plan = wp(
        s,
        &["apply", "-f", f, "--prune", "-l", "team=data", "--dry-run"],
    )
    .await;
    let plan = plan.ok();
    assert!(plan.contains("unchanged exp-cron\n"), "{plan}");
    assert!(plan.contains("delete exp-once\n"), "{plan}");
    assert!(
        !plan.contains("exp-interval"),
        "another team's schedule is never touched: {plan}"
    );
    assert!(
        !plan.contains("ml-new"),
        "manifests the selector does not match are left out: {plan}"
    );
    let applied = wp(s, &["apply", "-f", f, "--prune", "-l", "team=data"]).await;
    assert!(applied
        .ok()
        .contains("0 created, 0 updated, 1 unchanged, 1 deleted, 0 failed"));
    let left = wp(s, &["schedule", "list", "-o", "json"]).await.json();
    assert_eq!(names(&left), ["exp-cron", "exp-interval"]);

    // The table shows labels and the last status; -l filters on the server.
    let table = wp(s, &["schedule", "list", "-l", "team in (ml)"]).await;
    let table = table.ok();
    assert!(
        table.contains("LABELS") && table.contains("LAST STATUS"),
        "{table}"
    );
    assert!(
        table.contains("team=ml") && !table.contains("exp-cron"),
        "{table}"
    );
    let bad = wp(s, &["schedule", "list", "-l", "team="]).await;
    assert_eq!(bad.code, 0, "an empty value is a valid selector: {bad:#?}");
    let bad = wp(s, &["schedule", "list", "-l", "a b"]).await;
    assert_eq!(bad.code, 2, "{bad:#?}");
}

#[actix_web::test]
async fn schedule_backfill_dry_run_backfill_and_pause_note() {
    let app = helpers::spawn_app().await;
    let s = app.address.as_str();
    let mut body = helpers::schedule_body("ny-nightly");
    body["timezone"] = serde_json::json!("America/New_York");
    body["schedule"] = serde_json::json!({"kind": "cron", "expr": "30 2 * * *"});
    app.create_schedule(&body).await;
    // 2021-03-14: 02:30 does not exist in New York.
    let window = [
        "--from",
        "2021-03-12T00:00:00-05:00",
        "--to",
        "2021-03-16T00:00:00-04:00",
    ];
    let mut args = vec!["schedule", "backfill", "ny-nightly"];
    args.extend(window);
    let mut dry = args.clone();
    dry.push("--dry-run");
    let planned = wp(s, &dry).await;
    assert_eq!(
        planned.ok().lines().collect::<Vec<_>>(),
        [
            "2021-03-12T07:30:00Z",
            "2021-03-13T07:30:00Z",
            "2021-03-15T06:30:00Z"
        ],
        "{planned:#?}"
    );
    let runs = wp(s, &["run", "list", "-o", "json"]).await.json();
    assert_eq!(
        runs["items"].as_array().unwrap().len(),
        0,
        "a dry run creates nothing"
    );

    let no_reason = wp(s, &args).await;
    assert_eq!(no_reason.code, 2, "{no_reason:#?}");
    let mut real = args.clone();
    real.extend(["--reason", "cli backfill"]);
    let done = wp(s, &real).await;
    assert!(
        done.ok()
            .contains("3 runs created, 0 occurrences already existed"),
        "{done:#?}"
    );
    real.extend(["-o", "json"]);
    let again = wp(s, &real).await.json();
    assert_eq!(
        (again["created"].clone(), again["existing"].clone()),
        (0.into(), 3.into()),
        "{again}"
    );
    let future = wp(
        s,
        &[
            "schedule",
            "backfill",
            "ny-nightly",
            "--from",
            "2021-03-12T00:00:00Z",
            "--to",
            "2999-01-01T00:00:00Z",
            "--reason",
            "x",
        ],
    )
    .await;
    assert_eq!(future.code, 1, "{future:#?}");
    assert!(future.stderr.contains("end"), "{future:#?}");

    let paused = wp(
        s,
        &["schedule", "pause", "ny-nightly", "--note", "DST audit"],
    )
    .await;
    assert!(paused.ok().starts_with("paused sch_"), "{paused:#?}");
    let shown = wp(s, &["schedule", "get", "ny-nightly"]).await;
    assert!(
        shown
            .ok()
            .lines()
            .any(|l| l.starts_with("pause_note") && l.contains("DST audit")),
        "{shown:#?}"
    );
}
