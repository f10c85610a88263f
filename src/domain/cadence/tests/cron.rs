//! Cron windows, bounds, the brute-force reference walk and the accepted/rejected dialect.
//! Pure: no I/O; expectations are fixed instants, never today's date.

use super::*;
use chrono::NaiveDateTime;
use chrono_tz::America::New_York;
use chrono_tz::Australia::Lord_Howe;
use chrono_tz::Europe::Berlin;
use chrono_tz::UTC;

#[test]
fn cron_occurrences_between() {
    let b = Bounds::default();
    let every_minute = cron("* * * * *");
    let (items, total) = every_minute.occurrences_between(
        UTC,
        &b,
        t("2027-01-01T00:00:00Z"),
        t("2027-01-04T00:00:00Z"),
        3,
    );
    // 3 days x 1440 minutes, window (after, until] includes the end minute.
    assert_eq!(total, 4320);
    assert_eq!(
        fmt(&items),
        [
            "2027-01-01T00:01:00Z",
            "2027-01-01T00:02:00Z",
            "2027-01-01T00:03:00Z"
        ]
    );
    let hourly = cron("0 * * * *");
    let (items, total) = hourly.occurrences_between(
        UTC,
        &b,
        t("2027-01-01T00:00:00Z"),
        t("2027-01-01T05:00:00Z"),
        10,
    );
    assert_eq!(total, 5); // 01..05, both ends as the window says
    assert_eq!(items.len(), 5);
    // New York fall back: 00:30, 01:00, 01:30 (EDT), 02:00, 02:30, 03:00 (EST).
    let (items, total) = cron("*/30 * * * *").occurrences_between(
        New_York,
        &b,
        t("2027-11-07T04:00:00Z"),
        t("2027-11-07T08:00:00Z"),
        100,
    );
    assert_eq!(total, 6);
    assert_eq!(
        fmt(&items),
        [
            "2027-11-07T04:30:00Z",
            "2027-11-07T05:00:00Z",
            "2027-11-07T05:30:00Z",
            "2027-11-07T07:00:00Z",
            "2027-11-07T07:30:00Z",
            "2027-11-07T08:00:00Z"
        ]
    );
    // Empty and reversed windows.
    let at = t("2027-01-01T00:00:00Z");
    assert_eq!(hourly.occurrences_between(UTC, &b, at, at, 10), (vec![], 0));
    assert_eq!(
        hourly.occurrences_between(UTC, &b, at, t("2026-01-01T00:00:00Z"), 10),
        (vec![], 0)
    );
    assert_eq!(
        hourly.occurrences_between(UTC, &b, at, t("2027-01-01T00:59:59Z"), 10),
        (vec![], 0)
    );
    // limit 0 still counts.
    assert_eq!(
        hourly
            .occurrences_between(UTC, &b, at, t("2027-01-01T03:00:00Z"), 0)
            .1,
        3
    );
}

#[test]
fn cron_newest_between() {
    let b = Bounds::default();
    let hourly = cron("0 * * * *");
    assert_eq!(
        hourly.newest_between(
            UTC,
            &b,
            t("2027-01-01T00:00:00Z"),
            t("2027-01-01T05:30:00Z")
        ),
        Some(t("2027-01-01T05:00:00Z"))
    );
    // until exactly on an occurrence: included.
    assert_eq!(
        hourly.newest_between(
            UTC,
            &b,
            t("2027-01-01T00:00:00Z"),
            t("2027-01-01T05:00:00Z")
        ),
        Some(t("2027-01-01T05:00:00Z"))
    );
    // nothing in (00:00, 00:59:59].
    assert_eq!(
        hourly.newest_between(
            UTC,
            &b,
            t("2027-01-01T00:00:00Z"),
            t("2027-01-01T00:59:59Z")
        ),
        None
    );
    // A year of every-minute downtime: newest is the last minute, found without iterating.
    assert_eq!(
        cron("* * * * *").newest_between(
            UTC,
            &b,
            t("2026-01-01T00:00:00Z"),
            t("2027-01-01T00:00:30Z")
        ),
        Some(t("2027-01-01T00:00:00Z"))
    );
    // until in the second pass of New York's fold: 01:30 already happened at 05:30Z.
    let c = cron("30 1 * * *");
    assert_eq!(
        c.newest_between(
            New_York,
            &b,
            t("2027-11-06T00:00:00Z"),
            t("2027-11-07T06:45:00Z")
        ),
        Some(t("2027-11-07T05:30:00Z"))
    );
    // until before the first pass: the previous day's 01:30 EDT.
    assert_eq!(
        c.newest_between(
            New_York,
            &b,
            t("2027-11-06T00:00:00Z"),
            t("2027-11-07T05:29:00Z")
        ),
        Some(t("2027-11-06T05:30:00Z"))
    );
    // ... which is excluded when `after` is at it.
    assert_eq!(
        c.newest_between(
            New_York,
            &b,
            t("2027-11-06T05:30:00Z"),
            t("2027-11-07T05:29:00Z")
        ),
        None
    );
}

#[test]
fn cron_bounds() {
    let c = cron("0 * * * *");
    let bounds = Bounds {
        start_at: Some(t("2027-01-01T05:00:00Z")),
        end_at: Some(t("2027-01-01T07:00:00Z")),
    };
    // start_at and end_at are both inclusive.
    assert_eq!(
        fmt(&c.upcoming(UTC, &bounds, t("2027-01-01T00:00:00Z"), 10)),
        [
            "2027-01-01T05:00:00Z",
            "2027-01-01T06:00:00Z",
            "2027-01-01T07:00:00Z"
        ]
    );
    // past end_at: nothing.
    assert_eq!(c.next_after(UTC, &bounds, t("2027-01-01T07:00:00Z")), None);
    // start_at between occurrences.
    let bounds = Bounds {
        start_at: Some(t("2027-01-01T05:00:01Z")),
        end_at: None,
    };
    assert_eq!(
        c.next_after(UTC, &bounds, t("2027-01-01T00:00:00Z")),
        Some(t("2027-01-01T06:00:00Z"))
    );
    let bounds = Bounds {
        start_at: Some(t("2027-01-01T05:00:00Z")),
        end_at: Some(t("2027-01-01T07:00:00Z")),
    };
    assert_eq!(
        c.occurrences_between(
            UTC,
            &bounds,
            t("2027-01-01T00:00:00Z"),
            t("2027-01-02T00:00:00Z"),
            10
        )
        .1,
        3
    );
    assert_eq!(
        c.newest_between(
            UTC,
            &bounds,
            t("2027-01-01T00:00:00Z"),
            t("2027-01-02T00:00:00Z")
        ),
        Some(t("2027-01-01T07:00:00Z"))
    );
    // start after end: never.
    let bounds = Bounds {
        start_at: Some(t("2027-01-02T00:00:00Z")),
        end_at: Some(t("2027-01-01T00:00:00Z")),
    };
    assert_eq!(c.next_after(UTC, &bounds, t("2026-01-01T00:00:00Z")), None);
}

/// Independent reference: walk every UTC minute, read the wall clock in the zone, test the
/// fields by hand, and keep a match only if the same wall time did not already occur in the
/// previous 3 hours (fold → first instant). Gaps never show up as wall times at all.
#[test]
fn cron_matches_brute_force_reference() {
    use chrono::{Datelike, Timelike, Weekday};
    type Matcher = fn(&NaiveDateTime) -> bool;
    let exprs: &[(&str, Matcher)] = &[
        ("*/15 9-17 * * MON-FRI", |d| {
            d.minute() % 15 == 0
                && (9..=17).contains(&d.hour())
                && !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
        }),
        ("0 0 13 * FRI", |d| {
            d.minute() == 0 && d.hour() == 0 && (d.day() == 13 || d.weekday() == Weekday::Fri)
        }),
        ("30 2 * * *", |d| d.minute() == 30 && d.hour() == 2),
        ("5/20 1-3 * * 0,6", |d| {
            d.minute() % 20 == 5
                && (1..=3).contains(&d.hour())
                && matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
        }),
        ("*/10 * 1,15 * 3", |d| {
            d.minute() % 10 == 0 && (d.day() == 1 || d.day() == 15 || d.weekday() == Weekday::Wed)
        }),
        ("45 1 * 3,4,10,11 *", |d| d.minute() == 45 && d.hour() == 1),
    ];
    let windows = [
        // US 03-14, EU 03-28 spring forward; Lord Howe 04-04 fall back.
        ("2027-03-10T00:00:00Z", "2027-04-06T00:00:00Z"),
        // Lord Howe 10-03 spring forward; EU 10-31, US 11-07 fall back.
        ("2027-10-01T00:00:00Z", "2027-11-09T00:00:00Z"),
    ];
    for tz in [New_York, Berlin, Lord_Howe] {
        for (from, to) in windows {
            let (from, to) = (t(from), t(to));
            let mut expected: Vec<Vec<DateTime<Utc>>> = vec![Vec::new(); exprs.len()];
            // Wall clock of every minute from 3 hours before the window to its end.
            let start = from - Duration::hours(3);
            let minutes = (to - start).num_minutes();
            let walls: Vec<NaiveDateTime> = (0..=minutes)
                .map(|k| {
                    (start + Duration::minutes(k))
                        .with_timezone(&tz)
                        .naive_local()
                })
                .collect();
            for k in 181..walls.len() {
                let (m, local) = (start + Duration::minutes(k as i64), walls[k]);
                let seen_before = || walls[k - 180..k].contains(&local);
                let mut first = None;
                for (i, (_, matches)) in exprs.iter().enumerate() {
                    if matches(&local) && !*first.get_or_insert_with(seen_before) {
                        expected[i].push(m);
                    }
                }
            }
            for ((expr, _), want) in exprs.iter().zip(&expected) {
                let c = cron(expr);
                let b = Bounds::default();
                let (got, total) = c.occurrences_between(tz, &b, from, to, usize::MAX);
                assert_eq!(total, want.len(), "{expr} in {tz} from {from}");
                assert_eq!(fmt(&got), fmt(want), "{expr} in {tz} from {from}");
                assert_eq!(c.upcoming(tz, &b, from, 5), want[..5.min(want.len())]);
                assert_eq!(c.newest_between(tz, &b, from, to), want.last().copied());
                // newest_between at (a sample of) occurrences and just before them agrees.
                for (i, w) in want.iter().enumerate().step_by(7) {
                    assert_eq!(c.newest_between(tz, &b, from, *w), Some(*w), "{expr} {tz}");
                    let prev = if i == 0 { None } else { Some(want[i - 1]) };
                    let just_before = *w - Duration::seconds(1);
                    assert_eq!(
                        c.newest_between(tz, &b, from, just_before),
                        prev,
                        "{expr} {tz} {w}"
                    );
                    assert_eq!(c.next_after(tz, &b, just_before), Some(*w), "{expr} {tz}");
                }
            }
        }
    }
}

#[test]
fn rejected_expressions() {
    // (expression, substrings the error must contain)
    let cases: &[(&str, &[&str])] = &[
        ("", &["empty"]),
        ("   ", &["empty"]),
        (
            "0 0 * * * *",
            &["expected 5 fields (minute hour day-of-month month day-of-week), got 6"],
        ),
        ("0 0 * * * 2027", &["got 6"]),
        ("0 0 * *", &["got 4"]),
        ("61 * * * *", &["minute value 61 is out of range 0-59"]),
        (
            "99999999999 * * * *",
            &["minute value 99999999999 is out of range"],
        ),
        ("* 24 * * *", &["hour value 24 is out of range 0-23"]),
        ("* * 0 * *", &["day-of-month value 0 is out of range 1-31"]),
        ("* * 32 * *", &["day-of-month value 32"]),
        ("* * * 13 *", &["month value 13 is out of range 1-12"]),
        ("* * * 0 *", &["month value 0"]),
        ("* * * * 8", &["day-of-week value 8 is out of range 0-7"]),
        ("*/0 * * * *", &["step must be at least 1", "minute"]),
        (
            "0 0 1-10/0 * *",
            &["step must be at least 1", "day-of-month"],
        ),
        ("*/x * * * *", &["invalid step", "minute"]),
        ("*/ * * * *", &["invalid step"]),
        ("*/99999999999 * * * *", &["too large"]),
        ("0 0 L * *", &["'L'"]),
        ("0 0 * * 5L", &["'L'", "day-of-week"]),
        ("0 0 15W * *", &["'W'"]),
        ("0 0 LW * *", &["'W'"]),
        ("0 0 * * 5#3", &["'#'"]),
        ("0 0 * * MON#1", &["'#'"]),
        ("@reboot", &["@reboot is not supported"]),
        ("@every 5m", &["@every is not supported"]),
        ("@EVERY 1h", &["@every is not supported"]),
        ("@fortnightly", &["unknown macro"]),
        ("@daily 0", &["must stand alone"]),
        (
            "0 0 30 2 *",
            &["can never fire", "day 30 does not exist in February"],
        ),
        ("0 0 31 4 *", &["can never fire", "April"]),
        (
            "0 0 31 4,6,9,11 *",
            &["can never fire", "April, June, September or November"],
        ),
        (
            "0 0 30,31 FEB *",
            &["can never fire", "days 30, 31 do not exist in February"],
        ),
        ("30-10 * * * *", &["minute range 30-10 is reversed"]),
        (
            "0 0 * * FRI-MON",
            &["day-of-week range FRI-MON is reversed"],
        ),
        ("? * * * *", &["'?'", "minute"]),
        ("0 0 * FOO *", &["unknown month value 'FOO'"]),
        ("0 0 * * FUN", &["unknown day-of-week value 'FUN'"]),
        ("0 0 * * MONDAY", &["unknown day-of-week value"]),
        ("0 MON * * *", &["unknown hour value 'MON'"]),
        ("a * * * *", &["unknown minute value 'a'"]),
        ("1,,2 * * * *", &["empty list item"]),
        ("1, * * * *", &["empty list item"]),
        ("-5 * * * *", &["empty value"]),
        ("1-2-3 * * * *", &["unknown minute value '2-3'"]),
        ("1/2/3 * * * *", &["invalid step"]),
    ];
    for (expr, needles) in cases {
        match CronExpr::parse(expr) {
            Ok(_) => panic!("{expr:?} should be rejected"),
            Err(msg) => {
                for needle in *needles {
                    assert!(msg.contains(needle), "{expr:?}: {msg:?} lacks {needle:?}");
                }
                assert!(!msg.contains("internal"), "{expr:?}: {msg}");
            }
        }
    }
}

#[test]
fn accepted_expressions_and_accessors() {
    for expr in [
        "0 0 29 2 *",
        "0 0 31 2 MON",
        "0 0 * * MON-SUN",
        "0 0 * * 0-7",
        "*/1 * * * *",
        "0 0 ? * ?",
        "59 23 31 DEC SAT",
        "0 0 1-31/2 JAN-DEC/3 *",
        "0 0 * * 7/1",
    ] {
        assert!(
            CronExpr::parse(expr).is_ok(),
            "{expr}: {:?}",
            CronExpr::parse(expr)
        );
    }
    let c = CronExpr::parse("  0 0 * * MON-SUN ").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.as_str(), "0 0 * * MON-SUN");
    assert_eq!(Ok(c.clone()), CronExpr::parse("0 0 * * MON-SUN"));
    assert_ne!(Ok(c), CronExpr::parse("0 0 * * *"));
    assert_eq!(cron("@daily").kind(), "cron");
    assert_eq!(interval(5, "2027-01-01T00:00:00Z").kind(), "interval");
    assert_eq!(
        Cadence::Once {
            at: t("2027-01-01T00:00:00Z")
        }
        .kind(),
        "once"
    );
    // MON-SUN is every day; 0-7 too.
    assert_eq!(
        fmt(&cron("0 0 * * MON-SUN").upcoming(
            UTC,
            &Bounds::default(),
            t("2027-01-01T00:00:00Z"),
            3
        )),
        [
            "2027-01-02T00:00:00Z",
            "2027-01-03T00:00:00Z",
            "2027-01-04T00:00:00Z"
        ]
    );
    // Odd days with every-third month starting January.
    assert_eq!(
        fmt(&cron("0 0 1-31/2 JAN-DEC/3 *").upcoming(
            UTC,
            &Bounds::default(),
            t("2027-01-30T00:00:00Z"),
            2
        )),
        ["2027-01-31T00:00:00Z", "2027-04-01T00:00:00Z"]
    );
}
