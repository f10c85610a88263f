//! Defines what shell targets may run and as whom: `WAKEPLANE_SHELL_TARGETS` (off or
//! admin-only), the `WAKEPLANE_SHELL_ALLOW` command allowlist, and the identity
//! (`WAKEPLANE_SHELL_USER`/`_GROUP`) a root server switches to before running a command.
//!
//! Rules and the account lookup only; spawning the command is the shell executor's job.

use std::ffi::CString;
use std::str::FromStr;

use glob::{MatchOptions, Pattern};

/// The variable that turns shell targets off (named in refusals).
pub const MODE_VAR: &str = "WAKEPLANE_SHELL_TARGETS";
/// The variable holding the allowlist (named in refusals).
pub const ALLOW_VAR: &str = "WAKEPLANE_SHELL_ALLOW";
/// The variable naming the user shell targets run as.
pub const USER_VAR: &str = "WAKEPLANE_SHELL_USER";
/// The variable naming the group shell targets run as.
pub const GROUP_VAR: &str = "WAKEPLANE_SHELL_GROUP";

/// The user a root server runs shell targets as when `WAKEPLANE_SHELL_USER` is unset.
pub const DEFAULT_USER: &str = "nobody";

/// Whether shell targets exist on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShellMode {
    /// Refused at validation and at run time.
    Off,
    /// Allowed; choosing the command needs the admin role (when auth is configured).
    #[default]
    Admin,
}

impl FromStr for ShellMode {
    type Err = String;
    fn from_str(s: &str) -> Result<ShellMode, String> {
        match s {
            "off" => Ok(ShellMode::Off),
            "admin" => Ok(ShellMode::Admin),
            other => Err(format!("must be off or admin (got {other:?})")),
        }
    }
}

/// The message for a shell target on a server that has them off.
pub fn disabled_message() -> String {
    format!("shell targets are disabled on this server ({MODE_VAR}=off)")
}

/// Absolute command paths or globs (`/opt/jobs/*`) a shell target may run. A `*` never
/// crosses a `/`, and a command must be a normalised absolute path (no `.`, `..` or `//`
/// components), so `/opt/jobs/../../bin/sh` matches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAllowList(Vec<Pattern>);

impl CommandAllowList {
    /// Parses `/path,/dir/*,…`; every entry must be absolute.
    pub fn parse(spec: &str) -> Result<CommandAllowList, String> {
        let mut out = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !item.starts_with('/') {
                return Err(format!("{item:?} is not an absolute path or glob"));
            }
            let pattern =
                Pattern::new(item).map_err(|e| format!("{item:?} is not a valid glob: {e}"))?;
            out.push(pattern);
        }
        if out.is_empty() {
            return Err("no command path given".into());
        }
        Ok(CommandAllowList(out))
    }

    /// `Ok` when `command` may run; otherwise why not (naming the variable).
    pub fn check(&self, command: &str) -> Result<(), String> {
        let options = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let normalised = command.starts_with('/')
            && !command[1..]
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..");
        if normalised && self.0.iter().any(|p| p.matches_with(command, options)) {
            return Ok(());
        }
        let allowed = self
            .0
            .iter()
            .map(Pattern::as_str)
            .collect::<Vec<_>>()
            .join(",");
        Err(format!(
            "command {command:?} is not allowed by {ALLOW_VAR} ({allowed}): commands must be normalised absolute paths matching one of them"
        ))
    }
}

/// Whom shell targets run as, resolved once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// The server's own identity: the server is not root, or `WAKEPLANE_SHELL_USER=root`
    /// was set explicitly.
    Server,
    /// Switch to this account (the server is root).
    Account { name: String, uid: u32, gid: u32 },
    /// The server is root and has no unprivileged account to switch to: every shell run
    /// fails with this message rather than run as root.
    Refuse(String),
}

impl RunAs {
    /// Resolves `WAKEPLANE_SHELL_USER`/`_GROUP` (`None` = unset) for a process whose
    /// effective uid and gid are `euid`, `egid`. A name that does not exist, or a switch a
    /// non-root server cannot make, is a start-up error.
    pub fn resolve(
        user: Option<&str>,
        group: Option<&str>,
        euid: u32,
        egid: u32,
    ) -> Result<RunAs, String> {
        if euid != 0 {
            // Without root there is nobody else to become; naming anyone else is an error,
            // so no operator believes commands run as someone they do not.
            if let Some(u) = user {
                let (uid, _) = lookup_user(u)?
                    .ok_or_else(|| format!("{USER_VAR}: no user {u:?} on this system"))?;
                if uid != euid {
                    return Err(format!(
                        "{USER_VAR}={u} needs the server to run as root (it runs as uid {euid}); unset it to run shell targets as the server's own user"
                    ));
                }
            }
            if let Some(g) = group {
                let gid = lookup_group(g)?
                    .ok_or_else(|| format!("{GROUP_VAR}: no group {g:?} on this system"))?;
                if gid != egid {
                    return Err(format!(
                        "{GROUP_VAR}={g} needs the server to run as root (it runs as gid {egid})"
                    ));
                }
            }
            return Ok(RunAs::Server);
        }
        let (name, explicit) = match user {
            Some(u) => (u, true),
            None => (DEFAULT_USER, false),
        };
        let account = match lookup_user(name)? {
            Some(a) => a,
            None if explicit => return Err(format!("{USER_VAR}: no user {name:?} on this system")),
            None => {
                return Ok(RunAs::Refuse(format!(
                    "refusing to run a shell target as root: the server runs as root and has no user {DEFAULT_USER:?} to run it as; set {USER_VAR} to an unprivileged user (or to root to allow root explicitly)"
                )))
            }
        };
        let gid = match group {
            Some(g) => lookup_group(g)?
                .ok_or_else(|| format!("{GROUP_VAR}: no group {g:?} on this system"))?,
            None => account.1,
        };
        if account.0 == 0 {
            if !explicit || name != "root" {
                // e.g. a second uid-0 account: root by another name needs the explicit word.
                return Err(format!(
                    "{USER_VAR}={name} is uid 0; write {USER_VAR}=root to run shell targets as root explicitly"
                ));
            }
            if gid != 0 {
                return Ok(RunAs::Account {
                    name: name.to_string(),
                    uid: 0,
                    gid,
                });
            }
            return Ok(RunAs::Server);
        }
        Ok(RunAs::Account {
            name: name.to_string(),
            uid: account.0,
            gid,
        })
    }

    /// For the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            RunAs::Server => "the server's own user".to_string(),
            RunAs::Account { name, uid, gid } => format!("{name} (uid {uid}, gid {gid})"),
            RunAs::Refuse(_) => "nobody: shell runs are refused (no unprivileged user)".into(),
        }
    }
}

/// The shell part of the target policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellPolicy {
    pub mode: ShellMode,
    pub allow: Option<CommandAllowList>,
    pub run_as: RunAs,
}

impl ShellPolicy {
    /// Shell targets allowed, any command, run as the server's own user.
    pub fn unrestricted() -> ShellPolicy {
        ShellPolicy {
            mode: ShellMode::Admin,
            allow: None,
            run_as: RunAs::Server,
        }
    }

    /// `Ok` when `command` may run under this policy (mode and allowlist); otherwise the
    /// message naming the setting that refuses it.
    pub fn check_command(&self, command: &str) -> Result<(), String> {
        if self.mode == ShellMode::Off {
            return Err(disabled_message());
        }
        match &self.allow {
            Some(allow) => allow.check(command),
            None => Ok(()),
        }
    }
}

/// `(uid, primary gid)` of a user name or numeric uid; `None` when there is no such user.
pub fn lookup_user(name: &str) -> Result<Option<(u32, u32)>, String> {
    let c = CString::new(name).map_err(|_| format!("{USER_VAR}: {name:?} contains NUL"))?;
    // SAFETY (both calls): getpw*_r write only into the passwd and the buffer we pass
    // with its length; the entry is read only on success.
    let by_name = passwd_entry(|pwd, buf, len, result| unsafe {
        libc::getpwnam_r(c.as_ptr(), pwd, buf, len, result)
    });
    let by_uid = || {
        let uid = name.parse::<u32>().ok()?;
        passwd_entry(|pwd, buf, len, result| unsafe {
            libc::getpwuid_r(uid, pwd, buf, len, result)
        })
    };
    Ok(by_name.or_else(by_uid))
}

/// Runs one reentrant passwd lookup with its buffers; `(uid, gid)` when it found one.
fn passwd_entry(
    lookup: impl FnOnce(
        *mut libc::passwd,
        *mut libc::c_char,
        usize,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
) -> Option<(u32, u32)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; an all-zero value is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = lookup(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

/// The gid of a group name or numeric gid; `None` when there is no such group.
fn lookup_group(name: &str) -> Result<Option<u32>, String> {
    let c = CString::new(name).map_err(|_| format!("{GROUP_VAR}: {name:?} contains NUL"))?;
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: as in lookup_user, with getgrnam_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Ok(Some(grp.gr_gid));
    }
    Ok(name.parse::<u32>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("off".parse::<ShellMode>(), Ok(ShellMode::Off));
        assert_eq!("admin".parse::<ShellMode>(), Ok(ShellMode::Admin));
        assert!("on".parse::<ShellMode>().is_err());
        let off = ShellPolicy {
            mode: ShellMode::Off,
            ..ShellPolicy::unrestricted()
        };
        assert_eq!(
            off.check_command("/bin/true").unwrap_err(),
            "shell targets are disabled on this server (WAKEPLANE_SHELL_TARGETS=off)"
        );
    }

    #[test]
    fn allowlist_matches_whole_normalised_paths() {
        let a = CommandAllowList::parse("/usr/local/bin/backup.sh, /opt/jobs/*").unwrap();
        assert!(a.check("/usr/local/bin/backup.sh").is_ok());
        assert!(a.check("/opt/jobs/nightly").is_ok());
        for refused in [
            "/bin/sh",
            "backup.sh",
            "/opt/jobs/sub/x",
            "/opt/jobs/../../bin/sh",
            "/opt/jobs/./x",
            "//opt/jobs/x",
            "/usr/local/bin/backup.sh2",
        ] {
            let e = a.check(refused).unwrap_err();
            assert!(e.contains("WAKEPLANE_SHELL_ALLOW"), "{refused}: {e}");
        }
        assert!(CommandAllowList::parse("bin/sh").is_err());
        assert!(CommandAllowList::parse(" , ").is_err());
        assert!(CommandAllowList::parse("/a/[").is_err());
    }

    #[test]
    fn root_switches_to_nobody_by_default_and_to_root_only_when_told() {
        let Some((nobody_uid, nobody_gid)) = lookup_user("nobody").unwrap() else {
            eprintln!("skipped: this system has no `nobody` user");
            return;
        };
        assert_eq!(
            RunAs::resolve(None, None, 0, 0).unwrap(),
            RunAs::Account {
                name: "nobody".into(),
                uid: nobody_uid,
                gid: nobody_gid
            }
        );
        assert_eq!(
            RunAs::resolve(Some("root"), None, 0, 0).unwrap(),
            RunAs::Server
        );
        assert_eq!(
            RunAs::resolve(Some("0"), None, 0, 0).unwrap_err(),
            "WAKEPLANE_SHELL_USER=0 is uid 0; write WAKEPLANE_SHELL_USER=root to run shell targets as root explicitly"
        );
        assert!(RunAs::resolve(Some("no-such-user-wp"), None, 0, 0)
            .unwrap_err()
            .contains("no user"));
        assert!(RunAs::resolve(None, Some("no-such-group-wp"), 0, 0).is_err());
        // Not root: no switch possible, and asking for one is refused at start-up.
        assert_eq!(
            RunAs::resolve(None, None, 1234, 1234).unwrap(),
            RunAs::Server
        );
        assert!(RunAs::resolve(Some("nobody"), None, 1234, 1234)
            .unwrap_err()
            .contains("needs the server to run as root"));
        assert_eq!(
            RunAs::resolve(Some("nobody"), None, nobody_uid, nobody_gid).unwrap(),
            RunAs::Server
        );
    }
}
