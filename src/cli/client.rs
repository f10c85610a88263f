//! Provides the CLI's blocking HTTP client for the v1 API and the CLI's error type: every
//! request, the bearer token, the JSON error envelope and the mapping onto exit codes.
//!
//! It must not print anything or decide how results look; callers format what it returns.

use std::fmt;
use std::time::Duration;

use reqwest::blocking::{Client as HttpClient, RequestBuilder};
use reqwest::Method;
use serde_json::Value;

/// Exit code for an error the API answered (any non-2xx response).
pub const EXIT_API: u8 = 1;
/// Exit code for a bad command line or unreadable/invalid input; nothing was sent.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the server could not be reached (refused, DNS, timeout, TLS).
pub const EXIT_CONNECT: u8 = 3;

/// One `details` entry of the error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDetail {
    pub field: String,
    pub message: String,
}

/// Everything that can make a CLI command fail.
#[derive(Debug)]
pub enum CliError {
    /// The server answered with an error status (envelope decoded when it was JSON).
    Api {
        status: u16,
        code: String,
        message: String,
        details: Vec<FieldDetail>,
    },
    /// The server could not be reached.
    Connect { server: String, reason: String },
    /// Invalid arguments or input files; nothing was sent.
    Usage(String),
    /// Anything else (an unexpected response, several failed steps, …).
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { .. } | CliError::Failed(_) => EXIT_API,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Connect { .. } => EXIT_CONNECT,
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(message.into())
    }

    /// Whether this is the API's `not_found`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Api { status: 404, .. })
    }
}

impl fmt::Display for CliError {
    /// `code: message`, then one indented line per field detail.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Api {
                status,
                code,
                message,
                details,
            } => {
                if code.is_empty() {
                    write!(f, "HTTP {status}: {message}")?;
                } else {
                    write!(f, "{code}: {message}")?;
                }
                for d in details {
                    write!(f, "\n  {}: {}", d.field, d.message)?;
                }
                Ok(())
            }
            CliError::Connect { server, reason } => {
                write!(
                    f,
                    "could not connect to the wakeplane server at {server}: {reason}"
                )?;
                write!(f, "\n  (is it running? set --server or WAKEPLANE_SERVER)")
            }
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

/// A client for one server, with an optional bearer token.
pub struct Client {
    http: HttpClient,
    base: String,
    token: Option<String>,
}

impl Client {
    /// Builds a client for `server` (e.g. `http://127.0.0.1:8080`); a path prefix is kept.
    pub fn new(server: &str, token: Option<&str>) -> Result<Client, CliError> {
        let base = server.trim().trim_end_matches('/').to_string();
        let lower = base.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        if !matches!(rest, Some(r) if !r.is_empty()) {
            return Err(CliError::usage(format!(
                "--server must be an http(s) URL such as http://127.0.0.1:8080 (got {server:?})"
            )));
        }
        let http = HttpClient::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("wakeplane-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Failed(format!("could not build the HTTP client: {e}")))?;
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok(Client { http, base, token })
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        self.send(self.request(Method::GET, path).query(query))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.request(Method::POST, path).json(body))
    }

    /// POST without a body (pause, resume).
    pub fn post_empty(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(Method::POST, path))
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.request(Method::PUT, path).json(body))
    }

    pub fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(Method::DELETE, path))
    }

    /// Follows `next_cursor` from `path` and returns every item (`limit` per page).
    pub fn get_all(
        &self,
        path: &str,
        query: &[(&str, String)],
        limit: u32,
    ) -> Result<Vec<Value>, CliError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100_000 {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("limit", limit.to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page = self.get(path, &q)?;
            match page.get("items").and_then(Value::as_array) {
                Some(page_items) => items.extend(page_items.iter().cloned()),
                None => return Err(unexpected(path, &page)),
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(c) if !c.is_empty() && cursor.as_deref() != Some(c) => {
                    cursor = Some(c.to_string())
                }
                _ => return Ok(items),
            }
        }
        Err(CliError::Failed(format!(
            "paging through {path} did not end"
        )))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    fn send(&self, req: RequestBuilder) -> Result<Value, CliError> {
        let resp = req.send().map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| self.transport_error(e))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return match parsed {
                Some(v) => Ok(v),
                None if text.trim().is_empty() => Ok(Value::Null),
                None => Err(CliError::Failed(format!(
                    "the server answered {} with a body that is not JSON: {}",
                    status.as_u16(),
                    snippet(&text)
                ))),
            };
        }
        Err(api_error(status.as_u16(), parsed, &text))
    }

    fn transport_error(&self, e: reqwest::Error) -> CliError {
        if e.is_builder() {
            CliError::usage(format!(
                "invalid request to {}: {}",
                self.base,
                root_cause(&e)
            ))
        } else if e.is_connect() || e.is_timeout() || e.is_request() {
            CliError::Connect {
                server: self.base.clone(),
                reason: root_cause(&e),
            }
        } else {
            CliError::Failed(format!(
                "request to {} failed: {}",
                self.base,
                root_cause(&e)
            ))
        }
    }
}

/// Decodes the error envelope, falling back to the raw text for non-JSON answers.
fn api_error(status: u16, body: Option<Value>, text: &str) -> CliError {
    let envelope = body.filter(Value::is_object);
    let Some(env) = envelope else {
        return CliError::Api {
            status,
            code: String::new(),
            message: if text.trim().is_empty() {
                "(empty response)".into()
            } else {
                snippet(text)
            },
            details: Vec::new(),
        };
    };
    let code = env
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let message = env
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| snippet(text));
    let details = env
        .get("details")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .map(|e| FieldDetail {
                    field: e
                        .get("field")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    CliError::Api {
        status,
        code,
        message,
        details,
    }
}

/// An error for a 2xx answer without the expected shape.
pub fn unexpected(what: &str, body: &Value) -> CliError {
    CliError::Failed(format!(
        "unexpected response for {what}: {}",
        snippet(&body.to_string())
    ))
}

/// The innermost cause's message (e.g. "Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let inner = cur.to_string();
    let outer = e.to_string();
    if inner == outer {
        outer
    } else {
        inner
    }
}

/// The first 300 characters of a text, on one line.
fn snippet(text: &str) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > 300 {
        let cut: String = one_line.chars().take(300).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// Percent-encodes one path segment (ids are safe, but names and user input may not be).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_with_details_is_rendered_per_field() {
        let e = api_error(
            400,
            Some(
                json!({"code": "validation_failed", "error": "validation failed",
                "details": [{"field": "schedule.expr", "message": "bad"},
                            {"field": "timezone", "message": "unknown"}]}),
            ),
            "",
        );
        assert_eq!(e.exit_code(), EXIT_API);
        assert_eq!(
            e.to_string(),
            "validation_failed: validation failed\n  schedule.expr: bad\n  timezone: unknown"
        );
    }

    #[test]
    fn non_json_error_keeps_the_status_and_text() {
        let e = api_error(502, None, "<html>bad gateway</html>");
        assert_eq!(e.to_string(), "HTTP 502: <html>bad gateway</html>");
    }

    #[test]
    fn server_must_be_http() {
        assert!(matches!(
            Client::new("localhost:8080", None),
            Err(CliError::Usage(_))
        ));
        assert!(Client::new("http://localhost:8080/", Some("  ")).is_ok());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("sch_01ab"), "sch_01ab");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
