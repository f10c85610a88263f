//! Provides `Config`, read once from the environment at start-up (DESIGN.md's table).
//!
//! Two stages: raw variables are checked for shape here; what needs the system (the
//! private cluster when `DATABASE_URL` is unset, the host name) is resolved by the caller.

use std::path::PathBuf;
use std::time::Duration;

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
    pub shutdown_timeout: Duration,
    pub api_tokens: Option<String>,
    pub log_format: LogFormat,
}

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
        Ok(Config {
            http_addr: nonempty("WAKEPLANE_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url: nonempty("DATABASE_URL"),
            data_dir: PathBuf::from(
                nonempty("WAKEPLANE_DATA_DIR").unwrap_or_else(|| "./.wakeplane".into()),
            ),
            worker_id: nonempty("WAKEPLANE_WORKER_ID").unwrap_or_else(default_worker_id),
            workers: number("WAKEPLANE_WORKERS", 16, 1, 1024)? as usize,
            db_pool_size: number("WAKEPLANE_DB_POOL_SIZE", 10, 1, 1000)? as u32,
            lease_ttl: Duration::from_secs(number("WAKEPLANE_LEASE_TTL_SECONDS", 30, 2, 86_400)?),
            shutdown_timeout: Duration::from_secs(number(
                "WAKEPLANE_SHUTDOWN_TIMEOUT_SECONDS",
                30,
                0,
                86_400,
            )?),
            api_tokens: nonempty("WAKEPLANE_API_TOKENS"),
            log_format,
        })
    }
}

/// `wrk_<host>` from the kernel's host name.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
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
        assert!(c.worker_id.starts_with("wrk_"));
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let e = cfg(&[("WAKEPLANE_WORKERS", "lots")]).unwrap_err();
        assert_eq!(e.var, "WAKEPLANE_WORKERS");
        assert!(cfg(&[("WAKEPLANE_LEASE_TTL_SECONDS", "1")]).is_err());
        assert!(cfg(&[("DATABASE_URL", "  ")])
            .unwrap()
            .database_url
            .is_none());
    }
}
