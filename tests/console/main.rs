//! The operators' console (`/ui/`) against the real server on a random port and a fresh
//! database: in a real headless Chromium driven over WebDriver (`browser`), and over
//! plain HTTP for what a browser would not send (`http`: forged and cross-site forms,
//! the headers of every page, the console without auth).

mod browser;
mod driver;
#[path = "../api/helpers.rs"]
mod helpers;
mod http;

use reqwest::Method;
use serde_json::Value;

use helpers::TestApp;

/// One token per role.
pub const TOKENS: &str = "viewer-token-1:viewer,operator-token-1:operator,admin-token-1:admin";
pub const VIEWER: &str = "viewer-token-1";
pub const OPERATOR: &str = "operator-token-1";
pub const ADMIN: &str = "admin-token-1";

/// An API call with a bearer token; returns the status and the JSON body.
pub async fn api(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.expect("API request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A client that shows redirects instead of following them, and keeps no cookies.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}

/// The value of the first `name="csrf"` hidden field in a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let rest = &html[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The `name=value` of a `Set-Cookie` header for `name`.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}
