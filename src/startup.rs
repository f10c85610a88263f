//! Provides `Application`: builds the store connection, the HTTP server (bound by itself,
//! so tests pass port 0) and everything they share, and runs them until stopped.
//!
//! `main` and the integration tests start exactly this; nothing here parses the CLI.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};

use tracing_actix_web::TracingLogger;

use crate::actors::retention::RetentionSettings;
use crate::actors::{Scheduler, SchedulerConfig};
use crate::api::auth::{self, Auth, Tokens};
use crate::api::{self, AppState};
use crate::commands::Commands;
use crate::config::Config;
use crate::domain::backoff::Backoff;
use crate::executors::WorkflowRegistry;
use crate::metrics::Metrics;
use crate::pg::PgCluster;
use crate::security::{self, TargetPolicy};
use crate::store::{self, Store, StoreError};

/// Where the database is: given by `DATABASE_URL`, or a private cluster we own.
pub struct Database {
    pub url: String,
    /// Kept alive for as long as the database is used; stopped on drop.
    pub cluster: Option<PgCluster>,
}

impl Database {
    /// Uses `DATABASE_URL`, or starts (first time: creates) the private cluster in
    /// `WAKEPLANE_DATA_DIR` and its `wakeplane` database. Blocking.
    pub fn resolve(config: &Config) -> anyhow::Result<Database> {
        if let Some(url) = &config.database_url {
            return Ok(Database {
                url: url.clone(),
                cluster: None,
            });
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let cluster = PgCluster::start(&config.data_dir)?;
        store::ensure_database(&cluster.url("postgres"), "wakeplane")?;
        Ok(Database {
            url: cluster.url("wakeplane"),
            cluster: Some(cluster),
        })
    }
}

/// The wait between migration attempts while the database comes up.
const MIGRATION_RETRY: Backoff = Backoff::constant(Duration::from_millis(500));

/// Applies migrations, waiting up to `patience` for the database to come up. Blocking.
pub fn migrate_with_patience(store: &Store, patience: Duration) -> Result<usize, StoreError> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match store.migrate() {
            Err(StoreError::Unavailable(cause)) if std::time::Instant::now() < deadline => {
                tracing::warn!(%cause, "database not reachable yet; retrying migrations");
                std::thread::sleep(MIGRATION_RETRY.delay(0));
            }
            other => return other,
        }
    }
}

/// A built, listening application with its scheduler running.
pub struct Application {
    port: u16,
    server: Server,
    scheduler: Scheduler,
    shutdown_timeout: Duration,
}

impl Application {
    /// Binds `config.http_addr` and wires the app over `store` (already migrated).
    pub async fn build(
        config: &Config,
        store: Store,
        workflows: WorkflowRegistry,
    ) -> anyhow::Result<Application> {
        let tokens = match &config.api_tokens {
            Some(spec) => Some(
                Tokens::parse(spec).map_err(|e| anyhow::anyhow!("WAKEPLANE_API_TOKENS: {e}"))?,
            ),
            None => None,
        };
        let targets = TargetPolicy::resolve(&config.targets).map_err(|e| anyhow::anyhow!(e))?;
        // Before anything is spawned: commands must not read our environment or memory.
        if let Err(e) = security::forbid_dumping() {
            tracing::warn!(error = %e, "could not mark the process non-dumpable; commands running as this user could read its environment");
        }
        tracing::info!(
            shell_targets = ?targets.shell.mode,
            shell_runs_as = %targets.shell.run_as.describe(),
            http_targets = %targets.net.describe(),
            "target policy"
        );
        // Bound first: the address the cluster is told is the one really listened on.
        let listener = TcpListener::bind(&config.http_addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.http_addr))?;
        let local = listener.local_addr()?;
        let port = local.port();
        let scheduler = Scheduler::start(
            SchedulerConfig {
                worker_id: config.worker_id.clone(),
                workers: config.workers,
                lease_ttl: config.lease_ttl,
                node_ttl: config.node_ttl,
                advertise_addr: config
                    .advertise_addr
                    .clone()
                    .unwrap_or_else(|| advertised(local)),
                targets: targets.clone(),
                retention: config.run_retention.map(|keep| RetentionSettings {
                    keep,
                    interval: config.run_retention_interval,
                }),
            },
            store.clone(),
            workflows,
            Metrics::new(),
        )
        .await?;
        if tokens.is_none() && !local.ip().is_loopback() {
            tracing::warn!(addr = %local, "the API is open (no WAKEPLANE_API_TOKENS) on a non-loopback address");
        }
        let auth = web::Data::new(Auth(tokens));
        let sessions = web::Data::new(crate::console::Sessions::default());
        let state = web::Data::new(AppState {
            commands: Commands::new(&scheduler),
            scheduler: scheduler.clone(),
            store,
            node_id: config.worker_id.clone(),
            started_at: crate::store::now(),
            targets: Arc::new(targets),
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(auth::require_token))
                .wrap(middleware::from_fn(auth::request_id_header))
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(auth.clone())
                .app_data(sessions.clone())
                .configure(crate::console::configure)
                .configure(api::configure)
        })
        .listen(listener)?
        .shutdown_timeout(5)
        .disable_signals()
        .run();
        tracing::info!(addr = %config.http_addr, port, "wakeplane listening");
        Ok(Application {
            port,
            server,
            scheduler,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Serves until the handle stops the server (tests, embedders).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully: stop firing and
    /// claiming, drain running work for `WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS`, cancel what
    /// is left, release leases, stop HTTP.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let scheduler = self.scheduler.clone();
        let drain = self.shutdown_timeout;
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            scheduler.shutdown(drain).await;
            handle.stop(true).await;
        });
        self.server.await
    }
}

/// What a node shows of `local` when no `WAKEPLANE_ADVERTISE_ADDR` is set: the address
/// itself, or `<host name>:<port>` when it listens on every interface (`0.0.0.0`, `::`).
fn advertised(local: std::net::SocketAddr) -> String {
    let host = crate::config::host_name();
    if local.ip().is_unspecified() && !host.is_empty() {
        format!("{host}:{}", local.port())
    } else {
        local.to_string()
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
