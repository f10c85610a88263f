//! Provides throwaway clusters' directories: a short base path, unique names, and a sweep of
//! `wp-pg-*` directories left by processes that are gone (stopping any postmaster still there).
//! It creates and removes directories only under the temporary base.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::paths::{check_socket_path, set_mode};
use super::procs::{is_live_postgres, read_lock_pid, read_owner, stop_foreign_postmaster};
use super::{PgError, ORPHAN_DIR_AGE, PORT, TEMP_PREFIX};

/// `std::env::temp_dir()`, or `/tmp` if that would make the socket path too long.
pub(super) fn temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    let probe = base.join("wp-pg-0000000-000-000000").join("socket");
    if check_socket_path(&probe, PORT).is_ok() {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

pub(super) fn create_unique_dir(base: &Path) -> Result<PathBuf, PgError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("{TEMP_PREFIX}{pid}-{n}-{:06x}", nanos & 0xff_ffff));
        match fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => {
                set_mode(&dir, 0o755)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(PgError::Io {
                    context: format!("creating a temporary directory in {}", base.display()),
                    source: e,
                })
            }
        }
    }
    Err(PgError::Io {
        context: format!("creating a temporary directory in {}", base.display()),
        source: io::Error::from(io::ErrorKind::AlreadyExists),
    })
}

/// Best effort: removes `wp-pg-*` directories whose owner process is gone, stopping any
/// postmaster still running there.
pub(super) fn sweep_stale_temporaries(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        if !name.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
            continue;
        }
        let dir = entry.path();
        let Ok(meta) = fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let abandoned = match read_owner(&dir) {
            Some(owner) => !owner.is_alive(),
            // Possibly still being created: only sweep when old.
            None => meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > ORPHAN_DIR_AGE),
        };
        if !abandoned {
            continue;
        }
        if let Some(pid) = read_lock_pid(&dir.join("pgdata").join("postmaster.pid")) {
            if is_live_postgres(pid) {
                if let Err(e) = stop_foreign_postmaster(pid) {
                    tracing::warn!(dir = %dir.display(), pid, error = %e, "could not stop abandoned postmaster");
                    continue;
                }
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => tracing::debug!(dir = %dir.display(), "removed abandoned temporary cluster"),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "could not remove abandoned temporary cluster")
            }
        }
    }
}
