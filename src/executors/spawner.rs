//! Owns the threads that start shell commands: a few named threads, started on first use
//! and alive as long as the process, that prepare (working directory, environment) and
//! fork+exec the commands handed to them over a channel. Must not wait for, read from or
//! kill a started command (the shell executor's job), and must never let one of its
//! threads exit: the commands' parent-death signal is tied to the thread that forked them.
//!
//! Why threads of their own: `spawn` forks and then blocks until the child has exec'd, and
//! creating a run's directory is a filesystem write. On the executor thread (which every
//! run shares) that serialised every spawn and stalled every other run meanwhile; on
//! tokio's blocking pool, whose threads exit when idle, the kernel would SIGKILL a long
//! command when the thread that forked it retired.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Spawner threads. Forks of one process serialise on its address-space lock, so more
/// threads than this buy nothing; they overlap one fork with the others' exec waits.
const THREADS: usize = 4;

/// One command to prepare and start, with its reply channel, type-erased.
type Job = Box<dyn FnOnce() + Send>;

/// Why no command was started.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// The preparation refused (the run's `error_text`).
    Refused(String),
    /// `spawn` (or the spawner itself) failed.
    Start(io::Error),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Refused(message) => f.write_str(message),
            SpawnError::Start(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SpawnError {}

/// The queue the spawner threads take jobs from.
struct Spawner {
    jobs: mpsc::Sender<Job>,
}

static SPAWNER: OnceLock<Result<Spawner, String>> = OnceLock::new();

/// On a spawner thread, runs `prepare` (which builds the command and whatever must live
/// as long as it, such as its working directory) and starts the command, as
/// `Command::spawn` would. The child's pipes and exit are driven by the calling task's
/// runtime. If the caller stops waiting (its future is dropped), a child started
/// meanwhile has its process group killed (the command must be in a group of its own) and
/// is reaped by the runtime; `prepare`'s value is dropped after that.
pub(crate) async fn spawn<T, F>(prepare: F) -> Result<(Child, T), SpawnError>
where
    F: FnOnce() -> Result<(Command, T), String> + Send + 'static,
    T: Send + 'static,
{
    let spawner = SPAWNER
        .get_or_init(Spawner::start)
        .as_ref()
        .map_err(|e| SpawnError::Start(io::Error::other(e.clone())))?;
    let (reply, started) = oneshot::channel::<Result<Started<T>, SpawnError>>();
    let runtime = Handle::current();
    let job: Job = Box::new(move || {
        let _entered = runtime.enter();
        // A panic here (a runtime shutting down under us) must not end the thread.
        let result = panic::catch_unwind(AssertUnwindSafe(move || {
            let (mut cmd, kept) = prepare().map_err(SpawnError::Refused)?;
            let child = cmd.spawn().map_err(SpawnError::Start)?;
            Ok(Started(Some((child, kept))))
        }))
        .unwrap_or_else(|_| {
            Err(SpawnError::Start(io::Error::other(
                "starting the process panicked",
            )))
        });
        // If nobody waits any more, the `Started` is dropped here: its group dies.
        let _ = reply.send(result);
    });
    if spawner.jobs.send(job).is_err() {
        return Err(SpawnError::Start(io::Error::other(
            "the process spawner threads are gone",
        )));
    }
    let started = started
        .await
        .map_err(|_| SpawnError::Start(io::Error::other("a process spawner thread stopped")))??;
    started
        .into_inner()
        .ok_or_else(|| SpawnError::Start(io::Error::other("the started process went missing")))
}

impl Spawner {
    fn start() -> Result<Spawner, String> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..THREADS {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("wp-spawner-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || serve(&queue))
                .map_err(|e| format!("could not start a process spawner thread: {e}"))?;
        }
        Ok(Spawner { jobs })
    }
}

/// A spawner thread's loop: forever, since `SPAWNER` (and so the sending side) lives as
/// long as the process.
fn serve(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            // Never while the process lives; keep the thread anyway, its children need it.
            Err(_) => std::thread::park(),
        }
    }
}

/// A started child (and what `prepare` kept with it) on its way to the caller. Dropped
/// undelivered (the caller stopped waiting), it kills the child's process group; dropping
/// the child (kill on drop) then hands it to the runtime's orphan reaping.
struct Started<T>(Option<(Child, T)>);

impl<T> Started<T> {
    fn into_inner(mut self) -> Option<(Child, T)> {
        self.0.take()
    }
}

impl<T> Drop for Started<T> {
    fn drop(&mut self) {
        let pid = self.0.as_ref().and_then(|(child, _)| child.id());
        // The group is the child's own (process_group(0)).
        if let Some(pgid) = pid.and_then(|pid| i32::try_from(pid).ok()) {
            kill_group(pgid);
        }
    }
}

/// SIGKILLs process group `pgid` (nothing for a non-positive id, which would name the
/// caller's own group or every process).
pub(super) fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses
        // the process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;
    use std::time::Duration;

    use futures_util::FutureExt;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::executors::test_support::is_alive;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    #[tokio::test]
    async fn many_commands_at_once_each_get_their_own_child() {
        // More commands than spawner threads, all in flight together: every caller gets
        // its own child back (its own output), whichever thread started it.
        let runs = (0..24).map(|i| async move {
            let script = format!("echo {i}");
            let (mut child, ()) = spawn(move || Ok((sh(&script), ())))
                .await
                .map_err(io::Error::other)?;
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                stdout.read_to_string(&mut out).await?;
            }
            let status = child.wait().await?;
            io::Result::Ok((i, out, status.success()))
        });
        for result in futures_util::future::join_all(runs).await {
            let (i, out, ok) = result.expect("command ran");
            assert_eq!(out, format!("{i}\n"));
            assert!(ok);
        }
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_leaves_nothing_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("grandchild.pid");
        let script = format!("sleep 100 & echo $! > '{}'; sleep 100", pid_file.display());
        // Polled once (the job is queued), then dropped before the child is handed over.
        // Without kill on drop, so only the group kill can stop it.
        let mut cmd = sh(&script);
        cmd.kill_on_drop(false);
        let started = spawn(move || Ok((cmd, ()))).now_or_never();
        assert!(started.is_none(), "spawned without waiting: {started:?}");
        // Either the command was never started, or its whole group was killed: the
        // background sleep, had it been left running, would write its pid and live on.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut grandchild = None;
        while std::time::Instant::now() < deadline {
            if let Ok(pid) = std::fs::read_to_string(&pid_file)
                .unwrap_or_default()
                .trim()
                .parse::<i32>()
            {
                grandchild = Some(pid);
                if !is_alive(pid) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(pid) = grandchild {
            panic!("the abandoned command's background process {pid} survived");
        }
    }
}
