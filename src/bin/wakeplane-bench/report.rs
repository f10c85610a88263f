//! Summaries and plain-text tables.

use std::time::Duration;

/// count, p50, p99 and max of a sample (nearest-rank percentiles).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(mut values: Vec<f64>) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
            values[i - 1]
        };
        Some(Summary {
            count: values.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: values[values.len() - 1],
        })
    }

    /// Row cells: count, p50, p99, max (ms).
    pub fn cells(summary: Option<Summary>) -> Vec<String> {
        match summary {
            Some(s) => vec![s.count.to_string(), ms(s.p50), ms(s.p99), ms(s.max)],
            None => vec!["0".into(), "-".into(), "-".into(), "-".into()],
        }
    }
}

pub fn ms(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64().max(1e-9))
}

pub fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// Prints a titled Markdown table: first column left-aligned, the others right-aligned.
pub fn table(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    render(title, headers, rows, true);
}

/// Two-column key/value table, left-aligned.
pub fn facts(title: &str, rows: &[(String, String)]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    render(title, &["", ""], &rows, false);
}

fn render(title: &str, headers: &[&str], rows: &[Vec<String>], right: bool) {
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.len().max(3)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let right_aligned = |i: usize| right && i > 0;
    let line = |cells: &[String]| {
        let parts: Vec<String> = (0..cols)
            .map(|i| {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                if right_aligned(i) {
                    format!(" {c:>w$} ", w = width[i])
                } else {
                    format!(" {c:<w$} ", w = width[i])
                }
            })
            .collect();
        println!("|{}|", parts.join("|"));
    };
    println!("\n{title}\n");
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let rule: Vec<String> = (0..cols)
        .map(|i| {
            if right_aligned(i) {
                format!("{}:", "-".repeat(width[i] + 1))
            } else {
                "-".repeat(width[i] + 2)
            }
        })
        .collect();
    println!("|{}|", rule.join("|"));
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn nearest_rank() {
        let s = Summary::of((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((s.count, s.p50, s.p99, s.max), (100, 50.0, 99.0, 100.0));
        assert!(Summary::of(Vec::new()).is_none());
    }
}
