//! Reads the server's own instruments from `/v1/metrics` for a report line: how the
//! executor pool's claims batched and how long they took. Reads only; asserts nothing.

use anyhow::{bail, Result};

use crate::env::Api;

/// `(label, text)` for the report: claim transactions, mean runs per claim and mean claim
/// time, over the server's life.
pub async fn claim_profile(api: &Api) -> Result<(String, String)> {
    let (status, body) = api.get("/v1/metrics").await?;
    let Some(text) = body.as_str().filter(|_| status == 200) else {
        bail!("GET /v1/metrics answered {status}");
    };
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let claims = value("executor_claim_batch_runs_count");
    let runs = value("executor_claim_batch_runs_sum");
    let secs = value("executor_claim_duration_seconds_sum");
    let per = |x: f64| if claims > 0.0 { x / claims } else { 0.0 };
    Ok((
        "claims (server's metrics)".into(),
        format!(
            "{claims:.0} claim transactions, {:.1} runs each, {:.2} ms each (waiting for a connection included)",
            per(runs),
            per(secs) * 1000.0
        ),
    ))
}
