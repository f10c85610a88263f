//! Provides the console's wording: a cadence in words ("at 02:00 on weekdays"), instants
//! relative to now and in a schedule's own zone, and durations.
//!
//! Pure presentation: no I/O and no clock (callers pass `now`); anything it does not
//! recognise falls back to a plain phrase, the exact expression being shown beside it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::cadence::MONTH_FULL_NAMES as MONTHS;
use crate::domain::validation::CadenceBody;

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The cadence as a sentence fragment ("every 15 minutes", "at 02:00 every day").
pub fn cadence(c: &CadenceBody, zone: &str) -> String {
    match c.kind.as_deref() {
        Some("cron") => c.expr.as_deref().map(cron).unwrap_or_else(|| "cron".into()),
        Some("interval") => match c.every_seconds {
            Some(s) => format!("every {}", span(s)),
            None => "interval".into(),
        },
        Some("once") => match c
            .at
            .as_deref()
            .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
        {
            Some(at) => format!("once, at {}", in_zone(at.with_timezone(&Utc), zone)),
            None => "once".into(),
        },
        _ => "unknown cadence".into(),
    }
}

/// The exact definition: the cron expression, the interval or the instant.
pub fn expression(c: &CadenceBody) -> String {
    match c.kind.as_deref() {
        Some("cron") => c.expr.clone().unwrap_or_default(),
        Some("interval") => format!(
            "interval {} s{}",
            c.every_seconds.unwrap_or_default(),
            c.anchor_at
                .as_deref()
                .map(|a| format!(" from {a}"))
                .unwrap_or_default()
        ),
        Some("once") => format!("once {}", c.at.as_deref().unwrap_or_default()),
        _ => String::new(),
    }
}

/// `n` seconds as "5 minutes", "90 seconds", "2 hours", "1 h 30 min".
fn span(seconds: i64) -> String {
    let unit = |n: i64, one: &str, many: &str| {
        if n == 1 {
            one.to_string()
        } else {
            format!("{n} {many}")
        }
    };
    if seconds > 0 && seconds % 86_400 == 0 {
        unit(seconds / 86_400, "day", "days")
    } else if seconds > 0 && seconds % 3600 == 0 {
        unit(seconds / 3600, "hour", "hours")
    } else if seconds > 0 && seconds % 60 == 0 && seconds < 3600 {
        unit(seconds / 60, "minute", "minutes")
    } else if seconds < 60 {
        unit(seconds, "second", "seconds")
    } else {
        duration_ms(seconds.saturating_mul(1000))
    }
}

fn number(field: &str, max: u32) -> Option<u32> {
    field.parse::<u32>().ok().filter(|n| *n <= max)
}

fn step(field: &str) -> Option<u32> {
    field
        .strip_prefix("*/")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0)
}

/// The time-of-day part of a cron expression.
fn cron_time(minute: &str, hour: &str) -> Option<String> {
    let plural = |n: u32, one: &str, many: &str| {
        if n == 1 {
            one.to_string()
        } else {
            format!("every {n} {many}")
        }
    };
    if let Some(m) = number(minute, 59) {
        if let Some(h) = number(hour, 23) {
            return Some(format!("at {h:02}:{m:02}"));
        }
        if hour == "*" {
            return Some(format!("every hour at minute {m}"));
        }
        if let Some(n) = step(hour) {
            return Some(format!(
                "{} at minute {m}",
                plural(n, "every hour", "hours")
            ));
        }
        let hours: Option<Vec<u32>> = hour.split(',').map(|h| number(h, 23)).collect();
        if let Some(hours) = hours {
            let times: Vec<String> = hours.iter().map(|h| format!("{h:02}:{m:02}")).collect();
            return Some(format!("at {}", times.join(", ")));
        }
        return None;
    }
    let every = if minute == "*" {
        Some("every minute".to_string())
    } else {
        step(minute).map(|n| plural(n, "every minute", "minutes"))
    }?;
    if hour == "*" {
        Some(every)
    } else if let Some(h) = number(hour, 23) {
        Some(format!("{every} from {h:02}:00 to {h:02}:59"))
    } else {
        Some(format!("{every} in hours {hour}"))
    }
}

fn day_name(field: &str) -> Option<&'static str> {
    let n = number(field, 7)?;
    DAYS.get(usize::try_from(n % 7).ok()?).copied()
}

/// The calendar part of a cron expression; `None` for every day.
fn cron_days(dom: &str, month: &str, dow: &str) -> Result<Option<String>, ()> {
    let mut parts = Vec::new();
    match dow {
        "*" => {}
        "1-5" => parts.push("on weekdays".to_string()),
        "0,6" | "6,0" => parts.push("on weekends".to_string()),
        list => {
            let names: Option<Vec<&str>> = list.split(',').map(day_name).collect();
            parts.push(format!("on {}", names.ok_or(())?.join(", ")));
        }
    }
    match dom {
        "*" => {}
        d => {
            let n = number(d, 31).filter(|n| *n >= 1).ok_or(())?;
            parts.push(format!("on day {n} of the month"));
        }
    }
    match month {
        "*" => {}
        m => {
            let n = number(m, 12).filter(|n| *n >= 1).ok_or(())?;
            let name = MONTHS
                .get(usize::try_from(n - 1).map_err(|_| ())?)
                .ok_or(())?;
            parts.push(format!("in {name}"));
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join(" ")))
}

/// A five-field expression (or macro) in words; "custom cron" when it is not a common
/// shape.
pub fn cron(expr: &str) -> String {
    let expanded = match expr.trim() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        other => other,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return "custom cron".into();
    };
    let Some(time) = cron_time(minute, hour) else {
        return "custom cron".into();
    };
    match cron_days(dom, month, dow) {
        Ok(None) if time.starts_with("at ") => format!("{time} every day"),
        Ok(None) => time,
        Ok(Some(days)) => format!("{time} {days}"),
        Err(()) => "custom cron".into(),
    }
}

/// `at` relative to `now`: "in 3 h 12 min", "5 s ago", "now".
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ms = (at - now).num_milliseconds();
    if ms.abs() < 1000 {
        return "now".into();
    }
    let seconds = ms.abs() / 1000;
    let text = if seconds < 60 {
        format!("{seconds} s")
    } else {
        duration_ms(seconds * 1000)
    };
    if ms > 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// `at` in the zone named `zone` ("2026-12-07 02:00:00 CET"); UTC if the name is unknown.
pub fn in_zone(at: DateTime<Utc>, zone: &str) -> String {
    match zone.parse::<Tz>() {
        Ok(tz) => at
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// An instant in UTC as the API writes it.
pub fn utc(at: DateTime<Utc>) -> String {
    crate::domain::ids::format_instant(at)
}

/// Milliseconds as "842 ms", "3.2 s", "2 min 5 s", "3 h 12 min", "2 d 3 h".
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    if ms < 10_000 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn body(kind: &str) -> CadenceBody {
        CadenceBody {
            kind: Some(kind.into()),
            ..Default::default()
        }
    }

    #[test]
    fn cron_shapes_read_as_sentences() {
        assert_eq!(cron("0 2 * * *"), "at 02:00 every day");
        assert_eq!(cron("*/15 * * * *"), "every 15 minutes");
        assert_eq!(cron("* * * * *"), "every minute");
        assert_eq!(cron("5 * * * *"), "every hour at minute 5");
        assert_eq!(cron("0 */6 * * *"), "every 6 hours at minute 0");
        assert_eq!(cron("30 9 * * 1-5"), "at 09:30 on weekdays");
        assert_eq!(
            cron("0 9,17 * * 1,3"),
            "at 09:00, 17:00 on Monday, Wednesday"
        );
        assert_eq!(cron("0 0 1 * *"), "at 00:00 on day 1 of the month");
        assert_eq!(cron("@yearly"), "at 00:00 on day 1 of the month in January");
        assert_eq!(cron("@weekly"), "at 00:00 on Sunday");
        assert_eq!(cron("*/5 9 * * *"), "every 5 minutes from 09:00 to 09:59");
        assert_eq!(cron("0 0 L * *"), "custom cron");
        assert_eq!(cron("1-5/2 * * * *"), "custom cron");
        assert_eq!(cron("nonsense"), "custom cron");
    }

    #[test]
    fn intervals_and_once() {
        let mut c = body("interval");
        c.every_seconds = Some(300);
        assert_eq!(cadence(&c, "UTC"), "every 5 minutes");
        c.every_seconds = Some(90);
        assert_eq!(cadence(&c, "UTC"), "every 1 min 30 s");
        c.every_seconds = Some(7200);
        assert_eq!(cadence(&c, "UTC"), "every 2 hours");
        c.every_seconds = Some(1);
        assert_eq!(cadence(&c, "UTC"), "every second");
        let mut o = body("once");
        o.at = Some("2027-06-01T09:00:00-07:00".into());
        assert_eq!(
            cadence(&o, "America/Los_Angeles"),
            "once, at 2027-06-01 09:00:00 PDT"
        );
    }

    #[test]
    fn instants_relative_and_in_their_zone() {
        let now = Utc.with_ymd_and_hms(2027, 1, 15, 12, 0, 0).unwrap();
        assert_eq!(relative(now, now), "now");
        assert_eq!(
            relative(now + chrono::Duration::seconds(42), now),
            "in 42 s"
        );
        assert_eq!(
            relative(now + chrono::Duration::minutes(192), now),
            "in 3 h 12 min"
        );
        assert_eq!(relative(now - chrono::Duration::seconds(5), now), "5 s ago");
        assert_eq!(in_zone(now, "Europe/Berlin"), "2027-01-15 13:00:00 CET");
        assert_eq!(in_zone(now, "Mars/Olympus"), "2027-01-15 12:00:00 UTC");
        assert_eq!(duration_ms(842), "842 ms");
        assert_eq!(duration_ms(3_200), "3.2 s");
        assert_eq!(duration_ms(125_000), "2 min 5 s");
    }
}
