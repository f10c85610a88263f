//! The `wakeplane` binary: `serve` (the default) runs the API and scheduler, `migrate`
//! applies the schema, and the client commands (`schedule`, `run`, `status`, `apply`) talk
//! to a running server through `wakeplane::cli`. Thin: parsing the command line, then one
//! call into the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wakeplane::config::Config;
use wakeplane::executors::WorkflowRegistry;
use wakeplane::startup::{migrate_with_patience, Application, Database};
use wakeplane::store::Store;

#[derive(Parser)]
#[command(
    name = "wakeplane",
    version,
    about = "A durable scheduling control plane"
)]
struct Cli {
    #[command(flatten)]
    client: wakeplane::cli::GlobalOpts,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the scheduler (default). Starts a private PostgreSQL in
    /// WAKEPLANE_DATA_DIR when DATABASE_URL is unset.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    #[command(flatten)]
    Client(wakeplane::cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let run: fn(Config) -> anyhow::Result<()> = match cli.command.unwrap_or(Command::Serve) {
        // Client commands need no server configuration: they only talk HTTP.
        Command::Client(command) => return wakeplane::cli::run(&cli.client, command),
        Command::Serve => serve,
        Command::Migrate => migrate,
    };
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wakeplane: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    wakeplane::telemetry::init(config.log_format);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "wakeplane stopped with an error");
            eprintln!("wakeplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(config: Config) -> anyhow::Result<()> {
    let db = Database::resolve(&config)?;
    let store = Store::new(&db.url, 2);
    let n = migrate_with_patience(&store, Duration::from_secs(60))?;
    println!("applied {n} migration(s)");
    Ok(())
}

/// Overwrites a secret's bytes before freeing them (volatile, so it is not optimised away).
fn wipe(secret: Option<String>) {
    if let Some(secret) = secret {
        let mut bytes = secret.into_bytes();
        for b in bytes.iter_mut() {
            // SAFETY: `b` is a valid, exclusive reference into `bytes`.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

fn serve(mut config: Config) -> anyhow::Result<()> {
    let db = Database::resolve(&config)?;
    let store = Store::new(&db.url, config.db_pool_size);
    let applied = migrate_with_patience(&store, Duration::from_secs(60))?;
    tracing::info!(applied, database = %store.location(), "database ready");
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let app = Application::build(&config, store, WorkflowRegistry::with_builtins()).await?;
        // The server keeps only the tokens' digests from here on.
        wipe(config.api_tokens.take());
        app.run_until_signal().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    drop(db);
    Ok(())
}
