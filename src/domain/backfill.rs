//! Defines a backfill request and the fire times it covers: every nominal time of the
//! cadence in `[start, end)`, computed by the cadence code the timers use (DST included).
//!
//! Pure: `now` is passed in. Bounds, `max_occurrences` and misfire play no part here.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::cadence::{Bounds, Cadence};
use super::dispatch::{self, DispatchPlan};
use super::schedule::OverlapPolicy;
use super::validation::{parse_instant, FieldError};

/// Most fire times one backfill may cover.
pub const MAX_BACKFILL_OCCURRENCES: usize = 1000;
/// Longest accepted reason, as for a manual trigger.
const MAX_REASON_CHARS: usize = 1000;

/// The body of `POST /v1/schedules/{id}/backfill` as sent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillBody {
    /// RFC 3339 with offset; inclusive.
    pub start: Option<String>,
    /// RFC 3339 with offset; exclusive, not after now.
    pub end: Option<String>,
    /// Why: required, non-blank; stored as each new run's `trigger_reason`.
    pub reason: Option<String>,
}

/// A checked backfill request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
}

/// Checks a body against `now`, reporting every bad field at once.
pub fn parse(body: &BackfillBody, now: DateTime<Utc>) -> Result<Backfill, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut instant = |field: &str, value: &Option<String>| match value.as_deref() {
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(s) => parse_instant(s)
            .map_err(|m| errors.push(FieldError::new(field, m)))
            .ok(),
    };
    let start = instant("start", &body.start);
    let end = instant("end", &body.end);
    if let Some(e) = end {
        if e > now {
            errors.push(FieldError::new("end", "must not be in the future"));
        }
        if start.is_some_and(|s| s >= e) {
            errors.push(FieldError::new("start", "must be before end"));
        }
    }
    let reason = body.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        errors.push(FieldError::new(
            "reason",
            "is required and must not be blank",
        ));
    } else if reason.chars().count() > MAX_REASON_CHARS {
        errors.push(FieldError::new(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    match (start, end) {
        (Some(start), Some(end)) if errors.is_empty() => Ok(Backfill {
            start,
            end,
            reason: reason.to_string(),
        }),
        _ => Err(errors),
    }
}

/// The nominal fire times of `cadence` in `[start, end)`, oldest first, ignoring the
/// schedule's own bounds; more than [`MAX_BACKFILL_OCCURRENCES`] is an error on `end`.
pub fn fire_times(
    cadence: &Cadence,
    tz: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, FieldError> {
    let unbounded = Bounds {
        start_at: None,
        end_at: None,
    };
    let after = start - Duration::microseconds(1);
    let times: Vec<DateTime<Utc>> = cadence
        .upcoming(tz, &unbounded, after, MAX_BACKFILL_OCCURRENCES + 1)
        .into_iter()
        .take_while(|t| *t < end)
        .collect();
    if times.len() > MAX_BACKFILL_OCCURRENCES {
        return Err(FieldError::new(
            "end",
            format!(
                "the window holds more than {MAX_BACKFILL_OCCURRENCES} fire times; backfill a shorter window"
            ),
        ));
    }
    Ok(times)
}

/// [`dispatch::plan`] with backfilled runs set apart. Backfilled runs are the oldest
/// occurrences, so they take free capacity first, oldest first (`waiting` is oldest first),
/// as `forbid` would; the overlap policy then applies to the other waiting runs only,
/// counting the backfilled ones just started as active, and never cancels a backfilled run.
/// A backfill is finite, so the scheduled runs wait at most until it drains.
pub fn plan_dispatch(
    policy: OverlapPolicy,
    max_concurrency: usize,
    active: &[String],
    cancelling: &[String],
    waiting: &[String],
    is_backfill: impl Fn(&str) -> bool,
) -> DispatchPlan {
    let (backfilled, ordinary): (Vec<String>, Vec<String>) =
        waiting.iter().cloned().partition(|id| is_backfill(id));
    let capacity = max_concurrency.max(1).saturating_sub(active.len());
    let first: Vec<String> = backfilled.into_iter().take(capacity).collect();
    // `active` is copied only when backfilled runs join it: a schedule with thousands of
    // runs in flight must not copy them all on every dispatch.
    let mut out = if first.is_empty() {
        dispatch::plan(policy, max_concurrency, active, cancelling, &ordinary)
    } else {
        let busy: Vec<String> = active.iter().chain(&first).cloned().collect();
        dispatch::plan(policy, max_concurrency, &busy, cancelling, &ordinary)
    };
    out.cancel.retain(|id| !is_backfill(id));
    out.start.splice(0..0, first);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CronExpr;
    use chrono_tz::America::New_York;

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s).unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
    }

    fn body(start: &str, end: &str, reason: &str) -> BackfillBody {
        BackfillBody {
            start: Some(start.into()),
            end: Some(end.into()),
            reason: Some(reason.into()),
        }
    }

    fn fields(r: Result<Backfill, Vec<FieldError>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn backfilled_runs_are_never_skipped_or_cancelled() {
        let bf = |id: &str| id.starts_with("bf");
        // queue_latest would skip every waiting run but the newest: not backfilled ones.
        let p = plan_dispatch(
            OverlapPolicy::QueueLatest,
            1,
            &ids(&["a"]),
            &[],
            &ids(&["bf1", "bf2", "b", "c"]),
            bf,
        );
        assert_eq!(p.skip, ids(&["b"]));
        assert!(p.start.is_empty());
        // replace cancels an ordinary active run, never a backfilled one.
        let p = plan_dispatch(
            OverlapPolicy::Replace,
            1,
            &ids(&["bf0"]),
            &[],
            &ids(&["bf1", "c"]),
            bf,
        );
        assert!(
            p.cancel.is_empty() && p.skip.is_empty() && p.start.is_empty(),
            "{p:?}"
        );
        let p = plan_dispatch(
            OverlapPolicy::Replace,
            1,
            &ids(&["a"]),
            &[],
            &ids(&["bf1", "c"]),
            bf,
        );
        assert_eq!(p.cancel, ids(&["a"]));
        // Free capacity: backfilled runs first, oldest first; then the policy's own plan.
        let p = plan_dispatch(
            OverlapPolicy::Replace,
            3,
            &[],
            &[],
            &ids(&["bf1", "bf2", "bf3", "c"]),
            bf,
        );
        assert_eq!(p.start, ids(&["bf1", "bf2", "bf3"]));
        assert!(p.cancel.is_empty() && p.skip.is_empty(), "{p:?}");
        let p = plan_dispatch(
            OverlapPolicy::Replace,
            3,
            &[],
            &[],
            &ids(&["bf1", "b", "c"]),
            bf,
        );
        assert_eq!(p.start, ids(&["bf1", "c"]));
        assert_eq!(p.skip, ids(&["b"]));
        let p = plan_dispatch(
            OverlapPolicy::Forbid,
            2,
            &ids(&["a"]),
            &[],
            &ids(&["bf1", "b"]),
            bf,
        );
        assert_eq!(p.start, ids(&["bf1"]));
        let p = plan_dispatch(
            OverlapPolicy::QueueLatest,
            2,
            &[],
            &[],
            &ids(&["bf1", "bf2", "bf3"]),
            bf,
        );
        assert_eq!(p.start, ids(&["bf1", "bf2"]));
        assert!(p.skip.is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let now = t("2026-06-01T00:00:00Z");
        assert_eq!(
            fields(parse(&BackfillBody::default(), now)),
            ["start", "end", "reason"]
        );
        assert_eq!(
            fields(parse(&body("yesterday", "2026-05-01T00:00:00Z", "x"), now)),
            ["start"]
        );
        assert_eq!(
            fields(parse(
                &body("2026-05-02T00:00:00Z", "2026-05-01T00:00:00Z", "x"),
                now
            )),
            ["start"]
        );
        assert_eq!(
            fields(parse(
                &body("2026-05-01T00:00:00Z", "2026-07-01T00:00:00Z", "x"),
                now
            )),
            ["end"]
        );
        assert_eq!(
            fields(parse(
                &body("2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z", "  "),
                now
            )),
            ["reason"]
        );
        let ok = parse(
            &body("2026-05-01T00:00:00+02:00", "2026-05-02T00:00:00Z", " why "),
            now,
        );
        assert_eq!(
            ok.ok(),
            Some(Backfill {
                start: t("2026-04-30T22:00:00Z"),
                end: t("2026-05-02T00:00:00Z"),
                reason: "why".into()
            })
        );
    }

    #[test]
    fn cron_window_follows_dst_like_the_timers() {
        let cron = Cadence::Cron(CronExpr::parse("30 2 * * *").unwrap_or_else(|e| panic!("{e}")));
        // 2021-03-14: 02:30 does not exist in New York, so that day has no fire time.
        let got = fire_times(
            &cron,
            New_York,
            t("2021-03-12T00:00:00Z"),
            t("2021-03-17T00:00:00Z"),
        );
        let expected = [
            "2021-03-12T07:30:00Z",
            "2021-03-13T07:30:00Z",
            "2021-03-15T06:30:00Z",
            "2021-03-16T06:30:00Z",
        ];
        assert_eq!(
            got.ok(),
            Some(expected.iter().map(|s| t(s)).collect::<Vec<_>>())
        );
    }

    #[test]
    fn window_is_half_open_and_capped() {
        let every_minute = Cadence::Interval {
            every_seconds: 60,
            anchor_at: t("2026-01-01T00:00:00Z"),
        };
        let got = fire_times(
            &every_minute,
            New_York,
            t("2026-01-01T00:01:00Z"),
            t("2026-01-01T00:03:00Z"),
        );
        assert_eq!(
            got.ok(),
            Some(vec![t("2026-01-01T00:01:00Z"), t("2026-01-01T00:02:00Z")])
        );
        // Exactly 1,000 is fine; 1,001 names `end`.
        let start = t("2026-01-01T00:00:00Z");
        assert_eq!(
            fire_times(
                &every_minute,
                New_York,
                start,
                start + Duration::minutes(1000)
            )
            .map(|v| v.len())
            .ok(),
            Some(1000)
        );
        let too_many = fire_times(
            &every_minute,
            New_York,
            start,
            start + Duration::minutes(1001),
        );
        assert_eq!(too_many.err().map(|e| e.field), Some("end".to_string()));
        // Nothing before the interval's anchor.
        let got = fire_times(
            &every_minute,
            New_York,
            t("2025-12-31T23:58:00Z"),
            t("2026-01-01T00:01:00Z"),
        );
        assert_eq!(got.ok(), Some(vec![t("2026-01-01T00:00:00Z")]));
    }
}
