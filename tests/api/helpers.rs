//! Spawns the real application on a random port against a fresh database of this test
//! binary's own PostgreSQL cluster, and offers one typed method per endpoint.
//! Shared by several test binaries (`#[path]`), each using a subset of it.
#![allow(dead_code)]

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wakeplane::config::Config;
use wakeplane::executors::WorkflowRegistry;
use wakeplane::pg::PgCluster;
use wakeplane::startup::Application;
use wakeplane::store::{self, Store};

/// One cluster per test binary, with a migrated template database to clone per test.
static CLUSTER: LazyLock<Result<PgCluster, String>> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        wakeplane::telemetry::init(wakeplane::config::LogFormat::Text);
    }
    let cluster = PgCluster::temporary().map_err(|e| e.to_string())?;
    store::ensure_database(&cluster.url("postgres"), "wp_template").map_err(|e| e.to_string())?;
    let template = Store::new(&cluster.url("wp_template"), 1);
    template.migrate().map_err(|e| e.to_string())?;
    drop(template);
    Ok(cluster)
});

pub fn cluster() -> &'static PgCluster {
    match &*CLUSTER {
        Ok(c) => c,
        Err(e) => panic!("test PostgreSQL cluster failed to start: {e}"),
    }
}

/// A fresh, migrated database; returns its URL.
pub fn fresh_database() -> String {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let cluster = cluster();
    let name = format!("wp_{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut admin =
        diesel::PgConnection::establish(&cluster.url("postgres")).expect("admin connection");
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE wp_template"))
        .expect("create test database");
    cluster.url(&name)
}

pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::from_lookup(|_| None).expect("default config");
    config.http_addr = "127.0.0.1:0".into();
    config.database_url = Some(database_url.to_string());
    config.db_pool_size = 5;
    config.worker_id = "wrk_test".into();
    // The tests share temporary directories with their shell targets: as root, run them
    // as root explicitly (a root server would otherwise run them as `nobody`).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        config.targets.shell_user = Some("root".into());
    }
    config
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database_url: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(fresh_database(), tweak).await
}

/// Like [`spawn_app_with`], on `database_url` (e.g. [`fresh_database`]'s URL with a
/// password added: the test cluster trusts its socket, so libpq never sends it).
pub async fn spawn_app_on(database_url: String, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(&database_url);
    tweak(&mut config);
    let store = Store::new(&database_url, config.db_pool_size);
    let app = Application::build(&config, store, WorkflowRegistry::with_builtins())
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
        database_url,
    }
}

/// A response's status and JSON body (Null when the body is not JSON).
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    /// Asserts the JSON error envelope with `code` and returns the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "body: {}",
            self.body
        );
        assert!(self.body["details"].is_array(), "body: {}", self.body);
        &self.body
    }

    /// The `field`s of a validation error's details.
    pub fn detail_fields(&self) -> Vec<String> {
        self.body["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        Reply::from(
            self.client
                .delete(self.url(path))
                .send()
                .await
                .expect("DELETE"),
        )
        .await
    }

    pub async fn send_json(&self, method: reqwest::Method, path: &str, body: &Value) -> Reply {
        Reply::from(
            self.client
                .request(method, self.url(path))
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Reply::from(req.send().await.expect("POST")).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send_json(reqwest::Method::PATCH, path, body).await
    }

    /// Creates a schedule and returns its body; panics unless 201.
    pub async fn create_schedule(&self, body: &Value) -> Value {
        let r = self.post("/v1/schedules", body).await;
        assert_eq!(r.status, 201, "create failed: {}", r.body);
        r.body
    }

    pub async fn trigger(&self, schedule_id: &str, reason: &str) -> Value {
        let r = self
            .post(
                &format!("/v1/schedules/{schedule_id}/trigger"),
                &json!({"reason": reason}),
            )
            .await;
        assert_eq!(r.status, 200, "trigger failed: {}", r.body);
        r.body
    }

    /// Follows `next_cursor` through every page of `path` (which has no query yet or has one).
    pub async fn collect_pages(&self, path: &str, limit: usize) -> (Vec<Value>, usize) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut pages = 0;
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let r = self.get(&url).await;
            assert_eq!(r.status, 200, "{}", r.body);
            pages += 1;
            let page = r.body["items"].as_array().cloned().unwrap_or_default();
            assert!(page.len() <= limit);
            items.extend(page);
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
            assert!(pages < 1000, "paging does not end");
        }
        (items, pages)
    }

    /// Polls `GET path` until `pred` holds or `timeout` passes; returns the last body.
    pub async fn poll(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get(path).await;
            if r.status == 200 && pred(&r.body) {
                return r.body;
            }
            if Instant::now() > deadline {
                panic!(
                    "condition not met within {timeout:?} on {path}; last: {}",
                    r.body
                );
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A valid create body with a unique-ish name.
pub fn schedule_body(name: &str) -> Value {
    json!({
        "name": name,
        "timezone": "UTC",
        "schedule": {"kind": "cron", "expr": "0 2 * * *"},
        "target": {"kind": "workflow", "workflow_id": "builtin.noop", "input": {"n": 1}}
    })
}

/// Waits until a schedule has at least `n` succeeded runs.
pub async fn wait_for_runs(app: &TestApp, schedule_id: &str, n: usize) {
    app.poll(
        &format!("/v1/runs?schedule_id={schedule_id}&status=succeeded"),
        Duration::from_secs(30),
        |b| b["items"].as_array().is_some_and(|i| i.len() >= n),
    )
    .await;
}
