//! Provides the run-time half of the target policy: the last check before a shell command
//! is spawned (mode, allowlist, who it runs as, a fresh working directory, a minimal
//! environment), and an HTTP client that checks every address it connects to.
//!
//! The HTTP checks sit where the connection is made: a DNS resolver that drops refused
//! addresses (so a name that resolves differently at run time cannot slip past, and no
//! rebinding trick helps), a literal-address check before sending, and a redirect policy
//! that checks each hop. System proxy variables are ignored: through a proxy the address
//! connected to would be the proxy's, and the check would be moot.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::process::Command;

use super::RunIdentity;
use crate::security::{NetPolicy, RunAs, ShellPolicy};

/// `PATH` for commands when the server has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Server variables a command inherits (locale and zone); everything else is dropped.
const PASSED_THROUGH: &[&str] = &["LANG", "LC_ALL", "TZ"];
/// Redirect hops followed before giving up (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// A run's private working directory; removed (with whatever the command left) on drop.
#[derive(Debug)]
pub(crate) struct Workdir {
    path: PathBuf,
}

impl Workdir {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        let remove = move || {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a run's working directory");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// Checks `command` against the policy and sets `cmd` up to run it: as the configured
/// account, in a fresh empty directory (mode 0700, owned by that account), with only
/// `PATH`, `HOME` (the directory), `USER`/`LOGNAME`, the locale and zone. The caller adds
/// the run's identity variables. `Err` is the run's `error_text`.
pub(crate) fn prepare_shell(
    policy: &ShellPolicy,
    command: &str,
    identity: &RunIdentity,
    cmd: &mut Command,
) -> Result<Workdir, String> {
    policy.check_command(command)?;
    let account = match &policy.run_as {
        RunAs::Refuse(message) => return Err(message.clone()),
        RunAs::Server => None,
        RunAs::Account { name, uid, gid } => Some((name.as_str(), *uid, *gid)),
    };
    let path = std::env::temp_dir().join(format!(
        "wakeplane-{}-{}",
        identity
            .run_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>(),
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    // Not recursive: an existing path (or a planted symlink) is an error, never reused.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(|e| {
            format!(
                "could not create a working directory for the command ({}): {e}",
                path.display()
            )
        })?;
    let workdir = Workdir { path };
    if let Some((_, uid, gid)) = account {
        std::os::unix::fs::chown(workdir.path(), Some(uid), Some(gid)).map_err(|e| {
            format!(
                "could not hand the working directory {} to uid {uid}: {e}",
                workdir.path().display()
            )
        })?;
        // std drops root's supplementary groups (setgroups(0)) before setuid.
        cmd.uid(uid).gid(gid);
    }
    cmd.env_clear()
        .current_dir(workdir.path())
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        )
        .env("HOME", workdir.path());
    match account {
        Some((name, _, _)) => {
            cmd.env("USER", name).env("LOGNAME", name);
        }
        None => {
            for var in ["USER", "LOGNAME"] {
                if let Some(v) = std::env::var_os(var) {
                    cmd.env(var, v);
                }
            }
        }
    }
    for var in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    Ok(workdir)
}

/// The shared HTTP client: every address checked against `policy`, redirects followed
/// (up to 10, each hop checked), no proxy, no overall timeout (the executor enforces the
/// run's timeout), a wakeplane user agent.
pub(crate) fn http_client(policy: &NetPolicy) -> reqwest::Client {
    let hops = policy.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            let message = format!("too many redirects (more than {MAX_REDIRECTS})");
            attempt.error(message)
        } else if let Err(refusal) = hops.check_url_literal(attempt.url()) {
            attempt.error(refusal)
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .user_agent(concat!("wakeplane/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .no_proxy()
        .redirect(redirects)
        .dns_resolver(Arc::new(CheckedResolver {
            policy: policy.clone(),
        }))
        .build()
        .unwrap_or_else(|e| {
            // Only a broken TLS backend fails here; a client without the checks would be
            // worse than one that fails every request.
            tracing::error!(error = %e, "could not build the http client; http targets will fail");
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(Arc::new(CheckedResolver {
                    policy: NetPolicy::refuse_all(),
                }))
                .build()
                .unwrap_or_default()
        })
}

/// Resolves names with the system resolver, then keeps only the addresses the policy
/// allows; a name with none left fails, naming the rules that refused it.
struct CheckedResolver {
    policy: NetPolicy,
}

/// Every address a name resolved to was refused.
#[derive(Debug)]
struct NameRefused {
    name: String,
    reasons: Vec<String>,
}

impl std::fmt::Display for NameRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to refused addresses: {}",
            self.name,
            self.reasons.join("; ")
        )
    }
}

impl std::error::Error for NameRefused {}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let mut allowed = Vec::new();
            let mut reasons = Vec::new();
            for addr in resolved {
                match policy.check(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(refusal) => {
                        let reason = refusal.to_string();
                        if !reasons.contains(&reason) {
                            reasons.push(reason);
                        }
                    }
                }
            }
            if allowed.is_empty() && !reasons.is_empty() {
                return Err(Box::new(NameRefused { name, reasons }) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
