//! Defines schedule cadences (standard five-field cron, fixed interval, once), their inclusive
//! bounds, and the pure computation of occurrence instants, including time-zone and DST rules.
//! Owns the translation of standard cron onto the `cron` crate; it does no I/O and reads no clock.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Inclusive bounds; no occurrence before start_at or after end_at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
}

impl Bounds {
    /// The exclusive lower limit of a search that starts strictly after `after`: occurrences must
    /// also be at or after `start_at`, i.e. strictly after `start_at - 1ns`.
    fn lower_exclusive(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self
            .start_at
            .and_then(|s| s.checked_sub_signed(Duration::nanoseconds(1)))
        {
            Some(before_start) if before_start > after => before_start,
            _ => after,
        }
    }

    /// The inclusive upper limit: the earlier of `until` (if any) and `end_at` (if any).
    fn upper_inclusive(&self, until: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (until, self.end_at) {
            (Some(u), Some(e)) => Some(u.min(e)),
            (Some(u), None) => Some(u),
            (None, e) => e,
        }
    }
}

/// A standard five-field cron expression (or macro), already translated onto the `cron` crate.
///
/// Dialect: minute hour day-of-month month day-of-week; values, `*`, lists, ranges, `*/n`,
/// `a-b/n`, `a/n` (= `a-max/n`), `?` in day fields (= `*`), names JAN-DEC and SUN-SAT
/// (case-insensitive), day-of-week 0-7 with 0 and 7 both Sunday, and the macros
/// `@yearly @annually @monthly @weekly @daily @midnight @hourly`. When both day fields are
/// restricted a day matches if either matches. A day field counts as unrestricted when one of
/// its list items is `*` or `?` without a step (or with step 1), as in robfig/cron.
///
/// Occurrences are computed on local calendar years 1970..=2100 (the `cron` crate's horizon);
/// beyond that there are none.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    /// One schedule, or two for the day-of-month OR day-of-week case. Each is written in the
    /// crate's own dialect with explicit numeric lists (seconds field `0`, day-of-week 1=Sunday).
    schedules: Vec<cron::Schedule>,
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const MONTH_FULL_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Field {
    fn label(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// Smallest accepted value.
    fn min(self) -> u32 {
        match self {
            Field::Minute | Field::Hour | Field::DayOfWeek => 0,
            Field::DayOfMonth | Field::Month => 1,
        }
    }

    /// Largest accepted value (day-of-week accepts 7 as Sunday).
    fn max(self) -> u32 {
        match self {
            Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 7,
        }
    }

    /// The end of `*` and of `a/n` (day-of-week stops at 6, Sunday being 0).
    fn star_max(self) -> u32 {
        match self {
            Field::DayOfWeek => 6,
            other => other.max(),
        }
    }

    fn is_day(self) -> bool {
        matches!(self, Field::DayOfMonth | Field::DayOfWeek)
    }

    fn name_value(self, upper: &str) -> Option<u32> {
        let table: &[&str] = match self {
            Field::Month => &MONTH_NAMES,
            Field::DayOfWeek => &DAY_NAMES,
            _ => return None,
        };
        let index = table.iter().position(|n| *n == upper)?;
        let index = u32::try_from(index).ok()?;
        Some(if self == Field::Month {
            index + 1
        } else {
            index
        })
    }

    fn hint(self) -> &'static str {
        match self {
            Field::Month => "use 1-12 or JAN-DEC",
            Field::DayOfWeek => "use 0-7 or SUN-SAT",
            _ => "expected a number",
        }
    }
}

/// One parsed cron field: its explicit values (day-of-week already folded to 0-6) and whether
/// it is unrestricted (`*` / `?`) for the purpose of the day-of-month/day-of-week OR rule.
struct ParsedField {
    values: BTreeSet<u32>,
    unrestricted: bool,
}

fn parse_value(field: Field, token: &str, item: &str) -> Result<u32, String> {
    let label = field.label();
    if token.is_empty() {
        return Err(format!("{label} field has an empty value in '{item}'"));
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range = || {
            format!(
                "{label} value {token} is out of range {}-{}",
                field.min(),
                field.max()
            )
        };
        let value: u32 = token.parse().map_err(|_| out_of_range())?;
        if value < field.min() || value > field.max() {
            return Err(out_of_range());
        }
        return Ok(value);
    }
    let upper = token.to_ascii_uppercase();
    if let Some(value) = field.name_value(&upper) {
        return Ok(value);
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if upper.contains('#') {
        return Err(format!(
            "'#' (nth weekday of the month) is not supported in the {label} field ('{item}')"
        ));
    }
    if let Some(prefix) = upper.strip_suffix('W') {
        if all_digits(prefix) || prefix == "L" {
            return Err(format!(
                "'W' (nearest weekday) is not supported in the {label} field ('{item}')"
            ));
        }
    }
    if let Some(prefix) = upper.strip_suffix('L') {
        if all_digits(prefix) {
            return Err(format!(
                "'L' (last) is not supported in the {label} field ('{item}')"
            ));
        }
    }
    Err(format!(
        "unknown {label} value '{token}' ({})",
        field.hint()
    ))
}

fn parse_step(field: Field, step: &str, item: &str) -> Result<u32, String> {
    let label = field.label();
    if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid step '{step}' in the {label} field ('{item}'): expected a number"
        ));
    }
    let value: u32 = step
        .parse()
        .map_err(|_| format!("step {step} is too large in the {label} field ('{item}')"))?;
    if value == 0 {
        return Err(format!(
            "step must be at least 1 (the {label} field has '{item}')"
        ));
    }
    Ok(value)
}

fn parse_field(field: Field, text: &str) -> Result<ParsedField, String> {
    let label = field.label();
    let mut values = BTreeSet::new();
    let mut unrestricted = false;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{label} field '{text}' has an empty list item"));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(parse_step(field, step, item)?)),
            None => (item, None),
        };
        let (low, high) = if base == "*" || base == "?" {
            if base == "?" && !field.is_day() {
                return Err(format!(
                    "'?' is only allowed in the day-of-month and day-of-week fields, not in the {label} field"
                ));
            }
            if step.unwrap_or(1) == 1 {
                unrestricted = true;
            }
            (field.min(), field.star_max())
        } else if let Some((a, b)) = base.split_once('-') {
            let low = parse_value(field, a, item)?;
            let mut high = parse_value(field, b, item)?;
            // `MON-SUN` / `1-0`: a day-of-week range ending on Sunday ends on 7.
            if field == Field::DayOfWeek && high == 0 && low > 0 {
                high = 7;
            }
            if low > high {
                return Err(format!(
                    "{label} range {a}-{b} is reversed (start must not be greater than end)"
                ));
            }
            (low, high)
        } else {
            let value = parse_value(field, base, item)?;
            match step {
                // `a/n` means `a-max/n`.
                Some(_) => (value, field.star_max().max(value)),
                None => (value, value),
            }
        };
        let step = usize::try_from(step.unwrap_or(1)).unwrap_or(usize::MAX);
        for value in (low..=high).step_by(step) {
            values.insert(if field == Field::DayOfWeek && value == 7 {
                0
            } else {
                value
            });
        }
    }
    Ok(ParsedField {
        values,
        unrestricted,
    })
}

fn expand_macro(source: &str) -> Result<&'static str, String> {
    let mut words = source.split_whitespace();
    let name = words.next().unwrap_or_default().to_ascii_lowercase();
    let standard = match name.as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@reboot" => return Err("@reboot is not supported".to_string()),
        "@every" => {
            return Err("@every is not supported (use an interval schedule instead)".to_string())
        }
        _ => {
            return Err(format!(
                "unknown macro '{name}' (supported: @yearly @annually @monthly @weekly @daily @midnight @hourly)"
            ))
        }
    };
    if words.next().is_some() {
        return Err(format!("macro '{name}' must stand alone"));
    }
    Ok(standard)
}

fn days_in_month_max(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn join_list(values: &BTreeSet<u32>, offset: u32) -> String {
    values
        .iter()
        .map(|v| (v + offset).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn join_words(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// First and last local calendar instants the `cron` crate can iterate (its year range).
fn horizon() -> Option<(NaiveDateTime, NaiveDateTime)> {
    let start = NaiveDate::from_ymd_opt(1970, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let end = NaiveDate::from_ymd_opt(2100, 12, 31)?.and_hms_opt(23, 59, 59)?;
    Some((start, end))
}

/// The wall-clock time of `t` in `tz`, with `t` first clamped to a safe range around the
/// horizon so the conversion can never overflow.
fn local_naive(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let lo = NaiveDate::from_ymd_opt(1969, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let hi = NaiveDate::from_ymd_opt(2102, 1, 1)?.and_hms_opt(0, 0, 0)?;
    let t = t.clamp(Utc.from_utc_datetime(&lo), Utc.from_utc_datetime(&hi));
    Some(t.with_timezone(&tz).naive_local())
}

/// Maps a wall-clock time to its instant: nonexistent (gap) → None; repeated (fold) → the
/// first of the two instants. This mapping is strictly increasing over existing times.
fn to_instant(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// How far past the wall-clock time of `until` a backwards search starts, to cover a fold
/// (tzdb offsets since 1970 never step back by more than 2 hours).
const FOLD_LOOKAHEAD_HOURS: i64 = 3;

impl CronExpr {
    /// Parses the standard dialect; Err is a human-readable message for the `schedule.expr` field.
    pub fn parse(expr: &str) -> Result<CronExpr, String> {
        let source = expr.trim();
        if source.is_empty() {
            return Err("cron expression is empty".to_string());
        }
        let standard = if source.starts_with('@') {
            expand_macro(source)?
        } else {
            source
        };
        let parts: Vec<&str> = standard.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                parts.len()
            ));
        }
        let minutes = parse_field(Field::Minute, parts[0])?;
        let hours = parse_field(Field::Hour, parts[1])?;
        let doms = parse_field(Field::DayOfMonth, parts[2])?;
        let months = parse_field(Field::Month, parts[3])?;
        let dows = parse_field(Field::DayOfWeek, parts[4])?;

        // Only day-of-month can make an expression never fire: with a restricted day-of-week
        // the OR rule fires on that weekday, which every month has.
        if !doms.unrestricted && dows.unrestricted {
            let first_day = doms.values.iter().next().copied().unwrap_or(1);
            if months
                .values
                .iter()
                .all(|&m| first_day > days_in_month_max(m))
            {
                let days = doms
                    .values
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let month_names: Vec<&str> = months
                    .values
                    .iter()
                    .filter_map(|&m| MONTH_FULL_NAMES.get(usize::try_from(m).ok()? - 1))
                    .copied()
                    .collect();
                let (noun, verb) = if doms.values.len() == 1 {
                    ("day", "does")
                } else {
                    ("days", "do")
                };
                return Err(format!(
                    "can never fire ({noun} {days} {verb} not exist in {})",
                    join_words(&month_names)
                ));
            }
        }

        // The crate's dialect: leading seconds field, day-of-week 1=Sunday..7=Saturday, and
        // both day fields must match (AND), so the OR case becomes two schedules.
        let prefix = format!(
            "0 {} {} ",
            join_list(&minutes.values, 0),
            join_list(&hours.values, 0)
        );
        let month_list = join_list(&months.values, 0);
        let dom_list = join_list(&doms.values, 0);
        let dow_list = join_list(&dows.values, 1);
        let crate_exprs = match (doms.unrestricted, dows.unrestricted) {
            (true, true) => vec![format!("{prefix}* {month_list} *")],
            (false, true) => vec![format!("{prefix}{dom_list} {month_list} *")],
            (true, false) => vec![format!("{prefix}* {month_list} {dow_list}")],
            (false, false) => vec![
                format!("{prefix}{dom_list} {month_list} *"),
                format!("{prefix}* {month_list} {dow_list}"),
            ],
        };
        let schedules = crate_exprs
            .iter()
            .map(|e| {
                cron::Schedule::from_str(e).map_err(|err| {
                    format!("internal error translating cron expression '{source}': {err}")
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(CronExpr {
            source: source.to_string(),
            schedules,
        })
    }

    /// The expression exactly as the user wrote it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The first matching wall-clock time strictly after `cursor`, within the horizon.
    fn naive_next(&self, cursor: NaiveDateTime) -> Option<NaiveDateTime> {
        let (start, end) = horizon()?;
        if cursor >= end {
            return None;
        }
        let cursor = if cursor < start {
            start.checked_sub_signed(Duration::seconds(1))?
        } else {
            cursor
        };
        let from = Utc.from_utc_datetime(&cursor);
        self.schedules
            .iter()
            .filter_map(|s| s.after(&from).next())
            .map(|t| t.naive_utc())
            .min()
    }

    /// The last matching wall-clock time strictly before `cursor`, within the horizon.
    fn naive_prev(&self, cursor: NaiveDateTime) -> Option<NaiveDateTime> {
        let (start, end) = horizon()?;
        if cursor <= start {
            return None;
        }
        let cursor = if cursor > end {
            end.checked_add_signed(Duration::seconds(1))?
        } else {
            cursor
        };
        let from = Utc.from_utc_datetime(&cursor);
        self.schedules
            .iter()
            .filter_map(|s| s.after(&from).next_back())
            .map(|t| t.naive_utc())
            .max()
    }

    /// Successive occurrence instants strictly after `after`, oldest first.
    fn iter_after(&self, tz: Tz, after: DateTime<Utc>) -> CronOccurrences<'_> {
        CronOccurrences {
            expr: self,
            tz,
            cursor: local_naive(tz, after),
            after,
        }
    }

    /// The newest occurrence instant in (after, until].
    fn newest_between(
        &self,
        tz: Tz,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut cursor =
            local_naive(tz, until)?.checked_add_signed(Duration::hours(FOLD_LOOKAHEAD_HOURS))?;
        loop {
            let candidate = self.naive_prev(cursor)?;
            cursor = candidate;
            if let Some(instant) = to_instant(tz, candidate) {
                if instant <= until {
                    // Instants increase with wall-clock time, so this is the newest one.
                    return (instant > after).then_some(instant);
                }
            }
        }
    }
}

/// Iterator over cron occurrence instants strictly after a point, in increasing order.
struct CronOccurrences<'a> {
    expr: &'a CronExpr,
    tz: Tz,
    cursor: Option<NaiveDateTime>,
    after: DateTime<Utc>,
}

impl Iterator for CronOccurrences<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        loop {
            let candidate = self.expr.naive_next(self.cursor?);
            self.cursor = candidate;
            let candidate = candidate?;
            // Gap → no occurrence; fold → first instant only. Candidates from the second pass
            // of a fold map to first-pass instants <= `after`, so they are skipped here.
            if let Some(instant) = to_instant(self.tz, candidate) {
                if instant > self.after {
                    self.after = instant;
                    return Some(instant);
                }
            }
        }
    }
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;

fn to_nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * NANOS_PER_SECOND + i128::from(t.timestamp_subsec_nanos())
}

fn from_nanos(nanos: i128) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(nanos.div_euclid(NANOS_PER_SECOND)).ok()?;
    let subsec = u32::try_from(nanos.rem_euclid(NANOS_PER_SECOND)).ok()?;
    DateTime::from_timestamp(secs, subsec)
}

/// The interval grid `anchor + k * step` (k >= 0), in nanoseconds.
struct Grid {
    anchor: i128,
    step: i128,
}

impl Grid {
    fn new(every_seconds: i64, anchor_at: DateTime<Utc>) -> Option<Grid> {
        if every_seconds <= 0 {
            return None;
        }
        Some(Grid {
            anchor: to_nanos(anchor_at),
            step: i128::from(every_seconds) * NANOS_PER_SECOND,
        })
    }

    /// Index of the first point strictly after `t`.
    fn first_after(&self, t: DateTime<Utc>) -> i128 {
        let t = to_nanos(t);
        if t < self.anchor {
            0
        } else {
            (t - self.anchor).div_euclid(self.step) + 1
        }
    }

    /// Index of the last point at or before `t`, if any.
    fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<i128> {
        let t = to_nanos(t);
        (t >= self.anchor).then(|| (t - self.anchor).div_euclid(self.step))
    }

    fn point(&self, k: i128) -> Option<DateTime<Utc>> {
        from_nanos(self.anchor.checked_add(k.checked_mul(self.step)?)?)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cadence {
    Cron(CronExpr),
    Interval {
        every_seconds: i64,
        anchor_at: DateTime<Utc>,
    },
    Once {
        at: DateTime<Utc>,
    },
}

impl Cadence {
    /// "cron" | "interval" | "once"
    pub fn kind(&self) -> &'static str {
        match self {
            Cadence::Cron(_) => "cron",
            Cadence::Interval { .. } => "interval",
            Cadence::Once { .. } => "once",
        }
    }

    /// The first occurrence strictly after `after`, inside `bounds`; None if there is none.
    /// Cron is evaluated in `tz` (wall clock); interval/once ignore tz.
    pub fn next_after(
        &self,
        tz: Tz,
        bounds: &Bounds,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let lower = bounds.lower_exclusive(after);
        let next = match self {
            Cadence::Cron(expr) => expr.iter_after(tz, lower).next()?,
            Cadence::Interval {
                every_seconds,
                anchor_at,
            } => {
                let grid = Grid::new(*every_seconds, *anchor_at)?;
                grid.point(grid.first_after(lower))?
            }
            Cadence::Once { at } => (*at > lower).then_some(*at)?,
        };
        match bounds.end_at {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// Up to `count` successive occurrences strictly after `after` (uses next_after repeatedly).
    pub fn upcoming(
        &self,
        tz: Tz,
        bounds: &Bounds,
        after: DateTime<Utc>,
        count: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < count {
            match self.next_after(tz, bounds, cursor) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// Occurrences in the half-open window (after, until] (also inside `bounds`): returns the
    /// first `limit` of them, oldest first, and the total number in the window.
    /// Intervals are computed arithmetically; cron iterates the window.
    pub fn occurrences_between(
        &self,
        tz: Tz,
        bounds: &Bounds,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let lower = bounds.lower_exclusive(after);
        let upper = match bounds.upper_inclusive(Some(until)) {
            Some(upper) if upper > lower => upper,
            _ => return (Vec::new(), 0),
        };
        match self {
            Cadence::Cron(expr) => {
                let mut items = Vec::new();
                let mut total = 0usize;
                for t in expr.iter_after(tz, lower) {
                    if t > upper {
                        break;
                    }
                    if items.len() < limit {
                        items.push(t);
                    }
                    total = total.saturating_add(1);
                }
                (items, total)
            }
            Cadence::Interval {
                every_seconds,
                anchor_at,
            } => {
                let Some(grid) = Grid::new(*every_seconds, *anchor_at) else {
                    return (Vec::new(), 0);
                };
                let first = grid.first_after(lower);
                let Some(last) = grid.last_at_or_before(upper) else {
                    return (Vec::new(), 0);
                };
                if last < first {
                    return (Vec::new(), 0);
                }
                let total = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
                let items = (0..total.min(limit))
                    .map_while(|i| {
                        let i = i128::try_from(i).ok()?;
                        grid.point(first.checked_add(i)?)
                    })
                    .collect();
                (items, total)
            }
            Cadence::Once { at } => {
                if *at > lower && *at <= upper {
                    let items = if limit > 0 { vec![*at] } else { Vec::new() };
                    (items, 1)
                } else {
                    (Vec::new(), 0)
                }
            }
        }
    }

    /// The newest occurrence in (after, until] (also inside `bounds`), if any.
    /// Efficient for intervals and cron alike (no iteration over the window).
    pub fn newest_between(
        &self,
        tz: Tz,
        bounds: &Bounds,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let lower = bounds.lower_exclusive(after);
        let upper = bounds.upper_inclusive(Some(until))?;
        if upper <= lower {
            return None;
        }
        match self {
            Cadence::Cron(expr) => expr.newest_between(tz, lower, upper),
            Cadence::Interval {
                every_seconds,
                anchor_at,
            } => {
                let grid = Grid::new(*every_seconds, *anchor_at)?;
                let newest = grid.point(grid.last_at_or_before(upper)?)?;
                (newest > lower).then_some(newest)
            }
            Cadence::Once { at } => (*at > lower && *at <= upper).then_some(*at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Asia::Kolkata;
    use chrono_tz::Australia::Lord_Howe;
    use chrono_tz::Europe::Berlin;
    use chrono_tz::UTC;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
            .with_timezone(&Utc)
    }

    fn cron(expr: &str) -> Cadence {
        Cadence::Cron(CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}")))
    }

    fn fmt(v: &[DateTime<Utc>]) -> Vec<String> {
        v.iter()
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .collect()
    }

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

    fn interval(every_seconds: i64, anchor: &str) -> Cadence {
        Cadence::Interval {
            every_seconds,
            anchor_at: t(anchor),
        }
    }

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
                d.minute() % 10 == 0
                    && (d.day() == 1 || d.day() == 15 || d.weekday() == Weekday::Wed)
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
}
