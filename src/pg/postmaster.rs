//! Provides the postmaster child process and the dedicated thread that spawns, waits for and
//! reaps it, with the parent-death signal that stops it if this process dies outright.
//! It knows nothing of data directories or the exit registry; it only starts and stops one child.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{PgError, FAST_STOP_TIMEOUT, IMMEDIATE_STOP_TIMEOUT, KILL_TIMEOUT};

#[derive(Clone, Copy, Debug)]
enum PmState {
    Running,
    /// Reaped; `None` if the exit status could not be collected.
    Exited(Option<ExitStatus>),
}

/// State shared between the handle and the thread that owns the child.
#[derive(Debug)]
pub(super) struct PmShared {
    pub(super) pid: i32,
    state: Mutex<PmState>,
    cond: Condvar,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PmShared {
    pub(super) fn exit_status(&self) -> Option<Option<ExitStatus>> {
        match *lock(&self.state) {
            PmState::Running => None,
            PmState::Exited(s) => Some(s),
        }
    }

    /// Sends `sig` if the child has not been reaped yet. Holding the lock guarantees the
    /// pid still names our child (it is reaped only under the same lock).
    fn signal(&self, sig: libc::c_int) {
        let guard = lock(&self.state);
        if matches!(*guard, PmState::Running) {
            // SAFETY: plain syscall; pid is our unreaped child.
            unsafe {
                libc::kill(self.pid, sig);
            }
        }
    }

    pub(super) fn wait_exit(&self, timeout: Duration) -> Option<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.state);
        loop {
            if let PmState::Exited(s) = *guard {
                return Some(s);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = match self.cond.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Fast shutdown, escalating to immediate shutdown and SIGKILL after deadlines.
    pub(super) fn shutdown(&self) -> Result<(), PgError> {
        for (sig, timeout) in [
            (libc::SIGINT, FAST_STOP_TIMEOUT),
            (libc::SIGQUIT, IMMEDIATE_STOP_TIMEOUT),
            (libc::SIGKILL, KILL_TIMEOUT),
        ] {
            self.signal(sig);
            if self.wait_exit(timeout).is_some() {
                return Ok(());
            }
            tracing::warn!(
                pid = self.pid,
                signal = sig,
                "postmaster did not exit in time; escalating"
            );
        }
        Err(PgError::StopFailed { pid: self.pid })
    }
}

pub(super) struct Postmaster {
    pub(super) shared: Arc<PmShared>,
    thread: Option<JoinHandle<()>>,
}

impl Postmaster {
    /// Spawns `cmd` from a dedicated thread that waits for the child and exits only after
    /// the child has exited, so PR_SET_PDEATHSIG (which tracks the spawning *thread*) fires
    /// only if the whole process dies.
    pub(super) fn spawn(mut cmd: Command) -> io::Result<Postmaster> {
        let (tx, rx) = mpsc::channel::<io::Result<Arc<PmShared>>>();
        let thread = std::thread::Builder::new()
            .name("wp-postmaster".into())
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let shared = Arc::new(PmShared {
                    pid: child.id() as i32,
                    state: Mutex::new(PmState::Running),
                    cond: Condvar::new(),
                });
                let _ = tx.send(Ok(shared.clone()));
                wait_exited_without_reaping(shared.pid);
                let mut guard = lock(&shared.state);
                *guard = PmState::Exited(child.wait().ok());
                shared.cond.notify_all();
            })?;
        match rx.recv() {
            Ok(Ok(shared)) => Ok(Postmaster {
                shared,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other("postmaster thread ended unexpectedly"))
            }
        }
    }

    pub(super) fn stop(mut self) -> Result<(), PgError> {
        self.shared.shutdown()?;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(())
    }
}

/// Blocks until `pid` (our child) has exited, leaving it unreaped (`WNOWAIT`).
fn wait_exited_without_reaping(pid: i32) {
    loop {
        // SAFETY: siginfo_t is plain data; waitid only writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn set_parent_death_signal(_cmd: &mut Command, _sig: libc::c_int) {
    // No PR_SET_PDEATHSIG outside Linux: the atexit hook and Drop are all we have.
}

/// Makes the child get `sig` when the spawning thread dies. Runs after std's setgid/setuid
/// (which would clear the setting), and checks that the parent did not die before it.
#[cfg(target_os = "linux")]
pub(super) fn set_parent_death_signal(cmd: &mut Command, sig: libc::c_int) {
    // SAFETY: getpid is async-signal-safe; see below for the closure.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure only makes async-signal-safe syscalls and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
