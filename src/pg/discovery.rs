//! Provides binary discovery: finds a directory holding `initdb` and `postgres` of one version
//! via `pg_config --bindir`, `PATH` and `/usr/lib/postgresql/*/bin`, highest version first.
//! It only inspects files and runs `--version`; it never starts a server.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::PgError;

/// Finds a directory containing both `initdb` and `postgres` of the same version.
pub(super) fn find_bin_dir() -> Result<PathBuf, PgError> {
    let candidates = candidate_bin_dirs(
        pg_config_bindir(),
        std::env::var_os("PATH").as_deref(),
        versioned_bin_dirs(Path::new("/usr/lib/postgresql")),
    );
    pick_bin_dir(candidates, is_server_bin_dir).ok_or(PgError::BinariesNotFound)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Candidate directories in priority order, without duplicates.
fn candidate_bin_dirs(
    pg_config: Option<PathBuf>,
    path_var: Option<&OsStr>,
    versioned: Vec<PathBuf>,
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let path_dirs = path_var
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in pg_config.into_iter().chain(path_dirs).chain(versioned) {
        if dir.as_os_str().is_empty() || !dir.is_absolute() {
            continue;
        }
        if !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

fn pick_bin_dir(candidates: Vec<PathBuf>, is_server: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    candidates.into_iter().find(|d| is_server(d))
}

/// `<root>/<version>/bin` for every version directory, highest version first.
fn versioned_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let names: Vec<String> = fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    sort_versions_desc(names)
        .into_iter()
        .map(|v| root.join(v).join("bin"))
        .collect()
}

fn sort_versions_desc(mut names: Vec<String>) -> Vec<String> {
    fn key(name: &str) -> Vec<u64> {
        name.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect()
    }
    names.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| b.cmp(a)));
    names
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Both binaries exist, are executable, and report the same PostgreSQL version.
fn is_server_bin_dir(dir: &Path) -> bool {
    let initdb = dir.join("initdb");
    let postgres = dir.join("postgres");
    if !is_executable(&initdb) || !is_executable(&postgres) {
        return false;
    }
    match (binary_version(&initdb), binary_version(&postgres)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `initdb (PostgreSQL) 15.18 (Debian …)` → `(PostgreSQL) 15.18 (Debian …)`.
fn binary_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    line.split_once(' ').map(|(_, rest)| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_keep_priority_order_and_dedupe() {
        let path = std::env::join_paths(["/usr/local/bin", "relative", "/usr/bin", "/opt/pg/bin"])
            .unwrap_or_default();
        let got = candidate_bin_dirs(
            Some(PathBuf::from("/opt/pg/bin")),
            Some(path.as_os_str()),
            vec![
                PathBuf::from("/usr/lib/postgresql/16/bin"),
                PathBuf::from("/usr/lib/postgresql/15/bin"),
            ],
        );
        let want: Vec<PathBuf> = [
            "/opt/pg/bin",
            "/usr/local/bin",
            "/usr/bin",
            "/usr/lib/postgresql/16/bin",
            "/usr/lib/postgresql/15/bin",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn pick_skips_dirs_without_both_binaries() {
        // pg_config points at a client-only dir; PATH has nothing; versioned dir has both.
        let candidates = vec![
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/lib/postgresql/16/bin"),
            PathBuf::from("/usr/lib/postgresql/15/bin"),
        ];
        let server_dirs = ["/usr/lib/postgresql/15/bin"];
        let got = pick_bin_dir(candidates.clone(), |d| {
            server_dirs.iter().any(|s| Path::new(s) == d)
        });
        assert_eq!(got, Some(PathBuf::from("/usr/lib/postgresql/15/bin")));
        assert_eq!(pick_bin_dir(candidates, |_| false), None);
        assert!(PgError::BinariesNotFound
            .to_string()
            .contains("set DATABASE_URL to use an existing server, or use the Docker Compose stack in docker/"));
    }

    #[test]
    fn versions_sort_highest_first() {
        let got = sort_versions_desc(
            ["9.6", "15", "10", "16", "abc", "9.5"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        assert_eq!(got, vec!["16", "15", "10", "9.6", "9.5", "abc"]);
    }
}
