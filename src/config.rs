//! Provides `Config`, read once from the environment at start-up (DESIGN.md's table).
//!
//! Two stages: raw variables are checked for shape here; what needs the system (the
//! private cluster when `DATABASE_URL` is unset, the host name) is resolved by the caller.

use std::path::PathBuf;
use std::time::Duration;

use crate::security::{CommandAllowList, NetPolicy, TargetSettings};

/// Log output format (`WAKEPLANE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: String,
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub worker_id: String,
    pub workers: usize,
    pub db_pool_size: u32,
    pub lease_ttl: Duration,
    /// A node whose heartbeat is older is dead; its schedules move (`WAKEPLANE_NODE_TTL_SECONDS`).
    pub node_ttl: Duration,
    /// The address other nodes and the console show for this node
    /// (`WAKEPLANE_ADVERTISE_ADDR`); `None`: the address it listens on.
    pub advertise_addr: Option<String>,
    pub shutdown_timeout: Duration,
    pub api_tokens: Option<String>,
    pub log_format: LogFormat,
    /// `WAKEPLANE_RUN_RETENTION_DAYS`: ended runs older than this are deleted (None:
    /// kept forever).
    pub run_retention: Option<Duration>,
    /// `WAKEPLANE_RUN_RETENTION_INTERVAL_SECONDS`: how often retention looks for work once
    /// a backlog is gone.
    pub run_retention_interval: Duration,
    /// What shell and HTTP targets may do (README, "Security").
    pub targets: TargetSettings,
}

/// The longest retention accepted (100 years).
const MAX_RETENTION_DAYS: u64 = 36_500;

#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let nonempty = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let number =
            |var: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
                match nonempty(var) {
                    None => Ok(default),
                    Some(v) => match v.parse::<u64>() {
                        Ok(n) if (min..=max).contains(&n) => Ok(n),
                        _ => Err(ConfigError {
                            var,
                            message: format!("must be an integer from {min} to {max} (got {v:?})"),
                        }),
                    },
                }
            };
        let log_format = match nonempty("WAKEPLANE_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    var: "WAKEPLANE_LOG_FORMAT",
                    message: format!("must be text or json (got {other:?})"),
                })
            }
        };
        let bad = |var: &'static str| move |message: String| ConfigError { var, message };
        let targets = TargetSettings {
            shell_mode: match nonempty("WAKEPLANE_SHELL_TARGETS") {
                Some(v) => v.parse().map_err(bad("WAKEPLANE_SHELL_TARGETS"))?,
                None => Default::default(),
            },
            shell_allow: nonempty("WAKEPLANE_SHELL_ALLOW")
                .map(|v| CommandAllowList::parse(&v).map_err(bad("WAKEPLANE_SHELL_ALLOW")))
                .transpose()?,
            shell_user: nonempty("WAKEPLANE_SHELL_USER"),
            shell_group: nonempty("WAKEPLANE_SHELL_GROUP"),
            net: NetPolicy::from_settings(
                nonempty("WAKEPLANE_HTTP_TARGET_DENY").as_deref(),
                nonempty("WAKEPLANE_HTTP_TARGET_ALLOW").as_deref(),
            )
            .map_err(|(var, message)| ConfigError { var, message })?,
        };
        Ok(Config {
            http_addr: nonempty("WAKEPLANE_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url: secret(&get, "DATABASE_URL", "DATABASE_URL_FILE")?,
            data_dir: PathBuf::from(
                nonempty("WAKEPLANE_DATA_DIR").unwrap_or_else(|| "./.wakeplane".into()),
            ),
            worker_id: nonempty("WAKEPLANE_WORKER_ID").unwrap_or_else(default_worker_id),
            workers: number("WAKEPLANE_WORKERS", 16, 1, 1024)? as usize,
            db_pool_size: number("WAKEPLANE_DB_POOL_SIZE", 10, 1, 1000)? as u32,
            lease_ttl: Duration::from_secs(number("WAKEPLANE_LEASE_TTL_SECONDS", 30, 2, 86_400)?),
            node_ttl: Duration::from_secs(number("WAKEPLANE_NODE_TTL_SECONDS", 10, 2, 3600)?),
            advertise_addr: nonempty("WAKEPLANE_ADVERTISE_ADDR"),
            shutdown_timeout: Duration::from_secs(number(
                "WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS",
                30,
                0,
                86_400,
            )?),
            api_tokens: secret(&get, "WAKEPLANE_API_TOKENS", "WAKEPLANE_API_TOKENS_FILE")?,
            log_format,
            run_retention: match nonempty("WAKEPLANE_RUN_RETENTION_DAYS") {
                None => None,
                Some(v) => match v.parse::<u64>() {
                    Ok(days) if (1..=MAX_RETENTION_DAYS).contains(&days) => {
                        Some(Duration::from_secs(days * 86_400))
                    }
                    _ => {
                        return Err(ConfigError {
                            var: "WAKEPLANE_RUN_RETENTION_DAYS",
                            message: format!(
                                "must be a whole number of days from 1 to {MAX_RETENTION_DAYS} \
                                 (got {v:?}); leave it unset to keep runs forever"
                            ),
                        })
                    }
                },
            },
            run_retention_interval: Duration::from_secs(number(
                "WAKEPLANE_RUN_RETENTION_INTERVAL_SECONDS",
                60,
                1,
                86_400,
            )?),
            targets,
        })
    }
}

/// A secret given either in `var` or, Docker-secrets style, in the file named by
/// `file_var` (its content, surrounding whitespace trimmed). Both set is an error, so
/// nobody wonders which one wins.
fn secret(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    file_var: &'static str,
) -> Result<Option<String>, ConfigError> {
    let value = get(var).filter(|v| !v.trim().is_empty());
    let Some(path) = get(file_var).filter(|v| !v.trim().is_empty()) else {
        return Ok(value.map(|v| v.trim().to_string()));
    };
    if value.is_some() {
        return Err(ConfigError {
            var: file_var,
            message: format!("set either {var} or {file_var}, not both"),
        });
    }
    let text = std::fs::read_to_string(path.trim()).map_err(|e| ConfigError {
        var: file_var,
        message: format!("cannot read {:?}: {e}", path.trim()),
    })?;
    match text.trim() {
        "" => Err(ConfigError {
            var: file_var,
            message: format!("{:?} is empty", path.trim()),
        }),
        t => Ok(Some(t.to_string())),
    }
}

/// The kernel's host name (empty when unknown).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// `wrk_<host>` from the kernel's host name.
fn default_worker_id() -> String {
    let host = host_name();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if host.is_empty() {
        "wrk_local".into()
    } else {
        format!("wrk_{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_design() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:8080");
        assert_eq!(c.database_url, None);
        assert_eq!(c.workers, 16);
        assert_eq!(c.db_pool_size, 10);
        assert_eq!(c.lease_ttl, Duration::from_secs(30));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(c.node_ttl, Duration::from_secs(10));
        assert_eq!(c.advertise_addr, None);
        assert!(c.worker_id.starts_with("wrk_"));
    }

    #[test]
    fn secrets_come_from_files_too() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "file-token-123:admin\n").unwrap();
        let path = tokens.to_str().unwrap();
        let c = cfg(&[("WAKEPLANE_API_TOKENS_FILE", path)]).unwrap();
        assert_eq!(c.api_tokens.as_deref(), Some("file-token-123:admin"));
        let e = cfg(&[
            ("WAKEPLANE_API_TOKENS_FILE", path),
            ("WAKEPLANE_API_TOKENS", "x-token-123:admin"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "WAKEPLANE_API_TOKENS_FILE");
        assert!(e.message.contains("not both"), "{e}");
        let e = cfg(&[("DATABASE_URL_FILE", "/nonexistent/wp-db-url")]).unwrap_err();
        assert_eq!(e.var, "DATABASE_URL_FILE");
        assert!(e.message.contains("/nonexistent/wp-db-url"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let e = cfg(&[("DATABASE_URL_FILE", empty.to_str().unwrap())]).unwrap_err();
        assert!(e.message.contains("is empty"), "{e}");
    }

    #[test]
    fn target_settings_name_their_variable() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.targets, TargetSettings::default());
        for (var, value) in [
            ("WAKEPLANE_SHELL_TARGETS", "on"),
            ("WAKEPLANE_SHELL_ALLOW", "relative/path"),
            ("WAKEPLANE_HTTP_TARGET_DENY", "10.0.0.0/99"),
            ("WAKEPLANE_HTTP_TARGET_ALLOW", "none"),
        ] {
            assert_eq!(cfg(&[(var, value)]).unwrap_err().var, var, "{var}={value}");
        }
    }

    #[test]
    fn retention_is_off_unless_set_and_checked() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.run_retention, None);
        assert_eq!(c.run_retention_interval, Duration::from_secs(60));
        let c = cfg(&[("WAKEPLANE_RUN_RETENTION_DAYS", "30")]).unwrap();
        assert_eq!(c.run_retention, Some(Duration::from_secs(30 * 86_400)));
        for bad in ["0", "-1", "1.5", "30d", "36501"] {
            let e = cfg(&[("WAKEPLANE_RUN_RETENTION_DAYS", bad)]).unwrap_err();
            assert_eq!(e.var, "WAKEPLANE_RUN_RETENTION_DAYS");
            assert!(e.message.contains("whole number of days"), "{e}");
            assert!(e.message.contains(bad), "{e}");
        }
        let e = cfg(&[("WAKEPLANE_RUN_RETENTION_INTERVAL_SECONDS", "0")]).unwrap_err();
        assert_eq!(e.var, "WAKEPLANE_RUN_RETENTION_INTERVAL_SECONDS");
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let e = cfg(&[("WAKEPLANE_WORKERS", "lots")]).unwrap_err();
        assert_eq!(e.var, "WAKEPLANE_WORKERS");
        assert!(cfg(&[("WAKEPLANE_LEASE_TTL_SECONDS", "1")]).is_err());
        let e = cfg(&[("WAKEPLANE_NODE_TTL_SECONDS", "1")]).unwrap_err();
        assert_eq!(e.var, "WAKEPLANE_NODE_TTL_SECONDS");
        assert!(cfg(&[("DATABASE_URL", "  ")])
            .unwrap()
            .database_url
            .is_none());
    }
}
