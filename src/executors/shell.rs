//! Executes shell targets: the program is spawned directly (no shell interpolation) in its
//! own process group, from a spawner thread (`super::spawner`), under the shell policy (as
//! its account, in a fresh directory, with a minimal environment plus the run's identity);
//! stdout and stderr are captured (first 64 KiB each). Timeout and cancellation kill the
//! whole process group.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::guard::Workdir;
use super::spawner::SpawnError;
use super::{CappedBuffer, Interrupt, Outcome, OutcomeStatus, ReceiptDraft, RunIdentity};
use crate::security::ShellPolicy;

/// How long to wait for stdout/stderr to reach end-of-file once the process has ended (or
/// its group was killed). A process that escaped the group, or a background process left
/// running by a command that exited, may hold the pipes open; its output is then cut off.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Runs `command` with `args` if `policy` allows it; kills its process group on timeout or
/// cancellation.
pub(crate) async fn execute(
    policy: &ShellPolicy,
    command: &str,
    args: &[String],
    identity: &RunIdentity,
    timeout: Duration,
    cancel: CancellationToken,
) -> Outcome {
    if cancel.is_cancelled() {
        return Outcome::cancelled();
    }
    // Prepared and started on a spawner thread (creating the directory is a filesystem
    // write, spawning a fork+exec): the executor thread is every run's.
    let prepare = {
        let (policy, identity) = (policy.clone(), identity.clone());
        let (command, args) = (command.to_string(), args.to_vec());
        move || prepare(&policy, &command, &args, &identity)
    };
    // `_workdir` is held until the command has ended; it removes the directory on drop.
    let (mut child, _workdir) = match super::spawner::spawn(prepare).await {
        Ok(started) => started,
        Err(SpawnError::Refused(refused)) => {
            tracing::warn!(run_id = %identity.run_id, command, reason = %refused, "shell target refused");
            return Outcome::failed(refused);
        }
        Err(SpawnError::Start(e)) => {
            tracing::debug!(run_id = %identity.run_id, command, error = %e, "failed to start command");
            return Outcome::failed(format!("failed to start command {command:?}: {e}"));
        }
    };
    // With process_group(0) the group id is the child's pid. The guard kills the group
    // if this future is dropped before the child has been reaped.
    let mut group = GroupGuard {
        pgid: child.id().and_then(|pid| i32::try_from(pid).ok()),
    };
    tracing::debug!(run_id = %identity.run_id, command, pid = ?group.pgid, "command started");

    let stdout = Capture::start(child.stdout.take());
    let stderr = Capture::start(child.stderr.take());

    let waited = tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Interrupt::Cancelled),
        _ = tokio::time::sleep(timeout) => Err(Interrupt::TimedOut),
        status = child.wait() => Ok(status),
    };

    let result = match waited {
        Ok(status) => {
            group.disarm(); // reaped: the pid may be reused from now on
            Ok(status)
        }
        Err(interrupt) => {
            // Kill the whole group first (grandchildren too), so nobody keeps the pipes
            // open, then reap the child.
            group.kill();
            let _ = child.start_kill();
            if let Err(e) = child.wait().await {
                tracing::debug!(run_id = %identity.run_id, error = %e, "reaping the killed command failed");
            }
            group.disarm();
            tracing::debug!(run_id = %identity.run_id, ?interrupt, "command killed");
            Err(interrupt)
        }
    };

    let (stdout_text, stderr_text) = tokio::join!(stdout.finish(), stderr.finish());
    let receipts = vec![
        ReceiptDraft {
            kind: "stdout",
            content_type: TEXT_PLAIN.to_string(),
            body: stdout_text,
        },
        ReceiptDraft {
            kind: "stderr",
            content_type: TEXT_PLAIN.to_string(),
            body: stderr_text,
        },
    ];

    match result {
        Err(interrupt) => Outcome {
            receipts,
            ..interrupt.outcome(timeout)
        },
        Ok(Err(e)) => Outcome {
            receipts,
            ..Outcome::failed(format!("waiting for command {command:?} failed: {e}"))
        },
        Ok(Ok(status)) => {
            tracing::debug!(run_id = %identity.run_id, %status, "command exited");
            Outcome {
                receipts,
                ..outcome_for_status(status)
            }
        }
    }
}

/// The command for `command` and `args` under `policy`: checked, in its fresh working
/// directory (returned, to be held until the command has ended), in a process group of
/// its own, with the policy's environment plus the run's identity. `Err` is a refusal.
fn prepare(
    policy: &ShellPolicy,
    command: &str,
    args: &[String],
    identity: &RunIdentity,
) -> Result<(Command, Workdir), String> {
    let mut cmd = Command::new(command);
    let workdir = super::guard::prepare_shell(policy, command, identity, &mut cmd)?;
    cmd.args(args)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("WAKEPLANE_SCHEDULE_ID", &identity.schedule_id)
        .env("WAKEPLANE_RUN_ID", &identity.run_id)
        .env("WAKEPLANE_OCCURRENCE_KEY", &identity.occurrence_key)
        .env("WAKEPLANE_ATTEMPT", identity.attempt.to_string())
        .env("WAKEPLANE_NOMINAL_TIME", identity.nominal_time_rfc3339());
    die_with_the_server(&mut cmd);
    Ok((cmd, workdir))
}

/// Asks the kernel to SIGKILL the command when the thread that spawned it dies, so a
/// server killed outright (SIGKILL, OOM) leaves no command running on behind the run that
/// recovery is about to fail and retry. Commands are spawned from the spawner threads
/// (`super::spawner`), which live as long as the process. Linux only; grandchildren that
/// the command forked are not covered (the process-group kill on timeout and cancel is).
fn die_with_the_server(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe calls (prctl, getppid, kill on itself).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The server died between fork and prctl: nobody will ever be told.
                if libc::getppid() as u32 != parent {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

fn outcome_for_status(status: ExitStatus) -> Outcome {
    match status.code() {
        Some(0) => Outcome {
            exit_code: Some(0),
            ..Outcome::new(OutcomeStatus::Succeeded)
        },
        Some(code) => Outcome {
            exit_code: Some(code),
            ..Outcome::failed(format!("command exited with code {code}"))
        },
        None => match status.signal() {
            Some(signal) => Outcome::failed(format!("terminated by signal {signal}")),
            None => Outcome::failed(format!("command ended abnormally: {status}")),
        },
    }
}

/// Kills the child's process group on drop unless disarmed.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            super::spawner::kill_group(pgid);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one pipe to end-of-file in a task, keeping the first 64 KiB and counting the
/// rest (it keeps draining, so the child never blocks on a full pipe).
struct Capture {
    buffer: Arc<Mutex<CappedBuffer>>,
    task: Option<JoinHandle<()>>,
}

impl Capture {
    fn start<R>(pipe: Option<R>) -> Capture
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let buffer = Arc::new(Mutex::new(CappedBuffer::new()));
        let task = pipe.map(|mut pipe| {
            let buffer = Arc::clone(&buffer);
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 8 * 1024];
                loop {
                    match pipe.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if let Ok(mut b) = buffer.lock() {
                                b.push(&chunk[..n]);
                            }
                        }
                    }
                }
            })
        });
        Capture { buffer, task }
    }

    /// Waits (at most `DRAIN_GRACE`) for end-of-file, then returns the receipt text.
    async fn finish(mut self) -> String {
        if let Some(task) = self.task.as_mut() {
            if tokio::time::timeout(DRAIN_GRACE, task).await.is_err() {
                tracing::debug!("output pipe still open after the command ended; cutting it off");
            }
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let buffer = match self.buffer.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        buffer.into_receipt_text()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::domain::schedule::Target;
    use crate::executors::test_support::{identity, is_alive};
    use crate::executors::{Executors, WorkflowRegistry, RECEIPT_BODY_LIMIT};

    fn sh(script: &str) -> Target {
        Target::Shell {
            command: "/bin/sh".to_string(),
            args: vec!["-c".to_string(), script.to_string()],
        }
    }

    async fn run(target: &Target, timeout: Duration, cancel: CancellationToken) -> Outcome {
        Executors::new(
            WorkflowRegistry::new(),
            crate::security::TargetPolicy::unrestricted(),
        )
        .execute(target, &identity(), timeout, cancel)
        .await
    }

    fn receipt<'a>(outcome: &'a Outcome, kind: &str) -> &'a str {
        let r = outcome
            .receipts
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} receipt in {outcome:?}"));
        assert_eq!(r.content_type, TEXT_PLAIN);
        &r.body
    }

    async fn wait_dead(pid: i32) -> bool {
        for _ in 0..40 {
            if !is_alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    async fn read_pid(path: &std::path::Path) -> i32 {
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Ok(pid) = text.trim().parse() {
                    return pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no pid written to {}", path.display());
    }

    #[tokio::test]
    async fn success_with_stdout_and_both_receipts() {
        let target = Target::Shell {
            command: "echo".to_string(),
            args: vec!["hello".to_string(), "$HOME".to_string(), "a b".to_string()],
        };
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.error_text, None);
        assert_eq!(outcome.receipts.len(), 2);
        // Arguments are passed verbatim: no interpolation.
        assert_eq!(receipt(&outcome, "stdout"), "hello $HOME a b\n");
        assert_eq!(receipt(&outcome, "stderr"), "");
    }

    #[tokio::test]
    async fn nonzero_exit_fails_with_code_and_stderr() {
        let target = sh("echo out; echo oops >&2; exit 3");
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("command exited with code 3")
        );
        assert_eq!(receipt(&outcome, "stdout"), "out\n");
        assert_eq!(receipt(&outcome, "stderr"), "oops\n");
    }

    #[tokio::test]
    async fn identity_environment_is_visible() {
        let target = sh(
            "echo $WAKEPLANE_SCHEDULE_ID; echo $WAKEPLANE_RUN_ID; echo $WAKEPLANE_OCCURRENCE_KEY; \
             echo $WAKEPLANE_ATTEMPT; echo $WAKEPLANE_NOMINAL_TIME; echo ${PATH:+has-path}",
        );
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert_eq!(
            receipt(&outcome, "stdout"),
            "sch_01\nrun_01\nsch_01:2024-01-02T03:04:05Z\n2\n2024-01-02T03:04:05Z\nhas-path\n"
        );
    }

    async fn run_under(policy: ShellPolicy, target: &Target) -> Outcome {
        let policy = crate::security::TargetPolicy {
            shell: policy,
            ..crate::security::TargetPolicy::unrestricted()
        };
        crate::executors::test_support::execute_under(policy, target).await
    }

    #[tokio::test]
    async fn server_secrets_are_not_inherited() {
        // Only the minimal environment and the identity reach the command: none of the
        // server's variables (its WAKEPLANE_* configuration, DATABASE_URL, PGPASSWORD,
        // cargo's CARGO_* here), in a fresh, empty working directory of its own.
        let target = sh("env; echo cwd=$(pwd); echo files=$(ls -A | wc -l)");
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        let out = receipt(&outcome, "stdout");
        let allowed = [
            "PATH",
            "HOME",
            "USER",
            "LOGNAME",
            "LANG",
            "LC_ALL",
            "TZ",
            "PWD",
            "SHLVL",
            "_",
            "OLDPWD",
            "WAKEPLANE_SCHEDULE_ID",
            "WAKEPLANE_RUN_ID",
            "WAKEPLANE_OCCURRENCE_KEY",
            "WAKEPLANE_ATTEMPT",
            "WAKEPLANE_NOMINAL_TIME",
        ];
        for line in out
            .lines()
            .filter(|l| !l.starts_with("cwd=") && !l.starts_with("files="))
        {
            let name = line.split('=').next().unwrap_or("");
            assert!(allowed.contains(&name), "inherited {name}: {out}");
        }
        let cwd = out
            .lines()
            .find_map(|l| l.strip_prefix("cwd="))
            .expect("cwd line");
        let expected = std::env::temp_dir().join("wakeplane-run01-");
        assert!(cwd.starts_with(expected.to_str().unwrap()), "{cwd}");
        assert!(out.contains(&format!("HOME={cwd}\n")), "{out}");
        assert!(out.contains("files=0\n"), "{out}");
        // The directory goes away with the run.
        let dir = std::path::PathBuf::from(cwd);
        for _ in 0..100 {
            if !dir.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }

    #[tokio::test]
    async fn policy_refusals_fail_the_run_without_starting_anything() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let target = sh(&format!("touch '{}'", marker.display()));
        let off = ShellPolicy {
            mode: crate::security::ShellMode::Off,
            ..ShellPolicy::unrestricted()
        };
        let outcome = run_under(off, &target).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("shell targets are disabled on this server (WAKEPLANE_SHELL_TARGETS=off)")
        );
        let allow = ShellPolicy {
            allow: Some(crate::security::CommandAllowList::parse("/usr/bin/*").unwrap()),
            ..ShellPolicy::unrestricted()
        };
        let outcome = run_under(allow, &target).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        let err = outcome.error_text.unwrap_or_default();
        assert!(
            err.starts_with(
                "command \"/bin/sh\" is not allowed by WAKEPLANE_SHELL_ALLOW (/usr/bin/*)"
            ),
            "{err}"
        );
        let refuse = ShellPolicy {
            run_as: crate::security::RunAs::Refuse("no unprivileged user".into()),
            ..ShellPolicy::unrestricted()
        };
        let outcome = run_under(refuse, &target).await;
        assert_eq!(outcome.error_text.as_deref(), Some("no unprivileged user"));
        assert!(outcome.receipts.is_empty());
        assert!(!marker.exists(), "a refused command ran");
    }

    #[tokio::test]
    async fn as_root_commands_run_as_the_configured_account() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: switching users needs root");
            return;
        }
        let run_as = match crate::security::RunAs::resolve(None, None, 0, 0) {
            Ok(r @ crate::security::RunAs::Account { .. }) => r,
            other => {
                eprintln!("skipped: no `nobody` account ({other:?})");
                return;
            }
        };
        let crate::security::RunAs::Account { uid, gid, .. } = run_as.clone() else {
            return;
        };
        let policy = ShellPolicy {
            run_as,
            ..ShellPolicy::unrestricted()
        };
        let target = sh("id -u; id -g; id -G; echo $USER; touch ./mine && echo wrote; cat /proc/$PPID/environ >/dev/null 2>&1 || echo denied");
        let outcome = run_under(policy, &target).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert_eq!(
            receipt(&outcome, "stdout"),
            format!("{uid}\n{gid}\n{gid}\nnobody\nwrote\ndenied\n")
        );
    }

    #[tokio::test]
    async fn killed_by_signal_has_no_exit_code() {
        let target = sh("kill -9 $$");
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(outcome.exit_code, None);
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("terminated by signal 9")
        );
    }

    #[tokio::test]
    async fn large_output_is_truncated_with_exact_count_and_never_blocks() {
        // 200 000 bytes on each pipe, well past the pipe buffer: both must be drained
        // concurrently or the child would block.
        let target =
            sh("head -c 200000 /dev/zero | tr '\\0' e >&2; head -c 70000 /dev/zero | tr '\\0' o");
        let outcome = run(&target, Duration::from_secs(20), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        let expected_out = format!(
            "{}\n[truncated: {} bytes not shown]",
            "o".repeat(RECEIPT_BODY_LIMIT),
            70000 - RECEIPT_BODY_LIMIT
        );
        assert_eq!(receipt(&outcome, "stdout"), expected_out);
        let expected_err = format!(
            "{}\n[truncated: {} bytes not shown]",
            "e".repeat(RECEIPT_BODY_LIMIT),
            200000 - RECEIPT_BODY_LIMIT
        );
        assert_eq!(receipt(&outcome, "stderr"), expected_err);
    }

    #[tokio::test]
    async fn exactly_the_limit_is_not_truncated() {
        let target = sh(&format!(
            "head -c {RECEIPT_BODY_LIMIT} /dev/zero | tr '\\0' z"
        ));
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(receipt(&outcome, "stdout"), "z".repeat(RECEIPT_BODY_LIMIT));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        // The grandchild inherits stdout/stderr, so it also holds the pipes open.
        let target = sh(&format!(
            "sleep 100 & echo $! > '{}'; echo started; sleep 100",
            pid_file.display()
        ));
        let started = Instant::now();
        let outcome = run(
            &target,
            Duration::from_millis(700),
            CancellationToken::new(),
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(outcome.status, OutcomeStatus::TimedOut, "{outcome:?}");
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("timed out after 0.7 seconds")
        );
        assert_eq!(outcome.exit_code, None);
        assert!(elapsed < Duration::from_millis(3000), "{elapsed:?}");
        assert_eq!(receipt(&outcome, "stdout"), "started\n");
        let grandchild = read_pid(&pid_file).await;
        assert!(
            wait_dead(grandchild).await,
            "grandchild {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn cancellation_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let target = sh(&format!(
            "sleep 100 & echo $! > '{}'; sleep 100",
            pid_file.display()
        ));
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let file = pid_file.clone();
        tokio::spawn(async move {
            // Cancel once the grandchild exists.
            read_pid(&file).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let outcome = run(&target, Duration::from_secs(60), cancel).await;
        assert_eq!(outcome.status, OutcomeStatus::Cancelled, "{outcome:?}");
        assert_eq!(outcome.error_text.as_deref(), Some("cancelled"));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(outcome.receipts.len(), 2);
        let grandchild = read_pid(&pid_file).await;
        assert!(
            wait_dead(grandchild).await,
            "grandchild {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn already_cancelled_token_starts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let target = sh(&format!("touch '{}'", marker.display()));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let outcome = run(&target, Duration::from_secs(10), cancel).await;
        assert_eq!(outcome.status, OutcomeStatus::Cancelled);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn background_process_holding_pipes_does_not_hang_a_finished_command() {
        let target = sh("sleep 10 & echo done");
        let started = Instant::now();
        let outcome = run(&target, Duration::from_secs(60), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Succeeded, "{outcome:?}");
        assert_eq!(receipt(&outcome, "stdout"), "done\n");
        assert!(
            started.elapsed() < DRAIN_GRACE + Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn missing_binary_fails_to_start() {
        let target = Target::Shell {
            command: "/nope".to_string(),
            args: vec![],
        };
        let outcome = run(&target, Duration::from_secs(10), CancellationToken::new()).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed);
        assert_eq!(outcome.exit_code, None);
        assert_eq!(
            outcome.error_text.as_deref(),
            Some("failed to start command \"/nope\": No such file or directory (os error 2)")
        );
    }
}
