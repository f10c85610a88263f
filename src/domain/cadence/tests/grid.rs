//! Interval and once cadences on their grid, bounds, huge windows and extreme inputs.
//! Pure: no I/O; expectations are fixed instants, never today's date.

use super::*;
use chrono_tz::America::New_York;
use chrono_tz::Australia::Lord_Howe;
use chrono_tz::UTC;

#[test]
fn interval_cases() {
    let b = Bounds::default();
    // (every, anchor, after, expected upcoming, why)
    let cases: &[(i64, &str, &str, &[&str], &str)] = &[
        (
            3600,
            "2027-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
            &["2027-01-01T01:00:00Z", "2027-01-01T02:00:00Z"],
            "anchor itself is not after `after`",
        ),
        (
            3600,
            "2027-01-01T00:00:00Z",
            "2027-01-01T05:30:00Z",
            &["2027-01-01T06:00:00Z"],
            "anchor in the past: grid kept",
        ),
        (
            3600,
            "2027-01-01T00:00:00Z",
            "2027-01-01T06:00:00Z",
            &["2027-01-01T07:00:00Z"],
            "exactly on a grid point",
        ),
        (
            86400,
            "2027-06-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
            &["2027-06-01T00:00:00Z", "2027-06-02T00:00:00Z"],
            "future anchor fires first at the anchor",
        ),
        (
            10,
            "2027-01-01T00:00:00.250Z",
            "2027-01-01T00:00:10.250Z",
            &["2027-01-01T00:00:20.250Z"],
            "sub-second anchor",
        ),
        (
            10,
            "2027-01-01T00:00:00.250Z",
            "2027-01-01T00:00:00.100Z",
            &["2027-01-01T00:00:00.250Z"],
            "just before a sub-second anchor",
        ),
        (
            10,
            "2027-01-01T00:00:00.250Z",
            "2027-01-01T00:00:10.249Z",
            &["2027-01-01T00:00:10.250Z"],
            "1ms before a sub-second point",
        ),
        (
            7,
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            &["1970-01-01T00:00:06Z"],
            "negative timestamps: euclidean division",
        ),
    ];
    for (every, anchor, after, expected, why) in cases {
        let c = interval(*every, anchor);
        let got = c.upcoming(UTC, &b, t(after), expected.len());
        let want: Vec<String> = expected.iter().map(|s| fmt(&[t(s)])[0].clone()).collect();
        assert_eq!(fmt(&got), want, "{why}");
        // time zone is ignored
        assert_eq!(
            c.upcoming(Lord_Howe, &b, t(after), expected.len()),
            got,
            "{why}"
        );
    }
    // Non-positive periods never fire and never panic.
    for every in [0, -5] {
        let c = interval(every, "2027-01-01T00:00:00Z");
        assert_eq!(c.next_after(UTC, &b, t("2026-01-01T00:00:00Z")), None);
        assert_eq!(
            c.occurrences_between(
                UTC,
                &b,
                t("2026-01-01T00:00:00Z"),
                t("2028-01-01T00:00:00Z"),
                5
            ),
            (vec![], 0)
        );
        assert_eq!(
            c.newest_between(
                UTC,
                &b,
                t("2026-01-01T00:00:00Z"),
                t("2028-01-01T00:00:00Z")
            ),
            None
        );
    }
}

#[test]
fn interval_bounds() {
    let c = interval(3600, "2027-01-01T00:00:00Z");
    let after = t("2027-01-01T00:00:00Z");
    let start = |s: &str| Bounds {
        start_at: Some(t(s)),
        end_at: None,
    };
    assert_eq!(
        c.next_after(UTC, &start("2027-01-01T02:30:00Z"), after),
        Some(t("2027-01-01T03:00:00Z"))
    );
    // start_at exactly on a grid point is inclusive.
    assert_eq!(
        c.next_after(UTC, &start("2027-01-01T03:00:00Z"), after),
        Some(t("2027-01-01T03:00:00Z"))
    );
    let bounds = Bounds {
        start_at: Some(t("2027-01-01T03:00:00Z")),
        end_at: Some(t("2027-01-01T04:00:00Z")),
    };
    assert_eq!(
        fmt(&c.upcoming(UTC, &bounds, after, 5)),
        ["2027-01-01T03:00:00Z", "2027-01-01T04:00:00Z"]
    );
    // Past end_at → None.
    assert_eq!(c.next_after(UTC, &bounds, t("2027-01-01T04:00:00Z")), None);
    assert_eq!(c.next_after(UTC, &bounds, t("2030-01-01T00:00:00Z")), None);
}

#[test]
fn interval_millions_of_points() {
    let b = Bounds::default();
    let c = interval(1, "2000-01-01T00:00:00Z");
    let after = t("2027-01-01T00:00:00Z");
    let until = t("2027-03-01T00:00:00Z");
    // 59 days (Jan 31 + Feb 28) x 86400 seconds = 5_097_600 points.
    let (items, total) = c.occurrences_between(UTC, &b, after, until, 2);
    assert_eq!(total, 5_097_600);
    assert_eq!(
        fmt(&items),
        ["2027-01-01T00:00:01Z", "2027-01-01T00:00:02Z"]
    );
    assert_eq!(c.newest_between(UTC, &b, after, until), Some(until));
    // Bounds cut both ends: [01-01 00:00:10, 01-01 00:00:19] = 10 points.
    let bounds = Bounds {
        start_at: Some(t("2027-01-01T00:00:10Z")),
        end_at: Some(t("2027-01-01T00:00:19.5Z")),
    };
    let (items, total) = c.occurrences_between(UTC, &bounds, after, until, 100);
    assert_eq!(total, 10);
    assert_eq!(items.first(), Some(&t("2027-01-01T00:00:10Z")));
    assert_eq!(items.last(), Some(&t("2027-01-01T00:00:19Z")));
    assert_eq!(
        c.newest_between(UTC, &bounds, after, until),
        Some(t("2027-01-01T00:00:19Z"))
    );
    // A window entirely before the anchor holds nothing.
    let late = interval(60, "2030-01-01T00:00:00Z");
    assert_eq!(
        late.occurrences_between(UTC, &b, after, until, 5),
        (vec![], 0)
    );
    assert_eq!(late.newest_between(UTC, &b, after, until), None);
    // Window (anchor - 1s, anchor] holds exactly the anchor.
    assert_eq!(
        late.occurrences_between(
            UTC,
            &b,
            t("2029-12-31T23:59:59Z"),
            t("2030-01-01T00:00:00Z"),
            5
        ),
        (vec![t("2030-01-01T00:00:00Z")], 1)
    );
}

#[test]
fn once_cases() {
    let at = t("2027-05-05T12:00:00Z");
    let c = Cadence::Once { at };
    let b = Bounds::default();
    assert_eq!(
        c.next_after(New_York, &b, t("2027-01-01T00:00:00Z")),
        Some(at)
    );
    assert_eq!(c.next_after(UTC, &b, at), None, "not strictly after");
    assert_eq!(c.next_after(UTC, &b, t("2027-06-01T00:00:00Z")), None);
    assert_eq!(c.upcoming(UTC, &b, t("2027-01-01T00:00:00Z"), 5), vec![at]);
    let end_at = |e: &str| Bounds {
        start_at: None,
        end_at: Some(t(e)),
    };
    assert_eq!(
        c.next_after(
            UTC,
            &end_at("2027-05-05T12:00:00Z"),
            t("2027-01-01T00:00:00Z")
        ),
        Some(at)
    );
    assert_eq!(
        c.next_after(
            UTC,
            &end_at("2027-05-05T11:59:59Z"),
            t("2027-01-01T00:00:00Z")
        ),
        None
    );
    let start_at = |s: &str| Bounds {
        start_at: Some(t(s)),
        end_at: None,
    };
    assert_eq!(
        c.next_after(
            UTC,
            &start_at("2027-05-05T12:00:00Z"),
            t("2027-01-01T00:00:00Z")
        ),
        Some(at)
    );
    assert_eq!(
        c.next_after(
            UTC,
            &start_at("2027-05-05T12:00:01Z"),
            t("2027-01-01T00:00:00Z")
        ),
        None
    );
    assert_eq!(
        c.occurrences_between(UTC, &b, t("2027-01-01T00:00:00Z"), at, 5),
        (vec![at], 1)
    );
    assert_eq!(
        c.occurrences_between(UTC, &b, at, t("2028-01-01T00:00:00Z"), 5),
        (vec![], 0)
    );
    assert_eq!(
        c.newest_between(UTC, &b, t("2027-01-01T00:00:00Z"), at),
        Some(at)
    );
    assert_eq!(
        c.newest_between(
            UTC,
            &b,
            t("2027-01-01T00:00:00Z"),
            t("2027-05-05T11:00:00Z")
        ),
        None
    );
}

#[test]
fn extremes_do_not_panic() {
    let b = Bounds::default();
    let cadences = [
        cron("* * * * *"),
        cron("0 0 29 2 *"),
        cron("0 0 13 * FRI"),
        interval(1, "2027-01-01T00:00:00Z"),
        interval(i64::MAX, "2027-01-01T00:00:00Z"),
        Cadence::Interval {
            every_seconds: 60,
            anchor_at: DateTime::<Utc>::MAX_UTC,
        },
        Cadence::Interval {
            every_seconds: 60,
            anchor_at: DateTime::<Utc>::MIN_UTC,
        },
        Cadence::Once {
            at: DateTime::<Utc>::MAX_UTC,
        },
    ];
    let points = [
        DateTime::<Utc>::MIN_UTC,
        t("1900-01-01T00:00:00Z"),
        t("2100-12-31T23:59:00Z"),
        t("9999-12-31T23:59:59Z"),
        DateTime::<Utc>::MAX_UTC,
    ];
    let bounds = [
        b,
        Bounds {
            start_at: Some(DateTime::<Utc>::MIN_UTC),
            end_at: Some(DateTime::<Utc>::MAX_UTC),
        },
    ];
    for c in &cadences {
        for tz in [
            UTC,
            Lord_Howe,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::Etc::GMTPlus12,
        ] {
            for bounds in &bounds {
                for &p in &points {
                    let _ = c.next_after(tz, bounds, p);
                    let _ = c.upcoming(tz, bounds, p, 3);
                    let _ = c.newest_between(tz, bounds, p, DateTime::<Utc>::MAX_UTC);
                    let _ = c.newest_between(tz, bounds, DateTime::<Utc>::MIN_UTC, p);
                    let _ = c.occurrences_between(tz, bounds, p, p, 3);
                }
            }
        }
    }
    // Interval arithmetic near the end of time returns None rather than overflowing.
    let c = interval(60, "2027-01-01T00:00:00Z");
    assert_eq!(c.next_after(UTC, &b, DateTime::<Utc>::MAX_UTC), None);
    // Huge interval windows are counted arithmetically (~525k minutes a year x ~524k years).
    assert!(
        c.occurrences_between(
            UTC,
            &b,
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            1
        )
        .1 > 100_000_000_000
    );
    // Cron is computed on local years 1970..=2100 (the cron crate's horizon).
    let daily = cron("0 0 * * *");
    assert_eq!(
        daily.next_after(UTC, &b, t("2100-12-30T12:00:00Z")),
        Some(t("2100-12-31T00:00:00Z"))
    );
    assert_eq!(daily.next_after(UTC, &b, t("2100-12-31T00:00:00Z")), None);
    assert_eq!(
        daily.next_after(UTC, &b, t("1950-06-01T00:00:00Z")),
        Some(t("1970-01-01T00:00:00Z"))
    );
    assert_eq!(
        cron("0 0 29 2 *").next_after(UTC, &b, t("2097-01-01T00:00:00Z")),
        None,
        "2100 is not a leap year and 2104 is beyond the horizon"
    );
}
