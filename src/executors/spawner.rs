//! Owns the threads that start shell commands: a few named threads, started on first use
//! and alive as long as the process, that fork+exec the commands handed to them over a
//! channel. Must not wait for, read from or kill a started command (the shell executor's
//! job), and must never let one of its threads exit: the commands' parent-death signal
//! is tied to the thread that forked them.
//!
//! Why threads of their own: `spawn` forks and then blocks until the child has exec'd.
//! On the executor thread (which every run shares) that serialised every spawn and stalled
//! every other run meanwhile; on tokio's blocking pool, whose threads exit when idle, the
//! kernel would SIGKILL a long command when the thread that forked it retired.

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

/// One command to start, the runtime its pipes and reaping belong to, and where to send
/// the started child.
struct Job {
    cmd: Command,
    runtime: Handle,
    reply: oneshot::Sender<io::Result<Started>>,
}

/// The queue the spawner threads take jobs from.
struct Spawner {
    jobs: mpsc::Sender<Job>,
}

static SPAWNER: OnceLock<Result<Spawner, String>> = OnceLock::new();

/// Starts `cmd` (as `Command::spawn` would) on a spawner thread and returns the child. The
/// child's pipes and exit are driven by the calling task's runtime. If the caller stops
/// waiting (its future is dropped), a child started meanwhile has its process group
/// killed (`cmd` must put it in a group of its own) and is reaped by the runtime.
pub(crate) async fn spawn(cmd: Command) -> io::Result<Child> {
    let spawner = SPAWNER
        .get_or_init(Spawner::start)
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))?;
    let (reply, child) = oneshot::channel();
    let job = Job {
        cmd,
        runtime: Handle::current(),
        reply,
    };
    if spawner.jobs.send(job).is_err() {
        return Err(io::Error::other("the process spawner threads are gone"));
    }
    let started = child
        .await
        .map_err(|_| io::Error::other("a process spawner thread stopped"))??;
    started
        .into_child()
        .ok_or_else(|| io::Error::other("the started process went missing"))
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
            Ok(job) => start(job),
            // Never while the process lives; keep the thread anyway, its children need it.
            Err(_) => std::thread::park(),
        }
    }
}

fn start(job: Job) {
    let Job {
        mut cmd,
        runtime,
        reply,
    } = job;
    let _entered = runtime.enter();
    // A panic here (a runtime shutting down under us) must not end the thread.
    let spawned = panic::catch_unwind(AssertUnwindSafe(|| cmd.spawn()))
        .unwrap_or_else(|_| Err(io::Error::other("starting the process panicked")));
    // If nobody waits any more, the returned `Started` is dropped here: its group dies.
    let _ = reply.send(spawned.map(Started::new));
}

/// A started child on its way to the caller. Dropped undelivered (the caller stopped
/// waiting), it kills the child's process group; dropping the child (kill on drop) then
/// hands it to the runtime's orphan reaping.
struct Started(Option<Child>);

impl Started {
    fn new(child: Child) -> Started {
        Started(Some(child))
    }

    fn into_child(mut self) -> Option<Child> {
        self.0.take()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let pgid = self.0.as_ref().and_then(Child::id);
        if let Some(pgid) = pgid
            .and_then(|pid| i32::try_from(pid).ok())
            .filter(|&p| p > 0)
        {
            // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
            // addresses the process group, which is the child's own (process_group(0)).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
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

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Alive = exists and is not a zombie.
    fn is_alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(true),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn many_commands_at_once_each_get_their_own_child() {
        // More commands than spawner threads, all in flight together: every caller gets
        // its own child back (its own output), whichever thread started it.
        let runs = (0..24).map(|i| async move {
            let mut child = spawn(sh(&format!("echo {i}"))).await?;
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
        let started = spawn(cmd).now_or_never();
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
