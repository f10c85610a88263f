//! Provides keyset paging over `(created_at DESC, id DESC)`: opaque cursors and limits.
//!
//! A cursor is base64url of `"<created_at micros>:<id>"` of the last item of a page, so a
//! page never repeats or skips a row that existed when paging began.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// The sort key of the last item of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// `None` for anything that is not a cursor this server produced.
    pub fn decode(s: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (micros, id) = text.split_once(':')?;
        let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        // Rows are created by this server: anything outside the years PostgreSQL and
        // RFC 3339 share is no cursor of ours (and would be a query error, not a page).
        if !(1970..=9999).contains(&chrono::Datelike::year(&created_at)) {
            return None;
        }
        if id.is_empty()
            || id.len() > 64
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return None;
        }
        Some(Cursor {
            created_at,
            id: id.to_string(),
        })
    }
}

/// `limit` as API.md says: missing, non-numeric or ≤ 0 → 50; above 500 → 500.
pub fn clamp_limit(raw: Option<&str>) -> i64 {
    clamp_param(raw, DEFAULT_LIMIT, MAX_LIMIT)
}

/// A bounded count parameter (`limit`, `upcoming`'s `count`): missing, non-numeric or ≤ 0
/// → `default`; above `max` → `max`.
pub fn clamp_param(raw: Option<&str>, default: i64, max: i64) -> i64 {
    let raw = raw.map(str::trim).unwrap_or("");
    match raw.parse::<i64>() {
        Ok(n) if n > max => max,
        Ok(n) if n > 0 => n,
        // Too big for 64 bits, but a number all the same: above the maximum.
        Err(_)
            if !raw.is_empty()
                && raw
                    .trim_start_matches('+')
                    .bytes()
                    .all(|b| b.is_ascii_digit()) =>
        {
            max
        }
        _ => default,
    }
}

/// One page of rows plus the cursor for the next one.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Trims a `limit + 1` fetch to a page, deriving the next cursor from the last kept row.
pub fn page_from<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| key(r).encode())
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
            id: "run_01abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        // ... and "-8000000000000000000:sch_x", a well-formed key out of PostgreSQL's range.
        for bad in [
            "",
            "!!!",
            "bm90LWEtY3Vyc29y",
            "MTIzOg",
            "eHg6cnVu",
            "LTgwMDAwMDAwMDAwMDAwMDAwMDA6c2NoX3g",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_follow_the_contract() {
        assert_eq!(clamp_limit(None), 50);
        assert_eq!(clamp_limit(Some("abc")), 50);
        assert_eq!(clamp_limit(Some("0")), 50);
        assert_eq!(clamp_limit(Some("-3")), 50);
        assert_eq!(clamp_limit(Some("7")), 7);
        assert_eq!(clamp_limit(Some("501")), 500);
        assert_eq!(clamp_limit(Some("99999999999999999999")), 500);
        assert_eq!(clamp_limit(Some("-99999999999999999999")), 50);
    }
}
