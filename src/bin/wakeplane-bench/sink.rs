//! The benchmarks' HTTP target and shell target: a sink on its own thread that answers
//! every request 204 and counts each (run id, attempt) it receives, the outside witness
//! that runs really executed once; and the target JSON a scenario's schedules use.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::{anyhow, Result};
use serde_json::{json, Value};

/// What the benchmark's schedules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// The in-process `builtin.noop` workflow handler.
    Noop,
    /// `POST` to the bench's own HTTP sink on 127.0.0.1.
    Http,
    /// The shell command `true`.
    Shell,
}

/// Requests received by the sink: total and distinct (run id, attempt) pairs.
#[derive(Default)]
struct Received {
    total: u64,
    distinct: HashSet<(String, String)>,
}

/// A running sink (HTTP targets) or nothing (the other kinds).
pub struct Sink {
    pub kind: TargetKind,
    url: String,
    received: Arc<Mutex<Received>>,
    stop: Option<actix_web::dev::ServerHandle>,
}

impl Sink {
    pub fn start(kind: TargetKind) -> Result<Sink> {
        let received = Arc::new(Mutex::new(Received::default()));
        if kind != TargetKind::Http {
            return Ok(Sink {
                kind,
                url: String::new(),
                received,
                stop: None,
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = received.clone();
        std::thread::spawn(move || {
            let sys = actix_web::rt::System::new();
            sys.block_on(async move {
                let data = web::Data::from(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(receive))
                })
                .workers(1)
                .bind("127.0.0.1:0");
                let server = match server {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let port = server.addrs().first().map(|a| a.port()).unwrap_or(0);
                let running = server.run();
                let _ = tx.send(Ok((port, running.handle())));
                let _ = running.await;
            });
        });
        let (port, handle) = rx
            .recv()
            .map_err(|_| anyhow!("the sink thread ended"))?
            .map_err(|e| anyhow!("binding the sink: {e}"))?;
        Ok(Sink {
            kind,
            url: format!("http://127.0.0.1:{port}/hit"),
            received,
            stop: Some(handle),
        })
    }

    /// The `target` of a schedule body.
    pub fn target(&self) -> Value {
        match self.kind {
            TargetKind::Noop => json!({"kind": "workflow", "workflow_id": "builtin.noop"}),
            TargetKind::Http => json!({"kind": "http", "method": "POST", "url": self.url}),
            TargetKind::Shell => json!({"kind": "shell", "command": "true"}),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self.kind {
            TargetKind::Noop => "builtin.noop",
            TargetKind::Http => "HTTP POST to the bench's sink",
            TargetKind::Shell => "shell `true`",
        }
    }

    /// `(requests, distinct run attempts)` received; `None` unless this is the HTTP sink.
    pub fn received(&self) -> Option<(u64, usize)> {
        if self.kind != TargetKind::Http {
            return None;
        }
        let r = self.received.lock().ok()?;
        Some((r.total, r.distinct.len()))
    }

    /// A line for the report: what the target saw next to what the ledger says succeeded.
    pub fn witness(&self, succeeded: usize) -> Option<(String, String)> {
        let (total, distinct) = self.received()?;
        Some((
            "the sink received".into(),
            format!(
                "{total} requests, {distinct} distinct run attempts ({succeeded} succeeded in \
                 the ledger{})",
                if total as usize == distinct {
                    ", none twice"
                } else {
                    "; SOME TWICE"
                }
            ),
        ))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(h) = self.stop.take() {
            drop(h.stop(false));
        }
    }
}

async fn receive(req: HttpRequest, data: web::Data<Mutex<Received>>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    if let Ok(mut r) = data.lock() {
        r.total += 1;
        r.distinct
            .insert((header("wakeplane-run-id"), header("wakeplane-attempt")));
    }
    HttpResponse::NoContent().finish()
}
