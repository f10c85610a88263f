//! Provides request input parsing shared by the handlers: JSON bodies (content type, size
//! limit, syntax and type errors) and strict query strings.
//!
//! One mechanism for every route, so every bad input gets the same precise envelope.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads and parses a JSON body: 415 for a non-JSON content type, 413 over 1 MiB,
/// 400 for malformed JSON or wrong types. A missing content type is taken as JSON. The
/// body, and each of its top-level `objects` fields that is present, must be a JSON
/// object (serde would fill a struct from an array by position).
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
    objects: &[&str],
) -> Result<T, ApiError> {
    let bytes = read_body(req, &mut payload).await?;
    require_object(&bytes)?;
    if bytes.contains(&b'[') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&bytes) {
            for field in objects {
                if map.get(*field).is_some_and(serde_json::Value::is_array) {
                    return Err(ApiError::BadRequest(format!(
                        "invalid JSON body: {field} must be a JSON object, not an array"
                    )));
                }
            }
        }
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// 400 unless the body is a JSON object: serde would otherwise fill a struct from an array
/// by position (`["name", true, …]`).
pub fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::BadRequest(
            "request body must be a JSON object".into(),
        )),
    }
}

/// Reads a body that may be empty (e.g. POST /trigger with nothing) under the same rules.
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
) -> Result<web::BytesMut, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        let is_json = essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type {essence:?} is not supported; send application/json"
            )));
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    reject_nul(&body)?;
    Ok(body)
}

/// 400 for a JSON string (or key) holding U+0000: PostgreSQL can store it in neither
/// `text` nor `jsonb`, so it must be refused here rather than fail as a 500 later.
fn reject_nul(body: &[u8]) -> Result<(), ApiError> {
    if !body.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(()); // malformed: the typed parse reports it
    };
    match nul_path(&value, String::new()) {
        Some(path) => Err(ApiError::BadRequest(format!(
            "{} contains a NUL character (\\u0000), which cannot be stored",
            if path.is_empty() {
                "the body".to_string()
            } else {
                format!("field {path:?}")
            }
        ))),
        None => Ok(()),
    }
}

/// The dotted path of the first string or key containing U+0000.
fn nul_path(v: &serde_json::Value, at: String) -> Option<String> {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_path(item, join(k))
            }
        }),
        _ => None,
    }
}

/// The query string's pairs, rejecting parameters the route does not know.
pub fn query(req: &HttpRequest, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?
        .into_inner();
    for (k, v) in &pairs {
        if v.contains('\0') {
            return Err(ApiError::BadRequest(format!(
                "query parameter {k:?} contains a NUL character"
            )));
        }
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter {k:?}; expected one of: {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(pairs)
}

/// The last value given for `name`.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::reject_nul;

    #[test]
    fn nul_characters_are_refused_with_their_path() {
        let err = |b: &str| reject_nul(b.as_bytes()).err().map(|e| e.to_string());
        assert_eq!(err(r#"{"name":"ok"}"#), None);
        assert_eq!(
            err(r#"{"name":"a\\u0000"}"#),
            None,
            "an escaped backslash is no NUL"
        );
        assert_eq!(
            err(r#"{"name":"n\u0000l"}"#).as_deref(),
            Some(r#"field "name" contains a NUL character (\u0000), which cannot be stored"#)
        );
        assert!(err(r#"{"target":{"args":["x","\u0000"]}}"#)
            .is_some_and(|m| m.contains(r#""target.args[1]""#)));
        assert!(err(r#"{"target":{"input":{"k\u0000":1}}}"#)
            .is_some_and(|m| m.contains("target.input.k")));
    }
}
