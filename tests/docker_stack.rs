//! The Docker Compose stack in `docker/`, built and run on a real Docker engine: the
//! README's Compose commands word for word, both healthchecks, a triggered run with its
//! receipts, three replicas, a stopped replica, the drain on `stop`, data across `down`/`up`.
//!
//! Skipped with a printed reason when no Docker daemon answers, when no Compose tool
//! (`docker compose` or `docker-compose`) is installed, or with `WAKEPLANE_DOCKER_TEST=0`.
//! Base images that cannot be pulled are built by `docker/standin/build.sh` first. Each
//! run uses its own compose project and env file under `target/docker-test/`, publishes
//! on free loopback ports, always ends with `down -v`, and keeps the stack's logs there
//! when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Writes to the real stderr: the harness captures `eprintln!` of a passing test, and the
/// skip reason and the measured numbers must be seen.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn output(cmd: &mut Command) -> Option<Output> {
    cmd.current_dir(root()).output().ok()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, panics with its output unless it succeeds; returns stdout.
fn must(cmd: &mut Command, what: &str) -> String {
    let out = output(cmd).unwrap_or_else(|| panic!("{what}: could not start {cmd:?}"));
    assert!(
        out.status.success(),
        "{what} failed: {cmd:?}\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Why this machine cannot run the test, if it cannot.
fn skip_reason() -> Option<String> {
    if std::env::var("WAKEPLANE_DOCKER_TEST").as_deref() == Ok("0") {
        return Some("WAKEPLANE_DOCKER_TEST=0".into());
    }
    match output(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"])) {
        None => Some("no docker executable".into()),
        Some(out) if !out.status.success() => {
            Some(format!("no Docker daemon answers: {}", text(&out).trim()))
        }
        Some(_) => compose_tool()
            .is_none()
            .then(|| "neither `docker compose` nor `docker-compose` is installed".into()),
    }
}

/// `docker compose` (v2) when the plugin is installed, else `docker-compose` (v1).
fn compose_tool() -> Option<Vec<&'static str>> {
    [vec!["docker", "compose"], vec!["docker-compose"]]
        .into_iter()
        .find(|tool| {
            output(Command::new(tool[0]).args(&tool[1..]).arg("version"))
                .is_some_and(|o| o.status.success())
        })
}

/// One compose project: its own name, env file and log directory; `down -v` on drop.
struct Stack {
    tool: Vec<&'static str>,
    project: String,
    dir: PathBuf,
    env_file: PathBuf,
}

impl Stack {
    fn new(tool: Vec<&'static str>) -> Stack {
        let project = format!("wptest{}", std::process::id());
        let dir = root().join("target/docker-test").join(&project);
        std::fs::create_dir_all(&dir).expect("creating target/docker-test");
        let env_file = dir.join(".env");
        Stack {
            tool,
            project,
            dir,
            env_file,
        }
    }

    /// The compose invocation for this project, as a shell word list.
    fn prefix(&self) -> String {
        format!(
            "{} -p {} --env-file {}",
            self.tool.join(" "),
            self.project,
            self.env_file.display()
        )
    }

    fn compose(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.tool[0]);
        cmd.args(&self.tool[1..])
            .args(["-p", &self.project, "--env-file"])
            .arg(&self.env_file)
            .args(["-f", "docker/compose.yaml"])
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        must(&mut self.compose(args), &format!("compose {args:?}"))
    }

    /// Container ids of a service (all states with `all`).
    fn containers(&self, service: &str) -> Vec<String> {
        self.run(&["ps", "-q", service])
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    fn inspect(&self, id: &str, format: &str) -> String {
        must(
            Command::new("docker").args(["inspect", "-f", format, id]),
            "docker inspect",
        )
        .trim()
        .to_string()
    }

    /// Waits until every running container of the project reports `healthy`.
    fn wait_healthy(&self, expect: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        poll(&format!("{expect} healthy containers"), timeout, || {
            let ids: Vec<String> = [self.containers("postgres"), self.containers("wakeplane")]
                .concat()
                .into_iter()
                .filter(|id| self.inspect(id, "{{.State.Status}}") == "running")
                .collect();
            (ids.len() == expect
                && ids.iter().all(|id| {
                    self.inspect(id, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")
                        == "healthy"
                }))
            .then_some(())
        });
        start.elapsed()
    }

    /// The host address of replica `index` (1-based) of wakeplane's port 8080.
    fn address(&self, index: usize) -> String {
        let out = self.run(&["port", "--index", &index.to_string(), "wakeplane", "8080"]);
        let addr = out.trim().to_string();
        assert!(addr.starts_with("127.0.0.1:"), "published on {addr:?}");
        addr
    }

    fn keep_logs(&self) {
        let path = self.dir.join("failed-run.log");
        let mut log = String::new();
        for args in [&["ps"][..], &["logs", "--no-color", "--timestamps"][..]] {
            if let Some(out) = output(&mut self.compose(args)) {
                log.push_str(&text(&out));
            }
        }
        let _ = std::fs::write(&path, log);
        say!("the stack's logs are in {}", path.display());
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep_logs();
        }
        let _ = output(&mut self.compose(&["down", "-v", "--remove-orphans", "-t", "5"]));
    }
}

// ---------------------------------------------------------------------------------------
// HTTP through the published port
// ---------------------------------------------------------------------------------------

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

fn get(addr: &str, path: &str) -> (u16, Value) {
    let resp = http()
        .get(format!("http://{addr}{path}"))
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn post(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = http()
        .post(format!("http://{addr}{path}"))
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn create(addr: &str, body: Value) -> String {
    let (status, created) = post(addr, "/v1/schedules", &body);
    assert_eq!(status, 201, "create: {created}");
    created["id"].as_str().expect("schedule id").to_string()
}

fn trigger(addr: &str, id: &str) -> String {
    let (status, run) = post(
        addr,
        &format!("/v1/schedules/{id}/trigger"),
        &json!({"reason": "docker stack test"}),
    );
    assert_eq!(status, 200, "trigger: {run}");
    run["run_id"].as_str().expect("run id").to_string()
}

fn run_status(addr: &str, run: &str) -> String {
    let (status, body) = get(addr, &format!("/v1/runs/{run}"));
    assert_eq!(status, 200, "run {run}: {body}");
    body["status"].as_str().unwrap_or_default().to_string()
}

fn runs(addr: &str, schedule: &str) -> Vec<Value> {
    let (status, body) = get(addr, &format!("/v1/runs?schedule_id={schedule}&limit=500"));
    assert_eq!(status, 200, "runs: {body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The README's commands
// ---------------------------------------------------------------------------------------

/// The command lines of the `sh` blocks under "## Docker Compose", comments removed.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Docker Compose")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has no Docker Compose section");
    let lines: Vec<String> = section
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .flat_map(str::lines)
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        !lines.is_empty(),
        "the Docker Compose section has no sh block"
    );
    lines
}

/// A README line as the test runs it. The only rewrites: `docker compose` gets this
/// project's name and env file (and becomes `docker-compose` where only v1 exists), the
/// env file is the test's own instead of `docker/.env`, `localhost:8080` is the port
/// compose picked, and `logs -f` does not follow.
fn rewrite(line: &str, stack: &Stack, addr: Option<&str>) -> String {
    let mut line = line
        .replace(
            "cp docker/.env.example docker/.env",
            &format!("cp docker/.env.example {}", stack.env_file.display()),
        )
        .replace("docker compose ", &format!("{} ", stack.prefix()))
        .replace(" logs -f ", " logs ");
    if let Some(addr) = addr {
        line = line.replace("localhost:8080", addr);
    }
    line
}

fn sh(line: &str) -> String {
    must(Command::new("sh").args(["-c", line]), line)
}

/// The README line that starts with `start` (after the rewrite's prefix).
fn readme_line<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("the README's Compose commands have no `{needle}`: {lines:?}"))
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[test]
fn the_compose_stack_runs_on_a_real_engine() {
    if let Some(reason) = skip_reason() {
        say!("the_compose_stack_runs_on_a_real_engine: NOT RUN: {reason}");
        return;
    }
    let started = Instant::now();
    let tool = compose_tool().expect("compose tool");
    must(
        Command::new("bash").arg("docker/standin/build.sh"),
        "building the stand-in base images",
    );
    say!("base images ready after {:?}", started.elapsed());
    let stack = Stack::new(tool);
    let readme = readme_commands();

    // Configure as the README says, then: a password, and free ports (PUBLISH_PORT=).
    sh(&rewrite(
        readme_line(&readme, "cp docker/.env.example"),
        &stack,
        None,
    ));
    let env = std::fs::read_to_string(&stack.env_file).expect("env file");
    let env: String = env
        .lines()
        .map(|l| match l.starts_with("POSTGRES_PASSWORD=") {
            true => format!("POSTGRES_PASSWORD=pw{}\n", std::process::id()),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&stack.env_file, format!("{env}PUBLISH_PORT=\n")).expect("env file");

    let build = Instant::now();
    stack.run(&["build"]);
    say!("image built in {:?}", build.elapsed());

    // up -d --build, word for word: the build is cached now, so this times the start.
    let up = Instant::now();
    sh(&rewrite(
        readme_line(&readme, " up -d --build"),
        &stack,
        None,
    ));
    stack.wait_healthy(2, Duration::from_secs(180));
    say!("`up -d` to both healthy: {:?}", up.elapsed());
    let addr = stack.address(1);
    let ready = sh(&rewrite(
        readme_line(&readme, "/readyz"),
        &stack,
        Some(&addr),
    ));
    assert!(ready.contains("\"ok\":true"), "readyz said {ready}");
    let logs = sh(&rewrite(
        readme_line(&readme, " logs "),
        &stack,
        Some(&addr),
    ));
    assert!(
        logs.contains("wakeplane listening"),
        "no start-up line in the logs: {logs}"
    );

    image_quality();

    // A schedule, triggered: the run succeeds with its receipts.
    let echo = create(
        &addr,
        json!({"name": "echo", "timezone": "UTC",
               "schedule": {"kind": "cron", "expr": "0 2 * * *"},
               "target": {"kind": "workflow", "workflow_id": "builtin.echo", "input": {"from": "docker"}}}),
    );
    let run = trigger(&addr, &echo);
    poll(
        "the triggered run succeeds",
        Duration::from_secs(60),
        || (run_status(&addr, &run) == "succeeded").then_some(()),
    );
    let (_, receipts) = get(&addr, &format!("/v1/runs/{run}/receipts"));
    let receipts = receipts["items"].as_array().cloned().unwrap_or_default();
    assert!(
        receipts
            .iter()
            .any(|r| r["receipt_kind"] == "workflow_result"
                && r["body"].as_str().is_some_and(|b| b.contains("docker"))),
        "no workflow_result receipt with the input: {receipts:?}"
    );

    // A restart of wakeplane alone: how long until it answers again.
    stack.run(&["stop", "wakeplane"]);
    let restart = Instant::now();
    stack.run(&["start", "wakeplane"]);
    let addr = stack.address(1);
    poll(
        "wakeplane answers after start",
        Duration::from_secs(60),
        || {
            http()
                .get(format!("http://{addr}/readyz"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        },
    );
    say!("wakeplane start to ready: {:?}", restart.elapsed());
    say!(
        "wakeplane container start to `wakeplane listening`: {} ms",
        start_to_listening(&stack)
    );

    let ticker = three_replicas_do_each_occurrence_once(&stack, &readme);
    let (sleeper, slow_run) = stop_drains(&stack);

    // down (keeping the volume) and up again: everything is still there.
    sh(&rewrite(readme_line(&readme, " down"), &stack, None));
    stack.run(&["up", "-d"]);
    stack.wait_healthy(2, Duration::from_secs(180));
    let addr = stack.address(1);
    for id in [&echo, &ticker, &sleeper] {
        let (status, body) = get(&addr, &format!("/v1/schedules/{id}"));
        assert_eq!(status, 200, "schedule {id} lost across down/up: {body}");
    }
    assert_eq!(run_status(&addr, &run), "succeeded");
    assert_eq!(run_status(&addr, &slow_run), "succeeded");
    say!("the whole docker test took {:?}", started.elapsed());
}

/// Milliseconds from the (only) wakeplane container's start to its listening log line,
/// both by the engine's clock.
fn start_to_listening(stack: &Stack) -> i64 {
    let id = &stack.containers("wakeplane")[0];
    let started: chrono::DateTime<chrono::Utc> = stack
        .inspect(id, "{{.State.StartedAt}}")
        .parse()
        .expect("StartedAt");
    let since = started.to_rfc3339();
    let logs = output(Command::new("docker").args(["logs", "--timestamps", "--since", &since, id]))
        .map(|o| text(&o))
        .unwrap_or_default();
    let line = logs
        .lines()
        .rfind(|l| l.contains("wakeplane listening"))
        .unwrap_or_else(|| panic!("no listening line since the start: {logs}"));
    let at: chrono::DateTime<chrono::Utc> = line
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp on {line:?}"));
    (at - started).num_milliseconds()
}

/// The runtime image: its size, a non-root user, no build tools.
fn image_quality() {
    let inspect = |format: &str| {
        must(
            Command::new("docker").args(["image", "inspect", "-f", format, "wakeplane:local"]),
            "docker image inspect",
        )
        .trim()
        .to_string()
    };
    let size: u64 = inspect("{{.Size}}").parse().expect("image size");
    say!("wakeplane:local is {:.1} MB", size as f64 / 1e6);
    let user = inspect("{{.Config.User}}");
    let uid = user.split(':').next().unwrap_or("");
    assert!(
        !uid.is_empty() && uid != "0" && uid != "root",
        "the image runs as {user:?}"
    );
    let tools = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "sh", "wakeplane:local", "-c"])
        .arg("for t in cc gcc cargo rustc make ld git; do command -v $t; done; id -u")
        .output()
        .expect("docker run");
    let found = String::from_utf8_lossy(&tools.stdout).to_string();
    let mut lines: Vec<&str> = found.lines().collect();
    let uid = lines.pop().unwrap_or_default();
    assert_ne!(uid, "0", "the container runs as root");
    assert!(
        lines.is_empty(),
        "build tools in the runtime image: {lines:?}"
    );
}

/// Three replicas, all healthy; an every-2-seconds schedule runs each occurrence exactly
/// once, also across a replica being stopped; exactly one replica runs its timer (the
/// replicas share the schedules), and another takes it over when that one stops.
fn three_replicas_do_each_occurrence_once(stack: &Stack, readme: &[String]) -> String {
    sh(&rewrite(
        readme_line(readme, "--scale wakeplane=3"),
        stack,
        None,
    ));
    stack.wait_healthy(4, Duration::from_secs(180));
    let addrs: Vec<String> = (1..=3).map(|i| stack.address(i)).collect();
    let second = sh(&rewrite(
        readme_line(readme, " port --index 2"),
        stack,
        None,
    ));
    assert_eq!(second.trim(), addrs[1], "the README's port command");
    let id = create(
        &addrs[0],
        json!({"name": "ticker", "timezone": "UTC",
               "schedule": {"kind": "interval", "every_seconds": 2},
               "target": {"kind": "workflow", "workflow_id": "builtin.noop"}}),
    );
    // Every replica sees it (picked up through the database within a second or two).
    for addr in &addrs {
        poll(
            "every replica serves the schedule",
            Duration::from_secs(30),
            || (get(addr, &format!("/v1/schedules/{id}")).0 == 200).then_some(()),
        );
    }
    poll("runs on three replicas", Duration::from_secs(60), || {
        (runs(&addrs[0], &id).len() >= 5).then_some(())
    });
    // Each schedule is owned by one replica: the actors of the replicas that answer add
    // up to the schedules stored (earlier steps left some; a stopped replica answers
    // nothing and counts 0).
    let shared = |addrs: &[String]| -> bool {
        let statuses: Vec<Value> = addrs
            .iter()
            .filter_map(|a| http().get(format!("http://{a}/v1/status")).send().ok())
            .filter_map(|r| r.json::<Value>().ok())
            .collect();
        let actors: i64 = statuses
            .iter()
            .map(|s| s["actors"]["total"].as_i64().unwrap_or(0))
            .sum();
        statuses
            .first()
            .is_some_and(|s| s["schedules"]["total"].as_i64() == Some(actors))
    };
    poll(
        "each schedule on one replica",
        Duration::from_secs(30),
        || shared(&addrs).then_some(()),
    );
    let replicas = stack.containers("wakeplane");
    assert_eq!(replicas.len(), 3, "replicas: {replicas:?}");
    let stopped = &replicas[2];
    must(
        Command::new("docker").args(["stop", stopped]),
        "docker stop",
    );
    assert_eq!(stack.inspect(stopped, "{{.State.ExitCode}}"), "0");
    let before = runs(&addrs[0], &id).len();
    poll(
        "runs go on without the stopped replica",
        Duration::from_secs(60),
        || (runs(&addrs[0], &id).len() >= before + 5).then_some(()),
    );
    poll(
        "each schedule on one of the two replicas left",
        Duration::from_secs(30),
        || shared(&addrs).then_some(()),
    );
    let (status, body) = post(&addrs[0], &format!("/v1/schedules/{id}/pause"), &json!({}));
    assert_eq!(status, 200, "pause: {body}");
    let all = poll(
        "every run of the ticker finished",
        Duration::from_secs(60),
        || {
            let all = runs(&addrs[0], &id);
            all.iter()
                .all(|r| r["status"] == "succeeded")
                .then_some(all)
        },
    );
    let mut times: Vec<chrono::DateTime<chrono::Utc>> = all
        .iter()
        .map(|r| {
            assert_eq!(r["attempt"], 1, "a retry: {r}");
            r["nominal_time"]
                .as_str()
                .expect("nominal_time")
                .parse()
                .expect("time")
        })
        .collect();
    times.sort();
    let n = times.len();
    times.dedup();
    assert_eq!(times.len(), n, "an occurrence ran twice: {all:?}");
    for pair in times.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_seconds(),
            2,
            "a gap in the occurrences between {} and {}",
            pair[0],
            pair[1]
        );
    }
    let mut workers: Vec<String> = all
        .iter()
        .filter_map(|r| {
            let run = get(&addrs[0], &format!("/v1/runs/{}", r["id"].as_str()?)).1;
            run["claimed_by_worker_id"].as_str().map(String::from)
        })
        .collect();
    workers.sort();
    workers.dedup();
    say!("{n} occurrences once each, executed by {workers:?}");
    id
}

/// `stop` lets a running run finish within stop_grace_period: every wakeplane exits 0
/// (not 137, killed) and the run is recorded succeeded, not cancelled.
fn stop_drains(stack: &Stack) -> (String, String) {
    stack.run(&["up", "-d", "--scale", "wakeplane=1"]);
    stack.wait_healthy(2, Duration::from_secs(180));
    let addr = stack.address(1);
    let id = create(
        &addr,
        json!({"name": "sleeper", "timezone": "UTC",
               "schedule": {"kind": "cron", "expr": "0 2 * * *"},
               "target": {"kind": "workflow", "workflow_id": "builtin.sleep", "input": {"seconds": 5}}}),
    );
    let run = trigger(&addr, &id);
    poll("the slow run is running", Duration::from_secs(30), || {
        (run_status(&addr, &run) == "running").then_some(())
    });
    let replicas = stack.containers("wakeplane");
    let stop = Instant::now();
    stack.run(&["stop"]);
    say!("`stop` with a 5 s run in flight took {:?}", stop.elapsed());
    for id in &replicas {
        assert_eq!(
            stack.inspect(id, "{{.State.ExitCode}}"),
            "0",
            "wakeplane {id} did not exit by itself within stop_grace_period"
        );
    }
    (id, run)
}

#[test]
fn readme_commands_are_found_and_rewritten() {
    let lines = readme_commands();
    assert!(
        lines.iter().any(|l| l.starts_with("docker compose ")),
        "{lines:?}"
    );
    let stack = Stack {
        tool: vec!["docker-compose"],
        project: "p".into(),
        dir: PathBuf::from("/tmp"),
        env_file: PathBuf::from("/tmp/e"),
    };
    let line = rewrite(
        "docker compose -f docker/compose.yaml logs -f wakeplane",
        &stack,
        None,
    );
    assert_eq!(
        line,
        "docker-compose -p p --env-file /tmp/e -f docker/compose.yaml logs wakeplane"
    );
    std::mem::forget(stack);
    assert!(Path::new(&root().join("docker/standin/build.sh")).exists());
}
