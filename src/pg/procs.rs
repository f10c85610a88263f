//! Provides what we learn about processes from `/proc` and lock files: live postmasters, their
//! readiness, stale locks, the owner file that ties a data directory to a live process, log tails,
//! and stopping a postmaster that is not our child. It never spawns a process.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{io_err, PgError, IMMEDIATE_STOP_TIMEOUT, KILL_TIMEOUT, OWNER_FILE, STALE_TIMEOUT};

/// `(state, comm)` from `/proc/<pid>/stat`, plus the start time (field 22).
fn proc_stat(pid: i32) -> Option<(char, String, u64)> {
    if pid <= 0 {
        return None;
    }
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    let start = rest.get(19)?.parse().ok()?;
    Some((state, comm, start))
}

pub(super) fn is_live_postgres(pid: i32) -> bool {
    match proc_stat(pid) {
        Some((state, comm, _)) => {
            !matches!(state, 'Z' | 'X' | 'x')
                && (comm.starts_with("postgres") || comm.starts_with("postmaster"))
        }
        None => false,
    }
}

/// The pid on the first line of a PostgreSQL lock file (negative for single-user mode).
pub(super) fn read_lock_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .next()?
        .trim()
        .parse::<i32>()
        .ok()
        .map(|p| p.abs())
}

pub(super) fn remove_stale_lock(path: &Path) {
    if let Some(pid) = read_lock_pid(path) {
        if !is_live_postgres(pid) {
            let _ = fs::remove_file(path);
        }
    }
}

/// `postmaster.pid` names `pid` and (PostgreSQL ≥ 10) its status line says `ready`.
pub(super) fn postmaster_reports_ready(pidfile: &Path, pid: i32) -> bool {
    let Ok(text) = fs::read_to_string(pidfile) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.first().map(|l| l.trim()) != Some(pid.to_string().as_str()) {
        return false;
    }
    // Line 8 is the status PostgreSQL (10+) writes once it accepts connections; until it
    // is there the server may still answer "the database system is starting up".
    lines.get(7).is_some_and(|status| status.trim() == "ready")
}

/// Stops a postmaster that is not our child: SIGINT, then SIGQUIT, then SIGKILL.
pub(super) fn stop_foreign_postmaster(pid: i32) -> Result<(), String> {
    for (sig, timeout) in [
        (libc::SIGINT, STALE_TIMEOUT),
        (libc::SIGQUIT, IMMEDIATE_STOP_TIMEOUT),
        (libc::SIGKILL, KILL_TIMEOUT),
    ] {
        if !is_live_postgres(pid) {
            return Ok(());
        }
        // SAFETY: plain syscall; the pid was just checked to be a live postgres process.
        if unsafe { libc::kill(pid, sig) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(format!("sending signal {sig}: {e}"));
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !is_live_postgres(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if is_live_postgres(pid) {
        Err("still running after SIGKILL".to_string())
    } else {
        Ok(())
    }
}

/// The process that owns a data directory: pid plus start time (guards against reuse).
pub(super) struct Owner {
    pub(super) pid: i32,
    start: u64,
}

impl Owner {
    fn current() -> Owner {
        let pid = std::process::id() as i32;
        let start = proc_stat(pid).map(|(_, _, s)| s).unwrap_or(0);
        Owner { pid, start }
    }

    pub(super) fn is_alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some((state, _, start)) => !matches!(state, 'Z' | 'X' | 'x') && start == self.start,
            None => false,
        }
    }
}

pub(super) fn write_owner_file(dir: &Path) -> Result<(), PgError> {
    let owner = Owner::current();
    let path = dir.join(OWNER_FILE);
    fs::write(&path, format!("{} {}\n", owner.pid, owner.start))
        .map_err(io_err(format!("writing {}", path.display())))
}

pub(super) fn read_owner(dir: &Path) -> Option<Owner> {
    let text = fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let mut parts = text.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    Some(Owner { pid, start })
}

/// The last lines written to the log since `from`.
pub(super) fn log_tail(path: &Path, from: u64) -> String {
    const MAX: u64 = 4096;
    let Ok(mut file) = fs::File::open(path) else {
        return "(no log)".to_string();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(MAX));
    if file.seek(SeekFrom::Start(start)).is_err() {
        return "(unreadable log)".to_string();
    }
    let mut bytes = Vec::new();
    let _ = file.take(MAX).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let keep = lines.len().saturating_sub(30);
    lines[keep..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_detection_reads_pid_and_status_lines() {
        let dir = std::env::temp_dir().join(format!("wpunit-pg-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let f = dir.join("postmaster.pid");
        let body = |status: &str| {
            format!("4242\n/x/pgdata\n1700000000\n5432\n/x/socket\n\n  1234 5678\n{status}\n")
        };
        let _ = fs::write(&f, body("starting"));
        assert!(!postmaster_reports_ready(&f, 4242));
        // Status line not written yet: not ready either.
        let _ = fs::write(&f, "4242\n/x/pgdata\n1700000000\n5432\n");
        assert!(!postmaster_reports_ready(&f, 4242));
        let _ = fs::write(&f, body("ready   "));
        assert!(postmaster_reports_ready(&f, 4242));
        assert!(!postmaster_reports_ready(&f, 4243));
        assert_eq!(read_lock_pid(&f), Some(4242));
        let _ = fs::remove_dir_all(&dir);
    }
}
