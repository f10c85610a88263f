//! Checks the rule that keeps migrations safe while other nodes are live: an index on a table
//! that already exists is built `CONCURRENTLY`, alone in its own migration, with a
//! `metadata.toml` saying `run_in_transaction = false`. Reads `migrations/` only; no database.

use std::fs;
use std::path::{Path, PathBuf};

/// Migrations that ran on users' databases before the rule existed. They build their index in
/// a transaction and must not be edited; nothing may be added to this list.
const GRANDFATHERED: &[&str] = &[
    "2026-11-25-000002_index_schedule_updates",
    "2026-12-01-000001_index_active_runs",
];

/// The SQL statements of a script, upper-cased, without `--` comments, split at `;`.
fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_uppercase())
        .collect()
}

/// `(table, concurrently)` for a `CREATE [UNIQUE] INDEX` statement, None for anything else.
fn created_index(statement: &str) -> Option<(String, bool)> {
    let rest = statement.strip_prefix("CREATE ")?;
    let rest = rest.strip_prefix("UNIQUE ").unwrap_or(rest);
    let rest = rest.strip_prefix("INDEX ")?;
    let concurrently = rest.starts_with("CONCURRENTLY ");
    let after_on = rest.split_once(" ON ")?.1;
    let after_on = after_on.strip_prefix("ONLY ").unwrap_or(after_on);
    let table = after_on
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()?
        .to_string();
    Some((table, concurrently))
}

/// The table a `CREATE TABLE` statement creates.
fn created_table(statement: &str) -> Option<String> {
    let rest = statement.strip_prefix("CREATE TABLE ")?;
    let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
    Some(
        rest.split(|c: char| c.is_whitespace() || c == '(')
            .next()?
            .to_string(),
    )
}

/// `run_in_transaction = false` in the migration's metadata.toml.
fn outside_transaction(metadata: Option<&str>) -> bool {
    metadata.is_some_and(|toml| {
        toml.lines().any(|line| {
            let line = line.split('#').next().unwrap_or("");
            let compact: String = line.split_whitespace().collect();
            compact == "run_in_transaction=false"
        })
    })
}

/// Every way `up`, `down` and `metadata` break the rule (empty when they follow it).
fn violations(up: &str, down: &str, metadata: Option<&str>) -> Vec<String> {
    let up = statements(up);
    let new_tables: Vec<String> = up.iter().filter_map(|s| created_table(s)).collect();
    let mut problems = Vec::new();
    let mut concurrent = false;
    for (table, concurrently) in up.iter().filter_map(|s| created_index(s)) {
        if new_tables.contains(&table) {
            continue;
        }
        if !concurrently {
            problems.push(format!(
                "index on existing table {table} is not built CONCURRENTLY"
            ));
        }
        concurrent = true;
    }
    let no_transaction = outside_transaction(metadata);
    if concurrent && !no_transaction {
        problems.push("metadata.toml must say run_in_transaction = false".to_string());
    }
    if no_transaction {
        // PostgreSQL runs several statements sent at once in one implicit transaction, where
        // CONCURRENTLY is refused; and a half-applied script could not be rerun.
        if up.len() != 1 {
            problems.push(format!(
                "a migration outside a transaction must be one statement (up.sql has {})",
                up.len()
            ));
        }
        let down = statements(down);
        if down.len() != 1 || !down[0].starts_with("DROP INDEX CONCURRENTLY ") {
            problems.push(
                "down.sql must be the single statement DROP INDEX CONCURRENTLY …".to_string(),
            );
        }
    }
    problems
}

fn migration_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn every_new_index_on_an_existing_table_is_built_concurrently() {
    let dirs = migration_dirs();
    assert!(dirs.len() >= 3, "found only {} migrations", dirs.len());
    let mut problems = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let metadata = fs::read_to_string(dir.join("metadata.toml")).ok();
        let found = violations(
            &read(&dir.join("up.sql")),
            &read(&dir.join("down.sql")),
            metadata.as_deref(),
        );
        if GRANDFATHERED.contains(&name.as_str()) {
            assert!(
                !found.is_empty(),
                "{name} follows the rule now: remove it from GRANDFATHERED"
            );
            continue;
        }
        problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_rule_accepts_safe_migrations() {
    let new_table =
        "-- a table and its index\nCREATE TABLE t (id text PRIMARY KEY, at timestamptz);\n\
                     CREATE INDEX t_at_idx ON t (at);\nCREATE UNIQUE INDEX t_x ON t(id);";
    assert_eq!(
        violations(new_table, "DROP TABLE t;", None),
        Vec::<String>::new()
    );
    let concurrent =
        "-- on a live table\nCREATE INDEX CONCURRENTLY runs_x_idx\n    ON schedule_runs (x);\n";
    let down = "DROP INDEX CONCURRENTLY IF EXISTS runs_x_idx;";
    let metadata = "# built while nodes run\nrun_in_transaction = false\n";
    assert_eq!(
        violations(concurrent, down, Some(metadata)),
        Vec::<String>::new()
    );
    assert_eq!(
        violations(
            "ALTER TABLE t ADD COLUMN y text;",
            "ALTER TABLE t DROP COLUMN y;",
            None
        ),
        Vec::<String>::new()
    );
}

#[test]
fn the_rule_names_each_unsafe_migration() {
    let plain = "CREATE INDEX runs_x_idx ON schedule_runs (x);";
    let down = "DROP INDEX CONCURRENTLY runs_x_idx;";
    let no_tx = Some("run_in_transaction = false");
    assert_eq!(
        violations(plain, down, no_tx),
        ["index on existing table SCHEDULE_RUNS is not built CONCURRENTLY"]
    );
    let concurrent = "CREATE UNIQUE INDEX CONCURRENTLY runs_x_idx ON ONLY schedule_runs(x);";
    assert_eq!(
        violations(concurrent, down, None),
        ["metadata.toml must say run_in_transaction = false"]
    );
    assert_eq!(
        violations(concurrent, down, Some("run_in_transaction = true")),
        ["metadata.toml must say run_in_transaction = false"]
    );
    let two = format!("{concurrent}\nCREATE INDEX CONCURRENTLY runs_y_idx ON schedule_runs (y);");
    assert_eq!(
        violations(&two, down, no_tx),
        ["a migration outside a transaction must be one statement (up.sql has 2)"]
    );
    assert_eq!(
        violations(concurrent, "DROP INDEX runs_x_idx;", no_tx),
        ["down.sql must be the single statement DROP INDEX CONCURRENTLY …"]
    );
}
