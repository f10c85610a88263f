//! Shared helpers for the process-level black-box tests (`crash`, `two_nodes`, `shutdown`):
//! the real `wakeplane serve` binary as a child process, spoken to over real HTTP, against a
//! real PostgreSQL cluster owned by the test binary.
//!
//! - [`cluster`] / [`fresh_database`]: one throwaway cluster per test binary, one database
//!   per test (the server migrates it at start-up).
//! - [`ServerSpec`] / [`Server`]: a child server with its environment, stdout/stderr sent to
//!   a log file; the guard kills the child on drop and prints the log's tail when the test
//!   is failing, so a failing test never leaks a process and always shows why.
//! - [`poll`]: wait for a condition with a deadline (never a fixed sleep as synchronisation).
//! - [`runs_of`], [`schedules_in`], [`lease_count`], [`status_of`]: read the database
//!   directly for assertions.

#![allow(dead_code)]

pub mod witness;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::Value;
use wakeplane::pg::PgCluster;
use wakeplane::store::runs::RunRow;
use wakeplane::store::schema::{schedule_runs, schedules, worker_leases};

/// This test binary's PostgreSQL cluster, started on first use, stopped at exit.
static CLUSTER: LazyLock<Result<PgCluster, String>> =
    LazyLock::new(|| PgCluster::temporary().map_err(|e| e.to_string()));

pub fn cluster() -> &'static PgCluster {
    match &*CLUSTER {
        Ok(c) => c,
        Err(e) => panic!("test PostgreSQL cluster failed to start: {e}"),
    }
}

/// Creates database `name` (empty: the server migrates it) and returns its URL.
pub fn fresh_database(name: &str) -> String {
    let cluster = cluster();
    wakeplane::store::ensure_database(&cluster.url("postgres"), name).expect("create database");
    cluster.url(name)
}

/// A port that was free a moment ago (bind to 0, read it, release it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Polls `check` every 100 ms until it yields `Some`, or panics naming `what` after
/// `timeout` (a hang guard, not a timing assertion).
pub fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How to start one server process: its environment and where its output goes. Start it
/// as many times as needed (after a crash, for a restart); each start gets a fresh port.
#[derive(Clone)]
pub struct ServerSpec {
    pub name: String,
    pub env: Vec<(String, String)>,
    pub log_path: PathBuf,
    /// Run as this `(uid, gid)` instead of the test's user (root only).
    pub run_as: Option<(u32, u32)>,
}

impl ServerSpec {
    /// A spec logging to `<log_dir>/<name>.log`, with `RUST_LOG=info` and `NO_COLOR=1`
    /// (plain log files) unless `env` sets them.
    pub fn new(name: &str, log_dir: &Path, env: &[(&str, &str)]) -> ServerSpec {
        let mut all: Vec<(String, String)> = vec![
            ("RUST_LOG".into(), "info".into()),
            ("NO_COLOR".into(), "1".into()),
        ];
        for (k, v) in env {
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.to_string()));
        }
        ServerSpec {
            name: name.to_string(),
            env: all,
            log_path: log_dir.join(format!("{name}.log")),
            run_as: None,
        }
    }

    /// Spawns `wakeplane serve` with this environment (and nothing inherited but `PATH`
    /// and `HOME`) on a fresh port. Does not wait for readiness.
    pub fn start(&self) -> Server {
        let port = free_port();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        writeln!(
            log,
            "===== test: starting {} on port {port} =====",
            self.name
        )
        .ok();
        let stderr = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakeplane"));
        cmd.arg("serve")
            .env_clear()
            .env("WAKEPLANE_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        for key in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        // Shell targets share temporary directories with the tests: a root server runs
        // them as root explicitly (it would otherwise run them as `nobody`), unless the
        // spec says otherwise.
        // SAFETY: geteuid has no preconditions.
        let root_server = unsafe { libc::geteuid() } == 0 && self.run_as.is_none();
        if root_server && !self.env.iter().any(|(k, _)| k == "WAKEPLANE_SHELL_USER") {
            cmd.env("WAKEPLANE_SHELL_USER", "root");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect("spawn wakeplane serve");
        Server {
            name: self.name.clone(),
            child,
            exited: None,
            base: format!("http://127.0.0.1:{port}"),
            log_path: self.log_path.clone(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    /// Starts the server and waits (up to `timeout`) until `/readyz` answers 200.
    pub fn start_ready(&self, timeout: Duration) -> Server {
        let mut server = self.start();
        server.wait_ready(timeout);
        server
    }
}

/// A running (or exited) server child. Dropping it kills the process if it still runs,
/// and prints the tail of its log when the current thread is panicking.
pub struct Server {
    pub name: String,
    child: Child,
    exited: Option<ExitStatus>,
    pub base: String,
    pub log_path: PathBuf,
    http: reqwest::blocking::Client,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` is 200; panics early if the process exits instead.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let what = format!("{} to be ready", self.name);
        poll(&what, timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                panic!("{} exited during start-up: {status}", self.name);
            }
            match self.http.get(format!("{}/readyz", self.base)).send() {
                Ok(r) if r.status().as_u16() == 200 => Some(()),
                _ => None,
            }
        });
    }

    /// Sends `method path` (with a JSON body if given); panics if it cannot be sent.
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::blocking::Response {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.name))
    }

    /// `method path` → (status, JSON body or Null).
    fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let r = self.send(method, path, body);
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// `GET path` → (status, JSON body or Null).
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None)
    }

    /// `GET path` → (status, body text).
    pub fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.send(reqwest::Method::GET, path, None);
        let status = r.status().as_u16();
        (status, r.text().unwrap_or_default())
    }

    /// `DELETE path` → (status, JSON body or Null).
    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None)
    }

    /// `PATCH path` with a JSON body → (status, JSON body or Null).
    pub fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body))
    }

    /// `POST path` with a JSON body → (status, JSON body or Null).
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    /// Creates a schedule; returns its id. Panics unless 201.
    pub fn create_schedule(&self, body: &Value) -> String {
        let (status, created) = self.post("/v1/schedules", body);
        assert_eq!(status, 201, "create schedule failed: {created}");
        created["id"].as_str().expect("schedule id").to_string()
    }

    /// The schedule's runs as the API lists them (newest first, up to 500).
    pub fn api_runs(&self, schedule_id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v1/runs?schedule_id={schedule_id}&limit=500"));
        assert_eq!(status, 200, "list runs failed: {body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// SIGKILL (a crash), then reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL server");
        self.exited = Some(self.child.wait().expect("reap killed server"));
    }

    /// Sends SIGTERM (graceful shutdown) without waiting.
    pub fn terminate(&self) {
        // SAFETY: plain syscall on our own child's pid, which is not reaped yet.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM {}", self.name);
    }

    /// Waits up to `timeout` for the process to exit (a hang guard); returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let what = format!("{} to exit", self.name);
        let status = poll(&what, timeout, || self.child.try_wait().expect("try_wait"));
        self.exited = Some(status);
        status
    }

    /// SIGTERM, wait (hang guard `timeout`), and assert exit code 0.
    pub fn stop_gracefully(&mut self, timeout: Duration) {
        let signalled = Instant::now();
        self.terminate();
        let status = self.wait_exit(timeout);
        println!(
            "{} exited {:.1?} after SIGTERM",
            self.name,
            signalled.elapsed()
        );
        assert_eq!(
            status.code(),
            Some(0),
            "{} did not exit cleanly after SIGTERM: {status}",
            self.name
        );
    }

    /// The last `lines` lines of this server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- last lines of {} ({}) -----\n{}\n----- end of {} log -----",
                self.name,
                self.log_path.display(),
                self.log_tail(60),
                self.name
            );
        }
    }
}

/// The last `lines` lines of a file (reads at most its last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every run row of `schedule_id`, oldest nominal time first, then by attempt.
pub fn runs_of(database_url: &str, schedule_id: &str) -> Vec<RunRow> {
    let mut conn = PgConnection::establish(database_url).expect("connect for assertions");
    schedule_runs::table
        .filter(schedule_runs::schedule_id.eq(schedule_id))
        .order((
            schedule_runs::nominal_time.asc(),
            schedule_runs::attempt.asc(),
        ))
        .select(RunRow::as_select())
        .load(&mut conn)
        .expect("load runs")
}

/// `(name, enabled)` of every schedule, by name.
pub fn schedules_in(database_url: &str) -> Vec<(String, bool)> {
    let mut conn = PgConnection::establish(database_url).expect("connect for assertions");
    schedules::table
        .select((schedules::name, schedules::enabled))
        .order(schedules::name.asc())
        .load(&mut conn)
        .expect("load schedules")
}

/// Rows in `worker_leases`.
pub fn lease_count(database_url: &str) -> i64 {
    let mut conn = PgConnection::establish(database_url).expect("connect for assertions");
    worker_leases::table
        .count()
        .get_result(&mut conn)
        .expect("count leases")
}

/// A run row's status as the API spells it (`"succeeded"`, …).
pub fn status_of(run: &RunRow) -> String {
    run.status.to_string()
}

/// Runs of `schedule_id` still `claimed` or `running`.
pub fn active_runs(database_url: &str, schedule_id: &str) -> Vec<RunRow> {
    runs_of(database_url, schedule_id)
        .into_iter()
        .filter(|r| matches!(status_of(r).as_str(), "claimed" | "running"))
        .collect()
}

/// Asserts that `times` (sorted) are consecutive steps of `step` with no gap or repeat.
#[track_caller]
pub fn assert_gap_free(
    label: &str,
    times: &[chrono::DateTime<chrono::Utc>],
    step: chrono::Duration,
) {
    assert!(!times.is_empty(), "{label}: no occurrence materialised");
    for pair in times.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            step,
            "{label}: occurrences {} and {} are not one step apart (gap or duplicate)",
            pair[0],
            pair[1]
        );
    }
}

/// Command lines of live processes that mention `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{}: {}", name.to_string_lossy(), cmdline.trim()));
        }
    }
    found
}

/// Says on the real stderr (not the harness's capture, which hides a passing test's
/// `println!` and `eprintln!`) that part of `test` did not run, and why.
pub fn say_not_run(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "{test}: NOT RUN: {why}");
}

/// `(uid, gid)` of `user`, creating it (`useradd -M`) when absent; None if impossible.
pub fn ordinary_user(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let created = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", user])
            .status()
            .is_ok_and(|s| s.success());
        if !created {
            return None;
        }
    }
    Some((id("-u")?, id("-g")?))
}
