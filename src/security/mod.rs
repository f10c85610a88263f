//! Provides the privilege boundary around targets: what shell and HTTP targets may do
//! ([`TargetPolicy`], from `WAKEPLANE_SHELL_*` and `WAKEPLANE_HTTP_TARGET_*`), whom shell
//! commands run as, and the hardening of the server process itself.
//!
//! Rules and start-up resolution only: the API applies them to request bodies and the
//! executors before each spawn or connection. Nothing here touches the database or HTTP.

pub mod net;
pub mod shell;

pub use net::NetPolicy;
pub use shell::{CommandAllowList, RunAs, ShellMode, ShellPolicy};

/// The target settings as configured (stage one: checked for shape, nothing resolved).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetSettings {
    pub shell_mode: ShellMode,
    pub shell_allow: Option<CommandAllowList>,
    pub shell_user: Option<String>,
    pub shell_group: Option<String>,
    pub net: NetPolicy,
}

/// What targets may do on this server, resolved at start-up; never changes afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPolicy {
    pub shell: ShellPolicy,
    pub net: NetPolicy,
}

impl TargetPolicy {
    /// Resolves the settings for this process (the shell account lookup, when root).
    pub fn resolve(settings: &TargetSettings) -> Result<TargetPolicy, String> {
        // SAFETY: geteuid/getegid cannot fail and have no preconditions.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let run_as = RunAs::resolve(
            settings.shell_user.as_deref(),
            settings.shell_group.as_deref(),
            euid,
            egid,
        )?;
        Ok(TargetPolicy {
            shell: ShellPolicy {
                mode: settings.shell_mode,
                allow: settings.shell_allow.clone(),
                run_as,
            },
            net: settings.net.clone(),
        })
    }

    /// Everything allowed, commands run as the server's own user (unit tests of the
    /// executors; never what a server resolves by default).
    pub fn unrestricted() -> TargetPolicy {
        TargetPolicy {
            shell: ShellPolicy::unrestricted(),
            net: NetPolicy::unrestricted(),
        }
    }
}

/// Marks this process non-dumpable (`PR_SET_DUMPABLE` 0): its `/proc/<pid>/environ`,
/// `mem` and the like become root-only, so a command it spawns cannot read the server's
/// environment or memory even when it runs as the same user. Also disables core dumps and
/// ptrace attaching by that user. Linux only; elsewhere a no-op.
pub fn forbid_dumping() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_DUMPABLE) only changes a flag of the calling process.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
