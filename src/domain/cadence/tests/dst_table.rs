//! The table of cron cases (UTC basics, dialect, DST gaps and folds in several zones), each checked
//! by `upcoming`, and forward iteration agreeing with the backwards search. Pure: no I/O.

use super::*;
use chrono_tz::America::New_York;
use chrono_tz::Asia::Kolkata;
use chrono_tz::Australia::Lord_Howe;
use chrono_tz::Europe::Berlin;
use chrono_tz::UTC;

/// (expression, zone, after, expected upcoming instants in UTC, why)
type CronCase = (
    &'static str,
    Tz,
    &'static str,
    &'static [&'static str],
    &'static str,
);

// 2027-01-01 is a Friday. US DST 2027: starts Sun 03-14 02:00 EST, ends Sun 11-07 02:00 EDT.
// EU DST 2027: starts Sun 03-28 01:00Z, ends Sun 10-31 01:00Z. Lord Howe: +10:30 standard,
// +11:00 DST; 2027 DST ends Sun 04-04 02:00 -> 01:30, starts Sun 10-03 02:00 -> 02:30.
const CRON_CASES: &[CronCase] = &[
    // --- UTC basics ---
    (
        "* * * * *",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-01T00:01:00Z", "2027-01-01T00:02:00Z"],
        "every minute, strictly after",
    ),
    (
        "* * * * *",
        UTC,
        "2027-01-01T00:00:30Z",
        &["2027-01-01T00:01:00Z"],
        "mid-minute start",
    ),
    (
        "* * * * *",
        UTC,
        "2027-01-01T00:00:59.500Z",
        &["2027-01-01T00:01:00Z"],
        "sub-second start just before the minute",
    ),
    (
        "0 * * * *",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-01T01:00:00Z", "2027-01-01T02:00:00Z"],
        "hourly, `after` itself excluded",
    ),
    (
        "15 10 * * *",
        UTC,
        "2027-01-01T10:15:00Z",
        &["2027-01-02T10:15:00Z"],
        "daily, today's already at `after`",
    ),
    (
        "0,30 9-10 * * *",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-01T09:00:00Z",
            "2027-01-01T09:30:00Z",
            "2027-01-01T10:00:00Z",
            "2027-01-01T10:30:00Z",
            "2027-01-02T09:00:00Z",
        ],
        "list x range",
    ),
    (
        "*/15 * * * *",
        UTC,
        "2027-01-01T00:07:00Z",
        &[
            "2027-01-01T00:15:00Z",
            "2027-01-01T00:30:00Z",
            "2027-01-01T00:45:00Z",
            "2027-01-01T01:00:00Z",
        ],
        "*/15",
    ),
    (
        "10-20/5 * * * *",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-01T00:10:00Z",
            "2027-01-01T00:15:00Z",
            "2027-01-01T00:20:00Z",
            "2027-01-01T01:10:00Z",
        ],
        "a-b/n",
    ),
    (
        "5/20 * * * *",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-01T00:05:00Z",
            "2027-01-01T00:25:00Z",
            "2027-01-01T00:45:00Z",
            "2027-01-01T01:05:00Z",
        ],
        "a/n = a-59/n",
    ),
    (
        "0 */7 * * *",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-01T07:00:00Z",
            "2027-01-01T14:00:00Z",
            "2027-01-01T21:00:00Z",
            "2027-01-02T00:00:00Z",
        ],
        "*/7 hours restarts at 0 each day",
    ),
    (
        "0 0 * JAN,jul *",
        UTC,
        "2027-01-31T12:00:00Z",
        &["2027-07-01T00:00:00Z", "2027-07-02T00:00:00Z"],
        "month names, case-insensitive",
    ),
    (
        "0 0 1 mar-May *",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-03-01T00:00:00Z",
            "2027-04-01T00:00:00Z",
            "2027-05-01T00:00:00Z",
            "2028-03-01T00:00:00Z",
        ],
        "month name range",
    ),
    (
        "0 12 * * MON-FRI",
        UTC,
        "2027-01-01T12:00:00Z",
        &["2027-01-04T12:00:00Z", "2027-01-05T12:00:00Z"],
        "weekdays: Fri done -> Mon, Tue",
    ),
    (
        "0 12 * * mon-fri",
        UTC,
        "2027-01-02T00:00:00Z",
        &["2027-01-04T12:00:00Z"],
        "lower-case day names; Sat -> Mon",
    ),
    (
        "0 0 * * 0",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-03T00:00:00Z", "2027-01-10T00:00:00Z"],
        "0 is Sunday",
    ),
    (
        "0 0 * * 7",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-03T00:00:00Z", "2027-01-10T00:00:00Z"],
        "7 is Sunday too",
    ),
    (
        "0 0 * * SUN",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-03T00:00:00Z"],
        "SUN",
    ),
    (
        "0 0 * * 1",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-04T00:00:00Z"],
        "1 is Monday",
    ),
    (
        "0 0 * * 6",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-02T00:00:00Z"],
        "6 is Saturday",
    ),
    (
        "0 0 * * 5-7",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-02T00:00:00Z",
            "2027-01-03T00:00:00Z",
            "2027-01-08T00:00:00Z",
        ],
        "Fri-Sun via 7",
    ),
    (
        "0 0 * * SAT-SUN",
        UTC,
        "2027-01-04T00:00:00Z",
        &[
            "2027-01-09T00:00:00Z",
            "2027-01-10T00:00:00Z",
            "2027-01-16T00:00:00Z",
        ],
        "range ending on SUN means ...-7",
    ),
    (
        "0 0 * * */2",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-02T00:00:00Z",
            "2027-01-03T00:00:00Z",
            "2027-01-05T00:00:00Z",
            "2027-01-07T00:00:00Z",
        ],
        "*/2 dow = Sun,Tue,Thu,Sat: Sat 2nd, Sun 3rd, Tue 5th, Thu 7th",
    ),
    (
        "0 0 13 * FRI",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-08T00:00:00Z",
            "2027-01-13T00:00:00Z",
            "2027-01-15T00:00:00Z",
            "2027-01-22T00:00:00Z",
            "2027-01-29T00:00:00Z",
            "2027-02-05T00:00:00Z",
        ],
        "OR rule: Fridays or the 13th (a Wednesday)",
    ),
    (
        "0 0 1,15 * 3",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-06T00:00:00Z",
            "2027-01-13T00:00:00Z",
            "2027-01-15T00:00:00Z",
            "2027-01-20T00:00:00Z",
            "2027-01-27T00:00:00Z",
            "2027-02-01T00:00:00Z",
            "2027-02-03T00:00:00Z",
        ],
        "OR rule: Wednesdays or 1st/15th",
    ),
    (
        "0 0 13 * *",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-13T00:00:00Z", "2027-02-13T00:00:00Z"],
        "dow * -> only day-of-month counts",
    ),
    (
        "0 0 13 * ?",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-13T00:00:00Z", "2027-02-13T00:00:00Z"],
        "? in day-of-week = *",
    ),
    (
        "0 0 ? * MON",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-04T00:00:00Z", "2027-01-11T00:00:00Z"],
        "? in day-of-month = *, only Mondays",
    ),
    (
        "0 0 31 2 MON",
        UTC,
        "2027-01-31T00:00:00Z",
        &["2027-02-01T00:00:00Z", "2027-02-08T00:00:00Z"],
        "OR rule keeps an impossible day-of-month valid",
    ),
    // --- macros ---
    (
        "@yearly",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"],
        "@yearly",
    ),
    (
        "@annually",
        UTC,
        "2027-06-01T00:00:00Z",
        &["2028-01-01T00:00:00Z"],
        "@annually",
    ),
    (
        "@monthly",
        UTC,
        "2027-01-15T00:00:00Z",
        &["2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"],
        "@monthly",
    ),
    (
        "@weekly",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-03T00:00:00Z", "2027-01-10T00:00:00Z"],
        "@weekly = Sunday midnight",
    ),
    (
        "@daily",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-02T00:00:00Z"],
        "@daily",
    ),
    (
        "@midnight",
        UTC,
        "2027-01-01T23:59:59Z",
        &["2027-01-02T00:00:00Z"],
        "@midnight",
    ),
    (
        "@hourly",
        UTC,
        "2027-01-01T00:30:00Z",
        &["2027-01-01T01:00:00Z", "2027-01-01T02:00:00Z"],
        "@hourly",
    ),
    (
        "  @DAILY  ",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-01-02T00:00:00Z"],
        "macros are case-insensitive, trimmed",
    ),
    // --- calendar edges ---
    (
        "0 0 29 2 *",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        "leap day only in leap years",
    ),
    (
        "0 0 31 * *",
        UTC,
        "2027-01-31T00:00:00Z",
        &[
            "2027-03-31T00:00:00Z",
            "2027-05-31T00:00:00Z",
            "2027-07-31T00:00:00Z",
            "2027-08-31T00:00:00Z",
            "2027-10-31T00:00:00Z",
        ],
        "31st skips 30-day months and Feb",
    ),
    (
        "0 0 30 * *",
        UTC,
        "2027-01-30T00:00:00Z",
        &["2027-03-30T00:00:00Z"],
        "30th skips February",
    ),
    (
        "59 23 31 12 *",
        UTC,
        "2027-01-01T00:00:00Z",
        &["2027-12-31T23:59:00Z"],
        "last minute of the year",
    ),
    (
        "0 0 1 1 *",
        UTC,
        "2027-12-31T23:59:00Z",
        &["2028-01-01T00:00:00Z"],
        "year rollover",
    ),
    (
        "0 0 * 2 *",
        UTC,
        "2028-02-28T00:00:00Z",
        &["2028-02-29T00:00:00Z", "2029-02-01T00:00:00Z"],
        "February of a leap year",
    ),
    // --- America/New_York ---
    (
        "0 9 * * 1-5",
        New_York,
        "2027-01-01T00:00:00Z",
        &["2027-01-01T14:00:00Z", "2027-01-04T14:00:00Z"],
        "09:00 EST = 14:00Z",
    ),
    (
        "0 9 * * *",
        New_York,
        "2027-07-01T00:00:00Z",
        &["2027-07-01T13:00:00Z"],
        "09:00 EDT = 13:00Z",
    ),
    (
        "30 2 * * *",
        New_York,
        "2027-03-13T08:00:00Z",
        &["2027-03-15T06:30:00Z", "2027-03-16T06:30:00Z"],
        "02:30 does not exist on 03-14: skipped",
    ),
    (
        "*/30 * * * *",
        New_York,
        "2027-03-14T06:00:00Z",
        &[
            "2027-03-14T06:30:00Z",
            "2027-03-14T07:00:00Z",
            "2027-03-14T07:30:00Z",
        ],
        "01:30 EST, then 03:00 EDT (gap skipped)",
    ),
    (
        "0 3 * * *",
        New_York,
        "2027-03-14T00:00:00Z",
        &["2027-03-14T07:00:00Z"],
        "03:00 EDT exists on the spring day",
    ),
    (
        "30 1 * * *",
        New_York,
        "2027-11-07T04:00:00Z",
        &["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"],
        "01:30 twice: only first (EDT); next day EST",
    ),
    (
        "30 1 * * *",
        New_York,
        "2027-11-07T06:00:00Z",
        &["2027-11-08T06:30:00Z"],
        "after in the second pass: no second 01:30",
    ),
    (
        "*/30 * * * *",
        New_York,
        "2027-11-07T04:15:00Z",
        &[
            "2027-11-07T04:30:00Z",
            "2027-11-07T05:00:00Z",
            "2027-11-07T05:30:00Z",
            "2027-11-07T07:00:00Z",
            "2027-11-07T07:30:00Z",
        ],
        "across the fold: second 01:00/01:30 skipped",
    ),
    (
        "*/30 * * * *",
        New_York,
        "2027-11-07T06:10:00Z",
        &["2027-11-07T07:00:00Z"],
        "inside the second pass -> 02:00 EST",
    ),
    (
        "0 2 * * *",
        New_York,
        "2027-11-07T00:00:00Z",
        &["2027-11-07T07:00:00Z"],
        "02:00 EST on fall-back day happens once",
    ),
    // --- Europe/Berlin ---
    (
        "30 2 * * *",
        Berlin,
        "2027-03-27T12:00:00Z",
        &["2027-03-29T00:30:00Z"],
        "02:30 does not exist on 03-28; 02:30 CEST = 00:30Z",
    ),
    (
        "0 * * * *",
        Berlin,
        "2027-03-28T00:30:00Z",
        &["2027-03-28T01:00:00Z", "2027-03-28T02:00:00Z"],
        "02:00 skipped; 03:00 CEST = 01:00Z",
    ),
    (
        "30 2 * * *",
        Berlin,
        "2027-10-30T12:00:00Z",
        &["2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"],
        "02:30 twice: first (CEST); next day CET",
    ),
    (
        "*/30 * * * *",
        Berlin,
        "2027-10-30T23:45:00Z",
        &[
            "2027-10-31T00:00:00Z",
            "2027-10-31T00:30:00Z",
            "2027-10-31T02:00:00Z",
            "2027-10-31T02:30:00Z",
        ],
        "fold 02:00-03:00 counted once",
    ),
    (
        "*/30 * * * *",
        Berlin,
        "2027-10-31T01:00:00Z",
        &["2027-10-31T02:00:00Z"],
        "after = 02:00 CET (second pass) -> 03:00 CET",
    ),
    // --- non-hour offsets ---
    (
        "0 9 * * *",
        Kolkata,
        "2027-01-01T00:00:00Z",
        &["2027-01-01T03:30:00Z", "2027-01-02T03:30:00Z"],
        "+05:30",
    ),
    (
        "15 2 * * *",
        Lord_Howe,
        "2027-10-02T00:00:00Z",
        &["2027-10-03T15:15:00Z"],
        "02:15 in the 30-minute gap on 10-03; next day at +11",
    ),
    (
        "45 2 * * *",
        Lord_Howe,
        "2027-10-02T00:00:00Z",
        &["2027-10-02T15:45:00Z"],
        "02:45 exists on the gap day (+11)",
    ),
    (
        "45 1 * * *",
        Lord_Howe,
        "2027-04-03T00:00:00Z",
        &["2027-04-03T14:45:00Z", "2027-04-04T15:15:00Z"],
        "01:45 twice on 04-04: first (+11); next day +10:30",
    ),
    (
        "45 1 * * *",
        Lord_Howe,
        "2027-04-03T15:00:00Z",
        &["2027-04-04T15:15:00Z"],
        "after between the two 01:45s: none that day",
    ),
];

#[test]
fn cron_table() {
    assert!(CRON_CASES.len() >= 50, "{} cases", CRON_CASES.len());
    for (expr, tz, after, expected, why) in CRON_CASES {
        let got = cron(expr).upcoming(*tz, &Bounds::default(), t(after), expected.len());
        let expected: Vec<String> = expected.iter().map(|s| fmt(&[t(s)])[0].clone()).collect();
        assert_eq!(fmt(&got), expected, "{expr} in {tz} after {after}: {why}");
    }
}

#[test]
fn cron_occurrences_match_forward_and_backward() {
    // newest_between (crate's backwards search) agrees with forward iteration.
    let windows = [
        (
            "0 0 13 * FRI",
            UTC,
            "2027-01-01T00:00:00Z",
            "2027-03-01T00:00:00Z",
        ),
        (
            "*/30 * * * *",
            New_York,
            "2027-11-07T04:00:00Z",
            "2027-11-07T06:45:00Z",
        ),
        (
            "30 1 * * *",
            New_York,
            "2027-11-06T00:00:00Z",
            "2027-11-07T06:45:00Z",
        ),
        (
            "30 2 * * *",
            New_York,
            "2027-03-13T00:00:00Z",
            "2027-03-15T00:00:00Z",
        ),
        (
            "45 1 * * *",
            Lord_Howe,
            "2027-04-01T00:00:00Z",
            "2027-04-03T15:30:00Z",
        ),
        (
            "0 0 29 2 *",
            UTC,
            "2027-01-01T00:00:00Z",
            "2033-01-01T00:00:00Z",
        ),
        (
            "*/30 * * * *",
            Berlin,
            "2027-10-30T22:00:00Z",
            "2027-10-31T01:45:00Z",
        ),
    ];
    for (expr, tz, after, until) in windows {
        let c = cron(expr);
        let (items, total) =
            c.occurrences_between(tz, &Bounds::default(), t(after), t(until), usize::MAX);
        assert_eq!(items.len(), total, "{expr}");
        assert!(total > 0, "{expr}");
        assert_eq!(
            c.newest_between(tz, &Bounds::default(), t(after), t(until)),
            items.last().copied(),
            "{expr} in {tz}"
        );
    }
}
