//! `wakeplane-bench`: benchmark scenarios that print numbers (never pass/fail).
//!
//! Each run starts its own PostgreSQL and the real server — in this process on its own
//! actix System, or, for `memory` and `boot`, as a child `wakeplane` process so its RSS
//! and start-up are the server's alone — drives it over HTTP, and reads results back from the database.
//!
//! ```sh
//! cargo build --release --bins
//! cargo run --release --bin wakeplane-bench -- fire-lag --schedules 1000
//! cargo run --release --bin wakeplane-bench -- throughput --runs 5000 --schedules 8
//! cargo run --release --bin wakeplane-bench -- memory --schedules 100000
//! cargo run --release --bin wakeplane-bench -- boot --schedules 100000
//! cargo run --release --bin wakeplane-bench -- cluster --schedules 3000 --commands 200
//! cargo run --release --bin wakeplane-bench -- crud --schedules 5000
//! cargo run --release --bin wakeplane-bench -- retention --runs 1000000
//! cargo run --release --bin wakeplane-bench -- --retention-days 7 fire-lag --schedules 1000 \
//!     --every-seconds 10 --old-runs 1000000
//! ```
//!
//! See benches/README.md for what each scenario measures and recorded numbers.

mod boot;
mod cluster;
mod crud;
mod env;
mod fire_lag;
mod memory;
mod reads;
mod report;
mod retention;
mod scrape;
mod sink;
mod throughput;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wakeplane-bench",
    about = "Benchmarks for wakeplane (numbers, not tests)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Server WAKEPLANE_WORKERS (default: the server's default).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Server WAKEPLANE_DB_POOL_SIZE (default: the server's default).
    #[arg(long, global = true)]
    db_pool_size: Option<u32>,
    /// Server WAKEPLANE_RUN_RETENTION_DAYS (in-process server; default: unset).
    #[arg(long, global = true)]
    retention_days: Option<u64>,
    /// Load pg_stat_statements and print the statements that took the most time.
    #[arg(long, global = true)]
    pg_stat_statements: bool,
    /// PostgreSQL with fsync on (default: fsync off, as in the tests).
    #[arg(long, global = true)]
    durable: bool,
}

#[derive(Subcommand)]
enum Scenario {
    /// N schedules fire on their own: lag from nominal time to run start.
    FireLag(fire_lag::FireLagArgs),
    /// N manual triggers: accept rate and durable runs per second end to end.
    Throughput(throughput::ThroughputArgs),
    /// RSS of a `wakeplane` child holding N idle schedule actors.
    Memory(memory::MemoryArgs),
    /// Process start → ready with N schedules and every actor armed.
    Boot(boot::BootArgs),
    /// Ledger retention over N old runs: the delete rate.
    Retention(retention::RetentionArgs),
    /// Creates/s, GET /v1/schedules/{id} req/s and latency, deletes/s.
    Crud(crud::CrudArgs),
    /// The schedule list by label selector over many schedules; /v1/status over a big ledger.
    Reads(reads::ReadsArgs),
    /// Three nodes: command-to-owner latency through a non-owner, hand-over after SIGKILL.
    Cluster(cluster::ClusterArgs),
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wakeplane-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let tuning = env::ServerTuning {
        workers: cli.workers,
        db_pool_size: cli.db_pool_size,
        run_retention_days: cli.retention_days,
    };
    match &cli.scenario {
        // Fail before starting PostgreSQL when the server binary is missing.
        Scenario::Memory(_)
        | Scenario::Cluster(_)
        | Scenario::Boot(boot::BootArgs {
            server_binary: None,
            ..
        }) => {
            env::server_binary()?;
        }
        _ => {}
    }
    env::progress(format_args!("starting PostgreSQL"));
    let mut db = env::Database::start(cli.durable)?;
    if cli.pg_stat_statements {
        db.enable_statement_stats()?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;
    runtime.block_on(async {
        match &cli.scenario {
            Scenario::FireLag(args) => fire_lag::run(args, &db, tuning).await,
            Scenario::Throughput(args) => throughput::run(args, &db, tuning).await,
            Scenario::Memory(args) => memory::run(args, &db, tuning).await,
            Scenario::Boot(args) => boot::run(args, &db, tuning).await,
            Scenario::Reads(args) => reads::run(args, &db, tuning).await,
            Scenario::Cluster(args) => cluster::run(args, &db, tuning).await,
            Scenario::Crud(args) => crud::run(args, &db, tuning).await,
            Scenario::Retention(args) => retention::run(args, &db, tuning).await,
        }
    })?;
    if cli.pg_stat_statements {
        report::table(
            "Statements by total time (pg_stat_statements)",
            &["calls", "total ms", "mean ms", "rows", "statement"],
            &db.statements(15)?,
        );
    }
    let mut facts = env::machine_facts(&db);
    facts.push((
        "server".into(),
        format!(
            "WAKEPLANE_WORKERS={}, WAKEPLANE_DB_POOL_SIZE={}, WAKEPLANE_RUN_RETENTION_DAYS={}{}",
            cli.workers.map_or("default".into(), |w| w.to_string()),
            cli.db_pool_size.map_or("default".into(), |p| p.to_string()),
            cli.retention_days.map_or("unset".into(), |d| d.to_string()),
            if matches!(
                cli.scenario,
                Scenario::Memory(_) | Scenario::Boot(_) | Scenario::Cluster(_)
            ) {
                ", child process(es) `wakeplane serve`"
            } else {
                ", in-process (no log subscriber)"
            }
        ),
    ));
    report::facts("Machine", &facts);
    println!("\ncommand: {}", command_line());
    Ok(())
}

/// The invocation, as `cargo run` would take it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    format!(
        "cargo run --release --bin wakeplane-bench -- {}",
        args.join(" ")
    )
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
