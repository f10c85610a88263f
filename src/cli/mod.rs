//! Provides the `wakeplane` client commands (`schedule`, `run`, `status`, `apply`): their
//! clap definitions and dispatch onto the HTTP API, with exit codes 0 ok, 1 API error or
//! failed step, 2 usage/input error, 3 server unreachable.
//!
//! It talks to a server only over HTTP: it must not open the database or start the
//! scheduler, and it never panics on bad input or server answers.

pub mod apply;
pub mod client;
pub mod export;
pub mod output;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::domain::labels::Selector;
use client::{segment, CliError, Client};

/// Where the client commands connect when neither `--server` nor `WAKEPLANE_SERVER` is set.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The nine run statuses (`run list --status`).
const RUN_STATUSES: [&str; 9] = [
    "pending",
    "claimed",
    "running",
    "succeeded",
    "failed",
    "retry_scheduled",
    "dead_lettered",
    "cancelled",
    "skipped",
];

/// Options shared by every client command (accepted before or after the subcommand).
#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Server base URL for client commands.
    #[arg(
        long,
        global = true,
        env = "WAKEPLANE_SERVER",
        hide_env_values = true,
        default_value = DEFAULT_SERVER,
        value_name = "URL",
        help_heading = "Client options"
    )]
    pub server: String,
    /// Bearer token for client commands (sent as `Authorization: Bearer <TOKEN>`).
    #[arg(
        long,
        global = true,
        env = "WAKEPLANE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Client options"
    )]
    pub token: Option<String>,
    /// Output of client commands: readable tables or the API's JSON for scripts; `export`
    /// writes YAML unless `-o json`.
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        default_value_t = Format::Table,
        help_heading = "Client options"
    )]
    pub output: Format,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// The client commands, flattened into the binary's command list.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, list, inspect, pause, resume, trigger and delete schedules.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// List and inspect runs and their receipts.
    #[command(subcommand)]
    Run(RunCommand),
    /// Show the server's status (database, scheduler, run counts).
    Status,
    /// Make the server's schedules match manifests, by name (create, update, prune).
    Apply(ApplyArgs),
    /// Write the server's schedules as manifests `apply` reads back as unchanged.
    Export {
        /// Only schedules whose labels match this selector (e.g. `team=data,env!=dev`).
        #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
        selector: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Create schedules from YAML or JSON manifests (one or several documents each).
    Create {
        /// Manifest file, directory (*.yaml, *.yml, *.json) or `-` for stdin; repeatable.
        #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
        files: Vec<String>,
    },
    /// List schedules, newest first.
    List {
        /// Only enabled (true) or paused (false) schedules.
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
        /// Only schedules whose labels match (`team=data`, `env in (prod,dev)`, `!legacy`, …).
        #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
        selector: Option<String>,
        /// Page size (1-500; the server's default is 50).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: Option<u32>,
        /// Continue from a previous page's next_cursor.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Follow next_cursor and list every page.
        #[arg(long)]
        all: bool,
    },
    /// Show one schedule.
    Get {
        /// Schedule id (sch_…) or name.
        schedule: String,
    },
    /// Pause a schedule (idempotent).
    Pause {
        /// Schedule id (sch_…) or name.
        schedule: String,
        /// Why it is paused (shown as pause_note until it is resumed; at most 1,024 characters).
        #[arg(long)]
        note: Option<String>,
    },
    /// Resume a paused schedule (idempotent).
    Resume {
        /// Schedule id (sch_…) or name.
        schedule: String,
    },
    /// Start a run now.
    Trigger {
        /// Schedule id (sch_…) or name.
        schedule: String,
        /// Why (recorded on the run); required.
        #[arg(long, required = true)]
        reason: String,
    },
    /// Show the next fire instants.
    Upcoming {
        /// Schedule id (sch_…) or name.
        schedule: String,
        /// How many (1-100).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
        count: u32,
    },
    /// Run the cadence's fire times in a past window now, oldest first (missing ones only).
    Backfill {
        /// Schedule id (sch_…) or name.
        schedule: String,
        /// Window start, inclusive (RFC 3339 with offset).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// Window end, exclusive, not in the future (RFC 3339 with offset).
        #[arg(long, value_name = "TIME")]
        to: String,
        /// Why (recorded on each run); required unless --dry-run.
        #[arg(long, required_unless_present = "dry_run")]
        reason: Option<String>,
        /// Print the fire times the window holds without creating anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a schedule and its runs, receipts and dead letters.
    Delete {
        /// Schedule id (sch_…) or name.
        schedule: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunCommand {
    /// List runs, newest first.
    List {
        /// Only runs of this schedule (id or name).
        #[arg(long, value_name = "SCHEDULE")]
        schedule: Option<String>,
        /// Only runs with this status.
        #[arg(long, value_parser = RUN_STATUSES)]
        status: Option<String>,
        /// Page size (1-500; the server's default is 50).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: Option<u32>,
        /// Continue from a previous page's next_cursor.
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Follow next_cursor and list every page.
        #[arg(long)]
        all: bool,
    },
    /// Show one run.
    Get {
        /// Run id (run_…).
        run: String,
    },
    /// Show a run's receipts (stdout, stderr, responses, results), oldest first.
    Receipts {
        /// Run id (run_…).
        run: String,
    },
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Manifest file, directory (*.yaml, *.yml, *.json, not recursive) or `-`; repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub files: Vec<String>,
    /// Print the plan without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete schedules that no manifest names (with `-l`, only those the selector matches).
    #[arg(long)]
    pub prune: bool,
    /// Apply only the manifests whose labels match, and prune only schedules that match.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// Runs one client command and returns the process exit code; errors go to stderr as
/// `error: …` (with one indented line per field detail).
pub fn run(opts: &GlobalOpts, command: Command) -> ExitCode {
    match dispatch(opts, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            err(&format!("error: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`wakeplane … | head` must not panic).
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn outln(text: &str) {
    out(&format!("{text}\n"));
}

fn err(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn print_json(v: &Value) {
    outln(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

/// A selector checked here before anything is sent (the server would refuse it anyway).
fn parse_selector(s: &str) -> Result<Selector, CliError> {
    Selector::parse(s).map_err(|e| CliError::usage(format!("bad selector {s:?}: {e}")))
}

struct Ctx {
    client: Client,
    json: bool,
}

fn dispatch(opts: &GlobalOpts, command: Command) -> Result<(), CliError> {
    let ctx = Ctx {
        client: Client::new(&opts.server, opts.token.as_deref())?,
        json: opts.output == Format::Json,
    };
    if opts.output == Format::Yaml && !matches!(command, Command::Export { .. }) {
        return Err(CliError::usage(
            "-o yaml is for `export` only; use -o table or -o json",
        ));
    }
    match command {
        Command::Schedule(c) => schedule(&ctx, c),
        Command::Run(c) => run_command(&ctx, c),
        Command::Status => {
            let s = ctx.client.get("/v1/status", &[])?;
            if ctx.json {
                print_json(&s);
            } else {
                out(&output::status(&s));
            }
            Ok(())
        }
        Command::Apply(a) => apply_command(&ctx, a),
        Command::Export { selector } => {
            let parsed = selector.as_deref().map(parse_selector).transpose()?;
            let both = selector.as_deref().zip(parsed.as_ref());
            let text = export::export(&ctx.client, both, opts.output == Format::Json)?;
            out(&text);
            Ok(())
        }
    }
}

/// An id as the server mints them: `sch_` and a 26-character ULID.
fn looks_like_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A schedule id from an id or a name (names are looked up through every page).
fn resolve_schedule(client: &Client, given: &str) -> Result<String, CliError> {
    let given = given.trim();
    if looks_like_id(given, "sch_") {
        return Ok(given.to_string());
    }
    if given.is_empty() {
        return Err(CliError::usage("a schedule id or name is required"));
    }
    let all = client.get_all("/v1/schedules", &[], 500)?;
    all.iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(given))
        .and_then(|s| s.get("id").and_then(Value::as_str))
        .map(str::to_string)
        .ok_or_else(|| CliError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("no schedule has the id or name {given:?}"),
            details: Vec::new(),
        })
}

fn schedule_path(client: &Client, given: &str, suffix: &str) -> Result<String, CliError> {
    let id = resolve_schedule(client, given)?;
    Ok(format!("/v1/schedules/{}{suffix}", segment(&id)))
}

fn page_query(limit: Option<u32>, cursor: Option<String>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = limit {
        q.push(("limit", l.to_string()));
    }
    if let Some(c) = cursor {
        q.push(("cursor", c));
    }
    q
}

/// One page (or all of them) of a list endpoint, as `{"items", "next_cursor"}`.
fn list_page(
    client: &Client,
    path: &str,
    mut query: Vec<(&'static str, String)>,
    limit: Option<u32>,
    cursor: Option<String>,
    all: bool,
) -> Result<Value, CliError> {
    if all {
        let items = client.get_all(path, &query, limit.unwrap_or(500))?;
        return Ok(json!({"items": items, "next_cursor": null}));
    }
    query.extend(page_query(limit, cursor));
    let page = client.get(path, &query)?;
    if !page.get("items").is_some_and(Value::is_array) {
        return Err(client::unexpected(path, &page));
    }
    Ok(page)
}

fn print_list(ctx: &Ctx, page: &Value, table: fn(&[Value]) -> String) {
    if ctx.json {
        print_json(page);
        return;
    }
    let items = page
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    out(&table(items));
    if let Some(c) = page.get("next_cursor").and_then(Value::as_str) {
        err(&format!("(more results: add --all, or --cursor {c})"));
    }
}

fn schedule(ctx: &Ctx, command: ScheduleCommand) -> Result<(), CliError> {
    let c = &ctx.client;
    match command {
        ScheduleCommand::Create { files } => create(ctx, &files),
        ScheduleCommand::List {
            enabled,
            selector,
            limit,
            cursor,
            all,
        } => {
            let mut query = enabled
                .map(|e| vec![("enabled", e.to_string())])
                .unwrap_or_default();
            if let Some(s) = selector {
                parse_selector(&s)?;
                query.push(("label_selector", s));
            }
            let page = list_page(c, "/v1/schedules", query, limit, cursor, all)?;
            print_list(ctx, &page, output::schedule_table);
            Ok(())
        }
        ScheduleCommand::Get { schedule } => {
            let s = c.get(&schedule_path(c, &schedule, "")?, &[])?;
            if ctx.json {
                print_json(&s);
            } else {
                out(&output::schedule_detail(&s));
            }
            Ok(())
        }
        ScheduleCommand::Pause { schedule, note } => {
            let path = schedule_path(c, &schedule, "/pause")?;
            let r = match note {
                Some(note) => c.post(&path, &json!({ "note": note }))?,
                None => c.post_empty(&path)?,
            };
            if ctx.json {
                print_json(&r);
            } else {
                outln(&format!(
                    "paused {} (paused at {})",
                    output::text(r.get("id")),
                    output::text(r.get("paused_at"))
                ));
            }
            Ok(())
        }
        ScheduleCommand::Resume { schedule } => {
            let r = c.post_empty(&schedule_path(c, &schedule, "/resume")?)?;
            if ctx.json {
                print_json(&r);
            } else {
                outln(&format!(
                    "resumed {} (next run {})",
                    output::text(r.get("id")),
                    output::text(r.get("next_run_at"))
                ));
            }
            Ok(())
        }
        ScheduleCommand::Trigger { schedule, reason } => {
            let path = schedule_path(c, &schedule, "/trigger")?;
            let r = c.post(&path, &json!({ "reason": reason }))?;
            if ctx.json {
                print_json(&r);
            } else {
                outln(&format!(
                    "triggered run {} of {} (status {})",
                    output::text(r.get("run_id")),
                    output::text(r.get("schedule_id")),
                    output::text(r.get("status"))
                ));
            }
            Ok(())
        }
        ScheduleCommand::Upcoming { schedule, count } => {
            let path = schedule_path(c, &schedule, "/upcoming")?;
            let r = c.get(&path, &[("count", count.to_string())])?;
            if ctx.json {
                print_json(&r);
            } else {
                match r.get("items").and_then(Value::as_array) {
                    Some(items) if !items.is_empty() => {
                        for i in items {
                            outln(&output::text(Some(i)));
                        }
                    }
                    _ => outln("No upcoming runs (paused or finished)."),
                }
            }
            Ok(())
        }
        ScheduleCommand::Backfill {
            schedule,
            from,
            to,
            reason,
            dry_run,
        } => {
            let path = schedule_path(c, &schedule, "")?;
            if dry_run {
                return backfill_dry_run(ctx, &path, from, to);
            }
            let body = json!({ "start": from, "end": to, "reason": reason });
            let r = c.post(&format!("{path}/backfill"), &body)?;
            if ctx.json {
                print_json(&r);
            } else {
                outln(&format!(
                    "backfilled {}: {} runs created, {} occurrences already existed",
                    output::text(r.get("schedule_id")),
                    output::text(r.get("created")),
                    output::text(r.get("existing"))
                ));
            }
            Ok(())
        }
        ScheduleCommand::Delete { schedule } => {
            let r = c.delete(&schedule_path(c, &schedule, "")?)?;
            if ctx.json {
                print_json(&r);
            } else {
                outln(&format!("deleted {}", output::text(r.get("id"))));
            }
            Ok(())
        }
    }
}

/// `schedule backfill --dry-run`: the window's fire times, computed here by the server's
/// own cadence code from the schedule's definition; nothing is sent but the read.
fn backfill_dry_run(ctx: &Ctx, path: &str, from: String, to: String) -> Result<(), CliError> {
    use crate::domain::backfill::{self, BackfillBody};
    use crate::domain::validation::{parse_schedule, ScheduleBody, ValidationContext};
    let s = ctx.client.get(path, &[])?;
    let now = chrono::Utc::now();
    let request = BackfillBody {
        start: Some(from),
        end: Some(to),
        reason: Some("dry run".into()),
    };
    let window = backfill::parse(&request, now).map_err(field_errors)?;
    let definition = json!({
        "name": s.get("name"), "timezone": s.get("timezone"),
        "schedule": s.get("schedule"), "target": s.get("target"),
    });
    let spec = serde_json::from_value::<ScheduleBody>(definition)
        .map_err(|e| client::unexpected(&format!("{path} ({e})"), &s))
        .and_then(|body| {
            let vctx = ValidationContext {
                now,
                default_anchor: now,
            };
            parse_schedule(&body, &vctx).map_err(field_errors)
        })?;
    let times = backfill::fire_times(&spec.cadence, spec.timezone, window.start, window.end)
        .map_err(|e| field_errors(vec![e]))?;
    let items: Vec<String> = times
        .into_iter()
        .map(crate::domain::ids::format_instant)
        .collect();
    if ctx.json {
        print_json(&json!({ "items": items }));
    } else if items.is_empty() {
        outln("No fire times in that window.");
    } else {
        for i in &items {
            outln(i);
        }
        err(&format!(
            "(dry run: {} fire times; nothing was created)",
            items.len()
        ));
    }
    Ok(())
}

/// Field problems found on this side, reported like the server's `validation_failed`.
fn field_errors(errors: Vec<crate::domain::validation::FieldError>) -> CliError {
    CliError::Usage(
        errors
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// `schedule create`: every document is parsed first (a bad file sends nothing), then each
/// is POSTed; a failure is reported and the rest are still created.
fn create(ctx: &Ctx, files: &[String]) -> Result<(), CliError> {
    let manifests = apply::load(files)?;
    if let [only] = manifests.as_slice() {
        // One schedule: the API's answer (or its error, as it is) is the whole story.
        let s = ctx
            .client
            .post("/v1/schedules", &Value::Object(only.body.clone()))?;
        if ctx.json {
            print_json(&s);
        } else {
            outln(&created_line(&s));
        }
        return Ok(());
    }
    let mut created = Vec::new();
    let mut failed = Vec::new();
    for m in &manifests {
        let label = m
            .name()
            .map(|n| format!("{n:?} ({})", m.source))
            .unwrap_or_else(|| m.source.clone());
        match ctx
            .client
            .post("/v1/schedules", &Value::Object(m.body.clone()))
        {
            Ok(s) => {
                if !ctx.json {
                    outln(&created_line(&s));
                }
                created.push(s);
            }
            Err(e @ CliError::Connect { .. }) => return Err(e),
            Err(e) => {
                err(&format!("error: creating {label}: {e}"));
                failed.push(label);
            }
        }
    }
    if ctx.json {
        print_json(&Value::Array(created));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} of {} schedule(s) not created: {}",
            failed.len(),
            manifests.len(),
            failed.join(", ")
        )))
    }
}

fn created_line(s: &Value) -> String {
    format!(
        "created {} {} (next run {})",
        output::text(s.get("id")),
        output::text(s.get("name")),
        output::text(s.get("next_run_at"))
    )
}

fn run_command(ctx: &Ctx, command: RunCommand) -> Result<(), CliError> {
    let c = &ctx.client;
    match command {
        RunCommand::List {
            schedule,
            status,
            limit,
            cursor,
            all,
        } => {
            let mut query = Vec::new();
            if let Some(s) = schedule {
                query.push(("schedule_id", resolve_schedule(c, &s)?));
            }
            if let Some(s) = status {
                query.push(("status", s));
            }
            let page = list_page(c, "/v1/runs", query, limit, cursor, all)?;
            print_list(ctx, &page, output::run_table);
            Ok(())
        }
        RunCommand::Get { run } => {
            let r = c.get(&format!("/v1/runs/{}", segment(run.trim())), &[])?;
            if ctx.json {
                print_json(&r);
            } else {
                out(&output::run_detail(&r));
            }
            Ok(())
        }
        RunCommand::Receipts { run } => {
            let r = c.get(&format!("/v1/runs/{}/receipts", segment(run.trim())), &[])?;
            if ctx.json {
                print_json(&r);
            } else {
                out(&output::receipts(&r));
            }
            Ok(())
        }
    }
}

/// `apply`: read and check every manifest, fetch the server's schedules, print the plan,
/// then (unless --dry-run) execute it; non-zero when any step failed.
fn apply_command(ctx: &Ctx, args: ApplyArgs) -> Result<(), CliError> {
    let selector = args.selector.as_deref().map(parse_selector).transpose()?;
    let mut manifests = apply::load(&args.files)?;
    apply::check_names(&manifests)?;
    // As `kubectl apply -l`: manifests the selector does not match are left out.
    if let Some(sel) = &selector {
        manifests.retain(|m| sel.matches(&apply::labels_of(&Value::Object(m.body.clone()))));
    }
    let existing: BTreeMap<String, Value> =
        apply::fetch_existing(&ctx.client, &manifests, args.prune, selector.as_ref())?;
    let steps = apply::plan(&manifests, &existing, args.prune);
    if !ctx.json {
        out(&apply::render_plan(&steps));
    }
    if args.dry_run {
        if ctx.json {
            print_json(&apply::to_json(&steps, None, true));
        } else {
            outln(&format!(
                "dry run: {} (nothing was changed)",
                apply::summary(&steps)
            ));
        }
        return Ok(());
    }
    let json = ctx.json;
    let outcomes = apply::execute(&ctx.client, steps.clone(), |o| {
        if json {
            return;
        }
        let id = o.id.as_deref().unwrap_or("-");
        match (&o.error, &o.step.action) {
            (None, apply::Action::Unchanged { .. }) => {}
            (None, a) => {
                let verb = match a {
                    apply::Action::Create => "created",
                    apply::Action::Update { .. } => "updated",
                    _ => "deleted",
                };
                outln(&format!("{verb} {} ({id})", o.step.name));
            }
            (Some(e), _) => {
                let source = o
                    .step
                    .manifest
                    .as_ref()
                    .map(|m| format!(" [{}]", m.source))
                    .unwrap_or_default();
                err(&format!(
                    "error: {} {}{source} failed: {e}",
                    o.step.action.verb(),
                    o.step.name
                ));
            }
        }
    });
    if json {
        print_json(&apply::to_json(&steps, Some(&outcomes), false));
    }
    let failed: Vec<&apply::Outcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    let done = |verb: &str| {
        outcomes
            .iter()
            .filter(|o| o.error.is_none() && o.step.action.verb() == verb)
            .count()
    };
    if !json {
        outln(&format!(
            "applied: {} created, {} updated, {} unchanged, {} deleted, {} failed",
            done("create"),
            done("update"),
            done("unchanged"),
            done("delete"),
            failed.len()
        ));
    }
    if failed.is_empty() {
        return Ok(());
    }
    let names = failed
        .iter()
        .map(|o| format!("{} {}", o.step.action.verb(), o.step.name))
        .collect::<Vec<_>>()
        .join(", ");
    let count = failed.len();
    // An unreachable server wins (exit 3): the remaining steps were not attempted.
    let connect = outcomes.into_iter().find_map(|o| match o.error {
        Some(e @ CliError::Connect { .. }) => Some(e),
        _ => None,
    });
    Err(connect
        .unwrap_or_else(|| CliError::Failed(format!("apply: {count} step(s) failed: {names}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_told_from_names() {
        assert!(looks_like_id("sch_01j9zc8x0v6m3w2k1q7r5t4y8p", "sch_"));
        assert!(!looks_like_id("sch_backup", "sch_"));
        assert!(!looks_like_id("nightly", "sch_"));
    }
}
