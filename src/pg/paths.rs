//! Provides socket paths and settings, connection URLs, and the system user the server runs as
//! when we are root (lookup, ownership, modes, and whether it can reach the data directory).
//! Pure path and permission logic plus chown/chmod; it never starts a process.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{io_err, PgError, MAX_SOCKET_PATH, SUPERUSER, SYSTEM_USER};

pub(super) fn check_socket_path(socket_dir: &Path, port: u16) -> Result<(), PgError> {
    let path = socket_dir.join(format!(".s.PGSQL.{port}"));
    // The lock file next to it is longer, but PostgreSQL only limits the socket path.
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(PgError::SocketPathTooLong {
            path,
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

/// `unix_socket_directories="<dir>"`: quoted, so commas and spaces in the path are safe.
pub(super) fn socket_dirs_setting(dir: &Path) -> String {
    let quoted = dir.to_string_lossy().replace('"', "\"\"");
    format!("unix_socket_directories=\"{quoted}\"")
}

fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn build_url(socket_dir: &Path, port: u16, database: &str) -> String {
    format!(
        "postgres://{SUPERUSER}@localhost:{port}/{}?host={}",
        percent_encode(database.as_bytes()),
        percent_encode(socket_dir.as_os_str().as_bytes())
    )
}

#[derive(Clone, Copy, Debug)]
pub(super) struct RunAs {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// `Some(postgres user)` when we are root, `None` (run as ourselves) otherwise.
pub(super) fn resolve_run_as() -> Result<Option<RunAs>, PgError> {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let user = lookup_user(SYSTEM_USER).ok_or(PgError::NoPostgresUser)?;
    if user.uid == 0 {
        return Err(PgError::NoPostgresUser);
    }
    Ok(Some(user))
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r writes into it and buf.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(RunAs {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), PgError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("setting mode of {}", path.display())))
}

pub(super) fn chown_path(path: &Path, user: RunAs) -> Result<(), PgError> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
        .map_err(io_err(format!("changing owner of {}", path.display())))
}

pub(super) fn chown_tree(path: &Path, user: RunAs) -> Result<(), PgError> {
    chown_path(path, user)?;
    let meta = fs::symlink_metadata(path).map_err(io_err(format!("reading {}", path.display())))?;
    if meta.is_dir() {
        let entries = fs::read_dir(path).map_err(io_err(format!("reading {}", path.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading {}", path.display())))?;
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// Every ancestor of `data_dir` must be searchable by `user` (primary group only: std
/// clears supplementary groups when switching uid).
pub(super) fn check_reachable(data_dir: &Path, user: RunAs) -> Result<(), PgError> {
    for dir in data_dir.ancestors().skip(1) {
        let meta = fs::metadata(dir).map_err(io_err(format!("reading {}", dir.display())))?;
        if !searchable_by(meta.mode(), meta.uid(), meta.gid(), user) {
            return Err(PgError::Unreachable {
                data_dir: data_dir.to_path_buf(),
                blocked: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn searchable_by(mode: u32, owner: u32, group: u32, user: RunAs) -> bool {
    if owner == user.uid {
        mode & 0o100 != 0
    } else if group == user.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn url_percent_encodes_socket_dir_and_database() {
        let url = build_url(Path::new("/tmp/wp-pg-1-0-ab/socket"), 5432, "app_test");
        assert_eq!(
            url,
            "postgres://postgres@localhost:5432/app_test?host=%2Ftmp%2Fwp-pg-1-0-ab%2Fsocket"
        );
        let url = build_url(Path::new("/srv/my data,x/socket"), 5432, "a b/c");
        assert_eq!(
            url,
            "postgres://postgres@localhost:5432/a%20b%2Fc?host=%2Fsrv%2Fmy%20data%2Cx%2Fsocket"
        );
    }

    #[test]
    fn socket_path_length_is_checked() {
        // "/.s.PGSQL.5432" is 14 bytes; a 93-byte dir gives exactly 107.
        let ok = PathBuf::from(format!("/{}", "a".repeat(92)));
        assert_eq!(ok.as_os_str().len(), 93);
        assert!(check_socket_path(&ok, 5432).is_ok());
        let too_long = PathBuf::from(format!("/{}", "a".repeat(93)));
        match check_socket_path(&too_long, 5432) {
            Err(PgError::SocketPathTooLong { len, max, .. }) => {
                assert_eq!((len, max), (108, 107));
            }
            other => panic!("expected SocketPathTooLong, got {other:?}"),
        }
    }

    #[test]
    fn socket_setting_is_quoted() {
        assert_eq!(
            socket_dirs_setting(Path::new("/a,b/\"c\"")),
            "unix_socket_directories=\"/a,b/\"\"c\"\"\""
        );
    }

    #[test]
    fn searchability_uses_owner_group_other_bits() {
        let pg = RunAs { uid: 101, gid: 104 };
        assert!(!searchable_by(0o700, 0, 0, pg)); // /root
        assert!(searchable_by(0o755, 0, 0, pg));
        assert!(searchable_by(0o710, 0, 104, pg));
        assert!(searchable_by(0o700, 101, 104, pg));
        assert!(!searchable_by(0o077, 101, 104, pg));
    }
}
