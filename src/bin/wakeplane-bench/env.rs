//! Shared set-up: the benchmark's own PostgreSQL, the server (in-process or as a child
//! `wakeplane` process), the HTTP client, and the machine facts printed with every result.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use diesel::{Connection, PgConnection, RunQueryDsl};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use wakeplane::config::Config;
use wakeplane::executors::WorkflowRegistry;
use wakeplane::pg::{PgCluster, PgOptions};
use wakeplane::startup::Application;
use wakeplane::store::{self, Store};

/// Server settings the command line may override (None = the server's own default).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTuning {
    pub workers: Option<usize>,
    pub db_pool_size: Option<u32>,
    /// Server WAKEPLANE_RUN_RETENTION_DAYS (in-process server only).
    pub run_retention_days: Option<u64>,
}

/// The benchmark's private PostgreSQL and its migrated `bench` database.
pub struct Database {
    cluster: Option<PgCluster>,
    /// Data directory to delete afterwards (durable clusters only; temporary ones clean up).
    durable_dir: Option<PathBuf>,
    pub url: String,
}

impl Database {
    /// Starts a throwaway cluster (fsync off, like the tests) or, with `durable`, one with
    /// PostgreSQL's durable defaults; creates and migrates the `bench` database.
    pub fn start(durable: bool) -> Result<Database> {
        let (cluster, durable_dir) = if durable {
            let dir = std::env::temp_dir().join(format!("wp-bench-{}", std::process::id()));
            let options = PgOptions {
                fast: false,
                max_connections: 200,
            };
            let cluster = PgCluster::start_with(&dir, options)
                .with_context(|| format!("starting a durable PostgreSQL in {}", dir.display()))?;
            (cluster, Some(dir))
        } else {
            let cluster = PgCluster::temporary().context("starting a temporary PostgreSQL")?;
            (cluster, None)
        };
        // The postmaster may still be "starting up" for a moment after `start` returns.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match store::ensure_database(&cluster.url("postgres"), "bench") {
                Ok(()) => break,
                Err(store::StoreError::Unavailable(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e).context("creating the bench database"),
            }
        }
        let url = cluster.url("bench");
        Store::new(&url, 1)
            .migrate()
            .context("migrating the bench database")?;
        Ok(Database {
            cluster: Some(cluster),
            durable_dir,
            url,
        })
    }

    /// Loads `pg_stat_statements` (a setting the postmaster reads at start: restarts the
    /// cluster), creates the extension in the bench database and tracks nested statements
    /// too, for [`Self::statements`].
    pub fn enable_statement_stats(&mut self) -> Result<()> {
        use diesel::connection::SimpleConnection;
        let cluster = self.cluster.as_mut().ok_or_else(|| anyhow!("no cluster"))?;
        PgConnection::establish(&cluster.url("postgres"))?
            .batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")?;
        cluster.stop().context("stopping PostgreSQL")?;
        cluster.restart().context("starting PostgreSQL again")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match PgConnection::establish(&self.url) {
                Ok(mut c) => {
                    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
                    // Statements run by triggers and functions too (e.g. the status
                    // totals' UPDATE), not only the client's.
                    // (Two calls: ALTER SYSTEM refuses a multi-statement batch.)
                    c.batch_execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")?;
                    c.batch_execute("SELECT pg_reload_conf()")?;
                    return Ok(());
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => return Err(e).context("reconnecting after the restart"),
            }
        }
    }

    /// The `limit` statements with the most total execution time (pg_stat_statements):
    /// calls, total ms, mean ms, rows, and the statement's text (shortened).
    pub fn statements(&self, limit: usize) -> Result<Vec<Vec<String>>> {
        #[derive(diesel::QueryableByName)]
        struct S {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            calls: i64,
            #[diesel(sql_type = diesel::sql_types::Double)]
            total: f64,
            #[diesel(sql_type = diesel::sql_types::Double)]
            mean: f64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            rows: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            query: String,
        }
        let rows: Vec<S> = diesel::sql_query(format!(
            "SELECT calls, total_exec_time AS total, mean_exec_time AS mean, rows, query
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench')
             ORDER BY total_exec_time DESC LIMIT {limit}"
        ))
        .load(&mut self.connect()?)?;
        Ok(rows
            .into_iter()
            .map(|s| {
                let q: String = s.query.split_whitespace().collect::<Vec<_>>().join(" ");
                let q: String = q.chars().take(110).collect();
                vec![
                    s.calls.to_string(),
                    format!("{:.0}", s.total),
                    format!("{:.3}", s.mean),
                    s.rows.to_string(),
                    q,
                ]
            })
            .collect())
    }

    /// A fresh connection for the benchmark's own reads.
    pub fn connect(&self) -> Result<PgConnection> {
        PgConnection::establish(&self.url).context("connecting to the bench database")
    }

    /// `SELECT version()`, shortened to "PostgreSQL 16.x".
    pub fn server_version(&self) -> String {
        #[derive(diesel::QueryableByName)]
        struct V {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        self.connect()
            .ok()
            .and_then(|mut c| {
                diesel::sql_query("SELECT current_setting('server_version') AS v")
                    .get_result::<V>(&mut c)
                    .ok()
            })
            .map(|v| format!("PostgreSQL {}", v.v))
            .unwrap_or_else(|| "PostgreSQL (version unknown)".into())
    }

    pub fn durability(&self) -> &'static str {
        if self.durable_dir.is_some() {
            "durable (fsync on)"
        } else {
            "fast (fsync, synchronous_commit, full_page_writes off; as in the tests)"
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        drop(self.cluster.take());
        if let Some(dir) = &self.durable_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The real server, in this process, on its own thread and actix System, so the load
/// generator (the caller's runtime) never shares a thread with the schedule actors.
pub struct InProcessServer {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl InProcessServer {
    pub fn start(database_url: &str, tuning: ServerTuning) -> Result<InProcessServer> {
        let mut config = Config::from_lookup(|_| None)
            .map_err(|e| anyhow!("default configuration is invalid: {e}"))?;
        config.http_addr = "127.0.0.1:0".into();
        config.database_url = Some(database_url.to_string());
        config.worker_id = "wrk_bench".into();
        config.api_tokens = None;
        if let Some(w) = tuning.workers {
            config.workers = w;
        }
        if let Some(p) = tuning.db_pool_size {
            config.db_pool_size = p;
        }
        if let Some(days) = tuning.run_retention_days {
            config.run_retention = Some(Duration::from_secs(days * 86_400));
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<u16, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let url = database_url.to_string();
        let thread = std::thread::Builder::new()
            .name("wakeplane-server".into())
            .spawn(move || -> Result<()> {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let store = Store::new(&url, config.db_pool_size);
                    let app =
                        match Application::build(&config, store, WorkflowRegistry::with_builtins())
                            .await
                        {
                            Ok(app) => app,
                            Err(e) => {
                                let _ = ready_tx.send(Err(format!("{e:#}")));
                                return Err(e);
                            }
                        };
                    let _ = ready_tx.send(Ok(app.port()));
                    let handle = app.handle();
                    let scheduler = app.scheduler().clone();
                    actix_web::rt::spawn(async move {
                        let _ = stop_rx.await;
                        scheduler.shutdown(Duration::from_secs(5)).await;
                        handle.stop(true).await;
                    });
                    app.run_until_stopped().await?;
                    actix_web::rt::System::current().stop();
                    Ok(())
                })
            })
            .context("spawning the server thread")?;
        let port = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow!("the in-process server did not start within 60 s"))?
            .map_err(|e| anyhow!("the in-process server failed to start: {e}"))?;
        Ok(InProcessServer {
            base: format!("http://127.0.0.1:{port}"),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Graceful stop (drains for up to 5 s), waiting for the server thread.
    pub fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long a child server may take to answer `/readyz` 200.
const READY_WITHIN: Duration = Duration::from_secs(600);

/// `wakeplane serve` as a child process, so its RSS is the server's alone.
pub struct ChildServer {
    child: std::process::Child,
    pub base: String,
    pub pid: u32,
    pub spawned_at: Instant,
}

/// The `wakeplane` binary next to this one.
pub fn server_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("the bench binary {} has no directory", exe.display()))?;
    let bin = dir.join("wakeplane");
    if !bin.is_file() {
        bail!(
            "{} not found: build both binaries first with `cargo build --release --bins`",
            bin.display()
        );
    }
    Ok(bin)
}

impl ChildServer {
    /// Starts `wakeplane serve` against `database_url` on a free port; stderr goes to `log`.
    pub async fn start(
        database_url: &str,
        tuning: ServerTuning,
        log: &std::path::Path,
    ) -> Result<ChildServer> {
        Self::start_binary(&server_binary()?, database_url, tuning, log).await
    }

    /// `start` with the server binary `bin` (e.g. another build, to compare).
    pub async fn start_binary(
        bin: &std::path::Path,
        database_url: &str,
        tuning: ServerTuning,
        log: &std::path::Path,
    ) -> Result<ChildServer> {
        Self::start_node(bin, database_url, tuning, log, "wrk_bench", &[]).await
    }

    /// `start_binary` as node `worker_id`, with `env` added (several nodes on one database).
    pub async fn start_node(
        bin: &std::path::Path,
        database_url: &str,
        tuning: ServerTuning,
        log: &std::path::Path,
        worker_id: &str,
        env: &[(&str, &str)],
    ) -> Result<ChildServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .env("DATABASE_URL", database_url)
            .env("WAKEPLANE_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("WAKEPLANE_WORKER_ID", worker_id)
            .env("WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS", "2")
            .env("RUST_LOG", "warn")
            .env_remove("WAKEPLANE_API_TOKENS")
            .env_remove("WAKEPLANE_WORKERS")
            .env_remove("WAKEPLANE_DB_POOL_SIZE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        if let Some(w) = tuning.workers {
            cmd.env("WAKEPLANE_WORKERS", w.to_string());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(p) = tuning.db_pool_size {
            cmd.env("WAKEPLANE_DB_POOL_SIZE", p.to_string());
        }
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = ChildServer {
            pid: child.id(),
            child,
            base: format!("http://127.0.0.1:{port}"),
            spawned_at,
        };
        let api = Api::new(&server.base)?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!(
                    "wakeplane exited during start-up ({status}); see {}",
                    log.display()
                );
            }
            if matches!(api.get("/readyz").await, Ok((200, _))) {
                break;
            }
            if Instant::now() > deadline {
                server.stop();
                bail!(
                    "wakeplane was not ready within {} s; see {}",
                    READY_WITHIN.as_secs(),
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    /// SIGKILL (a crash), then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it has not exited within 15 s.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // already exited (and reaped): its pid may belong to someone else now
        }
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Figures from /proc for one process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub rss_bytes: u64,
    pub hwm_bytes: u64,
    /// user + system CPU time so far.
    pub cpu: Duration,
}

pub fn proc_sample(pid: u32) -> Result<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = |key: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|v| v * 1024)
            .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let total = ticks(11) + ticks(12);
    Ok(ProcSample {
        rss_bytes: kb("VmRSS:")?,
        hwm_bytes: kb("VmHWM:")?,
        cpu: Duration::from_millis(total * 1000 / hz),
    })
}

/// The settled state of a process: its last sample and its CPU use while settled.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    pub sample: ProcSample,
    /// CPU used over the settled stretch, as a share of one core.
    pub cpu_share: f64,
    /// `false` when `max` passed first.
    pub settled: bool,
    /// When the settled stretch began, from the start of waiting.
    pub after: Duration,
}

/// Waits (at least `min`, at most `max`) until the process settles: its RSS moved under
/// 0.5% and it used under 20% of a core in each of five consecutive one-second samples. An
/// idle server still runs its housekeeping, whose cost is reported as `cpu_share`.
pub async fn wait_until_settled(pid: u32, min: Duration, max: Duration) -> Result<Settled> {
    const STRETCH: u32 = 5;
    let start = Instant::now();
    let mut last = proc_sample(pid)?;
    let mut calm = 0u32;
    let mut stretch_start = (Instant::now(), last);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = proc_sample(pid)?;
        let drift = now.rss_bytes.abs_diff(last.rss_bytes) as f64 / last.rss_bytes.max(1) as f64;
        // Calm means memory flat AND the process mostly idle: a server still loading its
        // actors can hold RSS flat while it waits on the database.
        let busy = now.cpu.saturating_sub(last.cpu).as_secs_f64() > 0.2;
        if drift < 0.005 && !busy {
            if calm == 0 {
                stretch_start = (Instant::now(), last);
            }
            calm += 1;
        } else {
            calm = 0;
        }
        last = now;
        let waited = start.elapsed();
        let done = calm >= STRETCH && waited >= min;
        if done || waited >= max {
            let span = stretch_start.0.elapsed().as_secs_f64().max(1e-3);
            let cpu = now.cpu.saturating_sub(stretch_start.1.cpu).as_secs_f64();
            return Ok(Settled {
                sample: now,
                cpu_share: cpu / span,
                settled: done,
                after: waited.saturating_sub(Duration::from_secs(u64::from(STRETCH))),
            });
        }
    }
}

/// A small JSON-over-HTTP client.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Result<Api> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            base: base.to_string(),
            client,
        })
    }

    async fn reply(r: reqwest::Response) -> Result<(u16, Value)> {
        let status = r.status().as_u16();
        let text = r.text().await.context("reading a response body")?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        Self::reply(r).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        Self::reply(r).await
    }

    /// DELETE `path`: its status.
    pub async fn delete(&self, path: &str) -> Result<u16> {
        let r = self
            .client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("DELETE {path}"))?;
        let status = r.status().as_u16();
        let _ = r.bytes().await;
        Ok(status)
    }

    /// Creates `n` schedules, `concurrency` requests in flight, with `body(i)`; returns their
    /// ids in creation order of `i` and the wall time it took. Stops at the first refusal.
    pub async fn create_schedules(
        &self,
        n: usize,
        concurrency: usize,
        body: impl Fn(usize) -> Value,
    ) -> Result<(Vec<String>, Duration)> {
        let started = Instant::now();
        let mut ids = vec![String::new(); n];
        let mut done = 0usize;
        let mut replies = stream::iter((0..n).map(|i| {
            let b = body(i);
            async move { (i, self.post("/v1/schedules", &b).await) }
        }))
        .buffer_unordered(concurrency.max(1));
        while let Some((i, reply)) = replies.next().await {
            let (status, body) = reply?;
            if status != 201 {
                bail!("creating schedule {i} answered {status}: {body}");
            }
            ids[i] = body["id"]
                .as_str()
                .ok_or_else(|| anyhow!("create reply has no id: {body}"))?
                .to_string();
            done += 1;
            if done % 5000 == 0 && done < n {
                progress(format_args!(
                    "created {done}/{n} schedules ({:.0}/s)",
                    done as f64 / started.elapsed().as_secs_f64()
                ));
            }
        }
        Ok((ids, started.elapsed()))
    }
}

/// A progress line on stderr (results go to stdout).
pub fn progress(msg: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "[bench] {msg}");
}

/// Facts about the machine and build, printed with every result.
pub fn machine_facts(db: &Database) -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let command = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    vec![
        (
            "date".into(),
            chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        ),
        ("nproc".into(), nproc),
        ("cpu".into(), cpu),
        ("memory".into(), mem),
        (
            "kernel".into(),
            read("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
        ("load average (1/5/15 min)".into(), {
            let l = read("/proc/loadavg");
            l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        }),
        ("rustc".into(), command("rustc", &["--version"])),
        (
            "profile".into(),
            if cfg!(debug_assertions) {
                "debug (use --release!)"
            } else {
                "release"
            }
            .into(),
        ),
        (
            "git".into(),
            command(
                "git",
                &[
                    "-C",
                    env!("CARGO_MANIFEST_DIR"),
                    "describe",
                    "--always",
                    "--dirty",
                ],
            ),
        ),
        (
            "database".into(),
            format!("{}, {}", db.server_version(), db.durability()),
        ),
    ]
}

/// CPU time (user + system) of the threads of this process grouped by thread name, and of
/// this benchmark's PostgreSQL (postmaster and its children): where a phase's CPU went,
/// whatever else the machine is doing at the time.
#[derive(Debug, Clone, Default)]
pub struct CpuSplit {
    pub groups: std::collections::BTreeMap<String, Duration>,
}

/// The group of an in-process server thread, by its (15-character) kernel name.
fn thread_group(comm: &str) -> &'static str {
    if comm.starts_with("wakeplane-serve") {
        "server: system arbiter (supervisor, schedule actors, materialiser)"
    } else if comm.starts_with("actix-rt") {
        "server: HTTP workers and executor arbiter"
    } else if comm.starts_with("tokio-rt-worker") {
        "server: blocking pool (diesel calls, Store::run)"
    } else {
        "load generator (client, this process's other threads)"
    }
}

/// utime + stime of a /proc stat line, and its comm and ppid.
fn stat_of(path: &str) -> Option<(String, u32, Duration)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let open = stat.find('(')?;
    let (comm, after) = stat[open + 1..].rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = n(11)? + n(12)?;
    Some((
        comm.to_string(),
        n(1)? as u32,
        Duration::from_millis(ticks * 1000 / hz),
    ))
}

impl CpuSplit {
    pub fn sample(db: &Database) -> CpuSplit {
        let mut groups = std::collections::BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for t in tasks.flatten() {
                let path = format!("{}/stat", t.path().display());
                if let Some((comm, _, cpu)) = stat_of(&path) {
                    *groups
                        .entry(thread_group(&comm).to_string())
                        .or_insert(Duration::ZERO) += cpu;
                }
            }
        }
        let postmaster = db.cluster.as_ref().and_then(|c| {
            std::fs::read_to_string(c.data_dir().join("pgdata").join("postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        });
        if let (Some(pm), Ok(procs)) = (postmaster, std::fs::read_dir("/proc")) {
            let mut pg = Duration::ZERO;
            for p in procs.flatten() {
                let name = p.file_name();
                let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some((_, ppid, cpu)) = stat_of(&format!("/proc/{pid}/stat")) {
                    if pid == pm || ppid == pm {
                        pg += cpu;
                    }
                }
            }
            groups.insert("PostgreSQL (postmaster and backends)".into(), pg);
        }
        CpuSplit { groups }
    }

    /// CPU used since `earlier`, per group, in ms per `n` requests.
    pub fn per_request(&self, earlier: &CpuSplit, n: usize) -> Vec<(String, String)> {
        let mut total = 0.0;
        let mut out: Vec<(String, String)> = self
            .groups
            .iter()
            .map(|(k, v)| {
                let before = earlier.groups.get(k).copied().unwrap_or_default();
                let ms = v.saturating_sub(before).as_secs_f64() * 1000.0 / n.max(1) as f64;
                total += ms;
                (k.clone(), format!("{ms:.3} ms"))
            })
            .collect();
        out.push(("total CPU per request".into(), format!("{total:.3} ms")));
        out
    }
}
