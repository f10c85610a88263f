//! Targets are a privilege boundary (issue 14), proved on the real `wakeplane serve`
//! binary over real HTTP against real PostgreSQL:
//!
//! - a shell target that reads the server's `/proc/<pid>/environ` (and `$PPID`'s) finds
//!   no API token and no database password in its receipts: as root with
//!   `WAKEPLANE_SHELL_USER` (the command's `id -u` is that user, not 0), and on a server
//!   running as an ordinary user (same uid as its commands: only non-dumpability stops it);
//! - `WAKEPLANE_API_TOKENS_FILE` and `DATABASE_URL_FILE` work in place of the variables;
//! - `WAKEPLANE_SHELL_TARGETS=off` refuses shell targets at validation and fails an existing
//!   shell schedule's run with a clear `error_text`;
//! - HTTP targets to 169.254.169.254 and to a name resolving to a denied address fail,
//!   naming the rule, without contacting the address.

#[path = "process/mod.rs"]
mod process;

use std::time::Duration;

use process::{fresh_database, ordinary_user, poll, Server, ServerSpec};
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-sentinel";
const TOKENS: &str = "admin-token-sentinel:admin,operator-token-sentinel:operator";
const DB_PASSWORD: &str = "db-password-sentinel";

fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

/// `method path` with a bearer token → (status, JSON body or Null).
fn api(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut req = client.request(method, format!("{}{path}", server.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req
        .send()
        .unwrap_or_else(|e| panic!("{path} on {}: {e}", server.name));
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn create(server: &Server, token: Option<&str>, body: &Value) -> String {
    let (s, b) = api(
        server,
        reqwest::Method::POST,
        "/v1/schedules",
        token,
        Some(body),
    );
    assert_eq!(s, 201, "create: {b}");
    b["id"].as_str().expect("id").to_string()
}

/// Triggers a run and waits for its terminal row; returns (run, stdout, stderr).
fn run_once(server: &Server, token: Option<&str>, schedule_id: &str) -> (Value, String, String) {
    let (s, b) = api(
        server,
        reqwest::Method::POST,
        &format!("/v1/schedules/{schedule_id}/trigger"),
        token,
        Some(&json!({"reason": "security test"})),
    );
    assert_eq!(s, 200, "trigger: {b}");
    let run_id = b["run_id"].as_str().expect("run id").to_string();
    let run = poll("the run to end", Duration::from_secs(30), || {
        let (s, r) = api(
            server,
            reqwest::Method::GET,
            &format!("/v1/runs/{run_id}"),
            token,
            None,
        );
        let done = ["succeeded", "failed", "dead_lettered", "cancelled"];
        (s == 200 && done.iter().any(|d| r["status"] == *d)).then_some(r)
    });
    let (s, receipts) = api(
        server,
        reqwest::Method::GET,
        &format!("/v1/runs/{run_id}/receipts"),
        token,
        None,
    );
    assert_eq!(s, 200, "{receipts}");
    let body = |kind: &str| {
        receipts["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["receipt_kind"] == kind)
            .filter_map(|r| r["body"].as_str())
            .collect::<String>()
    };
    (run, body("stdout"), body("stderr"))
}

/// A shell schedule that prints its uid, then tries to read the server's environment.
fn snooping_schedule(name: &str, server_pid: u32) -> Value {
    let script = format!(
        "id -u; cat /proc/{server_pid}/environ; echo; tr '\\0' '\\n' < /proc/$PPID/environ; env"
    );
    json!({
        "name": name, "timezone": "UTC",
        "schedule": {"kind": "cron", "expr": "0 2 * * *"},
        "target": {"kind": "shell", "command": "/bin/sh", "args": ["-c", script]}
    })
}

/// Runs the snooping schedule as admin; asserts the command ran as `uid` and found no
/// secret (and was refused by the kernel). Returns its stdout.
#[track_caller]
fn snoop(server: &Server, uid: u32) -> String {
    let id = create(
        server,
        Some(ADMIN),
        &snooping_schedule("snoop", server.pid()),
    );
    let (run, stdout, stderr) = run_once(server, Some(ADMIN), &id);
    assert_eq!(
        stdout.lines().next(),
        Some(uid.to_string().as_str()),
        "{run}\n{stdout}"
    );
    for secret in ["token-sentinel", DB_PASSWORD] {
        assert!(!stdout.contains(secret), "stdout shows {secret}: {stdout}");
        assert!(!stderr.contains(secret), "stderr shows {secret}: {stderr}");
    }
    // It did try, and was refused by the kernel.
    assert!(stderr.contains("Permission denied"), "{stderr}");
    stdout
}

#[test]
fn a_root_server_runs_commands_as_the_shell_user_and_they_cannot_read_its_secrets() {
    if !is_root() {
        process::say_not_run(
            "security root server",
            "switching the commands' user needs a root server",
        );
        return;
    }
    let Some((uid, _)) = ordinary_user("wptest") else {
        process::say_not_run("security", "no `wptest` user and useradd failed");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database("wp_sec_root").replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{DB_PASSWORD}@"),
        1,
    );
    assert!(url.contains(DB_PASSWORD), "{url}");
    let spec = ServerSpec::new(
        "security-root",
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("WAKEPLANE_API_TOKENS", TOKENS),
            ("WAKEPLANE_SHELL_USER", "wptest"),
        ],
    );
    let server = spec.start_ready(Duration::from_secs(60));
    let stdout = snoop(&server, uid);
    assert_ne!(stdout.lines().next(), Some("0"));
    assert!(stdout.contains("\nUSER=wptest\n"), "{stdout}");
}

#[test]
fn a_server_running_as_an_ordinary_user_hides_its_environment_from_its_commands() {
    // Commands run with the server's own uid here: only the server being non-dumpable
    // keeps /proc/<pid>/environ from them.
    let data = tempfile::Builder::new()
        .prefix("wp-security-")
        .tempdir_in("/tmp")
        .expect("data dir");
    let mut env = vec![
        (
            "WAKEPLANE_DATA_DIR",
            data.path().to_str().expect("utf-8 path"),
        ),
        ("WAKEPLANE_API_TOKENS", TOKENS),
        ("PGPASSWORD", DB_PASSWORD),
    ];
    let mut run_as = None;
    let expected_uid = if is_root() {
        let Some((uid, gid)) = ordinary_user("wptest") else {
            process::say_not_run("security", "no `wptest` user and useradd failed");
            return;
        };
        std::os::unix::fs::chown(data.path(), Some(uid), Some(gid)).expect("chown data dir");
        run_as = Some((uid, gid));
        env.push(("WAKEPLANE_SHELL_USER", "")); // unset: no switch for a non-root server
        uid
    } else {
        // SAFETY: plain syscall.
        unsafe { libc::geteuid() }
    };
    let mut spec = ServerSpec::new("security-ordinary", data.path(), &env);
    spec.log_path = data.path().join("server.log");
    spec.run_as = run_as;
    let mut server = spec.start_ready(Duration::from_secs(120));
    snoop(&server, expected_uid);
    server.stop_gracefully(Duration::from_secs(60));
}

#[test]
fn secret_files_work_and_shell_targets_off_refuse_and_fail_existing_schedules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url_file = dir.path().join("database-url");
    let tokens_file = dir.path().join("tokens");
    std::fs::write(&url_file, format!("{}\n", fresh_database("wp_sec_off")))
        .expect("write url file");
    std::fs::write(&tokens_file, format!("{TOKENS}\n")).expect("write tokens file");
    let files = [
        ("DATABASE_URL_FILE", url_file.to_str().expect("utf-8")),
        (
            "WAKEPLANE_API_TOKENS_FILE",
            tokens_file.to_str().expect("utf-8"),
        ),
        ("WAKEPLANE_WORKER_ID", "wrk_security"),
    ];
    let mut server =
        ServerSpec::new("security-files", dir.path(), &files).start_ready(Duration::from_secs(60));
    let (s, b) = api(&server, reqwest::Method::GET, "/v1/schedules", None, None);
    assert_eq!((s, b["code"].as_str()), (401, Some("unauthorized")), "{b}");
    let (s, b) = api(
        &server,
        reqwest::Method::GET,
        "/v1/schedules",
        Some("operator-token-sentinel"),
        None,
    );
    assert_eq!(s, 200, "{b}");
    let echo = json!({
        "name": "echo", "timezone": "UTC",
        "schedule": {"kind": "cron", "expr": "0 2 * * *"},
        "target": {"kind": "shell", "command": "/bin/echo", "args": ["hi"]}
    });
    let id = create(&server, Some(ADMIN), &echo);
    let (run, stdout, _) = run_once(&server, Some(ADMIN), &id);
    assert_eq!(
        (run["status"].as_str(), stdout.as_str()),
        (Some("succeeded"), "hi\n"),
        "{run}"
    );
    server.stop_gracefully(Duration::from_secs(30));

    let mut env = files.to_vec();
    env.push(("WAKEPLANE_SHELL_TARGETS", "off"));
    let server =
        ServerSpec::new("security-off", dir.path(), &env).start_ready(Duration::from_secs(60));
    let mut again = echo.clone();
    again["name"] = json!("echo-again");
    let (s, b) = api(
        &server,
        reqwest::Method::POST,
        "/v1/schedules",
        Some(ADMIN),
        Some(&again),
    );
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("validation_failed")),
        "{b}"
    );
    assert_eq!(
        b["details"],
        json!([{"field": "target.kind", "message": "shell targets are disabled on this server (WAKEPLANE_SHELL_TARGETS=off)"}])
    );
    let (run, stdout, _) = run_once(&server, Some(ADMIN), &id);
    assert_ne!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["error_text"],
        "shell targets are disabled on this server (WAKEPLANE_SHELL_TARGETS=off)",
        "{run}"
    );
    assert_eq!(stdout, "", "the command ran");
}

#[test]
fn http_targets_to_metadata_and_to_denied_names_fail_naming_the_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = fresh_database("wp_sec_http");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let http = |name: &str, url: String| {
        json!({
            "name": name, "timezone": "UTC",
            "schedule": {"kind": "cron", "expr": "0 2 * * *"},
            "target": {"kind": "http", "method": "GET", "url": url}
        })
    };
    let metadata = http(
        "metadata",
        "http://169.254.169.254/latest/meta-data/".into(),
    );
    // Created while no rule applied (as before the upgrade): the run is checked again.
    let open = ServerSpec::new(
        "security-http-open",
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("WAKEPLANE_WORKER_ID", "wrk_sec_http"),
            ("WAKEPLANE_HTTP_TARGET_DENY", "none"),
        ],
    );
    let mut server = open.start_ready(Duration::from_secs(60));
    let metadata_id = create(&server, None, &metadata);
    let name_id = create(
        &server,
        None,
        &http("local-name", format!("http://localhost:{port}/")),
    );
    server.stop_gracefully(Duration::from_secs(30));

    let guarded = ServerSpec::new(
        "security-http-guarded",
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("WAKEPLANE_WORKER_ID", "wrk_sec_http"),
            (
                "WAKEPLANE_HTTP_TARGET_DENY",
                "169.254.0.0/16,127.0.0.0/8,::1",
            ),
        ],
    );
    let server = guarded.start_ready(Duration::from_secs(60));
    let mut again = metadata.clone();
    again["name"] = json!("metadata-again");
    let (s, b) = api(
        &server,
        reqwest::Method::POST,
        "/v1/schedules",
        None,
        Some(&again),
    );
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("validation_failed")),
        "{b}"
    );
    assert_eq!(b["details"][0]["field"], "target.url", "{b}");

    let (run, _, _) = run_once(&server, None, &metadata_id);
    assert_eq!(
        run["error_text"],
        "http request refused: address 169.254.169.254 is refused by WAKEPLANE_HTTP_TARGET_DENY rule 169.254.0.0/16 (http://169.254.169.254/latest/meta-data/)",
        "{run}"
    );
    let (run, _, _) = run_once(&server, None, &name_id);
    let err = run["error_text"].as_str().unwrap_or_default();
    assert!(
        err.contains("localhost resolves only to refused addresses"),
        "{run}"
    );
    assert!(
        err.contains("address 127.0.0.1 is refused by WAKEPLANE_HTTP_TARGET_DENY rule 127.0.0.0/8"),
        "{run}"
    );
    assert!(
        listener.accept().is_err(),
        "the denied address was contacted"
    );
}
