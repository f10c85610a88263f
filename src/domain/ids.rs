//! Defines the typed, time-ordered identifiers (`sch_…`, `run_…`, `rcp_…`, `dlq_…`) and
//! occurrence keys. Pure: the caller supplies the ULID's time when it matters.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// A schedule id (`sch_…`), borrowed, where it sits next to other ids or keys in an
/// argument list, so they cannot be swapped unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScheduleId<'a>(pub &'a str);

/// A run id (`run_…`), borrowed, for the same purpose as [`ScheduleId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId<'a>(pub &'a str);

impl ScheduleId<'_> {
    pub fn as_str(&self) -> &str {
        self.0
    }
}

impl RunId<'_> {
    pub fn as_str(&self) -> &str {
        self.0
    }
}

/// A new id with `prefix` and a ULID body (time-ordered, lower-case).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

pub fn schedule_id() -> String {
    new_id("sch")
}
pub fn run_id() -> String {
    new_id("run")
}
pub fn receipt_id() -> String {
    new_id("rcp")
}
pub fn dead_letter_id() -> String {
    new_id("dlq")
}

/// Formats an instant the way keys and API bodies show it: UTC, `Z`, sub-seconds only when present.
pub fn format_instant(t: DateTime<Utc>) -> String {
    // Microseconds at most: the database's precision, so a key or view never shows digits
    // that a later read of the same instant would not have.
    t.trunc_subsecs(6)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `{schedule_id}:{nominal_time UTC RFC 3339}` for a cadence occurrence.
pub fn occurrence_key(schedule_id: &str, nominal: DateTime<Utc>) -> String {
    format!("{schedule_id}:{}", format_instant(nominal))
}

/// `manual:{run_id}` for a manual trigger.
pub fn manual_occurrence_key(run_id: &str) -> String {
    format!("manual:{run_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_use_utc_seconds() {
        let t = Utc.with_ymd_and_hms(2027, 4, 1, 9, 0, 0).single().unwrap();
        assert_eq!(occurrence_key("sch_x", t), "sch_x:2027-04-01T09:00:00Z");
        let t2 = t + chrono::Duration::milliseconds(250);
        assert_eq!(
            occurrence_key("sch_x", t2),
            "sch_x:2027-04-01T09:00:00.250Z"
        );
    }

    #[test]
    fn ids_are_prefixed_and_ordered() {
        let a = run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = run_id();
        assert!(a.starts_with("run_") && a.len() == 30);
        assert!(a < b);
    }
}
